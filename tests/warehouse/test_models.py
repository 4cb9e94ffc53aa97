"""The dbt models: exactly-once across incremental runs, the same rows as a fresh build, index
range scans for the loader's slices on PostgreSQL, a clean sqlfluff lint and buildable docs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from tests.support.bad_rows import RAW_SCHEMA
from tests.support.project import BIN, ROOT, Project, make_project, own_duckdb
from tests.support.warehouses import execute, schema_of, target_project, utc_text

RELATIONS = {
    "export_activities": "event_id",
    "export_broadcasts": "broadcast_id",
    "export_broadcast_touches": "broadcast_id, touched_at",
    "export_held_events": "event_id",
    "export_watermark": "brand",
}


def _rows(project: Project, relation: str, order: str) -> list[tuple]:
    return execute(project, [f"select * from {schema_of(project)}.{relation} order by {order}"])


# --- an incremental run adding a day gives what a fresh build of everything gives ----------------

AS_OF_VIEWS = [
    "create schema raw_asof",
    "create view raw_asof.broadcasts as select * from raw.broadcasts",
    "create view raw_asof.customers as select * from raw.customers",
    # what the platform held at 2026-11-03 06:00 UTC: the nightly build of the day before
    "create view raw_asof.events as select * from raw.events "
    "where registered_at < timestamptz '2026-11-03 06:00:00+00'",
]
GENERATE = ["--brands", "BRANDNAAM,MODEHUIS", "--days", "3", "--events-per-day", "600"]


@pytest.mark.parametrize("target", ["duckdb", "postgres"])
def test_incremental_run_adding_a_day_equals_a_fresh_build(
    target: str, tmp_path: Path, new_database: Callable[[], str]
) -> None:
    incremental = target_project(target, tmp_path / "incremental", new_database)
    incremental.run("generate", *GENERATE, *incremental.cli_args())
    execute(incremental, AS_OF_VIEWS)
    incremental.build("--vars", "{raw_schema: raw_asof}")
    before = _rows(incremental, "export_activities", "event_id")
    incremental.build()

    if target == "postgres":  # same raw data, another schema for the fresh build
        fresh = make_project(tmp_path / "fresh", target, incremental.env["PGDATABASE"], "analytics_fresh")
    else:
        fresh = make_project(tmp_path / "fresh", target)
        fresh.run("generate", *GENERATE, *fresh.cli_args())
    fresh.build()

    assert 0 < len(before) < len(_rows(fresh, "export_activities", "event_id"))
    for relation, order in RELATIONS.items():
        assert _rows(incremental, relation, order) == _rows(fresh, relation, order), relation


# --- duplicates and late registrations across runs, on small literal tables ----------------------

RAW_TABLES = [
    "create schema raw",
    """create table raw.broadcasts (
        broadcast_id bigint, brand text, broadcast_type text, channel text, description text,
        subject text, sent_at timestamptz, campaign_id bigint, from_address text)""",
    "create table raw.customers (brand text, customer_id bigint, external_id text, email text)",
    """create table raw.events (
        event_id bigint, brand text, broadcast_id bigint, customer_id bigint, event_type text,
        occurred_at timestamptz, registered_at timestamptz, email text, url text, os text,
        device text, browser text, user_agent text, message text)""",
    """insert into raw.broadcasts values
        (10, 'A', 'SINGLE', 'email', 'Nieuwsbrief', 'Hallo', '2026-11-01 08:00:00+00', null, null),
        (20, 'A', 'SINGLE', 'sms', 'Sms', null, '2026-11-01 08:00:00+00', null, null)""",
    "insert into raw.customers values ('A', 7, 'K7', 'klant7@a.example')",
]


def _event(event_id: int, event_type: str, occurred: str, registered: str, broadcast_id: int = 10) -> str:
    return (
        f"({event_id}, 'A', {broadcast_id}, 7, '{event_type}', timestamptz '{occurred}+00', "
        f"timestamptz '{registered}+00', null, null, null, null, null, null, null)"
    )


FIRST_RUN = [
    _event(1, "open", "2026-11-01 09:00:00", "2026-11-01 09:00:10"),
    _event(2, "click", "2026-11-01 21:59:00", "2026-11-01 22:00:30"),
    _event(9, "open", "2026-11-01 10:00:00", "2026-11-01 10:00:05", broadcast_id=20),
]
SECOND_RUN = [
    # event 1 delivered again the next day: built before the lookback window
    _event(1, "open", "2026-11-01 09:00:00", "2026-11-02 10:00:00"),
    # event 2 delivered again 90 seconds later: inside the window
    _event(2, "click", "2026-11-01 21:59:00", "2026-11-01 22:02:00"),
    # happened on Nov 1 (22:00 in Amsterdam), registered on Nov 2 (02:00 in Amsterdam)
    _event(3, "softbounce", "2026-11-01 21:00:00", "2026-11-02 01:00:00"),
    _event(4, "open", "2026-11-02 11:00:00", "2026-11-02 12:00:00"),
]


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def two_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, new_database: Callable[[], str]
) -> Project:
    """Raw data built once, then more deliveries built incrementally."""
    project = target_project(
        request.param, tmp_path_factory.mktemp(f"two_runs_{request.param}"), new_database
    )
    if project.target == "duckdb":
        duckdb.connect(project.env["ACTIVITY_EXPORT_DUCKDB"]).close()
    execute(project, [*RAW_TABLES, "insert into raw.events values " + ", ".join(FIRST_RUN)])
    project.build()
    execute(project, ["insert into raw.events values " + ", ".join(SECOND_RUN)])
    project.build()
    return project


def _registered(project: Project) -> dict[int, str]:
    rows = execute(
        project,
        [
            "select event_id, cast(registered_at at time zone 'UTC' as varchar) "
            f"from {schema_of(project)}.export_activities order by event_id"
        ],
    )
    return {event_id: str(registered)[:19] for event_id, registered in rows}


def test_duplicate_delivered_in_a_later_run_neither_duplicates_nor_moves_the_event(two_runs: Project) -> None:
    registered = _registered(two_runs)
    assert registered == {
        1: "2026-11-01 09:00:10",
        2: "2026-11-01 22:00:30",
        3: "2026-11-02 01:00:00",
        4: "2026-11-02 12:00:00",
    }
    assert 9 not in registered  # an sms broadcast's event


def _period_events(project: Project, start_utc: str, end_utc: str) -> list[int]:
    """The event ids of brand A's activity file for [start, end), sliced as the loader does."""
    rows = execute(
        project,
        [
            f"select event_id from {schema_of(project)}.export_activities where brand = 'A' "
            f"and available_at >= timestamptz '{start_utc}+00' and available_at < timestamptz '{end_utc}+00' "
            "order by event_id"
        ],
    )
    return [row[0] for row in rows]


