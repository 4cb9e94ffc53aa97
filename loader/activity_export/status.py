"""Status: what the ledger says was delivered, what is still due, and drift against the warehouse.

``collect_status`` reads the ledger and the schedule for ``status``; with ``--verify`` it also
recounts every delivered period in the warehouse (``drifted_periods``) and reports the periods
whose row counts changed after delivery. Rendering is in ``report``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from activity_export.config import Tenant
from activity_export.ledger import Ledger, Record
from activity_export.notify import webhook_status
from activity_export.periods import due_periods, period_containing
from activity_export.warehouse import Warehouse, one_value, read_watermark
from activity_export.writer import activity_query, broadcast_query


@dataclass
class TenantStatus:
    """One tenant's line in ``status``."""

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
    webhook: dict[str, object] | None = None  # the last notification, when the tenant has one

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


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
    ledger: Ledger, warehouse: Warehouse, tenants: list[Tenant], now: datetime, *, verify: bool
) -> list[TenantStatus]:
    """Per tenant: the ledger's deliveries, and the due periods still pending or waiting."""
    watermark = read_watermark(warehouse)
    statuses = []
    for tenant in tenants:
        records = ledger.records(tenant.brand)
        ready, waiting = due_periods(tenant, tenant.start, now, watermark)
        delivered = {r.period_start for r in records if r.status == "delivered"}
        pending = [p.label for p in ready if p.start_utc.isoformat() not in delivered]
        drift = drifted_periods(warehouse, tenant, records) if verify else []
        status = tenant_status(
            tenant.brand,
            tenant.destination.describe(),
            records,
            pending,
            [p.label for p in waiting],
            drift,
        )
        heard = webhook_status(ledger.path, tenant.brand) if tenant.notify else None
        status.webhook = dict(heard.__dict__) if heard else None
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
