"""The writer: one period's slice of the export relations, written with DuckDB ``COPY ... TO``.

Both files of a period are read in one transaction, so they come from one consistent snapshot of
the warehouse. Each file is written under a hidden temporary name and renamed when complete; its
rows, bytes and SHA-256 are recorded for the manifest, the ledger and the logs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

import duckdb

from activity_export.config import Tenant
from activity_export.errors import ExportError
from activity_export.naming import KINDS, partial_name
from activity_export.periods import Period
from activity_export.warehouse import Warehouse

log = logging.getLogger(__name__)

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"

# File field -> expression over the export relation, before timestamps are localized.
ACTIVITY_FIELDS = {
    "broadcastid": "broadcast_id",
    "customerid": "customer_id",
    "externalid": "external_id",
    "email": "email",
    "activity": "activity",
    "activitydate": "occurred_at",
    "description": "description",
    "eventid": "event_id",
    "registereddate": "registered_at",
    "url": "url",
    "message": "message",
    "os": "os",
    "device": "device",
    "browser": "browser",
    "useragent": "user_agent",
}
BROADCAST_FIELDS = {
    "broadcastid": "broadcast_id",
    "broadcasttype": "broadcast_type",
    "description": "description",
    "subject": "subject",
    "sentdate": "sent_at",
    "campaignid": "campaign_id",
    "fromaddress": "from_address",
}
TIMESTAMP_FIELDS = {"activitydate", "registereddate", "sentdate"}


@dataclass(frozen=True)
class WrittenFile:
    """A finished file: where it is, where it goes, and what it holds."""

    kind: str
    path: Path
    relative: PurePosixPath
    rows: int
    bytes: int
    sha256: str


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _instant(moment: datetime) -> str:
    return f"timestamptz {_literal(moment.isoformat())}"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _projection(tenant: Tenant, kind: str) -> str:
    expressions = ACTIVITY_FIELDS if kind == "activity" else BROADCAST_FIELDS
    columns = []
    for field, title in zip(tenant.fields(kind), tenant.titles(kind), strict=True):
        expression = expressions[field]
        if field in TIMESTAMP_FIELDS:
            expression = (
                f"strftime(timezone({_literal(tenant.timezone)}, {expression}), {_literal(TIMESTAMP_FORMAT)})"
            )
        columns.append(f"{expression} as {_quoted(title)}")
    return ",\n    ".join(columns)


def activity_query(warehouse: Warehouse, tenant: Tenant, period: Period) -> str:
    """The period's activity rows: every e-mail activity available in ``[start, end)``.

    ``available_at`` is the registration, or for a row that arrived after its brand's watermark
    had passed it, the watermark at its arrival: fixed once, so the file is always the same.
    """
    where = (
        f"brand = {_brand(warehouse, tenant)}"
        f" and available_at >= {_instant(period.start_utc)}"
        f" and available_at < {_instant(period.end_utc)}"
    )
    return _slice(warehouse, tenant, "activity", "export_activities", where, "occurred_at, event_id")


def broadcast_query(warehouse: Warehouse, tenant: Tenant, period: Period) -> str:
    """The period's broadcasts: sent in it, or touched by its activities; each once."""
    touches = _relation(warehouse, "export_broadcast_touches")
    where = (
        f"brand = {_brand(warehouse, tenant)} and broadcast_id in ("  # noqa: S608
        f"select broadcast_id from {touches} where brand = {_brand(warehouse, tenant)}"
        f" and touched_at >= {_instant(period.start_utc)}"
        f" and touched_at < {_instant(period.end_utc)})"
    )
    return _slice(warehouse, tenant, "broadcast", "export_broadcasts", where, "broadcast_id")


def _pushed_down(warehouse: Warehouse) -> bool:
    return warehouse.target.kind == "postgres"


def _relation(warehouse: Warehouse, name: str) -> str:
    if _pushed_down(warehouse):  # inside postgres_query: PostgreSQL's own names
        return f"{_quoted(warehouse.target.schema)}.{_quoted(name)}"
    return warehouse.relation(name)


def _brand(warehouse: Warehouse, tenant: Tenant) -> str:
    # the export indexes on PostgreSQL are on (brand collate "C", ...): compare the same way
    return _literal(tenant.brand) + (' collate "C"' if _pushed_down(warehouse) else "")


