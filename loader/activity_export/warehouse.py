"""The warehouse: found through the same dbt profile ``dbt build`` uses, opened as a DuckDB connection.

A DuckDB target is the database file itself. A PostgreSQL target is attached to an in-memory DuckDB
through the postgres extension, which ships as a wheel (``duckdb-extension-postgres``) so that
nothing is downloaded at run time. Either way the loader speaks one SQL dialect and writes files with
DuckDB's ``COPY ... TO``.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from activity_export.errors import ConfigError, ExportError

log = logging.getLogger(__name__)

ATTACHED = "warehouse"
READ_MEMORY_LIMIT = "128MB"
WRITE_MEMORY_LIMIT = "1GB"
DUCKDB_THREADS = 2


@dataclass(frozen=True)
class Target:
    """Where the built relations live, as read from the dbt profile."""

    name: str
    kind: str  # "duckdb" or "postgres"
    schema: str
    duckdb_path: Path | None = None
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    dbname: str = ""

    def __repr__(self) -> str:  # never show the password
        where = self.duckdb_path if self.kind == "duckdb" else f"{self.host}:{self.port}/{self.dbname}"
        return f"Target({self.name!r}, {self.kind}, {where}, schema={self.schema!r})"

    __str__ = __repr__


def default_profiles_dir(project_dir: Path) -> Path:
    """dbt's own rule: $DBT_PROFILES_DIR, else the current folder if it has profiles.yml, else ~/.dbt."""
    if os.environ.get("DBT_PROFILES_DIR"):
        return Path(os.environ["DBT_PROFILES_DIR"])
    for folder in (Path.cwd(), project_dir):
        if (folder / "profiles.yml").exists():
            return folder
    return Path.home() / ".dbt"


def resolve_target(project_dir: Path, profiles_dir: Path | None, target: str | None) -> Target:
    """Read the dbt profile named in ``dbt_project.yml`` and return the chosen target."""
    from dbt.config.profile import Profile, read_profile
    from dbt.config.project import load_raw_project
    from dbt.config.renderer import ProfileRenderer
    from dbt_common.context import set_invocation_context
    from dbt_common.exceptions import DbtBaseException

    set_invocation_context(dict(os.environ))  # what env_var() in profiles.yml reads
    profiles_dir = profiles_dir or default_profiles_dir(project_dir)
    try:
        raw_project = load_raw_project(str(project_dir))
        raw_profiles = read_profile(str(profiles_dir))
        if not raw_profiles:
            raise ConfigError(
                f"no profiles.yml in {profiles_dir}; copy profiles.yml.example there or pass --profiles-dir"
            )
        renderer = ProfileRenderer({})
        profile_name = renderer.render_value(raw_project.get("profile"))
        if profile_name not in raw_profiles:
            raise ConfigError(
                f"{profiles_dir / 'profiles.yml'} has no profile {profile_name!r} "
                "(the one dbt_project.yml names)"
            )
        target_name, data = Profile.render_profile(raw_profiles[profile_name], profile_name, target, renderer)
        # adapter-specific fields (path, host, ...) are not on the Credentials base class
        credentials: Any = Profile._credentials_from_profile(data, profile_name, target_name)
    except DbtBaseException as exc:
        raise ConfigError(f"dbt profile: {exc}") from None
    if credentials.type == "duckdb":
        path = Path(credentials.path)
        if not path.is_absolute() and str(path) != ":memory:":
            path = project_dir / path
        return Target(target_name, "duckdb", credentials.schema, duckdb_path=path)
    if credentials.type == "postgres":
        return Target(
            target_name,
            "postgres",
            credentials.schema,
            host=credentials.host,
            port=int(credentials.port),
            user=credentials.user,
            password=credentials.password or "",
            dbname=credentials.database,
        )
    raise ConfigError(
        f"dbt target {target_name!r} is of type {credentials.type!r}; "
        "the loader reads duckdb and postgres targets"
    )


def postgres_extension_path() -> Path:
    """The signed postgres extension inside the ``duckdb-extension-postgres`` wheel."""
    import duckdb_extension_postgres  # type: ignore[import-untyped]

    root = Path(duckdb_extension_postgres.__file__).parent / "extensions"
    found = sorted(root.glob(f"v{duckdb.__version__}/*/postgres.duckdb_extension")) + sorted(
        root.glob(f"v{duckdb.__version__}/postgres.duckdb_extension")
    )
    if not found:
        raise ExportError(
            f"no postgres extension for duckdb {duckdb.__version__} under {root}; "
            "install duckdb-extension-postgres with the same version as duckdb"
        )
    return found[0]


