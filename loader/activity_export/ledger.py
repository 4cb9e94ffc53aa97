"""The ledger: a durable record of every file delivered, per configuration, tenant and destination.

It lives in a SQLite file next to the configuration (``activity-export.ledger.sqlite`` beside
``tenants.yml`` unless ``--ledger`` says otherwise), not in the warehouse: what was delivered is a
fact about the deliveries a configuration made, it must survive a rebuild of the warehouse, it
must work the same on the DuckDB file (which dbt holds open for writing while it builds) and on
PostgreSQL, and the loader must never need write access to the warehouse.

Everything is recorded under a ``Book``: the configuration file, the brand and the destination
(``destination_key``). Two configuration files sharing one ledger never count each other's
deliveries, and files delivered to an old destination never count for a new one. The ``tenants``
table remembers, per configuration and brand, the destination deliveries go to and the first
period the tenant ever had (the anchor from which nothing may be skipped); a tenant whose
configured destination differs from the recorded one is reported until an operator accepts the
new destination (``accept_destination``).

Every step is committed before the next one starts, so a crash at any point leaves a state the
next run can finish: a file marked ``uploading`` whose final name holds a file with the recorded
SHA-256 was delivered (only the ledger write was lost); otherwise it is uploaded again under the
same name. An attempt that never got an outcome (a killed run) is marked ``interrupted`` by the
next run.

The public interface (what another ledger implementation must offer): ``Ledger(path)``,
``close``, ``tenant``, ``register``, ``accept_destination``, ``records``, ``period_records``,
``delivered_starts``, ``is_delivered``, ``start_attempt``, ``finish_attempt``,
``interrupt_unfinished``, ``uploading``, ``delivered``, ``failed``, ``record_counts``,
``counts``; plus ``destination_key`` and ``tenant_lock``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, TypeVar, cast

from activity_export.errors import ConfigError, ExportError

SCHEMA_VERSION = 2
BUSY_TIMEOUT_SECONDS = 15.0
OUTCOMES = ("delivered", "failed", "interrupted")

SCHEMA = """
create table if not exists meta (
    name text primary key,
    value text not null
);
create table if not exists tenants (
    config text not null,             -- the configuration file, absolute path
    brand text not null,
    destination text not null,        -- destination_key() of where deliveries go now
    first_period text not null,       -- UTC start of the first period ever due (the anchor)
    registered_at text not null,
    accepted_from text,               -- the previous destination, after accept_destination
    accepted_at text,
    primary key (config, brand)
);
create table if not exists deliveries (
    config text not null,
    brand text not null,
    destination text not null,
    kind text not null,               -- activity, broadcast, manifest
    period_start text not null,       -- UTC, ISO 8601
    period_end text not null,
    period_label text not null,       -- local, e.g. 2026-11-25 or 2026-11-25T13
    status text not null check (status in ('uploading', 'delivered', 'failed')),
    remote_path text,
    rows integer,
    bytes integer,
    sha256 text,
    attempts integer not null default 0,
    started_at text,
    delivered_at text,
    error text,
    primary key (config, brand, destination, kind, period_start)
);
create table if not exists periods (
    config text not null,
    brand text not null,
    destination text not null,
    period_start text not null,
    period_label text not null,
    late_rows integer,                -- activity rows that arrived after their registration period
    held_rows integer,                -- e-mail events held back (broadcast or customer missing)
    recorded_at text not null,
    primary key (config, brand, destination, period_start)
);
create table if not exists attempts (
    attempt_id integer primary key autoincrement,
    config text not null,
    brand text not null,
    destination text not null,
    period_start text not null,
    period_label text not null,
    started_at text not null,
    finished_at text,
    outcome text,                     -- delivered, failed, interrupted, or null while running
    error text
);
"""

# Version 1 (one set of rows per brand, whoever wrote them): moved aside, then copied in under an
# unknown configuration (''); a configuration claims a brand's rows on first use when they were
# delivered to the destination it has now (see ``register``).
MIGRATE_FROM_1 = """
alter table deliveries rename to deliveries_v1;
alter table attempts rename to attempts_v1;
"""
COPY_FROM_1 = """
insert into deliveries (config, brand, destination, kind, period_start, period_end, period_label,
    status, remote_path, rows, bytes, sha256, attempts, started_at, delivered_at, error)
