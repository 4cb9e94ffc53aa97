"""The data a real platform sends on a bad day, on both adapters, with a load-time column.

One future-dated event, an erased customer whose address is in a bounce message and a tracked
link, a broadcast row that arrives after its send was passed, a row committed out of order far
beyond the lookback, and a row loaded "in the future". Each build runs with its own clock fixed
(var ``export_now``), as a nightly build would see it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from tests.support.bad_rows import RAW_SCHEMA
from tests.support.project import Project
from tests.support.warehouses import execute, schema_of, target_project, utc_text

ERASED_ADDRESS = "erase.me@victim.example"
ERASED_NUMBER = "EXT-7500"

RAW_TABLES = [
    *RAW_SCHEMA,
    "create table raw.erasures (brand text, customer_id bigint, erased_at timestamptz)",
    """insert into raw.broadcasts values
        (10, 'A', 'SINGLE', 'email', 'A mail', 'Hallo', '2026-11-01 08:00:00+00', null, null),
        (30, 'B', 'SINGLE', 'email', 'B mail', 'Hoi', '2026-11-01 08:00:00+00', null, null)""",
    f"""insert into raw.customers values
        ('A', 7, 'K7', 'a7@x.example'), ('B', 8, 'K8', 'b8@x.example'),
        ('A', 75, '{ERASED_NUMBER}', '{ERASED_ADDRESS}')""",
    "insert into raw.erasures values ('A', 75, timestamptz '2026-11-01 00:00:00+00')",
]


def _delivery(
    event_id: int,
    brand: str,
    broadcast_id: int,
    customer_id: int,
    registered: str,
    loaded: str,
    event_type: str = "open",
    email: str | None = None,
    url: str | None = None,
    user_agent: str | None = None,
    message: str | None = None,
) -> str:
    def text(value: str | None) -> str:
        return "null" if value is None else "'" + value.replace("'", "''") + "'"

    return (
        f"({event_id}, '{brand}', {broadcast_id}, {customer_id}, '{event_type}', "
        f"timestamptz '{registered}+00', timestamptz '{registered}+00', {text(email)}, {text(url)}, "
        f"null, null, null, {text(user_agent)}, {text(message)}, timestamptz '{loaded}+00')"
    )


# Build 1, its clock 2026-11-02 13:00: A and B up to 12:30, one event of B registered in 2999
# (a wrong clock on one ingestion node), and an erased customer's bounce and click.
BUILD_ONE = [
    _delivery(1, "A", 10, 7, "2026-11-02 12:00:00", "2026-11-02 12:01:00"),
    _delivery(2, "B", 30, 8, "2026-11-02 12:30:00", "2026-11-02 12:31:00"),
    _delivery(3, "B", 30, 8, "2999-01-01 00:00:00", "2026-11-02 12:32:00"),
    _delivery(
        4, "A", 10, 75, "2026-11-02 09:00:00", "2026-11-02 09:01:00", "hardbounce", email=ERASED_ADDRESS,
        message=f"550 5.1.1 <{ERASED_ADDRESS}>: Recipient address rejected",
    ),
    _delivery(
        5, "A", 10, 75, "2026-11-02 09:05:00", "2026-11-02 09:06:00", "click",
        url=f"https://a.example/deal?email=erase.me%40victim.example&cust={ERASED_NUMBER}",
        user_agent=f"Mailer/1.0 ({ERASED_ADDRESS})",
    ),
]  # fmt: skip
# Build 2, its clock 2026-11-03 13:00: both brands go on; a row of A committed out of order far
# beyond the six-hour lookback (loaded at 01:00 on Nov 2, when the build reads from 06:32); a row
# of A loaded "in 2027"; an event of A registered two days ahead; and A's broadcast 40, sent on
# Nov 2 08:00, whose row only arrives now, after A's watermark passed its send, without activity.
BUILD_TWO = [
    _delivery(11, "A", 10, 7, "2026-11-03 10:00:00", "2026-11-03 10:01:00"),
    _delivery(12, "B", 30, 8, "2026-11-03 12:00:00", "2026-11-03 12:01:00"),
    _delivery(13, "A", 10, 7, "2026-11-03 11:00:00", "2027-01-01 00:00:00"),
    _delivery(14, "A", 10, 7, "2026-11-02 00:30:00", "2026-11-02 01:00:00"),
    _delivery(15, "A", 10, 7, "2026-11-05 10:00:00", "2026-11-03 11:00:00"),
]
LATE_BROADCAST = (
    "insert into raw.broadcasts values "
    "(40, 'A', 'SINGLE', 'email', 'A late row', 'Later', '2026-11-02 08:00:00+00', null, null)"
)
# Build 3, its clock 2026-11-04 13:00: A goes on.
BUILD_THREE = [_delivery(21, "A", 10, 7, "2026-11-04 09:00:00", "2026-11-04 09:01:00")]
# Build 4, its clock 2026-11-05 12:00: the time of event 15 has come.
BUILD_FOUR = [_delivery(22, "B", 30, 8, "2026-11-05 09:00:00", "2026-11-05 09:01:00")]

CLOCKS = {
    "one": "2026-11-02T13:00:00+00:00",
    "two": "2026-11-03T13:00:00+00:00",
    "three": "2026-11-04T13:00:00+00:00",
    "four": "2026-11-05T12:00:00+00:00",
}


def _variables(clock: str) -> list[str]:
    return ["--vars", json.dumps({"loaded_at_column": "ingested_at", "export_now": clock})]


def _query(project: Project, sql: str) -> list[tuple] | None:
    """The rows of ``sql``, or None when a relation it reads does not exist."""
    try:
        return execute(project, [sql])
    except Exception as exc:  # the relation may not exist yet: psycopg2 or duckdb error
        if "does not exist" in str(exc) or "not found" in str(exc).lower():
            return None
        raise


def _state(project: Project) -> dict[str, object]:
    schema = schema_of(project)
    watermarks = execute(
        project,
        [
            "select brand, cast(complete_until at time zone 'UTC' as varchar), "
            f"cast(loaded_until at time zone 'UTC' as varchar) from {schema}.export_watermark order by brand"
        ],
    )
    placed = execute(
        project,
        [
            "select event_id, cast(available_at at time zone 'UTC' as varchar) "
            f"from {schema}.export_activities order by event_id"
        ],
    )
    touches = execute(
        project,
        [
            f"select cast(touched_at at time zone 'UTC' as varchar) from {schema}.export_broadcast_touches "
            "where broadcast_id = 40 order by 1"
        ],
    )
    quarantined = _query(
        project, f"select event_id, brand from {schema}.export_quarantined_events order by event_id"
    )
    return {
        "watermarks": {brand: (utc_text(until), utc_text(loaded)) for brand, until, loaded in watermarks},
        "placed": {int(event_id): utc_text(available) for event_id, available in placed},
        "touches_40": [utc_text(touched) for (touched,) in touches],
        "quarantined": None if quarantined is None else {int(e): str(b) for e, b in quarantined},
    }


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def bad_day(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, new_database: Callable[[], str]
) -> dict[str, object]:
    """Four nightly builds over a bad day's rows; the state after each."""
    project = target_project(request.param, tmp_path_factory.mktemp(f"bad_day_{request.param}"), new_database)
    if project.target == "duckdb":
        duckdb.connect(project.env["ACTIVITY_EXPORT_DUCKDB"]).close()
    states: dict[str, object] = {"project": project}
    execute(project, [*RAW_TABLES, "insert into raw.events values " + ", ".join(BUILD_ONE)])
    project.dbt("seed")
    project.dbt("run", *_variables(CLOCKS["one"]))
    states["one"] = _state(project)
    execute(project, [LATE_BROADCAST, "insert into raw.events values " + ", ".join(BUILD_TWO)])
    project.dbt("run", *_variables(CLOCKS["two"]))
    states["two"] = _state(project)
    execute(project, ["insert into raw.events values " + ", ".join(BUILD_THREE)])
    project.dbt("run", *_variables(CLOCKS["three"]))
    states["three"] = _state(project)
    execute(project, ["insert into raw.events values " + ", ".join(BUILD_FOUR)])
    project.build(*_variables(CLOCKS["four"]))
    states["four"] = _state(project)
    return states


