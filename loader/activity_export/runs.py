"""A run: the work of ``run``, ``backfill`` and ``demo`` over their tenants.

What every run does the same way lives here, once: load the configuration and refuse colliding
tenants, select (and shard) the tenants, fix the clock, open (create, migrate) the ledger once and
remove work folders a killed run left behind; then each tenant under its lock, ``parallel`` at a
time, with one tenant's failure stopping no other; and the exit-code policy. ``deliver`` does the
work for one tenant.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from activity_export import logs
from activity_export.check import raise_on_collisions
from activity_export.config import Tenant, load_config
from activity_export.deliver import Context, Interrupted, TenantReport, plan_and_deliver
from activity_export.errors import ExportError
from activity_export.ledger import (
    Book,
    Location,
    RunLedgers,
    TenantLedger,
    config_key,
    ledger_location,
    lock_holder,
    open_ledger,
    tenant_lock,
)
from activity_export.periods import Period, parse_now
from activity_export.shards import parse_shard, shard_of
from activity_export.warehouse import (
    DUCKDB_THREADS,
    DUCKDB_THREADS_SIDE_BY_SIDE,
    Target,
    Warehouse,
    connect,
    read_watermarks,
)
from activity_export.workdir import remove_stale_workdirs

log = logging.getLogger(__name__)


@dataclass
class Run:
    """One command's tenants, ledger and shared context."""

    tenants: list[Tenant]
    location: Location
    context: Context
    ledgers: RunLedgers = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.ledgers = RunLedgers(self.location)


def start_run(
    config: Path,
    *,
    project_dir: Path = Path(),
    ledger: str | Path | None = None,
    brands: list[str] | None = None,
    shard: str | None = None,
    now: str | datetime | None = None,
    force: bool = False,
    dry_run: bool = False,
    accept_destination: bool = False,
    accept_schedule: bool = False,
    adopt: bool = False,
) -> Run:
    """Everything before the first tenant: configuration, tenants, clock, ledger, work folders.

    Bad configuration or a ledger that cannot be opened is one error here, before any work.
    """
    settings = load_config(config, project_dir)
    raise_on_collisions(settings)
    tenants = settings.selected(brands)
    if shard:
        index, count = parse_shard(shard)
        tenants = [tenant for tenant in tenants if shard_of(tenant.brand, count) == index]
    moment = now if isinstance(now, datetime) else parse_now(now) if now else datetime.now(UTC)
    location = ledger_location(ledger, config)
    if not dry_run:
        # one clear error if it cannot be opened; created and migrated before tenants run in parallel
        open_ledger(location).close()
        remove_stale_workdirs()
    context = Context(
        config_key(config),
        moment,
        force=force,
        dry_run=dry_run,
        accept_destination=accept_destination,
        accept_schedule=accept_schedule,
        adopt=adopt,
    )
    return Run(tenants, location, context)


Job = Callable[[Warehouse, Tenant, datetime | None], TenantReport]


def deliver_tenants(
    run: Run,
    target: Target,
    parallel: int = 1,
    periods: Callable[[Tenant], list[Period]] | None = None,
    on_tenant_done: Callable[[str], None] | None = None,
) -> list[TenantReport]:
    """Every tenant's report: its due periods (or ``periods(tenant)``, re-delivered) delivered
    under its lock; a warehouse that cannot be read fails every tenant, loudly."""

    def job(warehouse: Warehouse, tenant: Tenant, complete_until: datetime | None) -> TenantReport:
        try:
            return deliver_one(run, warehouse, tenant, complete_until, periods(tenant) if periods else None)
        finally:
            if on_tenant_done:
                on_tenant_done(tenant.brand)

    try:
        run.context.check_stop()
        return each_tenant(target, run.tenants, parallel, job)
    except ExportError as exc:
        reports = []
        for tenant in run.tenants:
            report = TenantReport(tenant, interrupted=isinstance(exc, Interrupted), with_the_run=True)
            report.fail(str(exc), exc.exit_code)
            reports.append(report)
        return reports
    finally:
        run.ledgers.close()


def deliver_one(
    run: Run,
    warehouse: Warehouse,
    tenant: Tenant,
    complete_until: datetime | None,
    chosen: list[Period] | None = None,
) -> TenantReport:
    """One tenant under its lock: check the destination, plan, and deliver (or say what would be).

    A dry run reads the ledger; it takes no lock and creates no file.
    """
    book = Book(run.context.config, tenant.brand, tenant.destination.key)
    if run.context.dry_run:
        with open_ledger(run.location, read_only=True) as ledger:
            return plan_and_deliver(
                warehouse, tenant, complete_until, chosen, run.context, TenantLedger(ledger, book)
            )
    with tenant_lock(run.location, tenant.brand) as claim:
        if claim is None:
            holder = lock_holder(run.location, tenant.brand)
            skipped = f"another run ({holder}) is delivering this tenant; skipped"
            log.warning("tenant %s: %s", tenant.brand, skipped)
            with open_ledger(run.location, read_only=True) as ledger:
                reading = dataclasses.replace(run.context, dry_run=True)  # another run writes
                return plan_and_deliver(
                    warehouse, tenant, complete_until, chosen, reading, TenantLedger(ledger, book),
                    skipped=skipped,
                )  # fmt: skip
        with run.ledgers.open() as ledger:
            return plan_and_deliver(
                warehouse, tenant, complete_until, chosen, run.context, TenantLedger(ledger, book, claim)
            )


