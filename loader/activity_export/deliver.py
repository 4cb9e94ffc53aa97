"""Delivery: for each tenant, write each period's files, publish them, and record every step.

The order within a period is always: activity file, broadcast file, manifest last, so a receiver
that waits for the manifest never reads a file that is not complete. Each file is recorded in the
ledger as ``uploading`` before it is published and ``delivered`` after, so a crash anywhere leaves a
state the next run finishes without delivering a file twice or losing one.

Every failure inside a tenant, expected or not, is that tenant's failure: recorded in its report
and the ledger, while the other tenants go on. A stop request (SIGINT, SIGTERM: ``Context.stop``)
is honoured between files: the file being published is finished and recorded, nothing after it
starts, and the attempt is recorded as interrupted.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

from activity_export import failpoints, logs
from activity_export.config import Tenant
from activity_export.destinations import Destination, Follower, open_destination
from activity_export.errors import ExportError
from activity_export.ledger import Book, Ledger, RunLedgers, destination_key, tenant_lock
from activity_export.notify import announce
from activity_export.periods import Period
from activity_export.plan import Overdue, Plan, anchor_period, kinds_of, plan_periods
from activity_export.warehouse import (
    DUCKDB_THREADS,
    DUCKDB_THREADS_SIDE_BY_SIDE,
    Target,
    Warehouse,
    connect,
    period_counts,
    read_watermarks,
)
from activity_export.writer import WrittenFile, restate_delivered, write_period

log = logging.getLogger(__name__)

WORKDIR_PREFIX = "activity-export."


class Interrupted(ExportError):
    """The run was asked to stop (SIGINT or SIGTERM) and stopped at a safe point."""


@dataclass
class Context:
    """What every tenant of one command shares."""

    config: str  # ledger.config_key() of the configuration file
    ledger_path: Path | None
    now: datetime
    force: bool = False
    dry_run: bool = False
    accept_destination: bool = False
    stop: threading.Event = field(default_factory=threading.Event)
    on_delivered: Callable[[str, Delivered], None] | None = None
    ledgers: RunLedgers | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self.ledgers = RunLedgers(self.ledger_path) if self.ledger_path is not None else None

    def close(self) -> None:
        """Close what the tenants shared (the ledger connection)."""
        if self.ledgers is not None:
            self.ledgers.close()

    def check_stop(self) -> None:
        """Raise ``Interrupted`` when a stop was requested: called only at safe points."""
        if self.stop.is_set():
            raise Interrupted("interrupted: the run was asked to stop")


@dataclass
class Delivered:
    """One period delivered: its files and where they went."""

    period: Period
    files: list[WrittenFile]
    locations: list[str]
    seconds: float = 0.0

    def rows(self, kind: str) -> int:
        return sum(f.rows for f in self.files if f.kind == kind)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)


@dataclass
class TenantReport:
    """What happened to one tenant in a run."""

    tenant: Tenant
    destination: str = ""
    delivered: list[Delivered] = field(default_factory=list)
    already: int = 0  # due periods the ledger already holds as delivered
    waiting: list[Period] = field(default_factory=list)
    planned: list[Period] = field(default_factory=list)  # --dry-run
    overdue: list[Overdue] = field(default_factory=list)
    skipped: str | None = None  # e.g. locked by another run
    error: str | None = None
    exit_code: int = 0  # 1 failed or overdue, 2 configuration
    interrupted: bool = False

    @property
    def failed(self) -> bool:
        return self.error is not None

    def fail(self, error: str, exit_code: int = 1) -> None:
        self.error = error
        self.exit_code = max(self.exit_code, exit_code)


def deliver_period(
    warehouse: Warehouse,
    tenant: Tenant,
    period: Period,
    destination: Destination,
    workdir: Path,
    ledger: Ledger | None = None,
    book: Book | None = None,
    *,
    force: bool = False,
    context: Context | None = None,
) -> Delivered:
    """Write one period's files and publish them; the local copies are removed afterwards.

    With a ledger, files already delivered are not sent again (unless ``force``), and a file a
    crashed run left as ``uploading`` whose final name already holds a file with the recorded
    SHA-256 is marked delivered without a second upload.
    """
    started = time.monotonic()
    previous = ledger.period_records(book, period.start_utc) if ledger and book else {}

    def follow(kind: str, growing: Path, relative: PurePosixPath) -> Follower | None:
        record = previous.get(kind)  # a file the ledger knows is not uploaded again as it is written
        return destination.follow(growing, relative) if force or record is None else None

    try:
        files = write_period(warehouse, tenant, period, workdir, follow=follow)
    except BaseException:
        destination.discard_staged()
        raise
    failpoints.hit("after-write")
    if not force:  # the manifest describes what is on the destination, also for files sent before
        files = restate_delivered(
            files,
            {
                kind: (record.rows or 0, record.bytes or 0, record.sha256 or "")
                for kind, record in previous.items()
                if record.status == "delivered" and kind != "manifest"
            },
        )
    locations = []
    try:
        for written in files:
            if context:
                context.check_stop()
            record = previous.get(written.kind)
            if record and record.status == "delivered" and not force:
                locations.append(record.remote_path or "")
                continue
            if (
                ledger
                and book
                and record
                and record.status == "uploading"
                and record.sha256 == written.sha256
                and destination.sha256(written.relative) == written.sha256
            ):
                log.info(
                    "%s already on %s with the same SHA-256 (found after an interrupted run)",
                    written.relative,
                    destination.describe(),
                )
                ledger.delivered(book, written.kind, period.start_utc, record.remote_path or "")
                locations.append(record.remote_path or "")
                continue
            if ledger and book:
                ledger.uploading(
                    book,
                    written.kind,
                    period.start_utc,
                    period.end_utc,
                    period.label,
                    str(written.relative),
                    written.rows,
                    written.bytes,
                    written.sha256,
                )
            with logs.context(kind=written.kind):
                location = destination.publish_staged(
                    written.relative, written.bytes, written.sha256
                ) or destination.publish(written.path, written.relative)
                log.info(
                    "delivered %s: %d rows, %d bytes",
                    location,
                    written.rows,
                    written.bytes,
                    extra={"event": "file_delivered"},
                )
            failpoints.hit("after-upload")
            if ledger and book:
                ledger.delivered(book, written.kind, period.start_utc, location)
            locations.append(location)
    finally:
        destination.discard_staged()
        for written in files:
            written.path.unlink(missing_ok=True)
    return Delivered(period, files, locations, time.monotonic() - started)


def deliver_tenant(
    warehouse: Warehouse,
    tenant: Tenant,
    periods: list[Period],
    ledger: Ledger | None,
    book: Book | None,
    context: Context,
    *,
    force: bool = False,
) -> TenantReport:
    """Deliver the given periods of one tenant, oldest first, over one destination connection.

    Stops at the first failure, so periods always arrive in order; the error (never a secret) is
    recorded in the report and the ledger.
    """
    report = TenantReport(tenant)
    if not periods:
        return report
    current: Period | None = periods[0]  # a failure to connect is this period's failed attempt
    attempt = 0
    failpoints.watch(context.stop)
    webhook_retries: int | None = None  # after a webhook failure in this run: no more retries
    try:
        context.check_stop()
        with open_destination(tenant.destination, tenant.brand, tenant.file_mode_bits) as destination:
            report.destination = destination.describe()
            with _workdir(tenant.brand) as work:
                for current in periods:
                    context.check_stop()
                    attempt = (
                        ledger.start_attempt(book, current.start_utc, current.label) if ledger and book else 0
                    )
                    with logs.context(period=current.label):
                        delivered = deliver_period(
                            warehouse,
                            tenant,
                            current,
                            destination,
                            work,
                            ledger,
                            book,
                            force=force,
                            context=context,
                        )
                        log.info(
                            "delivered period %s of %s",
                            current.label,
                            tenant.brand,
                            extra={"event": "period_delivered"},
                        )
                    if ledger and book:
                        ledger.finish_attempt(attempt, "delivered")
                        _record_counts(warehouse, ledger, book, current)
                    attempt = 0
                    report.delivered.append(delivered)
                    if context.on_delivered:
                        context.on_delivered(tenant.brand, delivered)
                    current = None
                    heard = announce(tenant, "delivered", delivered.period, delivered.files, None,
                                     ledger.path if ledger else None, webhook_retries)  # fmt: skip
                    webhook_retries = 0 if heard and not heard.ok else webhook_retries
    except Interrupted as exc:
        report.interrupted = True
        report.fail(str(exc))
    except ExportError as exc:
        report.fail(str(exc), exc.exit_code)
    except OSError as exc:  # a local disk problem while writing or copying
        report.fail(f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        log.debug("tenant %s: unexpected error", tenant.brand, exc_info=True)
        report.fail(f"unexpected error: {type(exc).__name__}: {exc}")
    if report.error and current:
        report.error = f"period {current.label}: {report.error}"
        log.error(
            "tenant %s %s: %s",
            tenant.brand,
            "stopped" if report.interrupted else "failed",
            report.error,
            extra={
                "event": "tenant_interrupted" if report.interrupted else "tenant_failed",
                "period": current.label,
            },
        )
        if ledger and book:
            if report.interrupted:
                if attempt:
                    ledger.finish_attempt(attempt, "interrupted", report.error)
            else:
                ledger.failed(book, current.start_utc, current.end_utc, current.label, report.error)
                attempt = attempt or ledger.start_attempt(book, current.start_utc, current.label)
                ledger.finish_attempt(attempt, "failed", report.error)
        if not report.interrupted:
            announce(
                tenant, "failed", current, [], report.error, ledger.path if ledger else None, webhook_retries
            )
    return report


def _record_counts(warehouse: Warehouse, ledger: Ledger, book: Book, period: Period) -> None:
    """Remember how many of a delivered period's rows came late and how many were held back."""
    try:
        counts = period_counts(warehouse, book.brand, period.start_utc, period.end_utc)
    except ExportError as exc:  # the files are delivered; only the statistics are missing
        log.warning("tenant %s: late and held rows of %s not counted: %s", book.brand, period.label, exc)
        return
    ledger.record_counts(book, period.start_utc, period.label, counts.late, counts.held)


