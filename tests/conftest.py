"""Fixtures for every folder: a real PostgreSQL database per session, DuckDB and PostgreSQL dbt
targets (built or not), the golden warehouse and the receivers' OpenPGP keys; each a thin wrapper
over tests/support. The folders' own conftest.py files mark their tests (and tests/sshd starts sshd).

PostgreSQL is found through the usual PG* variables (default 127.0.0.1:5432, user postgres). The
suite creates its own database and drops it afterwards. A server that does not answer fails the
suite with what to set or start; nothing is skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from activity_export.warehouse import Target, Warehouse, connect
from tests.support.golden import make_golden_database
from tests.support.pgp import GPG, Keys, make_keys, stop_agent
from tests.support.postgres import PostgresUnavailable, fresh_database
from tests.support.project import GENERATE_ARGS, Project, make_project


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    try:
        with fresh_database("aexp_test") as name:
            yield name
    except PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def duckdb_project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """A DuckDB target in a temporary file (not yet generated or built)."""
    return make_project(tmp_path_factory.mktemp("duckdb"), "duckdb")


@pytest.fixture(scope="session")
def postgres_project(tmp_path_factory: pytest.TempPathFactory, pg_database: str) -> Project:
    """A PostgreSQL target in the session's database (not yet generated or built)."""
    return make_project(tmp_path_factory.mktemp("postgres"), "postgres", pg_database)


@pytest.fixture(scope="session")
def built_duckdb(duckdb_project: Project) -> Project:
    """The DuckDB target with generated data and a passing ``dbt build``."""
    duckdb_project.run("generate", *GENERATE_ARGS, *duckdb_project.cli_args())
    duckdb_project.dbt("build")
    return duckdb_project


@pytest.fixture(scope="session")
def built_postgres(postgres_project: Project) -> Project:
    """The PostgreSQL target with the same generated data and a passing ``dbt build``."""
    postgres_project.run("generate", *GENERATE_ARGS, *postgres_project.cli_args())
    postgres_project.dbt("build")
    return postgres_project


@pytest.fixture(scope="module")
def golden_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB file holding only the literal rows of the golden warehouse (tests/support/golden.py)."""
    return make_golden_database(tmp_path_factory.mktemp("golden") / "warehouse.duckdb")


@pytest.fixture
def warehouse(golden_database: Path) -> Iterator[Warehouse]:
    """The golden warehouse, opened as the loader opens one."""
    with connect(Target("golden", "duckdb", "main", duckdb_path=golden_database)) as opened:
        yield opened


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    """The receivers' OpenPGP keys, made with gpg for the module (tests/support/pgp.py)."""
    if GPG is None:
        pytest.fail("the encryption tests need GnuPG's gpg: apt-get install gnupg", pytrace=False)
    made = make_keys(tmp_path_factory.mktemp("gpg"))
    yield made
    stop_agent(made)
