"""Exactly-once under a month of simulated operations, on DuckDB and on PostgreSQL.

A seeded random world: three brands in three timezones and three intervals (Amsterdam daily
across the October DST change, New York weekly without ``start`` across its November change,
Kolkata hourly), e-mail, sms and page broadcasts, customers, and events of every type, some of
them unknown. Raw rows reach the warehouse the way ingestion really delivers them: registered
seconds to days after they happened, committed minutes to hours later and out of order, a
backlog after an outage, replays of the same event id, broadcasts, customers and erasures of
customers (GDPR) that arrive after their events. And rows that must neither stop nor fool the
export: in one brand, events stamped by a wrong clock (registered days or years ahead, loaded years
ahead); erased customers whose address and number are in their bounce messages and tracked links,
some of whose rows arrive after the erasure; e-mail broadcasts nobody acts on whose rows arrive
after their brand's watermark passed the send; rows committed out of order with a load time
older than the next build's read window. Every build runs with its clock fixed at the simulated
moment (``export_now``). Between those loads, ``dbt build`` and
``activity-export run --now T`` run at random times, skipping nights: killed (SIGKILL) at the
failpoints and at random moments, stopped (SIGTERM, SIGINT) while paused at a failpoint, two at
once, once against a destination that is gone, once beside a hung run holding a brand's lock; a
first run with the clock weeks ahead; on PostgreSQL one build while a run reads. The raw data are
small literal inserts, so the expected files are known exactly. Invariants checked after every run:

- every exported event id is in exactly one delivered file, with the right fields, never in a
  period that ended before it was registered, and in its registration period when it reached
  the warehouse before that period could be exported;
- no delivered file ever changes (each is hashed when first seen) or disappears;
- only e-mail activity of known types; every broadcast an activity file refers to is in the
  broadcast file of the same period;
- a stopped run exits 130/143 and leaves no temporary or half-published file;
- no event is delivered before a build's clock trusts its registration and load time;
- a file written after a customer's erasure holds none of its addresses or its number, anywhere;
- after a run that went normally, every brand has every due period up to a lower bound of its
  watermark computed from the world: rows of a wrong clock hold no brand back;

and after a final catch-up: every e-mail event whose broadcast and customer exist and whose time
has come was delivered (the out-of-order ones and the wrong clock's too), an event whose time never
came is in no file, every period from each tenant's first one on was delivered (both files),
every broadcast known in time is in the file of the period it was sent in, every e-mail broadcast
sent from the first period on is in at least one broadcast file, and ``status`` shows nothing
pending, failed or overdue.

The world is built in ``world.py``, loaded into the warehouse in ``loading.py`` and held to the
invariants in ``invariants.py``; this module runs the month.

The seed is random and printed with every failure; ``EXACTLY_ONCE_SEED=<n>`` replays one (the
moments of the random kills are the only part a seed does not fix).
"""

from __future__ import annotations

import fcntl
import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.simulation.invariants import FAILPOINTS, Invariants, RunResult
from tests.simulation.loading import RAW_TABLES, Loading, Warehouse
from tests.simulation.world import BRANDS, FINAL_BUILD, FINAL_RUN, SIM_START, between, make_world
from tests.support.postgres import fresh_database
from tests.support.project import BIN, ROOT, Project, make_project


