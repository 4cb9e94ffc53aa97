"""The shared ledger in PostgreSQL: claims by row lock, and exactly-once with workers killed at random."""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from activity_export.check import changed_since_delivery
from activity_export.config import LocalDestination, parse_config
from activity_export.errors import ExportError
from activity_export.ledger import Book, config_key, open_ledger, parse_location, tenant_lock
from activity_export.ledger.location import safe_url
from activity_export.ledger.postgres import PostgresLedger
from tests.support.postgres import fresh_database, pg_connect, pg_settings
from tests.support.project import BIN, Project, fresh_project
from tests.support.tenants import EXPECTED, server_files, write_config
from tests.support.webhooks import Hook, serve

NOW = "2026-11-04T07:00:00+01:00"  # the three generated days are due and complete
BRANDS = [f"MERK{n}" for n in range(1, 9)]


@pytest.fixture
def ledger_url() -> Iterator[str]:
    """A PostgreSQL database of its own for one test's ledger, dropped afterwards."""
    with fresh_database("aexp_ledger") as name:
        settings = pg_settings()
        auth = settings["user"] + (f":{settings['password']}" if settings["password"] else "")
        yield f"postgresql://{auth}@{settings['host']}:{settings['port']}/{name}"


def test_a_postgres_url_opens_the_shared_ledger_with_the_same_interface(ledger_url: str) -> None:
    book = Book("/etc/activity-export/tenants.yml", "BRANDNAAM", "local:/srv/out")
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
    # a path option folds the URL's "//"; the ledger reads it back
    with open_ledger(parse_location(Path(ledger_url))) as ledger:
        assert isinstance(ledger, PostgresLedger)
        ledger.register(book, start)
        attempt = ledger.start_attempt(book, start, "2026-11-01")
        ledger.uploading(book, "activity", start, end, "2026-11-01", "a.csv", 10, 100, "ab" * 32)
        ledger.delivered(book, "activity", start, "a.csv")
        ledger.uploading(book, "broadcast", start, end, "2026-11-01", "b.csv", 2, 20, "cd" * 32)
        assert ledger.delivered_starts(book, ["activity", "broadcast"]) == set()
        ledger.delivered(book, "broadcast", start, "b.csv")
        ledger.finish_attempt(attempt, "delivered")
    with open_ledger(parse_location(ledger_url)) as again:  # a second worker, or the next run
        assert again.delivered_starts(book, ["activity", "broadcast"]) == {start}
        assert again.is_delivered(book, start, ["activity", "broadcast"])
        assert again.period_records(book, start)["activity"].sha256 == "ab" * 32
        assert again.attempts(book) == [("2026-11-01", "delivered")]
        other = Book("/elsewhere/tenants.yml", "BRANDNAAM", "local:/srv/out")
        assert again.delivered_starts(other, ["activity"]) == set()  # per configuration file


def test_check_warns_about_a_changed_destination_in_the_shared_ledger(
    ledger_url: str, tmp_path: Path
) -> None:
    config_path = tmp_path / "tenants.yml"
    raw = {"tenants": {"BRANDNAAM": {"destination": {"type": "local", "root": str(tmp_path / "new")}}}}
    config = parse_config(raw, config_path)
    old = LocalDestination(type="local", root=tmp_path / "old")
    with open_ledger(parse_location(ledger_url)) as ledger:
        ledger.register(
            Book(config_key(config_path), "BRANDNAAM", old.key),
            datetime(2026, 11, 1, tzinfo=UTC),
        )
    [warning] = changed_since_delivery(config, parse_location(ledger_url))
    assert warning.startswith("tenant BRANDNAAM: destination changed"), warning


def test_a_claim_excludes_every_other_worker_until_its_connection_ends(ledger_url: str) -> None:
    location = parse_location(ledger_url)
    open_ledger(location).close()
    with tenant_lock(location, "BRANDNAAM") as first:
        with tenant_lock(location, "BRANDNAAM") as second:
            with tenant_lock(location, "MODEHUIS") as other:
                assert (first is not None, second is None, other is not None) == (True, True, True)
    with tenant_lock(location, "BRANDNAAM") as after:
        assert after is not None


def test_an_unreachable_ledger_is_one_error_without_the_password() -> None:
    url = "postgresql://aexp:geheim@127.0.0.1:1/ledger"
    with pytest.raises(ExportError) as raised:
        open_ledger(parse_location(url))
    assert "geheim" not in str(raised.value)
    assert safe_url(url) in str(raised.value)


