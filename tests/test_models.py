"""The dbt models: exactly-once across incremental runs, the same rows as a fresh build, index
range scans for the loader's slices on PostgreSQL, a clean sqlfluff lint and buildable docs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from tests.conftest import BIN, ROOT, Project, pg_connect, pg_settings

RELATIONS = {
    "export_activities": "event_id",
    "export_broadcasts": "broadcast_id",
    "export_broadcast_touches": "broadcast_id, touched_at",
    "export_held_events": "event_id",
    "export_watermark": "brand",
}


def _project(tmp: Path, target: str, database: str | None = None, schema: str = "analytics") -> Project:
    """A dbt target of its own: a DuckDB file in ``tmp``, or ``schema`` in a PostgreSQL database."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop("DBT_PROFILES_DIR", None)
    env.update(
        DBT_TARGET_PATH=str(tmp / "target"),
        DBT_LOG_PATH=str(tmp / "logs"),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        ACTIVITY_EXPORT_DUCKDB=str(tmp / "warehouse.duckdb"),
    )
    if database is not None:
        settings = pg_settings()
        env.update(PGDATABASE=database, DBT_SCHEMA=schema, PGHOST=settings["host"], PGPORT=settings["port"])
        env["PGUSER"] = settings["user"]
    profiles = tmp / "profiles"
    profiles.mkdir(exist_ok=True)
    shutil.copy(ROOT / "profiles.yml.example", profiles / "profiles.yml")
    return Project(target, profiles, env)


def _schema(project: Project) -> str:
    return project.env.get("DBT_SCHEMA", "analytics") if project.target == "postgres" else "main"


def _execute(project: Project, statements: list[str]) -> list[tuple]:
    """Run statements on the project's warehouse; the rows of the last one."""
    rows: list[tuple] = []
    if project.target == "postgres":
        con = pg_connect(project.env["PGDATABASE"])
        con.autocommit = True
        with con.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
                rows = cursor.fetchall() if cursor.description else []
        con.close()
    else:
        with duckdb.connect(project.env["ACTIVITY_EXPORT_DUCKDB"]) as con:
            con.execute("set timezone = 'UTC'")
            for statement in statements:
                rows = con.execute(statement).fetchall()
    return rows


def _rows(project: Project, relation: str, order: str) -> list[tuple]:
    return _execute(project, [f"select * from {_schema(project)}.{relation} order by {order}"])


@pytest.fixture(scope="module")
def new_database() -> Iterator[Callable[[], str]]:
    """Creates fresh PostgreSQL databases on demand; drops them after the module."""
    admin = pg_connect(os.environ.get("PGADMINDB", "postgres"))
    admin.autocommit = True
    created: list[str] = []

    def create() -> str:
        name = f"aexp_models_{uuid.uuid4().hex[:10]}"
        with admin.cursor() as cursor:
            cursor.execute(f'create database "{name}"')
        created.append(name)
        return name

    yield create
    with admin.cursor() as cursor:
        for name in created:
            cursor.execute(f'drop database if exists "{name}" with (force)')
    admin.close()


def _make_project(
    target: str, tmp: Path, new_database: Callable[[], str], schema: str = "analytics"
) -> Project:
    return _project(tmp, target, new_database() if target == "postgres" else None, schema)


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
    incremental = _make_project(target, tmp_path / "incremental", new_database)
    incremental.run("generate", *GENERATE, *incremental.cli_args())
    _execute(incremental, AS_OF_VIEWS)
    incremental.dbt("build", "--vars", "{raw_schema: raw_asof}")
    before = _rows(incremental, "export_activities", "event_id")
    incremental.dbt("build")

    if target == "postgres":  # same raw data, another schema for the fresh build
        fresh = _project(tmp_path / "fresh", target, incremental.env["PGDATABASE"], "analytics_fresh")
    else:
        fresh = _project(tmp_path / "fresh", target)
        fresh.run("generate", *GENERATE, *fresh.cli_args())
    fresh.dbt("build")

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
    project = _make_project(request.param, tmp_path_factory.mktemp(f"two_runs_{request.param}"), new_database)
    if project.target == "duckdb":
        duckdb.connect(project.env["ACTIVITY_EXPORT_DUCKDB"]).close()
    _execute(project, [*RAW_TABLES, "insert into raw.events values " + ", ".join(FIRST_RUN)])
    project.dbt("build")
    _execute(project, ["insert into raw.events values " + ", ".join(SECOND_RUN)])
    project.dbt("build")
    return project


