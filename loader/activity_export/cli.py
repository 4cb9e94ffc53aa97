"""The ``activity-export`` command line: parses arguments and calls the loader's modules."""

from __future__ import annotations

import enum
import functools
import inspect
import json
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from typer.core import TyperGroup

from activity_export import logs
from activity_export.environment import validate_environment
from activity_export.errors import ConfigError, ExportError

# Heavy modules (pydantic, DuckDB, paramiko) are imported inside the commands that use them, so
# that `--help` and the light commands start fast (bench/results/README.md).
if TYPE_CHECKING:
    from activity_export import generate as generator
    from activity_export.deliver import TenantReport

log = logging.getLogger("activity_export")

# The order people meet the commands in: try it, run it nightly, look at it, then the rest.
COMMAND_ORDER = ("demo", "run", "status", "check", "export", "backfill", "prune", "generate")


class CommandsInOrder(TyperGroup):
    """Lists the commands in ``COMMAND_ORDER`` in ``--help`` instead of alphabetically."""

    def list_commands(self, ctx: Any) -> list[str]:  # typer's own (vendored) click Context
        known = super().list_commands(ctx)
        return [name for name in COMMAND_ORDER if name in known] + [
            name for name in known if name not in COMMAND_ORDER
        ]


app = typer.Typer(
    cls=CommandsInOrder,
    help="Deliver each tenant's e-mail activity and broadcast files, built with dbt.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,  # plain help: rendering it with rich costs a third of a second
)

GENERATE_START = date(2026, 11, 1)  # generate's first day unless --start: the week the tests use
DEMO_CONFIG = Path("demo/tenants.yml")  # the demo's own configuration, in the project folder

ConfigOption = Annotated[
    Path, typer.Option("--config", help="Tenant configuration file.", envvar="ACTIVITY_EXPORT_CONFIG")
]
# the demo never reads ACTIVITY_EXPORT_CONFIG: it must not deliver demo data to real tenants
DemoConfigOption = Annotated[Path, typer.Option("--config", help="The demo's tenant configuration file.")]
ProjectDirOption = Annotated[
    Path, typer.Option("--project-dir", help="dbt project folder.", envvar="DBT_PROJECT_DIR")
]
ProfilesDirOption = Annotated[
    Path | None,
    typer.Option("--profiles-dir", help="Folder with dbt's profiles.yml.", envvar="DBT_PROFILES_DIR"),
]
TargetOption = Annotated[
    str | None, typer.Option("--target", help="dbt target (default: the profile's).", envvar="DBT_TARGET")
]

LedgerOption = Annotated[
    str | None,
    typer.Option(
        "--ledger",
        help="Ledger file (default: activity-export.ledger.sqlite beside the config), or "
        "postgresql://user@host:port/dbname for a ledger shared by workers.",
        envvar="ACTIVITY_EXPORT_LEDGER",
    ),
]
# an explicit metavar: typer would name the Python type (<list[str]>)
BrandOption = Annotated[
    list[str] | None, typer.Option("--brand", metavar="<brand>", help="Only this tenant (repeatable).")
]
DryRunOption = Annotated[bool, typer.Option(help="Say what would be done; do nothing.")]
NowOption = Annotated[
    str | None,
    typer.Option(help="Fix the clock: ISO 8601 with an offset, e.g. 2026-11-26T07:00:00+01:00."),
]

F = TypeVar("F", bound=Callable[..., Any])


class LogFormat(enum.StrEnum):
    text = "text"
    json = "json"


