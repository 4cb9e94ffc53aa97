"""What operators do to a running system: a run hung on a tenant's lock, a first clock set wrong, a
ledger lost. Each is reported loudly and never loses, repeats or rewrites a file."""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import subprocess
from pathlib import Path

from tests.support.project import Project, own_duckdb
from tests.support.tenants import NOW, server_files, write_config, write_tenants

LATE = "2026-11-04T20:00:00+01:00"  # 1 to 3 November are due, the 3rd for 14 hours: overdue


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
    # how long it has been held is wall-clock time, whatever --now says (here a month back)
    assert re.search(r"pid 4242, for 0\.\dh", tenant["skipped"]), tenant["skipped"]
    assert [o["period"] for o in tenant["overdue"]] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert "period 2026-11-03 is overdue" in result.stderr
    assert json.loads(called.read_text())["event"] == "activity-export.tenant_overdue"
    assert not (tmp_path / "server").exists()  # the holder delivers; this run only reports


def run(project: Project, config: Path, *args: str, now: str = NOW) -> subprocess.CompletedProcess[str]:
    return project.run("run", "--config", str(config), "--now", now, *args, *project.cli_args(), check=False)


def test_a_lost_ledger_publishes_nothing_again_and_adopts_what_matches(
    built_duckdb: Project, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    assert run(built_duckdb, config).returncode == 0
    delivered = server_files(tmp_path)
    assert len(delivered) == 6
    ledger = tmp_path / "activity-export.ledger.sqlite"
    for path in tmp_path.glob("activity-export.ledger.sqlite*"):
        if path.is_file():
            path.unlink()

    refused = run(built_duckdb, config)
    assert refused.returncode == 1
    assert "activity_BRANDNAAM_20261101.csv is already on" in refused.stderr
    assert "--adopt" in refused.stderr
    assert server_files(tmp_path) == delivered
    again = run(built_duckdb, config)  # still refused: the failure recorded nothing as delivered
    assert again.returncode == 1 and server_files(tmp_path) == delivered

    adopted = run(built_duckdb, config, "--adopt")
    assert adopted.returncode == 0, adopted.stderr
    assert server_files(tmp_path) == delivered  # same bytes, same inodes: nothing published again
    with sqlite3.connect(ledger) as db:
        rows = db.execute("select count(*) from deliveries where status = 'delivered'").fetchone()
    assert rows == (6,)
    assert run(built_duckdb, config).returncode == 0 and server_files(tmp_path) == delivered


def test_adopting_never_replaces_a_file_with_other_bytes(built_duckdb: Project, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert run(built_duckdb, config).returncode == 0
    changed = tmp_path / "server" / "broadcast_BRANDNAAM_20261102.csv"
    changed.write_text("the receiver's own edit\n")
    (tmp_path / "activity-export.ledger.sqlite").unlink()
    before = server_files(tmp_path)
    adopted = run(built_duckdb, config, "--adopt")
    assert adopted.returncode == 1
    assert "broadcast_BRANDNAAM_20261102.csv is already on" in adopted.stderr
    assert "other content" in adopted.stderr
    assert server_files(tmp_path) == before


def test_a_first_run_with_the_clock_far_ahead_is_refused_for_a_brand_without_data_yet(
    built_duckdb: Project, tmp_path: Path
) -> None:
    """A new brand has no rows yet, so no watermark of its own: the warehouse's newest data (the
    other brands') says the clock is weeks ahead, and the brand is not anchored there."""
    local = {"type": "local", "root": str(tmp_path / "server")}
    config = write_tenants(tmp_path / "tenants.yml", {"NIEUWMERK": {"destination": local}})  # no start
    ahead = run(built_duckdb, config, now="2026-12-09T07:00:00+01:00")  # the data ends on 3 November
    assert ahead.returncode == 1
    assert "first run without `start`" in ahead.stderr and "2026-12-08" in ahead.stderr, ahead.stderr
    assert "newest data in the warehouse" in ahead.stderr
    with sqlite3.connect(tmp_path / "activity-export.ledger.sqlite") as ledger:
        assert ledger.execute("select count(*) from tenants").fetchone() == (0,)  # not anchored
    right = run(built_duckdb, config, now="2026-11-04T07:00:00+01:00")
    assert "first run without" not in right.stderr, right.stderr


def test_a_first_run_with_the_clock_far_ahead_is_refused(built_duckdb: Project, tmp_path: Path) -> None:
    local = {"type": "local", "root": str(tmp_path / "server")}
    config = write_tenants(tmp_path / "tenants.yml", {"BRANDNAAM": {"destination": local}})  # no start
    ahead = run(built_duckdb, config, now="2026-11-09T07:00:00+01:00")  # the data ends on 3 November
    assert ahead.returncode == 1
    assert "first run without `start`" in ahead.stderr and "2026-11-08" in ahead.stderr
    assert not (tmp_path / "server").exists()
    right = run(built_duckdb, config)  # the right clock: the latest due period is the first one
    assert right.returncode == 0, right.stderr
    assert sorted(server_files(tmp_path)) == [
        "activity_BRANDNAAM_20261103.csv",
        "broadcast_BRANDNAAM_20261103.csv",
    ]


def test_manifests_stay_as_delivered_while_their_data_does(duckdb_project: Project, tmp_path: Path) -> None:
    """A kill between publishing a manifest and recording it, or a backfill, after a build moved
    the watermark: the data files come out the same, so the manifest the receiver has stays."""
    project = own_duckdb(duckdb_project, tmp_path)
    generate = ["--brands", "BRANDNAAM", "--events-per-day", "100", "--start", "2026-11-01"]
    project.run("generate", *generate, "--days", "3", *project.cli_args())
    project.build()
    config = write_config(tmp_path, manifest=True)
    assert run(project, config).returncode == 0
    delivered = server_files(tmp_path)
    with sqlite3.connect(tmp_path / "activity-export.ledger.sqlite") as db:  # killed before "delivered"
        db.execute(
            "update deliveries set status = 'uploading' where kind = 'manifest' and period_label = '2026-11-03'"
        )
    db.close()
    project.run("generate", *generate, "--days", "5", *project.cli_args())  # two more days arrive
    project.build()  # the watermark moves on

    resumed = run(project, config)
    assert resumed.returncode == 0, resumed.stderr
    project.run(
        "backfill", "--config", str(config), "--brand", "BRANDNAAM", "--from", "2026-11-02", "--to", "2026-11-02",
        *project.cli_args(),
    )  # fmt: skip
    after = server_files(tmp_path)
    for day in ("20261102", "20261103"):
        name = f"manifest_BRANDNAAM_{day}.json"
        assert after[name] == delivered[name]  # same bytes, never published again


def test_work_folders_of_a_killed_run_are_removed_by_the_next(built_duckdb: Project, tmp_path: Path) -> None:
    """A run killed with SIGKILL leaves its tenant folder and DuckDB's spill folder, which may hold
    personal data; the next run removes both, and only those of processes that are gone."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    dead = subprocess.Popen(["true"])  # a process that has ended: nothing holds its pid
    dead.wait()
    left = [temp / f"activity-export.{dead.pid}.BRANDNAAM.x1", temp / f"activity-export.{dead.pid}.duckdb.x2"]
    alive = temp / f"activity-export.{os.getpid()}.duckdb.x3"  # this test process lives
    for folder in (*left, alive):
        folder.mkdir()
        (folder / "slice.csv").write_text("someone@example.nl\n")
    config = write_config(tmp_path)
    result = built_duckdb.run(
        "run", "--config", str(config), "--now", NOW, *built_duckdb.cli_args(), env={"TMPDIR": str(temp)}
    )
    assert not any(folder.exists() for folder in left), result.stderr
    assert alive.exists()
    assert sorted(p.name for p in temp.iterdir()) == [alive.name]  # the run's own folders are gone too
