"""``check``: what each tenant's configuration means, in words, and what the environment lacks.

``load_config`` has already refused anything that cannot work on any machine. ``check`` adds what
only this machine can tell: secrets whose environment variables are unset and key files that are
missing. Each tenant gets a readable summary: schedule, next period, format, file names for that
period, and the destination, with secrets shown by the NAME of their variable, never their value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from activity_export.config import Config, LocalDestination, S3Destination, SftpDestination, Tenant
from activity_export.encryption import recipient_problems
from activity_export.errors import ConfigError, ExportError
from activity_export.naming import KINDS
from activity_export.periods import Period, due_at, period_containing, sample_periods
from activity_export.prune import expired

if TYPE_CHECKING:
    from activity_export.ledger import Location
    from activity_export.warehouse import Quarantine, Warehouse

TIME_FORMAT = "%Y-%m-%d %H:%M %Z"
DELIMITER_NAMES = {"\t": "tab", " ": "space", ",": "comma", ";": "semicolon", "|": "pipe"}


@dataclass(frozen=True)
class TenantSummary:
    """One tenant's configuration as a reader wants to see it, plus what is wrong on this machine."""

    brand: str
    schedule: str
    next_period: Period
    next_due: datetime
    format: str
    extra_fields: dict[str, tuple[str, ...]]
    renamed: dict[str, dict[str, str]]
    files: list[PurePosixPath]
    destination: str
    problems: list[str] = field(default_factory=list)


def readable_delimiter(delimiter: str) -> str:
    """``"\\t" (tab)``, ``";" (semicolon)``: a delimiter as one can type it in ``tenants.yml``."""
    shown = "\\t" if delimiter == "\t" else delimiter
    name = DELIMITER_NAMES.get(delimiter)
    return f'"{shown}" ({name})' if name else f'"{shown}"'


def next_due_period(tenant: Tenant, now: datetime) -> Period:
    """The first period that is not yet due at ``now`` (and not before the tenant's start)."""
    period = period_containing(tenant, now)
    while due_at(tenant, period) <= now:  # rare: run_at before the period's own end (hourly)
        period = period.next()
    previous = period_containing(tenant, period.start_utc - timedelta(microseconds=1))
    while due_at(tenant, previous) > now:
        period, previous = previous, period_containing(tenant, previous.start_utc - timedelta(microseconds=1))
    if tenant.start is not None:
        first = period_containing(tenant, datetime.combine(tenant.start, datetime.min.time()))
        if first.start_utc > period.start_utc:
            return first
    return period


def describe_destination(tenant: Tenant) -> str:
    """Where the files go, with secrets named by their environment variable only."""
    destination = tenant.destination
    if isinstance(destination, LocalDestination):
        return destination.describe()
    retention = (
        f", files older than {destination.retention_days} days pruned"
        if destination.retention_days
        else ", files kept forever"
    )
    if isinstance(destination, S3Destination):
        login = (
            f"credentials from ${destination.access_key_id_env} and ${destination.secret_access_key_env}"
            if destination.access_key_id_env
            else "credentials from the AWS credential chain"
        )
        region = f", region {destination.region}" if destination.region else ""
        return f"{destination.describe()}{region}, {login}{retention}"
    login = (
        f"key {destination.private_key}"
        if destination.private_key is not None
        else f"password from ${destination.password_env}"
    )
    if destination.passphrase_env:
        login += f" (passphrase from ${destination.passphrase_env})"
    return f"{destination.describe()}, {login}, known_hosts {destination.known_hosts}{retention}"


