"""Delivery: for each tenant, write each period's files, publish them, and record every step.

The order within a period is always: activity file, broadcast file, manifest last, so a receiver
that waits for the manifest never reads a file that is not complete. Each file is recorded in the
ledger as ``uploading`` before it is published and ``delivered`` after, so a crash anywhere leaves a
state the next run finishes without delivering a file twice or losing one.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

from activity_export import failpoints, logs
from activity_export.config import Tenant
from activity_export.destinations import Destination, Follower, open_destination
from activity_export.errors import ConfigError, ExportError
from activity_export.ledger import Ledger, tenant_lock
from activity_export.notify import announce
from activity_export.periods import Period, due_periods
from activity_export.warehouse import Target, Warehouse, connect, read_watermarks
from activity_export.writer import WrittenFile, restate_delivered, write_period

log = logging.getLogger(__name__)


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
    skipped: str | None = None  # e.g. locked by another run
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


def _kinds(tenant: Tenant) -> list[str]:
    return list(tenant.delivered_kinds())


def deliver_period(
    warehouse: Warehouse,
    tenant: Tenant,
    period: Period,
    destination: Destination,
    workdir: Path,
    ledger: Ledger | None = None,
    *,
    force: bool = False,
) -> Delivered:
    """Write one period's files and publish them; the local copies are removed afterwards.

    With a ledger, files already delivered are not sent again (unless ``force``), and a file a
    crashed run left as ``uploading`` whose final name already holds the recorded bytes is marked
    delivered without a second upload.
    """
    started = time.monotonic()
    previous = ledger.period_records(tenant.brand, period.start_utc) if ledger else {}

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
            record = previous.get(written.kind)
            if record and record.status == "delivered" and not force:
                locations.append(record.remote_path or "")
                continue
            if (
                ledger
                and record
                and record.status == "uploading"
                and record.sha256 == written.sha256
                and destination.size(written.relative) == written.bytes
            ):
                log.info(
                    "%s already on %s (found after an interrupted run)",
                    written.relative,
                    destination.describe(),
                )
                ledger.delivered(tenant.brand, written.kind, period.start_utc, record.remote_path or "")
                locations.append(record.remote_path or "")
                continue
            if ledger:
                ledger.uploading(
                    tenant.brand,
                    written.kind,
                    period.start_utc,
                    period.end_utc,
                    period.label,
                    str(written.relative),
                    destination.describe(),
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
            if ledger:
                ledger.delivered(tenant.brand, written.kind, period.start_utc, location)
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
    *,
    force: bool = False,
    on_delivered: Callable[[str, Delivered], None] | None = None,
) -> TenantReport:
    """Deliver the given periods of one tenant, oldest first, over one destination connection.

    Stops at the first failure, so periods always arrive in order; the error (never a secret) is
    recorded in the report and the ledger.
    """
    report = TenantReport(tenant)
    todo = [
        period
        for period in periods
        if force or ledger is None or not ledger.is_delivered(tenant.brand, period.start_utc, _kinds(tenant))
    ]
    report.already = len(periods) - len(todo)
    if not todo:
        return report
    current: Period | None = todo[0]  # a failure to connect is this period's failed attempt
    attempt = 0
    webhook_retries: int | None = None  # after a webhook failure in this run: no more retries
    try:
        with open_destination(tenant.destination, tenant.brand, tenant.file_mode_bits) as destination:
            report.destination = destination.describe()
            with tempfile.TemporaryDirectory(prefix=f"activity-export-{tenant.brand}-") as work:
                for current in todo:
                    attempt = (
                        ledger.start_attempt(tenant.brand, current.start_utc, current.label) if ledger else 0
                    )
                    with logs.context(period=current.label):
                        delivered = deliver_period(
                            warehouse, tenant, current, destination, Path(work), ledger, force=force
                        )
                        log.info(
                            "delivered period %s of %s",
                            current.label,
                            tenant.brand,
                            extra={"event": "period_delivered"},
                        )
                    if ledger:
                        ledger.finish_attempt(attempt, "delivered")
                    report.delivered.append(delivered)
                    if on_delivered:
                        on_delivered(tenant.brand, delivered)
                    current = None
                    heard = announce(tenant, "delivered", delivered.period, delivered.files, None,
                                     ledger.path if ledger else None, webhook_retries)  # fmt: skip
                    webhook_retries = 0 if heard and not heard.ok else webhook_retries
    except ExportError as exc:
        report.error = str(exc)
    except OSError as exc:  # a local disk problem while writing or copying
        report.error = f"{type(exc).__name__}: {exc}"
    if report.error and current:
        report.error = f"period {current.label}: {report.error}"
        log.error(
            "tenant %s failed: %s",
            tenant.brand,
            report.error,
            extra={"event": "tenant_failed", "period": current.label},
        )
        if ledger:
            ledger.failed(tenant.brand, current.start_utc, current.end_utc, current.label, report.error)
            attempt = attempt or ledger.start_attempt(tenant.brand, current.start_utc, current.label)
            ledger.finish_attempt(attempt, "failed", report.error)
        announce(
            tenant, "failed", current, [], report.error, ledger.path if ledger else None, webhook_retries
        )
    return report


def run_tenant(
    warehouse: Warehouse,
    tenant: Tenant,
    now: datetime,
    watermark: datetime | None,
    ledger_path: Path | None,
    *,
    force: bool = False,
    dry_run: bool = False,
    on_delivered: Callable[[str, Delivered], None] | None = None,
) -> TenantReport:
    """The nightly job for one tenant: every due, complete and undelivered period, oldest first."""
    ready, waiting = due_periods(tenant, tenant.start, now, watermark)
    return _locked(
        warehouse,
        tenant,
        ready,
        waiting,
        ledger_path,
        force=force,
        dry_run=dry_run,
        on_delivered=on_delivered,
    )


def backfill_tenant(
    warehouse: Warehouse,
    tenant: Tenant,
    periods: list[Period],
    watermark: datetime | None,
    ledger_path: Path | None,
    *,
    dry_run: bool = False,
) -> TenantReport:
    """Re-deliver a range of periods (replacing files atomically); incomplete ones wait."""
    ready = [p for p in periods if watermark is not None and p.end_utc <= watermark]
    waiting = [p for p in periods if p not in ready]
    return _locked(
        warehouse, tenant, ready, waiting, ledger_path, force=True, dry_run=dry_run, on_delivered=None
    )


def _locked(
    warehouse: Warehouse,
    tenant: Tenant,
    ready: list[Period],
    waiting: list[Period],
    ledger_path: Path | None,
    *,
    force: bool,
    dry_run: bool,
    on_delivered: Callable[[str, Delivered], None] | None,
) -> TenantReport:
    if ledger_path is None:
        report = deliver_tenant(warehouse, tenant, ready, None, force=force, on_delivered=on_delivered)
        report.waiting = waiting
        return report
    if dry_run:  # reads the ledger; takes no lock and creates no file
        with Ledger(ledger_path, read_only=True) as ledger:
            report = TenantReport(tenant, waiting=waiting)
            report.planned = [
                p
                for p in ready
                if force or not ledger.is_delivered(tenant.brand, p.start_utc, _kinds(tenant))
            ]
            report.already = len(ready) - len(report.planned)
            return report
    with tenant_lock(ledger_path, tenant.brand) as acquired:
        if not acquired:
            report = TenantReport(tenant, waiting=waiting)
            report.skipped = "another run is delivering this tenant; skipped"
            log.warning("tenant %s: %s", tenant.brand, report.skipped)
            return report
        with Ledger(ledger_path) as ledger:
            report = deliver_tenant(warehouse, tenant, ready, ledger, force=force, on_delivered=on_delivered)
            report.waiting = waiting
            return report


def each_tenant(
    target: Target,
    tenants: list[Tenant],
    parallel: int,
    job: Callable[[Warehouse, Tenant, datetime | None], TenantReport],
) -> list[TenantReport]:
    """Run ``job`` for every tenant, ``parallel`` at a time; one tenant's failure stops no other."""
    with connect(target) as warehouse:
        watermarks = read_watermarks(warehouse)

        def guarded(tenant: Tenant) -> TenantReport:
            cursor = warehouse.cursor()
            found = watermarks.get(tenant.brand)
            try:
                with logs.context(brand=tenant.brand):
                    return job(cursor, tenant, found.complete_until if found else None)
            except ExportError as exc:
                if isinstance(exc, ConfigError):
                    raise
                return TenantReport(tenant, error=str(exc))
            finally:
                cursor.close()

        with ThreadPoolExecutor(max_workers=parallel) as pool:
            return list(pool.map(guarded, tenants))
