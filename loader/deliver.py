"""Delivery: write a period's files to a work folder, then publish them to the tenant's destination.

The data files go first and the manifest last, so a receiver that waits for the manifest never
reads a file that is not complete.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from loader.config import Tenant
from loader.destinations import Destination, open_destination
from loader.periods import Period, due_periods
from loader.warehouse import Warehouse
from loader.writer import WrittenFile, write_period

log = logging.getLogger(__name__)


@dataclass
class Delivered:
    """One period delivered: its files and where they went."""

    period: Period
    files: list[WrittenFile]
    locations: list[str]

    def rows(self, kind: str) -> int:
        return sum(f.rows for f in self.files if f.kind == kind)


@dataclass
class TenantReport:
    """What happened to one tenant in a run."""

    tenant: Tenant
    destination: str = ""
    delivered: list[Delivered] = field(default_factory=list)
    waiting: list[Period] = field(default_factory=list)
    error: str | None = None


def deliver_period(
    warehouse: Warehouse, tenant: Tenant, period: Period, destination: Destination, workdir: Path
) -> Delivered:
    """Write one period's files and publish them; the local copies are removed afterwards."""
    files = write_period(warehouse, tenant, period, workdir)
    try:
        locations = [destination.publish(written.path, written.relative) for written in files]
    finally:
        for written in files:
            written.path.unlink(missing_ok=True)
    return Delivered(period, files, locations)


def deliver_due(
    warehouse: Warehouse, tenant: Tenant, now: datetime, watermark: datetime | None
) -> TenantReport:
    """Deliver every due period of a tenant whose data is complete, oldest first."""
    ready, waiting = due_periods(tenant, tenant.start, now, watermark)
    report = TenantReport(tenant, waiting=waiting)
    with open_destination(tenant.destination, tenant.brand) as destination:
        report.destination = destination.describe()
        with tempfile.TemporaryDirectory(prefix=f"activity-export-{tenant.brand}-") as work:
            for period in ready:
                report.delivered.append(
                    deliver_period(warehouse, tenant, period, destination, Path(work))
                )
    return report