def environment_problems(tenant: Tenant) -> list[str]:
    """What this machine lacks for the tenant: unset secret variables, missing key files."""
    from activity_export.notify import secret_problem

    notify_env = tenant.notify.secret_env if tenant.notify else None
    destination = tenant.destination
    keys: dict[str | None, str] = {}
    if isinstance(destination, SftpDestination):
        keys = {destination.password_env: "password_env", destination.passphrase_env: "passphrase_env"}
    elif isinstance(destination, S3Destination):
        keys = {
            destination.access_key_id_env: "access_key_id_env",
            destination.secret_access_key_env: "secret_access_key_env",
        }
    problems = [
        f"tenant {tenant.brand}: destination.{keys.get(name, 'password_env')}: environment variable "
        f"{name} is not set (it must hold the secret)"
        for name in tenant.missing_secrets()
        if name != notify_env
    ]
    webhook_secret = secret_problem(tenant.notify) if tenant.notify else None
    if webhook_secret:
        problems.append(f"tenant {tenant.brand}: notify.secret_env: {webhook_secret}")
    problems.extend(recipient_problems(tenant))
    if isinstance(destination, LocalDestination):
        problems.extend(_local_root_problems(tenant.brand, destination))
    if isinstance(destination, SftpDestination):
        for key, path in (
            ("private_key", destination.private_key),
            ("known_hosts", destination.known_hosts),
        ):
            if path is None:
                continue
            try:
                found, there = path.is_file(), path.exists()
            except OSError as exc:  # a name over the system's limit, a loop of links
                problems.append(f"tenant {tenant.brand}: destination.{key} = {str(path)!r}: {exc.strerror}")
                continue
            if not found:
                what = "not a regular file (a named pipe, a device or a folder)" if there else "no such file"
                problems.append(f"tenant {tenant.brand}: destination.{key} = {str(path)!r}: {what}")
        problems.extend(_key_file_problems(tenant.brand, destination))
    return problems


def _local_root_problems(brand: str, destination: LocalDestination) -> list[str]:
    """A local root that cannot become a writable folder: a file on its way, or no write access."""
    existing = destination.root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    where = f"tenant {brand}: destination.root"
    if not existing.is_dir():
        return [f"{where}: {existing} is not a folder, so {destination.root} cannot be one"]
    if not os.access(existing, os.W_OK | os.X_OK):
        return [f"{where}: {existing} is not writable by this user"]
    return []


def _key_file_problems(brand: str, destination: SftpDestination) -> list[str]:
    """What a login would refuse in the key files: a private key others can read, one that cannot
    be loaded (not a key, encrypted without passphrase_env, a wrong passphrase), known_hosts lines.

    The key is loaded as a login loads it, with the passphrase; a missing file or an unset variable
    is reported by ``environment_problems`` already.
    """
    from activity_export.destinations.keys import KnownHostsError, load_known_hosts

    problems = []
    key, passphrase_env = destination.private_key, destination.passphrase_env
    if key is not None and _is_file(key) and not (passphrase_env and not os.environ.get(passphrase_env)):
        from activity_export.destinations import paramiko_without_invoke

        with paramiko_without_invoke():
            from activity_export.destinations.ssh import CredentialError, load_private_key

        try:
            load_private_key(destination)
        except CredentialError as exc:
            problems.append(f"tenant {brand}: {exc}")
    try:
        load_known_hosts(destination.known_hosts, destination.host, destination.port)
    except KnownHostsError as exc:
        problems.append(f"tenant {brand}: destination.known_hosts: {exc}")
    except OSError:
        pass  # a missing file is reported above
    return problems


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def summarize(tenant: Tenant, now: datetime) -> TenantSummary:
    """The summary of one tenant as of ``now``."""
    period = next_due_period(tenant, now)
    run_at = (
        f"{tenant.run_at_time.minute:02d} minutes past each hour"
        if tenant.interval == "hourly"
        else tenant.run_at
    )
    schedule = f"{tenant.interval} in {tenant.timezone}, due at {run_at}"
    schedule += f", from {tenant.start.isoformat()}" if tenant.start else ", from the latest due period"
    if tenant.format == "parquet":  # no delimiter, header, compression or timestamps to show
        layout = "format parquet (typed columns, dates as instants)"
    else:
        layout = (
            f"format csv, delimiter {readable_delimiter(tenant.delimiter)}, "
            f"header {'yes' if tenant.header else 'no'}, compression {tenant.compression}, "
            f"timestamps {tenant.timestamps}"
        )
    fmt = (
        f"{layout}, extension {tenant.extension}, manifest {'yes' if tenant.manifest else 'no'}, "
        f"encryption {tenant.encryption}, erasure file {'yes' if tenant.erasures else 'no'}"
    )
    files = [tenant.relative_path(kind, period) for kind in tenant.delivered_kinds()]
    return TenantSummary(
        brand=tenant.brand,
        schedule=schedule,
        next_period=period,
        next_due=due_at(tenant, period),
        format=fmt,
        extra_fields={kind: tenant.extras(kind) for kind in KINDS},
        renamed={kind: tenant.renames(kind) for kind in KINDS},
        files=files,
        destination=describe_destination(tenant),
        problems=environment_problems(tenant),
    )


