"""`status` for monitoring: what the ledger knows also while the warehouse is down, a bounded
`--json` document with a version, and `--fail-on-problem`."""

from __future__ import annotations

import json
import socket
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import jsonschema
import pytest

from tests.support.project import ROOT, Project, make_project, own_duckdb
from tests.support.tenants import NOW, run, write_config

# 4 November became due 31 hours before, 5 November 7 hours: both overdue (after 6 hours)
LATER = "2026-11-06T13:00:00+01:00"


def valid(document: object) -> None:
    schema = json.loads((ROOT / "docs" / "schemas" / "status.schema.json").read_text())
    jsonschema.validate(document, schema)


def status(
    project: Project, config: Path, now: str, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return project.run(
        "status", "--config", str(config), "--now", now, *args, *project.cli_args(), check=check
    )


def closed_port() -> int:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def warehouse_down(kind: str, built_duckdb: Project, folder: Path) -> tuple[Project, str]:
    """A target whose warehouse cannot be read, and a word the reason names."""
    if kind == "duckdb file missing":
        return own_duckdb(built_duckdb, folder, "gone.duckdb"), "gone.duckdb"
    port = closed_port()
    project = make_project(folder, "postgres", "activity_export")
    project.env.update(PGHOST="127.0.0.1", PGPORT=str(port))
    return project, f"127.0.0.1:{port}"


@pytest.mark.parametrize("kind", ["duckdb file missing", "postgres down"])
def test_status_while_the_warehouse_is_down_shows_the_ledger_and_says_so_once(
    built_duckdb: Project, tmp_path: Path, kind: str
) -> None:
    config = write_config(tmp_path)
    run(built_duckdb, config)  # 1 to 3 November delivered
    down, where = warehouse_down(kind, built_duckdb, tmp_path / "down")

    table = status(down, config, LATER)
    assert "Traceback" not in table.stderr
    [row] = [words for words in map(str.split, table.stdout.splitlines()) if words[:1] == ["BRANDNAAM"]]
    assert row[1:3] == ["2026-11-03", "3"], table.stdout  # last delivered, periods
    [said] = table.stderr.splitlines()  # one line: what is shown, and why
    assert "warehouse" in said and "ledger" in said and where in said, said
    assert "OVERDUE" in table.stdout  # the ledger and the clock know what is overdue

    document = json.loads(status(down, config, LATER, "--json").stdout)
    valid(document)
    assert isinstance(document, dict) and document["version"] >= 2
    assert document["warehouse"]["read"] is False and where in document["warehouse"]["error"]
    [tenant] = document["tenants"]
    assert (tenant["brand"], tenant["delivered_periods"], tenant["last_delivered"]) == (
        "BRANDNAAM",
        3,
        "2026-11-03",
    )
    assert tenant["watermark"] is None
    assert [o["period"] for o in tenant["overdue"]] == ["2026-11-04", "2026-11-05"]

    assert status(down, config, LATER, "--fail-on-problem", check=False).returncode == 1
    assert status(down, config, NOW, "--fail-on-problem").returncode == 0  # nothing owed is overdue yet


def test_fail_on_problem_exits_1_for_an_overdue_or_a_failed_period_and_0_otherwise(
    built_duckdb: Project, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "fine")
    run(built_duckdb, config)
    calm = status(built_duckdb, config, NOW, "--fail-on-problem")
    assert calm.returncode == 0 and "BRANDNAAM" in calm.stdout
    read = json.loads(status(built_duckdb, config, NOW, "--json").stdout)
    assert read["warehouse"] == {"read": True, "error": None}

    late = status(built_duckdb, config, LATER, "--fail-on-problem", check=False)
    assert late.returncode == 1 and "OVERDUE" in late.stdout  # the table still shows it all
    assert "2026-11-04" in late.stderr
    as_json = status(built_duckdb, config, LATER, "--fail-on-problem", "--json", check=False)
    assert as_json.returncode == 1
    valid(json.loads(as_json.stdout))

    # a failed first period, one hour after it became due: failed, not yet overdue
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the destination folder should be")
    failing = write_config(tmp_path / "failing", destination={"type": "local", "root": str(blocked)})
    just_due = "2026-11-02T07:00:00+01:00"
    first = built_duckdb.run(
        "run", "--config", str(failing), "--now", just_due, *built_duckdb.cli_args(), check=False
    )
    assert first.returncode == 1
    [tenant] = json.loads(status(built_duckdb, failing, just_due, "--json").stdout)["tenants"]
    assert tenant["failed"] == ["2026-11-01"] and tenant["overdue"] == []
    failed = status(built_duckdb, failing, just_due, "--fail-on-problem", check=False)
    assert failed.returncode == 1, failed.stdout + failed.stderr


def test_status_json_caps_every_list_and_says_how_many_more(built_duckdb: Project, tmp_path: Path) -> None:
    """An hourly tenant: well over a hundred periods delivered, and later hundreds owed."""
    config = write_config(tmp_path, interval="hourly", run_at="00:15", start="2026-10-28")
    run(built_duckdb, config)
    document = json.loads(status(built_duckdb, config, NOW, "--json").stdout)
    valid(document)
    [tenant] = document["tenants"]
    delivered = tenant["delivered_periods"]
    assert delivered > 150
    assert len(tenant["counts"]) == 100 and tenant["counts_more"] == delivered - 100
    assert tenant["counts"][-1]["period"] == tenant["last_delivered"]  # the latest are kept

    weeks_later = json.loads(status(built_duckdb, config, "2026-11-25T07:00:00+01:00", "--json").stdout)
    valid(weeks_later)
    [tenant] = weeks_later["tenants"]
    assert len(tenant["waiting"]) == 100 and tenant["waiting_more"] > 300
    hour_after = datetime.strptime(tenant["last_delivered"], "%Y-%m-%dT%H") + timedelta(hours=1)
    assert tenant["waiting"][0] == f"{hour_after:%Y-%m-%dT%H}"  # the oldest first, as run delivers them
    assert len(tenant["overdue"]) == 100 and tenant["overdue_more"] > 300
    assert len(tenant["warnings"]) <= 10
    assert len(json.dumps(weeks_later)) < 40_000