VerboseOption = Annotated[
    int, typer.Option("--verbose", "-v", count=True, help="Log every step (-v); debugging detail (-vv).")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Log errors only.")]
_LOG_FORMAT = typer.Option(
    "--log-format",
    help="json: every line on stderr one JSON object (event, tenant, period, rows, bytes, outcome, error).",
    envvar="ACTIVITY_EXPORT_LOG_FORMAT",
)
LogFormatOption = Annotated[LogFormat, _LOG_FORMAT]
# after the command name the default is "as given before it"; `LogFormatOption | None` would wrap
# the Annotated in a union that typer does not look into, and print its repr as the metavar
CommandLogFormatOption = Annotated[LogFormat | None, _LOG_FORMAT]

# What was given before the command name (`activity-export -v run`); the command's own -v adds to it.
_before_command: dict[str, Any] = {"verbose": 0, "quiet": False, "log_format": LogFormat.text}

# The logging options every command takes, after its name too (`activity-export run -v`).
_LOGGING_PARAMETERS = [
    inspect.Parameter("verbose", inspect.Parameter.KEYWORD_ONLY, default=0, annotation=VerboseOption),
    inspect.Parameter("quiet", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=QuietOption),
    inspect.Parameter(
        "log_format", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=CommandLogFormatOption
    ),
]


def reports_errors(command: F) -> F:
    """Give a command the logging options, and turn the domain error into a message and exit code."""
    signature = inspect.signature(command, eval_str=True)

    @functools.wraps(command)
    def wrapper(
        *args: Any, verbose: int = 0, quiet: bool = False, log_format: LogFormat | None = None, **kwargs: Any
    ) -> Any:
        _ended["at_once"] = command.__name__ in ENDS_AT_ONCE
        logs.configure(
            verbose + _before_command["verbose"],
            quiet=quiet or _before_command["quiet"],
            log_format=(log_format or _before_command["log_format"]).value,
        )
        try:
            return command(*args, **kwargs)
        except ExportError as exc:
            logs.say(str(exc), event="command_failed", level=logging.ERROR, error=str(exc))
            raise typer.Exit(exc.exit_code) from None

    wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]  # read by typer
        parameters=[*signature.parameters.values(), *_LOGGING_PARAMETERS]
    )
    return wrapper  # type: ignore[return-value]


def _package_version() -> str:
    try:
        return version("activity-export")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"activity-export {_package_version()}")
        raise typer.Exit


@app.callback()
def _setup(
    verbose: VerboseOption = 0,
    quiet: QuietOption = False,
    log_format: LogFormatOption = LogFormat.text,
    _version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version and exit."),
    ] = False,
) -> None:
    _before_command.update(verbose=verbose, quiet=quiet, log_format=log_format)
    logs.configure(verbose, quiet=quiet, log_format=log_format.value)
    try:
        validate_environment()
    except ConfigError as exc:
        logs.say(str(exc), event="command_failed", level=logging.ERROR, error=str(exc))
        raise typer.Exit(exc.exit_code) from None


@app.command()
@reports_errors
def generate(
    brands: Annotated[str, typer.Option(help="Brand codes, comma separated.")] = "BRANDNAAM",
    days: Annotated[int, typer.Option(min=1, help="Number of days.")] = 7,
    events_per_day: Annotated[int, typer.Option(min=1, help="Events per brand per day.")] = 2000,
    start: Annotated[str, typer.Option(help="First day (UTC), YYYY-MM-DD.")] = GENERATE_START.isoformat(),
    seed: Annotated[int, typer.Option(help="Same seed, same data.")] = 42,
    raw_schema: Annotated[str, typer.Option(help="Schema for the raw tables.")] = "raw",
    project_dir: ProjectDirOption = Path(),
    profiles_dir: ProfilesDirOption = None,
    target: TargetOption = None,
) -> None:
    """Write synthetic raw data (broadcasts, customers, events) into a dbt target's warehouse."""
    from activity_export import generate as generator
    from activity_export.warehouse import connect, resolve_target

    plan = _plan(brands, days, events_per_day, start, seed)
    schema = generator.checked_schema(raw_schema)
    warehouse_target = resolve_target(project_dir, profiles_dir, target)
    with connect(warehouse_target, read_only=False) as warehouse:
        counts = generator.generate(warehouse, plan, schema)
    typer.echo(
        f"generated into {warehouse_target}: "
        + ", ".join(f"{table} {count:,} rows" for table, count in counts.items())
    )