def _build(states: dict[str, object], name: str) -> dict[str, object]:
    state = states[name]
    assert isinstance(state, dict)
    return state


# --- 1. a future-dated event ----------------------------------------------------------------------


def test_future_registered_event_moves_no_watermark(bad_day: dict[str, object]) -> None:
    one = _build(bad_day, "one")
    # B's event registered in 2999 neither moves B's watermark nor A's
    assert one["watermarks"] == {
        "A": ("2026-11-02 12:30:00", "2026-11-02 12:31:00"),
        "B": ("2026-11-02 12:30:00", "2026-11-02 12:31:00"),
    }
    assert one["quarantined"] == {3: "B"}
    assert 3 not in one["placed"]  # type: ignore[operator]


def test_rows_built_after_a_future_dated_event_keep_their_registration(bad_day: dict[str, object]) -> None:
    two = _build(bad_day, "two")
    placed = two["placed"]
    assert isinstance(placed, dict)
    assert placed[11] == "2026-11-03 10:00:00"
    assert placed[12] == "2026-11-03 12:00:00"
    assert two["watermarks"]["A"][0] == "2026-11-03 12:00:00"  # type: ignore[index]


def test_quarantined_event_is_placed_once_its_time_has_come(bad_day: dict[str, object]) -> None:
    three, four = _build(bad_day, "three"), _build(bad_day, "four")
    assert 15 not in three["placed"]  # type: ignore[operator]
    assert three["quarantined"] == {3: "B", 13: "A", 15: "A"}
    placed = four["placed"]
    assert isinstance(placed, dict)
    assert placed[15] == "2026-11-05 10:00:00"  # its registration: the period still open
    assert four["quarantined"] == {3: "B", 13: "A"}


# --- 2. an erased customer's address in free text ------------------------------------------------


