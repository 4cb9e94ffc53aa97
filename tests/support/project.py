"""The repository as the tests and benchmarks use it: a dbt target with an environment of its own,
and ``activity-export`` and ``dbt`` run in child processes as a user would run them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.postgres import pg_variables

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

# Small, fixed demo data shared by the warehouse tests: two brands, three days.
GENERATE_ARGS = ["--brands", "BRANDNAAM,MODEHUIS", "--days", "3", "--events-per-day", "400"]


@dataclass
class Project:
    """A dbt target the tests can generate into, build and export from."""

    target: str
    profiles_dir: Path
    env: dict[str, str]
    project_dir: Path = ROOT  # the dbt project: this repository's, or a copy a test changes

    def cli_args(self) -> list[str]:
        return [
            "--project-dir",
            str(self.project_dir),
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
            cwd=cwd or self.project_dir,
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

    def dbt(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        # a dbt deprecation fails the suite, so CI finds it before a dbt upgrade removes the feature
        command = [str(BIN / "dbt"), "--warn-error-options", '{"error": ["Deprecations"]}', *args]
        command += ["--project-dir", str(self.project_dir)]
        command += ["--profiles-dir", str(self.profiles_dir), "--target", self.target]
        completed = subprocess.run(
            command, env=self.env, cwd=self.project_dir, capture_output=True, text=True, timeout=timeout
        )
        if completed.returncode != 0:
            raise AssertionError(f"dbt {' '.join(args)} failed:\n{completed.stdout[-6000:]}")
        return completed

    def build(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        """``dbt build`` of the models, seeds and data tests. The dbt unit tests, which read no
        warehouse data, run once per adapter in the session's ``built_duckdb`` and ``built_postgres``
        fixtures rather than in every test's build."""
        return self.dbt("build", "--exclude-resource-type", "unit_test", *args, timeout=timeout)


# what `dbt build` reads: a copy of these is a dbt project of its own
PROJECT_PARTS = ("dbt_project.yml", "models", "macros", "seeds", "tests/dbt")


def copy_of_project(folder: Path) -> Path:
    """A copy of this repository's dbt project in ``folder``, for a test that changes models."""
    for part in PROJECT_PARTS:
        source, copy = ROOT / part, folder / part
        if source.is_dir():
            shutil.copytree(source, copy)
        else:
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, copy)
    return folder


def dbt_env(folder: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the CLI and dbt: this one and ``extra``, dbt's target and logs in ``folder``."""
    env = {**os.environ, **(extra or {})}
    env["DBT_TARGET_PATH"] = str(folder / "target")
    env["DBT_LOG_PATH"] = str(folder / "logs")
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    env.pop("DBT_PROFILES_DIR", None)
    return env


def copy_profiles(folder: Path) -> Path:
    """A profiles folder in ``folder`` holding the example profile, as `make` sets one up."""
    profiles = folder / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "profiles.yml.example", profiles / "profiles.yml")
    return profiles


def make_project(
    folder: Path, target: str, database: str | None = None, schema: str | None = None
) -> Project:
    """A dbt target of its own in ``folder``: a DuckDB file there, or the PostgreSQL ``database``
    (its ``schema`` when given, else the profile's default), with its own profiles, target and logs."""
    extra = {"ACTIVITY_EXPORT_DUCKDB": str(folder / "warehouse.duckdb")}
    if database is not None:
        extra.update(pg_variables(database))
        if schema is not None:
            extra["DBT_SCHEMA"] = schema
    return Project(target, copy_profiles(folder), dbt_env(folder, extra))


def own_duckdb(base: Project, folder: Path, name: str = "own.duckdb") -> Project:
    """``base`` with a DuckDB file ``folder/name`` and a dbt target folder of its own."""
    env = {
        **base.env,
        "ACTIVITY_EXPORT_DUCKDB": str(folder / name),
        "DBT_TARGET_PATH": str(folder / "target"),
    }
    return Project(base.target, base.profiles_dir, env)


def fresh_project(base: Project, folder: Path, *generate_args: str) -> Project:
    """A DuckDB target of its own, generated and built, for tests that change or shape the data."""
    project = own_duckdb(base, folder)
    project.run("generate", *generate_args, *project.cli_args())
    project.build()
    return project