def check_config(config: Config, now: datetime, brands: list[str] | None = None) -> list[TenantSummary]:
    """Summaries of the (selected) tenants of a validated configuration, as of ``now`` (aware).

    Files that would land on another tenant's (``collisions``) are a problem of both tenants.
    """
    summaries = [summarize(tenant, now) for tenant in config.selected(brands)]
    for pair, message in collisions(config):
        for summary in summaries:
            if summary.brand in pair:
                summary.problems.append(message)
    return summaries


def changed_since_delivery(config: Config, location: Location, brands: list[str] | None = None) -> list[str]:
    """Tenants whose configured destination or schedule differs from what their deliveries so
    far went to or followed.

    Read only: a ledger that does not exist yet has nothing to compare.
    """
    from activity_export.ledger import (
        DestinationChanged,
        ScheduleChanged,
        config_key,
        ledger_exists,
        open_ledger,
    )
    from activity_export.plan import schedule_of

    if not ledger_exists(location):
        return []
    found = []
    with open_ledger(location, read_only=True) as ledger:
        for tenant in config.selected(brands):
            entry = ledger.tenant(config_key(config.path), tenant.brand)
            configured = tenant.destination.key
            if entry is not None and entry.destination != configured:
                changed = DestinationChanged(tenant.brand, entry.destination, configured)
                found.append(f"tenant {tenant.brand}: {changed}")
            schedule = schedule_of(tenant)
            if entry is not None and entry.schedule not in (None, schedule):
                moved = ScheduleChanged(tenant.brand, str(entry.schedule), schedule)
                found.append(f"tenant {tenant.brand}: {moved}")
    return found


def config_problems(summaries: list[TenantSummary]) -> list[str]:
    """Every problem found, one line each (a collision concerns two tenants, but is one problem);
    empty when the configuration is usable here."""
    return list(dict.fromkeys(problem for summary in summaries for problem in summary.problems))


def raise_on_problems(summaries: list[TenantSummary]) -> None:
    """A ConfigError (exit code 2) listing every problem, if there is any."""
    problems = config_problems(summaries)
    if problems:
        raise ConfigError("configuration not usable on this machine:\n  " + "\n  ".join(problems))


def render_summary(summaries: list[TenantSummary]) -> str:
    """The text ``check`` prints: one block per tenant."""
    blocks = []
    shown: dict[str, str] = {}  # a problem of two tenants stands in full under the first
    for summary in summaries:
        period = summary.next_period
        lines = [
            summary.brand,
            _line("schedule", summary.schedule),
            _line(
                "next period",
                f"{period.label}: {period.start_local.strftime(TIME_FORMAT)} to "
                f"{period.end_local.strftime(TIME_FORMAT)}, due {summary.next_due.strftime(TIME_FORMAT)}",
            ),
            _line("format", summary.format),
        ]
        for kind in KINDS:
            extras = ", ".join(summary.extra_fields[kind]) or "none"
            renamed = ", ".join(f"{column} as {title}" for column, title in summary.renamed[kind].items())
            lines.append(_line(f"{kind} file", f"extra fields {extras}; renamed {renamed or 'none'}"))
        lines.extend(
            _line("files" if number == 0 else "", str(path)) for number, path in enumerate(summary.files)
        )
        lines.append(_line("destination", summary.destination))
        for problem in summary.problems:
            first = shown.setdefault(problem, summary.brand)
            lines.append(_line("PROBLEM", problem if first == summary.brand else f"see {first} above"))
        blocks.append("\n".join(lines))
    problems = config_problems(summaries)
    verdict = (
        f"{len(problems)} problem(s): fix them before the next run"
        if problems
        else f"configuration OK: {len(summaries)} tenant(s)"
    )
    return "\n\n".join(blocks) + "\n\n" + verdict


