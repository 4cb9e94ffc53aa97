"""The nightly activity export as an Airflow 3 DAG.

    dbt source freshness  ->  dbt build  ->  activity-export run --shard 1/N
                                             activity-export run --shard 2/N
                                             ...                 (dynamic task mapping)

The DAG holds no export logic: every task calls the project's own executables (``dbt`` and
``activity-export`` from the project's virtualenv), because Airflow's pins and dbt's cannot share
one environment. Each delivery task is an ordinary ``activity-export run`` over the tenants of one
shard, so a failed or retried task re-delivers nothing already delivered (the ledger) and a
tenant's failure fails only its own shard's task. A stale source fails the DAG run but stops no
delivery; a shard that is only overdue, or misconfigured, is not retried.

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

import json
import os
import subprocess
from datetime import timedelta
from typing import Any

from airflow.exceptions import AirflowException
from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowFailException
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
    # not retried: a stale source does not come back in minutes, and the build goes ahead anyway
    @task.bash(execution_timeout=timedelta(hours=1), retries=0)
    def source_freshness() -> str:
        """Fail the DAG run (and alert) when the platform's raw tables are older than error_after;
        the build and the deliveries still run."""
        return f"{PROJECT} && {BIN}/dbt source freshness ${{ACTIVITY_EXPORT_FRESHNESS_ARGS:-}}"

    # After the freshness check whatever it found: a stale source fails the DAG run (and alerts),
    # yet the healthy brands' complete periods are still built and delivered (docs/runbook.md).
    @task.bash(execution_timeout=timedelta(hours=3), trigger_rule="all_done")
    def dbt_build() -> str:
        """Seeds, models and data tests: a failed test keeps the watermark where it was."""
        return f"{PROJECT} && {BIN}/dbt build"

    @task(
        execution_timeout=timedelta(hours=6),
        map_index_template="shard {{ task.op_kwargs['shard'] }}",
    )
    def deliver(shard: str, dag_run: Any = None) -> None:
        """Every due, complete and undelivered period of the tenants of one shard.

        The clock is the run's own (its logical date, or when it was triggered), so a retry or a
        re-run of an old DAG run delivers what was due then; later periods are the next run's.
        Retried only when a tenant failed (a server down, a network cut): a configuration error
        (exit 2) or a period that is only overdue (its data has not come) fails the task at once,
        because running again cannot help.
        """
        moment = dag_run.logical_date or dag_run.run_after
        home = os.environ.get("ACTIVITY_EXPORT_HOME", "/opt/activity-export")
        folder = os.environ.get("ACTIVITY_EXPORT_BIN", os.path.join(home, ".venv", "bin"))
        command = [
            os.path.join(folder, "activity-export"),
            "run",
            "--shard",
            shard,
            "--now",
            moment.isoformat(),
            "--json",
        ]
        completed = subprocess.run(command, cwd=home, capture_output=True, text=True, check=False)
        print(completed.stderr, end="")
        print(completed.stdout, end="")
        if completed.returncode == 0:
            return
        if completed.returncode == 2:
            raise AirflowFailException(f"shard {shard}: configuration error (exit 2): a retry cannot help")
        try:
            tenants = json.loads(completed.stdout)["tenants"]
        except (ValueError, KeyError, TypeError):
            raise AirflowException(f"shard {shard}: run exited {completed.returncode}") from None
        failed = [t["brand"] for t in tenants if t["state"] == "failed"]
        if failed:
            raise AirflowException(f"shard {shard}: tenants failed: {', '.join(failed)} (retried)")
        overdue = [t["brand"] for t in tenants if t["overdue"]]
        raise AirflowFailException(
            f"shard {shard}: overdue, not retried (its data has not come): {', '.join(overdue) or '?'}"
        )

    shards = [f"{index}/{SHARDS}" for index in range(1, SHARDS + 1)]
    source_freshness() >> dbt_build() >> deliver.expand(shard=shards)


activity_export()
