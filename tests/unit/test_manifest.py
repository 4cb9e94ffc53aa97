"""The manifest is a Frictionless Data Package that the receivers' own validator accepts.

Every golden case (tests/support/golden.py) is written again with ``manifest: true`` and validated
with the ``frictionless`` library exactly as a receiver would: rows, bytes, SHA-256, dialect,
types, timestamp formats and the allowed activity values are all checked by it, against the files
as delivered. zstd is not a compression frictionless reads: as a receiver would, the test checks
the SHA-256 of the delivered bytes itself, decompresses, and validates the rest.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from activity_export.manifest import LAYOUT_VERSION
from activity_export.periods import parse_period
from activity_export.warehouse import Target, Warehouse, connect
from activity_export.writer import WrittenFile, write_period
from tests.support.golden import (
    ACTIVITIES,
    BROADCASTS,
    GOLDEN_CASES,
    create_export_relations,
    decompressed,
    fill_export_relations,
    tenant,
)

try:
    from frictionless import Report, system, validate
except ImportError:  # a missing prerequisite fails loudly, never skips
    pytest.fail(
        "the tests validate manifests with frictionless: pip install -c constraints.txt -e '.[dev]'",
        pytrace=False,
    )


def _write(warehouse: Warehouse, tmp_path: Path, settings: dict[str, Any], period: str) -> list[WrittenFile]:
    configured = tenant(**{**settings, "manifest": True})
    return write_period(warehouse, configured, parse_period(configured, period), tmp_path)


def _check_delivered_bytes(manifest: Path, descriptor: dict[str, Any]) -> None:
    """What ``sha256sum -c`` does for a receiver: every file is there with its size and hash."""
    for entry in descriptor["resources"]:
        data = (manifest.parent / entry["path"]).read_bytes()
        assert entry["bytes"] == len(data), entry["path"]
        assert entry["hash"] == "sha256:" + hashlib.sha256(data).hexdigest(), entry["path"]


def _decoded(manifest: Path, descriptor: dict[str, Any]) -> Path:
    """Decompress zstd files beside the manifest and describe the plain files instead."""
    plain = copy.deepcopy(descriptor)
    for entry in plain["resources"]:
        if entry.get("compression") == "zst":
            source = manifest.parent / entry["path"]
            target = source.with_name(source.name.removesuffix(".zst"))
            target.write_bytes(decompressed(source))
            entry["path"] = entry["path"].removesuffix(".zst")
            for key in ("compression", "bytes", "hash"):
                del entry[key]
    path = manifest.with_name("decoded_" + manifest.name)
    path.write_text(json.dumps(plain), encoding="utf-8")
    return path


def _report(path: Path) -> Report:
    descriptor = json.loads(path.read_text(encoding="utf-8"))
    # with a folder template the manifest's folder is not the data's: paths climb up with "../",
    # which frictionless only follows when told to trust the descriptor (--trusted)
    trusted = any(entry["path"].startswith("../") for entry in descriptor["resources"])
    with system.use_context(trusted=trusted):
        report: Report = validate(str(path))
    return report


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_every_golden_case_validates_with_frictionless(
    case: str, warehouse: Warehouse, tmp_path: Path
) -> None:
    settings, period = GOLDEN_CASES[case]
    files = _write(warehouse, tmp_path, settings, period)
    manifest = files[-1].path
    assert files[-1].kind == "manifest"
    descriptor = json.loads(manifest.read_text(encoding="utf-8"))
    _check_delivered_bytes(manifest, descriptor)
    target = _decoded(manifest, descriptor) if settings.get("compression") == "zstd" else manifest
    report = _report(target)
    assert report.valid, report.flatten(["rowNumber", "fieldNumber", "type", "note"])
    checked = {task.name: task.stats["rows"] for task in report.tasks}
    assert checked == {f.kind: f.rows for f in files[:-1]}
    assert [entry["name"] for entry in descriptor["resources"]] == [f.kind for f in files[:-1]]


def test_frictionless_notices_a_changed_file(warehouse: Warehouse, tmp_path: Path) -> None:
    files = _write(warehouse, tmp_path, {}, "2026-11-25")
    broadcast = files[1].path
    broadcast.write_bytes(broadcast.read_bytes().replace(b"Winter sale", b"Winter SALE"))
    assert _report(files[-1].path).flatten(["type"]) == [["hash-count"]]
    broadcast.write_bytes(broadcast.read_bytes() + b"999;SINGLE;;;\n")
    assert ["byte-count"] in _report(files[-1].path).flatten(["type"])


def test_frictionless_notices_a_value_outside_the_schema(warehouse: Warehouse, tmp_path: Path) -> None:
    files = _write(warehouse, tmp_path, {}, "2026-11-25")
    manifest = files[-1].path
    activity = files[0].path
    activity.write_bytes(activity.read_bytes().replace(b";OPEN;", b";VIEWED;", 1))
    descriptor = json.loads(manifest.read_text(encoding="utf-8"))
    for entry in descriptor["resources"]:
        del entry["bytes"], entry["hash"]  # only the schema may catch it
    manifest.write_text(json.dumps(descriptor), encoding="utf-8")
    errors = _report(manifest).flatten(["type", "fieldName"])
    assert ["constraint-error", "activity"] in errors


def test_package_states_brand_period_watermark_and_versions(warehouse: Warehouse, tmp_path: Path) -> None:
    files = _write(
        warehouse,
        tmp_path,
        {"interval": "hourly", "timezone": "Asia/Kolkata", "folder": "{kind}", "erasures": True},
        "2026-11-25T13",
    )
    manifest = files[-1]
    assert manifest.relative.as_posix() == "manifest/manifest_GOLD_2026112513.json"
    package = json.loads(manifest.path.read_text(encoding="utf-8"))
    assert package["profile"] == "tabular-data-package"
    assert package["brand"] == "GOLD"
    assert package["period"] == {
        "label": "2026-11-25T13",
        "interval": "hourly",
        "timezone": "Asia/Kolkata",
        "start": "2026-11-25T13:00:00+05:30",
        "end": "2026-11-25T14:00:00+05:30",
        "startUtc": "2026-11-25T07:30:00Z",
        "endUtc": "2026-11-25T08:30:00Z",
    }
    assert package["watermark"] == "2027-01-01T00:00:00Z"
    assert package["layoutVersion"] == LAYOUT_VERSION
    assert package["productVersion"]
    paths = [entry["path"] for entry in package["resources"]]
    assert paths == [
        "../activity/activity_GOLD_2026112513.csv",
        "../broadcast/broadcast_GOLD_2026112513.csv",
        "../erasure/erasure_GOLD_2026112513.csv",
    ]
    activity = package["resources"][0]["schema"]["fields"]
    date = next(field for field in activity if field["name"] == "activitydate")
    assert date["format"] == "%Y-%m-%d %H:%M:%S" and date["timezone"] == "Asia/Kolkata"
    kinds = next(field for field in activity if field["name"] == "activity")
    # the SPEC's values, from the accepted_values test of the contract
    assert kinds["constraints"]["enum"] == [
        "BROADCAST",
        "OPEN",
        "CLICK",
        "SOFTBOUNCE",
        "HARDBOUNCE",
        "COMPLAINT",
        "UNSUBSCRIBE",
    ]


@pytest.mark.parametrize(
    ("timestamps", "pattern", "zone", "words"),
    [
        ("local", "%Y-%m-%d %H:%M:%S", "Europe/Amsterdam", "Local time in Europe/Amsterdam."),
        ("offset", "%Y-%m-%d %H:%M:%S%z", "Europe/Amsterdam", "with its UTC offset"),
        ("utc", "%Y-%m-%dT%H:%M:%S%z", "UTC", "UTC"),
    ],
)
def test_timestamp_fields_say_how_their_text_parses(
    timestamps: str, pattern: str, zone: str, words: str, warehouse: Warehouse, tmp_path: Path
) -> None:
    files = _write(warehouse, tmp_path, {"timestamps": timestamps}, "2026-10-25")
    package = json.loads(files[-1].path.read_text(encoding="utf-8"))
    fields = package["resources"][0]["schema"]["fields"]
    date = next(field for field in fields if field["name"] == "activitydate")
    assert (date["format"], date["timezone"]) == (pattern, zone)
    assert words in date["description"]
    # strptime with the manifest's own format reads every date of the file back to its instant
    with files[0].path.open(newline="", encoding="utf-8") as handle:
        texts = [row["activitydate"] for row in csv.DictReader(handle, delimiter=";")]
    parsed = [datetime.strptime(text, pattern) for text in texts]
    if timestamps != "local":
        assert [moment.astimezone(UTC).strftime("%H:%M") for moment in parsed] == [
            "22:00",
            "00:30",
            "01:30",
            "22:59",
        ]


def test_renamed_columns_keep_their_field_name_as_title(warehouse: Warehouse, tmp_path: Path) -> None:
    settings, period = GOLDEN_CASES["extras_renamed_manifest"]
    files = _write(warehouse, tmp_path, settings, period)
    package = json.loads(files[-1].path.read_text(encoding="utf-8"))
    fields = package["resources"][0]["schema"]["fields"]
    renamed = next(field for field in fields if field["name"] == "klantnummer")
    assert renamed["title"] == "externalid"
    assert package["resources"][0]["schema"]["primaryKey"] == ["eventid"]
    assert package["resources"][1]["schema"]["primaryKey"] == ["broadcastid"]


def test_the_frictionless_command_line_accepts_a_delivery(warehouse: Warehouse, tmp_path: Path) -> None:
    files = _write(warehouse, tmp_path, {"compression": "gzip", "erasures": True}, "2026-11-25")
    command = Path(sys.executable).parent / "frictionless"
    done = subprocess.run(
        [str(command), "validate", "--json", str(files[-1].path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads(done.stdout)["valid"] is True


def test_late_and_held_rows_are_counted(tmp_path: Path) -> None:
    """A row that arrived after its registration period was exported is in the next file and
    counted late; an event of the period still waiting for its customer row is counted held."""
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    create_export_relations(con)
    fill_export_relations(con, ACTIVITIES, BROADCASTS)
    # event 1006 registered on 2026-11-24 but reached the warehouse after that day was exported
    con.execute(
        "update main.export_activities set available_at = timestamptz '2026-11-25 06:00:00+00'"
        " where event_id = 1006"
    )
    con.execute(
        "insert into main.export_held_events values"
        " (3001, 'GOLD', 101, 500, timestamptz '2026-11-25 10:00:00+00', 'customer'),"
        " (3002, 'GOLD', 101, 501, timestamptz '2026-11-26 10:00:00+00', 'customer')"
    )
    con.close()
    configured = tenant(manifest=True)
    target = Target("late", "duckdb", "main", duckdb_path=tmp_path / "warehouse.duckdb")
    with connect(target) as opened:
        files = write_period(opened, configured, parse_period(configured, "2026-11-25"), tmp_path / "out")
    package = json.loads(files[-1].path.read_text(encoding="utf-8"))
    assert (package["lateRows"], package["heldRows"]) == (1, 1)
    assert files[0].rows == 13 and b"e@x.nl" in files[0].path.read_bytes()  # the late row is in
    assert _report(files[-1].path).valid
