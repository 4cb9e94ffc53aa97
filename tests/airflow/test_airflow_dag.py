"""The example Airflow 3 DAG (orchestration/airflow), run for real with ``airflow dags test``.

Airflow lives in its own virtualenv (``.venv-airflow``, made by ``make test-airflow``), because its
pins and dbt's cannot share one environment. The DAG calls this project's ``dbt`` and
``activity-export``; the test gives it a fresh DuckDB warehouse and local destinations and checks
what arrived. Run by ``make test-airflow`` (``.ci/run`` calls it after ``make test``).
"""

from __future__ import annotations

import hashlib
import subprocess
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from activity_export.shards import shard_of
from tests.support.project import BIN, ROOT, Project

AIRFLOW = ROOT / ".venv-airflow" / "bin" / "airflow"
BRANDS = ("BRANDNAAM", "MODEHUIS")
SHARDS = 2


def _airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    if not AIRFLOW.exists():
        pytest.fail(f"{AIRFLOW} is missing: `make test-airflow` creates it", pytrace=False)
    completed = subprocess.run(
        [str(AIRFLOW), *args], env=env, capture_output=True, text=True, timeout=1200, check=False
    )
    if completed.returncode != 0:
        raise AssertionError(
            f"airflow {' '.join(args)} exited {completed.returncode}\n{completed.stdout[-8000:]}"
            f"\n{completed.stderr[-8000:]}"
        )
    return completed


def _generated(base: Project, tmp_path: Path, brands: tuple[str, ...], first: date) -> Project:
    """A DuckDB warehouse of its own in ``tmp_path``: three days of ``brands`` from ``first``."""
    env = {**base.env, "ACTIVITY_EXPORT_DUCKDB": str(tmp_path / "warehouse.duckdb")}
    env["DBT_TARGET_PATH"] = str(tmp_path / "target")
    project = Project("duckdb", base.profiles_dir, env)
    project.run(
        "generate", "--brands", ",".join(brands), "--days", "3", "--events-per-day", "300",
        "--start", first.isoformat(), *project.cli_args(),
    )  # fmt: skip
    return project


def _airflow_env(project: Project, tmp_path: Path, config: Path, shards: int) -> dict[str, str]:
    """Airflow's environment in ``tmp_path``, with the DAG pointed at this project and ``config``."""
    env = {
        **project.env,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "orchestration" / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "ACTIVITY_EXPORT_HOME": str(ROOT),
        "ACTIVITY_EXPORT_BIN": str(BIN),
        "ACTIVITY_EXPORT_CONFIG": str(config),
        "ACTIVITY_EXPORT_SHARDS": str(shards),
        "DBT_PROFILES_DIR": str(project.profiles_dir),
        "DBT_TARGET": "duckdb",
    }
    env.pop("VIRTUAL_ENV", None)
    return env


def _this_morning(today: date) -> str:
    """The scheduled run of ``today``: 06:15 in Amsterdam."""
    return datetime.combine(today, time(6, 15), ZoneInfo("Europe/Amsterdam")).isoformat()