def test_late_registered_event_lands_in_next_period(two_runs: Project) -> None:
    # Europe/Amsterdam days: Nov 1 is [Oct 31 23:00, Nov 1 23:00) UTC
    assert _period_events(two_runs, "2026-10-31 23:00:00", "2026-11-01 23:00:00") == [1, 2]
    assert _period_events(two_runs, "2026-11-01 23:00:00", "2026-11-02 23:00:00") == [3, 4]
    touches = execute(
        two_runs,
        [
            f"select count(*) from {schema_of(two_runs)}.export_broadcast_touches where broadcast_id = 10 "
            "and touched_at >= timestamptz '2026-11-01 23:00:00+00' "
            "and touched_at < timestamptz '2026-11-02 23:00:00+00'"
        ],
    )
    assert touches[0][0] > 0  # so broadcast 10 is in Nov 2's broadcast file too
    watermark = execute(
        two_runs,
        [
            f"select brand, cast(complete_until at time zone 'UTC' as varchar) from {schema_of(two_runs)}.export_watermark"
        ],
    )
    assert [(brand, str(until)[:19]) for brand, until in watermark] == [("A", "2026-11-02 12:00:00")]


# --- late loads, holds and the per-brand watermark across builds ---------------------------------

LATE_RAW_TABLES = [
    *RAW_SCHEMA,
    """insert into raw.broadcasts values
        (10, 'A', 'SINGLE', 'email', 'A mail', 'Hallo', '2026-11-01 08:00:00+00', null, null),
        (20, 'A', 'SINGLE', 'sms', 'A sms', null, '2026-11-01 08:00:00+00', null, null),
        (30, 'B', 'SINGLE', 'email', 'B mail', 'Hoi', '2026-11-01 08:00:00+00', null, null),
        (50, 'C', 'SINGLE', 'email', 'C mail', 'Dag', '2026-11-01 08:00:00+00', null, null)""",
    "insert into raw.customers values ('A', 7, 'K7', 'a7@x.example'), ('B', 8, 'K8', 'b8@x.example'), "
    "('C', 9, 'K9', 'c9@x.example')",
]


