"""The warehouse: found through the same dbt profile ``dbt build`` uses, opened as a DuckDB connection.

A DuckDB target is the database file itself. A PostgreSQL target is attached to an in-memory DuckDB
through the postgres extension, which ships as a wheel (``duckdb-extension-postgres``) so that
nothing is downloaded at run time. Either way the loader speaks one SQL dialect and writes files with
DuckDB's ``COPY ... TO``.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from activity_export.errors import ConfigError, ExportError
from activity_export.profile import Target, resolve_target
from activity_export.workdir import private_folder

__all__ = ["Target", "Warehouse", "connect", "read_watermark", "resolve_target"]

log = logging.getLogger(__name__)

ATTACHED = "warehouse"
READ_MEMORY_LIMIT = "128MB"
WRITE_MEMORY_LIMIT = "1GB"
DUCKDB_THREADS = 2
# With several tenants delivered side by side the loader's own threads keep the cores busy, and
# DuckDB's worker threads only add hand-offs to every small query: a run over 1,000 small
# tenants took 12 % less CPU and time with one. A single big slice is 15 % faster with two.
DUCKDB_THREADS_SIDE_BY_SIDE = 1


def postgres_extension_path() -> Path:
    """The signed postgres extension inside the ``duckdb-extension-postgres`` wheel."""
    import duckdb_extension_postgres  # type: ignore[import-untyped]

    root = Path(duckdb_extension_postgres.__file__).parent / "extensions"
    found = sorted(root.glob(f"v{duckdb.__version__}/*/postgres.duckdb_extension")) + sorted(
        root.glob(f"v{duckdb.__version__}/postgres.duckdb_extension")
    )
    if not found:
        raise ExportError(
            f"no postgres extension for duckdb {duckdb.__version__} under {root}; "
            "install duckdb-extension-postgres with the same version as duckdb"
        )
    return found[0]


class _EarlyConnection:
    """An in-memory DuckDB connection with the postgres extension loaded, made in the background.

    Loading the extension checks its signature, a hash of its 40 MB: 0.2 s of one core, which
    ``run`` spends importing its modules and reading the configuration on the other meanwhile.
    The connection holds nothing of a target yet, so whichever ``connect`` comes first may take it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._con: duckdb.DuckDBPyConnection | None = None

    def start(self) -> None:
        with self._lock:
            if self._thread is None and self._con is None:
                # not a daemon: the process never ends while the extension's code is running
                self._thread = threading.Thread(target=self._load, name="load-postgres-extension")
                self._thread.start()

    def _load(self) -> None:
        try:
            con = _postgres_connection()
        except (duckdb.Error, ExportError) as exc:  # connect() loads it again and says why
            log.debug("loading the postgres extension in the background failed: %s", exc)
            return
        with self._lock:
            self._con = con

    def take(self) -> duckdb.DuckDBPyConnection | None:
        """The connection once loaded (waiting for it when under way), or None when none was started."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()
        with self._lock:
            con, self._con, self._thread = self._con, None, None
        return con


_early = _EarlyConnection()


def start_loading_postgres(project_dir: Path, profiles_dir: Path | None, target: str | None) -> None:
    """When the dbt target is PostgreSQL, start loading DuckDB's postgres extension in the
    background, for the next ``connect``. A profile that cannot be read is left for the command's
    own ``resolve_target`` to report, in its place."""
    try:
        kind = resolve_target(project_dir, profiles_dir, target).kind
    except (ConfigError, ExportError):
        return
    if kind == "postgres":
        _early.start()


def _postgres_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the postgres extension loaded and set up for slices."""
    con = duckdb.connect()
    try:
        con.execute(f"install '{postgres_extension_path()}'")
        con.execute("load postgres")
        # By default the extension splits a large table into ctid ranges and scans each: a read of
        # the whole table whatever indexes exist. One plain query per slice lets PostgreSQL use
        # the (brand, registered_at) and (brand, touched_at) indexes (tests/warehouse/test_models.py).
        con.execute("set pg_use_ctid_scan = false")
    except BaseException:
        con.close()
        raise
    return con