def _inodes(folder: Path, seen: dict[str, int], stop: threading.Event) -> None:
    """Remember the first inode of every published file: a second publication has another one."""
    while not stop.is_set():
        for path in folder.rglob("*.csv"):
            try:
                seen.setdefault(str(path.relative_to(folder)), path.stat().st_ino)
            except FileNotFoundError:
                pass
        time.sleep(0.01)


def test_four_workers_killed_at_random_deliver_every_file_exactly_once(
    duckdb_project: Project, tmp_path: Path, ledger_url: str
) -> None:
    project = fresh_project(
        duckdb_project, tmp_path, "--brands", ",".join(BRANDS), "--days", "3", "--events-per-day", "100"
    )
    server = tmp_path / "server"
    config = tmp_path / "tenants.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "defaults": {"start": "2026-11-01"},
                "tenants": {b: {"destination": {"type": "local", "root": str(server / b)}} for b in BRANDS},
            }
        )
    )
    command = [str(BIN / "activity-export"), "run", "--config", str(config), "--ledger", ledger_url]
    command += ["--now", NOW, "--parallel", "2", *project.cli_args()]

    spawned = 0

    def worker() -> tuple[str, subprocess.Popen[bytes]]:
        nonlocal spawned
        spawned += 1
        name = f"worker-{spawned}"  # its connections' application_name in pg_stat_activity
        env = {**project.env, "PGAPPNAME": name}
        return name, subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def claiming(names: set[str]) -> list[str]:
        """Workers holding a claim right now: an open transaction on the ledger database."""
        cursor.execute(
            "select distinct application_name from pg_stat_activity "
            "where datname = %s and state = 'idle in transaction'",
            (database,),
        )
        return sorted(name for (name,) in cursor.fetchall() if name in names)

    database = ledger_url.rsplit("/", 1)[1]
    watch = pg_connect(database)
    watch.autocommit = True
    cursor = watch.cursor()
    seen: dict[str, int] = {}
    stop = threading.Event()
    observer = threading.Thread(target=_inodes, args=(server, seen, stop), daemon=True)
    observer.start()
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    workers = dict(worker() for _ in range(4))
    kills = 0
    try:
        # Kill a worker while it is delivering (holds a claim), six times; each comes back, as
        # under a scheduler. Bounded: at most 60 s of polling per kill.
        for _ in range(6):
            deadline = time.monotonic() + 60
            holders: list[str] = []
            while not holders and time.monotonic() < deadline:
                if all(process.poll() is not None for process in workers.values()):
                    break
                holders = claiming({name for name, p in workers.items() if p.poll() is None})
                time.sleep(0.02)
            if not holders:
                break
            time.sleep(rng.uniform(0, 0.3))
            victim = rng.choice(holders)
            workers[victim].kill()
            workers[victim].wait()
            kills += 1
            del workers[victim]
            workers.update([worker()])
        for process in workers.values():
            process.wait(timeout=600)
        last = project.run(*command[1:])  # nobody holds a claim now: this one finishes everything
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.kill()
        stop.set()
        observer.join()

    assert kills >= 1, f"seed {seed}: no worker was ever seen delivering"
    expected = sorted(
        f"{brand}/{kind}_{brand}_2026110{day}.csv"
        for brand in BRANDS
        for kind in ("activity", "broadcast")
        for day in (1, 2, 3)
    )
    published = {str(p.relative_to(server)): p.stat().st_ino for p in server.rglob("*") if p.is_file()}
    assert sorted(published) == expected, (seed, last.stdout)  # every file, no partial left behind
    twice = [name for name, inode in published.items() if seen.get(name, inode) != inode]
    assert not twice, f"seed {seed}: published more than once: {twice}"
    with watch:
        cursor.execute(
            "select status, count(*) from activity_export_ledger.deliveries group by status order by status"
        )
        assert cursor.fetchall() == [("delivered", len(expected))], seed
        cursor.execute(
            "select coalesce(outcome, 'running'), count(*) from activity_export_ledger.attempts group by 1"
        )
        print(f"seed {seed}: {kills} workers killed; attempts by outcome: {dict(cursor.fetchall())}")
    watch.close()
    # what status reads back from the shared ledger
    status = project.run(
        "status", "--json", "--config", str(config), "--ledger", ledger_url, "--now", NOW,
        *project.cli_args(),
    )  # fmt: skip
    assert {
        t["brand"]: t["delivered_periods"] for t in json.loads(status.stdout)["tenants"]
    } == dict.fromkeys(BRANDS, 3)