def _delivery(
    event_id: int, brand: str, broadcast_id: int, customer_id: int, registered: str, loaded: str
) -> str:
    return (
        f"({event_id}, '{brand}', {broadcast_id}, {customer_id}, 'open', timestamptz '{registered}+00', "
        f"timestamptz '{registered}+00', null, null, null, null, null, null, null, timestamptz '{loaded}+00')"
    )


# Night 1: A, B and C up to 2026-11-02 12:30 (and an sms event, never exported nor held).
NIGHT_ONE = [
    _delivery(1, "A", 10, 7, "2026-11-01 09:00:00", "2026-11-01 09:01:00"),
    _delivery(2, "B", 30, 8, "2026-11-01 10:00:00", "2026-11-01 10:01:00"),
    _delivery(3, "A", 10, 7, "2026-11-02 12:00:00", "2026-11-02 12:01:00"),
    _delivery(4, "B", 30, 8, "2026-11-02 12:30:00", "2026-11-02 12:31:00"),
    _delivery(5, "C", 50, 9, "2026-11-02 11:00:00", "2026-11-02 11:01:00"),
    _delivery(6, "A", 20, 7, "2026-11-02 11:00:00", "2026-11-02 11:01:00"),
]
# Night 2: a late load (registered on Nov 1, two days before it reached the warehouse: far beyond
# the six-hour lookback), an event whose broadcast has not arrived (holds A), one whose customer
# has not arrived (holds B), and C going on.
NIGHT_TWO = [
    _delivery(11, "A", 10, 7, "2026-11-01 08:00:00", "2026-11-03 13:00:00"),
    _delivery(12, "A", 40, 7, "2026-11-03 10:00:00", "2026-11-03 13:00:00"),
    _delivery(13, "B", 30, 99, "2026-11-03 11:00:00", "2026-11-03 13:00:00"),
    _delivery(14, "C", 50, 9, "2026-11-03 12:00:00", "2026-11-03 13:00:00"),
    _delivery(15, "A", 10, 7, "2026-11-03 12:00:00", "2026-11-03 13:00:00"),
    # a second delivery of an event built on night 1: no new row, nothing moves
    _delivery(3, "A", 10, 7, "2026-11-03 12:30:00", "2026-11-03 13:00:00"),
]
# Night 3: the missing broadcast and customer rows arrive; C goes on.
NIGHT_THREE_ROWS = [
    "insert into raw.broadcasts values "
    "(40, 'A', 'SINGLE', 'email', 'A late row', 'Later', '2026-11-03 09:00:00+00', null, null)",
    "insert into raw.customers values ('B', 99, 'K99', 'b99@x.example')",
]
NIGHT_THREE = [_delivery(16, "C", 50, 9, "2026-11-04 09:00:00", "2026-11-04 09:01:00")]


def _watermarks(project: Project) -> dict[str, tuple[str | None, int, str | None]]:
    rows = execute(
        project,
        [
            "select brand, cast(complete_until at time zone 'UTC' as varchar), held_events, "
            f"cast(held_since at time zone 'UTC' as varchar) from {schema_of(project)}.export_watermark "
            "order by brand"
        ],
    )
    return {brand: (utc_text(until), int(held), utc_text(since)) for brand, until, held, since in rows}


