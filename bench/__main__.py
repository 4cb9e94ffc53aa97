"""`make bench`: activity-export against the hand-made floor, `psql \\copy` + OpenSSH `sftp put`.

Every scenario runs its baseline and activity-export side by side in one run, so machine noise
cancels out in the ratios. Results go to bench/results/README.md (table) and bench.png (chart).

    .venv/bin/python -m bench [--large 13700000] [--small 1370000] [--tenants 10000] [--only 0,1,3]

Scenarios:
  0. start-up: `--help`, `check`, `status` and `export` of a small tenant-day, median of 7 runs;
  1. one tenant-day of 10 million activity rows (--large events) in PostgreSQL: psql \\copy of the same slice + sftp put,
     against `activity-export run` for that period to the same sshd: wall time, rows/s, MB/s, RSS;
  2. the same with 1 million rows (--small events): how cost and memory grow with size;
     both also measure how much of psql's time is PostgreSQL sorting the slice (EXPLAIN ANALYZE)
     and psql \\copy of the slice without an order (the floor), and our write alone;
  3. --tenants tenants with small days: one whole `run --processes 2` to sshd, total and per tenant,
     against OpenSSH `sftp` per tenant (login, mkdir, two puts) and against the SSH logins alone;
     and the same delivery by one process with 8 threads;
  4. an incremental `dbt build` of one new day with 1x and 10x history (bench/dbt_incremental.py);
  5. gzip and zstd against none for the --small day: time and bytes;
  6. the --small day (DuckDB) to an S3 bucket (a SeaweedFS store on loopback): `activity-export export`
     + a plain boto3 put_object of the same files, against `activity-export run` to the bucket.

Needs root (the sshd fixture creates chrooted accounts), openssh-server, and PostgreSQL (PG*).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.support.postgres import create_database, drop_database, pg_variables
from tests.support.project import BIN, ROOT, copy_profiles, dbt_env
from tests.support.seaweedfs import ACCESS_KEY as S3_ACCESS_KEY
from tests.support.seaweedfs import SECRET_KEY as S3_SECRET_KEY
from tests.support.seaweedfs import SeaweedServer
from tests.support.sshd import SshServer
from tests.support.tenants import sftp_destination, write_tenants

from bench.common import machine

RESULTS = ROOT / "bench" / "results"
LOAD_AT_START = " / ".join(f"{load:.1f}" for load in os.getloadavg())
DAY = "2026-11-01"
NOW = "2026-11-03T07:00:00+00:00"
# scenario 3's run delivers with this many worker processes (`run --processes`), one per core here
PROCESSES = 2


@dataclass
class Measurement:
    seconds: float
    peak_rss_mb: float
    output: str = ""
    busy_cpu: float = 0.0  # CPU seconds of the whole machine meanwhile (PostgreSQL, sshd included)


def busy_cpu() -> float:
    """CPU seconds the whole machine has been busy since boot (all cores, every process)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class Row:
    scenario: str
    what: str
    seconds: float
    peak_rss_mb: float | None = None
    rows: int | None = None
    megabytes: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)


def timed(command: list[str], env: dict[str, str], stdin: str | None = None) -> Measurement:
    """Wall time and peak RSS of one child process (its own, via wait4), failing loudly."""
    started, cpu_before = time.perf_counter(), busy_cpu()
    process = subprocess.Popen(
        command,
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if stdin:
        assert process.stdin is not None
        process.stdin.write(stdin)
        process.stdin.close()
    assert process.stdout is not None and process.stderr is not None
    # both pipes drained at once: a run writes a line per period on stderr, and a full pipe would
    # stop it while this waits for stdout to end
    with ThreadPoolExecutor(max_workers=1) as reader:
        errors = reader.submit(process.stderr.read)
        out = process.stdout.read()
        err = errors.result()
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"failed ({process.returncode}): {' '.join(command)}\n{out[-3000:]}\n{err[-3000:]}")
    return Measurement(elapsed, usage.ru_maxrss / 1024, out, busy_cpu() - cpu_before)


def pg_env(database: str) -> dict[str, str]:
    return {**os.environ, **pg_variables(database)}


def recreate_database(name: str) -> None:
    drop_database(name)
    create_database(name)


@dataclass
class Workspace:
    """A folder with its own dbt profiles, environment and target arguments."""

    folder: Path
    profiles: Path
    env: dict[str, str]
    target: list[str]


def ours_against(
    scenario: str, what: str, ours: Measurement, baseline: float, rows: int, size: float, identical: bool
) -> Row:
    """A round of activity-export, as a ratio to the baseline measured beside it."""
    return Row(
        scenario,
        what,
        ours.seconds,
        ours.peak_rss_mb,
        rows,
        size,
        f"{ours.seconds / baseline:.2f}x baseline; same bytes: {identical}; busy CPU {ours.busy_cpu:.1f}s",
        {"ratio": ours.seconds / baseline},
    )