class _workdir:
    """A private temporary folder for one tenant's files, removed however the block ends.

    Its name carries the process id, so a later run can remove what a killed run left behind
    (``remove_stale_workdirs``): those files hold e-mail addresses.
    """

    def __init__(self, brand: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}.{brand[:40]}."))

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def remove_stale_workdirs() -> list[Path]:
    """Remove temporary folders of runs that no longer exist (killed with SIGKILL, power loss)."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        parts = folder.name.split(".")
        if len(parts) < 4 or not parts[1].isdigit() or not folder.is_dir():
            continue
        pid = int(parts[1])
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
        log.info("removed %s, left by an earlier run that did not finish", folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def destination_changed_message(tenant: Tenant, recorded: str, configured: str) -> str:
    return (
        f"destination changed: deliveries so far went to {recorded}, the configuration now says "
        f"{configured}. Nothing is delivered until you decide: to deliver to the new destination "
        f"from the period after the last one delivered to the old one, run `activity-export run "
        f"--brand {tenant.brand} --accept-destination` (send earlier periods there with "
        "`backfill`); to keep the old destination, change the configuration back."
    )


def run_tenant(
    warehouse: Warehouse,
    tenant: Tenant,
    complete_until: datetime | None,
    context: Context,
) -> TenantReport:
    """The nightly job for one tenant: every due, complete and undelivered period, oldest first."""
    return _locked(warehouse, tenant, complete_until, None, context)


def backfill_tenant(
    warehouse: Warehouse,
    tenant: Tenant,
    periods: list[Period],
    complete_until: datetime | None,
    context: Context,
) -> TenantReport:
    """Re-deliver a range of periods (replacing files atomically); incomplete ones wait."""
    return _locked(warehouse, tenant, complete_until, periods, context)


def _locked(
    warehouse: Warehouse,
    tenant: Tenant,
    complete_until: datetime | None,
    chosen: list[Period] | None,
    context: Context,
) -> TenantReport:
    """Under the tenant's lock: check the destination, plan, and deliver (or say what would be)."""
    book = Book(context.config, tenant.brand, destination_key(tenant.destination))
    if context.ledger_path is None:  # the demo: no ledger, every due period from the anchor
        plan = plan_periods(
            tenant, anchor_period(tenant, None, context.now), context.now, complete_until, set()
        )
        report = deliver_tenant(warehouse, tenant, plan.ready, None, None, context)
        report.waiting = plan.waiting
        return report
    if context.dry_run:  # reads the ledger; takes no lock and creates no file
        with Ledger(context.ledger_path, read_only=True) as ledger:
            return _with_ledger(warehouse, tenant, complete_until, chosen, context, ledger, book)
    with tenant_lock(context.ledger_path, tenant.brand) as acquired:
        if not acquired:
            report = TenantReport(tenant)
            report.skipped = "another run is delivering this tenant; skipped"
            log.warning("tenant %s: %s", tenant.brand, report.skipped)
            return report
        assert context.ledgers is not None
        with context.ledgers.open() as ledger:
            return _with_ledger(warehouse, tenant, complete_until, chosen, context, ledger, book)


