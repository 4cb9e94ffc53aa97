"""docs/receiving.md cannot rot: its DuckDB and PostgreSQL snippets load the golden files.

The snippets are taken from the page as printed (the fenced block after ``<!-- test: duckdb -->``
or ``<!-- test: postgres -->``) and run, twice, in a folder holding the golden files of the
``erasures_manifest`` case under the page's brand name: the real DuckDB, and psql against the real
PostgreSQL. The loaded tables must hold every row with the right types, an erased customer's
address nowhere, and nothing twice.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from tests.support.postgres import pg_connect, pg_settings
from tests.support.project import ROOT

PAGE = ROOT / "docs" / "receiving.md"
GOLDEN = ROOT / "tests" / "golden" / "erasures_manifest"


def snippet(kind: str) -> str:
    """The SQL block the page marks with ``<!-- test: kind -->``."""
    text = PAGE.read_text(encoding="utf-8")
    found = re.search(rf"<!-- test: {kind} -->\n```sql\n(.*?)\n```", text, flags=re.S)
    assert found, f"docs/receiving.md has no SQL block marked <!-- test: {kind} -->"
    return found.group(1)


@pytest.fixture
def delivery(tmp_path: Path) -> Path:
    """The golden delivery under the names the page uses."""
    for path in GOLDEN.iterdir():
        shutil.copy(path, tmp_path / path.name.replace("GOLD", "BRANDNAAM"))
    return tmp_path


def _data_rows(name: str) -> int:
    """Data rows of a golden file, counted by Python's csv module (fields may hold line breaks)."""
    import csv

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