def workspace(work: Path, name: str, target: str, extra_env: dict[str, str]) -> Workspace:
    folder = work / name
    profiles = copy_profiles(folder)
    arguments = ["--project-dir", str(ROOT), "--profiles-dir", str(profiles), "--target", target]
    return Workspace(folder, profiles, dbt_env(folder, extra_env), arguments)


def cli(*args: str) -> list[str]:
    return [str(BIN / "activity-export"), *args]


def dbt(*args: str) -> list[str]:
    return [str(BIN / "dbt"), *args, "--project-dir", str(ROOT)]


def dbt_models(profiles: Path, target: str, env: dict[str, str]) -> Measurement:
    """Seeds and models, without the data tests (the suite runs those): what a nightly build costs."""
    timed(dbt("seed", "--profiles-dir", str(profiles), "--target", target), env)
    return timed(dbt("run", "--profiles-dir", str(profiles), "--target", target), env)


# -- scenarios 1 and 2 --------------------------------------------------------------------------

BASELINE_ACTIVITY = """\\copy (select broadcast_id as broadcastid, customer_id as customerid,
 external_id as externalid, email, activity,
 to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') as activitydate, description
 from analytics.export_activities where brand collate "C" = 'BENCH'
 and available_at >= '2026-11-01 00:00:00+00' and available_at < '2026-11-02 00:00:00+00'
 order by occurred_at, event_id) to '{path}' with (format csv, header, delimiter ';')"""
BASELINE_BROADCAST = """\\copy (select broadcast_id as broadcastid, broadcast_type as broadcasttype,
 description, subject, to_char(sent_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') as sentdate
 from analytics.export_broadcasts where brand collate "C" = 'BENCH' and broadcast_id in (
 select broadcast_id from analytics.export_broadcast_touches where brand collate "C" = 'BENCH'
 and touched_at >= '2026-11-01 00:00:00+00' and touched_at < '2026-11-02 00:00:00+00')
 order by broadcast_id) to '{path}' with (format csv, header, delimiter ';')"""


SLICE = """select broadcast_id as broadcastid, customer_id as customerid,
 external_id as externalid, email, activity,
 to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS') as activitydate, description
 from analytics.export_activities where brand collate "C" = 'BENCH'
 and available_at >= '2026-11-01 00:00:00+00' and available_at < '2026-11-02 00:00:00+00'"""


def _sort_node_seconds(plan: dict) -> tuple[float, str]:
    """Exclusive time of the Sort node(s) in an EXPLAIN ANALYZE plan, and how they sorted."""
    total, methods = 0.0, []
    stack = [plan]
    while stack:
        node = stack.pop()
        children = node.get("Plans", [])
        stack.extend(children)
        if "Sort" in node["Node Type"]:
            inner = max((c["Actual Total Time"] for c in children), default=0.0)
            total += (node["Actual Total Time"] - inner) / 1000
            space = node.get("Sort Space Used")
            methods.append(
                f"{node.get('Sort Method', '?')} {space or '?'} kB {node.get('Sort Space Type', '')}"
            )
    return total, "; ".join(methods)


def sort_floor(label: str, env: dict[str, str], work: Path, baseline_copy: float, rows: int) -> list[Row]:
    """How much of psql \\copy is PostgreSQL sorting the slice, and what other orders cost."""
    explained = timed(
        [
            "psql",
            "-X",
            "-A",
            "-t",
            "-c",
            f"explain (analyze, format json) {SLICE} order by occurred_at, event_id",
        ],
        env,
    )
    sort_seconds, method = _sort_node_seconds(json.loads(explained.output)[0]["Plan"])
    results = [
        Row(
            label,
            "PostgreSQL sort inside the baseline query (EXPLAIN ANALYZE)",
            sort_seconds,
            None,
            rows,
            None,
            f"{sort_seconds / baseline_copy:.0%} of the baseline's copy; {method}",
        )
    ]
    # Ordering by the index instead, (available_at, event_id), was measured too: 0.97x of the
    # baseline's copy at 1 M rows, 3.4x at 10 M (PostgreSQL walks the index and reads the heap
    # at random); it is no longer run, to keep `make bench` under 15 minutes.
    for what, order in (("psql \\copy, same slice, no order (the floor)", ""),):
        out = work / "floor.csv"
        measured = timed(
            ["psql", "-c", f"\\copy ({SLICE}{order}) to '{out}' with (format csv, header, delimiter ';')"],
            env,
        )
        results.append(
            Row(
                label,
                what,
                measured.seconds,
                measured.peak_rss_mb,
                rows,
                out.stat().st_size / 1e6,
                f"{measured.seconds / baseline_copy:.2f}x the baseline's ordered copy",
            )
        )
        out.unlink()
    return results