def _placed(project: Project) -> dict[int, tuple[str, str]]:
    rows = execute(
        project,
        [
            "select event_id, cast(registered_at at time zone 'UTC' as varchar), "
            f"cast(available_at at time zone 'UTC' as varchar) from {schema_of(project)}.export_activities "
            "order by event_id"
        ],
    )
    return {event_id: (str(registered)[:19], str(available)[:19]) for event_id, registered, available in rows}


def _held(project: Project) -> dict[int, str]:
    rows = execute(
        project, [f"select event_id, missing from {schema_of(project)}.export_held_events order by 1"]
    )
    return {int(event_id): str(missing) for event_id, missing in rows}


READERS = textwrap.dedent(
    """
    import json
    import sys
    from datetime import datetime, timezone
    from pathlib import Path

    from activity_export.warehouse import (
        connect, period_counts, read_held_events, read_watermark, read_watermarks, resolve_target,
    )

    target = resolve_target(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
    nov = lambda day, hour: datetime(2026, 11, day, hour, tzinfo=timezone.utc)
    with connect(target) as warehouse:
        watermarks = read_watermarks(warehouse)
        print(json.dumps({
            "watermarks": {b: [w.complete_until.isoformat(), w.held_events, w.held_since and
                               w.held_since.isoformat()] for b, w in watermarks.items()},
            "brand_a": read_watermark(warehouse, "A").isoformat(),
            "lowest": read_watermark(warehouse).isoformat(),
            "unknown": read_watermark(warehouse, "NOBODY"),
            "held_a": [[e.event_id, e.broadcast_id, e.missing, e.registered_at.isoformat()]
                       for e in read_held_events(warehouse, "A")],
            # Amsterdam days: Nov 2 is [Nov 1 23:00, Nov 2 23:00) UTC, Nov 3 the next
            "nov_2": list(vars(period_counts(warehouse, "A", nov(1, 23), nov(2, 23))).values()),
            "nov_3": list(vars(period_counts(warehouse, "A", nov(2, 23), nov(3, 23))).values()),
        }))
    """
)


def _loader_readers(project: Project) -> dict[str, object]:
    """What the loader's warehouse readers return, run as the loader runs (its own process)."""
    completed = subprocess.run(
        [str(BIN / "python"), "-c", READERS, str(ROOT), str(project.profiles_dir), project.target],
        env=project.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, object] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


# Both adapters and both ways of finding new deliveries, in two runs of four dbt builds each:
# DuckDB without a load-time column, PostgreSQL with one.
@pytest.fixture(
    scope="module",
    params=[("duckdb", "registered_at"), ("postgres", "loaded_at")],
    ids=lambda param: f"{param[0]}-{param[1]}",
)
def three_nights(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, new_database: Callable[[], str]
) -> dict[str, object]:
    """Three nightly builds over late loads and holds; the state after each, per adapter and with
    (var loaded_at_column) or without a load-time column."""
    target, mode = request.param
    project = target_project(target, tmp_path_factory.mktemp(f"three_nights_{target}_{mode}"), new_database)
    if project.target == "duckdb":
        duckdb.connect(project.env["ACTIVITY_EXPORT_DUCKDB"]).close()
    variables = ["--vars", "{loaded_at_column: ingested_at}"] if mode == "loaded_at" else []
    states: dict[str, object] = {"project": project, "variables": variables}
    execute(project, [*LATE_RAW_TABLES, "insert into raw.events values " + ", ".join(NIGHT_ONE)])
    project.dbt("seed")
    project.dbt("run", *variables)
    states["one"] = (_watermarks(project), _placed(project), _held(project))
    execute(project, ["insert into raw.events values " + ", ".join(NIGHT_TWO)])
    project.dbt("run", *variables)
    states["two"] = (_watermarks(project), _placed(project), _held(project))
    states["readers_two"] = _loader_readers(project)
    execute(project, [*NIGHT_THREE_ROWS, "insert into raw.events values " + ", ".join(NIGHT_THREE)])
    project.build(*variables)
    states["three"] = (_watermarks(project), _placed(project), _held(project))
    return states


