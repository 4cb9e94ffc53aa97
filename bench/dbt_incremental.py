"""How much the nightly incremental `dbt build` (models and tests) costs with 1x and 10x history.

For each history length N (days), each target and each way of finding new deliveries, a fresh
warehouse gets N+1 days of generated data in `raw`; a view schema `raw_asof` shows only what was
registered by day N 06:00 UTC, and a first `dbt build` runs on it. The staging views are then
pointed back at the full `raw` (untimed), and the measured step is the next nightly build: a
whole `dbt build` (seed, views, models, every data and unit test) that adds one day. Its cost
should not depend on N. Each build runs with its clock fixed (var export_now) at the moment its
data is a snapshot of: day N 06:00 UTC for the first, the generator's snapshot a day later for
the nightly one. With the real clock, generated days past today would be quarantined (dated
after the build's clock) and the nightly build would add nothing.

Two modes: `loaded_at` gives raw.events a load-time column (`loaded_at`, indexed on PostgreSQL,
two minutes after registration) and sets var loaded_at_column, so a build reads the deliveries
loaded since the previous one; `registered_at` has no such column, so every build anti-joins all
deliveries against what is built (correct for late loads of any age, but it reads all history).

    .venv/bin/python -m bench.dbt_incremental [--events-per-day 100000] [--brands A,B]
        [--history 1,10] [--targets postgres,duckdb] [--modes loaded_at,registered_at]

On PostgreSQL the raw events table gets an index on registered_at (and on loaded_at), as the
platform's table needs them (docs/models.md). Results go to bench/results/dbt_incremental.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.support.postgres import create_database, drop_database, pg_connect
from tests.support.project import BIN, ROOT, copy_profiles, dbt_env

from bench.common import machine

START = date(2026, 11, 1)
AS_OF_HOURS = 6  # the generator's snapshot lies this far past its last day


@dataclass
class Measurement:
    target: str
    mode: str
    history_days: int
    raw_events: int
    new_events: int
    first_build_s: float
    incremental_s: float
    export_activities_s: float
    unbuilt_s: float
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


def _node_seconds(target_path: Path) -> tuple[dict[str, float], float]:
    """dbt's own execution time per model, and the sum over every data and unit test."""
    results = json.loads((target_path / "run_results.json").read_text())
    models = {
        r["unique_id"].split(".")[-1]: r["execution_time"]
        for r in results["results"]
        if r["unique_id"].startswith("model.")
    }
    tests = sum(
        r["execution_time"] for r in results["results"] if r["unique_id"].startswith(("test.", "unit_test."))
    )
    return models, tests


