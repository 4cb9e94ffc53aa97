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

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

from activity_export import failpoints, logs
from activity_export.config import Tenant
from activity_export.destinations import Destination, Follower, open_destination
from activity_export.encryption import require_recipients
from activity_export.errors import ExportError
from activity_export.ledger import (
    DestinationChanged,
    Record,
    ScheduleChanged,
    TenantEntry,
    TenantLedger,
)
from activity_export.naming import MANIFEST
from activity_export.notify import GIVE_UP_AFTER, Webhook, announce, resend
from activity_export.periods import Period
from activity_export.plan import (
    Overdue,
    Plan,
    anchor_period,
    kinds_of,
    names_taken,
    plan_periods,
    schedule_of,
)
from activity_export.warehouse import Warehouse, period_counts, read_watermarks
from activity_export.workdir import workdir
from activity_export.writer import WrittenFile, restate_delivered, write_period

log = logging.getLogger(__name__)


class Interrupted(ExportError):
    """The run was asked to stop (SIGINT or SIGTERM) and stopped at a safe point."""


@dataclass
class Context:
    """What every tenant of one command shares: the configuration's name in the ledger, the
    clock, what the command asks for, and the run's stop flag."""

    config: str  # ledger.config_key() of the configuration file
    now: datetime
    force: bool = False
    dry_run: bool = False
    accept_destination: bool = False
    accept_schedule: bool = False
    adopt: bool = False  # files already on the destination with the same bytes count as delivered
    stop: threading.Event = field(default_factory=threading.Event)
    on_delivered: Callable[[str, Delivered], None] | None = None
    # (brand, period label, kind, bytes written so far) while a period's files are written
    on_writing: Callable[[str, str, str, int], None] | None = None

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

    def line(self, brand: str) -> str:
        """The period for people: ``BRANDNAAM 2026-11-02: 1,234 activities, ...``."""
        return (
            f"{brand} {self.period.label}: "
            f"{self.rows('activity'):,} activities, {self.rows('broadcast'):,} broadcasts, "
            f"{self.bytes:,} bytes in {self.seconds:.1f}s"
        )


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
    failed_period: str | None = None  # the period the failure happened in, if in one
    exit_code: int = 0  # 1 failed or overdue, 2 configuration
    interrupted: bool = False
    # failed with every tenant of the run, before any began: the warehouse could not be read
    with_the_run: bool = False

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
    folder: Path,
    ledger: TenantLedger,
    *,
    force: bool = False,
    context: Context | None = None,
) -> Delivered:
    """Write one period's files and publish them; the local copies are removed afterwards.

    Files the ledger holds as delivered are not sent again (unless ``force``), and a file a crashed
    run left as ``uploading`` whose final name already holds a file with the recorded SHA-256 is
    marked delivered without a second upload.
    """
    started = time.monotonic()
    previous = ledger.period_records(period.start_utc)

    adopt = context is not None and context.adopt and not force

    def follow(kind: str, growing: Path, relative: PurePosixPath) -> Follower | None:
        record = previous.get(kind)  # a file the ledger knows is not uploaded again as it is written
        streams = force or (record is None and not adopt)  # adopting compares before publishing
        return destination.follow(growing, relative) if streams else None

    watch = context.on_writing if context is not None else None

    def on_bytes(kind: str, size: int) -> None:
        if watch is not None:
            watch(tenant.brand, period.label, kind, size)

    try:
        files = write_period(
            warehouse, tenant, period, folder, follow=follow, on_bytes=on_bytes if watch else None
        )
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
            if written.kind == MANIFEST and record and _keeps_manifest(record, previous, files, destination):
                # the data it describes did not change: the manifest the receiver has stays as it is
                if record.status != "delivered":
                    ledger.delivered(written.kind, period.start_utc, record.remote_path or "")
                locations.append(record.remote_path or "")
                continue
            unknown = record is None or record.status == "failed"  # not sent by this ledger
            there = destination.sha256(written.relative) if adopt and unknown else None
            if there is not None:
                if there != written.sha256:
                    raise ExportError(
                        f"{written.relative} is already on {destination.describe()} with other "
                        "content; --adopt replaces nothing: compare the two, and remove the file "
                        "there to have it delivered again, or set `start:` after its period"
                    )
                log.info("%s already on %s with the same SHA-256: adopted", written.relative,
                         destination.describe())  # fmt: skip
                ledger.uploading(written.kind, period.start_utc, period.end_utc, period.label,
                                 str(written.relative), written.rows, written.bytes, there)  # fmt: skip
                ledger.delivered(written.kind, period.start_utc, str(written.relative))
                locations.append(str(written.relative))
                continue
            if (
                record
                and _began_publishing(record)
                and record.status != "delivered"
                and record.sha256 == written.sha256
                and destination.sha256(written.relative) == written.sha256
            ):
                log.info(
                    "%s already on %s with the same SHA-256 (found after an interrupted run)",
                    written.relative,
                    destination.describe(),
                )
                ledger.delivered(written.kind, period.start_utc, record.remote_path or "")
                locations.append(record.remote_path or "")
                continue
            ledger.claim.check()  # a run that lost the tenant to another publishes nothing more
            ledger.uploading(
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
                ) or destination.publish(written.path, written.relative, replace=force)
                log.info(
                    "delivered %s: %d rows, %d bytes",
                    location,
                    written.rows,
                    written.bytes,
                    extra={
                        "event": "file_delivered",
                        "fields": {"path": location, "rows": written.rows, "bytes": written.bytes},
                    },
                )
            failpoints.hit("after-upload")
            ledger.delivered(written.kind, period.start_utc, location)
            locations.append(location)
    finally:
        destination.discard_staged()
        for written in files:
            written.path.unlink(missing_ok=True)
    return Delivered(period, files, locations, time.monotonic() - started)


