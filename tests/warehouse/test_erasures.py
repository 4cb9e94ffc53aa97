"""Erased customers, on both warehouses and through the commands.

- On PostgreSQL the activity slice runs inside PostgreSQL (``postgres_query``), the erasure join
  with it: the golden relations copied into a PostgreSQL schema give the golden files, byte for
  byte.
- Through ``run``, ``backfill`` and ``export`` on a generated and dbt-built DuckDB warehouse with a
  ``raw.erasures`` table: the erasure file lists the customer in the period of its erasure, and no
  file written after it, also of an earlier period, holds the customer's address or number.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from activity_export.periods import parse_period
from activity_export.warehouse import Target, connect
from activity_export.writer import write_period
from tests.support.golden import GOLDEN, GOLDEN_CASES, tenant
from tests.support.postgres import pg_connect, pg_settings
from tests.support.project import Project, fresh_project, own_duckdb
from tests.support.tenants import write_config


@pytest.fixture(scope="module")
def pg_golden(golden_database: Path, pg_database: str) -> Iterator[Target]:
    """The golden export relations, copied into a schema of their own in PostgreSQL."""
    settings = pg_settings()
    schema = f"golden_{uuid.uuid4().hex[:8]}"
    target = Target(
        "pg-golden",
        "postgres",
        schema,
        host=settings["host"],
        port=int(settings["port"]),
        user=settings["user"],
        password=settings["password"],
        dbname=pg_database,
    )
    with connect(target, read_only=False) as warehouse:
        con = warehouse.con
        con.execute(f"attach '{golden_database}' as golden (read_only)")
        con.execute(f'create schema warehouse."{schema}"')
        tables = con.execute(
            "select table_name from duckdb_tables() where database_name = 'golden' and schema_name = 'main'"
        ).fetchall()
        for (table,) in tables:
            con.execute(f'create table warehouse."{schema}"."{table}" as select * from golden.main."{table}"')
    yield target
    with pg_connect(pg_database) as db, db.cursor() as cursor:
        cursor.execute(f'drop schema "{schema}" cascade')
    db.close()


@pytest.mark.parametrize(
    "case",
    ["default", "erasures_manifest", "tab_delimiter", "dst_autumn_amsterdam_offset", "hourly_kolkata_offset"],
)
def test_postgres_slices_give_the_golden_files(case: str, pg_golden: Target, tmp_path: Path) -> None:
    settings, period_text = GOLDEN_CASES[case]
    configured = tenant(**settings)
    with connect(pg_golden) as warehouse:
        files = write_period(warehouse, configured, parse_period(configured, period_text), tmp_path)
    for written in files:
        expected = (GOLDEN / case / written.relative.as_posix()).read_bytes()
        assert written.path.read_bytes() == expected, f"{written.relative} differs from tests/golden/{case}"
    assert b"b@x.nl" not in files[0].path.read_bytes()  # customer 2, erased


# --- through the commands, on a dbt-built warehouse ----------------------------------------------

NOW = "2026-11-04T07:00:00+01:00"  # 2026-11-01 to -03 are due and complete


def _erase_a_customer(project: Project) -> tuple[int, str, str]:
    """Erase, on 2026-11-02, a BRANDNAAM customer with activity on every day; its id, address, number."""
    with duckdb.connect(project.env["ACTIVITY_EXPORT_DUCKDB"]) as con:
        row = con.execute(
            """
            select events.customer_id, customers.email, customers.external_id
            from raw.events as events
            inner join raw.customers as customers using (brand, customer_id)
            where events.brand = 'BRANDNAAM' and customers.email is not null
                and customers.external_id is not null
            group by all
            having count(distinct cast(events.registered_at as date)) = 3
            order by count(*) desc
            limit 1
            """
        ).fetchone()
        assert row is not None, "the generated data has no customer active on all three days"
        # `generate` made raw.erasures, without rows
        con.execute(
            "insert into raw.erasures values ('BRANDNAAM', ?, timestamptz '2026-11-02 12:00:00+00')", [row[0]]
        )
    return int(row[0]), str(row[1]), str(row[2])


@pytest.fixture(scope="module")
def erased(built_duckdb: Project, tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, int, str, str]:
    folder = tmp_path_factory.mktemp("erased")
    project = fresh_project(
        built_duckdb, folder, "--brands", "BRANDNAAM", "--days", "3", "--events-per-day", "400"
    )
    customer, email, number = _erase_a_customer(project)
    project.build()
    return project, customer, email, number


def _config(folder: Path) -> Path:
    return write_config(folder, manifest=True, erasures=True, extra_fields={"activity": ["eventid"]})


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


def _assert_anonymous(folder: Path, customer: int, email: str, number: str) -> int:
    """No activity file under ``folder`` names the customer; returns how many rows it still has."""
    rows = 0
    for path in sorted(folder.rglob("activity_*.csv")):
        content = path.read_text(encoding="utf-8")
        assert email not in content and number not in content, path.name
        for row in _rows(path):
            if row["customerid"] == str(customer):
                rows += 1
                assert row["email"] == "" and row["externalid"] == ""
    return rows


def test_run_backfill_and_export_never_write_an_erased_customer(
    erased: tuple[Project, int, str, str], tmp_path: Path
) -> None:
    from frictionless import validate

    project, customer, email, number = erased
    config = _config(tmp_path)
    project.run("run", "--config", str(config), "--now", NOW, *project.cli_args())
    server = tmp_path / "server"
    names = sorted(p.name for p in server.iterdir())
    assert [n for n in names if n.startswith("erasure_")] == [
        "erasure_BRANDNAAM_20261101.csv",
        "erasure_BRANDNAAM_20261102.csv",
        "erasure_BRANDNAAM_20261103.csv",
    ]
    listed = {name: _rows(server / name) for name in names if name.startswith("erasure_")}
    assert listed["erasure_BRANDNAAM_20261101.csv"] == []
    assert listed["erasure_BRANDNAAM_20261102.csv"] == [
        {"customerid": str(customer), "erasuredate": "2026-11-02 13:00:00"}
    ]
    assert listed["erasure_BRANDNAAM_20261103.csv"] == []
    assert _assert_anonymous(server, customer, email, number) > 0  # rows kept, address gone
    for manifest in sorted(server.glob("manifest_*.json")):
        report = validate(str(manifest))
        assert report.valid, report.flatten(["type", "note"])
        assert json.loads(manifest.read_text(encoding="utf-8"))["resources"][2]["name"] == "erasure"

    project.run(
        "backfill", "--config", str(config), "--brand", "BRANDNAAM", "--from", "2026-11-01", "--to", "2026-11-01",
        *project.cli_args(),
    )  # fmt: skip
    assert _assert_anonymous(server, customer, email, number) > 0

    out = tmp_path / "export"
    project.run(
        "export", "--config", str(config), "--brand", "BRANDNAAM", "--period", "2026-11-01", "--out", str(out),
        *project.cli_args(),
    )  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [
        "activity_BRANDNAAM_20261101.csv",
        "broadcast_BRANDNAAM_20261101.csv",
        "erasure_BRANDNAAM_20261101.csv",
        "manifest_BRANDNAAM_20261101.json",
    ]
    assert _assert_anonymous(out, customer, email, number) > 0
    assert validate(str(out / "manifest_BRANDNAAM_20261101.json")).valid


def test_parquet_files_never_hold_an_erased_customer_either(
    erased: tuple[Project, int, str, str], tmp_path: Path
) -> None:
    project, customer, email, number = erased
    config = write_config(
        tmp_path, format="parquet", erasures=True, extra_fields={"activity": ["url", "message", "useragent"]}
    )
    project.run("run", "--config", str(config), "--now", NOW, *project.cli_args())
    project.run(
        "backfill", "--config", str(config), "--brand", "BRANDNAAM", "--from", "2026-11-01", "--to", "2026-11-01",
        *project.cli_args(),
    )  # fmt: skip
    server = tmp_path / "server"
    kept = 0
    for path in sorted(server.glob("activity_*.parquet")):
        for row in pq.read_table(path).to_pylist():
            assert email not in row.values() and number not in row.values(), path.name
            if row["customerid"] == customer:
                kept += 1
                personal = ("externalid", "email", "description", "url", "message", "useragent")
                assert {field: row[field] for field in personal} == dict.fromkeys(personal), path.name
    assert kept > 0  # rows kept, address gone
    assert pq.read_table(server / "erasure_BRANDNAAM_20261102.parquet").to_pylist() == [
        {"customerid": customer, "erasuredate": datetime(2026, 11, 2, 12, 0, tzinfo=UTC)}
    ]


def test_postgres_and_duckdb_write_the_same_parquet_bytes(
    golden_database: Path, pg_golden: Target, tmp_path: Path
) -> None:
    configured = tenant(
        format="parquet", erasures=True, manifest=True, extra_fields={"activity": ["eventid"]}
    )
    period = parse_period(configured, "2026-11-25")
    written = {}
    for name, target in (
        ("duckdb", Target("golden", "duckdb", "main", duckdb_path=golden_database)),
        ("pg", pg_golden),
    ):
        with connect(target) as warehouse:
            files = write_period(warehouse, configured, period, tmp_path / name)
        written[name] = [(f.relative, f.sha256) for f in files]
    assert written["duckdb"] == written["pg"]


def test_without_raw_erasures_nobody_is_erased(built_duckdb: Project, tmp_path: Path) -> None:
    """A platform without the optional raw.erasures: the models build and nobody is erased."""
    project = own_duckdb(built_duckdb, tmp_path)
    project.run(
        "generate", "--brands", "BRANDNAAM", "--days", "3", "--events-per-day", "400", *project.cli_args()
    )
    with duckdb.connect(project.env["ACTIVITY_EXPORT_DUCKDB"]) as con:
        con.execute("drop table raw.erasures")
    project.build()
    config = _config(tmp_path)
    out = tmp_path / "export"
    project.run(
        "export", "--config", str(config), "--brand", "BRANDNAAM", "--period", "2026-11-02", "--out", str(out),
        *project.cli_args(),
    )  # fmt: skip
    assert (out / "erasure_BRANDNAAM_20261102.csv").read_text(encoding="utf-8") == "customerid;erasuredate\n"