def test_late_load_lands_in_first_unexported_period_once(three_nights: dict[str, object]) -> None:
    watermarks_one, _placed_one, _ = three_nights["one"]  # type: ignore[misc]
    assert watermarks_one == {
        "A": ("2026-11-02 12:30:00", 0, None),
        "B": ("2026-11-02 12:30:00", 0, None),
        "C": ("2026-11-02 12:30:00", 0, None),
    }
    _, placed_two, _ = three_nights["two"]  # type: ignore[misc]
    # registered on Nov 1, loaded after A's watermark had passed Nov 2 12:30: available from
    # there, so in the file of Nov 2 (Amsterdam), which cannot have been exported yet
    assert placed_two[11] == ("2026-11-01 08:00:00", "2026-11-02 12:30:00")
    # on-time rows keep their registration; the second delivery of event 3 moved nothing
    assert placed_two[3] == ("2026-11-02 12:00:00", "2026-11-02 12:00:00")
    assert placed_two[15] == ("2026-11-03 12:00:00", "2026-11-03 12:00:00")
    assert 6 not in placed_two  # an sms event
    _, placed_three, _ = three_nights["three"]  # type: ignore[misc]
    assert {event_id: placed_three[event_id] for event_id in placed_two} == placed_two  # nothing moved


def test_event_without_broadcast_or_customer_holds_only_its_brand(three_nights: dict[str, object]) -> None:
    watermarks_two, placed_two, held_two = three_nights["two"]  # type: ignore[misc]
    assert held_two == {12: "broadcast", 13: "customer"}
    assert 12 not in placed_two and 13 not in placed_two
    assert watermarks_two == {
        "A": ("2026-11-03 10:00:00", 1, "2026-11-03 10:00:00"),  # stops at its held event
        "B": ("2026-11-03 11:00:00", 1, "2026-11-03 11:00:00"),
        "C": ("2026-11-03 12:00:00", 0, None),  # goes on
    }


def test_loader_reads_watermarks_holds_and_period_counts(three_nights: dict[str, object]) -> None:
    readers = three_nights["readers_two"]
    assert readers == {
        "watermarks": {
            "A": ["2026-11-03T10:00:00+00:00", 1, "2026-11-03T10:00:00+00:00"],
            "B": ["2026-11-03T11:00:00+00:00", 1, "2026-11-03T11:00:00+00:00"],
            "C": ["2026-11-03T12:00:00+00:00", 0, None],
        },
        "brand_a": "2026-11-03T10:00:00+00:00",
        "lowest": "2026-11-03T10:00:00+00:00",
        "unknown": None,
        "held_a": [[12, 40, "broadcast", "2026-11-03T10:00:00+00:00"]],
        "nov_2": [1, 0],  # event 11, registered Nov 1, is late in Nov 2's file
        "nov_3": [0, 1],  # event 12, registered Nov 3, is held
    }


def test_held_event_is_exported_once_its_row_arrives(three_nights: dict[str, object]) -> None:
    watermarks_three, placed_three, held_three = three_nights["three"]  # type: ignore[misc]
    assert held_three == {}
    assert placed_three[12] == ("2026-11-03 10:00:00", "2026-11-03 10:00:00")
    assert placed_three[13] == ("2026-11-03 11:00:00", "2026-11-03 11:00:00")
    assert watermarks_three == dict.fromkeys("ABC", ("2026-11-04 09:00:00", 0, None))
    project = three_nights["project"]
    assert isinstance(project, Project)
    touches = execute(
        project,
        [
            f"select count(*) from {schema_of(project)}.export_broadcast_touches where broadcast_id = 40 "
            "and touched_at = timestamptz '2026-11-03 10:00:00+00'"
        ],
    )
    assert touches == [(1,)]  # so broadcast 40 is in the broadcast file beside its activity


def test_watermark_never_goes_back(three_nights: dict[str, object]) -> None:
    """A build that sees less (here: raw tables emptied) leaves every watermark where it was."""
    project = three_nights["project"]
    assert isinstance(project, Project)
    variables = three_nights["variables"]
    assert isinstance(variables, list)
    before, placed = _watermarks(project), _placed(project)
    execute(
        project,
        [
            "create schema raw_shrunk",
            "create view raw_shrunk.broadcasts as select * from raw.broadcasts",
            "create view raw_shrunk.customers as select * from raw.customers",
            "create view raw_shrunk.events as select * from raw.events "
            "where registered_at < timestamptz '2026-11-02 00:00:00+00'",
        ],
    )
    shrunk = json.dumps(
        {"raw_schema": "raw_shrunk", **({"loaded_at_column": "ingested_at"} if variables else {})}
    )
    project.dbt("run", "--vars", shrunk)
    assert _watermarks(project) == before
    assert _placed(project) == placed


