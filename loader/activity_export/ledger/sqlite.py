"""The ledger in a SQLite file, next to the configuration (``activity-export.ledger.sqlite`` beside
``tenants.yml`` unless ``--ledger`` says otherwise), and the per-tenant lock files beside it.

Not in the warehouse: what was delivered is a fact about the deliveries a configuration made, it
must survive a rebuild of the warehouse, it must work the same on the DuckDB file (which dbt holds
open for writing while it builds) and on PostgreSQL, and the loader must never need write access to
the warehouse. One connection per run, shared by its threads (``serialized``).

Schema versions: 1 kept one set of rows per brand (migrated under an unknown configuration, then
claimed by ``register``); 2 keyed every row by configuration and destination; 3 added ``webhooks``;
4 keeps a webhook event's body and whether it is still ``pending`` (sent again by later runs); 5
the tenant's schedule.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from activity_export.errors import ConfigError, ExportError
from activity_export.folders import PRIVATE, make_folders
from activity_export.ledger.base import (
    SCHEMA_VERSION,
    Book,
    Ledger,
    TenantEntry,
    now_text,
    serialized,
)

BUSY_TIMEOUT_SECONDS = 15.0

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
    schedule text,                    -- schedule_of() the tenant's interval, timezone and run_at
    schedule_from text,               -- UTC instant the current schedule's periods start from
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
create table if not exists webhooks (
    webhook_id integer primary key autoincrement,
    config text not null,
    brand text not null,
    destination text not null,
    period_label text not null,
    event text not null,              -- delivered, failed, overdue
    delivery_id text not null,        -- the event's id, in its headers and body
    ok integer not null,
    attempts integer not null,
    detail text,                      -- HTTP status or the error, never the secret or the URL
    sent_at text not null,
    body text,                        -- the event's exact JSON, kept to send it again
    pending integer not null default 0,  -- 1: not accepted yet, a later run sends it again
    created_at text                   -- when the event was first sent
);
"""

