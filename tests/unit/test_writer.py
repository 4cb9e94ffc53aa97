"""The writer: one period's files from the golden warehouse (tests/support/golden.py), compared with
the golden files in ``tests/golden/``. ``UPDATE_GOLDEN=1`` rewrites them (then review the diff);
without it every case compares byte for byte.
"""

from __future__ import annotations

import csv
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest

from activity_export.errors import ExportError
from activity_export.periods import parse_period
from activity_export.warehouse import Target, Warehouse, connect
from activity_export.writer import timestamp_text, write_period
from tests.support.golden import (
    GOLDEN,
    GOLDEN_CASES,
    TOUCHES_SQL,
    create_export_relations,
    decompressed,
    tenant,
)

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def _plain_name(relative: Path) -> Path:
    for suffix in (".gz", ".zst"):
        if relative.name.endswith(suffix):
            return relative.with_name(relative.name.removesuffix(suffix))
    return relative


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_files_match_the_golden_files(case: str, warehouse: Warehouse, tmp_path: Path) -> None:
    settings, period_text = GOLDEN_CASES[case]
    configured = tenant(**settings)
    files = write_period(warehouse, configured, parse_period(configured, period_text), tmp_path)
    written = {_plain_name(Path(*f.relative.parts)).as_posix(): decompressed(f.path) for f in files}
    folder = GOLDEN / case
    if UPDATE:
        shutil.rmtree(folder, ignore_errors=True)
        for name, content in written.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(content)
    expected = {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    assert sorted(written) == sorted(expected), "files differ from tests/golden/" + case
    for name, content in written.items():
        assert content == expected[name], f"{name} differs from tests/golden/{case}/{name}"


def test_default_activity_file_reads_as_the_spec_says(warehouse: Warehouse, tmp_path: Path) -> None:
    configured = tenant()
    files = write_period(warehouse, configured, parse_period(configured, "2026-11-25"), tmp_path)
    activity = files[0].path.read_bytes()
    lines = activity.split(b"\n")
    assert lines[0] == b"broadcastid;customerid;externalid;email;activity;activitydate;description"
    assert not activity.startswith(b"\xef\xbb\xbf") and activity.endswith(b"\n")
    assert b";K-1;a@x.nl;BROADCAST;2026-11-25 09:00:05;\n" in activity  # tenant time, NULL empty
    assert b';"";c@x.nl;CLICK;' in activity  # an empty string is quoted, unlike NULL
    assert b'"K;8"' in activity and b'"K""9"' in activity
    # rows ordered by activity date, then event id; period bounds exact: 1006 and 1007 are out
    order = [line.split(b";")[4] for line in lines[1:] if line.count(b";") >= 6]
    assert order[:3] == [b"HARDBOUNCE", b"OPEN", b"OPEN"]
    assert files[0].rows == 12 and b"late.example" not in activity and b"e@x.nl" not in activity
    with files[1].path.open(newline="", encoding="utf-8") as handle:
        broadcast_ids = [row[0] for row in csv.reader(handle, delimiter=";")][1:]
    assert broadcast_ids == ["101", "102", "103", "106"]  # 102: a year old, touched today


def _activity_dates(warehouse: Warehouse, tmp_path: Path, timestamps: str) -> dict[str, list[str]]:
    """Activity type -> the activitydate texts of customer 16's rows on the autumn DST night."""
    configured = tenant(timestamps=timestamps)
    files = write_period(warehouse, configured, parse_period(configured, "2026-10-25"), tmp_path / timestamps)
    with files[0].path.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle, delimiter=";") if row["customerid"] == "16"]
    return {row["activity"]: [row["activitydate"]] for row in rows}