def _libpq_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass
class Warehouse:
    """An open DuckDB connection through which the target's relations are read (or written)."""

    con: duckdb.DuckDBPyConnection
    target: Target
    catalog: str

    def relation(self, name: str, schema: str | None = None) -> str:
        """A fully qualified, quoted relation name in the target."""
        parts = [self.catalog, schema or self.target.schema, name]
        return ".".join('"' + part.replace('"', '""') + '"' for part in parts)

    def cursor(self) -> Warehouse:
        """A connection of its own on the same database, for another thread."""
        return Warehouse(con=self.con.cursor(), target=self.target, catalog=self.catalog)

    def close(self) -> None:
        self.con.close()


@contextmanager
def connect(target: Target, read_only: bool = True) -> Iterator[Warehouse]:
    """Open the target; the connection is closed when the block ends."""
    if target.kind == "duckdb":
        assert target.duckdb_path is not None
        if read_only and not target.duckdb_path.exists():
            raise ConfigError(
                f"dbt target {target.name!r}: {target.duckdb_path} does not exist; "
                "run `dbt build` (or `activity-export demo`) first"
            )
        try:
            con = duckdb.connect(str(target.duckdb_path), read_only=read_only)
        except duckdb.Error as exc:
            raise ExportError(f"cannot open {target.duckdb_path}: {exc}") from None
        catalog = one_value(con.sql("select current_database()").fetchone())
    else:
        con = duckdb.connect()
        con.execute(f"install '{postgres_extension_path()}'")
        con.execute("load postgres")
        # By default the extension splits a large table into ctid ranges and scans each: a read of
        # the whole table whatever indexes exist. One plain query per slice lets PostgreSQL use
        # the (brand, registered_at) and (brand, touched_at) indexes (tests/test_models.py).
        con.execute("set pg_use_ctid_scan = false")
        dsn = " ".join(
            f"{key}={_libpq_quote(str(value))}"
            for key, value in (
                ("host", target.host),
                ("port", target.port),
                ("dbname", target.dbname),
                ("user", target.user),
                ("connect_timeout", 10),
                ("application_name", "activity-export"),
            )
        )
        options = "type postgres"
        if target.password:
            # through a temporary secret, so the password is never part of an ATTACH string
            con.execute(
                "create temporary secret warehouse_login (type postgres, password "
                f"{_sql_string(target.password)})"
            )
            options += ", secret warehouse_login"
        if read_only:
            options += ", read_only"
        try:
            con.execute(f"attach {_sql_string(dsn)} as {ATTACHED} ({options})")
        except duckdb.Error as exc:
            con.close()
            raise ExportError(f"cannot connect to PostgreSQL for dbt target {target}: {exc}") from None
        catalog = ATTACHED
    con.execute("set timezone = 'UTC'")
    # The stable row order needs a sort of the whole slice. Under a small memory limit DuckDB
    # spills that sort to its own temporary folder, so the loader's memory stays flat however
    # large a tenant-day is (bench/results/writer_memory.md); the generator streams and gets more.
    spill = tempfile.mkdtemp(prefix="activity-export-duckdb-")
    con.execute(f"set temp_directory = {_sql_string(spill)}")
    con.execute(f"set memory_limit = '{READ_MEMORY_LIMIT if read_only else WRITE_MEMORY_LIMIT}'")
    con.execute(f"set threads = {DUCKDB_THREADS}")
    warehouse = Warehouse(con=con, target=target, catalog=catalog)
    try:
        yield warehouse
    finally:
        warehouse.close()
        shutil.rmtree(spill, ignore_errors=True)


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def read_watermark(warehouse: Warehouse) -> datetime | None:
    """Up to which registration instant the built export relations are complete (None: empty)."""
    try:
        row = warehouse.con.execute(
            f"select registered_until from {warehouse.relation('export_watermark')}"  # noqa: S608
        ).fetchone()
    except duckdb.Error as exc:
        raise ExportError(
            f"dbt target {warehouse.target.name!r}: cannot read export_watermark ({exc}); "
            "has `dbt build` run on this target?"
        ) from None
    if row is None or row[0] is None:
        return None
    moment: datetime = row[0]
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def one_value(row: tuple[Any, ...] | None) -> Any:
    """The single value of a one-row, one-column result."""
    if row is None:
        raise ExportError("the warehouse returned no row where one was expected")
    return row[0]
