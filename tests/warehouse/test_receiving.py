"""docs/receiving.md cannot rot: every snippet that loads data runs against real files.

The snippets are taken from the page as printed (the fenced block after ``<!-- test: duckdb -->``,
``<!-- test: postgres -->`` and so on). The SQL ones run, twice, in a folder holding the golden
files of the ``erasures_manifest`` case under the page's brand name: the real DuckDB, and psql
against the real PostgreSQL. The loaded tables must hold every row with the right types, an erased
customer's address nowhere, and nothing twice. The pandas ones run in Python on the default golden
files and on files the writer makes with ``timestamps: offset`` and ``utc``.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from activity_export.periods import parse_period
from activity_export.warehouse import Warehouse
from activity_export.writer import write_period
from tests.support.golden import GOLDEN_CASES, tenant
from tests.support.postgres import pg_connect, pg_settings
from tests.support.project import ROOT
from tests.support.receiving import GOLDEN, snippet


def run_python(kind: str, folder: Path) -> dict[str, Any]:
    """Run the page's Python block ``kind`` in ``folder``, as a receiver would; its variables."""
    namespace: dict[str, Any] = {"__name__": "receiving"}
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        exec(compile(snippet(kind, "python"), f"docs/receiving.md ({kind})", "exec"), namespace)  # noqa: S102
    finally:
        os.chdir(cwd)
    return namespace


@pytest.fixture
def delivery(tmp_path: Path) -> Path:
    """The golden delivery under the names the page uses."""
    for path in GOLDEN.iterdir():
        shutil.copy(path, tmp_path / path.name.replace("GOLD", "BRANDNAAM"))
    return tmp_path


def _data_rows(name: str) -> int:
    """Data rows of a golden file, counted by Python's csv module (fields may hold line breaks)."""
    with (GOLDEN / name).open(newline="", encoding="utf-8") as handle:
        return len(list(csv.reader(handle, delimiter=";"))) - 1


def test_the_duckdb_snippet_loads_the_golden_files_idempotently(delivery: Path) -> None:
    sql = snippet("duckdb")
    con = duckdb.connect(str(delivery / "receiver.duckdb"))
    cwd = os.getcwd()
    os.chdir(delivery)  # the page reads the files from the current folder
    try:
        con.execute(sql)
        con.execute(sql)  # a second load of the same files changes nothing
    finally:
        os.chdir(cwd)
    assert con.sql("select count(*), count(distinct eventid) from activity").fetchone() == (
        _data_rows("activity_GOLD_20261125.csv"),
        _data_rows("activity_GOLD_20261125.csv"),
    )
    assert con.sql("select count(*) from broadcast").fetchone() == (
        _data_rows("broadcast_GOLD_20261125.csv"),
    )
    types = dict(
        con.sql(
            "select column_name, data_type from information_schema.columns where table_name = 'activity'"
        ).fetchall()
    )
    assert types["activitydate"] == "TIMESTAMP" and types["eventid"] == "BIGINT"
    # the CSV details survive: a quoted empty string, a quote, a delimiter, a line break
    assert con.sql("select externalid from activity where eventid = 1003").fetchone() == ("",)
    assert con.sql("select externalid from activity where eventid = 1010").fetchone() == ('K"9',)
    assert con.sql("select externalid from activity where eventid = 1002").fetchone() == (None,)
    bounce = con.sql("select description from activity where eventid = 1005").fetchone()
    assert bounce is not None and "\n" in bounce[0]
    assert con.sql("select activitydate from activity where eventid = 1001").fetchone() == (
        datetime(2026, 11, 25, 9, 0, 5),
    )
    # customer 2 was erased: the sender left out the address
    assert con.sql("select email from activity where customerid = 2").fetchall() == [(None,)]
    con.close()


