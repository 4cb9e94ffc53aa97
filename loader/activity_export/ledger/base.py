"""The ledger's interface and the steps both ledgers share (``sqlite.py``, ``postgres.py``).

Everything is recorded under a ``Book``: the configuration file, the brand and the destination
(``Destination.key``). Two configuration files sharing one ledger never count each other's
deliveries, and files delivered to an old destination never count for a new one. The ``tenants``
table remembers, per configuration and brand, the destination deliveries go to and the first
period the tenant ever had (the anchor from which nothing may be skipped); a tenant whose
configured destination differs from the recorded one is reported (``DestinationChanged``) until an
operator accepts the new destination (``accept_destination``).

Every step is committed before the next one starts, so a crash at any point leaves a state the
next run can finish: a file marked ``uploading`` whose final name holds a file with the recorded
SHA-256 was delivered (only the ledger write was lost); otherwise it is uploaded again under the
same name. An attempt that never got an outcome (a killed run) is marked ``interrupted`` by the
next run. Webhook outcomes are kept beside the deliveries, keyed the same way, for ``status``.

Every shared statement (``statements.py``) runs through ``_rows`` and ``_write``, which each
ledger implements; the steps whose SQL differs (``register``, ``delivered_starts``,
``start_attempt``) are abstract.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import wraps
from typing import Any, TypeVar, cast

from activity_export.errors import ExportError
from activity_export.ledger import statements as sql

SCHEMA_VERSION = 5
OUTCOMES = ("delivered", "failed", "interrupted")


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class DestinationChanged(ExportError):
    """A tenant's configured destination is not the one its deliveries so far went to."""

    def __init__(self, brand: str, recorded: str, configured: str) -> None:
        super().__init__(
            f"destination changed: deliveries so far went to {recorded}, the configuration now says "
            f"{configured}. Nothing is delivered until you decide: to deliver to the new destination "
            f"from the period after the last one delivered to the old one, run `activity-export run "
            f"--brand {brand} --accept-destination` (send earlier periods there with "
            "`backfill`); to keep the old destination, change the configuration back."
        )
        self.recorded = recorded
        self.configured = configured


class ScheduleChanged(ExportError):
    """A tenant's interval, timezone or run_at is not the one its deliveries so far followed."""

    def __init__(self, brand: str, recorded: str, configured: str) -> None:
        super().__init__(
            f"schedule changed: deliveries so far followed {recorded}, the configuration now says "
            f"{configured}. Nothing is delivered until you decide: to continue on the new schedule "
            "from the end of the last period delivered (the first new period then starts there, so "
            f"nothing is missed or sent twice), run `activity-export run --brand {brand} "
            "--accept-schedule`; to keep the old schedule, change the configuration back."
        )
        self.recorded = recorded
        self.configured = configured


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
    schedule: str | None = None  # None: recorded before schedules were (taken as the current one)
    schedule_from: datetime | None = None  # where the current schedule's periods start, after a change


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


@dataclass(frozen=True)
class WebhookStatus:
    """The last webhook outcome of a tenant, for ``status``."""

    last_event: str
    last_period: str
    ok: bool
    detail: str
    at: str
    failures: int  # events the webhook did not accept, all time
    pending: int = 0  # events not accepted yet that later runs send again


@dataclass(frozen=True)
class PendingWebhook:
    """An event the webhook has not accepted yet, kept to be sent again with the same id."""

    delivery_id: str
    event: str
    period_label: str
    body: bytes
    created_at: datetime


_Method = TypeVar("_Method", bound=Callable[..., Any])