def one_tenant_day(rows: int, label: str, server: SshServer, work: Path) -> list[Row]:
    """Scenario 1/2: psql \\copy + sftp put against activity-export run, same slice, same sshd."""
    database = f"aexp_bench_{rows}"
    recreate_database(database)
    space = workspace(work, f"day_{rows}", "postgres", pg_env(database))
    folder, profiles, env, target = space.folder, space.profiles, space.env, space.target
    print(f"[{label}] generating {rows:,} events into PostgreSQL", flush=True)
    timed(
        cli(
            "generate",
            "--brands",
            "BENCH",
            "--days",
            "1",
            "--events-per-day",
            str(rows),
            "--start",
            DAY,
            *target,
        ),
        env,
    )
    print(f"[{label}] dbt run", flush=True)
    dbt_models(profiles, "postgres", env)
    # statistics, as autovacuum has them by the time a nightly export runs: both sides then get
    # the plans PostgreSQL picks in production, not the ones it guesses for an unanalyzed table
    timed(
        ["psql", "-q", "-c", "analyze analytics.export_activities, analytics.export_broadcast_touches"], env
    )

    account = server.add_account()
    known_hosts = server.write_known_hosts(folder / "known_hosts")
    config = write_tenants(
        folder / "tenants.yml",
        {
            "BENCH": {
                "start": DAY,
                "timezone": "UTC",
                "destination": sftp_destination(server, account, known_hosts, root="/upload/ours"),
            }
        },
    )
    base_dir = folder / "baseline"
    base_dir.mkdir()
    results: list[Row] = []
    for round_number in range(2):
        print(f"[{label}] round {round_number + 1}: baseline psql \\copy + sftp put", flush=True)
        activity, broadcast = (
            base_dir / f"activity_BENCH_{DAY.replace('-', '')}.csv",
            base_dir / f"broadcast_BENCH_{DAY.replace('-', '')}.csv",
        )
        copy_a = timed(["psql", "-c", BASELINE_ACTIVITY.format(path=activity).replace("\n", "")], env)
        activity_rows = int(copy_a.output.split()[-1])  # psql prints "COPY <rows>"
        copy_b = timed(["psql", "-q", "-c", BASELINE_BROADCAST.format(path=broadcast).replace("\n", "")], env)
        put_started, put_cpu = time.perf_counter(), busy_cpu()
        put = server.openssh_sftp(
            account,
            f"-mkdir /upload/base\nput {activity} /upload/base/\nput {broadcast} /upload/base/\n",
            timeout=1800,
        )
        put_seconds, put_cpu = time.perf_counter() - put_started, busy_cpu() - put_cpu
        baseline_cpu = copy_a.busy_cpu + copy_b.busy_cpu + put_cpu
        if put.returncode != 0:
            raise SystemExit(f"sftp put failed: {put.stderr}")
        baseline_seconds = copy_a.seconds + copy_b.seconds + put_seconds
        size = (activity.stat().st_size + broadcast.stat().st_size) / 1e6

        print(f"[{label}] round {round_number + 1}: activity-export run", flush=True)
        ours = timed(
            cli(
                "run",
                "--config",
                str(config),
                "--ledger",
                str(folder / "ledger.sqlite"),
                "--now",
                NOW,
                "--force",
                *target,
            ),
            env,
        )
        delivered = account.upload / "ours" / activity.name
        identical = (
            delivered.read_bytes() == activity.read_bytes()
            if rows <= 2_000_000
            else delivered.stat().st_size == activity.stat().st_size
        )
        results.append(
            Row(
                label,
                f"baseline psql \\copy + sftp put (round {round_number + 1})",
                baseline_seconds,
                max(copy_a.peak_rss_mb, copy_b.peak_rss_mb),
                activity_rows,
                size,
                f"copy {copy_a.seconds + copy_b.seconds:.1f}s + put {put_seconds:.1f}s; "
                f"busy CPU {baseline_cpu:.1f}s",
            )
        )
        what = f"activity-export run (round {round_number + 1})"
        results.append(ours_against(label, what, ours, baseline_seconds, activity_rows, size, identical))
        for path in (account.upload / "ours").glob("*"):
            path.unlink()
    # the two halves of a run on their own: the write alone (no upload), the upload alone (paramiko)
    written = folder / "written"
    alone = timed(cli("export", "--config", str(config), "--brand", "BENCH", "--period", DAY,
                      "--out", str(written), *target), env)  # fmt: skip
    results.append(
        Row(
            label,
            "activity-export export, the same files written locally (no upload)",
            alone.seconds,
            alone.peak_rss_mb,
            activity_rows,
            size,
            f"busy CPU {alone.busy_cpu:.1f}s; the run's write half",
        )
    )
    shutil.rmtree(written)
    print(f"[{label}] how much of the baseline is sorting", flush=True)
    results += sort_floor(label, env, folder, copy_a.seconds, activity_rows)
    drop_database(database)
    return results