# Version 1 (one set of rows per brand, whoever wrote them): moved aside, then copied in under an
# unknown configuration (''); a configuration claims a brand's rows on first use when they were
# delivered to the destination it has now (see ``register``).
MIGRATE_FROM_1 = """
alter table deliveries rename to deliveries_v1;
alter table attempts rename to attempts_v1;
"""
# Version 5: the tenant's schedule, so a change of interval, timezone or run_at is noticed.
MIGRATE_TO_5 = """
alter table tenants add column schedule text;
alter table tenants add column schedule_from text;
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
MIGRATE_FROM_3 = """
alter table webhooks add column body text;
alter table webhooks add column pending integer not null default 0;
alter table webhooks add column created_at text;
"""


def _legacy_key(described: str) -> str:
    """The destination key of a version-1 row, from what it recorded (``Destination.describe()``)."""
    if described.startswith("local folder "):
        return f"local:{Path(described.removeprefix('local folder ')).resolve()}"
    match = re.fullmatch(r"sftp://([^@]*)@(.*):(\d+)(/.*)?", described)
    if match:
        user, host, port, root = match.groups()
        return f"sftp://{user}@{host.lower()}:{port}{PurePosixPath(root or '/')}"
    return described


class SqliteLedger(Ledger):
    """The ledger in a SQLite file.

    A ledger that cannot be opened (locked for longer than ``BUSY_TIMEOUT_SECONDS``, damaged, or
    not a SQLite database at all) is one ``ExportError`` naming the file and what to do.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """Open (create, migrate) the ledger; ``read_only`` creates nothing and reads a missing one
        as empty (``status``, ``check``, ``run --dry-run``)."""
        super().__init__()
        self.path = path
        self.location = str(path)
        if read_only:
            self._db = _read_only(path)
            self._db.row_factory = sqlite3.Row
            return
        try:
            make_folders(path.parent, PRIVATE)
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
            if version == 3:
                self._execute_all(MIGRATE_FROM_3)
            if version in (2, 3, 4):
                self._execute_all(MIGRATE_TO_5)
            if version < SCHEMA_VERSION:
                self._execute_all(SCHEMA)
                if version == 1:
                    self._copy_from_1()
                self._db.execute(
                    "insert or replace into meta (name, value) values ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            # Every run marks each tenant's unfinished attempts (``interrupt_unfinished``): without
            # this index a scan of every attempt ever made, per tenant, under the ledger's lock
            # (4.7 ms per tenant with 21,000 attempts, growing by one per tenant and period). Made
            # here, not in SCHEMA, so ledgers created before it get it too; the PostgreSQL ledger
            # has the same index.
            self._db.execute(
                "create index if not exists attempts_by_tenant on attempts (config, brand, outcome)"
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

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        return self._db.execute(sql, args).fetchall()

    def _write(self, sql: str, args: tuple[Any, ...] = (), *, durable: bool = True) -> int:
        if durable:
            return self._db.execute(sql, args).rowcount
        with self._synchronous_normal():
            return self._db.execute(sql, args).rowcount

    @contextmanager
    def _synchronous_normal(self) -> Iterator[None]:
        """Commit without waiting for the disk (the WAL is still written before the call returns,
        so a killed process loses nothing): the next durable commit syncs it along. Each sync
        costs 2 ms here, and the threads of a run take turns on the ledger, so a run over 10,000
        tenants spent most of its time waiting for seven syncs per tenant; three remain, before
        each file is published and at the end of each period's attempt."""
        self._db.execute("pragma synchronous = normal")
        try:
            yield
        finally:
            self._db.execute("pragma synchronous = full")

    @serialized
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
                (book.config, book.brand, book.destination, first_period.isoformat(), now_text()),
            )
            self._db.execute("commit")
        except BaseException:
            self._db.execute("rollback")
            raise
        entry = self.tenant(book.config, book.brand)
        assert entry is not None
        return entry

    @serialized
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

    @serialized
    def start_attempt(self, book: Book, period_start: datetime, label: str) -> int:
        with self._synchronous_normal():  # durable with the first file's `uploading`
            cursor = self._db.execute(
                "insert into attempts (config, brand, destination, period_start, period_label, started_at) "
                "values (?, ?, ?, ?, ?, ?)",
                (book.config, book.brand, book.destination, period_start.isoformat(), label, now_text()),
            )
        return int(cursor.lastrowid or 0)


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
    _read_as_current(db, tables)
    return db


def _read_as_current(db: sqlite3.Connection, tables: set[str]) -> None:
    """Let a reader see an empty (zero-byte) or older ledger as the current schema, without
    changing the file: missing tables and columns are stood in for by empty temporary ones,
    which exist only on this connection."""
    for statement in SCHEMA.split(";"):
        name = re.search(r"create table if not exists (\w+)", statement)
        if name and name.group(1) not in tables:
            db.execute(statement.replace("create table", "create temp table", 1))
    if "webhooks" in tables:
        columns = {row[1] for row in db.execute("pragma main.table_info(webhooks)")}
        if "pending" not in columns:  # schema 3: nothing is pending
            db.execute(
                "create temp view webhooks as select *, null as body, 0 as pending, "
                "sent_at as created_at from main.webhooks"
            )


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


def _lock_name(brand: str) -> str:
    """A file name for a brand's lock: the brand itself when it is short enough, else its hash."""
    if len(brand.encode()) <= 100:
        return f"{brand}.lock"
    return f"{brand[:40]}-{hashlib.sha256(brand.encode()).hexdigest()[:16]}.lock"


def lock_file(ledger_path: Path, brand: str) -> Path:
    """A tenant's lock file: in a folder beside the ledger, holding the pid of the run with it."""
    return ledger_path.parent / (ledger_path.name + ".locks") / _lock_name(brand)


@contextmanager
def file_lock(ledger_path: Path, brand: str) -> Iterator[bool]:
    """An exclusive, non-blocking lock file per tenant beside the ledger; yields False when another
    run holds it. The lock is released when the process ends, however it ends."""
    path = lock_file(ledger_path, brand)
    folder = path.parent
    try:
        make_folders(folder, PRIVATE)
        info = os.lstat(folder)
    except OSError as exc:
        raise ExportError(f"lock folder {folder}: cannot create it: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        # someone else's folder (or a link) could hold a link at the lock's name
        raise ExportError(
            f"lock folder {folder}: must be a folder of this user that no one else can write "
            "(not a link); remove it or correct its owner and mode"
        )
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        raise ExportError(f"lock file {path}: cannot open it ({exc.strerror}); is it a link?") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ExportError(f"lock file {path}: not a regular file; remove it")
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