@app.command()
@reports_errors
def export(
    brand: Annotated[str, typer.Option(help="Brand code, as in tenants.yml.")],
    period: Annotated[str, typer.Option(help="A local date (or date-time) inside the period.")],
    out: Annotated[Path, typer.Option(help="Folder for the period's files.")] = Path("exports"),
    config: ConfigOption = Path("tenants.yml"),
    project_dir: ProjectDirOption = Path(),
    profiles_dir: ProfilesDirOption = None,
    target: TargetOption = None,
) -> None:
    """Write one period's activity and broadcast files to a folder: no delivery, no ledger.

    The files get the tenant's file_mode, as delivered files do.
    """
    from activity_export.config import load_config
    from activity_export.deliver import export_period
    from activity_export.encryption import require_recipients
    from activity_export.periods import parse_period
    from activity_export.warehouse import connect, read_watermark, resolve_target

    tenant = load_config(config, project_dir).tenant(brand)
    chosen = parse_period(tenant, period)
    require_recipients(tenant)
    with connect(resolve_target(project_dir, profiles_dir, target)) as warehouse:
        watermark = read_watermark(warehouse, tenant.brand)
        if watermark is None or chosen.end_utc > watermark:
            logs.say(
                f"period {chosen.label} is not complete in the warehouse yet "
                f"(built up to {watermark}); the files may miss rows",
                event="period_incomplete",
                level=logging.WARNING,
                brand=tenant.brand,
                period=chosen.label,
                watermark=watermark.isoformat() if watermark else None,
            )
        files = export_period(warehouse, tenant, chosen, out)
    for written in files:
        typer.echo(f"wrote {written.path}: {written.rows} rows, {written.bytes} bytes")


@app.command()
@reports_errors
def demo(
    config: DemoConfigOption = DEMO_CONFIG,
    days: Annotated[int, typer.Option(min=1, help="Days of demo data.")] = 7,
    events_per_day: Annotated[int, typer.Option(min=1, help="Events per brand per day.")] = 2000,
    now: NowOption = None,
    project_dir: ProjectDirOption = Path(),
    profiles_dir: ProfilesDirOption = None,
    target: TargetOption = "duckdb",
    force: Annotated[
        bool,
        typer.Option(help="Also delete a warehouse file and use a configuration the demo did not make."),
    ] = False,
) -> None:
    """The main job end to end on the embedded default: generate days up to yesterday, dbt build,
    deliver every due period."""
    from activity_export import demo as demo_job
    from activity_export import generate as generator
    from activity_export.build import dbt_build
    from activity_export.config import load_config
    from activity_export.ledger import default_ledger_path
    from activity_export.periods import parse_now
    from activity_export.report import run_summary
    from activity_export.runs import deliver_tenants, say_problems, start_run
    from activity_export.warehouse import connect, resolve_target

    if not config.exists():  # the generic message would suggest ACTIVITY_EXPORT_CONFIG, which demo ignores
        raise ConfigError(
            f"{config}: the demo's configuration not found (looked for {config.absolute()}); "
            "run the demo from the project folder, or give its place with --config PATH"
        )
    settings = load_config(config, project_dir)
    demo_job.check_config_is_the_demos(settings, own=DEMO_CONFIG, force=force, project_dir=project_dir)
    tenants = settings.selected(None)
    moment = parse_now(now) if now else datetime.now(UTC)
    plan = demo_job.demo_plan(tenants, days, events_per_day, moment)
    warehouse_target = resolve_target(project_dir, profiles_dir, target)
    if warehouse_target.kind != "duckdb" or warehouse_target.duckdb_path is None:
        raise ConfigError(
            f"demo runs on the embedded DuckDB default; dbt target {warehouse_target.name!r} is "
            f"{warehouse_target.kind}. Use `generate`, `dbt build` and `export` there instead."
        )
    # a fresh warehouse each time: the incremental relations must not keep another run's data
    demo_job.remove_previous_warehouse(warehouse_target.duckdb_path, force=force)
    logs.say(
        f"1/3 generating {days} days of demo data, up to the tenants' last midnight "
        f"({plan.end.isoformat()}), into {warehouse_target}",
        event="demo_step",
    )
    with connect(warehouse_target, read_only=False) as warehouse:
        demo_job.mark_warehouse(warehouse)
        generator.generate(warehouse, plan)
    logs.say("2/3 dbt build (seeds, models, tests)", event="demo_step")
    dbt_build(project_dir, profiles_dir, warehouse_target.name)
    logs.say(
        f"3/3 delivering every due period as of {moment.isoformat(timespec='seconds')}",
        event="demo_step",
    )
    # the demo's ledger starts afresh with its warehouse, so `status --config demo/tenants.yml`
    # shows what this demo delivered and `run` knows it was delivered
    demo_job.remove_previous_ledger(default_ledger_path(config))
    # force: the demo's own folder gets the same bytes again under the same names
    started = start_run(config, project_dir=project_dir, now=moment, force=True)
    started.tenants = demo_job.from_first_day(started.tenants, plan)
    reports = deliver_tenants(started, warehouse_target)
    typer.echo(run_summary(reports))
    say_problems(reports)
    folders = sorted({str(t.destination.root) for t in tenants if hasattr(t.destination, "root")})
    typer.echo(f"\nfiles are in: {', '.join(folders)}")
    typer.echo(f"what was delivered: activity-export status --config {config}")
    if any(report.failed for report in reports):
        raise typer.Exit(1)