# -- scenario 3 ---------------------------------------------------------------------------------


def many_tenants(count: int, server: SshServer, work: Path) -> list[Row]:
    space = workspace(work, "tenants", "duckdb", {"ACTIVITY_EXPORT_DUCKDB": str(work / "tenants.duckdb")})
    folder, profiles, env, target = space.folder, space.profiles, space.env, space.target
    brands = [f"T{i:04d}" for i in range(1, count + 1)]
    print(f"[3] generating {count} tenants", flush=True)
    timed(
        cli(
            "generate",
            "--brands",
            ",".join(brands),
            "--days",
            "1",
            "--events-per-day",
            "40",
            "--start",
            DAY,
            *target,
        ),
        env,
    )
    dbt_models(profiles, "duckdb", env)
    account = server.add_account()
    known_hosts = server.write_known_hosts(folder / "known_hosts")
    tenants = {
        brand: {"destination": sftp_destination(server, account, known_hosts, root=f"/upload/{brand}")}
        for brand in brands
    }
    config = write_tenants(folder / "tenants.yml", tenants, {"start": DAY, "timezone": "UTC"})
    print(f"[3] run for {count} tenants, {PROCESSES} worker processes", flush=True)
    command = cli("run", "--config", str(config), "--now", NOW, *target)
    first = timed([*command, "--processes", str(PROCESSES)], env)
    delivered = sum(1 for _ in account.upload.rglob("*.csv"))
    second = timed([*command, "--processes", str(PROCESSES)], env)
    print("[3] the same delivery in one process, 8 threads, a new ledger", flush=True)
    for delivered_folder in account.upload.iterdir():  # the account's own folder stays, owner and all
        shutil.rmtree(delivered_folder)
    alone = timed([*command, "--parallel", "8", "--ledger", str(folder / "one-process.ledger.sqlite")], env)
    alone_files = sum(1 for _ in account.upload.rglob("*.csv"))
    print(f"[3] the same files by OpenSSH sftp, and SSH logins alone, for {count} tenants", flush=True)
    by_hand = sftp_each_tenant(server, account, brands, work / "by_hand")
    logins = logins_alone(server, account, count)
    return [
        Row(
            "3",
            f"run, {count} tenants, sftp, --processes {PROCESSES} (4 in parallel each)",
            first.seconds,
            first.peak_rss_mb,
            None,
            None,
            f"{first.seconds / count * 1000:.0f} ms per tenant; {delivered} files; busy CPU {first.busy_cpu:.0f}s",
        ),
        Row(
            "3",
            "the same run in one process (--parallel 8, a new ledger)",
            alone.seconds,
            alone.peak_rss_mb,
            None,
            None,
            f"{alone.seconds / count * 1000:.0f} ms per tenant; {alone_files} files; "
            f"{alone.seconds / first.seconds:.2f}x the time of {PROCESSES} worker processes; "
            f"busy CPU {alone.busy_cpu:.0f}s",
        ),
        Row(
            "3",
            "second run, nothing left to deliver",
            second.seconds,
            second.peak_rss_mb,
            None,
            None,
            f"{second.seconds / count * 1000:.1f} ms per tenant",
        ),
        Row(
            "3",
            "baseline OpenSSH sftp per tenant (login, mkdir, 2 puts), 8 in parallel",
            by_hand,
            note=f"{by_hand / count * 1000:.0f} ms per tenant; the run is {first.seconds / by_hand:.2f}x of it",
        ),
        Row(
            "3",
            "SSH logins alone (paramiko, login and SFTP session), 8 threads",
            logins,
            note=f"{logins / count * 1000:.0f} ms each: a login per tenant (the run logs in once per account)",
        ),
    ]


def sftp_each_tenant(server: SshServer, account: Any, brands: list[str], local: Path) -> float:
    """The hand-made path: per tenant, OpenSSH ``sftp -b`` logs in, makes a folder and puts the
    two files the run delivered, eight tenants at a time; seconds."""
    batches = {}
    for brand in brands:
        mine = local / brand
        mine.mkdir(parents=True)
        puts = []
        for delivered in sorted((account.upload / brand).rglob("*.csv")):
            shutil.copy(delivered, mine / delivered.name)
            puts.append(f"put {mine / delivered.name} /upload/by_hand_{brand}/{delivered.name}")
        batches[brand] = "\n".join([f"mkdir /upload/by_hand_{brand}", *puts]) + "\n"
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda brand: server.openssh_sftp(account, batches[brand]).returncode, brands))
    if any(codes):
        raise RuntimeError(f"sftp failed for {sum(1 for c in codes if c)} tenants")
    return time.perf_counter() - started