def _libpq_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass
class Warehouse:
    """An open DuckDB connection through which the target's relations are read (or written)."""

    con: duckdb.DuckDBPyConnection
    target: Target
    catalog: str

    def relation(self, name: str, schema: str | None = None) -> str:
        """A fully qualified, quoted relation name in the target."""
        parts = [self.catalog, schema or self.target.schema, name]
        return ".".join('"' + part.replace('"', '""') + '"' for part in parts)

    @property
    def pushed_down(self) -> bool:
        """Whether slices run inside PostgreSQL (``native``), where its indexes and collation apply."""
        return self.target.kind == "postgres"

    def native_relation(self, name: str) -> str:
        """A relation as the warehouse itself names it: inside ``native`` on PostgreSQL."""
        if self.pushed_down:
            return ".".join('"' + part.replace('"', '""') + '"' for part in (self.target.schema, name))
        return self.relation(name)

    def brand_literal(self, brand: str) -> str:
        """A brand to compare with ``brand``; on PostgreSQL in the "C" collation of the export indexes."""
        return sql_string(brand) + (' collate "C"' if self.pushed_down else "")

    def native(self, query: str) -> str:
        """A relation of the rows of ``query``: run by PostgreSQL itself (``postgres_query``), so it
        filters on its own indexes and sends only the result; on DuckDB the query as it is."""
        if self.pushed_down:
            return f"postgres_query({sql_string(self.catalog)}, {sql_string(query)})"
        return f"({query})"

    def cursor(self) -> Warehouse:
        """A connection of its own on the same database, for another thread."""
        return Warehouse(con=self.con.cursor(), target=self.target, catalog=self.catalog)

    def close(self) -> None:
        self.con.close()


@contextmanager
def connect(target: Target, *, read_only: bool = True, threads: int = DUCKDB_THREADS) -> Iterator[Warehouse]:
    """Open the target with ``threads`` DuckDB threads; the connection is closed when the block ends."""
    if target.kind == "duckdb":
        assert target.duckdb_path is not None
        if read_only and not target.duckdb_path.exists():
            raise ConfigError(
                f"dbt target {target.name!r}: {target.duckdb_path} does not exist; "
                "run `dbt build` (or `activity-export demo`) first"
            )
        try:
            con = duckdb.connect(str(target.duckdb_path), read_only=read_only)
        except duckdb.Error as exc:
            raise ExportError(f"cannot open {target.duckdb_path}: {exc}") from None
        catalog = one_value(con.sql("select current_database()").fetchone())
    else:
        con = _early.take() or _postgres_connection()
        dsn = " ".join(
            f"{key}={_libpq_quote(str(value))}"
            for key, value in (
                ("host", target.host),
                ("port", target.port),
                ("dbname", target.dbname),
                ("user", target.user),
                ("connect_timeout", 10),
                ("application_name", "activity-export"),
                *target.options,  # sslmode, connect_timeout, ... as the profile sets them
            )
        )
        options = "type postgres"
        if target.password:
            # through a temporary secret, so the password is never part of an ATTACH string
            con.execute(
                "create temporary secret warehouse_login (type postgres, password "
                f"{sql_string(target.password)})"
            )
            options += ", secret warehouse_login"
        if read_only:
            options += ", read_only"
        try:
            con.execute(f"attach {sql_string(dsn)} as {ATTACHED} ({options})")
        except duckdb.Error as exc:
            con.close()
            raise ExportError(f"cannot connect to PostgreSQL for {target}: {_libpq_reason(exc)}") from None
        catalog = ATTACHED
    con.execute("set timezone = 'UTC'")
    # The stable row order needs a sort of the whole slice. Under a small memory limit DuckDB
    # spills that sort to its own temporary folder, so the loader's memory stays flat however
    # large a tenant-day is (bench/results/writer_memory.md); the generator streams and gets more.
    spill = private_folder("duckdb")
    con.execute(f"set temp_directory = {sql_string(str(spill))}")
    con.execute(f"set memory_limit = '{READ_MEMORY_LIMIT if read_only else WRITE_MEMORY_LIMIT}'")
    con.execute(f"set threads = {int(threads)}")
    warehouse = Warehouse(con=con, target=target, catalog=catalog)
    try:
        yield warehouse
    finally:
        warehouse.close()
        shutil.rmtree(spill, ignore_errors=True)


