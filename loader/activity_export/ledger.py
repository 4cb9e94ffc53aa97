"""The ledger: a durable record of every file delivered, per tenant, kind and period.

It lives in a SQLite file next to the configuration (``activity-export.ledger.sqlite`` beside
``tenants.yml`` unless ``--ledger`` says otherwise), not in the warehouse: what was delivered is a
fact about the deliveries this configuration made, it must survive a rebuild of the warehouse, it
must work the same on the DuckDB file (which dbt holds open for writing while it builds) and on
PostgreSQL, and the loader must never need write access to the warehouse.

Every step is committed before the next one starts, so a crash at any point leaves a state the
next run can finish: a file marked ``uploading`` whose final name exists on the destination with
the recorded size was delivered (only the ledger write was lost); otherwise it is uploaded again
under the same name.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from activity_export.errors import ExportError

SCHEMA = """
create table if not exists deliveries (
    brand text not null,
    kind text not null,               -- activity, broadcast, manifest
    period_start text not null,       -- UTC, ISO 8601
    period_end text not null,
    period_label text not null,       -- local, e.g. 2026-11-25 or 2026-11-25T13
    status text not null check (status in ('uploading', 'delivered', 'failed')),
    remote_path text,
    destination text,
    rows integer,
    bytes integer,
    sha256 text,
    attempts integer not null default 0,
    started_at text,
    delivered_at text,
    error text,
    primary key (brand, kind, period_start)
);
create table if not exists attempts (
    attempt_id integer primary key autoincrement,
    brand text not null,
    period_start text not null,
    period_label text not null,
    started_at text not null,
    finished_at text,
    outcome text,                     -- delivered, failed, or null while running
    error text
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def default_ledger_path(config_path: Path) -> Path:
    return config_path.resolve().parent / "activity-export.ledger.sqlite"


@dataclass(frozen=True)
class Record:
    """One row of the ledger."""

    brand: str
    kind: str
    period_start: str
    period_end: str
    period_label: str
    status: str
    remote_path: str | None
    destination: str | None
    rows: int | None
    bytes: int | None
    sha256: str | None
    attempts: int
    started_at: str | None
    delivered_at: str | None
    error: str | None


class Ledger:
    """Reads and writes the ledger; one instance per run (and per thread)."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """Open (and create) the ledger; ``read_only`` creates nothing and reads a missing one as empty."""
        self.path = path
        try:
            if read_only:
                self._db = _read_only(path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
                self._db.execute("pragma journal_mode = wal")
                self._db.execute("pragma synchronous = full")
                self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise ExportError(f"ledger {path}: {exc}") from None
        self._db.row_factory = sqlite3.Row

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def records(self, brand: str | None = None) -> list[Record]:
        sql = "select * from deliveries"
        args: tuple[str, ...] = ()
        if brand:
            sql += " where brand = ?"
            args = (brand,)
        sql += " order by brand, period_start, kind"
        return [Record(**dict(row)) for row in self._db.execute(sql, args)]

    def period_records(self, brand: str, period_start: datetime) -> dict[str, Record]:
        rows = self._db.execute(
            "select * from deliveries where brand = ? and period_start = ?",
            (brand, period_start.isoformat()),
        )
        return {row["kind"]: Record(**dict(row)) for row in rows}

    def is_delivered(self, brand: str, period_start: datetime, kinds: list[str]) -> bool:
        records = self.period_records(brand, period_start)
        return all(kind in records and records[kind].status == "delivered" for kind in kinds)

    def start_attempt(self, brand: str, period_start: datetime, label: str) -> int:
        cursor = self._db.execute(
            "insert into attempts (brand, period_start, period_label, started_at) values (?, ?, ?, ?)",
            (brand, period_start.isoformat(), label, _now()),
        )
        return int(cursor.lastrowid or 0)

    def finish_attempt(self, attempt_id: int, outcome: str, error: str | None = None) -> None:
        self._db.execute(
            "update attempts set finished_at = ?, outcome = ?, error = ? where attempt_id = ?",
            (_now(), outcome, error, attempt_id),
        )

    def uploading(
        self,
        brand: str,
        kind: str,
        period_start: datetime,
        period_end: datetime,
        label: str,
        remote_path: str,
        destination: str,
        rows: int,
        size: int,
        sha256: str,
    ) -> None:
        """Record that a written file is about to be published (committed before the upload)."""
        self._db.execute(
            """
            insert into deliveries (brand, kind, period_start, period_end, period_label, status,
                remote_path, destination, rows, bytes, sha256, attempts, started_at)
            values (?, ?, ?, ?, ?, 'uploading', ?, ?, ?, ?, ?, 1, ?)
            on conflict (brand, kind, period_start) do update set
                status = 'uploading', remote_path = excluded.remote_path,
                destination = excluded.destination, rows = excluded.rows,
                bytes = excluded.bytes, sha256 = excluded.sha256,
                attempts = deliveries.attempts + 1, started_at = excluded.started_at,
                error = null
            """,
            (
                brand,
                kind,
                period_start.isoformat(),
                period_end.isoformat(),
                label,
                remote_path,
                destination,
                rows,
                size,
                sha256,
                _now(),
            ),
        )

    def delivered(self, brand: str, kind: str, period_start: datetime, remote_path: str) -> None:
        self._db.execute(
            """
            update deliveries set status = 'delivered', delivered_at = ?, remote_path = ?, error = null
            where brand = ? and kind = ? and period_start = ?
            """,
            (_now(), remote_path, brand, kind, period_start.isoformat()),
        )

    def failed(
        self, brand: str, period_start: datetime, period_end: datetime, label: str, error: str
    ) -> None:
        """Mark a period's files that are not delivered as failed, with the (secret-free) error."""
        for kind in ("activity", "broadcast"):
            self._db.execute(
                """
                insert into deliveries (brand, kind, period_start, period_end, period_label,
                    status, attempts, started_at, error)
                values (?, ?, ?, ?, ?, 'failed', 1, ?, ?)
                on conflict (brand, kind, period_start) do update set
                    status = case when deliveries.status = 'delivered' then 'delivered'
                                  else 'failed' end,
                    attempts = case when deliveries.status = 'uploading'
                                    then deliveries.attempts else deliveries.attempts + 1 end,
                    error = excluded.error
                """,
                (brand, kind, period_start.isoformat(), period_end.isoformat(), label, _now(), error),
            )


def _read_only(path: Path) -> sqlite3.Connection:
    """The ledger opened for reading only; an empty one in memory when there is none yet."""
    if not path.exists():
        db = sqlite3.connect(":memory:", check_same_thread=False)
        db.executescript(SCHEMA)
        return db
    return sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro",
        uri=True,
        timeout=60,
        isolation_level=None,
        check_same_thread=False,
    )


@contextmanager
def tenant_lock(ledger_path: Path, brand: str) -> Iterator[bool]:
    """An exclusive, non-blocking lock per tenant; yields False when another run holds it.

    Two runs started at once therefore never deliver the same tenant-period twice: the second one
    skips the tenant and says so. The lock is released when the process ends, however it ends.
    """
    folder = ledger_path.parent / (ledger_path.name + ".locks")
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f"{brand}.lock", os.O_RDWR | os.O_CREAT, 0o644)
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