def logins_alone(server: SshServer, account: Any, count: int) -> float:
    """``count`` SSH logins with an SFTP session each and nothing else, eight threads; seconds."""
    import paramiko

    key = paramiko.Ed25519Key.from_private_key_file(str(account.private_key))

    def login(_: int) -> None:
        transport = paramiko.Transport((server.host, server.port))
        try:
            transport.connect(username=account.username, pkey=key)
            paramiko.SFTPClient.from_transport(transport).close()  # type: ignore[union-attr]
        finally:
            transport.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(login, range(count)))
    return time.perf_counter() - started


# -- scenario 4 ---------------------------------------------------------------------------------


def incremental_dbt(work: Path, out_folder: Path) -> list[Row]:
    script = ROOT / "bench" / "dbt_incremental.py"
    if not script.exists():
        return [Row("4", "incremental dbt build", float("nan"), note="bench/dbt_incremental.py missing")]
    out = work / "dbt_incremental.json"
    print("[4] incremental dbt build, 1x and 10x history", flush=True)
    # 10,000 events per brand-day with a load-time column: the nightly build as docs/models.md
    # recommends it; the script's own defaults (all modes, 100,000 events) take far longer
    arguments = [
        "--events-per-day",
        "10000",
        "--modes",
        "loaded_at",
        "--out",
        str(out_folder / "dbt_incremental.md"),
    ]
    timed([sys.executable, "-m", "bench.dbt_incremental", *arguments, "--json", str(out)], dict(os.environ))
    data = json.loads(out.read_text())
    rows = []
    for entry in data["runs"]:
        rows.append(
            Row("4", entry["label"], entry["seconds"], None, entry.get("rows"), None, entry.get("note", ""))
        )
    rows.append(
        Row(
            "4",
            f"ratio 10x / 1x history ({data['target']})",
            data["ratio"],
            note="target <= 1.15 (a ratio, not seconds)",
            extra={"ratio": data["ratio"]},
        )
    )
    return rows


# -- scenario 0 ---------------------------------------------------------------------------------

STARTUP_RUNS = 7


def cpu_timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{process.stderr.read() if process.stderr else ''}")
    return wall, usage.ru_utime + usage.ru_stime


def startup(work: Path) -> list[Row]:
    """Scenario 0: small commands, the median of several runs (wall, and CPU for a loaded machine)."""
    space = workspace(work, "startup", "duckdb", {"ACTIVITY_EXPORT_DUCKDB": str(work / "startup.duckdb")})
    print("[0] start-up: a small tenant-day", flush=True)
    generate = ["generate", "--brands", "BENCH", "--days", "2", "--events-per-day", "2000", "--start", DAY]
    timed(cli(*generate, *space.target), space.env)
    dbt_models(space.profiles, "duckdb", space.env)
    config = write_tenants(
        space.folder / "tenants.yml",
        {"BENCH": {"destination": {"type": "local", "root": str(space.folder / "out")}}},
        {"timezone": "UTC", "start": DAY},
    )
    ledger = ["--ledger", str(space.folder / "ledger.sqlite")]
    commands = [
        ("--help", cli("--help"), 0.3),
        ("check", cli("check", "--config", str(config), "--now", NOW), 0.5),
        ("status", cli("status", "--config", str(config), *ledger, "--now", NOW, *space.target), 0.5),
        (
            "export of one small tenant-day",
            cli(
                "export",
                "--config",
                str(config),
                "--brand",
                "BENCH",
                "--period",
                DAY,
                "--out",
                str(space.folder / "export"),
                *space.target,
            ),
            0.6,
        ),
    ]
    rows = []
    for what, command, target in commands:
        cpu_timed(command, space.env)  # warm the page cache
        runs = sorted(cpu_timed(command, space.env) for _ in range(STARTUP_RUNS))
        wall = statistics.median(run[0] for run in runs)
        cpu = statistics.median(run[1] for run in runs)
        exported = space.folder / "export" / f"activity_BENCH_{DAY.replace('-', '')}.csv"
        size = len(exported.read_text().splitlines()) - 1 if "export" in what and exported.exists() else None
        rows.append(
            Row(
                "0",
                f"`{what}`",
                wall,
                None,
                size,
                None,
                f"median of {STARTUP_RUNS}; CPU {cpu:.2f}s; target <= {target} s",
                {"cpu": cpu},
            )
        )
    return rows