select '', brand, coalesce(destination, ''), kind, period_start, period_end, period_label, status,
    remote_path, rows, bytes, sha256, attempts, started_at, delivered_at, error
from deliveries_v1;
insert into attempts (config, brand, destination, period_start, period_label, started_at,
    finished_at, outcome, error)
select '', brand, '', period_start, period_label, started_at, finished_at,
    coalesce(outcome, 'interrupted'), error
from attempts_v1;
drop table deliveries_v1;
drop table attempts_v1;
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def default_ledger_path(config_path: Path) -> Path:
    return config_path.resolve().parent / "activity-export.ledger.sqlite"


def config_key(config_path: Path) -> str:
    """What a configuration file is known as in the ledger: its absolute path."""
    return str(config_path.resolve())


class HasKey(Protocol):
    """A destination, as far as the ledger is concerned: its identity."""

    @property
    def key(self) -> str: ...


def destination_key(destination: HasKey) -> str:
    """A destination's identity, without secrets (see ``LocalDestination.key``/``SftpDestination.key``)."""
    return destination.key


def _legacy_key(described: str) -> str:
    """The destination key of a version-1 row, from what it recorded (``Destination.describe()``)."""
    if described.startswith("local folder "):
        return f"local:{Path(described.removeprefix('local folder ')).resolve()}"
    match = re.fullmatch(r"sftp://([^@]*)@(.*):(\d+)(/.*)?", described)
    if match:
        user, host, port, root = match.groups()
        return f"sftp://{user}@{host.lower()}:{port}{PurePosixPath(root or '/')}"
    return described


@dataclass(frozen=True)
class Book:
    """What a set of ledger rows is about: one tenant of one configuration at one destination."""

    config: str
    brand: str
    destination: str


@dataclass(frozen=True)
class TenantEntry:
    """A tenant as the ledger knows it."""

    config: str
    brand: str
    destination: str
    first_period: datetime
    accepted_from: str | None
    accepted_at: str | None


@dataclass(frozen=True)
class Record:
    """One file of one period in the ledger."""

    config: str
    brand: str
    destination: str
    kind: str
    period_start: str
    period_end: str
    period_label: str
    status: str
    remote_path: str | None
    rows: int | None
    bytes: int | None
    sha256: str | None
    attempts: int
    started_at: str | None
    delivered_at: str | None
    error: str | None


@dataclass(frozen=True)
class PeriodCounts:
    """Late and held rows of one delivered period."""

    period_label: str
    late_rows: int | None
    held_rows: int | None


