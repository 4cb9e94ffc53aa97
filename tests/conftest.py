"""Fixtures: a real PostgreSQL database per session, DuckDB warehouses, and built dbt projects.

PostgreSQL is found through the usual PG* variables (default 127.0.0.1:5432, user postgres). The
suite creates its own database and drops it afterwards. A server that does not answer fails the
suite with what to set or start; nothing is skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.postgres import PostgresUnavailable, fresh_database, pg_settings

pytest_plugins = ["tests.support.sshd"]

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# Small, fixed demo data shared by the warehouse tests: two brands, three days.
GENERATE_ARGS = ["--brands", "BRANDNAAM,MODEHUIS", "--days", "3", "--events-per-day", "400"]


@dataclass
class Project:
    """A dbt target the tests can generate into, build and export from."""

    target: str
    profiles_dir: Path
    env: dict[str, str]

    def cli_args(self) -> list[str]:
        return [
            "--project-dir",
            str(ROOT),
            "--profiles-dir",
            str(self.profiles_dir),
            "--target",
            self.target,
        ]

    def run(
        self,
        *args: str,
        check: bool = True,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``activity-export`` in a child process, as a user would."""
        completed = subprocess.run(
            [str(BIN / "activity-export"), *args],
            env={**self.env, **(env or {})},
            cwd=cwd or ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and completed.returncode != 0:
            raise AssertionError(
                f"activity-export {' '.join(args)} exited {completed.returncode}\n"
                f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
            )
        return completed

    def dbt(self, *args: str) -> subprocess.CompletedProcess[str]:
        # a dbt deprecation fails the suite, so CI finds it before a dbt upgrade removes the feature
        command = [str(BIN / "dbt"), "--warn-error-options", '{"error": ["Deprecations"]}', *args]
        command += ["--project-dir", str(ROOT)]
        command += ["--profiles-dir", str(self.profiles_dir), "--target", self.target]
        completed = subprocess.run(command, env=self.env, cwd=ROOT, capture_output=True, text=True)
        if completed.returncode != 0:
            raise AssertionError(f"dbt {' '.join(args)} failed:\n{completed.stdout[-6000:]}")
        return completed


def _base_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["DBT_TARGET_PATH"] = str(tmp / "target")
    env["DBT_LOG_PATH"] = str(tmp / "logs")
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    env.pop("DBT_PROFILES_DIR", None)
    return env


def _profiles(tmp: Path) -> Path:
    folder = tmp / "profiles"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "profiles.yml.example", folder / "profiles.yml")
    return folder


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
    tmp = tmp_path_factory.mktemp("duckdb")
    env = _base_env(tmp)
    env["ACTIVITY_EXPORT_DUCKDB"] = str(tmp / "warehouse.duckdb")
    return Project("duckdb", _profiles(tmp), env)


@pytest.fixture(scope="session")
def postgres_project(tmp_path_factory: pytest.TempPathFactory, pg_database: str) -> Project:
    """A PostgreSQL target in the session's database (not yet generated or built)."""
    tmp = tmp_path_factory.mktemp("postgres")
    env = _base_env(tmp)
    env["PGDATABASE"] = pg_database
    settings = pg_settings()
    env.update(PGHOST=settings["host"], PGPORT=settings["port"], PGUSER=settings["user"])
    return Project("postgres", _profiles(tmp), env)


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
