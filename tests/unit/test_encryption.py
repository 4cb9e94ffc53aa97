"""OpenPGP encryption: the receiver's real ``gpg`` decrypts every file to the plain export's bytes.

The keys (the ``keys`` fixture, tests/support/pgp.py) are made with ``gpg`` in a temporary home: a
receiver with an encryption subkey, a second receiver, a key that expired, a sign-only key and a
file that is not a key. ``check`` must refuse the bad ones with exit code 2 before any work is done.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from activity_export.cli import app
from activity_export.deliver import Context
from activity_export.encryption import read_recipient
from activity_export.periods import parse_now, parse_period
from activity_export.runs import Run, deliver_one
from activity_export.warehouse import Warehouse, read_watermark
from activity_export.writer import write_period
from tests.support.golden import GOLDEN, GOLDEN_CASES, decompressed, tenant
from tests.support.pgp import Keys


def _pgp(keys: Keys, **settings: Any) -> dict[str, Any]:
    return {"encryption": "pgp", "recipients": [str(keys.receiver), str(keys.second)], **settings}


@pytest.mark.parametrize(
    "case",
    ["default", "gzip", "zstd", "no_header", "tab_delimiter", "hourly_kolkata", "erasures_manifest"],
)
def test_gpg_decrypts_every_file_to_the_plain_export(
    case: str, keys: Keys, warehouse: Warehouse, tmp_path: Path
) -> None:
    settings, period_text = GOLDEN_CASES[case]
    configured = tenant(**_pgp(keys, **settings))
    files = write_period(warehouse, configured, parse_period(configured, period_text), tmp_path)
    data = [f for f in files if f.kind != "manifest"]
    assert data and all(f.relative.name.endswith(".gpg") for f in data)
    for written in data:
        sealed = written.path.read_bytes()
        assert written.sha256 == hashlib.sha256(sealed).hexdigest() and written.bytes == len(sealed)
        opened = tmp_path / "opened" / written.relative.name.removesuffix(".gpg")
        opened.parent.mkdir(exist_ok=True)
        opened.write_bytes(keys.decrypt(written.path))
        plain_name = opened.name.removesuffix(".gz").removesuffix(".zst")
        expected = (GOLDEN / case / plain_name).read_bytes()
        assert decompressed(opened) == expected, f"{written.relative} differs from tests/golden/{case}"


def test_only_encrypted_files_and_the_plain_manifest_are_left(
    keys: Keys, warehouse: Warehouse, tmp_path: Path
) -> None:
    configured = tenant(**_pgp(keys, manifest=True, erasures=True, compression="gzip"))
    files = write_period(warehouse, configured, parse_period(configured, "2026-11-25"), tmp_path)
    assert sorted(p.name for p in tmp_path.rglob("*")) == [
        "activity_GOLD_20261125.csv.gz.gpg",
        "broadcast_GOLD_20261125.csv.gz.gpg",
        "erasure_GOLD_20261125.csv.gz.gpg",
        "manifest_GOLD_20261125.json",
    ]
    package = json.loads(files[-1].path.read_text(encoding="utf-8"))
    for entry, written in zip(package["resources"], files[:-1], strict=True):
        assert entry["path"] == written.relative.name
        assert entry["encryption"] == "openpgp" and entry["compression"] == "gz"
        assert entry["hash"] == "sha256:" + hashlib.sha256(written.path.read_bytes()).hexdigest()
        assert entry["bytes"] == written.path.stat().st_size
    # any one of the recipients can decrypt: the second key alone is enough
    keys.gpg("--yes", "--delete-secret-and-public-key", _fingerprint(keys, keys.receiver))
    try:
        assert b"101;1;K-1;a@x.nl;BROADCAST" in decompressed_bytes(keys.decrypt(files[0].path))
    finally:
        keys.gpg("--import", str(keys.receiver))


def decompressed_bytes(data: bytes) -> bytes:
    return gzip.decompress(data)


def _fingerprint(keys: Keys, path: Path) -> str:
    return read_recipient(path).fingerprint


def test_usable_keys_are_read_with_their_fingerprint(keys: Keys) -> None:
    for path in (keys.receiver, keys.second):
        key = read_recipient(path)
        assert len(key.fingerprint) == 40 and "@gold.example" in key.user_id


@pytest.mark.parametrize(
    ("which", "words"),
    [
        ("expired", "expired on 2020-01-02"),
        ("sign_only", "has no valid encryption (sub)key"),
        ("not_a_key", "holds no OpenPGP public key"),
        ("missing", "no such file"),
    ],
)
def test_check_refuses_a_key_that_cannot_be_encrypted_to(
    which: str, words: str, keys: Keys, tmp_path: Path
) -> None:
    bad = tmp_path / "missing.asc" if which == "missing" else getattr(keys, which)
    config = tmp_path / "tenants.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "tenants": {
                    "GOLD": {
                        "encryption": "pgp",
                        "recipients": [str(keys.receiver), str(bad)],
                        "destination": {"type": "local", "root": str(tmp_path / "out")},
                    }
                }
            }
        ),
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["check", "--config", str(config)])
    assert result.exit_code == 2, result.output
    problem = next(line for line in result.output.splitlines() if "recipients[1]" in line)
    assert f"tenant GOLD: recipients[1] = {str(bad)!r}: " in problem and words in problem
    assert "recipients[0]" not in result.output  # the good key is not reported


def test_a_resumed_period_keeps_the_manifest_true_to_the_encrypted_bytes_on_the_server(
    keys: Keys, warehouse: Warehouse, tmp_path: Path
) -> None:
    """After an interrupted run, files already delivered are not sent again; encrypting them again
    gives other bytes, so the manifest must describe the ones on the server, not the new copy."""
    server = tmp_path / "server"
    configured = tenant(
        **_pgp(keys, manifest=True, start="2026-11-25"), destination={"type": "local", "root": str(server)}
    )
    ledger = tmp_path / "ledger.sqlite"
    now = parse_now("2026-11-26T07:00:00+01:00")
    run = Run([configured], ledger, Context("tenants.yml", now))
    assert not deliver_one(run, warehouse, configured, read_watermark(warehouse)).failed
    first_activity = (server / "activity_GOLD_20261125.csv.gpg").read_bytes()
    # as if the run had died before the broadcast file and the manifest were published
    with sqlite3.connect(ledger) as db:
        db.execute("update deliveries set status = 'uploading' where kind in ('broadcast', 'manifest')")
    db.close()
    (server / "manifest_GOLD_20261125.json").unlink()
    assert not deliver_one(run, warehouse, configured, read_watermark(warehouse)).failed
    assert (server / "activity_GOLD_20261125.csv.gpg").read_bytes() == first_activity  # not sent again
    package = json.loads((server / "manifest_GOLD_20261125.json").read_text(encoding="utf-8"))
    for entry in package["resources"]:
        on_server = (server / entry["path"]).read_bytes()
        assert entry["hash"] == "sha256:" + hashlib.sha256(on_server).hexdigest(), entry["path"]
        assert entry["bytes"] == len(on_server)