def export_period(warehouse: Warehouse, tenant: Tenant, period: Period, out: Path) -> list[WrittenFile]:
    """``export``: write one period's files and place them under ``out`` as a local destination
    would, with the tenant's ``file_mode`` (and its folder mode for new folders) whatever the umask;
    no ledger. The files are written in a private work folder first, so no copy of them is ever
    readable by others, not even while it is written."""
    from activity_export.config import LocalDestination
    from activity_export.destinations.local import LocalFolder

    folder_out = LocalFolder(LocalDestination(type="local", root=out), tenant.file_mode_bits)
    placed = []
    with workdir(tenant.brand) as folder:
        for written in write_period(warehouse, tenant, period, folder):
            final = Path(folder_out.publish(written.path, written.relative))
            placed.append(dataclasses.replace(written, path=final))
    return placed


def deliver_tenant(
    warehouse: Warehouse,
    tenant: Tenant,
    periods: list[Period],
    ledger: TenantLedger,
    context: Context,
    *,
    force: bool = False,
    webhook: Webhook | None = None,
    guard: bool = False,
) -> TenantReport:
    """Deliver the given periods of one tenant, oldest first, over one destination connection.

    Stops at the first failure, so periods always arrive in order; the error (never a secret) is
    recorded in the report and the ledger. With ``guard`` (nothing delivered by this ledger yet),
    files of the first period already on the destination stop the tenant: a lost or new ledger
    must not publish again what the receiver has.
    """
    report = TenantReport(tenant)
    if not periods:
        return report
    current: Period | None = periods[0]  # a failure to connect is this period's failed attempt
    attempt = 0
    failpoints.watch(context.stop)
    webhook = webhook or (Webhook(tenant.notify) if tenant.notify else None)
    try:
        context.check_stop()
        require_recipients(tenant)  # a key check refuses is a configuration error here too
        with open_destination(tenant.destination, tenant.brand, tenant.file_mode_bits) as destination:
            report.destination = destination.describe()
            if guard:
                _refuse_files_already_there(tenant, periods[0], destination, ledger)
            with workdir(tenant.brand) as folder:
                for current in periods:
                    context.check_stop()
                    attempt = ledger.start_attempt(current.start_utc, current.label)
                    with logs.context(period=current.label):
                        delivered = deliver_period(
                            warehouse, tenant, current, destination, folder, ledger,
                            force=force, context=context,
                        )  # fmt: skip
                        logs.say(
                            delivered.line(tenant.brand),
                            event="period_delivered",
                            outcome="delivered",
                            rows=sum(f.rows for f in delivered.files),
                            bytes=delivered.bytes,
                            seconds=round(delivered.seconds, 3),
                        )
                    ledger.finish_attempt(attempt, "delivered")
                    _record_counts(warehouse, ledger, current)
                    attempt = 0
                    report.delivered.append(delivered)
                    if context.on_delivered:
                        context.on_delivered(tenant.brand, delivered)
                    current = None
                    _announce(tenant, ledger, webhook, "delivered", delivered.period, delivered.files)
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
        report.failed_period = current.label
        # at the moment it happens; the run's end says it once more per tenant (tenant_failed)
        log.error(
            "tenant %s %s: %s",
            tenant.brand,
            "stopped" if report.interrupted else "failed",
            report.error,
            extra={
                "event": "period_interrupted" if report.interrupted else "period_failed",
                "period": current.label,
                "fields": {
                    "outcome": "interrupted" if report.interrupted else "failed",
                    "error": report.error,
                },
            },
        )
        if report.interrupted:
            if attempt:
                ledger.finish_attempt(attempt, "interrupted", report.error)
        else:
            ledger.failed(current.start_utc, current.end_utc, current.label, report.error)
            attempt = attempt or ledger.start_attempt(current.start_utc, current.label)
            ledger.finish_attempt(attempt, "failed", report.error)
            _announce(tenant, ledger, webhook, "failed", current, [], report.error)
    return report