def serialized(method: _Method) -> _Method:
    """One call at a time per ledger: the threads of one run share a single SQLite connection.

    Waiting on a lock in the process is immediate; SQLite's own busy handler, which separate
    connections would meet, sleeps in steps of milliseconds and made the ledger the slowest part
    of a run over many small tenants.
    """

    @wraps(method)
    def one_at_a_time(self: Ledger, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return cast(_Method, one_at_a_time)


class Ledger(ABC):
    """Reads and writes the ledger; one instance per run, shared by its threads (``RunLedgers``),
    which take turns on it. ``location`` is what messages call it (never with a password)."""

    location: str

    def __init__(self) -> None:
        self._lock = threading.RLock()

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @abstractmethod
    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        """The rows of a shared statement, each readable by column name."""

    @abstractmethod
    def _write(self, sql: str, args: tuple[Any, ...] = (), *, durable: bool = True) -> int:
        """Run one shared statement (committed on its own); how many rows it changed.

        ``durable=False`` for a record nothing outside the run acts on before the next durable
        write (which makes it durable too): it survives the process being killed, and only a
        power cut right after it can lose it, with what the next run recovers anyway.
        """

    # -- tenants ---------------------------------------------------------------------------------

    @serialized
    def tenant(self, config: str, brand: str) -> TenantEntry | None:
        """The tenant as recorded for this configuration, or None before its first run."""
        rows = self._rows(sql.SELECT_TENANT, (config, brand))
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
            schedule=row["schedule"],
            schedule_from=datetime.fromisoformat(row["schedule_from"]) if row["schedule_from"] else None,
        )

    @abstractmethod
    def register(self, book: Book, first_period: datetime) -> TenantEntry:
        """Record a tenant at its first run, with the first period it is owed (or what it has)."""

    @serialized
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
        [found] = self._rows(sql.LAST_DELIVERED_END, (book.config, book.brand, entry.destination))
        last_end = found["last_end"]
        first = datetime.fromisoformat(last_end) if last_end else entry.first_period
        self._write(
            sql.ACCEPT_DESTINATION,
            (book.destination, first.isoformat(), entry.destination, now_text(), book.config, book.brand),
        )
        accepted = self.tenant(book.config, book.brand)
        assert accepted is not None
        return accepted

    @serialized
    def record_schedule(self, book: Book, schedule: str) -> TenantEntry:
        """Remember the schedule of a tenant that has none recorded (a first run, an older ledger)."""
        self._write(sql.SET_SCHEDULE, (schedule, None, book.config, book.brand))
        recorded = self.tenant(book.config, book.brand)
        assert recorded is not None
        return recorded

    @serialized
    def accept_schedule(self, book: Book, schedule: str) -> TenantEntry:
        """Follow ``schedule`` from now on, from the end of the last period delivered to the tenant's
        destination: the new schedule's first period starts exactly there (or, when nothing was
        delivered yet, where the tenant's first period does)."""
        entry = self.tenant(book.config, book.brand)
        if entry is None:
            raise ExportError(f"tenant {book.brand}: nothing recorded yet, so nothing to accept")
        [found] = self._rows(sql.LAST_DELIVERED_END, (book.config, book.brand, entry.destination))
        since = found["last_end"] or (entry.schedule_from.isoformat() if entry.schedule_from else None)
        self._write(sql.SET_SCHEDULE, (schedule, since, book.config, book.brand))
        accepted = self.tenant(book.config, book.brand)
        assert accepted is not None
        return accepted

    # -- deliveries ------------------------------------------------------------------------------

    @serialized
    def records(self, book: Book) -> list[Record]:
        rows = self._rows(sql.SELECT_RECORDS, (book.config, book.brand, book.destination))
        return [Record(**dict(row)) for row in rows]

    @serialized
    def period_records(self, book: Book, period_start: datetime) -> dict[str, Record]:
        rows = self._rows(
            sql.SELECT_PERIOD_RECORDS, (book.config, book.brand, book.destination, period_start.isoformat())
        )
        return {row["kind"]: Record(**dict(row)) for row in rows}

    @abstractmethod
    def delivered_starts(self, book: Book, kinds: list[str]) -> set[datetime]:
        """UTC starts of the periods whose files of every kind in ``kinds`` are delivered."""

    def is_delivered(self, book: Book, period_start: datetime, kinds: list[str]) -> bool:
        records = self.period_records(book, period_start)
        return all(kind in records and records[kind].status == "delivered" for kind in kinds)

    @abstractmethod
    def start_attempt(self, book: Book, period_start: datetime, label: str) -> int:
        """Record the start of an attempt at a period; its id for ``finish_attempt``."""

    @serialized
    def finish_attempt(self, attempt_id: int, outcome: str, error: str | None = None) -> None:
        assert outcome in OUTCOMES, outcome
        self._write(sql.FINISH_ATTEMPT, (now_text(), outcome, error, attempt_id))

    @serialized
    def interrupt_unfinished(self, book: Book) -> int:
        """Mark attempts a killed run left without an outcome as interrupted; how many there were.

        Called under the tenant's lock, so no other run is still working on them.
        """
        return self._write(sql.INTERRUPT_UNFINISHED, (now_text(), book.config, book.brand), durable=False)

    @serialized
    def attempts(self, book: Book) -> list[tuple[str, str | None]]:
        """(period label, outcome) of every attempt, oldest first."""
        rows = self._rows(sql.SELECT_ATTEMPTS, (book.config, book.brand, book.destination))
        return [(row["period_label"], row["outcome"]) for row in rows]

    @serialized
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
            sql.UPSERT_UPLOADING,
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
                now_text(),
            ),
        )

    @serialized
    def delivered(self, book: Book, kind: str, period_start: datetime, remote_path: str) -> None:
        # not durable on its own: the next file's `uploading` or the attempt's end is, and a file
        # recorded as uploading whose final name holds its SHA-256 counts as delivered
        self._write(
            sql.MARK_DELIVERED,
            (
                now_text(),
                remote_path,
                book.config,
                book.brand,
                book.destination,
                kind,
                period_start.isoformat(),
            ),
            durable=False,
        )

    @serialized
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
                sql.UPSERT_FAILED,
                (
                    book.config,
                    book.brand,
                    book.destination,
                    kind,
                    period_start.isoformat(),
                    period_end.isoformat(),
                    label,
                    now_text(),
                    error,
                ),
            )

    @serialized
    def record_counts(
        self, book: Book, period_start: datetime, label: str, late_rows: int | None, held_rows: int | None
    ) -> None:
        """Remember how many of a delivered period's rows came late and how many were held back."""
        self._write(
            sql.UPSERT_COUNTS,
            (
                book.config,
                book.brand,
                book.destination,
                period_start.isoformat(),
                label,
                late_rows,
                held_rows,
                now_text(),
            ),
            durable=False,  # statistics
        )

    @serialized
    def counts(self, book: Book) -> list[PeriodCounts]:
        """Late and held rows per delivered period, oldest first."""
        rows = self._rows(sql.SELECT_COUNTS, (book.config, book.brand, book.destination))
        return [PeriodCounts(row["period_label"], row["late_rows"], row["held_rows"]) for row in rows]

    # -- webhooks --------------------------------------------------------------------------------

    @serialized
    def record_webhook(
        self, book: Book, label: str, event: str, delivery_id: str, *, ok: bool, attempts: int, detail: str
    ) -> None:
        """Keep what became of one webhook event (``detail``: an HTTP status or the error, never
        the secret or the URL)."""
        self._write(
            sql.INSERT_WEBHOOK,
            (
                book.config,
                book.brand,
                book.destination,
                label,
                event,
                delivery_id,
                int(ok),
                attempts,
                detail,
                now_text(),
            ),
        )

    @serialized
    def webhook_status(self, config: str, brand: str) -> WebhookStatus | None:
        """The tenant's last webhook event and how many were not accepted; None when none was sent."""
        last = self._rows(sql.SELECT_LAST_WEBHOOK, (config, brand))
        if not last:
            return None
        [failed] = self._rows(sql.COUNT_WEBHOOK_FAILURES, (config, brand))
        [pending] = self._rows(sql.COUNT_PENDING_WEBHOOKS, (config, brand))
        row = last[0]
        return WebhookStatus(
            row["event"], row["period_label"], bool(row["ok"]), row["detail"] or "", row["sent_at"],
            int(failed["failures"]), int(pending["pending"]),
        )  # fmt: skip

    @serialized
    def record_webhook_event(
        self, book: Book, label: str, event: str, delivery_id: str, body: bytes, *, ok: bool, attempts: int,
        detail: str,
    ) -> None:  # fmt: skip
        """Keep one webhook event with its exact body; one not accepted stays pending."""
        now = now_text()
        self._write(
            sql.INSERT_WEBHOOK_EVENT,
            (
                book.config, book.brand, book.destination, label, event, delivery_id, int(ok), attempts,
                detail, now, body.decode("utf-8"), int(not ok), now,
            ),
        )  # fmt: skip

    @serialized
    def pending_webhooks(self, book: Book) -> list[PendingWebhook]:
        """The tenant's events not accepted yet, oldest first."""
        return [
            PendingWebhook(
                row["delivery_id"],
                row["event"],
                row["period_label"],
                (row["body"] or "").encode("utf-8"),
                datetime.fromisoformat(row["created_at"] or row["sent_at"]),
            )
            for row in self._rows(sql.SELECT_PENDING_WEBHOOKS, (book.config, book.brand))
        ]

    @serialized
    def update_webhook(
        self, book: Book, delivery_id: str, *, ok: bool, pending: bool, attempts: int, detail: str
    ) -> None:
        """What became of sending a kept event again (``pending``: keep sending it)."""
        self._write(
            sql.UPDATE_WEBHOOK,
            (int(ok), int(pending), attempts, detail, now_text(), book.config, book.brand, delivery_id),
        )


