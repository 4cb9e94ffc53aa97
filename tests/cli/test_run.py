"""The nightly job: `run`, `backfill` and `status`, exactly-once under failures."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml

from activity_export.shards import shard_of
from tests.support.project import BIN, GENERATE_ARGS, ROOT, Project, fresh_project
from tests.support.tenants import EXPECTED, NOW, run, server_files, write_config


def attempts(config: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(config.parent / "activity-export.ledger.sqlite") as db:
        return db.execute("select period_label, outcome from attempts order by attempt_id").fetchall()


def test_missed_days_are_caught_up_in_order(built_duckdb: Project, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = run(built_duckdb, config)
    lines = [line for line in result.stderr.splitlines() if line.startswith("BRANDNAAM 2026")]
    assert [line.split(":")[0] for line in lines] == [
        "BRANDNAAM 2026-11-01",
        "BRANDNAAM 2026-11-02",
        "BRANDNAAM 2026-11-03",
    ]
    assert sorted(server_files(tmp_path)) == sorted(EXPECTED)


def test_second_run_delivers_nothing_and_force_and_backfill_resend_the_same_bytes(
    built_duckdb: Project, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    run(built_duckdb, config)
    first = server_files(tmp_path)

    again = run(built_duckdb, config)
    assert server_files(tmp_path) == first  # not even rewritten: same inodes
    assert "BRANDNAAM 2026" not in again.stderr

    run(built_duckdb, config, "--force")
    forced = server_files(tmp_path)
    assert {name: sha for name, (sha, _) in forced.items()} == {n: s for n, (s, _) in first.items()}
    assert all(forced[name][1] != first[name][1] for name in first)  # really sent again

    built_duckdb.run(
        "backfill",
        "--config",
        str(config),
        "--brand",
        "BRANDNAAM",
        "--from",
        "2026-11-02",
        "--to",
        "2026-11-03",
        *built_duckdb.cli_args(),
    )
    backfilled = server_files(tmp_path)
    assert {n: s for n, (s, _) in backfilled.items()} == {n: s for n, (s, _) in first.items()}
    assert backfilled["activity_BRANDNAAM_20261101.csv"] == forced["activity_BRANDNAAM_20261101.csv"]
    assert backfilled["activity_BRANDNAAM_20261102.csv"] != forced["activity_BRANDNAAM_20261102.csv"]


def test_incomplete_day_waits_for_the_watermark_and_is_loud_when_overdue(
    built_duckdb: Project, tmp_path: Path
) -> None:
    config = write_config(tmp_path)
    hook = tmp_path / "notified.json"
    later = "2026-11-06T07:00:00+01:00"  # 4 and 5 November are due, but not built yet
    result = built_duckdb.run(
        "run",
        "--config",
        str(config),
        "--now",
        later,
        "--on-failure",
        f"cat > {hook}",
        *built_duckdb.cli_args(),
        check=False,
    )
    assert sorted(server_files(tmp_path)) == sorted(EXPECTED)
    # 4 November became due 25 hours ago (default overdue_after_hours: 6); 5 November 1 hour ago
    assert result.returncode == 1, result.stderr
    assert "period 2026-11-04 is overdue" in result.stderr
    assert "2026-11-05 is overdue" not in result.stderr
    payload = json.loads(hook.read_text())
    assert payload["event"] == "activity-export.tenant_overdue"
    assert [o["period"] for o in payload["overdue"]] == ["2026-11-04"]

    status = built_duckdb.run(
        "status", "--config", str(config), "--now", later, "--json", *built_duckdb.cli_args()
    )
    [tenant] = json.loads(status.stdout)["tenants"]
    assert tenant["waiting"] == ["2026-11-04", "2026-11-05"]
    assert tenant["last_delivered"] == "2026-11-03"
    assert tenant["pending"] == [] and tenant["failed"] == []
    assert [o["period"] for o in tenant["overdue"]] == ["2026-11-04"]
    assert tenant["watermark"].startswith("2026-11-0")
    table = built_duckdb.run("status", "--config", str(config), "--now", later, *built_duckdb.cli_args())
    assert "period 2026-11-04 is OVERDUE" in table.stdout

    relaxed = write_config(tmp_path, overdue_after_hours=48)
    calm = built_duckdb.run("run", "--config", str(relaxed), "--now", later, *built_duckdb.cli_args())
    assert "overdue" not in calm.stderr


@pytest.mark.parametrize("failpoint", ["after-write", "mid-upload", "after-upload"])
def test_killed_run_is_finished_by_the_next_without_duplicates(
    built_duckdb: Project, tmp_path: Path, failpoint: str
) -> None:
    config = write_config(tmp_path)
    killed = run(built_duckdb, config, check=False, env={"ACTIVITY_EXPORT_FAILPOINT": failpoint})
    assert killed.returncode == -9, killed.stderr
    after_crash = server_files(tmp_path)

    run(built_duckdb, config)
    files = server_files(tmp_path)
    assert sorted(files) == sorted(EXPECTED)  # every file once, no partial file left
    if failpoint == "after-upload":
        # the file that made it before the kill was recognised, not uploaded a second time
        [(name, entry)] = after_crash.items()
        assert files[name] == entry
    run(built_duckdb, config)  # and a third run has nothing left to do
    assert server_files(tmp_path) == files
    assert [outcome for _, outcome in attempts(config)] == [
        "interrupted",
        "delivered",
        "delivered",
        "delivered",
    ]


def test_a_file_published_before_a_kill_stays_ours_after_a_failed_run(
    built_duckdb: Project, tmp_path: Path
) -> None:
    """Killed after the first upload, then a run that fails (the destination is gone): the ledger
    marks the period failed, yet the file it published is its own, not a stranger's."""
    config = write_config(tmp_path)
    killed = run(built_duckdb, config, check=False, env={"ACTIVITY_EXPORT_FAILPOINT": "after-upload"})
    assert killed.returncode == -9, killed.stderr
    [(name, entry)] = server_files(tmp_path).items()
    server, away = tmp_path / "server", tmp_path / "away"
    server.rename(away)
    server.write_text("not a folder")  # an outage of the destination
    failed = run(built_duckdb, config, check=False)
    assert failed.returncode == 1 and "BRANDNAAM" in failed.stderr, failed.stderr
    server.unlink()
    away.rename(server)

    finished = run(built_duckdb, config, check=False)
    assert finished.returncode == 0, finished.stderr
    files = server_files(tmp_path)
    assert sorted(files) == sorted(EXPECTED)
    assert files[name] == entry  # recognised by its SHA-256, not published again


