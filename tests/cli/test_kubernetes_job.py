"""The Kubernetes example (orchestration/kubernetes): an Indexed Job whose pods take their shard
from JOB_COMPLETION_INDEX.

No cluster here: the manifest's structure is checked against what the Job controller requires,
and the delivery container's own command line runs locally, once per completion index and all at
once, as the pods would. Together they must deliver every tenant's files exactly once.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import typer.main
import yaml

from activity_export.cli import app
from activity_export.shards import shard_of
from tests.support.project import BIN, ROOT, Project

MANIFEST = ROOT / "orchestration" / "kubernetes" / "activity-export.yaml"
NOW = "2026-11-04T07:00:00+01:00"  # the three generated days are due and complete
BRANDS = ("BRANDNAAM", "MODEHUIS")


def _cronjobs() -> dict[str, dict[str, Any]]:
    documents = [doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc]
    assert all(doc["apiVersion"] == "batch/v1" and doc["kind"] == "CronJob" for doc in documents)
    return {doc["metadata"]["name"]: doc for doc in documents}


def _deliver_job() -> dict[str, Any]:
    return dict(_cronjobs()["activity-export-deliver"]["spec"]["jobTemplate"]["spec"])


def _container(job: dict[str, Any]) -> dict[str, Any]:
    (container,) = job["template"]["spec"]["containers"]
    return dict(container)


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container["env"]}


def test_deliver_job_is_indexed_with_one_completion_per_shard() -> None:
    job = _deliver_job()
    container = _container(job)

    assert job["completionMode"] == "Indexed"
    assert job["completions"] == int(_env(container)["SHARDS"])
    assert 1 <= job["parallelism"] <= job["completions"]
    # per-index retries and podFailurePolicy need restartPolicy Never; FailIndex needs per-index retries
    assert job["template"]["spec"]["restartPolicy"] == "Never"
    assert job["backoffLimitPerIndex"] >= 1
    (rule,) = job["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailIndex"
    assert rule["onExitCodes"] == {"containerName": container["name"], "operator": "In", "values": [2]}
    assert "JOB_COMPLETION_INDEX" in container["command"][-1]
    # every volume a container mounts is declared
    volumes = {volume["name"] for volume in job["template"]["spec"]["volumes"]}
    assert {mount["name"] for mount in container["volumeMounts"]} <= volumes
    for cronjob in _cronjobs().values():
        assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
        assert cronjob["spec"]["timeZone"] == "Europe/Amsterdam"


def test_manifest_sets_only_environment_variables_the_cli_reads() -> None:
    run = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    read = {param.envvar for param in run.params if param.envvar}
    env = _env(_container(_deliver_job()))
    ours = {name for name in env if name.startswith(("ACTIVITY_EXPORT_", "DBT_"))}
    assert ours and ours <= read, ours - read


def test_every_pod_of_the_indexed_job_delivers_its_shard_and_together_every_tenant_once(
    built_duckdb: Project, tmp_path: Path
) -> None:
    job = _deliver_job()
    container = _container(job)
    shards = job["completions"]
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
    # The manifest's settings, pointed at this machine instead of the pod's mounts.
    env = {
        **built_duckdb.env,
        **_env(container),
        "ACTIVITY_EXPORT_CONFIG": str(config),
        "ACTIVITY_EXPORT_LEDGER": str(tmp_path / "ledger.sqlite"),
        "DBT_PROJECT_DIR": str(ROOT),
        "DBT_PROFILES_DIR": str(built_duckdb.profiles_dir),
        "DBT_TARGET": built_duckdb.target,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    # the pod's command, plus a fixed clock so the test does not depend on today's date
    command = [*container["command"][:-1], container["command"][-1] + f" --now {NOW}"]
    pods = [
        subprocess.Popen(
            command,
            env={**env, "JOB_COMPLETION_INDEX": str(index)},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for index in range(shards)
    ]
    outputs = [pod.communicate(timeout=600)[0] for pod in pods]

    for index, (pod, output) in enumerate(zip(pods, outputs, strict=True)):
        assert pod.returncode == 0, output
        for brand in BRANDS:
            assert (brand in output) == (shard_of(brand, shards) == index + 1), (index, output)
    delivered = sorted(str(p.relative_to(server)) for p in server.rglob("*") if p.is_file())
    assert delivered == sorted(
        f"{brand}/{kind}_{brand}_2026110{day}.csv"
        for brand in BRANDS
        for kind in ("activity", "broadcast")
        for day in (1, 2, 3)
    )
