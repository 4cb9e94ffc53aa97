"""``format: parquet``: one Parquet file per kind from the golden warehouse (tests/support/golden.py),
typed (ids as 64-bit integers, dates as UTC-adjusted timestamps, text as strings), with the CSV's
rows, titles and order, an erased customer's personal fields NULL, described by the manifest, and
the same bytes whenever the same period is written. Read back with pyarrow and with DuckDB.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from frictionless import Package

from activity_export.periods import parse_period
from activity_export.warehouse import Target, Warehouse, connect
from activity_export.writer import WrittenFile, write_period
from tests.support.golden import TOUCHES_SQL, create_export_relations, tenant
from tests.support.parquet import arrow_table, arrow_text_rows, csv_text_rows, duckdb_difference
from tests.support.pgp import Keys

EVERYTHING: dict[str, Any] = {
    "extra_fields": {
        "activity": ["eventid", "registereddate", "url", "message", "os", "device", "browser", "useragent"],
        "broadcast": ["campaignid", "fromaddress"],
    },
    "columns": {"activity": {"externalid": "klantnummer"}, "broadcast": {"sentdate": "verzonden"}},
    "erasures": True,
}
INSTANT = pa.timestamp("us", tz="UTC")
INTEGERS = {"broadcastid", "customerid", "eventid", "campaignid"}
DATES = {"activitydate", "registereddate", "verzonden", "erasuredate"}


def _write(
    warehouse: Warehouse, folder: Path, period: str = "2026-11-25", **settings: Any
) -> list[WrittenFile]:
    configured = tenant(**settings)
    return write_period(warehouse, configured, parse_period(configured, period), folder)


@pytest.mark.parametrize("period", ["2026-11-25", "2026-10-25", "2026-03-29"])
def test_parquet_holds_the_csv_rows_in_the_csv_order(
    period: str, warehouse: Warehouse, tmp_path: Path
) -> None:
    parquet = _write(warehouse, tmp_path / "parquet", period, format="parquet", **EVERYTHING)
    local = _write(warehouse, tmp_path / "local", period, **EVERYTHING)
    offset = _write(warehouse, tmp_path / "offset", period, timestamps="offset", **EVERYTHING)
    assert [f.relative.name for f in parquet] == [f.relative.name.replace(".csv", ".parquet") for f in local]
    for typed, text, exact in zip(parquet, local, offset, strict=True):
        titles, rows = csv_text_rows(text.path)
        assert arrow_table(typed.path).column_names == titles
        assert arrow_text_rows(typed.path, "Europe/Amsterdam") == rows, typed.kind
        assert typed.rows == text.rows == len(rows)
        # as instants (the autumn night's repeated hour included), in DuckDB
        csv_rows, parquet_rows, different = duckdb_difference(typed.path, exact.path)
        assert (csv_rows, parquet_rows, different) == (len(rows), len(rows), [])
    assert sum(f.rows for f in parquet) > 0


def test_ids_are_integers_dates_instants_and_text_strings(warehouse: Warehouse, tmp_path: Path) -> None:
    files = _write(warehouse, tmp_path, format="parquet", **EVERYTHING)
    for written in files:
        schema = pq.read_schema(written.path)
        for field in schema:
            if field.name in INTEGERS:
                assert field.type == pa.int64(), (written.kind, field)
            elif field.name in DATES:
                assert field.type == INSTANT, (written.kind, field)
            else:
                assert field.type == pa.string(), (written.kind, field)
        # the Parquet logical type itself: an instant adjusted to UTC, not a wall-clock time
        parquet_schema = pq.ParquetFile(written.path).schema
        for index, name in enumerate(parquet_schema.names):
            if name in DATES:
                assert "isAdjustedToUTC=true" in str(parquet_schema.column(index).logical_type)
    activity = arrow_table(files[0].path).to_pylist()
    first = next(row for row in activity if row["eventid"] == 1001)
    assert first["activitydate"] == datetime(2026, 11, 25, 8, 0, 5, tzinfo=UTC)
    assert first["klantnummer"] == "K-1" and first["broadcastid"] == 101
    # NULL and the empty string stay apart, as in the CSV
    click = next(row for row in activity if row["eventid"] == 1003)
    assert (click["klantnummer"], click["useragent"]) == ("", "")
    assert next(row for row in activity if row["eventid"] == 1004)["useragent"] is None


def test_an_erased_customer_keeps_ids_and_dates_but_no_personal_field(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    files = _write(warehouse, tmp_path, format="parquet", **EVERYTHING)
    erased = [row for row in arrow_table(files[0].path).to_pylist() if row["customerid"] == 2]
    assert erased == [
        {
            "broadcastid": 101,
            "customerid": 2,
            "klantnummer": None,
            "email": None,
            "activity": "OPEN",
            "activitydate": datetime(2026, 11, 25, 9, 15, tzinfo=UTC),
            "description": None,
            "eventid": 1002,
            "registereddate": datetime(2026, 11, 25, 9, 15, 1, tzinfo=UTC),
            "url": None,
            "message": None,
            "os": "iOS",
            "device": "mobile",
            "browser": "Apple Mail",
            "useragent": None,
        }
    ]
    assert arrow_table(files[2].path).to_pylist() == [
        {"customerid": 99, "erasuredate": datetime(2026, 11, 25, 12, 0, tzinfo=UTC)}
    ]


def test_an_empty_period_still_gives_typed_files(warehouse: Warehouse, tmp_path: Path) -> None:
    files = _write(warehouse, tmp_path, "2026-06-01", format="parquet", **EVERYTHING)
    assert [f.kind for f in files] == ["activity", "broadcast", "erasure"]
    for written in files:
        table = arrow_table(written.path)
        assert written.rows == table.num_rows == 0
        assert written.bytes == written.path.stat().st_size > 0
    assert pq.read_schema(files[0].path).field("activitydate").type == INSTANT


def test_same_period_same_bytes_whenever_written(golden_database: Path, tmp_path: Path) -> None:
    digests = []
    for attempt, threads in (("one", 4), ("two", 1), ("three", 2)):
        if attempt == "three":
            time.sleep(1.1)  # nothing in the file depends on the clock
        with connect(Target("golden", "duckdb", "main", duckdb_path=golden_database)) as opened:
            opened.con.execute(f"set threads = {threads}")
            files = _write(opened, tmp_path / attempt, format="parquet", manifest=True, **EVERYTHING)
        digests.append([(f.relative, f.sha256, f.bytes) for f in files])
        for written in files:
            assert hashlib.sha256(written.path.read_bytes()).hexdigest() == written.sha256
    assert digests[0] == digests[1] == digests[2]


def test_settings_only_the_csv_reads_leave_a_parquet_file_as_it_is(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    plain = _write(warehouse, tmp_path / "plain", format="parquet")
    other = _write(warehouse, tmp_path / "other", format="parquet", delimiter="|", timestamps="utc")
    assert [f.sha256 for f in plain] == [f.sha256 for f in other]


def test_many_rows_give_the_same_bytes_on_any_number_of_threads(tmp_path: Path) -> None:
    """Enough rows for several row groups, written in parallel batches: same row groups, same bytes."""
    con = duckdb.connect()
    create_export_relations(con)
    con.execute(
        """
        insert into main.export_activities
        select i, 'GOLD', i % 7, i % 1000, 'ext' || (i % 13), 'x' || i || '@x.nl', 'OPEN',
               timestamptz '2026-11-25 00:00:00.250+00' + (i % 3600) * interval 1 second,
               timestamptz '2026-11-25 01:00:00+00', null, null, null, null, null, null, null, null
        from range(300000) as r(i)
        """
    )
    con.execute(TOUCHES_SQL)
    warehouse = Warehouse(con, Target("memory", "duckdb", "main"), "memory")
    digests = set()
    for threads in (1, 2, 4):
        con.execute(f"set threads = {threads}")
        files = _write(warehouse, tmp_path / str(threads), format="parquet")
        digests.add(files[0].sha256)
        metadata = pq.ParquetFile(files[0].path).metadata
        assert metadata.num_rows == files[0].rows == 300000
        sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
        assert sizes == [122880, 122880, 54240]
    assert len(digests) == 1
    # to the second, as in the CSV: 00:00:00.250 is 00:00:00
    first = arrow_table(files[0].path).slice(0, 1).to_pylist()[0]
    assert first["activitydate"] == datetime(2026, 11, 25, 0, 0, tzinfo=UTC)


def test_the_manifest_describes_each_parquet_file(warehouse: Warehouse, tmp_path: Path) -> None:
    files = _write(warehouse, tmp_path, format="parquet", manifest=True, **EVERYTHING)
    package = json.loads(files[-1].path.read_text(encoding="utf-8"))
    report = Package.validate_descriptor(package)
    assert report.valid, report.flatten(["type", "note"])
    assert [entry["name"] for entry in package["resources"]] == ["activity", "broadcast", "erasure"]
    for entry, written in zip(package["resources"], files[:-1], strict=True):
        assert entry["path"] == written.relative.name
        assert (entry["format"], entry["mediatype"]) == ("parquet", "application/vnd.apache.parquet")
        assert not {"dialect", "encoding", "compression"} & set(entry)
        data = written.path.read_bytes()
        assert (entry["bytes"], entry["hash"]) == (len(data), "sha256:" + hashlib.sha256(data).hexdigest())
        assert entry["rows"] == pq.ParquetFile(written.path).metadata.num_rows
        schema = pq.read_schema(written.path)
        fields = entry["schema"]["fields"]
        assert [field["name"] for field in fields] == schema.names
        expected = {pa.int64(): "integer", INSTANT: "datetime", pa.string(): "string"}
        assert [field["type"] for field in fields] == [expected[field.type] for field in schema]
        for field in fields:
            if field["type"] == "datetime":
                assert "format" not in field and field["timezone"] == "UTC"
                assert "instant" in field["description"]
        assert entry["schema"]["missingValues"] == []  # NULL is NULL; "" is a value


def test_an_encrypted_parquet_file_decrypts_to_the_plain_one(
    keys: Keys, warehouse: Warehouse, tmp_path: Path
) -> None:
    plain = _write(warehouse, tmp_path / "plain", format="parquet", erasures=True)
    sealed = _write(
        warehouse,
        tmp_path / "sealed",
        format="parquet",
        erasures=True,
        encryption="pgp",
        recipients=[str(keys.receiver)],
        manifest=True,
    )
    assert [f.relative.name for f in sealed] == [
        "activity_GOLD_20261125.parquet.gpg",
        "broadcast_GOLD_20261125.parquet.gpg",
        "erasure_GOLD_20261125.parquet.gpg",
        "manifest_GOLD_20261125.json",
    ]
    for clear, secret in zip(plain, sealed[:-1], strict=True):
        assert keys.decrypt(secret.path) == clear.path.read_bytes()
    package = json.loads(sealed[-1].path.read_text(encoding="utf-8"))
    assert {entry["encryption"] for entry in package["resources"]} == {"openpgp"}