def test_two_concurrent_runs_deliver_each_period_once(built_duckdb: Project, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    command = [
        str(BIN / "activity-export"),
        "run",
        "--config",
        str(config),
        "--now",
        NOW,
        *built_duckdb.cli_args(),
    ]
    runs = [
        subprocess.Popen(
            command, env=built_duckdb.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in runs]
    for process, (_, stderr) in zip(runs, outputs, strict=True):
        # a run that found the tenant locked still plans it: 1 and 2 November are long overdue then
        assert process.returncode == 0 or (process.returncode == 1 and "skipped" in stderr), outputs
    assert 0 in [process.returncode for process in runs], outputs
    assert sorted(server_files(tmp_path)) == sorted(EXPECTED)
    assert [label for label, _ in attempts(config)] == ["2026-11-01", "2026-11-02", "2026-11-03"]


def test_two_shards_side_by_side_on_one_ledger_deliver_every_tenant_once(
    built_duckdb: Project, tmp_path: Path
) -> None:
    """Shard processes on one machine share the ledger beside the configuration (docs/scaling.md):
    each delivers only its own tenants, and together every tenant's periods once."""
    brands = ["BRANDNAAM", "MODEHUIS"]
    assert shard_of("BRANDNAAM", 2) != shard_of("MODEHUIS", 2)
    config = tmp_path / "tenants.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "defaults": {"start": "2026-11-01"},
                "tenants": {
                    brand: {"destination": {"type": "local", "root": str(tmp_path / "server" / brand)}}
                    for brand in brands
                },
            }
        )
    )
    command = [str(BIN / "activity-export"), "run", "--config", str(config), "--now", NOW]
    shards = [
        subprocess.Popen(
            [*command, "--shard", f"{i}/2", *built_duckdb.cli_args()],
            env=built_duckdb.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]
    outputs = [process.communicate(timeout=120) for process in shards]
    assert [process.returncode for process in shards] == [0, 0], outputs
    for i, (_, stderr) in enumerate(outputs, start=1):
        mine = next(brand for brand in brands if shard_of(brand, 2) == i)
        assert f"{mine} 2026-11-01" in stderr and not any(
            f"{brand} 2026" in stderr for brand in brands if brand != mine
        ), stderr
    for brand in brands:
        assert len(list((tmp_path / "server" / brand).glob("*.csv"))) == 6, brand
    with sqlite3.connect(tmp_path / "activity-export.ledger.sqlite") as db:
        rows = db.execute(
            "select brand, period_label, outcome from attempts order by brand, period_label"
        ).fetchall()
    assert rows == [
        (brand, day, "delivered") for brand in brands for day in ("2026-11-01", "2026-11-02", "2026-11-03")
    ]


def test_failed_tenant_does_not_stop_the_others(built_duckdb: Project, tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a folder should be")
    config = tmp_path / "tenants.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "defaults": {"start": "2026-11-01"},
                "tenants": {
                    "BRANDNAAM": {"destination": {"type": "local", "root": str(blocked / "sub")}},
                    "MODEHUIS": {"destination": {"type": "local", "root": str(tmp_path / "server")}},
                },
            }
        )
    )
    hook = tmp_path / "notified.json"
    result = run(built_duckdb, config, "--on-failure", f"cat > {hook}", check=False)
    assert result.returncode == 1
    assert "tenant BRANDNAAM" in result.stderr
    assert len(list((tmp_path / "server").glob("*.csv"))) == 6
    payload = json.loads(hook.read_text())
    assert payload["brand"] == "BRANDNAAM" and payload["error"]