def _tree(folder: Path) -> dict[str, tuple[str, int]]:
    return {
        str(path.relative_to(folder)): (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            path.stat().st_mtime_ns,
        )
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_dag_builds_then_each_shard_delivers_and_a_rerun_delivers_nothing_twice(
    duckdb_project: Project, tmp_path: Path
) -> None:
    # `dbt source freshness` compares with the real clock, so the data ends this morning (UTC).
    today = datetime.now(UTC).date()
    first = today - timedelta(days=3)
    project = _generated(duckdb_project, tmp_path, BRANDS, first)
    # `dbt source freshness` checks every source, the optional raw.erasures included (`generate`
    # makes it empty): this platform erases customers too, one who never had activity, so the
    # files stay comparable and the erasures are fresh
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("insert into raw.erasures values ('BRANDNAAM', 999999999, now())")
    out = tmp_path / "delivered"
    config = tmp_path / "tenants.yml"
    config.write_text(
        f"defaults:\n  start: {first.isoformat()}\ntenants:\n"
        f"  BRANDNAAM:\n    destination: {{type: local, root: {out}/BRANDNAAM}}\n"
        f"  MODEHUIS:\n    compression: gzip\n"
        f"    destination: {{type: local, root: {out}/MODEHUIS}}\n"
    )
    # the two brands fall in different shards, so both mapped delivery tasks have work
    assert shard_of("BRANDNAAM", SHARDS) != shard_of("MODEHUIS", SHARDS)

    airflow_env = _airflow_env(project, tmp_path, config, SHARDS)
    logical = _this_morning(today)
    _airflow(airflow_env, "db", "migrate")
    run = _airflow(airflow_env, "dags", "test", "activity_export", logical)

    log = run.stdout + run.stderr
    assert "state=success" in log
    for task in ("source_freshness", "dbt_build", "deliver"):
        assert f"end task task_id={task}" in log, task
    days = [first + timedelta(days=n) for n in range(3)]  # due by 06:15 today: up to yesterday
    delivered = _tree(out)
    assert sorted(delivered) == sorted(
        f"{brand}/{kind}_{brand}_{day:%Y%m%d}.csv{'.gz' if brand == 'MODEHUIS' else ''}"
        for brand in BRANDS
        for kind in ("activity", "broadcast")
        for day in days
    )
    _assert_same_bytes_as_export(project, config, out, days, tmp_path / "export")

    # A re-run of the same DAG run (as after a retry or "clear") delivers nothing again.
    _airflow(
        airflow_env, "dags", "test", "activity_export", logical,
        "--mark-success-pattern", "source_freshness|dbt_build",
    )  # fmt: skip
    assert _tree(out) == delivered


def _assert_same_bytes_as_export(
    project: Project, config: Path, out: Path, days: list[date], folder: Path
) -> None:
    """Every delivered file is byte for byte what `export` writes for its period."""
    for brand in BRANDS:
        for day in days:
            target = folder / brand / day.isoformat()
            project.run(
                "export", "--brand", brand, "--period", day.isoformat(), "--out", str(target),
                "--config", str(config), *project.cli_args(),
            )  # fmt: skip
            for written in target.rglob("*"):
                if written.is_file():
                    assert (out / brand / written.name).read_bytes() == written.read_bytes(), written.name


def test_a_stale_source_fails_the_dag_run_but_what_is_complete_is_delivered_and_overdue_is_not_retried(
    duckdb_project: Project, tmp_path: Path
) -> None:
    """The platform stopped sending nine days ago: `dbt source freshness` fails, the build and the
    deliveries still run (the runbook: healthy periods go out, the stopped brand turns overdue),
    and a shard that is only overdue fails at once instead of being retried (a retry cannot bring
    the data)."""
    today = datetime.now(UTC).date()
    first = today - timedelta(days=12)
    project = _generated(duckdb_project, tmp_path, ("BRANDNAAM",), first)
    out = tmp_path / "delivered"
    config = tmp_path / "tenants.yml"
    config.write_text(
        f"defaults:\n  start: {first.isoformat()}\ntenants:\n"
        f"  BRANDNAAM:\n    destination: {{type: local, root: {out}/BRANDNAAM}}\n"
    )
    airflow_env = _airflow_env(project, tmp_path, config, 1)
    logical = _this_morning(today)
    _airflow(airflow_env, "db", "migrate")
    completed = subprocess.run(
        [str(AIRFLOW), "dags", "test", "activity_export", logical],
        env=airflow_env, capture_output=True, text=True, timeout=1200, check=False,
    )  # fmt: skip
    log = completed.stdout + completed.stderr
    assert "state=failed" in log, log[-8000:]
    for task in ("source_freshness", "dbt_build", "deliver"):
        assert f"end task task_id={task}" in log, (task, log[-8000:])
    assert "overdue, not retried" in log, log[-8000:]
    assert "up_for_retry" not in log.lower(), log[-8000:]
    # what the warehouse holds completely went out: the three generated days
    assert sorted(_tree(out)) == sorted(
        f"BRANDNAAM/{kind}_BRANDNAAM_{first + timedelta(days=n):%Y%m%d}.csv"
        for kind in ("activity", "broadcast")
        for n in range(3)
    )
