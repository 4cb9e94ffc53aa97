"""Retention: delete this product's own files whose period is older than ``retention_days``.

A file is only ever deleted when its name matches the tenant's own file-name template (brand, kind,
extension and suffixes included; see ``naming.period_of_name``) and the period read from that name,
not the file's modification time, is older than the retention. Anything else on the server is left
alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from activity_export.config import LocalDestination, Tenant
from activity_export.destinations import open_destination
from activity_export.naming import delivered_kinds, folders_between, period_of_name
from activity_export.periods import period_containing

log = logging.getLogger(__name__)


@dataclass
class PruneReport:
    tenant: Tenant
    destination: str = ""
    deleted: list[str] = field(default_factory=list)
    error: str | None = None


def expired(tenant: Tenant, kind: str, name: str, cutoff: datetime) -> bool:
    """Whether ``name`` is one of the tenant's files of ``kind`` for a period ending before ``cutoff``."""
    period = period_of_name(tenant, kind, name)
    return period is not None and period.end_utc <= cutoff


LOOK_BACK = timedelta(days=400)  # folders of periods this far before the cutoff are searched


def prune_tenant(tenant: Tenant, now: datetime, *, dry_run: bool) -> PruneReport:
    """Delete (or list, with ``dry_run``) the tenant's files older than its retention."""
    report = PruneReport(tenant)
    destination_config = tenant.destination
    if isinstance(destination_config, LocalDestination) or destination_config.retention_days is None:
        return report
    cutoff = now - timedelta(days=destination_config.retention_days)
    first = period_containing(tenant, cutoff - LOOK_BACK)
    with open_destination(destination_config, tenant.brand) as destination:
        report.destination = destination.describe()
        for kind in delivered_kinds(tenant):
            for folder in folders_between(tenant, kind, first, cutoff):
                for name in destination.list_files(folder):
                    if not expired(tenant, kind, name, cutoff):
                        continue
                    relative = folder / name
                    if not dry_run:
                        destination.delete(relative)
                    report.deleted.append(str(relative))
    return report
