"""The shared ledger: the same records as the SQLite ledger, in PostgreSQL, for workers on many machines.

Opt-in with ``--ledger postgresql://user@host:port/dbname`` (or ``ACTIVITY_EXPORT_LEDGER``); the
password comes from ``PGPASSWORD`` or ``~/.pgpass`` as for any libpq client, never from a log line.
The tables live in the schema ``activity_export_ledger``, created on first use.

Any number of ``activity-export run`` processes, on any machines, may share one such ledger. A
worker delivers a tenant only while it holds that tenant's row in ``claims`` locked
(``select ... for update skip locked`` in a transaction kept open for the tenant's delivery); a
worker that finds the row locked skips the tenant, as with the file lock of the SQLite ledger. So
there is no static shard to rebalance when workers come and go: every worker walks every tenant
and takes the free ones. The unit of a claim is the tenant, not the single period, because a
tenant's periods must arrive in order. A worker that dies, however it dies, loses its connection
and with it the lock; the next worker that tries the tenant finishes what the dead one left
(a file recorded as ``uploading`` whose final name holds the recorded SHA-256 is not sent again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import psycopg2  # type: ignore[import-untyped]  # no stubs installed; used through Any
import psycopg2.extras  # type: ignore[import-untyped]

from activity_export.errors import ConfigError, ExportError
from activity_export.ledger.base import SCHEMA_VERSION, Book, Claim, Ledger, TenantEntry, now_text
from activity_export.ledger.location import PostgresUrl, scrubbed

SCHEMA_NAME = "activity_export_ledger"

log = logging.getLogger(__name__)
T = TypeVar("T")


CONNECT_TIMEOUT_SECONDS = 10
# A worker whose machine vanishes holds its claims until PostgreSQL notices the dead connection.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}

SCHEMA = f"""
create schema if not exists {SCHEMA_NAME};
set local search_path to {SCHEMA_NAME};
create table if not exists meta (
    name text primary key,
    value text not null
);
create table if not exists tenants (
    config text not null,
    brand text not null,
    destination text not null,
    first_period text not null,
    registered_at text not null,
    accepted_from text,
    accepted_at text,
    primary key (config, brand)
);
alter table tenants add column if not exists schedule text;
alter table tenants add column if not exists schedule_from text;
create table if not exists deliveries (
    config text not null,
    brand text not null,
    destination text not null,
    kind text not null,
    period_start text not null,
    period_end text not null,
    period_label text not null,
    status text not null check (status in ('uploading', 'delivered', 'failed')),
    remote_path text,
    rows bigint,
    bytes bigint,
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
    late_rows bigint,
    held_rows bigint,
    recorded_at text not null,
    primary key (config, brand, destination, period_start)
);
create table if not exists attempts (
    attempt_id bigint generated always as identity primary key,
    config text not null,
    brand text not null,
    destination text not null,
    period_start text not null,
    period_label text not null,
    started_at text not null,
    finished_at text,
    outcome text,
    error text
);
create index if not exists attempts_by_tenant on attempts (config, brand, outcome);
create table if not exists claims (
    brand text primary key
);
create table if not exists webhooks (
    webhook_id bigint generated always as identity primary key,
    config text not null,
    brand text not null,
    destination text not null,
    period_label text not null,
    event text not null,
    delivery_id text not null,
    ok integer not null,
    attempts integer not null,
    detail text,
    sent_at text not null
);
alter table webhooks add column if not exists body text;
alter table webhooks add column if not exists pending integer not null default 0;
alter table webhooks add column if not exists created_at text;
"""
# every worker may start at once: one of them creates the schema, the others wait for it
SCHEMA_LOCK = 0x61657870  # "aexp"


def _connect(location: PostgresUrl) -> Any:
    try:
        connection = psycopg2.connect(location.url, connect_timeout=CONNECT_TIMEOUT_SECONDS, **KEEPALIVES)
    except psycopg2.OperationalError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        message = scrubbed(message, location.url)  # libpq may quote a host or user cut from it
        raise ExportError(f"ledger {location}: cannot connect: {message}") from None
    except psycopg2.ProgrammingError:  # its text may quote the URL, password included
        raise ConfigError(f"ledger {location}: not a usable PostgreSQL URL") from None
    connection.autocommit = True
    return connection


def _pg(statement: str) -> str:
    """A statement shared with the SQLite ledger (``statements.py``), with psycopg2's placeholders."""
    return statement.replace("?", "%s")