def _pg(dbname: str):
    con = pg_connect(dbname)
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
    target: str, mode: str, history_days: int, brands: str, per_day: int, raw_index: bool, work: Path
) -> Measurement:
    tmp = Path(tempfile.mkdtemp(prefix=f"{target}_{mode}_{history_days}d_", dir=work))
    env = dbt_env(tmp, {"ACTIVITY_EXPORT_DUCKDB": str(tmp / "warehouse.duckdb")})
    profiles = copy_profiles(tmp)
    if target == "postgres":
        env["PGDATABASE"] = f"aexp_bench_{uuid.uuid4().hex[:8]}"
        create_database(env["PGDATABASE"])
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
        statements = []
        if mode == "loaded_at":
            statements += [
                "alter table raw.events add column loaded_at timestamp with time zone",
                "update raw.events set loaded_at = registered_at + interval '2 minutes'",
            ]
            if target == "postgres":
                statements.append("create index on raw.events (loaded_at)")
        statements += [
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
        loaded_at = {"loaded_at_column": "loaded_at"} if mode == "loaded_at" else {}
        # each build's clock is when its snapshot was taken: nothing generated is quarantined
        first_clock = {"export_now": cutoff.isoformat()}
        nightly_clock = {"export_now": (cutoff + timedelta(days=1)).isoformat()}
        first_vars = json.dumps({"raw_schema": "raw_asof", **loaded_at, **first_clock})
        first = _run([str(BIN / "dbt"), "build", "--vars", first_vars, "--quiet", *where], env)
        # point the staging views back at the full raw schema (untimed: views only, and the
        # parse with the nightly vars, so the timed build parses no more than a nightly one)
        nightly = ["--vars", json.dumps({**loaded_at, **nightly_clock})]
        _run([str(BIN / "dbt"), "run", "--select", "staging", *nightly, "--quiet", *where], env)
        if target == "postgres":
            # after the first build autovacuum goes over the new tables, more of them the longer
            # the history; done here (untimed) it no longer runs during the timed build
            _sql(target, env, ["vacuum analyze"])
        incremental = _run([str(BIN / "dbt"), "build", *nightly, "--quiet", *where], env)
        schema = env.get("DBT_SCHEMA", "analytics") if target == "postgres" else "main"
        [(quarantined,)] = _sql(target, env, [f"select count(*) from {schema}.export_quarantined_events"])
        if quarantined:  # the build would have measured less than a whole new day
            raise SystemExit(
                f"{quarantined} generated events quarantined: the build clocks do not fit the data"
            )
        models, tests = _node_seconds(tmp / "target")
        return Measurement(
            target,
            mode,
            history_days,
            raw_events,
            new_events,
            first,
            incremental,
            models.get("export_activities", 0.0),
            models.get("int_events_unbuilt", 0.0),
            models.get("export_broadcast_touches", 0.0),
            tests,
        )
    finally:
        if target == "postgres":
            drop_database(env["PGDATABASE"])
        shutil.rmtree(tmp, ignore_errors=True)


def report(rows: list[tuple[Measurement, bool]], args: argparse.Namespace) -> str:
    lines = [
        "# Nightly incremental dbt build: 1x vs 10x history",
        "",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Machine: {machine()}.",
        "",
        f"Brands {args.brands}, {args.events_per_day:,} events per brand per day; history N days "
        "plus one new day; `bench/dbt_incremental.py`. The timed step is the whole nightly "
        "`dbt build` (seed, staging views, models, every data and unit test; process start and "
        "parse ~10 s included) after a first build that saw N days. Model and test columns are "
        "dbt's own execution times (tests: the sum over all of them; two threads run them side "
        "by side). Mode `loaded_at`: raw.events has a load-time column and var loaded_at_column "
        "names it; `registered_at`: no such column, every build anti-joins all deliveries "
        "against what is built. Each build's clock (var export_now) is fixed at its snapshot "
        f"(day N {AS_OF_HOURS:02d}:00 UTC, then a day later), so no generated row is quarantined.",
        "",
        "| target | mode | history | raw events | new events | first build s | nightly build s "
        "| int_events_unbuilt s | export_activities s | export_broadcast_touches s | tests (sum) s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row, _raw_index in rows:
        lines.append(
            f"| {row.target} | {row.mode} | {row.history_days} d | {row.raw_events:,} "
            f"| {row.new_events:,} | {row.first_build_s:.1f} | {row.incremental_s:.1f} "
            f"| {row.unbuilt_s:.2f} | {row.export_activities_s:.2f} | {row.touches_s:.2f} | {row.test_s:.1f} |"
        )
    lines += ["", "Ratios (longest history / shortest, same target and mode):", ""]
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for row, _raw_index in rows:
        groups.setdefault((row.target, row.mode), []).append(row)
    for (target, mode), group in groups.items():
        short, long = min(group, key=lambda r: r.history_days), max(group, key=lambda r: r.history_days)
        if short is long:
            continue
        lines.append(
            f"- {target}, {mode}: nightly build {long.incremental_s / short.incremental_s:.2f}x, "
            f"int_events_unbuilt {long.unbuilt_s / max(short.unbuilt_s, 1e-9):.2f}x, "
            f"export_activities {long.export_activities_s / max(short.export_activities_s, 1e-9):.2f}x, "
            f"tests {long.test_s / max(short.test_s, 1e-9):.2f}x"
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
    parser.add_argument("--modes", default="loaded_at,registered_at", help="loaded_at and/or registered_at")
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
                for mode in args.modes.split(","):
                    for days in (int(d) for d in args.history.split(",")):
                        row = measure(target, mode, days, args.brands, args.events_per_day, raw_index, work)
                        print(row, flush=True)
                        rows.append((row, raw_index))
    text = report(rows, args)
    args.out.write_text(text)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(summary(rows)))


def summary(rows: list[tuple[Measurement, bool]]) -> dict[str, Any]:
    """The runs and the 10x/1x ratio of the first target and mode, for bench/__main__.py's table."""
    runs = [
        {
            "label": f"nightly dbt build, {row.target}, {row.mode}, {row.history_days} d history",
            "seconds": row.incremental_s,
            "rows": row.new_events,
            "note": f"export_activities {row.export_activities_s:.2f}s; tests {row.test_s:.1f}s; "
            f"first build {row.first_build_s:.1f}s",
        }
        for row, raw_index in rows
        if raw_index
    ]
    first = rows[0][0]
    same = [
        row for row, raw_index in rows if raw_index and (row.target, row.mode) == (first.target, first.mode)
    ]
    short = min(same, key=lambda r: r.history_days)
    long = max(same, key=lambda r: r.history_days)
    return {
        "runs": runs,
        "ratio": long.incremental_s / short.incremental_s,
        "target": f"{short.target}, {short.mode}",
    }


if __name__ == "__main__":
    main()