def _slice(warehouse: Warehouse, tenant: Tenant, kind: str, table: str, where: str, order: str) -> str:
    """The select a file is copied from: filter, stable order, then the file's columns.

    On PostgreSQL the filter and the sort run in PostgreSQL (``postgres_query``), which uses the
    export indexes and sorts in its own work memory; DuckDB keeps the rows in that order and only
    formats them, so the loader's memory stays flat however large the slice is. On DuckDB the
    sort spills to the connection's temporary folder.
    """
    projection = _projection(tenant, kind)
    if _pushed_down(warehouse):
        expressions = ACTIVITY_FIELDS if kind == "activity" else BROADCAST_FIELDS
        needed = dict.fromkeys(expressions[field] for field in tenant.fields(kind))
        inner = (
            f"select {', '.join(needed)} from {_relation(warehouse, table)} where {where} order by {order}"  # noqa: S608
        )
        source = f"postgres_query({_literal(warehouse.catalog)}, {_literal(inner)})"
        return f"select\n    {projection}\nfrom {source}\n"
    return f"select\n    {projection}\nfrom {warehouse.relation(table)}\nwhere {where}\norder by {order}\n"


def _copy_options(tenant: Tenant) -> str:
    options = [
        "format csv",
        f"delimiter {_literal(tenant.delimiter)}",
        "quote '\"'",
        "escape '\"'",
        "nullstr ''",
        f"header {'true' if tenant.header else 'false'}",
        f"compression {_literal(tenant.compression)}",
    ]
    return ", ".join(options)


def file_digest(path: Path) -> tuple[int, str]:
    """Size in bytes and SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def write_period(warehouse: Warehouse, tenant: Tenant, period: Period, out: Path) -> list[WrittenFile]:
    """Write the period's activity and broadcast files (and manifest) under ``out``.

    Files land at ``out / <folder template> / <file name>``; the manifest, when enabled, is last.
    """
    queries = {
        "activity": activity_query(warehouse, tenant, period),
        "broadcast": broadcast_query(warehouse, tenant, period),
    }
    con = warehouse.con
    staged: list[tuple[str, Path, Path, PurePosixPath, int]] = []
    temporaries: list[Path] = []
    committed = False
    con.execute("begin transaction")  # one snapshot for both files
    try:
        for kind in KINDS:
            relative = tenant.relative_path(kind, period)
            final = out.joinpath(*relative.parts)
            final.parent.mkdir(parents=True, exist_ok=True)
            temporary = final.with_name(partial_name(final.name))
            temporaries.append(temporary)  # before COPY: a failed COPY can leave a partial file
            result = con.execute(
                f"copy ({queries[kind]}) to {_literal(str(temporary))} ({_copy_options(tenant)})"
            ).fetchone()
            staged.append((kind, temporary, final, relative, int(result[0]) if result else 0))
        con.execute("commit")
        committed = True
    except (duckdb.Error, OSError) as exc:
        raise ExportError(f"tenant {tenant.brand}: writing period {period.label} failed: {exc}") from exc
    finally:
        if not committed:  # also on KeyboardInterrupt: no open transaction, no partial files
            _rollback(con)
            for temporary in temporaries:
                if temporary.is_file():
                    temporary.unlink()
    files = []
    for kind, temporary, final, relative, rows in staged:
        os.replace(temporary, final)
        size, sha256 = file_digest(final)
        files.append(WrittenFile(kind, final, relative, rows, size, sha256))
        log.info("wrote %s: %d rows, %d bytes", final, rows, size)
    if tenant.manifest:
        files.append(_write_manifest(tenant, period, out, files))
    return files


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("rollback")
    except duckdb.Error:  # a failed commit has already ended the transaction
        pass


def _write_manifest(tenant: Tenant, period: Period, out: Path, files: list[WrittenFile]) -> WrittenFile:
    relative = tenant.manifest_path(period)
    final = out.joinpath(*relative.parts)
    document = {
        "brand": tenant.brand,
        "period": period.label,
        "period_start": period.start_local.isoformat(),
        "period_end": period.end_local.isoformat(),
        "files": [
            {
                "kind": written.kind,
                "name": written.relative.name,
                "path": str(written.relative),
                "rows": written.rows,
                "bytes": written.bytes,
                "sha256": written.sha256,
            }
            for written in files
        ],
    }
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(partial_name(final.name))
    temporary.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, final)
    size, sha256 = file_digest(final)
    return WrittenFile("manifest", final, relative, len(files), size, sha256)
