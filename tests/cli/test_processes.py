"""``run --processes N``: worker processes share the tenants, and the run stays one run: one
summary, one exit code, one ``--on-failure`` per problem, its log lines whole, a stop passed on."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

import yaml

from tests.support.project import Project
from tests.support.tenants import EXPECTED, NOW, run, run_stopped_at

DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]


def two_tenants(folder: Path, modehuis: dict[str, object] | None = None) -> Path:
    """BRANDNAAM and MODEHUIS from 2026-11-01, each into its own folder under ``folder/server``."""
    config = folder / "tenants.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "defaults": {"start": "2026-11-01"},
                "tenants": {
                    "BRANDNAAM": {
                        "destination": {"type": "local", "root": str(folder / "server" / "BRANDNAAM")}
                    },
                    "MODEHUIS": {
                        "destination": modehuis
                        or {"type": "local", "root": str(folder / "server" / "MODEHUIS")}
                    },
                },
            }
        )
    )
    return config


def delivered(folder: Path, brand: str) -> list[str]:
    return sorted(p.name for p in (folder / "server" / brand).glob("*.csv"))


def attempts(folder: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(folder / "activity-export.ledger.sqlite") as db:
        return db.execute(
            "select brand, period_label, outcome from attempts order by brand, period_label"
        ).fetchall()


def expected(brand: str) -> list[str]:
    return sorted(name.replace("BRANDNAAM", brand) for name in EXPECTED)


def test_worker_processes_deliver_each_tenant_once_and_report_as_one_run(
    built_duckdb: Project, tmp_path: Path
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a folder should be")
    config = two_tenants(tmp_path, modehuis={"type": "local", "root": str(blocked / "sub")})
    hook = tmp_path / "notified.jsonl"
    result = built_duckdb.run(
        "--log-format", "json",
        "run", "--config", str(config), "--now", NOW, "--processes", "2", "--json",
        "--on-failure", f"cat >> {hook}; echo >> {hook}",
        *built_duckdb.cli_args(),
        check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    by_brand = {tenant["brand"]: tenant for tenant in summary["tenants"]}
    assert [tenant["brand"] for tenant in summary["tenants"]] == ["BRANDNAAM", "MODEHUIS"]
    assert [period["period"] for period in by_brand["BRANDNAAM"]["delivered"]] == DAYS
    assert by_brand["MODEHUIS"]["state"] == "failed" and by_brand["MODEHUIS"]["delivered"] == []
    lines = [json.loads(line) for line in result.stderr.splitlines()]  # every line one object
    workers_said = {(line["event"], line["tenant"]) for line in lines}
    assert ("period_delivered", "BRANDNAAM") in workers_said
    assert ("period_failed", "MODEHUIS") in workers_said and ("tenant_failed", "MODEHUIS") in workers_said
    notified = [json.loads(line) for line in hook.read_text().splitlines() if line.strip()]
    assert [n["brand"] for n in notified] == ["MODEHUIS"]
    assert delivered(tmp_path, "BRANDNAAM") == expected("BRANDNAAM")
    assert [row for row in attempts(tmp_path) if row[0] == "BRANDNAAM"] == [
        ("BRANDNAAM", day, "delivered") for day in DAYS
    ]

    again = run(built_duckdb, config, "--processes", "2", "--json", check=False)
    assert [p for t in json.loads(again.stdout)["tenants"] for p in t["delivered"]] == []
    assert delivered(tmp_path, "BRANDNAAM") == expected("BRANDNAAM")


def test_a_killed_worker_fails_its_tenants_and_the_next_run_finishes_them(
    built_duckdb: Project, tmp_path: Path
) -> None:
    config = two_tenants(tmp_path)
    killed = run(
        built_duckdb,
        config,
        "--processes",
        "2",
        check=False,
        env={"ACTIVITY_EXPORT_FAILPOINT": "after-upload"},
    )
    assert killed.returncode == 1, killed.stderr  # the run itself lives on to say what happened
    for brand in ("BRANDNAAM", "MODEHUIS"):
        assert "ended without a report (killed by SIGKILL)" in killed.stderr
        assert f"tenant {brand}: worker process" in killed.stderr, killed.stderr
    assert "Traceback" not in killed.stderr

    run(built_duckdb, config, "--processes", "2")
    for brand in ("BRANDNAAM", "MODEHUIS"):
        assert delivered(tmp_path, brand) == expected(brand)
    assert [row[2] for row in attempts(tmp_path) if row[2] == "delivered"] == ["delivered"] * 6


def test_sigterm_to_the_run_stops_its_workers_at_a_safe_point(built_duckdb: Project, tmp_path: Path) -> None:
    config = two_tenants(tmp_path)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    # the run only: its workers take no signal themselves
    code, out, err = run_stopped_at(
        built_duckdb,
        config,
        {"TMPDIR": str(temporary)},
        "after-write",
        signal.SIGTERM,
        "--processes",
        "2",
        pauses=2,
    )
    assert code == 143, err
    assert out.count("INTERRUPTED") == 2, out
    assert list(temporary.rglob("*")) == []  # no worker left a temporary file
    assert not [p for p in (tmp_path / "server").rglob("*") if ".partial" in p.name]
    assert sorted(row[2] for row in attempts(tmp_path)) == ["interrupted", "interrupted"]

    run(built_duckdb, config, "--processes", "2")
    for brand in ("BRANDNAAM", "MODEHUIS"):
        assert delivered(tmp_path, brand) == expected(brand)
