"""The manifest: a Frictionless Data Package (``datapackage.json`` standard) describing a period.

A receiver validates a delivery with the ``frictionless`` library or CLI, or reads the descriptor
to load the files with the right types: every file is a resource with its path (relative to the
manifest), rows, bytes and SHA-256 of the bytes delivered, format (CSV or Parquet), encoding,
compression, CSV dialect and a Table Schema (types, timestamp format and timezone, allowed values,
descriptions).
The package itself says which brand and period it covers, the watermark at export, how many
rows arrived late or were held back, and the brand's quarantined events (dated after the clock of
the sender's build) at that moment. Nothing in it depends on the clock, so the same period gives
the same bytes.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from activity_export import __version__
from activity_export.config import Tenant
from activity_export.naming import ERASURE

# Changes whenever the files' layout changes (columns, types, formats, this descriptor's own
# properties), so a receiver's loader can refuse a delivery it was not written for.
LAYOUT_VERSION = 1

PROFILE = "tabular-data-package"
# strftime codes, as Table Schema v1 takes them, per ``timestamps`` setting; Python's strptime
# reads "+01:00" and "Z" with %z, so each format parses its text back to the instant (but local)
DATETIME_FORMATS = {
    "local": "%Y-%m-%d %H:%M:%S",
    "offset": "%Y-%m-%d %H:%M:%S%z",
    "utc": "%Y-%m-%dT%H:%M:%S%z",
}
# what the manifest adds to a date's description, per ``timestamps`` setting (and for Parquet)
DATETIME_WORDS = {
    "local": "Local time in {zone}.",
    "offset": "Local time in {zone} with its UTC offset.",
    "utc": "UTC.",
    "parquet": "An instant (timestamp with time zone, stored adjusted to UTC).",
}
ERASED_WORDS = "Empty for an erased customer."
PARQUET_MEDIATYPE = "application/vnd.apache.parquet"
FRICTIONLESS_COMPRESSION = {"none": None, "gzip": "gz", "zstd": "zst"}

TITLES = {
    "activity": "Activity",
    "broadcast": "Broadcasts",
    ERASURE: "Erasures",
}


@dataclass(frozen=True)
class DeliveredFile:
    """What the manifest needs to know of one delivered file."""

    kind: str
    relative: PurePosixPath  # under the destination root
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class PeriodFacts:
    """What the warehouse said about the period when it was exported."""

    watermark: datetime | None  # the brand's watermark: complete up to here (UTC)
    late_rows: int | None = None  # rows in the activity file registered before the period started
    held_rows: int | None = None  # events registered in the period still held (row not arrived)
    # the brand's events quarantined (registered or loaded after the clock of the build that read
    # them) and the latest time among them: of the brand, not of the period
    quarantined_events: int | None = None
    quarantined_latest: datetime | None = None


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _quarantined(facts: PeriodFacts) -> dict[str, Any] | None:
    """``{"events": n, "latest": UTC time or null}``, or None when the warehouse could not tell."""
    if facts.quarantined_events is None:
        return None
    latest = _utc(facts.quarantined_latest) if facts.quarantined_latest else None
    return {"events": facts.quarantined_events, "latest": latest}


def field_descriptor(tenant: Tenant, kind: str, field: str, title: str) -> dict[str, Any]:
    """One Table Schema field: name (the column title), type, format, constraints, description
    (the column catalogue's, with how dates are written and what erasure empties)."""
    declared = tenant.catalogue.column(kind, field)
    descriptor: dict[str, Any] = {"name": title, "type": declared.type}
    if title != field:
        descriptor["title"] = field
    words = [declared.description]
    if declared.personal:
        words.append(ERASED_WORDS)
    if declared.type == "datetime" and tenant.format == "parquet":
        descriptor["timezone"] = "UTC"  # a typed value: no text format to state
        words.append(DATETIME_WORDS["parquet"])
    elif declared.type == "datetime":
        descriptor["format"] = DATETIME_FORMATS[tenant.timestamps]
        descriptor["timezone"] = "UTC" if tenant.timestamps == "utc" else tenant.timezone
        words.append(DATETIME_WORDS[tenant.timestamps].format(zone=tenant.timezone))
    descriptor["description"] = " ".join(words)
    constraints: dict[str, Any] = {}
    if declared.required:
        constraints["required"] = True
    if declared.values:
        constraints["enum"] = list(declared.values)
    if constraints:
        descriptor["constraints"] = constraints
    return descriptor


def table_schema(tenant: Tenant, kind: str) -> dict[str, Any]:
    """The Table Schema of one kind of file, in column order, with the tenant's titles."""
    fields = tenant.fields(kind)
    titles = dict(zip(fields, tenant.titles(kind), strict=True))
    schema: dict[str, Any] = {
        "fields": [field_descriptor(tenant, kind, field, titles[field]) for field in fields],
        # in a CSV file an empty field is NULL; a Parquet file has NULL itself, and "" is a value
        "missingValues": [] if tenant.format == "parquet" else [""],
    }
    key = [titles[field] for field in fields if tenant.catalogue.column(kind, field).key]
    if key:
        schema["primaryKey"] = key
    return schema


def dialect(tenant: Tenant) -> dict[str, Any]:
    """The CSV dialect the writer uses (RFC 4180 quoting, ``\\n`` line ends)."""
    return {
        "delimiter": tenant.delimiter,
        "header": tenant.header,
        "quoteChar": '"',
        "doubleQuote": True,
        "lineTerminator": "\n",
        "skipInitialSpace": False,
    }


def resource(tenant: Tenant, file: DeliveredFile, manifest: PurePosixPath) -> dict[str, Any]:
    """One data file as a Tabular Data Resource, its path relative to the manifest's folder."""
    path = posixpath.relpath(str(file.relative), str(manifest.parent))
    descriptor: dict[str, Any] = {
        "name": file.kind,
        "title": f"{TITLES[file.kind]} of {tenant.brand}",
        "profile": "tabular-data-resource",
        "path": path,
    }
    if tenant.format == "parquet":
        # binary and typed: no text encoding, no dialect, its compression inside the file
        descriptor |= {"format": "parquet", "mediatype": PARQUET_MEDIATYPE}
    else:
        descriptor |= {"format": "csv", "mediatype": "text/csv", "encoding": "utf-8"}
    compression = FRICTIONLESS_COMPRESSION[tenant.compression]
    if compression:
        descriptor["compression"] = compression
    if tenant.encryption == "pgp":
        # not a Frictionless property: decrypt first (gpg --decrypt), then validate the rest
        descriptor["encryption"] = "openpgp"
    descriptor |= {"rows": file.rows, "bytes": file.bytes, "hash": f"sha256:{file.sha256}"}
    if tenant.format == "csv":
        descriptor["dialect"] = dialect(tenant)
    descriptor["schema"] = table_schema(tenant, file.kind)
    return descriptor


def data_package(
    tenant: Tenant,
    period: Any,
    files: list[DeliveredFile],
    facts: PeriodFacts,
    manifest: PurePosixPath,
) -> dict[str, Any]:
    """The manifest of one delivered period, as a JSON-ready Data Package descriptor."""
    return {
        "profile": PROFILE,
        "name": f"activity-export-{tenant.brand}-{period.label}".lower(),
        "title": f"E-mail activity of {tenant.brand}, {tenant.interval} period {period.label}",
        "version": f"{LAYOUT_VERSION}.0.0",
        "brand": tenant.brand,
        "period": {
            "label": period.label,
            "interval": tenant.interval,
            "timezone": tenant.timezone,
            "start": period.start_local.isoformat(),
            "end": period.end_local.isoformat(),
            "startUtc": _utc(period.start_utc),
            "endUtc": _utc(period.end_utc),
        },
        "watermark": _utc(facts.watermark) if facts.watermark else None,
        "lateRows": facts.late_rows,
        "heldRows": facts.held_rows,
        "quarantined": _quarantined(facts),
        "layoutVersion": LAYOUT_VERSION,
        "productVersion": __version__,
        "resources": [resource(tenant, file, manifest) for file in files],
    }
