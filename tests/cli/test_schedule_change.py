"""A tenant's schedule changes (interval, timezone): refused until accepted, then continued from the
end of the last period delivered, with no event missed, none sent twice and no file rewritten.

Every event is checked by its id (the ``eventid`` extra field) against what ``export`` writes for
the same days on a daily schedule, the reference the tenant had before the change.
"""

from __future__ import annotations

import csv
import hashlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.project import Project, fresh_project

BRAND = "BRANDNAAM"


@pytest.fixture(scope="module")
def ten_days(duckdb_project: Project, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """Ten days of data (1 to 10 November) in a DuckDB warehouse of its own, built."""
    folder = tmp_path_factory.mktemp("ten-days")
    generate = ["--brands", BRAND, "--days", "10", "--events-per-day", "60", "--start", "2026-11-01"]
    yield fresh_project(duckdb_project, folder, *generate)


def eventid_config(folder: Path, **settings: Any) -> Path:
    """BRANDNAAM from 1 November, daily in Amsterdam unless ``settings`` say otherwise, with the
    event id in its activity files."""
    tenant = {
        "start": "2026-11-01",
        "extra_fields": {"activity": ["eventid"]},
        "destination": {"type": "local", "root": str(folder / "server")},
        **settings,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tenants.yml"
    path.write_text(yaml.safe_dump({"tenants": {BRAND: tenant}}))
    return path


def run(project: Project, config: Path, now: str, *args: str, check: bool = True) -> Any:
    return project.run("run", "--config", str(config), "--now", now, *args, *project.cli_args(), check=check)


def files(folder: Path) -> dict[str, str]:
    """Every file on the server: name -> SHA-256."""
    server = folder / "server"
    return {
        str(p.relative_to(server)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(server.rglob("*"))
        if p.is_file()
    }


def event_ids(paths: list[Path]) -> Counter[str]:
    found: Counter[str] = Counter()
    for path in paths:
        with path.open(newline="", encoding="utf-8") as handle:
            found.update(row["eventid"] for row in csv.DictReader(handle, delimiter=";"))
    return found


def reference(project: Project, folder: Path, days: range) -> Counter[str]:
    """The events a daily Europe/Amsterdam tenant gets for these days of November."""
    config = eventid_config(folder / "reference")
    out = folder / "reference" / "out"
    for day in days:
        project.run(
            "export", "--config", str(config), "--brand", BRAND, "--period", f"2026-11-{day:02d}",
            "--out", str(out), *project.cli_args(),
        )  # fmt: skip
    return event_ids(sorted(out.glob("activity_*.csv")))


def delivered(folder: Path) -> Counter[str]:
    return event_ids(sorted((folder / "server").glob("activity_*.csv")))


def test_daily_to_weekly_is_refused_until_accepted_then_continues_without_gap(
    ten_days: Project, tmp_path: Path
) -> None:
    config = eventid_config(tmp_path)
    run(ten_days, config, "2026-11-04T07:00:00+01:00")  # 1, 2 and 3 November, daily
    before = files(tmp_path)
    eventid_config(tmp_path, interval="weekly")

    refused = run(ten_days, config, "2026-11-10T07:00:00+01:00", check=False)
    assert refused.returncode == 1
    assert "schedule changed: deliveries so far followed daily in Europe/Amsterdam" in refused.stderr
    assert "--accept-schedule" in refused.stderr
    assert files(tmp_path) == before
    checked = ten_days.run("check", "--config", str(config), *ten_days.cli_args())
    assert "schedule changed" in checked.stderr

    run(ten_days, config, "2026-11-10T07:00:00+01:00", "--accept-schedule")
    after = files(tmp_path)
    assert {name: after[name] for name in before} == before  # nothing delivered was rewritten
    # the rest of the week of 2 November: 4 to 8 November, in one file named after its start
    assert sorted(set(after) - set(before)) == [
        f"activity_{BRAND}_20261104.csv",
        f"broadcast_{BRAND}_20261104.csv",
    ]
    got = delivered(tmp_path)
    assert max(got.values()) == 1  # no event twice
    assert got == reference(ten_days, tmp_path, range(1, 9))  # none missing either

    again = run(ten_days, config, "2026-11-10T07:00:00+01:00")  # accepted: an ordinary run now
    assert files(tmp_path) == after, again.stdout


def test_weekly_to_daily_continues_after_the_last_week(ten_days: Project, tmp_path: Path) -> None:
    config = eventid_config(tmp_path, interval="weekly", start="2026-11-02")
    run(ten_days, config, "2026-11-09T07:00:00+01:00")  # the week of 2 November
    before = files(tmp_path)
    assert sorted(before) == [f"activity_{BRAND}_20261102.csv", f"broadcast_{BRAND}_20261102.csv"]
    eventid_config(tmp_path, start="2026-11-02")
    run(ten_days, config, "2026-11-11T07:00:00+01:00", "--accept-schedule")
    after = files(tmp_path)
    assert sorted(set(after) - set(before)) == [
        f"{kind}_{BRAND}_202611{day}.csv" for kind in ("activity", "broadcast") for day in ("09", "10")
    ]
    got = delivered(tmp_path)
    assert max(got.values()) == 1
    assert got == reference(ten_days, tmp_path, range(2, 11))


def test_a_timezone_moved_west_never_rewrites_the_last_days_file(ten_days: Project, tmp_path: Path) -> None:
    config = eventid_config(tmp_path)
    run(ten_days, config, "2026-11-04T07:00:00+01:00")  # 1, 2 and 3 November in Amsterdam
    before = files(tmp_path)
    eventid_config(tmp_path, timezone="UTC")
    # Amsterdam's 4 November starts at 23:00 UTC on the 3rd: those hours share the 3rd's date
    run(ten_days, config, "2026-11-06T07:00:00+00:00", "--accept-schedule")
    after = files(tmp_path)
    assert {name: after[name] for name in before} == before
    assert sorted(set(after) - set(before)) == [
        f"{kind}_{BRAND}_202611{day}.csv" for kind in ("activity", "broadcast") for day in ("04", "05")
    ]
    got = delivered(tmp_path)
    assert max(got.values()) == 1
    # owed: Amsterdam's 1 to 3 November (from 23:00 UTC on 31 October), then up to the end of
    # 5 November in UTC; the union of the two schedules' days covers exactly that span
    amsterdam = reference(ten_days, tmp_path, range(1, 4))
    utc = eventid_config(tmp_path / "utc", timezone="UTC")
    out = tmp_path / "utc" / "out"
    for day in range(1, 6):
        ten_days.run(
            "export", "--config", str(utc), "--brand", BRAND, "--period", f"2026-11-{day:02d}",
            "--out", str(out), *ten_days.cli_args(),
        )  # fmt: skip
    owed = set(amsterdam) | set(event_ids(sorted(out.glob("activity_*.csv"))))
    assert set(got) == owed
