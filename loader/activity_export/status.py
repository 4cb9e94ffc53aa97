"""Status: what the ledger says was delivered, what is still due, and drift against the warehouse.

``read_warehouse`` reads what ``status`` needs of the warehouse in one go (watermarks, held and
quarantined events), so that a warehouse that cannot be read is known before anything is shown;
``collect_status`` puts it beside the ledger and the schedule, or shows the ledger alone (no
watermark: every period owed waits). With ``--verify`` it also recounts every delivered period in
the warehouse (``drifted_periods``) and reports the periods whose row counts changed after
delivery. Rendering is in ``report``; ``TenantStatus.as_dict`` keeps every list of periods at
``LIST_LIMIT``, so that ``status --json`` stays small for a tenant owed or delivered for years.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from activity_export.config import Tenant
from activity_export.ledger import Book, DestinationChanged, Ledger, Record, ScheduleChanged
from activity_export.periods import period_containing
from activity_export.plan import anchor_period, kinds_of, names_taken, plan_periods, schedule_of
from activity_export.warehouse import (
    BrandWatermark,
    HeldEvent,
    Quarantine,
    Warehouse,
    one_value,
    read_held_events,
    read_quarantines,
    read_watermarks,
)
from activity_export.writer import activity_query, broadcast_query

LIST_LIMIT = 100  # periods per list in status --json; <list>_more counts the rest
OVERDUE_WARNINGS = 3  # overdue periods a tenant's warnings name one by one; one more line counts the rest


@dataclass(frozen=True)
class WarehouseView:
    """What ``status`` reads from the warehouse, per brand."""

    watermarks: dict[str, BrandWatermark]
    held: dict[str, list[HeldEvent]]
    quarantined: dict[str, Quarantine]


def read_warehouse(warehouse: Warehouse, tenants: list[Tenant]) -> WarehouseView:
    """The tenants' watermarks, held and quarantined events; ExportError when it cannot be read."""
    watermarks = read_watermarks(warehouse)
    held = {
        tenant.brand: read_held_events(warehouse, tenant.brand)
        for tenant in tenants
        if (found := watermarks.get(tenant.brand)) is not None and found.held_events
    }
    every_brand = read_quarantines(warehouse)  # one query, however many tenants
    quarantined = {
        tenant.brand: quarantine
        for tenant in tenants
        if (quarantine := every_brand.get(tenant.brand)) is not None and quarantine.events
    }
    return WarehouseView(watermarks, held, quarantined)


@dataclass
class TenantStatus:
    """One tenant's line in ``status`` (``status --json`` prints ``as_dict()``)."""

    brand: str
    destination: str
    last_delivered: str | None
    delivered_periods: int
    pending: list[str]
    waiting: list[str]
    failed: list[str]
    rows: int
    bytes: int
    drift: list[str]
    first_period: str | None = None  # the first period owed (start, or the first run's)
    overdue: list[dict[str, object]] = field(default_factory=list)
    destination_changed: str | None = None  # the recorded destination, when the config differs
    watermark: str | None = None  # up to where the brand's data is complete (UTC)
    late_rows: int = 0  # over all delivered periods
    held_rows: int = 0
    counts: list[dict[str, object]] = field(default_factory=list)  # per delivered period
    held: dict[str, object] | None = None  # what holds the brand's watermark back, if anything
    quarantined: dict[str, object] | None = None  # events dated after the build's clock, if any
    warnings: list[str] = field(default_factory=list)
    webhook: dict[str, object] | None = None  # the last notification, when the tenant has one

    def as_dict(self) -> dict[str, object]:
        """The tenant in ``status --json``: each list of periods at most ``LIST_LIMIT`` long, the
        oldest owed (as ``run`` delivers them) and the latest ``counts``, with ``<list>_more``
        saying how many were left out."""
        entry = dict(self.__dict__)
        for name in ("pending", "waiting", "failed", "overdue", "drift"):
            whole = getattr(self, name)
            entry[name], entry[f"{name}_more"] = whole[:LIST_LIMIT], max(0, len(whole) - LIST_LIMIT)
        entry["counts"] = self.counts[-LIST_LIMIT:]
        entry["counts_more"] = max(0, len(self.counts) - LIST_LIMIT)
        return entry


def tenant_status(
    brand: str,
    destination: str,
    records: list[Record],
    pending: list[str],
    waiting: list[str],
    drift: list[str],
) -> TenantStatus:
    delivered = [r for r in records if r.status == "delivered" and r.kind != "manifest"]
    periods = sorted({r.period_start: r.period_label for r in delivered}.items())
    failed = sorted({r.period_label for r in records if r.status in ("failed", "uploading")})
    return TenantStatus(
        brand=brand,
        destination=destination,
        last_delivered=periods[-1][1] if periods else None,
        delivered_periods=len(periods),
        pending=pending,
        waiting=waiting,
        failed=failed,
        rows=sum(r.rows or 0 for r in delivered),
        bytes=sum(r.bytes or 0 for r in delivered),
        drift=drift,
    )