# -- scenario 6 ---------------------------------------------------------------------------------


def s3_day(rows: int, work: Path) -> list[Row]:
    """Scenario 6: export + plain boto3 put_object against activity-export run, same day, same bucket."""
    space = workspace(work, "s3_day", "duckdb", {"ACTIVITY_EXPORT_DUCKDB": str(work / "s3_day.duckdb")})
    folder, profiles, env, target = space.folder, space.profiles, space.env, space.target
    print(f"[6] generating {rows:,} events into DuckDB", flush=True)
    timed(cli("generate", "--brands", "BENCH", "--days", "1", "--events-per-day", str(rows),
              "--start", DAY, *target), env)  # fmt: skip
    dbt_models(profiles, "duckdb", env)
    (work / "seaweedfs").mkdir()
    store = SeaweedServer(work / "seaweedfs").start()
    try:
        bucket = store.new_bucket()
        env = {**env, "BENCH_S3_KEY_ID": S3_ACCESS_KEY, "BENCH_S3_SECRET": S3_SECRET_KEY}
        config = write_tenants(
            folder / "tenants.yml",
            {
                "BENCH": {
                    "start": DAY,
                    "timezone": "UTC",
                    "destination": {
                        "type": "s3",
                        "bucket": bucket,
                        "prefix": "ours/",
                        "region": "us-east-1",
                        "endpoint_url": store.endpoint,
                        "access_key_id_env": "BENCH_S3_KEY_ID",
                        "secret_access_key_env": "BENCH_S3_SECRET",
                    },
                }
            },
        )
        store.client().put_object(Bucket=bucket, Key="warm-up", Body=b"x")  # the bucket's volumes
        results: list[Row] = []
        for round_number in range(2):
            print(f"[6] round {round_number + 1}: export + boto3 put_object", flush=True)
            out = folder / f"baseline{round_number}"
            written = timed(cli("export", "--config", str(config), "--brand", "BENCH", "--period", DAY,
                                "--out", str(out), *target), env)  # fmt: skip
            put_started, put_cpu = time.perf_counter(), busy_cpu()
            client = store.client()
            files = sorted(out.iterdir())
            for path in files:
                with path.open("rb") as body:
                    client.put_object(Bucket=bucket, Key=f"base/{path.name}", Body=body)
            put_seconds, put_cpu = time.perf_counter() - put_started, busy_cpu() - put_cpu
            baseline_seconds = written.seconds + put_seconds
            size = sum(path.stat().st_size for path in files) / 1e6
            activity = next(path for path in files if path.name.startswith("activity_"))
            activity_rows = sum(1 for _ in activity.open("rb")) - 1  # the header line
            print(f"[6] round {round_number + 1}: activity-export run to S3", flush=True)
            ours = timed(cli("run", "--config", str(config), "--ledger", str(folder / "ledger.sqlite"),
                             "--now", NOW, "--force", *target), env)  # fmt: skip
            delivered = client.get_object(Bucket=bucket, Key=f"ours/{activity.name}")["Body"].read()
            identical = delivered == activity.read_bytes()
            results.append(
                Row(
                    "6",
                    f"baseline export + boto3 put_object (round {round_number + 1})",
                    baseline_seconds,
                    written.peak_rss_mb,
                    activity_rows,
                    size,
                    f"export {written.seconds:.1f}s + put {put_seconds:.1f}s; "
                    f"busy CPU {written.busy_cpu + put_cpu:.1f}s",
                )
            )
            what = f"activity-export run to S3 (round {round_number + 1})"
            results.append(ours_against("6", what, ours, baseline_seconds, activity_rows, size, identical))
            shutil.rmtree(out)
        return results
    finally:
        store.stop()


# -- scenario 5 ---------------------------------------------------------------------------------


def compression(rows: int, work: Path) -> list[Row]:
    space = workspace(
        work, "compression", "duckdb", {"ACTIVITY_EXPORT_DUCKDB": str(work / "compression.duckdb")}
    )
    folder, profiles, env, target = space.folder, space.profiles, space.env, space.target
    print(f"[5] compression on {rows:,} rows", flush=True)
    timed(
        cli(
            "generate",
            "--brands",
            "BENCH",
            "--days",
            "1",
            "--events-per-day",
            str(rows),
            "--start",
            DAY,
            *target,
        ),
        env,
    )
    dbt_models(profiles, "duckdb", env)
    results = []
    plain = None
    for kind in ("none", "gzip", "zstd"):
        out = folder / kind
        config = write_tenants(
            folder / f"{kind}.yml",
            {"BENCH": {"compression": kind, "destination": {"type": "local", "root": str(out)}}},
            {"timezone": "UTC"},
        )
        measured = timed(
            cli(
                "export",
                "--config",
                str(config),
                "--brand",
                "BENCH",
                "--period",
                DAY,
                "--out",
                str(out),
                *target,
            ),
            env,
        )
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
        plain = plain or size
        results.append(
            Row(
                "5",
                f"export, compression {kind}",
                measured.seconds,
                measured.peak_rss_mb,
                rows,
                size,
                f"{size / plain:.0%} of uncompressed bytes",
            )
        )
    return results