class PostgresLedger(Ledger):
    """The ledger's interface (``base.Ledger``) on a PostgreSQL database.

    Every statement commits on its own (autocommit), as every step of the SQLite ledger does; the
    few read-then-write steps run in one transaction under the tenant's row lock. The steps whose
    SQL is the same on both are inherited and reach PostgreSQL through ``_rows`` and ``_write``;
    this class holds the schema and the steps that differ (``register``, ``delivered_starts``,
    ``start_attempt``).
    """

    def __init__(self, url: PostgresUrl, *, read_only: bool = False) -> None:
        """Connect and create the schema if it is missing (also for ``read_only``: an empty ledger
        reads as empty, and creating the empty tables changes nothing a reader could see)."""
        super().__init__()
        self.location = str(url)
        self._url = url
        self._pg = _connect(url)
        try:
            with self._pg.cursor() as cursor:
                cursor.execute("begin")
                cursor.execute("select pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                cursor.execute(SCHEMA)
                cursor.execute(
                    "insert into meta (name, value) values ('schema_version', %s) "
                    "on conflict (name) do update set value = excluded.value "
                    "where meta.value::int < excluded.value::int",
                    (str(SCHEMA_VERSION),),
                )
                cursor.execute("commit")
                cursor.execute(f"set search_path to {SCHEMA_NAME}")
        except psycopg2.Error as exc:
            self._pg.close()
            raise ExportError(f"ledger {self.location}: cannot create its tables: {exc}") from None

    def close(self) -> None:
        self._pg.close()

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        def rows() -> list[dict[str, Any]]:
            with self._pg.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
                cursor.execute(sql, args)
                return [dict(row) for row in cursor.fetchall()]

        return self._again_after_a_restart(rows)

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        rows = self._all(sql, args)
        return rows[0] if rows else None

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        def count() -> int:
            with self._pg.cursor() as cursor:
                cursor.execute(sql, args)
                return int(cursor.rowcount)

        return self._again_after_a_restart(count)

    def _again_after_a_restart(self, step: Callable[[], T]) -> T:
        """``step``, once more on a new connection when the server ended this one (a restart):
        each step is one statement committing on its own, so the failure a run then records, or
        what it reads next, still reaches the ledger. A second loss is the run's error."""
        try:
            return step()
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            if not self._pg.closed:
                raise
        log.warning("ledger %s: its connection ended (a server restart?); connecting again", self.location)
        self._pg = _connect(self._url)
        try:
            with self._pg.cursor() as cursor:
                cursor.execute(f"set search_path to {SCHEMA_NAME}")
            return step()
        except psycopg2.Error as exc:
            reason = scrubbed(str(exc).strip(), self._url.url)
            raise ExportError(f"ledger {self.location}: {reason}") from None

    # the statements shared with the SQLite ledger (see Ledger._rows and Ledger._write)

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        return self._all(_pg(sql), args)

    def _write(self, sql: str, args: tuple[Any, ...] = (), *, durable: bool = True) -> int:
        return self._run(_pg(sql), args)  # every commit is durable (the server's setting)

    # -- tenants ---------------------------------------------------------------------------------

    def register(self, book: Book, first_period: datetime) -> TenantEntry:
        self._run(
            "insert into tenants (config, brand, destination, first_period, registered_at) "
            "values (%s, %s, %s, %s, %s) on conflict (config, brand) do nothing",
            (book.config, book.brand, book.destination, first_period.isoformat(), now_text()),
        )
        entry = self.tenant(book.config, book.brand)
        assert entry is not None
        return entry

    # -- deliveries ------------------------------------------------------------------------------

    def delivered_starts(self, book: Book, kinds: list[str]) -> set[datetime]:
        rows = self._all(
            "select period_start, count(distinct kind) as kinds from deliveries "
            "where config = %s and brand = %s and destination = %s and status = 'delivered' "
            "and kind = any(%s) group by period_start",
            (book.config, book.brand, book.destination, list(kinds)),
        )
        return {datetime.fromisoformat(row["period_start"]) for row in rows if row["kinds"] == len(kinds)}

    def start_attempt(self, book: Book, period_start: datetime, label: str) -> int:
        row = self._one(
            "insert into attempts (config, brand, destination, period_start, period_label, started_at) "
            "values (%s, %s, %s, %s, %s, %s) returning attempt_id",
            (book.config, book.brand, book.destination, period_start.isoformat(), label, now_text()),
        )
        assert row is not None
        return int(row["attempt_id"])


class PostgresClaim(Claim):
    """A tenant's ``claims`` row, locked by a transaction on a connection of its own."""

    def __init__(self, connection: Any, location: PostgresUrl, brand: str) -> None:
        self._connection = connection
        self._location = location
        self._brand = brand

    def check(self) -> None:
        """The row lock lasts as long as the connection: a restart of the ledger's server, or a
        terminated backend, ends it, and another worker may hold the tenant now."""
        try:
            with self._connection.cursor() as cursor:
                cursor.execute("select 1")
        except psycopg2.Error:
            raise ExportError(
                f"lost its claim on tenant {self._brand} in the ledger {self._location} (its "
                "connection ended: a restart of the ledger's server?); nothing more is published "
                "by this run, and another worker or the next run goes on from the ledger"
            ) from None


@contextmanager
def tenant_claim(location: PostgresUrl, brand: str) -> Iterator[PostgresClaim | None]:
    """Claim a tenant for this worker: its ``claims`` row locked, or None when another holds it.

    The lock is a transaction on a connection of its own, kept open until the tenant is done;
    it ends with the connection, so a killed worker's claims are free again at once, and a
    worker checks it before each file it publishes (``PostgresClaim.check``).
    """
    connection = _connect(location)
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"set search_path to {SCHEMA_NAME}")
            # a claim is held while files upload, which may take long: no idle timeout may end it
            cursor.execute("set idle_in_transaction_session_timeout = 0")
            cursor.execute("insert into claims (brand) values (%s) on conflict do nothing", (brand,))
            cursor.execute("begin")
            cursor.execute("select brand from claims where brand = %s for update skip locked", (brand,))
            claimed = cursor.fetchone() is not None
        yield PostgresClaim(connection, location, brand) if claimed else None
    finally:
        try:  # release the row lock now: a closed connection's backend releases it a moment later
            with connection.cursor() as cursor:
                cursor.execute("rollback")
        except psycopg2.Error:
            pass  # the connection is gone, and the lock with it
        connection.close()