def _line(label: str, text: str) -> str:
    return f"  {label:<16}{text}"


@dataclass(frozen=True)
class ConnectionCheck:
    """What ``check --connect`` found for one tenant's destination."""

    brand: str
    ok: bool
    message: str


def check_connections(config: Config, brands: list[str] | None = None) -> list[ConnectionCheck]:
    """Log in to every destination and write and remove a probe file in its root."""
    from activity_export.destinations import open_destination
    from activity_export.errors import ExportError

    results = []
    for tenant in config.selected(brands):
        try:
            with open_destination(tenant.destination, tenant.brand, tenant.file_mode_bits) as destination:
                results.append(ConnectionCheck(tenant.brand, True, destination.check_writable()))
        except ExportError as exc:
            results.append(ConnectionCheck(tenant.brand, False, str(exc)))
    return results


def brands_without_data(warehouse: Warehouse, brands: list[str]) -> list[str]:
    """The brands of which the built export relations hold no broadcast at all.

    Almost always a brand code spelt differently in ``tenants.yml`` than in the source tables: such
    a tenant would get empty files every period and look fine.
    """
    import duckdb

    relation = warehouse.relation("export_broadcasts")
    try:
        rows = warehouse.con.execute(f"select distinct brand from {relation}").fetchall()  # noqa: S608
    except duckdb.Error as exc:
        raise ExportError(f"cannot read {relation}: {exc}; has `dbt build` run on this target?") from None
    present = {row[0] for row in rows}
    return [brand for brand in brands if brand not in present]


def absent_brand_warning(brand: str) -> str:
    """The warning ``check`` and ``status`` print for a brand without data."""
    return (
        f"warning: tenant {brand}: the warehouse holds no data for brand {brand!r}; check the code "
        "(spelling, case) against the source tables: until data arrives, its periods wait (they "
        "are never delivered as empty files) and turn overdue"
    )


def quarantined_brands(warehouse: Warehouse, brands: list[str]) -> dict[str, Quarantine]:
    """The brands among ``brands`` that have quarantined events: registered or loaded after the
    clock of the build that read them (a wrong clock upstream)."""
    from activity_export.warehouse import read_quarantines

    found = read_quarantines(warehouse)
    return {brand: found[brand] for brand in brands if brand in found}


def quarantine_warning(brand: str, quarantine: Quarantine) -> str:
    """The warning ``check`` prints for a brand with quarantined events."""
    latest = quarantine.latest.isoformat() if quarantine.latest else "unknown"
    return (
        f"warning: tenant {brand}: {quarantine.events} e-mail event(s) quarantined: registered or "
        f"loaded after the clock of the build that read them (the latest at {latest}); they move no "
        "watermark and are delivered once their time has come; have the platform fix the clock "
        "upstream (`status` shows the same)"
    )


# -- files of different tenants that would land on each other ---------------------------------


def _server(tenant: Tenant) -> tuple[str, PurePosixPath]:
    """The machine a tenant's files land on and its root there, as an absolute path.

    The SFTP login name is left out on purpose: two logins on one server may well share a folder,
    so only a different host, port or root keeps two tenants apart.
    """
    destination = tenant.destination
    if isinstance(destination, LocalDestination):
        return "this machine", PurePosixPath(destination.root.resolve())
    if isinstance(destination, S3Destination):
        return f"bucket {destination.endpoint}/{destination.bucket}", PurePosixPath("/", destination.prefix)
    host = f"[{destination.host.lower()}]" if ":" in destination.host else destination.host.lower()
    return f"sftp {host}:{destination.port}", PurePosixPath("/") / PurePosixPath(destination.root or "/")


def _rendered(tenant: Tenant) -> dict[PurePosixPath, str]:
    """Absolute paths the tenant's templates give over a sample of periods -> ``kind period``."""
    _, root = _server(tenant)
    kinds = (*KINDS, "manifest") if tenant.manifest else KINDS
    paths: dict[PurePosixPath, str] = {}
    for period in sample_periods(tenant):
        for kind in kinds:
            relative = (
                tenant.manifest_path(period) if kind == "manifest" else tenant.relative_path(kind, period)
            )
            paths.setdefault(root / relative, f"{kind} file of {period.label}")
    return paths