def _libpq_reason(exc: duckdb.Error) -> str:
    """Why PostgreSQL could not be reached, as libpq says it, on one line: without DuckDB's
    preamble and the connection string it repeats (the target already says where)."""
    text = re.sub(r'^.*?Unable to connect to Postgres at ".*?": ', "", str(exc), count=1, flags=re.S)
    lines = [line.strip() for line in text.splitlines() if line.strip()] or [str(exc).strip()]
    # "Connection refused" / "Is the server running ...?": a full stop between libpq's lines
    sentences = [line if line[-1] in ".?!:" else line + "." for line in lines[:-1]]
    return " ".join([*sentences, lines[-1]])


def sql_string(value: str) -> str:
    """A SQL string literal (the same on DuckDB and PostgreSQL)."""
    return "'" + value.replace("'", "''") + "'"


def sql_instant(moment: datetime) -> str:
    """A timestamptz literal (the same on DuckDB and PostgreSQL)."""
    return f"timestamptz {sql_string(moment.isoformat())}"


@dataclass(frozen=True)
class BrandWatermark:
    """How far one brand's export relations are complete (a row of ``export_watermark``).

    A period of the brand may be exported once its end is at or before ``complete_until``; it
    never goes back. ``held_events`` e-mail events wait for their broadcast or customer row, the
    earliest registered at ``held_since``: the watermark stops there until the rows arrive.
    ``registered_until`` is the horizon of all deliveries seen (all brands), ``loaded_until``
    the newest load seen.
    """

    brand: str
    complete_until: datetime | None
    held_events: int
    held_since: datetime | None
    registered_until: datetime | None
    loaded_until: datetime | None


@dataclass(frozen=True)
class HeldEvent:
    """An e-mail event held back because its ``missing`` row (broadcast or customer) has not arrived."""

    brand: str
    event_id: int
    broadcast_id: int
    customer_id: int
    registered_at: datetime
    missing: str  # "broadcast" or "customer"


@dataclass(frozen=True)
class PeriodCounts:
    """What is unusual about one brand-period's activity file.

    ``late``: rows in the file although registered before the period started (late loads and
    events released from a hold land in the first period their brand's watermark had not yet
    closed when they arrived). ``held``: events registered in the period that are still held, so
    not in the file (they come in a later one).
    """

    late: int
    held: int


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _read(warehouse: Warehouse, relation: str, query: str) -> list[tuple[Any, ...]]:
    """The rows of ``query``. Values are written into the SQL (``sql_string``), never bound: DuckDB
    imports pandas, when it is installed, the first time a query binds a Python value (0.35 s)."""
    try:
        return warehouse.con.execute(query).fetchall()
    except duckdb.Error as exc:
        raise ExportError(
            f"dbt target {warehouse.target.name!r}: cannot read {relation} ({exc}); "
            "has `dbt build` run on this target?"
        ) from None


def read_watermarks(warehouse: Warehouse) -> dict[str, BrandWatermark]:
    """Every brand's watermark, by brand. A brand without an entry has no data in the warehouse."""
    rows = _read(
        warehouse,
        "export_watermark",
        "select brand, complete_until, held_events, held_since, registered_until, loaded_until "  # noqa: S608
        f"from {warehouse.relation('export_watermark')} order by brand",
    )
    return {
        row[0]: BrandWatermark(
            brand=row[0],
            complete_until=_utc(row[1]),
            held_events=int(row[2]),
            held_since=_utc(row[3]),
            registered_until=_utc(row[4]),
            loaded_until=_utc(row[5]),
        )
        for row in rows
    }


def read_watermark(warehouse: Warehouse, brand: str | None = None) -> datetime | None:
    """Up to which instant ``brand``'s periods are complete (None: nothing yet, or no such brand).

    Without a brand: the lowest watermark of all brands, which is safe for every brand but lets
    one held brand hold back the others; prefer a brand.
    """
    watermarks = read_watermarks(warehouse)
    if brand is not None:
        found = watermarks.get(brand)
        return found.complete_until if found else None
    known = [w.complete_until for w in watermarks.values() if w.complete_until is not None]
    return min(known) if known else None


