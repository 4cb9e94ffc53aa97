"""The writer: one period's slice of the export relations, written with DuckDB ``COPY ... TO``.

A CSV file takes the tenant's delimiter, header, compression and ``timestamps`` layout; a Parquet
file (``format: parquet``) the same columns, titles and order, typed: 64-bit integers, instants
(``timestamptz``, written adjusted to UTC) and text, with every writer option that decides its
bytes given, so the same period gives the same file.

All files of a period are read in one transaction, so they come from one consistent snapshot of
the warehouse. Each file is written under a hidden temporary name and renamed when complete
(encrypted first, with ``encryption: pgp``); its rows, bytes and SHA-256 of the bytes delivered
are recorded for the manifest, the ledger and the logs.

An erased customer's personal data is never written: the activity slice joins the erasures and
leaves the e-mail address, the external id and every free-text field (description, url, message,
user agent: a bounce message or a tracked link carries the address and the customer number too)
empty, whatever period is written, also a backfill of a period from before the erasure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Protocol

import duckdb

from activity_export.catalogue import MODELS
from activity_export.config import Tenant
from activity_export.encryption import encrypt_file
from activity_export.errors import ExportError
from activity_export.folders import PRIVATE, make_folders
from activity_export.manifest import DeliveredFile, PeriodFacts, data_package
from activity_export.naming import ERASURE, partial_name
from activity_export.periods import Period
from activity_export.warehouse import (
    Warehouse,
    period_counts,
    read_quarantine,
    read_watermark,
    sql_instant,
    sql_string,
)

log = logging.getLogger(__name__)

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# The file's type (the column catalogue's) -> the DuckDB type of the Parquet column
PARQUET_TYPES = {"integer": "bigint", "string": "varchar", "datetime": "timestamptz"}
# Every option that decides the bytes is given, so that a DuckDB default changing cannot change a
# delivered file: zstd inside the file (Parquet's own compression), fixed row groups (the same
# boundaries whatever the thread count), format version 1 (what every reader reads).
PARQUET_OPTIONS = (
    "format parquet, compression zstd, compression_level 3, row_group_size 122880, parquet_version 'V1'"
)


@dataclass(frozen=True)
class WrittenFile:
    """A finished file: where it is, where it goes, and what it holds."""

    kind: str
    path: Path
    relative: PurePosixPath
    rows: int
    bytes: int
    sha256: str


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _projection(tenant: Tenant, kind: str, overrides: dict[str, str] | None = None) -> str:
    columns = []
    for field, title in zip(tenant.fields(kind), tenant.titles(kind), strict=True):
        declared = tenant.catalogue.column(kind, field)
        expression = (overrides or {}).get(declared.column, declared.column)
        if tenant.format == "parquet":
            expression = _typed(expression, declared.type)
        elif declared.type == "datetime":
            expression = timestamp_text(expression, tenant.timezone, tenant.timestamps)
        columns.append(f"{expression} as {_quoted(title)}")
    return ",\n    ".join(columns)


def _typed(expression: str, file_type: str) -> str:
    """A Parquet column of the catalogue's type, whatever type the warehouse gives it: a 64-bit
    integer, an instant (``timestamptz``, written adjusted to UTC) to the second as in the CSV,
    or text."""
    if file_type == "datetime":
        return f"cast(date_trunc('second', {expression}) as timestamptz)"
    return f"cast({expression} as {PARQUET_TYPES[file_type]})"


def timestamp_text(instant: str, timezone: str, style: str) -> str:
    """SQL writing the instant ``instant`` (a ``timestamptz`` expression) as the file's text.

    ``local``: ``2026-10-25 02:30:00``, the wall-clock time in ``timezone``; ``offset``: the same
    with the zone's UTC offset at that instant, ``2026-10-25 02:30:00+01:00`` (seconds only when
    the offset has them, as local mean time before 1900 does); ``utc``: ``2026-10-25T01:30:00Z``.
    NULL stays NULL. The session's own time zone plays no part.
    """
    if style == "utc":
        return f"strftime(timezone('UTC', {instant}), {sql_string(UTC_FORMAT)})"
    local = f"timezone({sql_string(timezone)}, {instant})"
    text = f"strftime({local}, {sql_string(TIMESTAMP_FORMAT)})"
    if style == "local":
        return text
    # the offset in seconds: the local wall-clock time read as UTC, less the instant
    offset = f"cast(round(epoch({local}) - epoch({instant})) as bigint)"
    clock = f"(timestamp '1970-01-01' + to_seconds(abs({offset})))"
    return (
        f"{text} || case when {offset} < 0 then '-' else '+' end"
        f" || case when {offset} % 60 = 0 then strftime({clock}, '%H:%M')"
        f" else strftime({clock}, '%H:%M:%S') end"
    )


def activity_query(warehouse: Warehouse, tenant: Tenant, period: Period) -> str:
    """The period's activity rows: every e-mail activity available in ``[start, end)``.

    ``available_at`` is the registration, or for a row that arrived after its brand's watermark
    had passed it, the watermark at its arrival: fixed once, so the file is always the same.

    A left join to the erasures: an erased customer keeps its rows (the customer id stays, so the
    receiver can match them with the erasure file) but never its e-mail address, external id or a
    free-text field (the catalogue's ``personal`` columns).
    """
    where = (
        f"activities.brand = {warehouse.brand_literal(tenant.brand)}"
        f" and activities.available_at >= {sql_instant(period.start_utc)}"
        f" and activities.available_at < {sql_instant(period.end_utc)}"
    )
    order = "activities.occurred_at, activities.event_id"
    return _slice(warehouse, tenant, "activity", MODELS["activity"], where, order, erasures=True)


def erasure_query(warehouse: Warehouse, tenant: Tenant, period: Period) -> str:
    """The customers of the brand erased in ``[start, end)``, by customer id."""
    where = (
        f"brand = {warehouse.brand_literal(tenant.brand)}"
        f" and erased_at >= {sql_instant(period.start_utc)}"
        f" and erased_at < {sql_instant(period.end_utc)}"
    )
    return _slice(warehouse, tenant, ERASURE, MODELS[ERASURE], where, "erased_at, customer_id")


def broadcast_query(warehouse: Warehouse, tenant: Tenant, period: Period) -> str:
    """The period's broadcasts: sent in it, or touched by its activities; each once."""
    touches = warehouse.native_relation("export_broadcast_touches")
    where = (
        f"brand = {warehouse.brand_literal(tenant.brand)} and broadcast_id in ("  # noqa: S608
        f"select broadcast_id from {touches} where brand = {warehouse.brand_literal(tenant.brand)}"
        f" and touched_at >= {sql_instant(period.start_utc)}"
        f" and touched_at < {sql_instant(period.end_utc)})"
    )
    return _slice(warehouse, tenant, "broadcast", MODELS["broadcast"], where, "broadcast_id")


def _slice(
    warehouse: Warehouse,
    tenant: Tenant,
    kind: str,
    table: str,
    where: str,
    order: str,
    *,
    erasures: bool = False,
) -> str:
    """The select a file is copied from: filter, stable order, then the file's columns.

    On PostgreSQL the filter and the sort run in PostgreSQL (``postgres_query``), which uses the
    export indexes and sorts in its own work memory; DuckDB keeps the rows in that order and only
    formats them, so the loader's memory stays flat however large the slice is. On DuckDB the
    sort spills to the connection's temporary folder. With ``erasures`` the rows (alias
    ``activities``) are left-joined to ``export_erasures`` (alias ``erased``, one row per brand
    and customer) and the personal columns are empty for an erased customer.
    """
    declared = [tenant.catalogue.column(kind, field) for field in tenant.fields(kind)]
    needed = dict.fromkeys(column.column for column in declared)
    personal = {column.column for column in declared if column.personal}
    source = warehouse.native_relation(table)
    qualified: dict[str, str] = {}
    if erasures:
        source += (
            f" as activities left join {warehouse.native_relation('export_erasures')} as erased"
            " on erased.brand = activities.brand and erased.customer_id = activities.customer_id"
        )
        qualified = {
            column: f"case when erased.customer_id is null then activities.{column} end"
            if column in personal
            else f"activities.{column}"
            for column in needed
        }
    if warehouse.pushed_down:
        columns = ", ".join(f"{qualified[c]} as {c}" if c in qualified else c for c in needed)
        inner = f"select {columns} from {source} where {where} order by {order}"  # noqa: S608
        return f"select\n    {_projection(tenant, kind)}\nfrom {warehouse.native(inner)}\n"
    projection = _projection(tenant, kind, qualified)
    return f"select\n    {projection}\nfrom {source}\nwhere {where}\norder by {order}\n"


def _copy_options(tenant: Tenant) -> str:
    if tenant.format == "parquet":
        return PARQUET_OPTIONS
    options = [
        "format csv",
        f"delimiter {sql_string(tenant.delimiter)}",
        "quote '\"'",
        "escape '\"'",
        "nullstr ''",
        f"header {'true' if tenant.header else 'false'}",
        f"compression {sql_string(tenant.compression)}",
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


QUERIES = {"activity": activity_query, "broadcast": broadcast_query, ERASURE: erasure_query}


class Sink(Protocol):
    """Whatever reads a data file while it is written (an upload, for delivery)."""

    def finish(self, *, complete: bool) -> None:
        """The writer is done: ``complete`` when the file is whole, False when writing failed."""

    def result(self) -> tuple[int, str] | None:
        """Wait for the reader; the bytes and SHA-256 it saw when it read all of the file, else None."""


# Given a kind, the file about to be written and its relative path: a sink that reads the file
# while it grows, or None.
Follow = Callable[[str, Path, PurePosixPath], Sink | None]


# (the kind being written, bytes of the period's data files written so far)
OnBytes = Callable[[str, int], None]
PROGRESS_SECONDS = 0.25


def _size_so_far(path: Path) -> int:
    """Bytes DuckDB has written to ``path``, or to the ``tmp_`` file it renames to it at the end."""
    for candidate in (path, path.with_name(f"tmp_{path.name}")):
        try:
            return candidate.stat().st_size
        except OSError:
            continue
    return 0


@contextmanager
def _watching(path: Path, kind: str, before: int, on_bytes: OnBytes | None) -> Iterator[None]:
    """While DuckDB writes ``path``: ``on_bytes(kind, before + its size)`` four times a second."""
    if on_bytes is None:
        yield
        return
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(PROGRESS_SECONDS):
            try:
                on_bytes(kind, before + _size_so_far(path))
            except Exception:  # a progress display never stops a delivery
                log.debug("progress of %s not shown", path.name, exc_info=True)
                return

    watcher = threading.Thread(target=poll, name=f"progress-{kind}", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


def write_period(
    warehouse: Warehouse,
    tenant: Tenant,
    period: Period,
    out: Path,
    *,
    follow: Follow | None = None,
    on_bytes: OnBytes | None = None,
) -> list[WrittenFile]:
    """Write the period's data files (activity, broadcast, erasure) and manifest under ``out``.

    Files land at ``out / <folder template> / <file name>``; the manifest, when enabled, is last
    and describes the files exactly as written (encrypted bytes, when encrypted). ``out`` is a
    private work folder: folders made below it are the loader's alone (0700), and a destination
    (or ``export``) gives the files their ``file_mode`` where they are published.
    With ``follow``, each data file is also read while DuckDB appends to it, so its upload runs
    beside the writing; the bytes and SHA-256 the follower saw (all of the file) are then reused
    instead of reading the file once more. Only unencrypted files are followed: nothing in clear
    text leaves the machine for an encrypting tenant. With ``on_bytes``, the bytes written so far
    are told four times a second while a file is written, and once more when it is complete.
    """
    kinds = tenant.data_kinds()
    queries = {kind: QUERIES[kind](warehouse, tenant, period) for kind in kinds}
    con = warehouse.con
    staged: list[tuple[str, Path, Path, PurePosixPath, int]] = []
    temporaries: list[Path] = []
    followers: list[Sink | None] = []
    committed = False
    written = 0
    con.execute("begin transaction")  # one snapshot for all files
    try:
        for kind in kinds:
            relative = tenant.relative_path(kind, period)
            final = out.joinpath(*relative.parts)
            make_folders(final.parent, PRIVATE)
            temporary = final.with_name(partial_name(_plain_name(tenant, final.name)))
            temporaries.append(temporary)  # before COPY: a failed COPY can leave a partial file
            follower = _follower(follow, tenant, kind, temporary, relative)
            followers.append(follower)
            try:
                options = _copy_options(tenant) + (", use_tmp_file false" if follower else "")
                with _watching(temporary, kind, written, on_bytes):
                    result = con.execute(
                        f"copy ({queries[kind]}) to {sql_string(str(temporary))} ({options})"
                    ).fetchone()
            finally:
                if follower is not None:
                    follower.finish(complete=sys.exc_info()[0] is None)
            staged.append((kind, temporary, final, relative, int(result[0]) if result else 0))
            if on_bytes is not None:
                written += _size_so_far(temporary)
                on_bytes(kind, written)
        facts = period_facts(warehouse, tenant, period) if tenant.manifest else PeriodFacts(None)
        con.execute("commit")
        committed = True
    except (duckdb.Error, OSError) as exc:
        raise ExportError(f"tenant {tenant.brand}: writing period {period.label} failed: {exc}") from exc
    finally:
        if not committed:  # also on KeyboardInterrupt: no open transaction, no partial files
            for follower in followers:
                if follower is not None:
                    follower.finish(complete=False)
                    follower.result()
            _rollback(con)
            _remove(temporaries)
    files = []
    try:
        for (kind, temporary, final, relative, rows), follower in zip(staged, followers, strict=True):
            seen = follower.result() if follower is not None else None  # it may open the file late
            if tenant.encryption == "pgp":
                sealed = final.with_name(partial_name(final.name))
                temporaries.append(sealed)
                encrypt_file(tenant, temporary, sealed)
                temporary.unlink()  # the plain text is gone as soon as the sealed copy exists
                temporary = sealed
            os.replace(temporary, final)
            size, sha256 = seen if seen and seen[0] == final.stat().st_size else file_digest(final)
            files.append(WrittenFile(kind, final, relative, rows, size, sha256))
            log.info("wrote %s: %d rows, %d bytes", final, rows, size)
    except OSError as exc:
        raise ExportError(f"tenant {tenant.brand}: writing period {period.label} failed: {exc}") from exc
    finally:
        _remove(temporaries)  # renamed ones are gone already; the rest holds personal data
    if tenant.manifest:
        files.append(write_manifest(tenant, period, out, files, facts))
    return files


def _plain_name(tenant: Tenant, name: str) -> str:
    """The name before encryption: the data is written plain first, then encrypted."""
    return name.removesuffix(".gpg") if tenant.encryption == "pgp" else name


def _remove(paths: list[Path]) -> None:
    for path in paths:
        if path.is_file():
            path.unlink()


def period_facts(warehouse: Warehouse, tenant: Tenant, period: Period) -> PeriodFacts:
    """What the manifest states about completeness: the brand's watermark, late and held rows,
    and the brand's quarantined events.

    Read in the files' transaction, so the numbers describe exactly the rows written.
    """
    counts = period_counts(warehouse, tenant.brand, period.start_utc, period.end_utc)
    quarantine = read_quarantine(warehouse, tenant.brand)
    return PeriodFacts(
        read_watermark(warehouse, tenant.brand),
        late_rows=counts.late,
        held_rows=counts.held,
        quarantined_events=quarantine.events,
        quarantined_latest=quarantine.latest,
    )


def _follower(
    follow: Follow | None, tenant: Tenant, kind: str, temporary: Path, relative: PurePosixPath
) -> Sink | None:
    """Start following the file about to be written, when asked and allowed.

    A CSV file only grows at its end. A Parquet file is not followed: its writer is DuckDB's to
    arrange, and the file, compressed column by column, is small enough to send after writing.
    """
    if follow is None or tenant.encryption != "none" or tenant.format != "csv":
        return None
    # DuckDB writes into an existing file through a temporary copy renamed at the end (a follower
    # would read the old file): start from no file, and COPY with use_tmp_file false.
    temporary.unlink(missing_ok=True)
    return follow(kind, temporary, relative)


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("rollback")
    except duckdb.Error:  # a failed commit has already ended the transaction
        pass


def write_manifest(
    tenant: Tenant, period: Period, out: Path, files: list[WrittenFile], facts: PeriodFacts
) -> WrittenFile:
    """The period's Data Package descriptor, written beside the data files (see manifest.py)."""
    relative = tenant.manifest_path(period)
    final = out.joinpath(*relative.parts)
    delivered = [DeliveredFile(f.kind, f.relative, f.rows, f.bytes, f.sha256) for f in files]
    document = data_package(tenant, period, delivered, facts, relative)
    make_folders(final.parent, PRIVATE)
    temporary = final.with_name(partial_name(final.name))
    temporary.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(temporary, final)
    size, sha256 = file_digest(final)
    return WrittenFile("manifest", final, relative, len(files), size, sha256)


def restate_delivered(
    files: list[WrittenFile], delivered: dict[str, tuple[int, int, str]]
) -> list[WrittenFile]:
    """Make the manifest describe the bytes on the destination.

    A data file that an earlier, interrupted attempt already delivered is not sent again; when
    the new copy differs (an encrypted file never has the same bytes twice), the manifest takes
    the rows, bytes and SHA-256 recorded for the delivered one. ``delivered`` maps kind to them.
    """
    manifest = next((f for f in files if f.kind == "manifest"), None)
    changed = {
        kind: recorded
        for kind, recorded in delivered.items()
        if any(f.kind == kind and (f.rows, f.bytes, f.sha256) != recorded for f in files)
    }
    if manifest is None or not changed:
        return files
    document = json.loads(manifest.path.read_text(encoding="utf-8"))
    for entry in document["resources"]:
        if entry["name"] in changed:
            rows, size, sha256 = changed[entry["name"]]
            entry.update(rows=rows, bytes=size, hash=f"sha256:{sha256}")
    manifest.path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    size, sha256 = file_digest(manifest.path)
    return [replace(f, bytes=size, sha256=sha256) if f is manifest else f for f in files]
