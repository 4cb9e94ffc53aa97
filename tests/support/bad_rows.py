"""Raw rows of a bad day and a dbt target of its own to build them in (not a test module).

A platform's raw tables with a load-time column (``ingested_at``), e-mail events written as SQL
value lists, and the dbt vars of a build whose clock is fixed (``export_now``), so that a row
registered or loaded after that clock is quarantined the same way on every machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import duckdb

from tests.support.postgres import fresh_database
from tests.support.project import Project, make_project
from tests.support.warehouses import execute

# The source contract's raw tables, empty, with the load time in ``ingested_at``.
RAW_SCHEMA = [
    "create schema raw",
    """create table raw.broadcasts (
        broadcast_id bigint, brand text, broadcast_type text, channel text, description text,
        subject text, sent_at timestamptz, campaign_id bigint, from_address text)""",
    "create table raw.customers (brand text, customer_id bigint, external_id text, email text)",
    """create table raw.events (
        event_id bigint, brand text, broadcast_id bigint, customer_id bigint, event_type text,
        occurred_at timestamptz, registered_at timestamptz, email text, url text, os text,
        device text, browser text, user_agent text, message text, ingested_at timestamptz)""",
]
RAW_TABLES = [
    *RAW_SCHEMA,
    """insert into raw.broadcasts values
        (10, 'A', 'SINGLE', 'email', 'A mail', 'Hallo', '2026-11-01 08:00:00+00', null, null),
        (30, 'B', 'SINGLE', 'email', 'B mail', 'Hoi', '2026-11-01 08:00:00+00', null, null)""",
    "insert into raw.customers values ('A', 7, 'K7', 'a7@x.example'), ('B', 8, 'K8', 'b8@x.example')",
]


def delivery(
    event_id: int, brand: str, broadcast_id: int, customer_id: int, registered: str, loaded: str
) -> str:
    """One open event as a SQL value list for raw.events; times are UTC, ``YYYY-MM-DD HH:MM:SS``."""
    return (
        f"({event_id}, '{brand}', {broadcast_id}, {customer_id}, 'open', "
        f"timestamptz '{registered}+00', timestamptz '{registered}+00', null, null, "
        f"null, null, null, null, null, timestamptz '{loaded}+00')"
    )


def build_vars(clock: str) -> list[str]:
    """``--vars`` of a build whose clock is ``clock`` (ISO 8601) and that reads the load time."""
    return ["--vars", json.dumps({"loaded_at_column": "ingested_at", "export_now": clock})]


@contextmanager
def raw_project(target: str, tmp: Path) -> Iterator[Project]:
    """A dbt target of its own holding the empty raw tables above: a DuckDB file in ``tmp``, or a
    PostgreSQL database created for it and dropped afterwards."""
    with ExitStack() as stack:
        database = stack.enter_context(fresh_database("aexp_bad_rows")) if target == "postgres" else None
        project = make_project(tmp, target, database)
        if target == "duckdb":
            duckdb.connect(project.env["ACTIVITY_EXPORT_DUCKDB"]).close()
        execute(project, RAW_TABLES)
        yield project


def build(project: Project, rows: list[str], clock: str) -> None:
    """``rows`` inserted into raw.events, then seeds and models run with the build's clock at ``clock``."""
    execute(project, ["insert into raw.events values " + ", ".join(rows)])
    project.dbt("seed")
    project.dbt("run", *build_vars(clock))