class Simulation(Loading, Invariants):
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
        self.overlapped = False

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

    def run(self, now: datetime, how: str = "normal") -> RunResult:
        """``activity-export run --now now``, the way ``how`` says.

        ``normal``; a failpoint name (SIGKILL there); ``sigkill`` (at a random moment);
        ``sigterm`` / ``sigint`` (sent while the run is paused at a random failpoint);
        ``outage`` (AMSTEL's destination folder is a file); ``twin`` (two runs at once);
        ``hung`` (a hung run holds AMSTEL's lock: AMSTEL is skipped and gets nothing);
        ``overlap`` (the build of the same moment runs while the run reads: PostgreSQL only).
        """
        moved = None
        hung = self._hold_lock("AMSTEL") if how == "hung" else None
        amstel_before = {r for r in self.delivered_files() if r.startswith("AMSTEL/")}
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
        if how == "overlap":
            self.build(now)
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
        if hung is not None:
            os.close(hung)
            if {r for r in self.delivered_files() if r.startswith("AMSTEL/")} != amstel_before:
                self.fail(f"run --now {now.isoformat()} delivered AMSTEL files while another run held it")
            if "AMSTEL" in results[0].stdout and "skipped" not in results[0].stdout:
                self.fail(f"run --now {now.isoformat()} did not say AMSTEL was skipped:\n{results[0].stdout}")
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
            delivered = len(re.findall(r"^[A-Z]+ \d{4}-\d\d-\d\d", result.stderr, flags=re.MULTILINE))
            self.note(
                f"{now:%m-%d %H:%M} run ({how}): exit {result.returncode}, {delivered} periods in "
                f"{time.monotonic() - started:.1f}s"
            )
            self.check_run(result)
        self.overlapped = how == "overlap"
        try:
            self.check_files()
        finally:
            self.overlapped = False
        if how == "normal":
            self.check_on_time(now)
        return results[0]

    def _hold_lock(self, brand: str) -> int:
        """The tenant's lock, taken as a run that hangs would hold it (its file descriptor)."""
        locks = self.folder / "activity-export.ledger.sqlite.locks"
        locks.mkdir(mode=0o700, exist_ok=True)
        held = os.open(locks / f"{brand}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(held, b"4242\n")
        return held

    def run_with_the_clock_ahead(self, now: datetime) -> None:
        """A first run whose clock is weeks ahead: HUDSON, without ``start``, would owe nothing
        before that clock's period; it is refused and registered nowhere, so the first real run
        anchors it (the brands with ``start`` deliver what is complete, as any run would). Only
        data can show a clock to be ahead: while no brand's data is complete yet, it is left out."""
        if self.warehouse.scalar("select max(complete_until) from {schema}.export_watermark") is None:
            self.note(f"{now:%m-%d %H:%M} run (clock ahead): left out, no brand's data complete yet")
            return
        process, out, err = self._start(now, None, "ahead")
        process.wait(timeout=600)
        result = RunResult(now, "clock-ahead", process.returncode, out.read_text(), err.read_text())
        self.note(f"{now:%m-%d %H:%M} run (clock ahead): exit {result.returncode}")
        if result.returncode != 1 or "first run without `start`" not in result.stderr:
            hudson = "\n".join(line for line in result.stderr.splitlines() if "HUDSON" in line)
            self.fail(f"a first run with the clock ahead was not refused for HUDSON:\n{hudson[-3000:]}")
        if any(r.startswith("HUDSON/") for r in self.delivered_files()):
            self.fail("a first run with the clock ahead delivered HUDSON files")
        self.check_run(result)
        self.check_files()

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

    # --- the month --------------------------------------------------------------------------------

    def schedule(self) -> list[tuple[datetime, str]]:
        """Builds and runs at random times of random days; most nights nothing happens.

        Five builds in the month (one in each stretch of days, so both DST changes fall between
        builds), each followed by a run: of those after the first, two are killed and one finds
        AMSTEL's destination gone. One more run between builds: normal, killed, or two at once.
        """
        first_build = SIM_START + between(self.rng, timedelta(hours=20), timedelta(hours=34))
        builds = [first_build] + [
            SIM_START
            + timedelta(days=self.rng.randint(low, high))
            + between(self.rng, timedelta(hours=1), timedelta(hours=11))
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
            operations.append((built + between(self.rng, timedelta(minutes=5), timedelta(hours=3)), how))
        moment = builds[1] + between(self.rng, timedelta(hours=4), builds[-1] - builds[1])
        operations.append((moment, self.rng.choice(["normal", "sigkill", "twin", "hung"])))
        # an operator's first run with a clock weeks ahead, just before the first real run
        first_run = min(moment for moment, how in operations if how != "build")
        operations.append((first_run - timedelta(minutes=1), "clock-ahead"))
        if self.project.target == "postgres":  # DuckDB's file lock keeps a build and a run apart
            index = self.rng.randrange(1, len(builds))
            operations.remove((builds[index], "build"))
            operations.append((builds[index], "overlap"))
        return sorted(operations)

    def month(self) -> None:
        self.create()
        for moment, how in self.schedule():
            if how == "build":
                self.build(moment)
                continue
            if how == "clock-ahead":
                self.run_with_the_clock_ahead(moment + timedelta(days=40))
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