def each_tenant(target: Target, tenants: list[Tenant], parallel: int, job: Job) -> list[TenantReport]:
    """Run ``job`` for every tenant, ``parallel`` at a time; one tenant's failure stops no other."""
    threads = DUCKDB_THREADS_SIDE_BY_SIDE if parallel > 1 and len(tenants) > 1 else DUCKDB_THREADS
    with connect(target, threads=threads) as warehouse:
        watermarks = read_watermarks(warehouse)

        def guarded(tenant: Tenant) -> TenantReport:
            cursor = warehouse.cursor()
            found = watermarks.get(tenant.brand)
            try:
                # a brand absent from the data has no watermark: its periods wait (and turn overdue)
                with logs.context(brand=tenant.brand):
                    return job(cursor, tenant, found.complete_until if found else None)
            except ExportError as exc:
                report = TenantReport(tenant)
                report.fail(str(exc), exc.exit_code)
                return report
            except Exception as exc:
                log.debug("tenant %s: unexpected error", tenant.brand, exc_info=True)
                report = TenantReport(tenant)
                report.fail(f"unexpected error: {type(exc).__name__}: {exc}")
                return report
            finally:
                cursor.close()

        with ThreadPoolExecutor(max_workers=parallel) as pool:
            return list(pool.map(guarded, tenants))


@dataclass(frozen=True)
class Problem:
    """A failed tenant or an overdue period: one line for people, and its facts for a log."""

    message: str
    event: str
    brand: str | None = None
    period: str | None = None
    fields: dict[str, object] = field(default_factory=dict)


def problems(reports: list[TenantReport]) -> list[Problem]:
    """One per failed tenant and per overdue period; a failure of the whole run (the warehouse
    could not be read) is one, naming the tenants it stopped."""
    found = []
    together = [report for report in reports if report.failed and report.with_the_run]
    if together:
        brands = ", ".join(report.tenant.brand for report in together[:10])
        brands += f" and {len(together) - 10} more" if len(together) > 10 else ""
        what = "stopped" if together[0].interrupted else "warehouse not read"
        found.append(
            Problem(
                f"{what}, no tenant delivered ({brands}): {together[0].error}",
                "run_interrupted" if together[0].interrupted else "run_failed",
                fields={
                    "tenants": [report.tenant.brand for report in together],
                    "outcome": "interrupted" if together[0].interrupted else "failed",
                    "error": together[0].error,
                },
            )
        )
    for report in reports:
        brand = report.tenant.brand
        if report.failed and not report.with_the_run:
            found.append(
                Problem(
                    f"tenant {brand}: {report.error}",
                    "tenant_interrupted" if report.interrupted else "tenant_failed",
                    brand,
                    report.failed_period,
                    {"outcome": "interrupted" if report.interrupted else "failed", "error": report.error},
                )
            )
        for overdue in report.overdue:
            found.append(
                Problem(
                    f"tenant {brand}: period {overdue.period.label} is overdue: "
                    f"due {overdue.due.isoformat()}, not delivered {overdue.hours:.1f}h later",
                    "period_overdue",
                    brand,
                    overdue.period.label,
                    {
                        "outcome": "overdue",
                        "due_at": overdue.due.isoformat(),
                        "hours_overdue": round(overdue.hours, 1),
                    },
                )
            )
    return found


def say_problems(reports: list[TenantReport]) -> None:
    """Each problem on stderr: an ``error:`` line, or a JSON object with its event and facts."""
    for problem in problems(reports):
        logs.say(
            problem.message,
            event=problem.event,
            level=logging.ERROR,
            brand=problem.brand,
            period=problem.period,
            **problem.fields,
        )


def exit_code(reports: list[TenantReport], signal_exit: int | None = None) -> int:
    """0 when all went well; 1 a tenant failed or is overdue; 2 configuration; a signal's own code."""
    if signal_exit is not None:
        return signal_exit
    return max((report.exit_code for report in reports), default=0)


def call_on_failure(command: str, reports: list[TenantReport], now: datetime) -> list[str]:
    """Run ``--on-failure`` once per failed or overdue tenant; the problems calling it met."""
    from activity_export.report import failure_payload, notify

    found = []
    for report in reports:
        if report.failed or report.overdue:
            problem = notify(command, failure_payload(report, now))
            if problem:
                found.append(problem)
    return found