def _announce(
    tenant: Tenant,
    ledger: TenantLedger,
    webhook: Webhook | None,
    event: str,
    period: Period,
    files: list[WrittenFile],
    error: str | None = None,
) -> bool | None:
    """Send the period's webhook event, if the tenant has a webhook, and keep it in the ledger
    (pending when not accepted); whether the webhook accepted it (None: no webhook)."""
    sent = announce(tenant, webhook, event, period, files, error)
    if sent is None:
        return None
    heard, body = sent
    ledger.record_webhook_event(
        period.label,
        event,
        heard.delivery_id,
        body,
        ok=heard.ok,
        attempts=heard.attempts,
        detail=heard.detail,
    )
    return heard.ok


def _resend_pending(tenant: Tenant, ledger: TenantLedger, webhook: Webhook, now: datetime) -> None:
    """Send the events earlier runs could not deliver again, oldest first, each with its own id;
    an event still not accepted a week after it was first sent is given up (and stays in
    ``status``)."""
    for kept in ledger.pending_webhooks():
        if now - kept.created_at > GIVE_UP_AFTER:
            detail = f"given up: not accepted within {GIVE_UP_AFTER.days} days"
            log.warning("tenant %s: %s event for %s %s", tenant.brand, kept.event, kept.period_label, detail)
            ledger.update_webhook(kept.delivery_id, ok=False, pending=False, attempts=0, detail=detail)
            continue
        heard = resend(webhook, tenant.brand, kept.delivery_id, kept.event, kept.period_label, kept.body)
        ledger.update_webhook(
            kept.delivery_id, ok=heard.ok, pending=not heard.ok, attempts=heard.attempts, detail=heard.detail
        )


def _record_counts(warehouse: Warehouse, ledger: TenantLedger, period: Period) -> None:
    """Remember how many of a delivered period's rows came late and how many were held back."""
    try:
        counts = period_counts(warehouse, ledger.book.brand, period.start_utc, period.end_utc)
    except ExportError as exc:  # the files are delivered; only the statistics are missing
        log.warning(
            "tenant %s: late and held rows of %s not counted: %s", ledger.book.brand, period.label, exc
        )
        return
    ledger.record_counts(period.start_utc, period.label, counts.late, counts.held)


