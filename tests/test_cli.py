"""The command line as people meet it: options, messages, machine output, and what it leaves behind."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.conftest import Project

NOW = "2026-11-04T07:00:00+01:00"  # the three generated days are due and complete


def write_config(folder: Path, **settings: object) -> Path:
    tenant = {"start": "2026-11-01", "destination": {"type": "local", "root": str(folder / "server")}}
    tenant.update(settings)
    path = folder / "tenants.yml"
    path.write_text(yaml.safe_dump({"tenants": {"BRANDNAAM": tenant}}))
    return path


def test_run_and_status_describe_the_destination_alike(built_duckdb: Project, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    run = built_duckdb.run("run", "--config", str(config), "--now", NOW, *built_duckdb.cli_args())
    status = built_duckdb.run(
        "status", "--json", "--config", str(config), "--now", NOW, *built_duckdb.cli_args()
    )
    where = f"local folder {tmp_path / 'server'}"
    assert where in run.stdout
    assert [entry["destination"] for entry in json.loads(status.stdout)] == [where]