# -- report -------------------------------------------------------------------------------------


def targets(rows: list[Row]) -> list[str]:
    """The issue's table: each target with what this run measured."""

    def pick(scenario: str, word: str) -> list[Row]:
        return [row for row in rows if row.scenario == scenario and word in row.what]

    lines = ["| what | measured | target | met |", "|---|---|---|---|"]

    def add(what: str, values: list[float], unit: str, target: float) -> None:
        if not values:
            lines.append(f"| {what} | not run | {target:g}{unit} | |")
            return
        shown = " / ".join(f"{v:.2f}{unit}" for v in values)
        lines.append(
            f"| {what} | {shown} | <= {target:g}{unit} | {'yes' if max(values) <= target else 'no'} |"
        )

    for word, target in (("export", 0.6), ("status", 0.5), ("check", 0.5), ("--help", 0.3)):
        found = pick("0", word)
        add(f"`{word}` (wall, median)", [r.seconds for r in found], " s", target)
        add(f"`{word}` (CPU, median)", [r.extra["cpu"] for r in found], " s", target)
    for scenario, size, target in (("1", "10 M", 0.8), ("2", "1 M", 1.0)):
        ratios = [r.extra["ratio"] for r in pick(scenario, "activity-export run")]
        add(f"{size}-row tenant-day vs psql \\copy + sftp put (per round)", ratios, "x", target)
    add("nightly dbt build, 10x vs 1x history", [r.seconds for r in pick("4", "ratio")], "x", 1.15)
    for row in pick("3", "tenants, sftp"):
        add(f"one run over {row.what.split(',')[1].strip()} to sshd", [row.seconds], " s", 120)
    if not pick("3", "tenants, sftp"):
        add("one run over 10,000 small tenants to sshd", [], " s", 120)
    ours = [r.peak_rss_mb for r in rows if r.peak_rss_mb and not r.what.startswith(("baseline", "psql"))]
    add("peak RSS of activity-export, any scenario", [max(ours)] if ours else [], " MB", 400)
    return lines


