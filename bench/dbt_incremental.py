"""How much an incremental dbt run costs with 1x and with 10x the history.

For each history length N (days) and each target, a fresh warehouse gets N+1 days of generated
data in `raw`; a view schema `raw_asof` shows only what was registered by day N 06:00 UTC, and a
first `dbt build` runs on it. The staging views are then pointed back at the full `raw`, and the
measured step is the next nightly run: an incremental `dbt run --select export_*` that adds one
day (the views re-read nothing). Its cost should not depend on N.

    .venv/bin/python -m bench.dbt_incremental [--events-per-day 100000] [--brands A,B]
        [--history 1,10] [--targets postgres,duckdb]

On PostgreSQL the raw events table gets an index on registered_at, as the platform's table
needs one (docs/models.md); the bench prints the run with and without it. Results go to
bench/results/dbt_incremental.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import copy_profiles, machine, project_env  # noqa: E402

BIN = Path(sys.executable).parent
START = date(2026, 11, 1)
AS_OF_HOURS = 6  # the generator's snapshot lies this far past its last day


@dataclass
class Measurement:
    target: str
    history_days: int
    raw_events: int
    new_events: int
    first_build_s: float
    incremental_s: float
    export_activities_s: float
    touches_s: float
    test_s: float


def _run(command: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    completed = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - began
    if completed.returncode != 0:
        raise SystemExit(
            f"{' '.join(command)} failed:\n{completed.stdout[-4000:]}\n{completed.stderr[-2000:]}"
        )
    return elapsed


def _model_seconds(target_path: Path) -> dict[str, float]:
    results = json.loads((target_path / "run_results.json").read_text())
    return {r["unique_id"].split(".")[-1]: r["execution_time"] for r in results["results"]}


def _pg(dbname: str):
    import psycopg2

    con = psycopg2.connect(
        dbname=dbname,
        host=os.environ.get("PGHOST", "127.0.0.1"),
        port=os.environ.get("PGPORT", "5432"),
        user=os.environ.get("PGUSER", "postgres"),
        password=os.environ.get("PGPASSWORD", ""),
    )
    con.autocommit = True
    return con


def _sql(target: str, env: dict[str, str], statements: list[str]) -> list[tuple]:
    rows: list[tuple] = []
    if target == "postgres":
        con = _pg(env["PGDATABASE"])
        with con.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
                rows = cursor.fetchall() if cursor.description else rows
        con.close()
    else:
        import duckdb

        with duckdb.connect(env["ACTIVITY_EXPORT_DUCKDB"]) as con:
            for statement in statements:
                rows = con.execute(statement).fetchall()
    return rows


def measure(
    target: str, history_days: int, brands: str, per_day: int, raw_index: bool, work: Path
) -> Measurement:
    tmp = Path(tempfile.mkdtemp(prefix=f"{target}_{history_days}d_", dir=work))
    env = project_env(tmp, {"ACTIVITY_EXPORT_DUCKDB": str(tmp / "warehouse.duckdb")})
    profiles = copy_profiles(tmp)
    admin = None
    if target == "postgres":
        env["PGDATABASE"] = f"aexp_bench_{uuid.uuid4().hex[:8]}"
        admin = _pg(os.environ.get("PGADMINDB", "postgres"))
        with admin.cursor() as cursor:
            cursor.execute(f'create database "{env["PGDATABASE"]}"')
    where = ["--project-dir", str(ROOT), "--profiles-dir", str(profiles), "--target", target]
    try:
        _run(
            [
                str(BIN / "activity-export"),
                "generate",
                "--brands",
                brands,
                "--days",
                str(history_days + 1),
                "--events-per-day",
                str(per_day),
                "--start",
                START.isoformat(),
                *where,
            ],
            env,
        )
        cutoff = datetime.combine(START, datetime.min.time(), tzinfo=UTC) + timedelta(
            days=history_days, hours=AS_OF_HOURS
        )
        statements = [
            "create schema raw_asof",
            "create view raw_asof.broadcasts as select * from raw.broadcasts",
            "create view raw_asof.customers as select * from raw.customers",
            f"create view raw_asof.events as select * from raw.events "
            f"where registered_at < timestamptz '{cutoff.isoformat()}'",
        ]
        if target == "postgres" and raw_index:
            statements.append("create index on raw.events (registered_at)")
        if target == "postgres":
            statements.append("analyze")
        _sql(target, env, statements)
        raw_events, new_events = _sql(
            target,
            env,
            [
                f"select count(*), count(*) filter (where registered_at >= timestamptz '{cutoff.isoformat()}') "
                "from raw.events"
            ],
        )[0]
        first = _run([str(BIN / "dbt"), "build", "--vars", "{raw_schema: raw_asof}", "--quiet", *where], env)
        # point the staging views back at the full raw schema (untimed: views only)
        _run([str(BIN / "dbt"), "run", "--select", "staging", "--quiet", *where], env)
        incremental = _run([str(BIN / "dbt"), "run", "--select", "export_*", "--quiet", *where], env)
        seconds = _model_seconds(tmp / "target")
        tests = _run([str(BIN / "dbt"), "test", "--select", "export_*", "--quiet", *where], env)
        return Measurement(
            target,
            history_days,
            raw_events,
            new_events,
            first,
            incremental,
            seconds.get("export_activities", 0.0),
            seconds.get("export_broadcast_touches", 0.0),
            tests,
        )
    finally:
        if admin is not None:
            with admin.cursor() as cursor:
                cursor.execute(f'drop database if exists "{env["PGDATABASE"]}" with (force)')
            admin.close()
        shutil.rmtree(tmp, ignore_errors=True)


def report(rows: list[Measurement], args: argparse.Namespace) -> str:
    lines = [
        "# Incremental dbt run: 1x vs 10x history",
        "",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Machine: {machine()}.",
        "",
        f"Brands {args.brands}, {args.events_per_day:,} events per brand per day; history N days "
        "plus one new day; `bench/dbt_incremental.py`. The timed step is "
        "`dbt run --select export_*` after a first build that saw N days and after the staging "
        "views were pointed at the full raw schema (process start ~3 s included); the model "
        "columns are dbt's own execution times; `dbt test` runs every test of the export "
        "models, several of which scan all history.",
        "",
        "| target | raw index | history | raw events | new events | first build s | incremental run s "
        "| export_activities s | export_broadcast_touches s | dbt test export_* s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row, raw_index in rows:
        lines.append(
            f"| {row.target} | {'yes' if raw_index else 'no'} | {row.history_days} d | {row.raw_events:,} "
            f"| {row.new_events:,} | {row.first_build_s:.1f} | {row.incremental_s:.1f} "
            f"| {row.export_activities_s:.2f} | {row.touches_s:.2f} | {row.test_s:.1f} |"
        )
    lines += ["", "Ratios (longest history / shortest, same target):", ""]
    groups: dict[tuple[str, bool], list[Measurement]] = {}
    for row, raw_index in rows:
        groups.setdefault((row.target, raw_index), []).append(row)
    for (target, raw_index), group in groups.items():
        short, long = min(group, key=lambda r: r.history_days), max(group, key=lambda r: r.history_days)
        if short is long:
            continue
        lines.append(
            f"- {target}, raw index {'yes' if raw_index else 'no'}: incremental run "
            f"{long.incremental_s / short.incremental_s:.2f}x, export_activities "
            f"{long.export_activities_s / max(short.export_activities_s, 1e-9):.2f}x, "
            f"dbt test {long.test_s / short.test_s:.2f}x"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--brands", default="A,B")
    parser.add_argument("--events-per-day", type=int, default=100_000)
    parser.add_argument("--history", default="1,10", help="history lengths in days, comma separated")
    parser.add_argument("--targets", default="postgres,duckdb")
    parser.add_argument("--without-raw-index", action="store_true", help="also run PostgreSQL without it")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "dbt_incremental.md")
    parser.add_argument("--json", type=Path, help="also write the runs as JSON (for `make bench`)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="aexp-dbt-incremental-") as temporary:
        work = Path(temporary)
        for target in args.targets.split(","):
            variants = [True, False] if target == "postgres" and args.without_raw_index else [True]
            for raw_index in variants:
                for days in (int(d) for d in args.history.split(",")):
                    row = measure(target, days, args.brands, args.events_per_day, raw_index, work)
                    print(row, flush=True)
                    rows.append((row, raw_index))
    text = report(rows, args)
    args.out.write_text(text)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(summary(rows)))


def summary(rows: list[tuple[Measurement, bool]]) -> dict:
    """The runs and the 10x/1x ratio of the first target, for bench/__main__.py's table."""
    runs = [
        {
            "label": f"incremental dbt run, {row.target}, {row.history_days} d history",
            "seconds": row.incremental_s,
            "rows": row.new_events,
            "note": f"export_activities {row.export_activities_s:.2f}s; first build {row.first_build_s:.1f}s",
        }
        for row, raw_index in rows
        if raw_index
    ]
    first_target = [row for row, raw_index in rows if raw_index and row.target == rows[0][0].target]
    short = min(first_target, key=lambda r: r.history_days)
    long = max(first_target, key=lambda r: r.history_days)
    return {"runs": runs, "ratio": long.incremental_s / short.incremental_s, "target": short.target}


if __name__ == "__main__":
    main()
