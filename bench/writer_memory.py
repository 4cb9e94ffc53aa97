"""Peak memory and time of ``write_period`` for a 1M- and a 10M-event tenant-day.

    .venv/bin/python -m bench.writer_memory [--events 1000000,10000000] [--work /tmp/aexp-bench]

For each size it generates one day of data for one brand with ``activity-export generate`` into a
DuckDB file of its own (own profiles dir, own dbt target path), runs ``dbt build`` on it, then
writes the day's two files in a fresh child process, once per writer setting, and reads the child's
peak RSS from ``resource.getrusage(RUSAGE_CHILDREN)``. A warehouse that already exists under
``--work`` is reused. Results are printed as a Markdown table (``--markdown FILE`` appends it).

The settings compared:

- ``default``: the connection as ``activity_export.warehouse.connect`` opens it (DuckDB's default memory
  limit: 80% of RAM, all cores).
- ``bounded``: ``memory_limit = '128MB'``, ``threads = 2`` and a ``temp_directory`` set on the
  connection first, so the sort behind the stable row order spills to disk instead of growing
  with the rows (``preserve_insertion_order`` stays on: the order must be stable).
- ``bounded-1-thread``: the same on one thread.
- ``idle``: import and connect only, the floor under every number.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.support.project import BIN, ROOT, copy_profiles, dbt_env

from bench.common import machine

BRAND = "BENCH"
DAY = "2026-11-01"

SETTINGS: dict[str, list[str] | None] = {
    "idle": None,  # import and connect only: the floor under every measurement
    "default": [],
    # what activity_export.warehouse.connect should set (see bench/results/writer_memory.md)
    "bounded": ["set memory_limit = '128MB'", "set temp_directory = '{tmp}'", "set threads = 2"],
    "bounded-1-thread": ["set memory_limit = '128MB'", "set temp_directory = '{tmp}'", "set threads = 1"],
}


def _env(work: Path) -> dict[str, str]:
    return dbt_env(work, {"ACTIVITY_EXPORT_DUCKDB": str(work / "warehouse.duckdb")})


def build_warehouse(work: Path, events: int) -> Path:
    """Generate one day of ``events`` events for one brand and ``dbt build`` it (once)."""
    database = work / "warehouse.duckdb"
    if (work / "built").exists():
        return database
    work.mkdir(parents=True, exist_ok=True)
    common = ["--project-dir", str(ROOT), "--profiles-dir", str(copy_profiles(work)), "--target", "duckdb"]
    env = _env(work)
    subprocess.run(
        [
            str(BIN / "activity-export"),
            "generate",
            "--brands",
            BRAND,
            "--days",
            "1",
            "--events-per-day",
            str(events),
            *common,
        ],
        env=env,
        cwd=ROOT,
        check=True,
    )
    subprocess.run([str(BIN / "dbt"), "build", "--quiet", *common], env=env, cwd=ROOT, check=True)
    (work / "built").touch()
    return database


CHILD = r"""
import json, sys, time
from pathlib import Path
from activity_export.config import parse_config
from activity_export.periods import parse_period
from activity_export.warehouse import Target, connect
from activity_export.writer import write_period

database, out, setting_sql = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
raw = {"tenants": {"BENCH": {"destination": {"type": "local", "root": str(out)}}}}
tenant = parse_config(raw, Path("bench.yml")).tenant("BENCH")
period = parse_period(tenant, "2026-11-01")
target = Target("duckdb", "duckdb", "main", duckdb_path=Path(database))
with connect(target) as warehouse:
    if setting_sql == ["idle"]:
        print(json.dumps({"seconds": 0.0, "files": [["activity", 0, 0], ["broadcast", 0, 0]]}))
        raise SystemExit
    for statement in setting_sql:
        warehouse.con.execute(statement)
    began = time.perf_counter()
    files = write_period(warehouse, tenant, period, out)
    seconds = time.perf_counter() - began
print(json.dumps({"seconds": seconds, "files": [[f.kind, f.rows, f.bytes] for f in files]}))
"""


def measure(database: Path, work: Path, setting: str) -> dict:
    """Write the day in a fresh child process; its peak RSS is all that process ever held."""
    out = work / f"out-{setting}"
    shutil.rmtree(out, ignore_errors=True)
    spill = work / "spill"
    spill.mkdir(exist_ok=True)
    statements = [s.format(tmp=spill) for s in SETTINGS[setting] or []]
    if SETTINGS[setting] is None:
        statements = ["idle"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    began = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, str(database), str(out), json.dumps(statements)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - began
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # RUSAGE_CHILDREN holds the largest child so far: measure in ascending order of size, or it
    # reports an earlier, bigger child. The assertion makes a wrong order visible.
    assert peak_kib >= before
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result.update(setting=setting, peak_mib=peak_kib / 1024, process_seconds=wall)
    shutil.rmtree(out, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="1000000,10000000")
    parser.add_argument("--work", type=Path, default=Path("/tmp/aexp-bench"))
    parser.add_argument("--settings", default="idle,bounded,bounded-1-thread,default")
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    rows = []
    for setting in args.settings.split(","):
        for events in (int(n) for n in args.events.split(",")):
            work = args.work / f"events-{events}"
            database = build_warehouse(work, events)
            # each measurement in its own grandchild so RUSAGE_CHILDREN starts from zero
            completed = subprocess.run(
                [sys.executable, __file__, "--one", str(database), str(work), setting],
                capture_output=True,
                text=True,
                check=True,
            )
            result = json.loads(completed.stdout)
            result["events"] = events
            rows.append(result)
            print(json.dumps(result), flush=True)
    table = [
        "| events generated | activity rows | broadcast rows | setting | peak RSS (MiB) | write_period (s) | activity file (MB) |",
        "|---:|---:|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        kinds = {kind: (count, size) for kind, count, size in row["files"]}
        table.append(
            f"| {row['events']:,} | {kinds['activity'][0]:,} | {kinds['broadcast'][0]:,} | "
            f"{row['setting']} | {row['peak_mib']:.0f} | {row['seconds']:.1f} | "
            f"{kinds['activity'][1] / 1e6:.0f} |"
        )
    header = f"\n## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}\n\n"
    text = header + "\n".join(table) + "\n"
    print(text)
    if args.markdown:
        with args.markdown.open("a", encoding="utf-8") as handle:
            handle.write(text)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--one":
        print(json.dumps(measure(Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4])))
    else:
        main()
