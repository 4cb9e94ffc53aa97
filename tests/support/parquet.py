"""A delivered Parquet file read back the ways a receiver reads it, to hold it against the CSV.

``pyarrow`` gives each value with its type; ``as_csv_text`` turns a row into the text the CSV of
the same period holds (ids as digits, instants as the tenant's local time, NULL as None), and
``csv_text_rows`` reads that CSV with DuckDB, which tells NULL (an empty field) from the empty
string (``""``). ``duckdb_difference`` compares the two files in DuckDB with their types: the
Parquet as written, the CSV (written with ``timestamps: offset``) cast to the same types.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

Row = tuple[str | None, ...]


def arrow_table(path: Path) -> pa.Table:
    """The whole file, as pyarrow reads it."""
    return pq.read_table(path)


def as_csv_text(value: Any, zone: str) -> str | None:
    """A Parquet value as the CSV writes it with ``timestamps: local``."""
    if value is None:
        return None
    if isinstance(value, datetime):
        assert value.tzinfo is not None, "a Parquet date must be an instant"
        return value.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def arrow_text_rows(path: Path, zone: str) -> list[Row]:
    """Every row of the Parquet file, each value as the CSV's text."""
    table = arrow_table(path)
    return [tuple(as_csv_text(value, zone) for value in row.values()) for row in table.to_pylist()]


def csv_text_rows(path: Path, delimiter: str = ";") -> tuple[list[str], list[Row]]:
    """The CSV's column titles and rows as text; an empty field is None, ``""`` is ''."""
    with duckdb.connect() as con:
        relation = con.sql(
            "select * from read_csv(?, delim = ?, quote = '\"', escape = '\"', header = true,"
            " nullstr = '', allow_quoted_nulls = false, all_varchar = true)",
            params=[str(path), delimiter],
        )
        return list(relation.columns), [tuple(row) for row in relation.fetchall()]


def duckdb_difference(parquet: Path, offset_csv: Path) -> tuple[int, int, list[tuple[Any, ...]]]:
    """Rows of each file, and the rows one has and the other lacks (both ways), in DuckDB.

    The CSV must be written with ``timestamps: offset``: then every date casts to the instant.
    Order is not compared here (``arrow_text_rows`` against ``csv_text_rows`` does that).
    """
    with duckdb.connect() as con:
        con.execute("set timezone = 'UTC'")
        types = con.sql("select * from read_parquet(?)", params=[str(parquet)]).types
        names = con.sql("select * from read_parquet(?)", params=[str(parquet)]).columns
        columns = ", ".join(
            f'cast("{name}" as {"timestamptz" if str(kind) == "TIMESTAMP WITH TIME ZONE" else kind})'
            f' as "{name}"'
            for name, kind in zip(names, types, strict=True)
        )
        text = (
            "(select * from read_csv(?, delim = ';', quote = '\"',"
            " escape = '\"', header = true, nullstr = '', allow_quoted_nulls = false,"
            " all_varchar = true))"
        )
        con.execute(f"create table from_csv as select {columns} from {text}", [str(offset_csv)])
        con.execute(
            "create table from_parquet as select * from read_parquet(?)",
            [str(parquet)],
        )
        counts = con.execute("select (select count(*) from from_csv), (select count(*) from from_parquet)")
        csv_rows, parquet_rows = counts.fetchone() or (0, 0)
        different = con.execute(
            "(select 'csv only', * from (select * from from_csv except all select * from from_parquet))"
            " union all "
            "(select 'parquet only', * from (select * from from_parquet except all select * from from_csv))"
        ).fetchall()
    return int(csv_rows), int(parquet_rows), different