@app.command()
@reports_errors
def check(
    brand: BrandOption = None,
    login: Annotated[
        bool, typer.Option("--connect", help="Also log in to every destination and write a probe file.")
    ] = False,
    now: NowOption = None,
    config: ConfigOption = Path("tenants.yml"),
    ledger: LedgerOption = None,
    project_dir: ProjectDirOption = Path(),
    profiles_dir: ProfilesDirOption = None,
    target: TargetOption = None,
) -> None:
    """Validate tenants.yml and show what each tenant gets; exit 2 on any problem.

    Two tenants whose files land on the same path are a problem. When the warehouse can be read, a
    brand without any data is a warning (a misspelt code), and so are a brand's quarantined events
    (dated after the build's clock); so is a tenant whose destination differs from the one its
    deliveries went to.
    """
    from activity_export.check import (
        changed_since_delivery,
        check_config,
        check_connections,
        raise_on_problems,
        render_summary,
    )
    from activity_export.config import load_config
    from activity_export.ledger import ledger_location
    from activity_export.periods import parse_now

    settings = load_config(config, project_dir)
    moment = parse_now(now) if now else datetime.now(UTC)
    summaries = check_config(settings, moment, brand)
    typer.echo(render_summary(summaries))
    for warning in changed_since_delivery(settings, ledger_location(ledger, config), brand):
        logs.say(warning, event="tenant_changed", level=logging.WARNING)
    raise_on_problems(summaries)
    _warn_about_warehouse_data([s.brand for s in summaries], project_dir, profiles_dir, target)
    if login:
        results = check_connections(settings, brand)
        for result in results:
            typer.echo(f"{result.brand}: {'ok' if result.ok else 'FAILED'}: {result.message}")
        if not all(result.ok for result in results):
            raise typer.Exit(1)


