"""Drift: recount delivered periods in the warehouse and compare with what the ledger recorded."""

from __future__ import annotations

from datetime import datetime

from loader.config import Tenant
from loader.ledger import Record
from loader.periods import period_containing
from loader.warehouse import Warehouse
from loader.writer import activity_query, broadcast_query


def drifted_periods(warehouse: Warehouse, tenant: Tenant, records: list[Record]) -> list[str]:
    """Labels of delivered periods whose row counts in the warehouse differ from the files sent."""
    drift = []
    delivered = [r for r in records if r.status == "delivered" and r.kind in ("activity", "broadcast")]
    for record in delivered:
        period = period_containing(tenant, datetime.fromisoformat(record.period_start))
        query = (activity_query if record.kind == "activity" else broadcast_query)(warehouse, tenant, period)
        count = warehouse.con.execute(f"select count(*) from ({query})").fetchone()[0]
        if count != record.rows:
            drift.append(f"{record.period_label} {record.kind} {record.rows}->{count}")
    return drift
