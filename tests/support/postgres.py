"""The PostgreSQL server of the tests and benchmarks, and the databases they make on it.

The server is found through the usual PG* variables (default 127.0.0.1:5432, user postgres).
Databases are created and dropped here only, through the administration database (``PGADMINDB``,
default ``postgres``); a server that does not answer raises ``PostgresUnavailable`` saying what to
set or start.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class PostgresUnavailable(RuntimeError):
    """The server does not answer; the message says what to start or set."""


def pg_settings() -> dict[str, str]:
    return {
        "host": os.environ.get("PGHOST", "127.0.0.1"),
        "port": os.environ.get("PGPORT", "5432"),
        "user": os.environ.get("PGUSER", "postgres"),
        "password": os.environ.get("PGPASSWORD", ""),
    }


def pg_variables(database: str) -> dict[str, str]:
    """The PG* variables that point a child process (dbt, psql, the CLI) at ``database``."""
    settings = pg_settings()
    return {
        "PGDATABASE": database,
        "PGHOST": settings["host"],
        "PGPORT": settings["port"],
        "PGUSER": settings["user"],
    }


def pg_connect(dbname: str) -> Any:
    import psycopg2

    settings = pg_settings()
    return psycopg2.connect(dbname=dbname, connect_timeout=5, **settings)


def _admin() -> Any:
    import psycopg2

    settings = pg_settings()
    try:
        admin = pg_connect(os.environ.get("PGADMINDB", "postgres"))
    except psycopg2.OperationalError as exc:
        raise PostgresUnavailable(
            f"PostgreSQL is not reachable at {settings['host']}:{settings['port']} as "
            f"{settings['user']} ({str(exc).strip()}). Start it (Debian: pg_ctlcluster "
            "--skip-systemctl-redirect <version> main start) or set PGHOST, PGPORT, PGUSER, "
            "PGPASSWORD to a server where this user may create databases."
        ) from exc
    admin.autocommit = True
    return admin


def create_database(name: str) -> None:
    admin = _admin()
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'create database "{name}"')
    finally:
        admin.close()


def drop_database(name: str) -> None:
    """Drop ``name`` if it exists, closing the connections still open to it."""
    admin = _admin()
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'drop database if exists "{name}" with (force)')
    finally:
        admin.close()


@contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """A new, empty database ``<prefix>_<random>`` for the ``with`` block, dropped after it."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    create_database(name)
    try:
        yield name
    finally:
        drop_database(name)