def read_held_events(warehouse: Warehouse, brand: str, limit: int = 20) -> list[HeldEvent]:
    """The brand's held events, oldest registration first, at most ``limit``."""
    rows = _read(
        warehouse,
        "export_held_events",
        "select brand, event_id, broadcast_id, customer_id, registered_at, missing "  # noqa: S608
        f"from {warehouse.relation('export_held_events')} where brand = {sql_string(brand)} "
        f"order by registered_at, event_id limit {int(limit)}",
    )
    return [
        HeldEvent(
            brand=row[0],
            event_id=int(row[1]),
            broadcast_id=int(row[2]),
            customer_id=int(row[3]),
            registered_at=_utc(row[4]) or row[4],
            missing=row[5],
        )
        for row in rows
    ]


@dataclass(frozen=True)
class Quarantine:
    """A brand's quarantined events: registered or loaded after the clock of the build that read them."""

    events: int
    latest: datetime | None  # the latest registration or load time among them


def read_quarantine(warehouse: Warehouse, brand: str) -> Quarantine:
    """The brand's quarantined events (``export_quarantined_events``); none on a warehouse built
    before the quarantine existed."""
    query = (
        "select count(*), max(greatest(registered_at, loaded_at)) "  # noqa: S608
        f"from {warehouse.relation('export_quarantined_events')} where brand = {sql_string(brand)}"
    )
    try:
        row = warehouse.con.execute(query).fetchone()  # not bound: see _read
    except duckdb.CatalogException:
        return Quarantine(0, None)
    return Quarantine(int(row[0]), _utc(row[1])) if row else Quarantine(0, None)


def read_quarantines(warehouse: Warehouse) -> dict[str, Quarantine]:
    """Every brand's quarantined events, by brand (only brands that have any): one query, however
    many tenants ask; empty on a warehouse built before the quarantine existed."""
    query = (
        "select brand, count(*), max(greatest(registered_at, loaded_at)) "  # noqa: S608
        f"from {warehouse.relation('export_quarantined_events')} group by brand order by brand"
    )
    try:
        rows = warehouse.con.execute(query).fetchall()
    except duckdb.CatalogException:
        return {}
    return {row[0]: Quarantine(int(row[1]), _utc(row[2])) for row in rows}


def period_counts(warehouse: Warehouse, brand: str, start_utc: datetime, end_utc: datetime) -> PeriodCounts:
    """Late and held rows of one brand's period ``[start_utc, end_utc)`` (see :class:`PeriodCounts`).

    On PostgreSQL inside PostgreSQL, so indexes are used (a scan through the attached catalog
    would read every row of every brand). A late row was placed after its registration
    (``available_at > registered_at``, always true when ``registered_at`` is before the period
    and ``available_at`` in it); saying so lets PostgreSQL count the few such rows through the
    partial index that holds only them, instead of reading every row of the period once more
    (at 1 M rows a day, 0.15 s and a parallel scan after every delivery). Then the small
    held-events table.
    """
    start, end, compared = sql_instant(start_utc), sql_instant(end_utc), warehouse.brand_literal(brand)
    query = (
        f"select (select count(*) from {warehouse.native_relation('export_activities')} "  # noqa: S608
        f"where brand = {compared} and available_at >= {start} and available_at < {end} "
        f"and available_at > registered_at and registered_at < {start}) as late, "
        f"(select count(*) from {warehouse.native_relation('export_held_events')} "
        f"where brand = {compared} and registered_at >= {start} and registered_at < {end}) as held"
    )
    found = _read(warehouse, "export_activities", f"select * from {warehouse.native(query)}")  # noqa: S608
    late, held = found[0] if found else (None, None)
    return PeriodCounts(late=int(late or 0), held=int(held or 0))


def one_value(row: tuple[Any, ...] | None) -> Any:
    """The single value of a one-row, one-column result."""
    if row is None:
        raise ExportError("the warehouse returned no row where one was expected")
    return row[0]
