"""The timezone list shipped for the pinned DuckDB is the one DuckDB's ICU knows."""

from __future__ import annotations

from importlib.resources import files

import duckdb

from activity_export import duckdb_timezones
from activity_export.config import writer_timezones


def test_shipped_timezone_file_is_what_the_installed_duckdb_reports() -> None:
    shipped = files("activity_export").joinpath(duckdb_timezones.DATA_FILE).read_text(encoding="utf-8")
    live = duckdb_timezones.live_names()
    assert shipped == duckdb_timezones.render(duckdb.__version__, live), (
        f"DuckDB {duckdb.__version__} lists other timezones: run make timezones"
    )
    assert duckdb_timezones.shipped() == (duckdb.__version__, live)
    assert writer_timezones() == live