def test_export_file_holds_the_late_row_once(three_nights: dict[str, object], tmp_path: Path) -> None:
    """Through the loader: the late row is in Nov 2's activity file, the file of its
    registration day (Nov 1) does not have it, and no file has an event twice."""
    project = three_nights["project"]
    assert isinstance(project, Project)
    config = tmp_path / "tenants.yml"
    config.write_text(
        "tenants:\n  A:\n    extra_fields: {activity: [eventid]}\n"
        f"    destination: {{type: local, root: {tmp_path / 'unused'}}}\n"
    )
    seen: list[str] = []
    for day in ("2026-11-01", "2026-11-02", "2026-11-03"):
        out = tmp_path / day
        project.run(
            "export",
            "--brand",
            "A",
            "--period",
            day,
            "--out",
            str(out),
            "--config",
            str(config),
            *project.cli_args(),
        )
        [activity] = out.glob("activity_*.csv")
        ids = [line.split(";")[-1] for line in activity.read_text().splitlines()[1:]]
        seen += ids
        if day == "2026-11-01":
            assert "11" not in ids
        if day == "2026-11-02":
            assert "11" in ids
    assert sorted(seen) == sorted(set(seen))
    assert sorted(int(event_id) for event_id in seen) == [1, 3, 11, 12, 15]


# --- the loader's slices are index range scans on PostgreSQL -------------------------------------