def test_webhook_outcomes_are_kept_in_the_shared_ledger_without_its_password(
    built_duckdb: Project, tmp_path: Path, ledger_url: str
) -> None:
    served = serve(Hook(status=500))
    hook = next(served)
    password = "s3cret-ledger-pw"  # trust authentication ignores it; no output may show it
    scheme, rest = ledger_url.split("://", 1)
    credentials, where = rest.split("@", 1)
    url = f"{scheme}://{credentials.split(':')[0]}:{password}@{where}"
    config = tmp_path / "tenants.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "tenants": {
                    "BRANDNAAM": {
                        "start": "2026-11-03",
                        "destination": {"type": "local", "root": str(tmp_path / "server")},
                        "notify": {
                            "url": hook.url,
                            "secret_env": "BRANDNAAM_WEBHOOK_SECRET",
                            "retries": 0,
                        },
                    }
                }
            }
        )
    )
    common = ["--config", str(config), "--ledger", url, "--now", NOW, *built_duckdb.cli_args()]
    env = {"BRANDNAAM_WEBHOOK_SECRET": "whsec_" + "d2ViaG9vay1zZWNyZXQtZm9yLXRlc3RzLTEyMzQ="}
    try:
        run = built_duckdb.run("run", "-v", *common, env=env)
    finally:
        served.close()
    status = built_duckdb.run("status", "--json", *common, env=env)
    table = built_duckdb.run("status", *common, env=env)
    assert len(hook.received) == 1  # one period delivered, its event refused
    [tenant] = json.loads(status.stdout)["tenants"]
    assert tenant["webhook"] is not None, status.stdout
    assert (tenant["webhook"]["ok"], tenant["webhook"]["failures"]) == (False, 1)
    assert tenant["webhook"]["detail"] == "HTTP 500"
    for output in (run.stdout, run.stderr, status.stdout, status.stderr, table.stdout, table.stderr):
        assert password not in output


def test_a_worker_whose_claim_ends_publishes_nothing_more_and_records_why(
    built_duckdb: Project, tmp_path: Path, ledger_url: str
) -> None:
    """The ledger's server restarts (every connection to it ends) while a worker has written a
    period and not yet published it: its claim is gone, and another worker may already hold the
    tenant. It publishes nothing more, says why, and the failure is in the ledger; the next run
    delivers every period once."""
    config = write_config(tmp_path)
    common = ["--config", str(config), "--ledger", ledger_url, "--now", NOW, *built_duckdb.cli_args()]
    worker = subprocess.Popen(
        [str(BIN / "activity-export"), "run", *common],
        env={**built_duckdb.env, "ACTIVITY_EXPORT_FAILPOINT": "after-write:wait"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert worker.stderr is not None and worker.stdin is not None
    try:
        line = worker.stderr.readline()
        assert line == "waiting at after-write\n", line + worker.stderr.read()
        database = ledger_url.rsplit("/", 1)[1]
        admin = pg_connect("postgres")
        admin.autocommit = True
        with admin.cursor() as cursor:  # what a restart of the ledger's server does to the worker
            cursor.execute(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity "
                "where datname = %s and pid <> pg_backend_pid()",
                (database,),
            )
            assert cursor.fetchone()[0] >= 2  # the ledger's connection and the claim's
        admin.close()
        worker.stdin.write("\n")
        worker.stdin.flush()
        _, err = worker.communicate(timeout=120)
    finally:
        worker.kill()
    assert worker.returncode == 1, err
    assert "lost its claim" in err and "unexpected" not in err and "InterfaceError" not in err, err
    assert server_files(tmp_path) == {}  # nothing published after the claim ended
    with open_ledger(parse_location(ledger_url)) as ledger:
        book = Book(
            config_key(config), "BRANDNAAM", LocalDestination(type="local", root=tmp_path / "server").key
        )
        assert ledger.attempts(book) == [("2026-11-01", "failed")]

    built_duckdb.run("run", *common)  # exit 0, or it raises
    assert sorted(server_files(tmp_path)) == sorted(EXPECTED)