def test_the_postgres_snippet_loads_the_golden_files_idempotently(delivery: Path, pg_database: str) -> None:
    psql = shutil.which("psql")
    if psql is None:
        pytest.fail("the receiving test runs psql: apt-get install postgresql-client", pytrace=False)
    (delivery / "load.sql").write_text(snippet("postgres") + "\n", encoding="utf-8")
    schema = f"receiving_{uuid.uuid4().hex[:8]}"
    db = pg_connect(pg_database)
    db.autocommit = True
    with db.cursor() as cursor:
        cursor.execute(f"create schema {schema}")
    settings = pg_settings()
    env = {
        **os.environ,
        "PGHOST": settings["host"],
        "PGPORT": settings["port"],
        "PGUSER": settings["user"],
        "PGDATABASE": pg_database,
        "PGOPTIONS": f"-c search_path={schema}",
    }
    try:
        for _ in range(2):  # the second load of the same files changes nothing
            done = subprocess.run(
                [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "load.sql"],
                cwd=delivery,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            assert done.returncode == 0, done.stderr
        with db.cursor() as cursor:
            cursor.execute("set timezone = 'UTC'")
            cursor.execute(f"select count(*), count(distinct eventid) from {schema}.activity")
            rows = _data_rows("activity_GOLD_20261125.csv")
            assert cursor.fetchone() == (rows, rows)
            cursor.execute(f"select externalid, activitydate from {schema}.activity where eventid = 1003")
            external, moment = cursor.fetchone()
            assert external == "" and moment.isoformat() == "2026-11-25T09:20:00+00:00"
            cursor.execute(f"select customerid, erasuredate from {schema}.erasure")
            assert [(c, d.isoformat()) for c, d in cursor.fetchall()] == [(99, "2026-11-25T12:00:00+00:00")]
            cursor.execute(f"select email from {schema}.activity where customerid = 2")
            assert cursor.fetchall() == [(None,)]
    finally:
        with db.cursor() as cursor:
            cursor.execute(f"drop schema {schema} cascade")
        db.close()


# --- pandas ----------------------------------------------------------------------------------


def test_the_pandas_snippet_for_local_times_reads_files_with_the_default_columns(tmp_path: Path) -> None:
    """The default columns have no eventid: the recipe must not need one."""
    for path in (ROOT / "tests" / "golden" / "default").iterdir():
        shutil.copy(path, tmp_path / path.name.replace("GOLD", "BRANDNAAM"))
    activity = run_python("pandas-local", tmp_path)["activity"]
    assert len(activity) == _data_rows("activity_GOLD_20261125.csv")
    assert "eventid" not in activity.columns
    first = activity.iloc[0]
    assert str(first["activitydate"]) == "2026-11-24 23:59:59+01:00"  # the bounce registered late
    with (tmp_path / "activity_BRANDNAAM_20261125.csv").open(newline="", encoding="utf-8") as handle:
        empty = sum(row["externalid"] == "" for row in csv.DictReader(handle, delimiter=";"))
    assert activity["externalid"].isna().sum() == empty  # NULL; the quoted "" is NULL to pandas too
    assert activity.loc[activity["externalid"] == 'K"9', "customerid"].tolist() == [9]


def _deliver(warehouse: Warehouse, folder: Path, timestamps: str, *periods: str) -> None:
    """The sender's files of ``periods`` under the page's brand name, written by the real writer."""
    configured = tenant(timestamps=timestamps)
    for period in periods:
        for written in write_period(warehouse, configured, parse_period(configured, period), folder / "sent"):
            target = folder / written.path.name.replace("GOLD", "BRANDNAAM")
            shutil.move(written.path, target)


@pytest.mark.parametrize("timestamps", ["offset", "utc"])
def test_the_pandas_snippet_reads_every_date_as_its_instant_and_loads_a_file_once(
    timestamps: str, warehouse: Warehouse, tmp_path: Path
) -> None:
    _deliver(warehouse, tmp_path, timestamps, "2026-10-25", "2026-11-25")
    loaded = run_python("pandas", tmp_path)
    activity = loaded["activity"]
    assert len(activity) == 4 + 12  # the autumn night's four rows and 25 November's twelve
    assert str(activity["activitydate"].dtype) == "datetime64[us, UTC]"
    night = activity[activity["customerid"] == 16].set_index("activity")["activitydate"]
    # both happened at 02:30 local time, an hour apart: the open in summer time, the click after
    assert night["OPEN"].isoformat() == "2026-10-25T00:30:00+00:00"
    assert night["CLICK"].isoformat() == "2026-10-25T01:30:00+00:00"
    # a file delivered again (a retry, a backfill) replaces its own rows: nothing twice, and two
    # alike rows of one file (no eventid by default) both stay
    again = loaded["add_file"](activity, tmp_path / "activity_BRANDNAAM_20261025.csv")
    assert len(again) == len(activity)
    assert again.drop(columns="file").duplicated().sum() == activity.drop(columns="file").duplicated().sum()


# --- Parquet ---------------------------------------------------------------------------------


@pytest.fixture
def parquet_delivery(warehouse: Warehouse, tmp_path: Path) -> Path:
    """The ``erasures_manifest`` case's period as Parquet, under the page's names."""
    settings, period = GOLDEN_CASES["erasures_manifest"]
    configured = tenant(**settings, format="parquet")
    folder = tmp_path / "parquet"
    for written in write_period(warehouse, configured, parse_period(configured, period), folder / "sent"):
        shutil.move(written.path, folder / written.path.name.replace("GOLD", "BRANDNAAM"))
    return folder


def test_the_duckdb_parquet_snippet_loads_the_same_rows_as_the_csv_one(
    parquet_delivery: Path, delivery: Path
) -> None:
    loaded = {}
    for name, folder, kind in (("parquet", parquet_delivery, "duckdb-parquet"), ("csv", delivery, "duckdb")):
        con = duckdb.connect(str(folder / "receiver.duckdb"))
        con.execute("set timezone = 'UTC'")
        cwd = os.getcwd()
        os.chdir(folder)
        try:
            con.execute(snippet(kind))
            con.execute(snippet(kind))  # a second load of the same files changes nothing
        finally:
            os.chdir(cwd)
        instant = "activitydate" if name == "parquet" else "timezone('Europe/Amsterdam', activitydate)"
        loaded[name] = con.sql(
            f"select broadcastid, customerid, externalid, email, activity, {instant}, description, eventid"
            " from activity order by eventid"
        ).fetchall()
        loaded[name + " broadcasts"] = con.sql("select count(*) from broadcast").fetchall()
        con.close()
    assert loaded["parquet"] == loaded["csv"]
    assert len(loaded["parquet"]) == _data_rows("activity_GOLD_20261125.csv")
    assert loaded["parquet broadcasts"] == loaded["csv broadcasts"]


def test_the_pandas_parquet_snippet_reads_types_from_the_file(parquet_delivery: Path) -> None:
    loaded = run_python("pandas-parquet", parquet_delivery)
    activity = loaded["activity"]
    assert len(activity) == _data_rows("activity_GOLD_20261125.csv")
    assert str(loaded["schema"].field("activitydate").type) == "timestamp[us, tz=UTC]"
    assert str(activity["customerid"].dtype) == "Int64" and str(activity["eventid"].dtype) == "Int64"
    row = activity.set_index("eventid").loc[1003]
    assert row["externalid"] == ""  # the empty string, not NULL: Parquet keeps them apart
    assert activity.set_index("eventid").loc[1002, "externalid"] is pd.NA  # customer 2, erased
    assert str(row["activitydate"]) == "2026-11-25 10:20:00+01:00"
