"""The nightly activity export as an Airflow 3 DAG.

    dbt source freshness  ->  dbt build  ->  activity-export run --shard 1/N
                                             activity-export run --shard 2/N
                                             ...                 (dynamic task mapping)

The DAG holds no export logic: every task calls the project's own executables (``dbt`` and
``activity-export`` from the project's virtualenv), because Airflow's pins and dbt's cannot share
one environment. Each delivery task is an ordinary ``activity-export run`` over the tenants of one
shard, so a failed or retried task re-delivers nothing already delivered (the ledger) and a
tenant's failure fails only its own shard's task.

Where things are, read on the worker when a task runs (so the DAG file itself can be shared):

    ACTIVITY_EXPORT_HOME      the project checkout: dbt_project.yml, .venv (default /opt/activity-export)
    ACTIVITY_EXPORT_BIN       folder with dbt and activity-export (default $ACTIVITY_EXPORT_HOME/.venv/bin)
    ACTIVITY_EXPORT_CONFIG    tenants.yml
    ACTIVITY_EXPORT_LEDGER    the ledger (default: beside tenants.yml)
    ACTIVITY_EXPORT_FRESHNESS_ARGS  extra arguments of `dbt source freshness`, e.g.
                              "--exclude source:platform.erasures" where raw.erasures does not exist
    DBT_PROFILES_DIR, DBT_TARGET   as for dbt itself

Read when the DAG file is parsed: ``ACTIVITY_EXPORT_SHARDS``, the number of delivery tasks
(default 4). Changing it moves tenants between shards, which is harmless as long as every worker
uses the same ledger (one shared file, or the PostgreSQL ledger on more than one machine).
"""

from __future__ import annotations

import os
import shlex
from datetime import timedelta
from typing import Any

from airflow.sdk import dag, task
from airflow.timetables.trigger import CronTriggerTimetable

SHARDS = int(os.environ.get("ACTIVITY_EXPORT_SHARDS", "4"))

# Evaluated by bash on the worker, not here.
PROJECT = 'cd "${ACTIVITY_EXPORT_HOME:-/opt/activity-export}"'
BIN = '"${ACTIVITY_EXPORT_BIN:-$PWD/.venv/bin}"'


@dag(
    dag_id="activity_export",
    # 06:15 in the tenants' timezone, after the 06:00 run_at; the loader catches up missed
    # periods itself, so Airflow must not replay old runs.
    schedule=CronTriggerTimetable("15 6 * * *", timezone="Europe/Amsterdam"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=10)},
    tags=["activity-export"],
    doc_md=__doc__,
)
def activity_export() -> None:
    @task.bash(execution_timeout=timedelta(hours=1))
    def source_freshness() -> str:
        """Stop before building when the platform's raw tables are older than error_after."""
        return f"{PROJECT} && {BIN}/dbt source freshness ${{ACTIVITY_EXPORT_FRESHNESS_ARGS:-}}"

    @task.bash(execution_timeout=timedelta(hours=3))
    def dbt_build() -> str:
        """Seeds, models and data tests: a failed test keeps the watermark where it was."""
        return f"{PROJECT} && {BIN}/dbt build"

    @task.bash(
        execution_timeout=timedelta(hours=6),
        map_index_template="shard {{ task.op_kwargs['shard'] }}",
    )
    def deliver(shard: str, dag_run: Any = None) -> str:
        """Every due, complete and undelivered period of the tenants of one shard.

        The clock is the run's own (its logical date, or when it was triggered), so a retry or a
        re-run of an old DAG run delivers what was due then; later periods are the next run's.
        """
        moment = dag_run.logical_date or dag_run.run_after
        now = shlex.quote(moment.isoformat())
        return f"{PROJECT} && {BIN}/activity-export run --shard {shlex.quote(shard)} --now {now}"

    shards = [f"{index}/{SHARDS}" for index in range(1, SHARDS + 1)]
    source_freshness() >> dbt_build() >> deliver.expand(shard=shards)


activity_export()