CAPTURE_QUERIES = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    from pathlib import Path
    from types import SimpleNamespace

    from activity_export import catalogue
    from activity_export.warehouse import connect, period_counts, resolve_target
    from activity_export.writer import activity_query, broadcast_query

    fields = {
        "activity": ["broadcastid", "customerid", "externalid", "email", "activity", "activitydate",
                     "description"],
        "broadcast": ["broadcastid", "broadcasttype", "description", "subject", "sentdate"],
    }
    tenant = SimpleNamespace(brand="MODEHUIS", timezone="Europe/Amsterdam", format="csv", timestamps="local",
                             fields=lambda kind: fields[kind], titles=lambda kind: fields[kind],
                             catalogue=catalogue.load(Path(sys.argv[1])))
    period = SimpleNamespace(start_utc=datetime(2026, 11, 5, 23, tzinfo=timezone.utc),
                             end_utc=datetime(2026, 11, 6, 23, tzinfo=timezone.utc))
    target = resolve_target(Path(sys.argv[1]), Path(sys.argv[2]), "postgres")
    with connect(target) as warehouse:
        print("pg_use_ctid_scan=" + str(warehouse.con.execute(
            "select current_setting('pg_use_ctid_scan')").fetchone()[0]), flush=True)
        if sys.argv[3] == "without-ctid-scan":
            warehouse.con.execute("set pg_use_ctid_scan = false")
        warehouse.con.execute("set pg_debug_show_queries = true")
        warehouse.con.execute("begin transaction")
        for query in (activity_query(warehouse, tenant, period), broadcast_query(warehouse, tenant, period)):
            warehouse.con.execute(f"copy ({query}) to '{sys.argv[4]}' (format csv)")
        period_counts(warehouse, tenant.brand, period.start_utc, period.end_utc)
        warehouse.con.execute("commit")
    """
)


@pytest.fixture(scope="module")
def indexed_postgres(tmp_path_factory: pytest.TempPathFactory, new_database: Callable[[], str]) -> Project:
    """Three brands, ten days: export_activities spans a few thousand pages."""
    project = make_project(tmp_path_factory.mktemp("indexed"), "postgres", new_database(), "analytics")
    project.run(
        "generate",
        "--brands",
        "BRANDNAAM,MODEHUIS,ZEEBRUG",
        "--days",
        "10",
        "--events-per-day",
        "4000",
        *project.cli_args(),
    )
    project.build()
    execute(project, ["analyze"])
    return project


def _loader_queries(project: Project, mode: str, tmp_path: Path) -> tuple[str, list[str]]:
    completed = subprocess.run(
        [
            str(BIN / "python"),
            "-c",
            CAPTURE_QUERIES,
            str(ROOT),
            str(project.profiles_dir),
            mode,
            str(tmp_path / "slice.csv"),
        ],
        env=project.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    setting = re.search(r"pg_use_ctid_scan=(\w+)", completed.stdout)
    # pg_debug_show_queries prints what the extension sends to PostgreSQL (on stderr)
    sent = completed.stdout + completed.stderr
    copies = re.findall(r"^COPY \((SELECT .*)\) TO STDOUT", sent, flags=re.MULTILINE)
    return (setting.group(1) if setting else ""), copies


def _plans(project: Project, queries: list[str]) -> dict[str, list[str]]:
    plans: dict[str, list[str]] = {}
    for query in queries:
        table = re.search(r'from "\w+"\."(\w+)"', query, flags=re.IGNORECASE)
        assert table, query
        rows = execute(project, [f"explain {query}"])
        plans.setdefault(table.group(1), []).append("\n".join(row[0] for row in rows))
    return plans


def test_loader_slice_queries_are_index_range_scans_on_postgres(
    indexed_postgres: Project, tmp_path: Path
) -> None:
    """What DuckDB's postgres extension sends for one brand-day, with ctid-range scans off (the
    setting the loader needs, see docs/models.md), plans as index scans; enable_seqscan untouched."""
    _setting, queries = _loader_queries(indexed_postgres, "without-ctid-scan", tmp_path)
    pages = execute(indexed_postgres, ["select relpages from pg_class where relname = 'export_activities'"])
    assert pages[0][0] > 1000  # more than one of DuckDB's ctid tasks (pg_pages_per_task)
    plans = _plans(indexed_postgres, queries)
    # the loader hands PostgreSQL the whole filtered, ordered slice (postgres_query): one query
    # per file, the broadcast one reading the touches through their index in a subquery; and
    # the period's late and held counts, the late rows through the partial index holding only
    # rows placed after their registration (not the period's every row, nor every brand's)
    assert sorted(plans) == ["export_activities", "export_broadcasts"]
    assert len(plans["export_activities"]) == 2
    activity_slice, late_count = plans["export_activities"]
    slices = [
        (activity_slice, "export_activities_brand_available_at_idx"),
        (late_count, "export_activities_brand_available_at_registered_at_idx"),
    ]
    slices += [(plan, "export_broadcast_touches_brand_touched_at_idx") for plan in plans["export_broadcasts"]]
    for plan, index in slices:
        assert 'COLLATE "C"' in plan, plan  # the index's collation
        assert re.search(rf"Index (Only )?Scan (on|using) {index} ", plan), plan
        assert (
            "Seq Scan on export_activities" not in plan and "Seq Scan on export_broadcast_touches" not in plan
        ), plan
    print(json.dumps(plans, indent=2))


def test_loader_connection_does_not_split_scans_into_ctid_ranges(
    indexed_postgres: Project, tmp_path: Path
) -> None:
    setting, queries = _loader_queries(indexed_postgres, "as-configured", tmp_path)
    assert setting.lower() == "false"
    assert not [query for query in queries if "ctid" in query]


def test_duckdb_export_relations_are_stored_in_brand_order(built_duckdb: Project) -> None:
    """DuckDB skips other brands' row groups by their min/max only when rows are stored in brand
    order (`cluster_by`): a build inserts its rows sorted, so one brand's slice reads a few row
    groups, not the brand column of every one (docs/models.md)."""
    with duckdb.connect(built_duckdb.env["ACTIVITY_EXPORT_DUCKDB"], read_only=True) as con:
        for table in ("export_activities", "export_broadcast_touches", "export_broadcasts"):
            found = con.execute(
                "select count(distinct brand), count(*) filter (where brand < previous) "
                f"from (select brand, lag(brand) over (order by rowid) as previous from {table})"
            ).fetchone()
            assert found is not None
            brands, out_of_order = found
            assert brands > 1, table
            assert out_of_order == 0, f"{table}: {out_of_order} rows stored after a later brand"


# --- warnings, docs and lint -----------------------------------------------------------------------


def test_known_event_types_build_without_warnings(built_duckdb: Project) -> None:
    """The seed lists every type the platform sends (`forward` as not exported), so the
    relationships test warns only about a type nobody has decided on yet."""
    completed = built_duckdb.dbt("test", "--select", "base_platform__event_deliveries")
    assert re.search(r"PASS relationships_base_platform__event_deliveries_event_type", completed.stdout), (
        completed.stdout
    )
    assert "WARN=0" in completed.stdout


def test_project_governance_as_documented(built_duckdb: Project) -> None:
    """Freshness on every source, export models public in an owned group, and one version number
    for the dbt project and the Python package."""
    import tomllib

    import yaml

    manifest = json.loads((Path(built_duckdb.env["DBT_TARGET_PATH"]) / "manifest.json").read_text())
    sources = {node["name"]: node for node in manifest["sources"].values()}
    assert sorted(sources) == ["broadcasts", "customers", "erasures", "events"]
    for name, node in sources.items():
        freshness = node["freshness"] or {}
        assert (freshness.get("warn_after") or {}).get("count"), name
        assert node.get("loaded_at_field") or node.get("loaded_at_query"), name
    exports = {
        node["name"]: node for node in manifest["nodes"].values() if node["name"].startswith("export_")
    }
    assert {"export_activities", "export_held_events", "export_watermark"} <= set(exports)
    for name, node in exports.items():
        if node["resource_type"] == "model":
            assert (node["access"], node["group"]) == ("public", "activity_export"), name
            assert node["config"]["contract"]["enforced"], name
    assert manifest["groups"]["group.activity_export.activity_export"]["owner"]["name"]
    project = yaml.safe_load((ROOT / "dbt_project.yml").read_text())
    package = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert project["version"] == package
    assert project["require-dbt-version"]


def test_source_freshness_passes_on_generated_data(duckdb_project: Project, tmp_path: Path) -> None:
    """Generated data holds every source table of the contract, the optional raw.erasures too
    (empty), so `dbt source freshness` checks all four and passes, a warning at most."""
    # freshness compares with the real clock: the data ends this morning (UTC)
    first = datetime.now(UTC).date() - timedelta(days=3)
    project = own_duckdb(duckdb_project, tmp_path)
    project.run(
        "generate", "--brands", "BRANDNAAM,MODEHUIS", "--days", "3", "--events-per-day", "300",
        "--start", first.isoformat(), *project.cli_args(),
    )  # fmt: skip
    project.build()
    freshness = project.dbt("source", "freshness")  # fails the test unless it exits 0
    for table in ("broadcasts", "customers", "events", "erasures"):
        assert f"freshness of platform.{table}" in freshness.stdout, table
    assert "ERROR" not in freshness.stdout, freshness.stdout


def test_dbt_docs_generate_succeeds(built_duckdb: Project) -> None:
    built_duckdb.dbt("docs", "generate")
    catalog = json.loads((Path(built_duckdb.env["DBT_TARGET_PATH"]) / "catalog.json").read_text())
    assert "model.activity_export.export_activities" in catalog["nodes"]


def test_sqlfluff_lint_is_clean(tmp_path: Path) -> None:
    project = make_project(tmp_path, "duckdb")
    env = dict(project.env, DBT_PROFILES_DIR=str(project.profiles_dir))
    completed = subprocess.run(
        [str(BIN / "sqlfluff"), "lint", "models", "macros", "tests/dbt", "--format", "json", "--nofail"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(completed.stdout[completed.stdout.index("[") :])
    problems = [
        f"{result['filepath']}:{violation['start_line_no']} {violation['code']} {violation['description']}"
        for result in results
        for violation in result["violations"]
    ]
    assert not problems, "\n".join(problems)
    assert any(result["filepath"].endswith("export_activities.sql") for result in results)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
