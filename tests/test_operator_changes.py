"""What operators do to a running system: a run hung on a tenant's lock, a first clock set wrong, a
ledger lost. Each is reported loudly and never loses, repeats or rewrites a file."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import yaml

from tests.conftest import Project

LATE = "2026-11-04T20:00:00+01:00"  # 1 to 3 November are due, the 3rd for 14 hours: overdue


def write_config(folder: Path, **settings: object) -> Path:
    tenant = {"start": "2026-11-01", "destination": {"type": "local", "root": str(folder / "server")}}
    tenant.update(settings)
    path = folder / "tenants.yml"
    path.write_text(yaml.safe_dump({"tenants": {"BRANDNAAM": tenant}}))
    return path


def test_a_tenant_locked_by_a_hung_run_is_still_planned_and_its_overdue_periods_fail_the_run(
    built_duckdb: Project, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    lock = tmp_path / "activity-export.ledger.sqlite.locks" / "BRANDNAAM.lock"
    lock.parent.mkdir()
    hung = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(hung, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a run that hangs would hold it
    os.write(hung, b"4242\n")
    called = tmp_path / "on-failure.json"
    hook = f"cat > {called}"
    try:
        result = built_duckdb.run(
            "run", "--json", "--config", str(config), "--now", LATE, "--on-failure", hook,
            *built_duckdb.cli_args(), check=False,
        )  # fmt: skip
    finally:
        os.close(hung)
    assert result.returncode == 1, result.stderr
    [tenant] = json.loads(result.stdout)["tenants"]
    assert tenant["state"] == "skipped", tenant["error"]
    assert "pid 4242" in tenant["skipped"]
    assert [o["period"] for o in tenant["overdue"]] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert "period 2026-11-03 is overdue" in result.stderr
    assert json.loads(called.read_text())["event"] == "activity-export.tenant_overdue"
    assert not (tmp_path / "server").exists()  # the holder delivers; this run only reports