@app.command()
@reports_errors
def run(
    brand: BrandOption = None,
    now: NowOption = None,
    force: Annotated[bool, typer.Option(help="Re-deliver periods already delivered.")] = False,
    dry_run: DryRunOption = False,
    build: Annotated[bool, typer.Option(help="Run `dbt build` first.")] = False,
    parallel: Annotated[int, typer.Option(min=1, max=64, help="Tenants delivered at once.")] = 4,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes sharing the tenants, each delivering --parallel at once "
            "(up to the machine's cores, for thousands of small tenants).",
        ),
    ] = 1,
    shard: Annotated[
        str | None, typer.Option(help="Only the tenants of shard I of N (I/N), by a stable hash.")
    ] = None,
    accept_destination: Annotated[
        bool,
        typer.Option(
            help="Deliver to a tenant's changed destination from now on, continuing after the last "
            "period delivered to the old one."
        ),
    ] = False,
    accept_schedule: Annotated[
        bool,
        typer.Option(
            help="Follow a tenant's changed interval, timezone or run_at from now on, starting where "
            "the last period delivered ended."
        ),
    ] = False,
    adopt: Annotated[
        bool,
        typer.Option(
            help="Record files already on the destination as delivered where their bytes match "
            "(after a lost or new ledger); replace none."
        ),
    ] = False,
    on_failure: Annotated[
        str | None,
        typer.Option(
            help="Command run with a JSON summary on stdin when a tenant fails or is overdue.",
            envvar="ACTIVITY_EXPORT_ON_FAILURE",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a machine-readable summary (docs/schemas/run.schema.json).")
    ] = False,
    config: ConfigOption = Path("tenants.yml"),
    ledger: LedgerOption = None,
    project_dir: ProjectDirOption = Path(),
    profiles_dir: ProfilesDirOption = None,
    target: TargetOption = None,
) -> None:
    """The nightly job: every due, complete, undelivered period of each tenant, oldest first."""
    from activity_export.warehouse import start_loading_postgres

    start_loading_postgres(project_dir, profiles_dir, target)  # while the rest is imported and read
    from activity_export.build import dbt_build
    from activity_export.processes import deliver_in_processes
    from activity_export.report import Progress, run_json
    from activity_export.runs import start_run
    from activity_export.stopping import stop_on_signals
    from activity_export.warehouse import resolve_target

    started = start_run(
        config,
        project_dir=project_dir,
        ledger=ledger,
        brands=brand,
        shard=shard,
        now=now,
        force=force,
        dry_run=dry_run,
        accept_destination=accept_destination,
        accept_schedule=accept_schedule,
        adopt=adopt,
    )
    warehouse_target = resolve_target(project_dir, profiles_dir, target)
    # each period delivered is a line on stderr; a terminal there also gets a bar of tenants done
    progress = Progress(len(started.tenants), interactive=logs.live_bar())
    started.context.on_delivered = progress.delivered
    if logs.live_bar():  # the bytes of a period being written, only where someone watches
        started.context.on_writing = progress.writing
    with stop_on_signals(started.context.stop) as received:
        try:
            if build:  # dbt's own progress on a terminal
                dbt_build(project_dir, profiles_dir, warehouse_target.name, progress=logs.live_bar())
            reports = deliver_in_processes(
                started, warehouse_target, parallel, processes, on_tenant_done=progress.tenant_done
            )
        finally:
            progress.stop()
    if as_json:
        typer.echo(json.dumps(run_json(reports, started.context.now, dry_run=dry_run), indent=2))
    _finish(reports, started.context.now, on_failure, received.exit_code, summary=not as_json)


@app.command()
@reports_errors
def backfill(
    brand: Annotated[str, typer.Option(help="Brand code, as in tenants.yml.")],
    from_: Annotated[str, typer.Option("--from", help="First period (a local date or date-time in it).")],
    to: Annotated[str, typer.Option(help="Last period, included.")],
    dry_run: DryRunOption = False,
    config: ConfigOption = Path("tenants.yml"),
    ledger: LedgerOption = None,
    project_dir: ProjectDirOption = Path(),
    profiles_dir: ProfilesDirOption = None,
    target: TargetOption = None,
) -> None:
    """Re-deliver a range of periods, replacing the files atomically."""
    from activity_export.periods import parse_period, periods_between
    from activity_export.runs import deliver_tenants, start_run
    from activity_export.stopping import stop_on_signals
    from activity_export.warehouse import resolve_target

    started = start_run(config, project_dir=project_dir, ledger=ledger, brands=[brand], dry_run=dry_run)
    [tenant] = started.tenants
    first, last = parse_period(tenant, from_), parse_period(tenant, to)
    if last.start_utc < first.start_utc:
        raise ConfigError(f"backfill: --to {to} is before --from {from_}")
    periods = periods_between(first, last)
    with stop_on_signals(started.context.stop) as received:
        warehouse_target = resolve_target(project_dir, profiles_dir, target)
        reports = deliver_tenants(started, warehouse_target, periods=lambda _: periods)
    _finish(reports, started.context.now, None, received.exit_code)