# Statements both ledgers run, with SQLite's ``?`` placeholders (``ledger_postgres`` turns them
# into ``%s``). The two differ only where their SQL does: schema, locking, returning ids, arrays.
SELECT_TENANT = "select * from tenants where config = ? and brand = ?"
LAST_DELIVERED_END = (
    "select max(period_end) as last_end from deliveries where config = ? and brand = ? "
    "and destination = ? and status = 'delivered' and kind = 'activity'"
)
ACCEPT_DESTINATION = (
    "update tenants set destination = ?, first_period = ?, accepted_from = ?, accepted_at = ? "
    "where config = ? and brand = ?"
)
SELECT_RECORDS = (
    "select * from deliveries where config = ? and brand = ? and destination = ? order by period_start, kind"
)
SELECT_PERIOD_RECORDS = (
    "select * from deliveries where config = ? and brand = ? and destination = ? and period_start = ?"
)
FINISH_ATTEMPT = "update attempts set finished_at = ?, outcome = ?, error = ? where attempt_id = ?"
INTERRUPT_UNFINISHED = (
    "update attempts set outcome = 'interrupted', finished_at = ?, "
    "error = 'the run ended before this attempt finished' "
    "where config = ? and brand = ? and outcome is null"
)
SELECT_ATTEMPTS = (
    "select period_label, outcome from attempts where config = ? and brand = ? and destination = ? "
    "order by attempt_id"
)
UPSERT_UPLOADING = """
    insert into deliveries (config, brand, destination, kind, period_start, period_end,
        period_label, status, remote_path, rows, bytes, sha256, attempts, started_at)
    values (?, ?, ?, ?, ?, ?, ?, 'uploading', ?, ?, ?, ?, 1, ?)
    on conflict (config, brand, destination, kind, period_start) do update set
        status = 'uploading', remote_path = excluded.remote_path,
        rows = excluded.rows, bytes = excluded.bytes, sha256 = excluded.sha256,
        attempts = deliveries.attempts + 1, started_at = excluded.started_at,
        error = null
"""
MARK_DELIVERED = """
    update deliveries set status = 'delivered', delivered_at = ?, remote_path = ?, error = null
    where config = ? and brand = ? and destination = ? and kind = ? and period_start = ?
"""
UPSERT_FAILED = """
    insert into deliveries (config, brand, destination, kind, period_start, period_end,
        period_label, status, attempts, started_at, error)
    values (?, ?, ?, ?, ?, ?, ?, 'failed', 1, ?, ?)
    on conflict (config, brand, destination, kind, period_start) do update set
        status = case when deliveries.status = 'delivered' then 'delivered' else 'failed' end,
        attempts = case when deliveries.status = 'uploading'
                        then deliveries.attempts else deliveries.attempts + 1 end,
        error = excluded.error
"""
UPSERT_COUNTS = """
    insert into periods (config, brand, destination, period_start, period_label, late_rows,
        held_rows, recorded_at)
    values (?, ?, ?, ?, ?, ?, ?, ?)
    on conflict (config, brand, destination, period_start) do update set
        late_rows = excluded.late_rows, held_rows = excluded.held_rows,
        recorded_at = excluded.recorded_at
"""
SELECT_COUNTS = (
    "select period_label, late_rows, held_rows from periods "
    "where config = ? and brand = ? and destination = ? order by period_start"
)


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _serialized(method: _Method) -> _Method:
    """One call at a time per ledger: the threads of one run share a single SQLite connection.

    Waiting on a lock in the process is immediate; SQLite's own busy handler, which separate
    connections would meet, sleeps in steps of milliseconds and made the ledger the slowest part
    of a run over many small tenants.
    """

    @wraps(method)
    def serialized(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return cast(_Method, serialized)


class Ledger:
    """Reads and writes the ledger; one instance per run, shared by its threads (``RunLedgers``),
    which take turns on it.

    A ledger that cannot be opened (locked for longer than ``BUSY_TIMEOUT_SECONDS``, damaged, or
    not a SQLite database at all) is one ``ExportError`` naming the file and what to do.
    """

    def __new__(cls, path: Path, *, read_only: bool = False) -> Ledger:
        # ``--ledger postgresql://...``: the shared ledger in PostgreSQL, same interface
        if cls is Ledger and is_postgres(path):
            from activity_export.ledger_postgres import PostgresLedger

            return super().__new__(PostgresLedger)
        return super().__new__(cls)

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """Open (create, migrate) the ledger; ``read_only`` creates nothing and reads a missing one
        as empty (``status``, ``check``, ``run --dry-run``)."""
        self.path = path
        self._lock = threading.RLock()
        if read_only:
            self._db = _read_only(path)
            self._db.row_factory = sqlite3.Row
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(f"ledger {path}: cannot create its folder: {exc}") from None
        try:
            self._db = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise ExportError(f"ledger {path}: cannot open it: {exc}") from None
        try:
            self._db.execute("pragma journal_mode = wal")
            self._db.execute("pragma synchronous = full")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise _open_error(path, exc) from None
        self._db.row_factory = sqlite3.Row

    def _migrate(self) -> None:
        self._db.execute("begin immediate")
        try:
            tables = {
                row[0] for row in self._db.execute("select name from sqlite_master where type = 'table'")
            }
            version = 0
            if "meta" in tables:
                row = self._db.execute("select value from meta where name = 'schema_version'").fetchone()
                version = int(row[0]) if row else 0
            elif "deliveries" in tables:
                version = 1
            if version > SCHEMA_VERSION:
                raise ExportError(
                    f"ledger {self.path}: written by a newer activity-export (schema {version}); "
                    "upgrade this installation"
                )
            if version == 1:
                self._execute_all(MIGRATE_FROM_1)
            if version < SCHEMA_VERSION:
                self._execute_all(SCHEMA)
                if version == 1:
                    self._copy_from_1()
                self._db.execute(
                    "insert or replace into meta (name, value) values ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            self._db.execute("commit")
        except BaseException:
            self._db.execute("rollback")
            raise

    def _execute_all(self, script: str) -> None:
        # one statement at a time: executescript() would commit the open transaction
        for statement in script.split(";"):
            if statement.strip():
                self._db.execute(statement)

    def _copy_from_1(self) -> None:
        self._execute_all(COPY_FROM_1)
        described = self._db.execute(
            "select distinct destination from deliveries where config = ''"
        ).fetchall()
        for (text,) in described:
            self._db.execute(
                "update deliveries set destination = ? where config = '' and destination = ?",
                (_legacy_key(text), text),
            )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Every statement the two ledgers share goes through these two (``?`` placeholders);
    # ``PostgresLedger`` overrides them and the steps whose SQL differs.

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        """The rows of a query, each readable by column name."""
        return self._db.execute(sql, args).fetchall()

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        """Run one statement (committed on its own); how many rows it changed."""
        return self._db.execute(sql, args).rowcount

    # -- tenants ---------------------------------------------------------------------------------

    @_serialized
    def tenant(self, config: str, brand: str) -> TenantEntry | None:
        """The tenant as recorded for this configuration, or None before its first run."""
        rows = self._rows(SELECT_TENANT, (config, brand))
        if not rows:
            return None
        row = rows[0]
        return TenantEntry(
            config=row["config"],
            brand=row["brand"],
            destination=row["destination"],
            first_period=datetime.fromisoformat(row["first_period"]),
            accepted_from=row["accepted_from"],
            accepted_at=row["accepted_at"],
        )

    @_serialized
    def register(self, book: Book, first_period: datetime) -> TenantEntry:
        """Record a tenant at its first run, with the first period it is owed.

        Rows migrated from a version-1 ledger (configuration unknown) for this brand and this very
        destination are taken over; the anchor is then the earliest period they hold.
        """
        self._db.execute("begin immediate")
        try:
            existing = self.tenant(book.config, book.brand)
            if existing is not None:
                self._db.execute("commit")
                return existing
            legacy = self._db.execute(
                "select min(period_start) from deliveries "
                "where config = '' and brand = ? and destination = ?",
                (book.brand, book.destination),
            ).fetchone()[0]
            if legacy is not None:
                for table in ("deliveries", "periods"):
                    self._db.execute(
                        f"update {table} set config = ? where config = '' and brand = ? and destination = ?",  # noqa: S608 (fixed table names)
                        (book.config, book.brand, book.destination),
                    )
                self._db.execute(
                    "update attempts set config = ?, destination = ? where config = '' and brand = ?",
                    (book.config, book.destination, book.brand),
                )
                first_period = min(first_period, datetime.fromisoformat(legacy))
            self._db.execute(
                "insert into tenants (config, brand, destination, first_period, registered_at) "
                "values (?, ?, ?, ?, ?)",
                (book.config, book.brand, book.destination, first_period.isoformat(), _now()),
            )
            self._db.execute("commit")
        except BaseException:
            self._db.execute("rollback")
            raise
        entry = self.tenant(book.config, book.brand)
        assert entry is not None
        return entry

    @_serialized
    def accept_destination(self, book: Book) -> TenantEntry:
        """Deliver to ``book.destination`` from now on, continuing where the old one stopped.

        The new destination is owed every period after the last one delivered to the old one (or,
        when none was, everything the old one was owed); earlier periods can be sent with
        ``backfill``.
        """
        entry = self.tenant(book.config, book.brand)
        if entry is None:
            raise ExportError(f"tenant {book.brand}: nothing recorded yet, so nothing to accept")
        if entry.destination == book.destination:
            return entry
        [found] = self._rows(LAST_DELIVERED_END, (book.config, book.brand, entry.destination))
        last_end = found["last_end"]
        first = datetime.fromisoformat(last_end) if last_end else entry.first_period
        self._write(
            ACCEPT_DESTINATION,
            (book.destination, first.isoformat(), entry.destination, _now(), book.config, book.brand),
        )
        accepted = self.tenant(book.config, book.brand)
        assert accepted is not None
        return accepted

    # -- deliveries ------------------------------------------------------------------------------

    @_serialized
    def records(self, book: Book) -> list[Record]:
        rows = self._rows(SELECT_RECORDS, (book.config, book.brand, book.destination))
        return [Record(**dict(row)) for row in rows]

    @_serialized
    def period_records(self, book: Book, period_start: datetime) -> dict[str, Record]:
        rows = self._rows(
            SELECT_PERIOD_RECORDS, (book.config, book.brand, book.destination, period_start.isoformat())
        )
        return {row["kind"]: Record(**dict(row)) for row in rows}

    @_serialized
    def delivered_starts(self, book: Book, kinds: list[str]) -> set[datetime]:
        """UTC starts of the periods whose files of every kind in ``kinds`` are delivered."""
        placeholders = ", ".join("?" * len(kinds))
        sql = (
            "select period_start, count(distinct kind) from deliveries "  # noqa: S608 (placeholders only)
            "where config = ? and brand = ? and destination = ? and status = 'delivered' "
            f"and kind in ({placeholders}) group by period_start"
        )
        rows = self._db.execute(
            sql,
            (book.config, book.brand, book.destination, *kinds),
        )
        return {datetime.fromisoformat(start) for start, count in rows if count == len(kinds)}

    def is_delivered(self, book: Book, period_start: datetime, kinds: list[str]) -> bool:
        records = self.period_records(book, period_start)
        return all(kind in records and records[kind].status == "delivered" for kind in kinds)

    @_serialized
    def start_attempt(self, book: Book, period_start: datetime, label: str) -> int:
        cursor = self._db.execute(
            "insert into attempts (config, brand, destination, period_start, period_label, started_at) "
            "values (?, ?, ?, ?, ?, ?)",
            (book.config, book.brand, book.destination, period_start.isoformat(), label, _now()),
        )
        return int(cursor.lastrowid or 0)

    @_serialized
    def finish_attempt(self, attempt_id: int, outcome: str, error: str | None = None) -> None:
        assert outcome in OUTCOMES, outcome
        self._write(FINISH_ATTEMPT, (_now(), outcome, error, attempt_id))

    @_serialized
    def interrupt_unfinished(self, book: Book) -> int:
        """Mark attempts a killed run left without an outcome as interrupted; how many there were.

        Called under the tenant's lock, so no other run is still working on them.
        """
        return self._write(INTERRUPT_UNFINISHED, (_now(), book.config, book.brand))

    @_serialized
    def attempts(self, book: Book) -> list[tuple[str, str | None]]:
        """(period label, outcome) of every attempt, oldest first."""
        rows = self._rows(SELECT_ATTEMPTS, (book.config, book.brand, book.destination))
        return [(row["period_label"], row["outcome"]) for row in rows]

    @_serialized
    def uploading(
        self,
        book: Book,
        kind: str,
        period_start: datetime,
        period_end: datetime,
        label: str,
        remote_path: str,
        rows: int,
        size: int,
        sha256: str,
    ) -> None:
        """Record that a written file is about to be published (committed before the upload)."""
        self._write(
            UPSERT_UPLOADING,
            (
                book.config,
                book.brand,
                book.destination,
                kind,
                period_start.isoformat(),
                period_end.isoformat(),
                label,
                remote_path,
                rows,
                size,
                sha256,
                _now(),
            ),
        )

    @_serialized
    def delivered(self, book: Book, kind: str, period_start: datetime, remote_path: str) -> None:
        self._write(
            MARK_DELIVERED,
            (_now(), remote_path, book.config, book.brand, book.destination, kind, period_start.isoformat()),
        )

    @_serialized
    def failed(
        self,
        book: Book,
        period_start: datetime,
        period_end: datetime,
        label: str,
        error: str,
        kinds: tuple[str, ...] = ("activity", "broadcast"),
    ) -> None:
        """Mark a period's files that are not delivered as failed, with the (secret-free) error."""
        for kind in kinds:
            self._write(
                UPSERT_FAILED,
                (
                    book.config,
                    book.brand,
                    book.destination,
                    kind,
                    period_start.isoformat(),
                    period_end.isoformat(),
                    label,
                    _now(),
                    error,
                ),
            )

    @_serialized
    def record_counts(
        self, book: Book, period_start: datetime, label: str, late_rows: int | None, held_rows: int | None
    ) -> None:
        """Remember how many of a delivered period's rows came late and how many were held back."""
        self._write(
            UPSERT_COUNTS,
            (
                book.config,
                book.brand,
                book.destination,
                period_start.isoformat(),
                label,
                late_rows,
                held_rows,
                _now(),
            ),
        )

    @_serialized
    def counts(self, book: Book) -> list[PeriodCounts]:
        """Late and held rows per delivered period, oldest first."""
        rows = self._rows(SELECT_COUNTS, (book.config, book.brand, book.destination))
        return [PeriodCounts(row["period_label"], row["late_rows"], row["held_rows"]) for row in rows]


def _read_only(path: Path) -> sqlite3.Connection:
    """The ledger opened for reading only; an empty one in memory when there is none yet."""
    try:
        if not path.exists():
            db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            return db
        db = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro",
            uri=True,
            timeout=BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
            check_same_thread=False,
        )
        tables = {row[0] for row in db.execute("select name from sqlite_master where type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise _open_error(path, exc) from None
    if "meta" not in tables and "deliveries" in tables:
        db.close()
        raise ExportError(
            f"ledger {path}: written by an earlier version; `activity-export run` migrates it "
            "(reading it alone does not change it)"
        )
    return db


def _open_error(path: Path, exc: sqlite3.DatabaseError) -> ExportError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return ExportError(
            f"ledger {path}: locked by another process for more than {BUSY_TIMEOUT_SECONDS:g}s; "
            "is another activity-export or a sqlite3 shell holding it open? Try again when it is done."
        )
    return ConfigError(
        f"ledger {path}: not a readable activity-export ledger ({text}). If --ledger points at the "
        "wrong file, correct it; if the ledger is damaged, restore it from its backup."
    )


class RunLedgers:
    """The ledger connections of one run, handed to its tenants (``open``).

    SQLite: one connection shared by every thread of the run, opened (and migrated) once; its
    calls take turns (``_serialized``). PostgreSQL: a connection per tenant, because its
    read-then-write steps are transactions on the connection.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._shared: Ledger | None = None
        self._lock = threading.Lock()

    @contextmanager
    def open(self) -> Iterator[Ledger]:
        if is_postgres(self.path):
            with Ledger(self.path) as ledger:
                yield ledger
            return
        with self._lock:
            if self._shared is None:
                self._shared = Ledger(self.path)
        yield self._shared

    def close(self) -> None:
        with self._lock:
            if self._shared is not None:
                self._shared.close()
                self._shared = None


def is_postgres(location: Path) -> bool:
    """Whether a ledger location is a PostgreSQL URL (the shared ledger) rather than a SQLite file."""
    return str(location).startswith(("postgresql:", "postgres:"))


def _lock_name(brand: str) -> str:
    """A file name for a brand's lock: the brand itself when it is short enough, else its hash."""
    if len(brand.encode()) <= 100:
        return f"{brand}.lock"
    return f"{brand[:40]}-{hashlib.sha256(brand.encode()).hexdigest()[:16]}.lock"


@contextmanager
def tenant_lock(ledger_path: Path, brand: str) -> Iterator[bool]:
    """An exclusive, non-blocking lock per tenant; yields False when another run holds it.

    Two runs started at once therefore never deliver the same tenant-period twice: the second one
    skips the tenant and says so. The lock is released when the process ends, however it ends.
    With a PostgreSQL ledger the lock is a row lock there, shared by workers on every machine.
    """
    if is_postgres(ledger_path):
        from activity_export.ledger_postgres import tenant_claim

        with tenant_claim(ledger_path, brand) as claimed:
            yield claimed
        return
    folder = ledger_path.parent / (ledger_path.name + ".locks")
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / _lock_name(brand), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield True
    finally:
        os.close(fd)