def test_the_repeated_autumn_hour_is_unambiguous_with_offset_or_utc(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    # an OPEN at 00:30 UTC (02:30 summer time) and a CLICK at 01:30 UTC (02:30 winter time)
    local = _activity_dates(warehouse, tmp_path, "local")
    assert local == {"OPEN": ["2026-10-25 02:30:00"], "CLICK": ["2026-10-25 02:30:00"]}
    offset = _activity_dates(warehouse, tmp_path, "offset")
    assert offset == {"OPEN": ["2026-10-25 02:30:00+02:00"], "CLICK": ["2026-10-25 02:30:00+01:00"]}
    utc = _activity_dates(warehouse, tmp_path, "utc")
    assert utc == {"OPEN": ["2026-10-25T00:30:00Z"], "CLICK": ["2026-10-25T01:30:00Z"]}
    # what a receiver's parser makes of them: the same two instants either way
    for dates in (offset, utc):
        instants = {kind: datetime.fromisoformat(text[0]).astimezone(UTC) for kind, text in dates.items()}
        assert instants == {
            "OPEN": datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
            "CLICK": datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
        }


@pytest.mark.parametrize(
    "zone",
    [
        "Europe/Amsterdam",
        "America/St_Johns",
        "Asia/Kolkata",
        "Australia/Lord_Howe",
        "Pacific/Kiritimati",
        "UTC",
    ],
)
def test_offset_and_utc_texts_read_back_as_the_same_instants_as_python_says(zone: str) -> None:
    """Every 97 minutes through 2026, past each DST change: the text Python parses back is the
    instant, and the wall-clock time and offset are the ones zoneinfo gives."""
    con = duckdb.connect()
    con.execute("set timezone = 'UTC'")
    offset_sql = timestamp_text("moment", zone, "offset")
    utc_sql = timestamp_text("moment", zone, "utc")
    rows = con.execute(
        f"select moment, {offset_sql}, {utc_sql} from ("
        "select timestamptz '2026-01-01 00:00:00+00' + i * interval 97 minutes as moment"
        " from range(5500) as r(i)) order by moment"
    ).fetchall()
    for moment, offset_text, utc_text in rows:
        expected = moment.astimezone(ZoneInfo(zone))
        assert offset_text == expected.isoformat(sep=" "), moment
        assert datetime.fromisoformat(offset_text) == moment
        assert utc_text == moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert datetime.fromisoformat(utc_text) == moment
    assert con.execute(
        f"select {offset_sql}, {utc_sql} from (select null::timestamptz as moment)"
    ).fetchone() == (
        None,
        None,
    )


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_same_period_same_data_gives_the_same_bytes(
    compression: str, golden_database: Path, tmp_path: Path
) -> None:
    configured = tenant(compression=compression, manifest=True)
    period = parse_period(configured, "2026-11-25")
    digests = []
    for attempt in ("one", "two"):
        with connect(Target("golden", "duckdb", "main", duckdb_path=golden_database)) as opened:
            if attempt == "two":
                opened.con.execute("set threads = 1")
            files = write_period(opened, configured, period, tmp_path / attempt)
        digests.append([(f.relative, f.path.read_bytes(), f.sha256, f.bytes) for f in files])
    assert digests[0] == digests[1]
    assert [entry[0].name for entry in digests[0]][-1] == "manifest_GOLD_20261125.json"


def test_same_bytes_for_many_rows_across_threads(tmp_path: Path) -> None:
    """Enough rows for DuckDB to write in several parallel batches: order and bytes stay fixed."""
    con = duckdb.connect()
    create_export_relations(con)
    con.execute(
        """
        insert into main.export_activities
        select i, 'GOLD', i % 7, i % 1000, 'ext' || (i % 13), 'x' || i || '@x.nl', 'OPEN',
               timestamptz '2026-11-25 00:00:00+00' + (i % 3600) * interval 1 second,
               timestamptz '2026-11-25 01:00:00+00', null, null, null, null, null, null, null, null
        from range(300000) as r(i)
        """
    )
    con.execute(TOUCHES_SQL)
    warehouse = Warehouse(con, Target("memory", "duckdb", "main"), "memory")
    digests = set()
    for threads, compression in [(1, "zstd"), (2, "zstd"), (4, "zstd"), (4, "gzip"), (1, "gzip")]:
        con.execute(f"set threads = {threads}")
        configured = tenant(compression=compression)
        period = parse_period(configured, "2026-11-25")
        files = write_period(warehouse, configured, period, tmp_path / f"{threads}{compression}")
        digests.add((compression, files[0].sha256))
        assert files[0].rows == 300000
    assert len(digests) == 2  # one per compression, whatever the thread count


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {},
            {
                "activity": b"broadcastid;customerid;externalid;email;activity;activitydate;description\n",
                "broadcast": b"broadcastid;broadcasttype;description;subject;sentdate\n",
            },
        ),
        ({"header": False}, {"activity": b"", "broadcast": b""}),
        ({"header": False, "compression": "gzip"}, {"activity": b"", "broadcast": b""}),
        ({"header": False, "compression": "zstd"}, {"activity": b"", "broadcast": b""}),
        (
            {"compression": "zstd", "delimiter": "\\t"},
            {
                "activity": b"broadcastid\tcustomerid\texternalid\temail\tactivity\tactivitydate\tdescription\n",
                "broadcast": b"broadcastid\tbroadcasttype\tdescription\tsubject\tsentdate\n",
            },
        ),
    ],
)
def test_empty_period_still_gives_both_files(
    settings: dict[str, Any], expected: dict[str, bytes], warehouse: Warehouse, tmp_path: Path
) -> None:
    configured = tenant(**settings)
    files = write_period(warehouse, configured, parse_period(configured, "2026-06-01"), tmp_path)
    assert [f.kind for f in files] == ["activity", "broadcast"]
    for written in files:
        assert written.path.exists() and written.rows == 0
        assert decompressed(written.path) == expected[written.kind]
        if settings.get("compression", "none") == "none" and not settings.get("header", True):
            assert written.bytes == 0


