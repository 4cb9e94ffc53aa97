"""The same generated data, built on DuckDB and on PostgreSQL, gives the same export relations
and the same files, byte for byte."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import duckdb

from tests.support.postgres import pg_connect
from tests.support.project import Project

EXPORT_RELATIONS = {
    "export_activities": "event_id",
    "export_broadcasts": "broadcast_id",
    "export_broadcast_touches": "broadcast_id, touched_at",
}


def _duckdb_rows(project: Project, relation: str, order: str) -> list[tuple]:
    with duckdb.connect(project.env["ACTIVITY_EXPORT_DUCKDB"], read_only=True) as con:
        con.execute("set timezone = 'UTC'")
        return con.execute(f"select * from main.{relation} order by {order}").fetchall()


def _postgres_rows(project: Project, relation: str, order: str) -> list[tuple]:
    with pg_connect(project.env["PGDATABASE"]) as con, con.cursor() as cursor:
        cursor.execute(f"select * from analytics.{relation} order by {order}")
        return cursor.fetchall()


def test_export_relations_hold_the_same_rows_on_duckdb_and_postgres(
    built_duckdb: Project, built_postgres: Project
) -> None:
    for relation, order in EXPORT_RELATIONS.items():
        on_duckdb = _duckdb_rows(built_duckdb, relation, order)
        on_postgres = _postgres_rows(built_postgres, relation, order)
        assert len(on_duckdb) > 0, relation
        assert on_duckdb == on_postgres, relation


def test_sms_page_and_unknown_events_never_reach_the_export(built_duckdb: Project) -> None:
    with duckdb.connect(built_duckdb.env["ACTIVITY_EXPORT_DUCKDB"], read_only=True) as con:
        raw_channels = {
            row[0] for row in con.execute("select distinct channel from raw.broadcasts").fetchall()
        }
        raw_types = {row[0] for row in con.execute("select distinct event_type from raw.events").fetchall()}
        leaked = con.execute(
            """
            select count(*) from main.export_activities as activities
            inner join raw.broadcasts as broadcasts using (broadcast_id)
            where broadcasts.channel <> 'email'
            """
        ).fetchone()[0]
        duplicates = con.execute("select count(*) - count(distinct event_id) from raw.events").fetchone()[0]
        exported = con.execute(
            "select count(*), count(distinct event_id) from main.export_activities"
        ).fetchone()
    assert {"email", "sms", "page"} <= raw_channels
    assert "forward" in raw_types  # an unknown type is in the raw data ...
    assert duplicates > 0  # ... and so are duplicated deliveries
    assert leaked == 0
    assert exported[0] == exported[1]


def _export(project: Project, out: Path, period: str) -> dict[str, str]:
    project.run(
        "export",
        "--brand",
        "BRANDNAAM",
        "--period",
        period,
        "--out",
        str(out),
        "--config",
        "demo/tenants.yml",
        *project.cli_args(),
    )
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(out.rglob("*.csv"))}


def test_export_writes_identical_files_from_duckdb_and_postgres(
    built_duckdb: Project, built_postgres: Project, tmp_path: Path
) -> None:
    from_duckdb = _export(built_duckdb, tmp_path / "duckdb", "2026-11-02")
    from_postgres = _export(built_postgres, tmp_path / "postgres", "2026-11-02")
    assert sorted(from_duckdb) == ["activity_BRANDNAAM_20261102.csv", "broadcast_BRANDNAAM_20261102.csv"]
    assert from_duckdb == from_postgres
    activity = tmp_path / "duckdb" / "activity_BRANDNAAM_20261102.csv"
    with activity.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    assert rows[0] == [
        "broadcastid",
        "customerid",
        "externalid",
        "email",
        "activity",
        "activitydate",
        "description",
    ]
    assert len(rows) > 100
    assert all(len(row) == 7 for row in rows)


def test_same_period_same_data_gives_the_same_bytes(built_duckdb: Project, tmp_path: Path) -> None:
    first = _export(built_duckdb, tmp_path / "one", "2026-11-03")
    second = _export(built_duckdb, tmp_path / "two", "2026-11-03")
    assert first == second
    assert len(first) == 2
