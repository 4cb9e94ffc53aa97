"""The timezone list shipped for the pinned DuckDB is the one DuckDB's ICU knows."""

from __future__ import annotations

import duckdb

from activity_export import duckdb_timezones
from activity_export.config import writer_timezones


def test_shipped_timezone_list_is_duckdbs_own() -> None:
    with duckdb.connect() as con:
        live = frozenset(row[0] for row in con.execute("select name from pg_timezone_names()").fetchall())
    assert duckdb.__version__ == duckdb_timezones.DUCKDB_VERSION, (
        "DuckDB was upgraded: regenerate loader/activity_export/duckdb_timezones.py"
    )
    assert live == duckdb_timezones.NAMES
    assert writer_timezones() == live
