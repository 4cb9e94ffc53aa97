"""Reading and writing a test warehouse directly, on either adapter: the schema the export
relations are in, statements run there, timestamps as text."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb

from tests.support.postgres import pg_connect
from tests.support.project import Project, make_project


def schema_of(project: Project) -> str:
    """The schema dbt builds the project's relations in."""
    return project.env.get("DBT_SCHEMA", "analytics") if project.target == "postgres" else "main"


def execute(project: Project, statements: list[str]) -> list[tuple]:
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


def utc_text(moment: object) -> str | None:
    """``YYYY-MM-DD HH:MM:SS`` of a timestamp read back, or None."""
    return None if moment is None else str(moment)[:19]


def target_project(
    target: str, tmp: Path, new_database: Callable[[], str], schema: str = "analytics"
) -> Project:
    """A project of its own on ``target``: a DuckDB file in ``tmp``, or a new PostgreSQL database."""
    return make_project(tmp, target, new_database() if target == "postgres" else None, schema)
