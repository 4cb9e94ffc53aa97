"""Drift: recount delivered periods in the warehouse and compare with what the ledger recorded."""

from __future__ import annotations

from datetime import datetime

from activity_export.config import Tenant
from activity_export.ledger import Record
from activity_export.periods import period_containing
from activity_export.warehouse import Warehouse, one_value
from activity_export.writer import activity_query, broadcast_query


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
