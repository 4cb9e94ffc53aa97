"""Every value comes back identical: through Python's csv module and through PostgreSQL's
``COPY ... FROM`` with the file's own dialect (FORMAT csv, DELIMITER, HEADER, QUOTE '"', NULL '').

PostgreSQL tells NULL from the empty string: an unquoted empty field is NULL, a quoted ``""`` is
''. Python's csv module (3.11) reads both as '', so NULL versus '' is checked through PostgreSQL
and on the raw bytes.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activity_export.config import Tenant, parse_config
from activity_export.periods import parse_period
from activity_export.warehouse import Target, Warehouse
from activity_export.writer import write_period
from tests.support.golden import create_export_relations, fill_export_relations
from tests.support.postgres import pg_connect

TEXT_COLUMNS = (
    "external_id",
    "email",
    "description",
    "url",
    "message",
    "os",
    "device",
    "browser",
    "user_agent",
)
# the file field each text column lands in (all extras configured)
TEXT_FIELDS = ("externalid", "email", "description", "url", "message", "os", "device", "browser", "useragent")
ALL_EXTRAS = ["eventid", "registereddate", "url", "message", "os", "device", "browser", "useragent"]

TRICKY = [
    "plain",
    "",
    None,
    "semi;colon",
    "pipe|bar",
    "tab\there",
    "comma,here",
    'say "hi"',
    '"',
    '""',
    "line\nbreak",
    "carriage\rreturn",
    "crlf\r\nend",
    "\r\n",
    "\n",
    "trailing newline\n",
    " leading and trailing spaces ",
    "Ünïcödé 😀 – “curly” ‘quotes’ 中文 עברית",
    "\\N",
    "NULL",
    "\\.",
    "before\n\\.\nafter",
    "back\\slash",
    "'single'",
    "#hash",
    "=formula()",
    "\u2028line separator\u0085next line",
    "\ufeffbom inside",
]


def _tenant(delimiter: str, header: bool = True) -> Tenant:
    raw = {
        "tenants": {
            "RT": {
                "delimiter": delimiter,
                "header": header,
                "extra_fields": {"activity": ALL_EXTRAS},
                "destination": {"type": "local", "root": "/unused"},
            }
        }
    }
    return parse_config(raw, Path("tenants.yml")).tenant("RT")


def _activity(event_id: int, values: tuple[str | None, ...]) -> tuple[Any, ...]:
    external_id, email, description, url, message, os_name, device, browser, user_agent = values
    return (
        event_id,
        "RT",
        1,
        event_id,
        external_id,
        email,
        "OPEN",
        "2026-11-25 10:00:00",
        "2026-11-25 10:00:00",
        description,
        url,
        message,
        os_name,
        device,
        browser,
        user_agent,
    )


BROADCAST = [(1, "RT", "SINGLE", "d", "s", "2026-11-25 09:00:00", None, None)]


@pytest.fixture(scope="module")
def warehouse() -> Iterator[Warehouse]:
    con = duckdb.connect()
    create_export_relations(con)
    yield Warehouse(con, Target("memory", "duckdb", "main"), "memory")
    con.close()


@pytest.fixture(scope="module")
def pg(pg_database: str) -> Iterator[Any]:
    con = pg_connect(pg_database)
    con.autocommit = True
    yield con
    con.close()


def _write(warehouse: Warehouse, tenant: Tenant, rows: list[tuple[str | None, ...]], out: Path) -> Path:
    """Write the rows as activities (event ids 1..n, in order) and return the activity file."""
    fill_export_relations(
        warehouse.con, [_activity(i + 1, values) for i, values in enumerate(rows)], BROADCAST
    )
    files = write_period(warehouse, tenant, parse_period(tenant, "2026-11-25"), out)
    return files[0].path


def _through_csv_module(path: Path, tenant: Tenant) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(
            csv.reader(handle, delimiter=tenant.delimiter, quotechar='"', doublequote=True, strict=True)
        )
    if tenant.header:
        assert rows[0] == tenant.titles("activity")
        rows = rows[1:]
    return rows


def _through_postgres(pg: Any, path: Path, tenant: Tenant) -> list[tuple[str | None, ...]]:
    table = f"rt_{uuid.uuid4().hex[:10]}"
    titles = tenant.titles("activity")
    delimiter = tenant.delimiter.replace("'", "''")
    with pg.cursor() as cursor:
        cursor.execute(
            f"create temporary table {table} (" + ", ".join(f'"{title}" text' for title in titles) + ")"
        )
        with path.open("rb") as handle:
            cursor.copy_expert(
                f"copy {table} from stdin with (format csv, delimiter E'{_pg_escape(delimiter)}', "
                f"header {'true' if tenant.header else 'false'}, quote '\"', null '', "
                "encoding 'UTF8')",
                handle,
            )
        cursor.execute(f'select * from {table} order by "eventid"::bigint')
        rows = cursor.fetchall()
        cursor.execute(f"drop table {table}")
    return rows


def _pg_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t")


def _expected_file_rows(tenant: Tenant, rows: list[tuple[str | None, ...]]) -> list[dict[str, str | None]]:
    expected = []
    for i, values in enumerate(rows):
        record: dict[str, str | None] = {
            "broadcastid": "1",
            "customerid": str(i + 1),
            "activity": "OPEN",
            "activitydate": "2026-11-25 11:00:00",  # 10:00 UTC in Europe/Amsterdam
            "eventid": str(i + 1),
            "registereddate": "2026-11-25 11:00:00",
        }
        record.update(zip(TEXT_FIELDS, values, strict=True))
        expected.append(record)
    return expected


def _check_round_trip(
    pg: Any, warehouse: Warehouse, tenant: Tenant, rows: list[tuple[str | None, ...]], out: Path
) -> None:
    path = _write(warehouse, tenant, rows, out)
    expected = _expected_file_rows(tenant, rows)
    fields = tenant.fields("activity")
    # Python's csv module: every value identical, NULL read as ''
    assert _through_csv_module(path, tenant) == [
        [record[field] or "" for field in fields] for record in expected
    ]
    # PostgreSQL COPY FROM: every value identical, NULL stays NULL and '' stays ''
    assert _through_postgres(pg, path, tenant) == [
        tuple(record[field] for field in fields) for record in expected
    ]


@pytest.mark.parametrize("delimiter", [";", "|", ",", "\\t", " ", "x"])
def test_tricky_values_round_trip(delimiter: str, pg: Any, warehouse: Warehouse, tmp_path: Path) -> None:
    tenant = _tenant(delimiter)
    # each tricky value once in every text column, and NULL/'' side by side
    rows = [tuple(value for _ in TEXT_COLUMNS) for value in TRICKY]
    rows.append(("", None, "", None, "", None, "", None, ""))
    rows.append(
        (
            f"only{tenant.delimiter}",
            f"{tenant.delimiter}",
            f'"{tenant.delimiter}"',
            None,
            "",
            "x",
            "\r",
            "\n",
            '"',
        )
    )
    _check_round_trip(pg, warehouse, tenant, rows, tmp_path)


def test_null_and_empty_string_differ_in_the_bytes(warehouse: Warehouse, tmp_path: Path) -> None:
    tenant = _tenant(";", header=False)
    path = _write(warehouse, tenant, [("", None, "", None, "", None, "", None, "")], tmp_path)
    assert path.read_bytes() == (b'1;1;"";;OPEN;2026-11-25 11:00:00;"";1;2026-11-25 11:00:00;;"";;"";;""\n')


def test_header_only_file_round_trips_to_no_rows(pg: Any, warehouse: Warehouse, tmp_path: Path) -> None:
    tenant = _tenant(";")
    path = _write(warehouse, tenant, [], tmp_path)
    assert _through_csv_module(path, tenant) == []
    assert _through_postgres(pg, path, tenant) == []


# Text without NUL (neither DuckDB nor PostgreSQL text holds it) and without surrogates.
field_text = st.text(
    alphabet=st.one_of(
        st.sampled_from([*";,|\t \"'\r\n\\.x", "é", "😀", "\u2028", "\ufeff"]),
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    ),
    max_size=12,
)
row_values = st.tuples(*[st.none() | field_text for _ in TEXT_COLUMNS])
delimiters = st.sampled_from([";", "|", ",", "\\t", " ", ":", "'", "\\", "a", "~"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(delimiter=delimiters, header=st.booleans(), rows=st.lists(row_values, min_size=0, max_size=4))
def test_random_values_round_trip(
    delimiter: str,
    header: bool,
    rows: list[tuple[str | None, ...]],
    pg: Any,
    warehouse: Warehouse,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    out = tmp_path_factory.mktemp("random")
    _check_round_trip(pg, warehouse, _tenant(delimiter, header), rows, out)
