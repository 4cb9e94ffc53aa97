"""Exactly-once under a month of simulated operations, on DuckDB and on PostgreSQL.

A seeded random world: three brands in three timezones and three intervals (Amsterdam daily
across the October DST change, New York weekly without ``start`` across its November change,
Kolkata hourly), e-mail, sms and page broadcasts, customers, and events of every type, some of
them unknown. Raw rows reach the warehouse the way ingestion really delivers them: registered
seconds to days after they happened, committed minutes to hours later and out of order, a
backlog after an outage, replays of the same event id, broadcasts, customers and erasures of
customers (GDPR) that arrive after their events. Between those loads, ``dbt build`` and
``activity-export run --now T`` run at random times, skipping nights: killed (SIGKILL) at the
failpoints and at random moments, stopped (SIGTERM, SIGINT) while paused at a failpoint, two at
once, once against a destination that is gone. The raw data are small literal inserts, so the
expected files are known exactly. Invariants checked after every run:

- every exported event id is in exactly one delivered file, with the right fields, never in a
  period that ended before it was registered, and in its registration period when it reached
  the warehouse before that period could be exported;
- no delivered file ever changes (each is hashed when first seen) or disappears;
- only e-mail activity of known types; every broadcast an activity file refers to is in the
  broadcast file of the same period;
- a stopped run exits 130/143 and leaves no temporary or half-published file;

and after a final catch-up: every e-mail event whose broadcast and customer exist was delivered,
every period from each tenant's first one on was delivered (both files), every broadcast known
in time is in the file of the period it was sent in, and ``status`` shows nothing pending,
failed or overdue.

The seed is random and printed with every failure; ``EXACTLY_ONCE_SEED=<n>`` replays one (the
moments of the random kills are the only part a seed does not fix).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest
import yaml

from tests.support.postgres import fresh_database, pg_connect
from tests.support.project import BIN, ROOT, Project, make_project

SIM_START = datetime(2026, 10, 12, tzinfo=UTC)  # a Monday
SIM_END = datetime(2026, 11, 8, tzinfo=UTC)  # every event is registered before this
SENTINEL_AT = datetime(2026, 11, 9, 6, tzinfo=UTC)  # after New York's last week of activity ends
FINAL_BUILD = SENTINEL_AT + timedelta(minutes=30)
FINAL_RUN = SENTINEL_AT + timedelta(hours=5, minutes=30)  # due periods past the watermark: not overdue
SENTINEL_IDS = 9_000_000

LABELS = {
    "sent": "BROADCAST",
    "open": "OPEN",
    "click": "CLICK",
    "softbounce": "SOFTBOUNCE",
    "hardbounce": "HARDBOUNCE",
    "complaint": "COMPLAINT",
    "unsubscribe": "UNSUBSCRIBE",
}
EVENT_TYPES = [  # (event_type as the platform writes it, weight)
    ("sent", 30),
    ("open", 28),
    ("click", 14),
    ("softbounce", 4),
    ("hardbounce", 3),
    ("complaint", 2),
    ("unsubscribe", 4),
    ("OPEN", 3),  # staging lower-cases the type
    ("forward", 3),  # unknown: never exported
    ("print", 2),
]
ACTIVITY_HEADER = [
    "broadcastid",
    "customerid",
    "externalid",
    "email",
    "activity",
    "activitydate",
    "description",
    "eventid",
    "registereddate",
]
BROADCAST_HEADER = ["broadcastid", "broadcasttype", "description", "subject", "sentdate"]
FILE_NAME = re.compile(r"^(activity|broadcast)_([A-Z]+)_(\d{8}|\d{10})\.csv$")
FAILPOINTS = ("after-write", "mid-upload", "after-upload")


@dataclass(frozen=True)
class Brand:
    code: str
    timezone: str
    interval: str
    start: date | None
    active_from: datetime  # when its broadcasts start going out
    broadcasts: int  # e-mail broadcasts

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def stamp(self, moment: datetime) -> str:
        """The file-name stamp of the period holding ``moment``, computed here, not by the loader."""
        local = moment.astimezone(self.zone)
        if self.interval == "hourly":
            return local.strftime("%Y%m%d%H")
        day = local.date()
        if self.interval == "weekly":
            day -= timedelta(days=day.weekday())
        return day.strftime("%Y%m%d")

    def bounds(self, stamp: str) -> tuple[datetime, datetime]:
        """The UTC ``[start, end)`` of the period a file-name stamp names (wall-clock arithmetic)."""
        if self.interval == "hourly":
            start = datetime.strptime(stamp, "%Y%m%d%H").replace(tzinfo=self.zone)
            step = timedelta(hours=1)
        else:
            start = datetime.strptime(stamp, "%Y%m%d").replace(tzinfo=self.zone)
            step = timedelta(days=7 if self.interval == "weekly" else 1)
        return start.astimezone(UTC), (start + step).astimezone(UTC)

    def next_stamp(self, stamp: str) -> str:
        return self.stamp(self.bounds(stamp)[1])

    def latest_due_stamp(self, now: datetime) -> str:
        """The latest period due at ``now`` with the default run_at (06:00; minute 0 when hourly)."""
        stamp = self.stamp(now)
        while True:
            start, end = self.bounds(stamp)
            if self.interval == "hourly":
                due = end
            else:
                due = datetime.combine(end.astimezone(self.zone).date(), datetime.min.time())
                due = due.replace(hour=6, tzinfo=self.zone).astimezone(UTC)
            if due <= now:
                return stamp
            stamp = self.stamp(start - timedelta(seconds=1))


BRANDS = {
    brand.code: brand
    for brand in (
        # across the DST change of 25 October: a 25-hour day
        Brand(
            "AMSTEL",
            "Europe/Amsterdam",
            "daily",
            date(2026, 10, 13),
            datetime(2026, 10, 12, 23, tzinfo=UTC),
            12,
        ),
        # no start: the first run delivers the latest due week; across the change of 1 November
        Brand("HUDSON", "America/New_York", "weekly", None, datetime(2026, 10, 12, 4, tzinfo=UTC), 12),
        # half-hour offset; activity begins before its start
        Brand("GANGES", "Asia/Kolkata", "hourly", date(2026, 11, 5), datetime(2026, 11, 4, 6, tzinfo=UTC), 5),
    )
}


# --- the world: what the platform holds, and when each row reaches the warehouse -------------------


@dataclass
class Customer:
    brand: str
    customer_id: int
    external_id: str
    email: str
    visible_at: datetime  # of its raw.customers row, or of its raw.erasures row when erased
    erased: bool = False  # erased under the GDPR: never in raw.customers, listed in raw.erasures


@dataclass
class Broadcast:
    broadcast_id: int
    brand: str
    broadcast_type: str
    channel: str
    description: str
    subject: str
    sent_at: datetime
    visible_at: datetime


@dataclass
class Delivery:
    """One row of raw.events: an event as ingestion delivered it (once, or again in a replay)."""

    registered_at: datetime
    visible_at: datetime  # committed: the first build after this sees it
    loaded_at: datetime  # the ingestion tool's stamp: at or before the commit


@dataclass
class Event:
    event_id: int
    brand: str
    broadcast_id: int
    customer_id: int
    event_type: str
    occurred_at: datetime
    email: str | None
    url: str | None
    message: str | None
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def registered_at(self) -> datetime:
        return min(d.registered_at for d in self.deliveries)


@dataclass
class World:
    customers: dict[tuple[str, int], Customer]
    broadcasts: dict[int, Broadcast]
    events: dict[int, Event]

    def exportable(self, event: Event) -> bool:
        return self.broadcasts[event.broadcast_id].channel == "email" and event.event_type.lower() in LABELS


def _between(rng: random.Random, low: timedelta, high: timedelta) -> timedelta:
    return timedelta(seconds=rng.uniform(low.total_seconds(), high.total_seconds()))


def _ingestion_delay(rng: random.Random) -> timedelta:
    """From registration to commit in the warehouse."""
    draw = rng.random()
    if draw < 0.72:
        return _between(rng, timedelta(minutes=1), timedelta(minutes=30))
    if draw < 0.90:  # committed out of order, hours later
        return _between(rng, timedelta(minutes=30), timedelta(hours=5))
    if draw < 0.97:  # a backlog
        return _between(rng, timedelta(days=1), timedelta(days=4))
    return timedelta(days=60)  # stuck until the final catch-up


def make_world(rng: random.Random) -> World:
    customers: dict[tuple[str, int], Customer] = {}
    broadcasts: dict[int, Broadcast] = {}
    events: list[Event] = []
    for index, brand in enumerate(BRANDS.values()):
        span = SIM_END - timedelta(hours=6) - brand.active_from
        # customer 10 signs up during the month and its row arrives hours to a day after its
        # first events; customer 11 is erased, and its erasure arrives after its last events
        signed_up = brand.active_from + _between(rng, span * 0.2, span * 0.7)
        erased = brand.active_from + _between(rng, span * 0.2, span * 0.7)
        for number in range(1, 12):  # the same customer ids in every brand
            known = {10: signed_up + _between(rng, timedelta(hours=2), timedelta(hours=30)), 11: erased}
            customers[(brand.code, number)] = Customer(
                brand.code,
                number,
                f"{brand.code[:2]}-{number:05d}",
                f"klant{number}@{brand.code.lower()}.example",
                known.get(number, SIM_START),
                erased=number == 11,
            )
        channels = ["email"] * brand.broadcasts + ["sms", "sms", "page"]
        for number, channel in enumerate(channels, start=1):
            broadcast_id = (index + 1) * 1000 + number
            sent_at = brand.active_from + _between(rng, timedelta(0), span * 0.9)
            visible_at = sent_at - timedelta(minutes=5)
            if rng.random() < 0.25:  # the broadcast row comes after its first events
                visible_at = sent_at + _between(rng, timedelta(hours=2), timedelta(hours=36))
            broadcasts[broadcast_id] = Broadcast(
                broadcast_id,
                brand.code,
                rng.choice(["SINGLE", "CAMPAIGN", "QUICKMAIL", "SPLITRUN"]),
                channel,
                f'Nieuwsbrief {number}; "herfst"\nactie' if number % 3 == 0 else f"Mailing {number}",
                "Hallo {$voornaam}, 50% korting" if number % 2 == 0 else f"Onderwerp {number}",
                sent_at,
                visible_at,
            )
            for _ in range(rng.randint(6, 16)):
                event_type = rng.choices([t for t, _ in EVENT_TYPES], [w for _, w in EVENT_TYPES])[0]
                if event_type == "sent":
                    occurred = sent_at + _between(rng, timedelta(0), timedelta(minutes=20))
                else:
                    occurred = sent_at + timedelta(hours=rng.expovariate(1 / 18))
                draw = rng.random()
                lag = _between(
                    rng,
                    *(
                        (timedelta(0), timedelta(minutes=2))
                        if draw < 0.6
                        else (timedelta(minutes=2), timedelta(hours=3))
                        if draw < 0.9
                        else (timedelta(hours=3), timedelta(days=2))
                    ),
                )
                registered = occurred + lag
                if registered >= SIM_END:
                    continue
                events.append(
                    Event(
                        0,
                        brand.code,
                        broadcast_id,
                        rng.choice(
                            [*range(1, 10)]
                            + ([10] if occurred >= signed_up else [])
                            + ([11] if erased - timedelta(days=2) <= occurred < erased else [])
                        ),
                        event_type,
                        occurred,
                        f"alt{rng.randint(1, 99)}@example.org" if rng.random() < 0.2 else None,
                        'https://shop.example/p?id=1;x="y"' if event_type == "click" else None,
                        'mailbox full;\n"550"'
                        if event_type in ("softbounce", "hardbounce", "complaint")
                        else None,
                        [Delivery(registered, registered, registered)],
                    )
                )

    ids = rng.sample(range(1000, 1000 + 10 * len(events)), len(events))  # ids say nothing about time
    outage_start = SIM_START + _between(rng, timedelta(days=4), timedelta(days=22))
    outage_end = outage_start + timedelta(hours=14)
    for event, event_id in zip(events, ids, strict=True):
        event.event_id = event_id
        first = event.deliveries[0]
        registrations = [first.registered_at]
        if rng.random() < 0.08:  # a replay: the same event again, at once or days later
            again = first.registered_at + (
                timedelta(0) if rng.random() < 0.3 else _between(rng, timedelta(minutes=1), timedelta(days=3))
            )
            registrations.append(min(again, SIM_END - timedelta(seconds=1)))
        event.deliveries = []
        for registered in registrations:
            visible = registered + _ingestion_delay(rng)
            if outage_start <= visible < outage_end:  # ingestion was down: all of it comes at once
                visible = outage_end + timedelta(days=2)
            visible = min(visible, FINAL_BUILD)  # the final catch-up loads whatever is left
            loaded = visible
            if rng.random() < 0.3:  # stamped when the batch began, committed later
                loaded = max(registered, visible - _between(rng, timedelta(0), timedelta(hours=2)))
            event.deliveries.append(Delivery(registered, visible, loaded))

    # one event per brand far after the month, so the final watermark passes every period of it
    for index, brand in enumerate(BRANDS.values()):
        broadcast_id = (index + 1) * 1000 + 1
        events.append(
            Event(
                SENTINEL_IDS + index,
                brand.code,
                broadcast_id,
                1,
                "open",
                SENTINEL_AT,
                None,
                None,
                None,
                [Delivery(SENTINEL_AT, FINAL_BUILD, FINAL_BUILD)],
            )
        )
        broadcasts[broadcast_id].visible_at = min(broadcasts[broadcast_id].visible_at, FINAL_BUILD)
        customers[(brand.code, 1)].visible_at = SIM_START
    return World(customers, broadcasts, {event.event_id: event for event in events})


# --- the warehouse: raw tables we fill, dbt build, and the CLI -------------------------------------

RAW_TABLES = [
    "create schema raw",
    """create table raw.broadcasts (
        broadcast_id bigint not null, brand text not null, broadcast_type text not null,
        channel text not null, description text, subject text, sent_at timestamptz,
        campaign_id bigint, from_address text)""",
    "create table raw.customers (brand text not null, customer_id bigint not null, external_id text, email text)",
    "create table raw.erasures (brand text not null, customer_id bigint not null, erased_at timestamptz not null)",
    """create table raw.events (
        event_id bigint not null, brand text not null, broadcast_id bigint not null,
        customer_id bigint not null, event_type text not null, occurred_at timestamptz not null,
        registered_at timestamptz not null, email text, url text, os text, device text,
        browser text, user_agent text, message text{loaded_at})""",
]


def _literal(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, datetime):
        return f"timestamptz '{value.astimezone(UTC).isoformat()}'"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _values(rows: list[tuple[object, ...]]) -> str:
    return ",\n".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)


class Warehouse:
    """The simulation's own warehouse: a DuckDB file, or a PostgreSQL database of its own."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def execute(self, statements: list[str]) -> None:
        if self.project.target == "postgres":
            con = pg_connect(self.project.env["PGDATABASE"])
            try:
                with con, con.cursor() as cursor:  # one transaction: a batch commits whole
                    for statement in statements:
                        cursor.execute(statement)
            finally:
                con.close()
        else:
            with duckdb.connect(self.project.env["ACTIVITY_EXPORT_DUCKDB"]) as con:
                con.execute("begin")
                for statement in statements:
                    con.execute(statement)
                con.execute("commit")