def plan_and_deliver(
    warehouse: Warehouse,
    tenant: Tenant,
    complete_until: datetime | None,
    chosen: list[Period] | None,
    context: Context,
    ledger: TenantLedger,
    *,
    skipped: str | None = None,
) -> TenantReport:
    """Check the destination, plan from the ledger, and deliver (or say what would be delivered).

    ``chosen`` periods (``backfill``) are re-delivered when complete; without them, every due,
    complete and undelivered period since the tenant's anchor, oldest first. A tenant ``skipped``
    (another run holds it) is only planned, from a read-only ledger: what it is owed still turns
    overdue and fails the run.
    """
    book = ledger.book
    try:
        entry = _recorded(tenant, ledger, context)
    except (DestinationChanged, ScheduleChanged) as exc:
        report = TenantReport(tenant)
        report.fail(str(exc))
        return report
    guard = False  # nothing delivered by this ledger yet: files already there were not ours to send
    if chosen is not None:
        ready = [p for p in chosen if complete_until is not None and p.end_utc <= complete_until]
        plan = Plan(chosen[0], ready, [p for p in chosen if p not in ready])
        force = True
        if entry is not None:
            _say_what_backfill_skips(tenant, chosen[0], entry, ledger, context, complete_until)
    else:
        anchor = _anchor(tenant, entry, ledger, context)
        if entry is None and tenant.start is None:
            # a brand whose rows have not arrived yet: the warehouse's newest data is the reference
            reference = complete_until or _newest_data(warehouse)
            if reference is not None and anchor.start_utc >= reference:
                report = TenantReport(tenant)
                report.fail(_clock_ahead(anchor, reference, context.now, own=complete_until is not None))
                return report
        if entry is None and not context.dry_run:
            # the ledger may know an earlier one (rows migrated from the previous version)
            entry = ledger.ledger.register(book, anchor.start_utc)
            ledger.ledger.record_schedule(book, schedule_of(tenant))
            anchor = anchor_period(tenant, entry.first_period, context.now)
        plan = plan_periods(
            tenant,
            anchor,
            context.now,
            complete_until,
            delivered := ledger.delivered_starts(kinds_of(tenant)),
            force=context.force,
        )
        force = context.force
        guard = not delivered and not force and not context.adopt
    webhook = Webhook(tenant.notify) if tenant.notify else None
    if context.dry_run or skipped:
        planned = [] if skipped else plan.ready
        report = TenantReport(tenant, waiting=plan.waiting, planned=planned, already=plan.delivered)
        report.skipped = skipped
    else:
        ledger.interrupt_unfinished()
        if webhook is not None:
            _resend_pending(tenant, ledger, webhook, context.now)
        report = deliver_tenant(
            warehouse, tenant, plan.ready, ledger, context, force=force, webhook=webhook, guard=guard
        )
        report.already, report.waiting = plan.delivered, plan.waiting
    if chosen is None:
        # a dry run counts what it would deliver as delivered: only what stays owed is overdue
        delivered_now = {d.period for d in report.delivered} | set(report.planned)
        report.overdue = plan.overdue(tenant, context.now, delivered_now)
        if report.overdue:
            report.exit_code = max(report.exit_code, 1)
        # loud, again at every run; a tenant that failed has announced that already
        for overdue in [] if context.dry_run or skipped or report.failed else report.overdue:
            problem = f"not delivered {overdue.hours:.1f}h after it became due ({overdue.due.isoformat()})"
            _announce(tenant, ledger, webhook, "overdue", overdue.period, [], problem)
    return report


def _recorded(tenant: Tenant, ledger: TenantLedger, context: Context) -> TenantEntry | None:
    """The tenant as the ledger knows it, once its destination and schedule are the configured
    ones: a change is ``DestinationChanged`` or ``ScheduleChanged`` until the run accepts it."""
    book = ledger.book
    entry = ledger.ledger.tenant(book.config, book.brand)
    if entry is None:
        return None
    if entry.destination != book.destination:
        if not context.accept_destination or context.dry_run:
            raise DestinationChanged(tenant.brand, entry.destination, book.destination)
        entry = ledger.ledger.accept_destination(book)
        log.warning(
            "tenant %s: now delivering to %s (accepted; was %s)",
            tenant.brand,
            book.destination,
            entry.accepted_from,
        )
    schedule = schedule_of(tenant)
    if entry.schedule is None:  # recorded before schedules were: the current one is taken as it
        return entry if context.dry_run else ledger.ledger.record_schedule(book, schedule)
    if entry.schedule != schedule:
        if not context.accept_schedule or context.dry_run:
            raise ScheduleChanged(tenant.brand, entry.schedule, schedule)
        previous = entry.schedule
        entry = ledger.ledger.accept_schedule(book, schedule)
        log.warning(
            "tenant %s: now on the schedule %s from %s (accepted; was %s)",
            tenant.brand,
            schedule,
            entry.schedule_from.isoformat() if entry.schedule_from else "its first period",
            previous,
        )
    return entry


def _names_taken(tenant: Tenant, ledger: TenantLedger) -> Callable[[Period], bool]:
    """Whether a period's files would have the name of a file delivered to the tenant before."""
    records = ledger.ledger.records(ledger.book)
    return names_taken(tenant, {r.remote_path for r in records if r.status == "delivered" and r.remote_path})