def test_a_failed_write_leaves_no_file_and_no_open_transaction(warehouse: Warehouse, tmp_path: Path) -> None:
    configured = tenant()
    period = parse_period(configured, "2026-11-25")
    blocker = tmp_path / "broadcast_GOLD_20261125.csv"
    blocker.mkdir()  # the final broadcast name is taken by a folder: the rename fails ...
    (tmp_path / ".broadcast_GOLD_20261125.csv.partial").mkdir()  # ... and so does the COPY
    with pytest.raises(ExportError, match="tenant GOLD: writing period 2026-11-25 failed"):
        write_period(warehouse, configured, period, tmp_path)
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == [".broadcast_GOLD_20261125.csv.partial", "broadcast_GOLD_20261125.csv"]
    # the connection is usable again: nothing left of the failed transaction
    (tmp_path / ".broadcast_GOLD_20261125.csv.partial").rmdir()
    blocker.rmdir()
    assert len(write_period(warehouse, configured, period, tmp_path)) == 2


def test_a_stale_partial_file_is_overwritten(warehouse: Warehouse, tmp_path: Path) -> None:
    configured = tenant()
    (tmp_path / ".activity_GOLD_20261125.csv.partial").write_bytes(b"x" * 100000)
    files = write_period(warehouse, configured, parse_period(configured, "2026-11-25"), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "activity_GOLD_20261125.csv",
        "broadcast_GOLD_20261125.csv",
    ]
    assert files[0].bytes < 100000


def test_the_bytes_of_a_file_being_written_are_told_as_it_grows(tmp_path: Path) -> None:
    """While DuckDB writes a big file, its size so far is told four times a second (plus the
    bytes of the period's files before it); DuckDB's own ``tmp_`` name counts too."""
    import time

    from activity_export.writer import _watching

    growing = tmp_path / ".activity.csv.partial"
    told: list[tuple[str, int]] = []
    with _watching(growing, "activity", 1000, lambda kind, size: told.append((kind, size))):
        pending = tmp_path / f"tmp_{growing.name}"
        with pending.open("wb") as handle:
            for _ in range(8):
                handle.write(b"x" * 4096)
                handle.flush()
                time.sleep(0.15)
    assert len(told) >= 3, told
    sizes = [size for _, size in told]
    assert sizes == sorted(sizes) and sizes[-1] > 1000 and all(kind == "activity" for kind, _ in told)
    count = len(told)
    time.sleep(0.6)
    assert len(told) == count, "nothing is told once the file is written"