def _with_ledger(
    warehouse: Warehouse,
    tenant: Tenant,
    complete_until: datetime | None,
    chosen: list[Period] | None,
    context: Context,
    ledger: Ledger,
    book: Book,
) -> TenantReport:
    """Check the destination, plan from the ledger, and deliver (or say what would be delivered)."""
    entry = ledger.tenant(book.config, book.brand)
    if entry is not None and entry.destination != book.destination:
        if not context.accept_destination or context.dry_run:
            report = TenantReport(tenant)
            report.fail(destination_changed_message(tenant, entry.destination, book.destination))
            return report
        entry = ledger.accept_destination(book)
        log.warning(
            "tenant %s: now delivering to %s (accepted; was %s)",
            tenant.brand,
            book.destination,
            entry.accepted_from,
        )
    if chosen is not None:
        ready = [p for p in chosen if complete_until is not None and p.end_utc <= complete_until]
        plan = Plan(chosen[0], ready, [p for p in chosen if p not in ready])
        force = True
    else:
        anchor = anchor_period(
            tenant,
            entry.first_period if entry else None,
            context.now,
            moved=bool(entry and entry.accepted_at),
        )
        if entry is None and not context.dry_run:
            # the ledger may know an earlier one (rows migrated from the previous version)
            entry = ledger.register(book, anchor.start_utc)
            anchor = anchor_period(tenant, entry.first_period, context.now)
        plan = plan_periods(
            tenant,
            anchor,
            context.now,
            complete_until,
            ledger.delivered_starts(book, kinds_of(tenant)),
            force=context.force,
        )
        force = context.force
    if context.dry_run:
        report = TenantReport(tenant, waiting=plan.waiting, planned=plan.ready, already=plan.delivered)
    else:
        ledger.interrupt_unfinished(book)
        report = deliver_tenant(warehouse, tenant, plan.ready, ledger, book, context, force=force)
        report.already, report.waiting = plan.delivered, plan.waiting
    if chosen is None:
        # a dry run counts what it would deliver as delivered: only what stays owed is overdue
        delivered_now = {d.period for d in report.delivered} | set(report.planned)
        report.overdue = plan.overdue(tenant, context.now, delivered_now)
        if report.overdue:
            report.exit_code = max(report.exit_code, 1)
        # loud, again at every run; a tenant that failed has announced that already
        for overdue in [] if context.dry_run or report.failed else report.overdue:
            problem = f"not delivered {overdue.hours:.1f}h after it became due ({overdue.due.isoformat()})"
            announce(tenant, "overdue", overdue.period, [], problem, ledger.path)
    return report


def each_tenant(
    target: Target,
    tenants: list[Tenant],
    parallel: int,
    job: Callable[[Warehouse, Tenant, datetime | None], TenantReport],
) -> list[TenantReport]:
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
