"""The ledger under real operations: nothing skipped, one ledger per configuration and destination."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.support.project import Project
from tests.support.tenants import server_files, write_tenants

DAY = {1: "2026-11-02T07:00:00+01:00", 2: "2026-11-03T07:00:00+01:00", 3: "2026-11-04T07:00:00+01:00"}


def files_of(days: list[int]) -> list[str]:
    return sorted(f"{kind}_BRANDNAAM_2026110{day}.csv" for kind in ("activity", "broadcast") for day in days)


def config_file(path: Path, root: Path, **settings: object) -> Path:
    return write_tenants(
        path, {"BRANDNAAM": {"destination": {"type": "local", "root": str(root)}, **settings}}
    )


def run_at(project: Project, config: Path, day: int, *args: str, check: bool = True):  # type: ignore[no-untyped-def]
    return project.run(
        "run", "--config", str(config), "--now", DAY[day], *args, *project.cli_args(), check=check
    )


def status_at(project: Project, config: Path, day: int) -> dict[str, object]:
    result = project.run("status", "--config", str(config), "--now", DAY[day], "--json", *project.cli_args())
    [tenant] = json.loads(result.stdout)["tenants"]
    return tenant  # type: ignore[no-any-return]


def test_tenant_without_start_catches_up_every_missed_period(built_duckdb: Project, tmp_path: Path) -> None:
    config = config_file(tmp_path / "tenants.yml", tmp_path / "server")
    run_at(built_duckdb, config, 1)  # the first run ever: only the latest due period
    assert sorted(server_files(tmp_path)) == files_of([1])

    pending = status_at(built_duckdb, config, 3)
    assert pending["pending"] == ["2026-11-02", "2026-11-03"]
    assert pending["first_period"] == "2026-11-01"

    result = run_at(built_duckdb, config, 3)  # the scheduler missed a day: both come, in order
    delivered = [
        line.split(":")[0] for line in result.stderr.splitlines() if line.startswith("BRANDNAAM 2026")
    ]
    assert delivered == ["BRANDNAAM 2026-11-02", "BRANDNAAM 2026-11-03"]
    assert sorted(server_files(tmp_path)) == files_of([1, 2, 3])
    assert status_at(built_duckdb, config, 3)["pending"] == []


def test_failed_first_period_is_retried_without_start(built_duckdb: Project, tmp_path: Path) -> None:
    blocked = tmp_path / "server"
    blocked.write_text("a file where the destination folder should be")
    config = config_file(tmp_path / "tenants.yml", blocked)
    failed = run_at(built_duckdb, config, 1, check=False)
    assert failed.returncode == 1
    assert status_at(built_duckdb, config, 1)["failed"] == ["2026-11-01"]

    blocked.unlink()
    run_at(built_duckdb, config, 3)
    assert sorted(server_files(tmp_path)) == files_of([1, 2, 3])


def test_two_configurations_in_one_folder_never_count_each_others_deliveries(
    built_duckdb: Project, tmp_path: Path
) -> None:
    staging = config_file(tmp_path / "tenants-staging.yml", tmp_path / "staging", start="2026-11-01")
    prod = config_file(tmp_path / "tenants-prod.yml", tmp_path / "prod", start="2026-11-01")
    run_at(built_duckdb, staging, 3)
    run_at(built_duckdb, prod, 3)
    for folder in ("staging", "prod"):
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == files_of([1, 2, 3])
    assert status_at(built_duckdb, prod, 3)["delivered_periods"] == 3


def test_changed_destination_is_refused_until_accepted(built_duckdb: Project, tmp_path: Path) -> None:
    config = config_file(tmp_path / "tenants.yml", tmp_path / "old", start="2026-11-01")
    run_at(built_duckdb, config, 2)  # 1 and 2 November to the old folder
    config_file(tmp_path / "tenants.yml", tmp_path / "new", start="2026-11-01")

    refused = run_at(built_duckdb, config, 3, check=False)
    assert refused.returncode == 1
    assert "destination changed" in refused.stderr and "--accept-destination" in refused.stderr
    assert not (tmp_path / "new").exists()
    checked = built_duckdb.run("check", "--config", str(config), "--now", DAY[3])
    assert "destination changed" in checked.stderr
    changed = status_at(built_duckdb, config, 3)
    assert changed["destination_changed"] == f"local:{(tmp_path / 'old').resolve()}"
    assert changed["pending"] == ["2026-11-03"]

    run_at(built_duckdb, config, 3, "--accept-destination")  # continues after the last delivered
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == files_of([3])
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == files_of([1, 2])
    again = run_at(built_duckdb, config, 3)
    assert "BRANDNAAM 2026" not in again.stderr
    assert status_at(built_duckdb, config, 3)["destination_changed"] is None


VERSION_1 = """
create table deliveries (
    brand text not null, kind text not null, period_start text not null, period_end text not null,
    period_label text not null, status text not null, remote_path text, destination text,
    rows integer, bytes integer, sha256 text, attempts integer not null default 0,
    started_at text, delivered_at text, error text, primary key (brand, kind, period_start)
);
create table attempts (
    attempt_id integer primary key autoincrement, brand text not null, period_start text not null,
    period_label text not null, started_at text not null, finished_at text, outcome text, error text
);
"""


def test_ledger_of_the_previous_version_is_migrated(built_duckdb: Project, tmp_path: Path) -> None:
    server = tmp_path / "server"
    config = config_file(tmp_path / "tenants.yml", server)
    with sqlite3.connect(tmp_path / "activity-export.ledger.sqlite") as db:
        db.executescript(VERSION_1)
        for kind in ("activity", "broadcast"):  # 1 November delivered by the previous version
            db.execute(
                "insert into deliveries values (?, ?, ?, ?, ?, 'delivered', ?, ?, 1, 1, 'x', 1, "
                "'2026-11-02T06:00:00+00:00', '2026-11-02T06:00:01+00:00', null)",
                (
                    "BRANDNAAM",
                    kind,
                    "2026-10-31T23:00:00+00:00",
                    "2026-11-01T23:00:00+00:00",
                    "2026-11-01",
                    f"{server}/{kind}_BRANDNAAM_20261101.csv",
                    f"local folder {server}",
                ),
            )
        db.execute(
            "insert into attempts (brand, period_start, period_label, started_at) values (?, ?, ?, ?)",
            ("BRANDNAAM", "2026-10-31T23:00:00+00:00", "2026-11-01", "2026-11-02T06:00:00+00:00"),
        )

    run_at(built_duckdb, config, 3)  # no start: everything after the earliest recorded period
    assert sorted(server_files(tmp_path)) == files_of([2, 3])  # 1 November was not sent again
    with sqlite3.connect(tmp_path / "activity-export.ledger.sqlite") as db:
        assert db.execute("select value from meta where name = 'schema_version'").fetchone() == ("5",)
        assert db.execute("select count(*) from webhooks").fetchone() == (0,)
        assert db.execute("select count(*) from attempts where outcome is null").fetchone() == (0,)