def _export(project: Project, tmp_path: Path, day: str) -> list[dict[str, str]]:
    config = tmp_path / "tenants.yml"
    config.write_text(
        "tenants:\n  A:\n"
        "    extra_fields: {activity: [eventid, url, message, useragent]}\n"
        "    columns: {activity: {description: omschrijving, useragent: agent}}\n"
        f"    destination: {{type: local, root: {tmp_path / 'unused'}}}\n"
    )
    out = tmp_path / day
    project.run(
        "export", "--brand", "A", "--period", day, "--out", str(out), "--config", str(config),
        *project.cli_args(),
    )  # fmt: skip
    [activity] = out.glob("activity_*.csv")
    content = activity.read_text(encoding="utf-8")
    assert ERASED_ADDRESS not in content and "erase.me%40victim.example" not in content
    assert ERASED_NUMBER not in content
    with activity.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


def test_erased_customer_has_no_personal_data_in_any_field(
    bad_day: dict[str, object], tmp_path: Path
) -> None:
    project = bad_day["project"]
    assert isinstance(project, Project)
    rows = [row for row in _export(project, tmp_path, "2026-11-02") if row["customerid"] == "75"]
    assert [(row["eventid"], row["activity"]) for row in rows] == [("4", "HARDBOUNCE"), ("5", "CLICK")]
    for row in rows:
        assert row["broadcastid"] == "10" and row["activitydate"]
        assert [
            row[field] for field in ("externalid", "email", "omschrijving", "url", "message", "agent")
        ] == [""] * 6


# --- 3. a broadcast row that arrives late, without activity --------------------------------------


def test_late_broadcast_is_listed_in_the_first_open_period(bad_day: dict[str, object]) -> None:
    two = _build(bad_day, "two")
    # sent at Nov 2 08:00, its row arrived when A's watermark was at Nov 2 12:30
    assert two["touches_40"] == ["2026-11-02 12:30:00"]
    assert _build(bad_day, "four")["touches_40"] == ["2026-11-02 12:30:00"]


# --- 4. a row committed out of order beyond the lookback -----------------------------------------


def test_row_committed_out_of_order_beyond_the_lookback_is_placed(bad_day: dict[str, object]) -> None:
    two = _build(bad_day, "two")
    # registered on Nov 2 00:30, found after A's watermark passed Nov 2 12:30: late, not lost
    assert two["placed"][14] == "2026-11-02 12:30:00"  # type: ignore[index]


# --- 5. a future load time ------------------------------------------------------------------------


def test_future_load_time_does_not_stall_the_brand(bad_day: dict[str, object]) -> None:
    two, three = _build(bad_day, "two"), _build(bad_day, "three")
    assert two["watermarks"]["A"] == ("2026-11-03 12:00:00", "2026-11-03 12:01:00")  # type: ignore[index]
    assert 13 not in two["placed"]  # type: ignore[operator]
    assert three["placed"][21] == "2026-11-04 09:00:00"  # type: ignore[index]
    assert three["watermarks"]["A"] == ("2026-11-04 09:00:00", "2026-11-04 09:01:00")  # type: ignore[index]


# --- a deployment whose watermark a build before the quarantine pushed into the future ----------

REPAIR_CLOCK = "2026-11-06T12:00:00+00:00"


@pytest.fixture(scope="module")
def repaired(bad_day: dict[str, object]) -> dict[str, object]:
    """A build that trusted every row (its clock in the year 3000, as every build before the
    quarantine did), a row that a build then no longer reads, the documented repair, a build."""
    project = bad_day["project"]
    assert isinstance(project, Project)
    states: dict[str, object] = {}
    project.dbt("run", *_variables("3000-01-01T00:00:00+00:00"))
    states["pushed"] = _state(project)
    execute(
        project,
        [
            "insert into raw.events values "
            + _delivery(31, "A", 10, 7, "2026-11-06 09:00:00", "2026-11-06 09:01:00")
        ],
    )
    project.dbt("run", *_variables(REPAIR_CLOCK))
    states["stalled"] = _state(project)
    project.dbt("run-operation", "repair_future_watermarks", *_variables(REPAIR_CLOCK))
    project.build(*_variables(REPAIR_CLOCK))
    states["repaired"] = _state(project)
    return states


def test_repair_brings_a_future_watermark_back_to_the_build_clock(repaired: dict[str, object]) -> None:
    pushed, stalled, after = repaired["pushed"], repaired["stalled"], repaired["repaired"]
    assert isinstance(pushed, dict) and isinstance(stalled, dict) and isinstance(after, dict)
    assert pushed["watermarks"]["A"] == ("2999-01-01 00:00:00", "2027-01-01 00:00:00")
    assert 31 not in stalled["placed"]  # the stall the repair is for
    assert after["watermarks"] == {
        "A": ("2026-11-06 12:00:00", "2026-11-06 09:01:00"),
        "B": ("2026-11-06 12:00:00", "2026-11-06 09:01:00"),
    }
    # the current period, still open: nothing already delivered changes
    assert after["placed"][31] == "2026-11-06 12:00:00"