@app.command()
@reports_errors
def status(
    brand: BrandOption = None,
    now: NowOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Machine-readable output (docs/schemas/status.schema.json).")
    ] = False,
    verify: Annotated[bool, typer.Option(help="Recount delivered periods in the warehouse.")] = False,
    fail_on_problem: Annotated[
        bool, typer.Option("--fail-on-problem", help="Exit 1 when a period is overdue or failed.")
    ] = False,
    config: ConfigOption = Path("tenants.yml"),
    ledger: LedgerOption = None,
    project_dir: ProjectDirOption = Path(),
    profiles_dir: ProfilesDirOption = None,
    target: TargetOption = None,
) -> None:
    """The ledger: what was delivered where, and what is pending, waiting, overdue or failed.

    While the warehouse cannot be read (down, its file missing), what the ledger knows, and one
    line saying so.
    """
    from contextlib import ExitStack

    from activity_export.check import absent_brand_warning, brands_without_data
    from activity_export.config import load_config
    from activity_export.ledger import config_key, ledger_location, open_ledger
    from activity_export.periods import parse_now
    from activity_export.report import problem_tenants, status_json, status_table
    from activity_export.status import collect_status, drifted_periods, read_warehouse
    from activity_export.warehouse import connect, resolve_target

    settings = load_config(config, project_dir)
    tenants = settings.selected(brand)
    moment = parse_now(now) if now else datetime.now(UTC)
    warehouse_target = resolve_target(project_dir, profiles_dir, target)
    unread: str | None = None
    absent: list[str] = []
    with ExitStack() as opened:
        book = opened.enter_context(open_ledger(ledger_location(ledger, config), read_only=True))
        try:
            warehouse = opened.enter_context(connect(warehouse_target))
            seen = read_warehouse(warehouse, tenants)
            absent = brands_without_data(warehouse, [t.brand for t in tenants])
        except ExportError as exc:
            warehouse, seen, unread = None, None, str(exc)
        drift = functools.partial(drifted_periods, warehouse) if verify and warehouse is not None else None
        statuses = collect_status(book, seen, config_key(config), tenants, moment, drift=drift)
    if unread is not None:
        logs.say(
            "the warehouse could not be read, so this is what the ledger knows (no watermark: every "
            f"period owed shows as waiting{'; nothing verified' if verify else ''}): {unread}",
            event="warehouse_not_read",
            level=logging.WARNING,
            error=unread,
        )
    for absent_brand in absent:
        _warn(absent_brand_warning(absent_brand), "brand_without_data", absent_brand)
    if as_json:
        typer.echo(json.dumps(status_json(statuses, moment, unread), indent=2))
    else:
        typer.echo(status_table(statuses, verified=verify and unread is None))
    failing = verify and (unread is not None or any(s.drift for s in statuses))
    problems = problem_tenants(statuses) if fail_on_problem else []
    if problems:
        logs.say(
            f"overdue or failed periods: {'; '.join(problems)}",
            event="status_problem",
            level=logging.ERROR,
            tenants=[status.brand for status in statuses if status.overdue or status.failed],
        )
    if failing or problems:
        raise typer.Exit(1)


@app.command()
@reports_errors
def prune(
    brand: BrandOption = None,
    now: NowOption = None,
    dry_run: DryRunOption = False,
    config: ConfigOption = Path("tenants.yml"),
    project_dir: ProjectDirOption = Path(),
) -> None:
    """On destinations with retention_days, delete this product's own files older than that."""
    from activity_export.check import raise_on_collisions
    from activity_export.config import load_config
    from activity_export.periods import parse_now
    from activity_export.prune import prune_tenant

    settings = load_config(config, project_dir)
    raise_on_collisions(settings)  # one tenant's prune must never delete another's files
    tenants = settings.selected(brand)
    moment = parse_now(now) if now else datetime.now(UTC)
    if not any(getattr(t.destination, "retention_days", None) for t in tenants):
        typer.echo(
            f"nothing to prune: no {'selected ' if brand else ''}tenant in {config} has "
            "destination.retention_days, so every file is kept (set retention_days on an sftp or s3 "
            "destination to delete this product's files older than that many days)"
        )
        return
    failed = False
    for tenant in tenants:
        try:
            report = prune_tenant(tenant, moment, dry_run=dry_run)
        except ExportError as exc:
            if isinstance(exc, ConfigError):
                raise
            logs.say(
                f"tenant {tenant.brand}: {exc}",
                event="tenant_failed",
                level=logging.ERROR,
                brand=tenant.brand,
                outcome="failed",
                error=str(exc),
            )
            failed = True
            continue
        verb = "would delete" if dry_run else "deleted"
        for path in report.deleted:
            typer.echo(f"{tenant.brand}: {verb} {path}")
        if report.destination:
            typer.echo(f"{tenant.brand}: {verb} {len(report.deleted)} files on {report.destination}")
    if failed:
        raise typer.Exit(1)