def markdown(rows: list[Row], started: datetime, how: str = "") -> str:
    how = how or (
        f"with `make bench` (`python -m bench`), {time.time() - started.timestamp():.0f} s in all. "
        f"Load average at the start: {LOAD_AT_START}."
    )
    lines = [
        "# Benchmarks",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC on {machine()} {how}",
        "This machine's 2 cores are shared: wall times swing with the load, so",
        "the start-up rows also give CPU time, and baselines run side by side with activity-export.",
        "",
        "## Targets",
        "",
        *targets(rows),
        "",
        "## Every measurement",
        "",
        "Baselines and activity-export run side by side in the same run; ratios compare them.",
        "Rows: in scenarios 1 and 2 the activity file's rows (sends of sms and page broadcasts, unknown",
        "types and duplicates among the generated events are not exported); in scenario 5 events generated.",
        "",
        "| scenario | what | seconds | peak RSS (MB) | rows | MB | rows/s | MB/s | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        rate = f"{row.rows / row.seconds:,.0f}" if row.rows and row.seconds else ""
        mbps = f"{row.megabytes / row.seconds:.1f}" if row.megabytes and row.seconds else ""
        lines.append(
            f"| {row.scenario} | {row.what} | {row.seconds:.2f} | "
            f"{'' if row.peak_rss_mb is None else f'{row.peak_rss_mb:.0f}'} | "
            f"{'' if row.rows is None else f'{row.rows:,}'} | "
            f"{'' if row.megabytes is None else f'{row.megabytes:.1f}'} | {rate} | {mbps} | {row.note} |"
        )
    return "\n".join(lines) + "\n"


def chart(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [row for row in rows if row.scenario in ("0", "1", "2", "3", "5") and row.seconds == row.seconds]
    figure, axis = plt.subplots(figsize=(11, 0.45 * len(shown) + 1.5))
    labels = [f"[{row.scenario}] {row.what}" for row in shown]
    hand_made = ("baseline", "psql", "PostgreSQL sort")
    colors = ["#888888" if any(word in row.what for word in hand_made) else "#1f77b4" for row in shown]
    axis.barh(labels, [row.seconds for row in shown], color=colors)
    axis.invert_yaxis()
    axis.set_xscale("log")  # 0.1 s start-up and 170 s for 10,000 tenants on one chart
    axis.set_xlabel("wall time (s, log scale)")
    axis.set_title("activity-export (blue) against psql \\copy + sftp put (grey)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def read_rows(readme: Path) -> list[Row]:
    """The measurements of an earlier results README (to merge runs made side by side)."""
    rows = []
    for line in readme.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 9 or not cells[0].isdigit():
            continue
        scenario, what, seconds, rss, count, megabytes, _rate, _mbps, note = cells
        extra: dict = {}
        if found := re.search(r"([0-9.]+)x baseline", note):
            extra["ratio"] = float(found.group(1))
        if found := re.search(r"CPU ([0-9.]+)s", note):
            extra["cpu"] = float(found.group(1))
        if what.startswith("ratio"):
            extra["ratio"] = float(seconds)
        rows.append(
            Row(
                scenario,
                what,
                float(seconds),
                float(rss) if rss else None,
                int(count.replace(",", "")) if count else None,
                float(megabytes) if megabytes else None,
                note,
                extra,
            )
        )
    return rows


READING = "\n## Reading this run\n"


def write_readme(path: Path, generated: str) -> None:
    """The results README: the generated part, then the hand-written section ``## Reading this
    run`` that an earlier README ended with, kept as it was."""
    earlier = path.read_text(encoding="utf-8") if path.exists() else ""
    kept = earlier[earlier.index(READING) :] if READING in earlier else ""
    path.write_text(generated.rstrip("\n") + "\n" + kept, encoding="utf-8")


def merge(folders: list[Path], out: Path, how: str) -> None:
    """One README and chart from several partial runs (``--merge``), in scenario order."""
    rows = sorted(
        (row for folder in folders for row in read_rows(folder / "README.md")), key=lambda row: row.scenario
    )
    started = min(
        datetime.strptime(found.group(1), "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
        for folder in folders
        if (found := re.search(r"Run (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", (folder / "README.md").read_text()))
    )
    out.mkdir(parents=True, exist_ok=True)
    write_readme(out / "README.md", markdown(rows, started, how))
    chart(rows, out / "bench.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # about 73 % of generated events end up in the day's activity file (sms and page sends, unknown
    # types, duplicates and late registrations are not in it): these give 10 M and 1 M rows
    parser.add_argument("--large", type=int, default=13_700_000, help="events generated for scenario 1")
    parser.add_argument("--small", type=int, default=1_370_000, help="events generated for scenarios 2 and 5")
    parser.add_argument("--tenants", type=int, default=10_000, help="tenants of scenario 3")
    parser.add_argument("--only", default="0,1,2,3,4,5,6", help="comma-separated scenarios to run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--merge", type=Path, nargs="+", help="merge the READMEs of these result folders")
    parser.add_argument("--how", default="", help="with --merge: how the runs were made")
    args = parser.parse_args()
    if args.merge:
        merge(args.merge, args.out, args.how)
        return
    chosen = set(args.only.split(","))
    started = datetime.now(UTC)
    rows: list[Row] = []
    args.out.mkdir(parents=True, exist_ok=True)

    def save(new: list[Row]) -> None:  # after every scenario: a late failure keeps the others
        rows.extend(new)
        write_readme(args.out / "README.md", markdown(rows, started))

    def attempt(scenario: str, run: Callable[[], list[Row]]) -> None:
        try:
            save(run())
        except (Exception, SystemExit) as exc:  # one failed scenario is reported, the others still run
            traceback.print_exc()
            save([Row(scenario, "FAILED", float("nan"), note=str(exc).splitlines()[0][:200])])

    with tempfile.TemporaryDirectory(prefix="aexp-bench-") as temporary:
        work = Path(temporary)
        if "0" in chosen:
            attempt("0", lambda: startup(work))
        with SshServer(work / "sshd") as server:
            if "1" in chosen:
                attempt("1", lambda: one_tenant_day(args.large, "1", server, work))
            if "2" in chosen:
                attempt("2", lambda: one_tenant_day(args.small, "2", server, work))
            if "3" in chosen:
                attempt("3", lambda: many_tenants(args.tenants, server, work))
        if "4" in chosen:
            attempt("4", lambda: incremental_dbt(work, args.out))
        if "5" in chosen:
            attempt("5", lambda: compression(args.small, work))
        if "6" in chosen:
            attempt("6", lambda: s3_day(args.small, work))
    chart(rows, args.out / "bench.png")
    print(markdown(rows, started))


if __name__ == "__main__":
    main()