@dataclass
class RunResult:
    now: datetime
    how: str
    returncode: int
    stdout: str
    stderr: str


class Simulation:
    """Drives the operations and checks the invariants after each of them."""

    def __init__(self, seed: int, project: Project, folder: Path, with_loaded_at: bool) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.world = make_world(self.rng)
        self.project = project
        self.folder = folder
        self.server = folder / "server"
        self.tmp = folder / "tmp"
        self.tmp.mkdir()
        self.warehouse = Warehouse(project)
        self.with_loaded_at = with_loaded_at
        self.config = folder / "tenants.yml"
        self.log: list[str] = []
        self.loaded_until = datetime.min.replace(tzinfo=UTC)
        self.builds: list[datetime] = []
        self.runs: list[RunResult] = []
        self.seen: dict[str, str] = {}  # delivered file (relative path) -> sha256 when first seen
        self.delivered_in: dict[int, str] = {}  # event id -> the activity file holding it
        self.activity_broadcasts: dict[str, set[int]] = {}  # activity file -> broadcast ids
        self.broadcast_files: dict[str, set[int]] = {}  # broadcast file -> broadcast ids
        self.first_run_at: datetime | None = None
        self.killed_leftovers: set[str] = set()

    # --- reporting ------------------------------------------------------------------------------

    def fail(self, message: str) -> None:
        history = "\n".join(self.log[-40:])
        raise AssertionError(
            f"exactly-once simulation, seed {self.seed} (replay: EXACTLY_ONCE_SEED={self.seed}), "
            f"target {self.project.target}: {message}\nlast operations:\n{history}"
        )

    def note(self, line: str) -> None:
        self.log.append(line)
        print(line)

    # --- setting up -------------------------------------------------------------------------------

    def create(self) -> None:
        loaded_at = ", loaded_at timestamptz" if self.with_loaded_at else ""
        self.warehouse.execute([s.replace("{loaded_at}", loaded_at) for s in RAW_TABLES])
        tenants: dict[str, object] = {}
        for brand in BRANDS.values():
            tenant: dict[str, object] = {
                "timezone": brand.timezone,
                "interval": brand.interval,
                "destination": {"type": "local", "root": str(self.server / brand.code)},
            }
            if brand.start:
                tenant["start"] = brand.start.isoformat()
            tenants[brand.code] = tenant
        settings = {
            "defaults": {"extra_fields": {"activity": ["eventid", "registereddate"]}},
            "tenants": tenants,
        }
        self.config.write_text(yaml.safe_dump(settings))

    # --- operations -------------------------------------------------------------------------------

    def load(self, until: datetime) -> None:
        """Commit every raw row that reached the warehouse by ``until``, in random batches and order."""
        since = self.loaded_until
        statements: list[str] = []
        customers = [c for c in self.world.customers.values() if since < c.visible_at <= until]
        if [c for c in customers if not c.erased]:
            rows = [(c.brand, c.customer_id, c.external_id, c.email) for c in customers if not c.erased]
            statements.append(
                "insert into raw.customers (brand, customer_id, external_id, email) values " + _values(rows)
            )
        if [c for c in customers if c.erased]:
            rows = [
                (c.brand, c.customer_id, c.visible_at - timedelta(hours=1)) for c in customers if c.erased
            ]
            statements.append(
                "insert into raw.erasures (brand, customer_id, erased_at) values " + _values(rows)
            )
        broadcasts = [b for b in self.world.broadcasts.values() if since < b.visible_at <= until]
        if broadcasts:
            rows = [
                (
                    b.broadcast_id,
                    b.brand,
                    b.broadcast_type,
                    b.channel,
                    b.description,
                    b.subject,
                    b.sent_at,
                    None,
                    None,
                )
                for b in broadcasts
            ]
            statements.append(
                "insert into raw.broadcasts (broadcast_id, brand, broadcast_type, channel, description, "
                "subject, sent_at, campaign_id, from_address) values " + _values(rows)
            )
        deliveries = [
            (event, delivery)
            for event in self.world.events.values()
            for delivery in event.deliveries
            if since < delivery.visible_at <= until
        ]
        self.rng.shuffle(deliveries)
        columns = "event_id, brand, broadcast_id, customer_id, event_type, occurred_at, registered_at, email, url, message"
        if self.with_loaded_at:
            columns += ", loaded_at"
        batches: list[list[tuple[object, ...]]] = [[]]
        for event, delivery in deliveries:
            row: tuple[object, ...] = (
                event.event_id,
                event.brand,
                event.broadcast_id,
                event.customer_id,
                event.event_type,
                event.occurred_at,
                delivery.registered_at,
                event.email,
                event.url,
                event.message,
            )
            if self.with_loaded_at:
                row += (delivery.loaded_at,)
            batches[-1].append(row)
            if self.rng.random() < 0.05:
                batches.append([])
        statements += [f"insert into raw.events ({columns}) values " + _values(b) for b in batches if b]
        self.rng.shuffle(statements)  # batches commit in any order; each is one transaction
        for statement in statements:
            self.warehouse.execute([statement])
        self.loaded_until = until
        self.note(
            f"{until:%m-%d %H:%M} load: {len(customers)} customers, {len(broadcasts)} broadcasts, "
            f"{len(deliveries)} event rows in {sum(1 for b in batches if b)} batches"
        )

    def build(self, at: datetime) -> None:
        self.load(at)
        started = time.monotonic()
        # as in production, without the unit tests (they test the SQL on fixtures, not the data)
        args = ["build", "--exclude-resource-type", "unit_test"]
        if self.with_loaded_at:
            args += ["--vars", "{loaded_at_column: loaded_at}"]
        self.project.dbt(*args)
        self.builds.append(at)
        self.note(f"{at:%m-%d %H:%M} dbt build ({time.monotonic() - started:.1f}s)")

    def run(self, now: datetime, how: str = "normal") -> RunResult:
        """``activity-export run --now now``, the way ``how`` says.

        ``normal``; a failpoint name (SIGKILL there); ``sigkill`` (at a random moment);
        ``sigterm`` / ``sigint`` (sent while the run is paused at a random failpoint);
        ``outage`` (AMSTEL's destination folder is a file); ``twin`` (two runs at once).
        """
        moved = None
        if how == "outage":
            moved = self.server / "AMSTEL.away"
            if (self.server / "AMSTEL").exists():
                (self.server / "AMSTEL").rename(moved)
            self.server.mkdir(parents=True, exist_ok=True)
            (self.server / "AMSTEL").write_text("not a folder")
        before = {p.name for p in self.tmp.iterdir()}
        started = time.monotonic()
        failpoint = None
        if how in FAILPOINTS:
            failpoint = how
        elif how in ("sigterm", "sigint"):
            failpoint = self.rng.choice(FAILPOINTS) + ":pause"
        processes = [self._start(now, failpoint, name) for name in (("a", "b") if how == "twin" else ("a",))]
        process, out, err = processes[0]
        if how == "sigkill":
            try:
                process.wait(timeout=self.rng.uniform(0.3, 3.0))
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
        if how in ("sigterm", "sigint"):
            while process.poll() is None and "paused at" not in err.read_text():
                time.sleep(0.05)
            if process.poll() is None:
                process.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGINT)
        results = []
        for process, out, err in processes:
            process.wait(timeout=600)
            results.append(RunResult(now, how, process.returncode, out.read_text(), err.read_text()))
        if moved is not None:
            (self.server / "AMSTEL").unlink()
            if moved.exists():
                moved.rename(self.server / "AMSTEL")
        if any(r.returncode == -signal.SIGKILL for r in results):  # it could not clean up after itself
            self.killed_leftovers |= {p.name for p in self.tmp.iterdir()} - before
        if self.first_run_at is None:
            self.first_run_at = now
        for result in results:
            self.runs.append(result)
            delivered = len(re.findall(r"^[A-Z]+ \d{4}-\d\d-\d\d", result.stdout, flags=re.MULTILINE))
            self.note(
                f"{now:%m-%d %H:%M} run ({how}): exit {result.returncode}, {delivered} periods in "
                f"{time.monotonic() - started:.1f}s"
            )
            self.check_run(result)
        self.check_files()
        return results[0]

    def _start(
        self, now: datetime, failpoint: str | None, name: str
    ) -> tuple[subprocess.Popen[bytes], Path, Path]:
        command = [
            str(BIN / "activity-export"),
            "run",
            "--config",
            str(self.config),
            "--now",
            now.isoformat(),
            *self.project.cli_args(),
        ]
        env = {**self.project.env, "TMPDIR": str(self.tmp)}
        if failpoint:
            env["ACTIVITY_EXPORT_FAILPOINT"] = failpoint
        out, err = self.folder / f"run-{name}.out", self.folder / f"run-{name}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=stdout, stderr=stderr)
        return process, out, err

    # --- invariants -------------------------------------------------------------------------------

    def check_run(self, result: RunResult) -> None:
        output = result.stdout + result.stderr
        at = f"run --now {result.now.isoformat()} ({result.how})"
        if result.returncode == -signal.SIGKILL:
            if result.how not in (*FAILPOINTS, "sigkill"):
                self.fail(f"{at} died of a SIGKILL nobody sent:\n{output[-3000:]}")
            return
        if "Traceback" in output:
            self.fail(f"{at} crashed:\n{output[-3000:]}")
        stopped = {"sigterm": 143, "sigint": 130}.get(result.how)
        paused = "paused at" in result.stderr
        if paused and result.returncode != stopped:
            self.fail(f"{at} exited {result.returncode} when stopped, expected {stopped}:\n{output[-3000:]}")
        if not paused and result.returncode not in (0, 1):
            self.fail(f"{at} exited {result.returncode}:\n{output[-3000:]}")
        leftovers = [p.name for p in self.tmp.iterdir() if p.name not in self.killed_leftovers]
        if leftovers:
            self.fail(f"{at} left temporary files behind: {leftovers}")
        if paused:
            partials = [str(p.relative_to(self.server)) for p in self.server.rglob(".*.partial")]
            if partials:
                self.fail(f"{at} was stopped and left half-published files: {partials}")

    def delivered_files(self) -> dict[str, Path]:
        files: dict[str, Path] = {}
        if not self.server.exists():
            return files
        for path in sorted(self.server.rglob("*")):
            if not path.is_file():
                continue
            relative = str(path.relative_to(self.server))
            if path.name.startswith(".") and path.name.endswith(".partial"):
                continue  # a hidden upload in progress (or left by a kill): not delivered
            brand_folder = relative.split("/")[0]
            match = FILE_NAME.match(path.name)
            if match is None or match.group(2) != brand_folder:
                self.fail(f"unexpected file on the destination: {relative}")
            files[relative] = path
        return files

    def check_files(self) -> None:
        files = self.delivered_files()
        vanished = sorted(set(self.seen) - set(files))
        if vanished:
            self.fail(f"delivered files disappeared: {vanished[:5]}")
        for relative, path in files.items():
            content = path.read_bytes()
            digest = hashlib.sha256(content).hexdigest()
            if relative in self.seen:
                if self.seen[relative] != digest:
                    self.fail(f"delivered file {relative} changed after it was first seen")
                continue
            self.seen[relative] = digest
            kind, code, stamp = FILE_NAME.match(path.name).groups()  # type: ignore[union-attr]
            brand = BRANDS[code]
            if kind == "activity":
                self.check_activity_file(relative, brand, stamp, content)
            else:
                self.check_broadcast_file(relative, brand, stamp, content)
        for relative, referenced in self.activity_broadcasts.items():
            partner = relative.replace("/activity_", "/broadcast_")
            if partner in self.broadcast_files and not referenced <= self.broadcast_files[partner]:
                missing = sorted(referenced - self.broadcast_files[partner])
                self.fail(f"{partner} lacks broadcasts {missing} that {relative} refers to")

    def _rows(self, relative: str, content: bytes, header: list[str]) -> list[dict[str, str]]:
        text = content.decode("utf-8")
        if text.startswith("\ufeff"):
            self.fail(f"{relative} starts with a byte order mark")
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=";")
        if reader.fieldnames != header:
            self.fail(f"{relative}: header {reader.fieldnames}, expected {header}")
        return list(reader)

    def check_activity_file(self, relative: str, brand: Brand, stamp: str, content: bytes) -> None:
        start, end = brand.bounds(stamp)
        referenced: set[int] = set()
        for row in self._rows(relative, content, ACTIVITY_HEADER):
            event_id = int(row["eventid"])
            event = self.world.events.get(event_id)
            if event is None:
                self.fail(f"{relative}: event {event_id} does not exist")
                return
            if event_id in self.delivered_in:
                self.fail(
                    f"event {event_id} delivered twice: in {self.delivered_in[event_id]} and {relative}"
                )
            self.delivered_in[event_id] = relative
            broadcast = self.world.broadcasts[event.broadcast_id]
            customer = self.world.customers[(event.brand, event.customer_id)]
            if event.brand != brand.code or not self.world.exportable(event):
                self.fail(
                    f"{relative}: event {event_id} ({event.brand}, {event.event_type} on a "
                    f"{broadcast.channel} broadcast) must not be exported here"
                )
            local = brand.zone
            expected = {
                "broadcastid": str(event.broadcast_id),
                "customerid": str(event.customer_id),
                "externalid": customer.external_id,
                "email": event.email or customer.email,
                "activity": LABELS[event.event_type.lower()],
                "activitydate": event.occurred_at.astimezone(local).strftime("%Y-%m-%d %H:%M:%S"),
                "description": event.url or event.message or "",
            }
            if customer.erased:  # no customer row to take them from; what an erasure blanks is not ours
                expected["externalid"] = ""
                del expected["email"]
            wrong = {key: (row[key], value) for key, value in expected.items() if row[key] != value}
            registrations = {
                d.registered_at.astimezone(local).strftime("%Y-%m-%d %H:%M:%S") for d in event.deliveries
            }
            if row["registereddate"] not in registrations:
                wrong["registereddate"] = (row["registereddate"], ", ".join(sorted(registrations)))
            if wrong:
                self.fail(f"{relative}: event {event_id}: (delivered, expected) {wrong}")
            if end <= event.registered_at:
                self.fail(
                    f"{relative}: event {event_id} registered at {event.registered_at.isoformat()}, "
                    f"after the period [{start.isoformat()}, {end.isoformat()}) ended"
                )
            on_time = self.registration_period_if_on_time(event, brand)
            if on_time is not None and on_time != stamp:
                self.fail(
                    f"{relative}: event {event_id} reached the warehouse before its registration "
                    f"period ({on_time}) could be exported, yet lands in period {stamp}"
                )
            referenced.add(event.broadcast_id)
        self.activity_broadcasts[relative] = referenced

    def registration_period_if_on_time(self, event: Event, brand: Brand) -> str | None:
        """The period an event must be in when it entered the export on time, else None.

        It enters at the first build that sees a delivery of it, its broadcast and its customer.
        Everything an earlier build saw was registered (and loaded) before that earlier build, so
        no watermark before this build is later: a registration at or after the previous build
        is "on time" and its own period was not exported yet.
        """
        broadcast = self.world.broadcasts[event.broadcast_id]
        customer = self.world.customers[(event.brand, event.customer_id)]
        for index, built in enumerate(self.builds):
            visible = [d for d in event.deliveries if d.visible_at <= built]
            if visible and broadcast.visible_at <= built and customer.visible_at <= built:
                registered = min(d.registered_at for d in visible)
                if index == 0 or registered >= self.builds[index - 1]:
                    return brand.stamp(registered)
                return None
        return None

    def check_broadcast_file(self, relative: str, brand: Brand, stamp: str, content: bytes) -> None:
        ids: set[int] = set()
        for row in self._rows(relative, content, BROADCAST_HEADER):
            broadcast_id = int(row["broadcastid"])
            broadcast = self.world.broadcasts.get(broadcast_id)
            if broadcast is None or broadcast.brand != brand.code or broadcast.channel != "email":
                self.fail(f"{relative}: broadcast {broadcast_id} is not an e-mail broadcast of {brand.code}")
                return
            if broadcast_id in ids:
                self.fail(f"{relative}: broadcast {broadcast_id} twice")
            ids.add(broadcast_id)
            expected = {
                "broadcasttype": broadcast.broadcast_type,
                "description": broadcast.description,
                "subject": broadcast.subject,
                "sentdate": broadcast.sent_at.astimezone(brand.zone).strftime("%Y-%m-%d %H:%M:%S"),
            }
            wrong = {key: (row[key], value) for key, value in expected.items() if row[key] != value}
            if wrong:
                self.fail(f"{relative}: broadcast {broadcast_id}: (delivered, expected) {wrong}")
        self.broadcast_files[relative] = ids

    def check_final(self, final: RunResult) -> None:
        if final.returncode != 0:
            self.fail(
                f"the final catch-up exited {final.returncode}:\n{final.stdout[-3000:]}\n{final.stderr[-3000:]}"
            )
        partials = [str(p) for p in self.server.rglob(".*.partial")]
        if partials:
            self.fail(f"hidden partial files left after the final catch-up: {partials}")
        files = self.delivered_files()
        for code, brand in BRANDS.items():
            stamps = {FILE_NAME.match(Path(r).name).group(3) for r in files if r.startswith(code + "/")}  # type: ignore[union-attr]
            if not stamps:
                self.fail(f"{code}: nothing delivered at all")
            for stamp in stamps:
                for kind in ("activity", "broadcast"):
                    if f"{code}/{kind}_{code}_{stamp}.csv" not in files:
                        self.fail(f"{code}: period {stamp} has no {kind} file")
            first, last = (
                min(stamps, key=lambda s: brand.bounds(s)[0]),
                max(stamps, key=lambda s: brand.bounds(s)[0]),
            )
            if brand.start is not None and first != brand.stamp(
                datetime.combine(brand.start, datetime.min.time()).replace(tzinfo=brand.zone)
            ):
                self.fail(f"{code}: the first period delivered is {first}, its start is {brand.start}")
            if brand.start is None:
                assert self.first_run_at is not None
                latest_due = brand.latest_due_stamp(self.first_run_at)
                if brand.bounds(first)[0] > brand.bounds(latest_due)[0]:
                    self.fail(
                        f"{code} (no start): the first period delivered is {first}, but {latest_due} "
                        f"was due at the first run ({self.first_run_at.isoformat()})"
                    )
            if brand.bounds(last)[1] <= SIM_END:
                self.fail(f"{code}: the final catch-up stopped at period {last}, before the month ended")
            stamp = first
            while stamp != last:  # nothing skipped
                if stamp not in stamps:
                    self.fail(f"{code}: period {stamp} was never delivered (first {first}, last {last})")
                stamp = brand.next_stamp(stamp)

            first_start = brand.bounds(first)[0]
            missing = sorted(
                event.event_id
                for event in self.world.events.values()
                if event.brand == code
                and event.event_id < SENTINEL_IDS
                and self.world.exportable(event)
                and event.registered_at >= first_start
                and event.event_id not in self.delivered_in
            )
            if missing:
                details = "\n".join(self.describe(self.world.events[event_id]) for event_id in missing[:8])
                self.fail(f"{code}: {len(missing)} e-mail events never delivered, e.g.\n{details}")

        for broadcast in self.world.broadcasts.values():  # a broadcast sent in a period is in its file
            brand = BRANDS[broadcast.brand]
            relative = f"{brand.code}/broadcast_{brand.code}_{brand.stamp(broadcast.sent_at)}.csv"
            if broadcast.channel != "email" or relative not in self.broadcast_files:
                continue
            entered = next(i for i, built in enumerate(self.builds) if broadcast.visible_at <= built)
            on_time = entered == 0 or broadcast.sent_at >= self.builds[entered - 1]
            if on_time and broadcast.broadcast_id not in self.broadcast_files[relative]:
                self.fail(
                    f"{relative} lacks broadcast {broadcast.broadcast_id}, sent "
                    f"{broadcast.sent_at.isoformat()} and known before that period could be exported"
                )

        status = self.project.run(
            "status",
            "--config",
            str(self.config),
            "--now",
            final.now.isoformat(),
            "--json",
            *self.project.cli_args(),
        )
        for tenant in json.loads(status.stdout):
            if tenant.get("pending") or tenant.get("failed") or tenant.get("overdue"):
                self.fail(f"status after the final catch-up: {tenant}")

    def describe(self, event: Event) -> str:
        broadcast = self.world.broadcasts[event.broadcast_id]
        customer = self.world.customers[(event.brand, event.customer_id)]
        deliveries = "; ".join(
            f"registered {d.registered_at:%m-%d %H:%M} committed {d.visible_at:%m-%d %H:%M}"
            for d in event.deliveries
        )
        return (
            f"  event {event.event_id} {event.event_type} on broadcast {event.broadcast_id} "
            f"(arrived {broadcast.visible_at:%m-%d %H:%M}), customer {event.customer_id} "
            f"(arrived {customer.visible_at:%m-%d %H:%M}): {deliveries}"
        )

    # --- the month --------------------------------------------------------------------------------

    def schedule(self) -> list[tuple[datetime, str]]:
        """Builds and runs at random times of random days; most nights nothing happens.

        Five builds in the month (one in each stretch of days, so both DST changes fall between
        builds), each followed by a run: of those after the first, two are killed and one finds
        AMSTEL's destination gone. One more run between builds: normal, killed, or two at once.
        """
        first_build = SIM_START + _between(self.rng, timedelta(hours=20), timedelta(hours=34))
        builds = [first_build] + [
            SIM_START
            + timedelta(days=self.rng.randint(low, high))
            + _between(self.rng, timedelta(hours=1), timedelta(hours=11))
            for low, high in ((3, 8), (9, 14), (15, 20), (21, 27))
        ]
        crashed = self.rng.sample(range(1, len(builds)), 2)
        outage = self.rng.choice([index for index in range(1, len(builds)) if index not in crashed])
        operations: list[tuple[datetime, str]] = []
        for index, built in enumerate(builds):
            operations.append((built, "build"))
            how = "outage" if index == outage else "normal"
            if index in crashed:
                how = self.rng.choice([*FAILPOINTS, "sigkill", "sigterm", "sigint"])
            operations.append((built + _between(self.rng, timedelta(minutes=5), timedelta(hours=3)), how))
        moment = builds[1] + _between(self.rng, timedelta(hours=4), builds[-1] - builds[1])
        operations.append((moment, self.rng.choice(["normal", "sigkill", "twin"])))
        return sorted(operations)

    def month(self) -> None:
        self.create()
        for moment, how in self.schedule():
            if how == "build":
                self.build(moment)
                continue
            self.run(moment, how)
            if how != "normal" and self.rng.random() < 0.5:  # the operator reruns at once
                self.run(moment + timedelta(minutes=2))
        self.build(FINAL_BUILD)
        self.check_final(self.run(FINAL_RUN))


# --- the tests ----------------------------------------------------------------------------------------


def _seed() -> int:
    configured = os.environ.get("EXACTLY_ONCE_SEED")
    return int(configured) if configured else random.SystemRandom().randrange(1, 2**31)


@pytest.fixture
def postgres_database() -> Iterator[str]:
    with fresh_database("aexp_sim") as name:
        yield name


@pytest.mark.parametrize(
    ("target", "with_loaded_at"),
    [("duckdb", True), ("postgres", False)],
    ids=["duckdb-loaded_at", "postgres-registered_at"],
)
def test_a_month_of_operations_delivers_every_email_event_exactly_once(
    target: str, with_loaded_at: bool, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    database = request.getfixturevalue("postgres_database") if target == "postgres" else None
    project = make_project(tmp_path, target, database, "analytics")
    seed = _seed()
    print(f"exactly-once simulation: seed {seed} (EXACTLY_ONCE_SEED={seed} replays it)")
    simulation = Simulation(seed, project, tmp_path, with_loaded_at)
    simulation.month()
    exported = [e for e in simulation.world.events.values() if simulation.world.exportable(e)]
    assert len(simulation.delivered_in) >= 0.8 * len(exported) > 0, f"seed {seed}"