def collect_status(
    ledger: Ledger,
    seen: WarehouseView | None,
    config: str,
    tenants: list[Tenant],
    now: datetime,
    *,
    drift: Callable[[Tenant, list[Record]], list[str]] | None = None,
) -> list[TenantStatus]:
    """Per tenant: the ledger's deliveries, and the due periods still pending, waiting or overdue.

    ``seen`` is what the warehouse says (``read_warehouse``); without it (the warehouse could not
    be read), no period is known to be complete: every one owed is waiting, and the ledger and the
    clock still say which are overdue or failed. ``drift`` recounts a tenant's delivered periods
    (``--verify``). A tenant whose destination changed is shown against the destination the ledger
    holds (what has been delivered where), with a warning.
    """
    statuses = []
    for tenant in tenants:
        found = seen.watermarks.get(tenant.brand) if seen is not None else None
        watermark = found.complete_until if found else None
        configured = tenant.destination.key
        entry = ledger.tenant(config, tenant.brand)
        book = Book(config, tenant.brand, entry.destination if entry else configured)
        records = ledger.records(book)
        anchor = anchor_period(
            tenant,
            entry.first_period if entry else None,
            now,
            moved=bool(entry and entry.accepted_at),
            schedule_from=entry.schedule_from if entry else None,
            taken=names_taken(
                tenant, {r.remote_path for r in records if r.status == "delivered" and r.remote_path}
            ),
        )
        plan = plan_periods(tenant, anchor, now, watermark, ledger.delivered_starts(book, kinds_of(tenant)))
        status = tenant_status(
            tenant.brand,
            tenant.destination.describe(),
            records,
            [p.label for p in plan.ready],
            [p.label for p in plan.waiting],
            drift(tenant, records) if drift is not None else [],
        )
        heard = ledger.webhook_status(config, tenant.brand) if tenant.notify else None
        status.webhook = dict(heard.__dict__) if heard else None
        status.first_period = anchor.label
        status.watermark = watermark.isoformat() if watermark else None
        status.overdue = [o.as_dict() for o in plan.overdue(tenant, now, set())]
        counts = ledger.counts(book)
        status.counts = [
            {"period": c.period_label, "late_rows": c.late_rows, "held_rows": c.held_rows} for c in counts
        ]
        status.late_rows = sum(c.late_rows or 0 for c in counts)
        status.held_rows = sum(c.held_rows or 0 for c in counts)
        if found is not None and found.held_events and seen is not None:
            held = seen.held.get(tenant.brand, [])
            status.held = {
                "events": found.held_events,
                "since": found.held_since.isoformat() if found.held_since else None,
                "examples": [
                    {
                        "event_id": event.event_id,
                        "broadcast_id": event.broadcast_id,
                        "customer_id": event.customer_id,
                        "registered_at": event.registered_at.isoformat(),
                        "missing": event.missing,
                    }
                    for event in held
                ],
            }
            shown = ", ".join(f"{event.event_id} (no {event.missing})" for event in held[:5])
            status.warnings.append(
                f"held back since {status.held['since']} by {found.held_events} e-mail event(s) whose "
                f"broadcast or customer row has not arrived, e.g. event {shown}; have the platform "
                "load the missing rows, then `dbt build` releases the brand"
            )
        quarantine = seen.quarantined.get(tenant.brand) if seen is not None else None
        if quarantine is not None:
            latest = quarantine.latest.isoformat() if quarantine.latest else None
            status.quarantined = {"events": quarantine.events, "latest": latest}
            status.warnings.append(
                f"{quarantine.events} e-mail event(s) quarantined: registered or loaded after the "
                f"clock of the build that read them (the latest at {latest}); they move no "
                "watermark and are delivered once their time has come; a wrong clock upstream"
            )
        if entry is not None and entry.destination != configured:
            status.destination_changed = entry.destination
            status.warnings.append(str(DestinationChanged(tenant.brand, entry.destination, configured)))
        if entry is not None and entry.schedule not in (None, schedule_of(tenant)):
            status.warnings.append(
                str(ScheduleChanged(tenant.brand, str(entry.schedule), schedule_of(tenant)))
            )
        complete = status.watermark or (
            "unknown (the warehouse was not read)" if seen is None else "nothing yet"
        )
        for overdue in status.overdue[:OVERDUE_WARNINGS]:
            status.warnings.append(
                f"period {overdue['period']} is OVERDUE: due {overdue['due_at']}, "
                f"{overdue['hours_overdue']}h ago (overdue after {tenant.overdue_after_hours:g}h); "
                f"data complete up to {complete}"
            )
        if len(status.overdue) > OVERDUE_WARNINGS:
            status.warnings.append(
                f"and {len(status.overdue) - OVERDUE_WARNINGS} more periods OVERDUE, up to "
                f"{status.overdue[-1]['period']}"
            )
        statuses.append(status)
    return statuses


def drifted_periods(warehouse: Warehouse, tenant: Tenant, records: list[Record]) -> list[str]:
    """Labels of delivered periods whose row counts in the warehouse differ from the files sent."""
    drift = []
    delivered = [r for r in records if r.status == "delivered" and r.kind in ("activity", "broadcast")]
    for record in delivered:
        period = period_containing(tenant, datetime.fromisoformat(record.period_start))
        query = (activity_query if record.kind == "activity" else broadcast_query)(warehouse, tenant, period)
        count = one_value(warehouse.con.execute(f"select count(*) from ({query})").fetchone())  # noqa: S608
        if count != record.rows:
            drift.append(f"{record.period_label} {record.kind} {record.rows}->{count}")
    return drift