def _refuse_files_already_there(
    tenant: Tenant, period: Period, destination: Destination, ledger: TenantLedger
) -> None:
    """Stop a tenant this ledger has delivered nothing for when the destination already holds the
    files of its first period: the ledger was lost, emptied or is new beside an old one. A file the
    ledger began to publish (a run killed, or failed later, after the upload) is its own, and
    resumed as usual."""
    known = ledger.period_records(period.start_utc)
    for kind in tenant.delivered_kinds():
        if kind in known and _began_publishing(known[kind]):
            continue
        relative = tenant.relative_path(kind, period)
        if destination.exists(relative):
            raise ExportError(
                f"{relative} is already on {destination.describe()}, but this ledger has no delivery "
                "for the tenant (a lost, emptied or new ledger?). Nothing is published again over "
                f"what the receiver has: run `activity-export run --brand {tenant.brand} --adopt` to "
                "record the files already there as delivered where their bytes match, or set "
                "`start:` to the first period the receiver does not have yet"
            )


def _anchor(tenant: Tenant, entry: TenantEntry | None, ledger: TenantLedger, context: Context) -> Period:
    """The tenant's first owed period, from what the ledger knows of it."""
    return anchor_period(
        tenant,
        entry.first_period if entry else None,
        context.now,
        moved=bool(entry and entry.accepted_at),
        schedule_from=entry.schedule_from if entry else None,
        taken=_names_taken(tenant, ledger) if entry and entry.schedule_from else lambda p: False,
    )


def _say_what_backfill_skips(
    tenant: Tenant,
    first: Period,
    entry: TenantEntry,
    ledger: TenantLedger,
    context: Context,
    complete_until: datetime | None,
) -> None:
    """Warn when a backfill delivers ``first`` ahead of earlier due periods never delivered: the
    receiver gets a later file before an earlier one (``run`` delivers those, oldest first)."""
    owed = plan_periods(
        tenant,
        _anchor(tenant, entry, ledger, context),
        context.now,
        complete_until,
        ledger.delivered_starts(kinds_of(tenant)),
        force=False,
    )
    earlier = [p.label for p in [*owed.ready, *owed.waiting] if p.start_utc < first.start_utc]
    if earlier:
        shown = ", ".join(earlier[:5]) + (f" and {len(earlier) - 5} more" if len(earlier) > 5 else "")
        log.warning(
            "tenant %s: backfill delivers %s ahead of %d earlier period(s) never delivered (%s); "
            "`activity-export run` delivers those, oldest first",
            tenant.brand,
            first.label,
            len(earlier),
            shown,
            extra={"event": "backfill_skips_ahead"},
        )


def _began_publishing(record: Record) -> bool:
    """Whether this ledger began to publish the record's file: it holds the file's SHA-256, which a
    later failure of the period (``failed``) keeps."""
    return record.status in ("uploading", "delivered") or bool(record.sha256)


def _newest_data(warehouse: Warehouse) -> datetime | None:
    """How far the most complete brand's data reaches, or None for a warehouse without any."""
    reached = [w.complete_until for w in read_watermarks(warehouse).values() if w.complete_until]
    return max(reached, default=None)


def _clock_ahead(anchor: Period, complete_until: datetime, now: datetime, *, own: bool) -> str:
    data = (
        "the brand's data is complete"
        if own
        else "the brand has no data yet, and the newest data in the warehouse is complete"
    )
    return (
        f"first run without `start`: the clock says {now.isoformat()}, so the first period would be "
        f"{anchor.label}, but {data} only up to {complete_until.isoformat()}; "
        "every period in between would never be delivered. Check the clock (or --now), or set "
        "`start:` to the first period the receiver needs"
    )


def _keeps_manifest(
    record: Record, previous: dict[str, Record], files: list[WrittenFile], destination: Destination
) -> bool:
    """Whether a period's manifest already on the destination stays: every data file came out with
    the bytes recorded before, so only facts of the moment (the watermark, held rows) would differ.
    A manifest left ``uploading`` by an interrupted run counts when the destination holds it."""
    same_data = all(
        (known := previous.get(f.kind)) is not None and known.sha256 == f.sha256
        for f in files
        if f.kind != MANIFEST
    )
    if not same_data or not record.sha256:
        return False
    if record.status == "delivered":
        return True
    relative = next(f.relative for f in files if f.kind == MANIFEST)
    return record.status == "uploading" and destination.sha256(relative) == record.sha256