def _finish(
    reports: list[TenantReport],
    moment: datetime,
    on_failure: str | None,
    signal_exit: int | None,
    *,
    summary: bool = True,
) -> None:
    """Print the summary, notify about every failed or overdue tenant, exit with the right code."""
    from activity_export.report import run_summary
    from activity_export.runs import call_on_failure, exit_code, say_problems

    if summary:
        typer.echo(run_summary(reports))
    say_problems(reports)
    if on_failure:
        for problem in call_on_failure(on_failure, reports, moment):
            logs.say(problem, event="notification_failed", level=logging.WARNING)
    code = exit_code(reports, signal_exit)
    if code:
        raise typer.Exit(code)


def _warn_about_warehouse_data(
    brands: list[str], project_dir: Path, profiles_dir: Path | None, target: str | None
) -> None:
    """``check``: a warning per brand the warehouse has no data for and per brand with
    quarantined events, when the warehouse can be read at all."""
    from activity_export.check import (
        absent_brand_warning,
        brands_without_data,
        quarantine_warning,
        quarantined_brands,
    )
    from activity_export.warehouse import connect, resolve_target

    try:
        with connect(resolve_target(project_dir, profiles_dir, target)) as warehouse:
            absent = brands_without_data(warehouse, brands)
            quarantined = quarantined_brands(warehouse, brands)
    except ExportError as exc:
        logs.say(
            f"note: brand codes not checked against the warehouse: {exc}",
            event="warehouse_not_read",
            error=str(exc),
        )
        return
    for brand in absent:
        _warn(absent_brand_warning(brand), "brand_without_data", brand)
    for brand, quarantine in quarantined.items():
        _warn(quarantine_warning(brand, quarantine), "events_quarantined", brand)


def _warn(warning: str, event: str, brand: str) -> None:
    """A warning ``check`` words (``warning: tenant B: ...``) as a console line of its own."""
    logs.say(warning.removeprefix("warning: "), event=event, level=logging.WARNING, brand=brand)


def _plan(brands: str, days: int, events_per_day: int, start: str, seed: int) -> generator.Plan:
    from activity_export import generate as generator

    return generator.plan_from_options(brands, days, events_per_day, start, seed)


# Commands that leave no database file of their own to close (DuckDB checkpoints a file it wrote
# when its connection closes; `generate` and `demo` write one): once one of them has ended, the
# process ends without the interpreter's tear-down (``main``).
ENDS_AT_ONCE = {"run", "backfill", "export", "status", "check", "prune"}
_ended: dict[str, bool] = {"at_once": False}


def main() -> None:
    """Console-script entry point.

    After a command of ``ENDS_AT_ONCE`` the process ends as soon as the command has: every other
    thread joined, the exit handlers run (the SSH connections closed, logging flushed), stdout
    and stderr flushed, then ``os._exit``. That skips only the interpreter freeing every module
    and object one by one, which took 0.2-0.3 s after each run on PostgreSQL, on memory the
    operating system takes back anyway. Tests call ``app`` and keep the usual ending.
    """
    try:
        app()
    except SystemExit as exc:
        if not _ended["at_once"]:
            raise
        _exit_now(exc.code)


def _exit_now(code: object) -> NoReturn:
    import atexit
    import os
    import sys
    import threading

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # as Python reports SystemExit("message")
        print(code, file=sys.stderr)
        status = 1
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe: what Python's own ending reports as 120
        status = status or 120
    os._exit(status)