def _late_event_sql() -> str:
    return """
    insert into raw.events
    select 999000001, 'BRANDNAAM', broadcast_id, 1, 'open',
           timestamptz '2026-11-01 10:00:00+00', timestamptz '2026-11-04 08:00:00+00',
           'late@example.nl', null, null, null, null, null, null
    from raw.broadcasts where brand = 'BRANDNAAM' and channel = 'email' and sent_at is not null
    order by broadcast_id limit 1;
    insert into raw.events
    select 999000002, 'BRANDNAAM', broadcast_id, 2, 'open',
           timestamptz '2026-11-05 01:00:00+00', timestamptz '2026-11-05 01:00:00+00',
           'marker@example.nl', null, null, null, null, null, null
    from raw.broadcasts where brand = 'BRANDNAAM' and channel = 'email' and sent_at is not null
    order by broadcast_id limit 1;
    """


def test_late_registered_event_lands_in_the_next_period(duckdb_project: Project, tmp_path: Path) -> None:
    project = fresh_project(duckdb_project, tmp_path, *GENERATE_ARGS)
    config = write_config(tmp_path, extra_fields={"activity": ["eventid"]})
    run(project, config)
    delivered_day_one = server_files(tmp_path)["activity_BRANDNAAM_20261101.csv"]

    with duckdb.connect(project.env["ACTIVITY_EXPORT_DUCKDB"]) as con:
        con.execute(_late_event_sql())
    project.build()
    project.run("run", "--config", str(config), "--now", "2026-11-05T07:00:00+01:00", *project.cli_args())

    files = server_files(tmp_path)
    assert files["activity_BRANDNAAM_20261101.csv"] == delivered_day_one  # never sent again
    day_four = (tmp_path / "server" / "activity_BRANDNAAM_20261104.csv").read_text()
    assert "999000001" in day_four and "late@example.nl" in day_four
    everything = "".join(p.read_text() for p in (tmp_path / "server").glob("activity_*.csv"))
    assert everything.count("999000001") == 1


