"""Retention: delete this product's own files whose period is older than ``retention_days``.

A file is only ever deleted when its name matches the tenant's own file-name template (brand, kind,
extension and compression suffix included) and the period read from that name, not the file's
modification time, is older than the retention. Anything else on the server is left alone.
"""

from __future__ import annotations

import logging
import re
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import PurePosixPath

from activity_export.config import COMPRESSION_SUFFIX, KINDS, SftpDestination, Tenant
from activity_export.destinations import open_destination
from activity_export.periods import Period, period_containing

log = logging.getLogger(__name__)

# strftime directives a period format may use, and what they look like in a name
DIRECTIVES = {
    "Y": r"\d{4}",
    "y": r"\d{2}",
    "m": r"\d{2}",
    "d": r"\d{2}",
    "H": r"\d{2}",
    "M": r"\d{2}",
    "j": r"\d{3}",
    "V": r"\d{2}",
    "G": r"\d{4}",
    "u": r"\d",
    "%": "%",
}


@dataclass
class PruneReport:
    tenant: Tenant
    destination: str = ""
    deleted: list[str] = field(default_factory=list)
    error: str | None = None


def _name_pattern(tenant: Tenant, kind: str) -> tuple[re.Pattern[str], str] | None:
    """A regex for the tenant's file names of one kind, and the period's strftime format."""
    pattern, period_format = "", None
    for literal, name, spec, _ in string.Formatter().parse(tenant.name_template):
        pattern += re.escape(literal)
        if name is None:
            continue
        if name == "period":
            period_format = spec or "%Y-%m-%d %H:%M:%S"
            pattern += f"(?P<period>{_format_regex(period_format)})"
        else:
            value = {
                "brand": tenant.brand,
                "kind": kind,
                "extension": "json" if kind == "manifest" else tenant.extension,
            }[name]
            pattern += re.escape(value)
    if period_format is None:
        return None
    suffix = "" if kind == "manifest" else COMPRESSION_SUFFIX[tenant.compression]
    return re.compile(pattern + re.escape(suffix) + r"\Z"), period_format


def _format_regex(period_format: str) -> str:
    """A regex for what ``strftime(period_format)`` produces."""
    regex, index = "", 0
    while index < len(period_format):
        if period_format[index] == "%" and index + 1 < len(period_format):
            regex += DIRECTIVES.get(period_format[index + 1], ".+?")
            index += 2
        else:
            regex += re.escape(period_format[index])
            index += 1
    return regex


def _folders(tenant: Tenant, kind: str, first: Period, cutoff: datetime) -> list[PurePosixPath]:
    """Every folder the tenant's folder template gives for periods between ``first`` and ``cutoff``."""
    folders: dict[str, PurePosixPath] = {}
    period = first
    while period.start_utc < cutoff:
        relative = tenant.manifest_path(period) if kind == "manifest" else tenant.relative_path(kind, period)
        folders.setdefault(str(relative.parent), relative.parent)
        period = period.next()
    return list(folders.values())


def expired(tenant: Tenant, kind: str, name: str, cutoff: datetime) -> bool:
    """Whether ``name`` is one of the tenant's files of ``kind`` for a period ending before ``cutoff``."""
    compiled = _name_pattern(tenant, kind)
    if compiled is None:
        return False
    pattern, period_format = compiled
    match = pattern.match(name)
    if not match:
        return False
    try:
        start = datetime.strptime(match.group("period"), period_format)
    except ValueError:
        return False
    period = period_containing(tenant, start)
    if period.start_local.replace(tzinfo=None) != start:  # not a period start: not our name
        return False
    return period.end_utc <= cutoff


LOOK_BACK = timedelta(days=400)  # folders of periods this far before the cutoff are searched


def prune_tenant(tenant: Tenant, now: datetime, dry_run: bool) -> PruneReport:
    """Delete (or list, with ``dry_run``) the tenant's files older than its retention."""
    report = PruneReport(tenant)
    destination_config = tenant.destination
    if not isinstance(destination_config, SftpDestination) or destination_config.retention_days is None:
        return report
    cutoff = now - timedelta(days=destination_config.retention_days)
    first = period_containing(tenant, cutoff - LOOK_BACK)
    kinds = [*KINDS, "manifest"] if tenant.manifest else list(KINDS)
    with open_destination(destination_config, tenant.brand) as destination:
        report.destination = destination.describe()
        for kind in kinds:
            for folder in _folders(tenant, kind, first, cutoff):
                for name in destination.list_files(folder):  # type: ignore[attr-defined]
                    if not expired(tenant, kind, name, cutoff):
                        continue
                    relative = folder / name
                    if not dry_run:
                        destination.delete(relative)  # type: ignore[attr-defined]
                    report.deleted.append(str(relative))
    return report
