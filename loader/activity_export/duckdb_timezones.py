"""The timezone names DuckDB's ICU extension knows, for the pinned DuckDB (see constraints.txt).

Opening DuckDB only to list them cost a fifth of a second on every command that reads
tenants.yml, so the list ships as package data (``data/duckdb_timezones.txt``: a header line
naming the DuckDB version, then one name a line). config.writer_timezones() uses it when the
installed DuckDB is that version and asks DuckDB otherwise. ``make timezones`` (``python -m
activity_export.duckdb_timezones``) prints the file again from the installed DuckDB;
tests/unit/test_config_timezones.py keeps the shipped file equal to it.
"""

from __future__ import annotations

import functools
import re
import sys
from importlib.resources import files

DATA_FILE = "data/duckdb_timezones.txt"
QUERY = "select name from pg_timezone_names()"
HEADER = "# DuckDB {version}: {query}; regenerate with make timezones"


@functools.cache
def shipped() -> tuple[str, frozenset[str]]:
    """The DuckDB version the shipped list was made with, and its names (read once)."""
    header, *names = files("activity_export").joinpath(DATA_FILE).read_text(encoding="utf-8").splitlines()
    found = re.match(r"# DuckDB (\S+):", header)
    if found is None:
        raise ValueError(f"{DATA_FILE}: the first line must be {HEADER!r}")
    return found.group(1), frozenset(names)


def live_names() -> frozenset[str]:
    """The names the installed DuckDB knows (opens an in-memory database)."""
    import duckdb

    with duckdb.connect() as con:
        return frozenset(row[0] for row in con.execute(QUERY).fetchall())


def render(version: str, names: frozenset[str]) -> str:
    """The text of the data file: the header line, then the names in sorted order."""
    return "\n".join([HEADER.format(version=version, query=QUERY), *sorted(names)]) + "\n"


def main() -> None:
    """Print the data file for the installed DuckDB."""
    from importlib.metadata import version

    sys.stdout.write(render(version("duckdb"), live_names()))


if __name__ == "__main__":
    main()