class Claim:
    """A tenant held by this run (``tenant_lock``). A lock file held open cannot be lost, so
    ``check`` passes; a claim in the shared ledger ends with its connection (``PostgresClaim``)."""

    def check(self) -> None:
        """Raise ``ExportError`` when the tenant is no longer this run's to publish."""


@dataclass(frozen=True)
class TenantLedger:
    """One tenant's rows of a ledger: the ledger and the tenant's ``Book``, which always travel
    together through a delivery, and the run's claim on the tenant (checked before each file is
    published)."""

    ledger: Ledger
    book: Book
    claim: Claim = field(default_factory=Claim)

    def period_records(self, period_start: datetime) -> dict[str, Record]:
        return self.ledger.period_records(self.book, period_start)

    def delivered_starts(self, kinds: list[str]) -> set[datetime]:
        return self.ledger.delivered_starts(self.book, kinds)

    def start_attempt(self, period_start: datetime, label: str) -> int:
        return self.ledger.start_attempt(self.book, period_start, label)

    def finish_attempt(self, attempt_id: int, outcome: str, error: str | None = None) -> None:
        self.ledger.finish_attempt(attempt_id, outcome, error)

    def interrupt_unfinished(self) -> int:
        return self.ledger.interrupt_unfinished(self.book)

    def uploading(
        self,
        kind: str,
        start: datetime,
        end: datetime,
        label: str,
        path: str,
        rows: int,
        size: int,
        sha256: str,
    ) -> None:
        self.ledger.uploading(self.book, kind, start, end, label, path, rows, size, sha256)

    def delivered(self, kind: str, period_start: datetime, remote_path: str) -> None:
        self.ledger.delivered(self.book, kind, period_start, remote_path)

    def failed(self, period_start: datetime, period_end: datetime, label: str, error: str) -> None:
        self.ledger.failed(self.book, period_start, period_end, label, error)

    def record_counts(self, period_start: datetime, label: str, late: int | None, held: int | None) -> None:
        self.ledger.record_counts(self.book, period_start, label, late, held)

    def record_webhook(
        self, label: str, event: str, delivery_id: str, *, ok: bool, attempts: int, detail: str
    ) -> None:
        self.ledger.record_webhook(
            self.book, label, event, delivery_id, ok=ok, attempts=attempts, detail=detail
        )

    def record_webhook_event(
        self, label: str, event: str, delivery_id: str, body: bytes, *, ok: bool, attempts: int, detail: str
    ) -> None:
        self.ledger.record_webhook_event(
            self.book, label, event, delivery_id, body, ok=ok, attempts=attempts, detail=detail
        )

    def pending_webhooks(self) -> list[PendingWebhook]:
        return self.ledger.pending_webhooks(self.book)

    def update_webhook(
        self, delivery_id: str, *, ok: bool, pending: bool, attempts: int, detail: str
    ) -> None:
        self.ledger.update_webhook(
            self.book, delivery_id, ok=ok, pending=pending, attempts=attempts, detail=detail
        )