INDEPENDENT_COUNT = """
with first_registration as (
    select event_id, min(registered_at) as registered_at
    from raw.events group by event_id
),
exported as (
    select distinct events.event_id, first_registration.registered_at
    from raw.events as events
    inner join first_registration using (event_id)
    inner join raw.broadcasts as broadcasts using (broadcast_id)
    where events.brand = 'BRANDNAAM' and broadcasts.channel = 'email'
      and events.event_type in ('sent', 'open', 'click', 'softbounce', 'hardbounce',
                                'complaint', 'unsubscribe')
)
select count(*) from exported
where registered_at >= timestamptz '{start}' and registered_at < timestamptz '{end}'
"""


@pytest.mark.parametrize(
    ("day", "start_utc", "end_utc"),
    [
        ("2026-03-29", "2026-03-28 23:00:00+00", "2026-03-29 22:00:00+00"),  # 23 hours
        ("2026-10-25", "2026-10-24 22:00:00+00", "2026-10-25 23:00:00+00"),  # 25 hours
    ],
)
def test_dst_days_deliver_23_and_25_hours_of_activity(
    duckdb_project: Project, tmp_path: Path, day: str, start_utc: str, end_utc: str
) -> None:
    first = (date.fromisoformat(day) - timedelta(days=1)).isoformat()
    following = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    project = fresh_project(
        duckdb_project,
        tmp_path,
        "--brands",
        "BRANDNAAM",
        "--days",
        "3",
        "--events-per-day",
        "500",
        "--start",
        first,
    )
    config = write_config(tmp_path, start=day, extra_fields={"activity": ["registereddate"]})
    project.run(
        "run",
        "--config",
        str(config),
        "--now",
        f"{following}T07:00:00+01:00",
        *project.cli_args(),
    )
    name = f"activity_BRANDNAAM_{day.replace('-', '')}.csv"
    with (tmp_path / "server" / name).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    with duckdb.connect(project.env["ACTIVITY_EXPORT_DUCKDB"], read_only=True) as con:
        expected = con.execute(INDEPENDENT_COUNT.format(start=start_utc, end=end_utc)).fetchone()[0]
    assert len(rows) == expected > 0
    assert {row["registereddate"][:10] for row in rows} == {day}
    hours = {row["registereddate"][11:13] for row in rows}
    assert {"00", "23"} <= hours


def test_backfill_ahead_of_an_undelivered_period_says_so(built_duckdb: Project, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    built_duckdb.run(  # only 1 November is due
        "run", "--config", str(config), "--now", "2026-11-02T07:00:00+01:00", *built_duckdb.cli_args()
    )
    backfill = built_duckdb.run(
        "backfill", "--brand", "BRANDNAAM", "--from", "2026-11-03", "--to", "2026-11-03",
        "--config", str(config), *built_duckdb.cli_args(),
    )  # fmt: skip
    assert (
        "backfill delivers 2026-11-03 ahead of 1 earlier period(s) never delivered (2026-11-02)"
        in backfill.stderr
    ), backfill.stderr
    assert "activity_BRANDNAAM_20261103.csv" in server_files(tmp_path)
    in_order = built_duckdb.run(
        "backfill", "--brand", "BRANDNAAM", "--from", "2026-11-01", "--to", "2026-11-02",
        "--config", str(config), *built_duckdb.cli_args(),
    )  # fmt: skip
    assert "ahead of" not in in_order.stderr
