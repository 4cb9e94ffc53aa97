"""The ledger: a durable record of every file delivered, per configuration, tenant and destination.

Two implementations of one interface (``base.Ledger``): a SQLite file beside the configuration
(``sqlite.py``, the default) and a PostgreSQL database shared by workers on many machines
(``postgres.py``, ``--ledger postgresql://...``). Where it lives is parsed once
(``parse_location``); ``open_ledger`` and ``tenant_lock`` take what that returned.

Nothing outside this package touches ``sqlite3`` or ``psycopg2``, and nothing in it reads the
configuration: a destination brings its own key.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from activity_export.ledger.base import (
    Book,
    Claim,
    DestinationChanged,
    Ledger,
    PeriodCounts,
    Record,
    ScheduleChanged,
    TenantEntry,
    TenantLedger,
    WebhookStatus,
)
from activity_export.ledger.location import (
    Location,
    PostgresUrl,
    config_key,
    default_ledger_path,
    ledger_location,
    parse_location,
)
from activity_export.ledger.sqlite import SqliteLedger, file_lock, lock_file

__all__ = [
    "Book",
    "Claim",
    "DestinationChanged",
    "Ledger",
    "Location",
    "PeriodCounts",
    "PostgresUrl",
    "Record",
    "RunLedgers",
    "ScheduleChanged",
    "TenantEntry",
    "TenantLedger",
    "WebhookStatus",
    "config_key",
    "default_ledger_path",
    "ledger_exists",
    "ledger_location",
    "lock_holder",
    "open_ledger",
    "parse_location",
    "tenant_lock",
]


def open_ledger(location: Location, *, read_only: bool = False) -> Ledger:
    """Open (create, migrate) the ledger; ``read_only`` creates no file and reads a missing ledger
    as empty (``status``, ``check``, ``run --dry-run``)."""
    if isinstance(location, PostgresUrl):
        from activity_export.ledger.postgres import PostgresLedger  # psycopg2 only when used

        return PostgresLedger(location, read_only=read_only)
    return SqliteLedger(location, read_only=read_only)


def ledger_exists(location: Location) -> bool:
    """Whether there may be anything recorded there (a PostgreSQL ledger is asked; a file must exist)."""
    return isinstance(location, PostgresUrl) or location.is_file()


@contextmanager
def tenant_lock(location: Location, brand: str) -> Iterator[Claim | None]:
    """An exclusive, non-blocking lock per tenant: the run's ``Claim``, or None when another run
    holds it.

    Two runs started at once therefore never deliver the same tenant-period twice: the second one
    skips the tenant and says so. With a SQLite ledger it is a lock file beside it, released when
    the process ends however it ends; with a PostgreSQL ledger a row lock there, shared by workers
    on every machine.
    """
    if isinstance(location, PostgresUrl):
        from activity_export.ledger.postgres import tenant_claim

        with tenant_claim(location, brand) as claim:
            yield claim
        return
    with file_lock(location, brand) as locked:
        yield Claim() if locked else None


def lock_holder(location: Location, brand: str) -> str:
    """Who holds a tenant's lock, and for how long (wall-clock time, whatever ``--now`` says), as
    far as can be told."""
    if isinstance(location, PostgresUrl):
        return "a worker sharing the ledger"
    try:
        path = lock_file(location, brand)
        pid = path.read_text().strip() or "?"
        held = datetime.now(UTC) - datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except (OSError, ValueError):
        return "another process"
    return f"pid {pid}, for {held.total_seconds() / 3600:.1f}h"


class RunLedgers:
    """The ledger connections of one run, handed to its tenants (``open``).

    SQLite: one connection shared by every thread of the run, opened (and migrated) once; its
    calls take turns. PostgreSQL: a connection per tenant, because its read-then-write steps are
    transactions on the connection.
    """

    def __init__(self, location: Location) -> None:
        self.location = location
        self._shared: Ledger | None = None
        self._lock = threading.Lock()

    @contextmanager
    def open(self) -> Iterator[Ledger]:
        if isinstance(self.location, PostgresUrl):
            with open_ledger(self.location) as ledger:
                yield ledger
            return
        with self._lock:
            if self._shared is None:
                self._shared = open_ledger(self.location)
        yield self._shared

    def close(self) -> None:
        with self._lock:
            if self._shared is not None:
                self._shared.close()
                self._shared = None