def _registered(project: Project) -> dict[int, str]:
    rows = _execute(
        project,
        [
            "select event_id, cast(registered_at at time zone 'UTC' as varchar) "
            f"from {_schema(project)}.export_activities order by event_id"
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
    rows = _execute(
        project,
        [
            f"select event_id from {_schema(project)}.export_activities where brand = 'A' "
            f"and available_at >= timestamptz '{start_utc}+00' and available_at < timestamptz '{end_utc}+00' "
            "order by event_id"
        ],
    )
    return [row[0] for row in rows]


def test_late_registered_event_lands_in_next_period(two_runs: Project) -> None:
    # Europe/Amsterdam days: Nov 1 is [Oct 31 23:00, Nov 1 23:00) UTC
    assert _period_events(two_runs, "2026-10-31 23:00:00", "2026-11-01 23:00:00") == [1, 2]
    assert _period_events(two_runs, "2026-11-01 23:00:00", "2026-11-02 23:00:00") == [3, 4]
    touches = _execute(
        two_runs,
        [
            f"select count(*) from {_schema(two_runs)}.export_broadcast_touches where broadcast_id = 10 "
            "and touched_at >= timestamptz '2026-11-01 23:00:00+00' "
            "and touched_at < timestamptz '2026-11-02 23:00:00+00'"
        ],
    )
    assert touches[0][0] > 0  # so broadcast 10 is in Nov 2's broadcast file too
    watermark = _execute(
        two_runs,
        [
            f"select brand, cast(complete_until at time zone 'UTC' as varchar) from {_schema(two_runs)}.export_watermark"
        ],
    )
    assert [(brand, str(until)[:19]) for brand, until in watermark] == [("A", "2026-11-02 12:00:00")]


# --- the loader's slices are index range scans on PostgreSQL -------------------------------------

CAPTURE_QUERIES = textwrap.dedent(
    """
    import sys
    from datetime import datetime, timezone
    from pathlib import Path
    from types import SimpleNamespace

    from activity_export.warehouse import connect, resolve_target
    from activity_export.writer import activity_query, broadcast_query

    fields = {
        "activity": ["broadcastid", "customerid", "externalid", "email", "activity", "activitydate",
                     "description"],
        "broadcast": ["broadcastid", "broadcasttype", "description", "subject", "sentdate"],
    }
    tenant = SimpleNamespace(brand="MODEHUIS", timezone="Europe/Amsterdam",
                             fields=lambda kind: fields[kind], titles=lambda kind: fields[kind])
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
        warehouse.con.execute("commit")
    """
)


@pytest.fixture(scope="module")
def indexed_postgres(tmp_path_factory: pytest.TempPathFactory, new_database: Callable[[], str]) -> Project:
    """Three brands, ten days: export_activities spans a few thousand pages."""
    project = _project(tmp_path_factory.mktemp("indexed"), "postgres", new_database())
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
    project.dbt("build")
    _execute(project, ["analyze"])
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
        rows = _execute(project, [f"explain {query}"])
        plans.setdefault(table.group(1), []).append("\n".join(row[0] for row in rows))
    return plans


def test_loader_slice_queries_are_index_range_scans_on_postgres(
    indexed_postgres: Project, tmp_path: Path
) -> None:
    """What DuckDB's postgres extension sends for one brand-day, with ctid-range scans off (the
    setting the loader needs, see docs/models.md), plans as index scans; enable_seqscan untouched."""
    _setting, queries = _loader_queries(indexed_postgres, "without-ctid-scan", tmp_path)
    pages = _execute(indexed_postgres, ["select relpages from pg_class where relname = 'export_activities'"])
    assert pages[0][0] > 1000  # more than one of DuckDB's ctid tasks (pg_pages_per_task)
    plans = _plans(indexed_postgres, queries)
    # the loader hands PostgreSQL the whole filtered, ordered slice (postgres_query): one query
    # per file, the broadcast one reading the touches through their index in a subquery
    assert sorted(plans) == ["export_activities", "export_broadcasts"]
    for table, index in (
        ("export_activities", "export_activities_brand_available_at_idx"),
        ("export_broadcasts", "export_broadcast_touches_brand_touched_at_idx"),
    ):
        [plan] = plans[table]
        assert 'COLLATE "C"' in plan, plan  # the index's collation
        assert re.search(rf"Index (Only )?Scan on {index}", plan), plan
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


# --- warnings, docs and lint -----------------------------------------------------------------------


def test_known_event_types_build_without_warnings(built_duckdb: Project) -> None:
    """The seed lists every type the platform sends (`forward` as not exported), so the
    relationships test warns only about a type nobody has decided on yet."""
    completed = built_duckdb.dbt("test", "--select", "base_platform__event_deliveries")
    assert re.search(r"PASS relationships_base_platform__event_deliveries_event_type", completed.stdout), (
        completed.stdout
    )
    assert "WARN=0" in completed.stdout


def test_dbt_docs_generate_succeeds(built_duckdb: Project) -> None:
    built_duckdb.dbt("docs", "generate")
    catalog = json.loads((Path(built_duckdb.env["DBT_TARGET_PATH"]) / "catalog.json").read_text())
    assert "model.activity_export.export_activities" in catalog["nodes"]


def test_sqlfluff_lint_is_clean(tmp_path: Path) -> None:
    project = _project(tmp_path, "duckdb")
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