def _sharing_a_tree(config: Config) -> list[Tenant]:
    """The tenants whose root is, on the same server, also another tenant's root, or above or
    below another tenant's root: only their files can meet.

    Every file lands below its tenant's root (templates cannot climb out of it), so a tenant
    alone in its folder tree, the usual set-up of one folder or account per tenant, needs no
    rendering at all; this keeps the check linear in the number of tenants.
    """
    located = [(tenant, _server(tenant)) for tenant in config.tenants.values()]
    roots: dict[tuple[str, PurePosixPath], int] = {}
    above: set[tuple[str, PurePosixPath]] = set()  # folders that hold another tenant's root
    for _, (server, root) in located:
        roots[(server, root)] = roots.get((server, root), 0) + 1
        above.update((server, parent) for parent in root.parents)
    return [
        tenant
        for tenant, (server, root) in located
        if roots[(server, root)] > 1
        or (server, root) in above
        or any((server, parent) in roots for parent in root.parents)
    ]


def path_collisions(config: Config) -> list[str]:
    """Every collision of ``collisions``, one line each."""
    return [message for _, message in collisions(config)]


def collisions(config: Config) -> list[tuple[tuple[str, str], str]]:
    """Problems where two tenants' files would overwrite each other, or ``prune`` of one would
    delete the other's, on a shared destination; one line per pair of tenants.

    The templates are rendered for runs of periods around DST changes and year ends in two years
    (the periods configuration validation renders), for every tenant of the file, whichever
    ``--brand`` a command was given: delivering one tenant must not overwrite another's files.
    """
    problems: dict[tuple[str, str], str] = {}
    owners: dict[tuple[str, PurePosixPath], tuple[Tenant, str]] = {}
    rendered: dict[str, list[tuple[Tenant, dict[PurePosixPath, str]]]] = {}
    for tenant in _sharing_a_tree(config):
        server = _server(tenant)[0]
        paths = _rendered(tenant)
        rendered.setdefault(server, []).append((tenant, paths))
        for path, what in paths.items():
            owner = owners.setdefault((server, path), (tenant, what))
            pair = (owner[0].brand, tenant.brand)
            if owner[0] is not tenant and pair not in problems:
                problems[pair] = (
                    f"tenants {pair[0]} and {pair[1]}: both write {path} on {server} "
                    f"({pair[0]}'s {owner[1]}, {pair[1]}'s {what}); "
                    "put {brand} in file_name or folder, or give them different roots"
                )
    far_future = datetime.max.replace(tzinfo=UTC)
    for server, tenants in rendered.items():
        for pruner, own in tenants:
            destination = pruner.destination
            if isinstance(destination, LocalDestination) or not destination.retention_days:
                continue
            if "{brand}" in pruner.name_template:
                # its names carry its brand code, so it does not take another tenant's files for
                # its own (and skipping these keeps this linear for the usual configuration)
                continue
            folders = {path.parent for path in own}
            kinds = pruner.delivered_kinds()
            for other, paths in tenants:
                pair = (pruner.brand, other.brand)
                if other is pruner or pair in problems or pair[::-1] in problems:
                    continue
                victim = next(
                    (
                        path
                        for path in sorted(paths)
                        if path.parent in folders
                        and any(expired(pruner, kind, path.name, far_future) for kind in kinds)
                    ),
                    None,
                )
                if victim is not None:
                    problems[pair] = (
                        f"tenants {pruner.brand} and {other.brand}: `prune` of {pruner.brand} "
                        f"(retention_days) would delete {other.brand}'s {victim} on {server}, "
                        "whose name matches its template; put {brand} in file_name or folder"
                    )
    return list(problems.items())


def raise_on_collisions(config: Config) -> None:
    """A ConfigError (exit code 2) when tenants' files would land on each other (``path_collisions``)."""
    problems = path_collisions(config)
    if problems:
        raise ConfigError(
            f"{config.path}: tenants share file paths on a destination; nothing was done:\n  "
            + "\n  ".join(problems)
        )
