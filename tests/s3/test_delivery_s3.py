"""The nightly job against a real S3-compatible store (SeaweedFS): objects read back with boto3,
as a receiver loading from the bucket would."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import sqlite3
import time
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from activity_export.config import parse_config
from activity_export.destinations import s3 as s3_module
from activity_export.destinations.s3 import S3Bucket, S3Error
from tests.support.pgp import Keys
from tests.support.project import Project
from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedServer
from tests.support.tenants import EXPECTED, NOW, run, run_stopped_at, write_tenants

PREFIX = "activity-export/"
CREDENTIALS = {"BRAND_S3_KEY_ID": ACCESS_KEY, "BRAND_S3_SECRET": SECRET_KEY}


def s3_destination(server: SeaweedServer, bucket: str, **settings: object) -> dict[str, Any]:
    """A tenant's destination: ``bucket`` on the test store, credentials from BRAND_S3_* variables."""
    destination: dict[str, Any] = {
        "type": "s3",
        "bucket": bucket,
        "prefix": PREFIX,
        "region": "us-east-1",
        "endpoint_url": server.endpoint,
        "access_key_id_env": "BRAND_S3_KEY_ID",
        "secret_access_key_env": "BRAND_S3_SECRET",
    }
    destination.update(settings)
    return destination


def s3_config(path: Path, server: SeaweedServer, bucket: str, /, **settings: Any) -> Path:
    """``path/tenants.yml``: BRANDNAAM from 2026-11-01 into ``bucket``; ``settings`` added to the tenant."""
    destination = settings.pop("destination", {})
    tenant = {"start": "2026-11-01", "destination": s3_destination(server, bucket, **destination), **settings}
    return write_tenants(path / "tenants.yml", {"BRANDNAAM": tenant})


def export(project: Project, config: Path, out: Path, *days: int) -> dict[str, bytes]:
    """What ``export`` writes for these days of November 2026: name -> bytes."""
    for day in days:
        project.run(
            "export", "--config", str(config), "--brand", "BRANDNAAM", "--period", f"2026-11-0{day}",
            "--out", str(out), *project.cli_args(),
        )  # fmt: skip
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def bucket_for(server: SeaweedServer, bucket: str, **settings: object) -> S3Bucket:
    """The loader's own destination object for ``bucket`` (credentials from CREDENTIALS)."""
    raw = {"tenants": {"T": {"destination": s3_destination(server, bucket, **settings)}}}
    return S3Bucket(parse_config(raw, Path("tenants.yml")).tenant("T").destination, "T")  # type: ignore[arg-type]


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


# -- through the command line ------------------------------------------------------------------


def test_run_delivers_to_s3_the_same_bytes_export_writes(
    built_duckdb: Project, s3_server: SeaweedServer, bucket: str, tmp_path: Path
) -> None:
    config = s3_config(tmp_path, s3_server, bucket)

    result = run(built_duckdb, config, env=CREDENTIALS)
    assert f"s3://{bucket}/{PREFIX}" in result.stdout

    objects = s3_server.objects(bucket)
    assert sorted(objects) == sorted(PREFIX + name for name in EXPECTED)
    exported = export(built_duckdb, config, tmp_path / "local", 1, 2, 3)
    assert {key.removeprefix(PREFIX): body for key, body in objects.items()} == exported
    # the ledger holds each object's SHA-256, as the store reports it
    with sqlite3.connect(tmp_path / "activity-export.ledger.sqlite") as db:
        recorded = dict(db.execute("select remote_path, sha256 from deliveries where status = 'delivered'"))
    assert recorded == {
        f"s3://{bucket}/{key}": hashlib.sha256(body).hexdigest() for key, body in objects.items()
    }
    client = s3_server.client()
    head = client.head_object(Bucket=bucket, Key=PREFIX + EXPECTED[0], ChecksumMode="ENABLED")
    assert base64.b64decode(head["ChecksumSHA256"]).hex() == recorded[f"s3://{bucket}/{PREFIX}{EXPECTED[0]}"]


def test_a_second_run_uploads_nothing_and_force_delivers_again(
    built_duckdb: Project, s3_server: SeaweedServer, bucket: str, tmp_path: Path
) -> None:
    config = s3_config(tmp_path, s3_server, bucket)
    run(built_duckdb, config, env=CREDENTIALS)
    first = s3_server.last_modified(bucket)
    time.sleep(1.1)  # S3's LastModified counts seconds

    again = built_duckdb.run(
        "-v", "run", "--config", str(config), "--now", NOW, *built_duckdb.cli_args(), env=CREDENTIALS
    )
    assert "published" not in again.stderr
    assert s3_server.last_modified(bucket) == first

    forced = built_duckdb.run(
        "-v",
        "run",
        "--config",
        str(config),
        "--now",
        NOW,
        "--force",
        *built_duckdb.cli_args(),
        env=CREDENTIALS,
    )
    assert forced.stderr.count("published ") == len(EXPECTED), forced.stderr
    after = s3_server.last_modified(bucket)
    assert sorted(after) == sorted(first)
    assert all(after[key][0] > first[key][0] for key in first)


def test_a_killed_run_is_finished_by_the_next_without_duplicates(
    built_duckdb: Project, s3_server: SeaweedServer, bucket: str, tmp_path: Path
) -> None:
    config = s3_config(tmp_path, s3_server, bucket)
    killed = run(
        built_duckdb, config, check=False, env={**CREDENTIALS, "ACTIVITY_EXPORT_FAILPOINT": "after-upload"}
    )
    assert killed.returncode == -9, killed.stderr
    [uploaded] = s3_server.last_modified(bucket).items()  # one object, whole
    time.sleep(1.1)

    finished = built_duckdb.run(
        "-v", "run", "--config", str(config), "--now", NOW, *built_duckdb.cli_args(), env=CREDENTIALS
    )
    assert "found after an interrupted run" in finished.stderr
    objects = s3_server.objects(bucket)
    assert sorted(objects) == sorted(PREFIX + name for name in EXPECTED)
    assert s3_server.last_modified(bucket)[uploaded[0]] == uploaded[1]  # not uploaded twice
    exported = export(built_duckdb, config, tmp_path / "local", 1, 2, 3)
    assert {key.removeprefix(PREFIX): body for key, body in objects.items()} == exported
    status = built_duckdb.run(
        "status", "--config", str(config), "--now", NOW, "--json", *built_duckdb.cli_args()
    )
    [entry] = json.loads(status.stdout)["tenants"]
    assert entry["last_delivered"] == "2026-11-03" and entry["pending"] == []


def test_a_run_killed_mid_upload_leaves_no_object_and_the_next_delivers_all(
    built_duckdb: Project, s3_server: SeaweedServer, bucket: str, tmp_path: Path
) -> None:
    config = s3_config(tmp_path, s3_server, bucket)
    killed = run(
        built_duckdb, config, check=False, env={**CREDENTIALS, "ACTIVITY_EXPORT_FAILPOINT": "mid-upload"}
    )
    assert killed.returncode == -9, killed.stderr
    assert s3_server.objects(bucket) == {}

    run(built_duckdb, config, env=CREDENTIALS)
    assert sorted(s3_server.objects(bucket)) == sorted(PREFIX + name for name in EXPECTED)


def test_a_signal_during_an_upload_stops_the_run_with_every_object_whole(
    built_duckdb: Project, s3_server: SeaweedServer, bucket: str, tmp_path: Path
) -> None:
    config = s3_config(tmp_path, s3_server, bucket)
    code, out, err = run_stopped_at(built_duckdb, config, CREDENTIALS, "mid-upload", signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, err
    assert "INTERRUPTED" in out
    exported = export(built_duckdb, config, tmp_path / "local", 1, 2, 3)
    stopped = s3_server.objects(bucket)
    assert len(stopped) < len(EXPECTED)  # it stopped
    for key, body in stopped.items():  # and what is there is whole
        assert body == exported[key.removeprefix(PREFIX)]
    assert s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []

    run(built_duckdb, config, env=CREDENTIALS)  # the next run finishes the job
    objects = s3_server.objects(bucket)
    assert {key.removeprefix(PREFIX): body for key, body in objects.items()} == exported


def test_wrong_credentials_fail_the_tenant_without_showing_the_secret(
    built_duckdb: Project, s3_server: SeaweedServer, bucket: str, tmp_path: Path
) -> None:
    secret = "wrong-Secret-Key-0123456789abcdefXYZ"
    config = write_tenants(
        tmp_path / "tenants.yml",
        {
            "BRANDNAAM": {"start": "2026-11-01", "destination": s3_destination(s3_server, bucket)},
            "MODEHUIS": {
                "start": "2026-11-01",
                "destination": {"type": "local", "root": str(tmp_path / "ok")},
            },
        },
    )
    result = built_duckdb.run(
        "-vv", "run", "--config", str(config), "--now", NOW, *built_duckdb.cli_args(),
        check=False, env={"BRAND_S3_KEY_ID": ACCESS_KEY, "BRAND_S3_SECRET": secret},
    )  # fmt: skip
    assert result.returncode == 1
    assert "BRANDNAAM" in result.stderr and "check the credentials" in result.stderr
    assert secret not in result.stdout + result.stderr
    assert len(list((tmp_path / "ok").glob("*.csv"))) == 6
    assert s3_server.objects(bucket) == {}
    ledger = (tmp_path / "activity-export.ledger.sqlite").read_bytes()
    assert secret.encode() not in ledger

    unset = built_duckdb.run(
        "run", "--config", str(config), "--now", NOW, "--brand", "BRANDNAAM", *built_duckdb.cli_args(),
        check=False, env={"BRAND_S3_KEY_ID": ACCESS_KEY, "BRAND_S3_SECRET": ""},
    )  # fmt: skip
    assert unset.returncode == 1 and "BRAND_S3_SECRET is not set" in unset.stderr


def test_check_connect_probes_the_bucket(
    built_duckdb: Project, s3_server: SeaweedServer, bucket: str, tmp_path: Path
) -> None:
    config = write_tenants(
        tmp_path / "tenants.yml",
        {
            "BRANDNAAM": {"destination": s3_destination(s3_server, bucket)},
            "MODEHUIS": {"destination": s3_destination(s3_server, "no-such-bucket-here")},
        },
    )
    result = built_duckdb.run("check", "--config", str(config), "--connect", check=False, env=CREDENTIALS)
    assert result.returncode == 1
    lines = {
        line.split(":")[0]: line
        for line in result.stdout.splitlines()
        if line.startswith(("BRANDNAAM:", "MODEHUIS:"))
    }
    assert "ok" in lines["BRANDNAAM"] and "probe object" in lines["BRANDNAAM"], result.stdout
    assert "conditional writes honoured" in lines["BRANDNAAM"]
    assert "FAILED" in lines["MODEHUIS"] and "no-such-bucket-here" in lines["MODEHUIS"], result.stdout
    assert s3_server.objects(bucket) == {}  # the probe is gone


def test_prune_deletes_only_our_own_expired_objects(
    built_duckdb: Project, s3_server: SeaweedServer, bucket: str, tmp_path: Path
) -> None:
    config = s3_config(tmp_path, s3_server, bucket, destination={"retention_days": 60})
    names = {
        "activity_BRANDNAAM_20260801.csv": True,  # expired
        "broadcast_BRANDNAAM_20260801.csv": True,
        "activity_BRANDNAAM_20261101.csv": False,  # recent
        "activity_OTHER_20260801.csv": False,  # another brand's
        "activity_BRANDNAAM_20260801.csv.bak": False,  # not our name
        "notes.txt": False,
    }
    client = s3_server.client()
    for name in names:
        client.put_object(Bucket=bucket, Key=PREFIX + name, Body=b"x\n")
    client.put_object(Bucket=bucket, Key="elsewhere/activity_BRANDNAAM_20260801.csv", Body=b"x\n")

    dry = built_duckdb.run("prune", "--config", str(config), "--now", NOW, "--dry-run", env=CREDENTIALS)
    assert "would delete 2 files" in dry.stdout
    assert len(s3_server.objects(bucket)) == len(names) + 1

    built_duckdb.run("prune", "--config", str(config), "--now", NOW, env=CREDENTIALS)
    assert sorted(s3_server.objects(bucket)) == sorted(
        [PREFIX + n for n, gone in names.items() if not gone] + ["elsewhere/activity_BRANDNAAM_20260801.csv"]
    )


def test_manifest_and_encryption_work_as_for_other_destinations(
    built_duckdb: Project, s3_server: SeaweedServer, bucket: str, tmp_path: Path, keys: Keys
) -> None:
    config = s3_config(
        tmp_path, s3_server, bucket, manifest=True, encryption="pgp", recipients=[str(keys.receiver)]
    )
    run(built_duckdb, config, env=CREDENTIALS)
    objects = s3_server.objects(bucket, PREFIX)
    day = {key.removeprefix(PREFIX): body for key, body in objects.items() if "20261102" in key}
    assert sorted(day) == [
        "activity_BRANDNAAM_20261102.csv.gpg",
        "broadcast_BRANDNAAM_20261102.csv.gpg",
        "manifest_BRANDNAAM_20261102.json",
    ]
    manifest = json.loads(day["manifest_BRANDNAAM_20261102.json"])
    for resource in manifest["resources"]:
        assert hashlib.sha256(day[resource["path"]]).hexdigest() == resource["hash"].removeprefix("sha256:")
    encrypted = tmp_path / "activity.csv.gpg"
    encrypted.write_bytes(day["activity_BRANDNAAM_20261102.csv.gpg"])
    plain = export(built_duckdb, s3_config(tmp_path / "plain", s3_server, bucket), tmp_path / "local", 2)
    assert keys.decrypt(encrypted) == plain["activity_BRANDNAAM_20261102.csv"]


# -- the destination itself ---------------------------------------------------------------------


def test_an_object_already_there_is_replaced_only_when_asked(
    s3_server: SeaweedServer, bucket: str, tmp_path: Path, credentials: None
) -> None:
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key=PREFIX + "a/file.csv", Body=b"theirs\n")
    ours = tmp_path / "file.csv"
    ours.write_bytes(b"ours\n")
    with bucket_for(s3_server, bucket) as destination:
        with pytest.raises(S3Error, match="already holds other content"):
            destination.publish(ours, PurePosixPath("a/file.csv"), replace=False)
        assert s3_server.objects(bucket)[PREFIX + "a/file.csv"] == b"theirs\n"

        destination.publish(ours, PurePosixPath("a/file.csv"), replace=True)
        assert s3_server.objects(bucket)[PREFIX + "a/file.csv"] == b"ours\n"
        # the same bytes again, not forced: already published, nothing to refuse
        destination.publish(ours, PurePosixPath("a/file.csv"), replace=False)
        assert destination.sha256(PurePosixPath("a/file.csv")) == hashlib.sha256(b"ours\n").hexdigest()
        assert destination.sha256(PurePosixPath("a/none.csv")) is None
        assert not destination.exists(PurePosixPath("a/none.csv"))


def test_a_big_file_goes_up_in_parts_and_is_verified(
    s3_server: SeaweedServer, bucket: str, tmp_path: Path, credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "MULTIPART_THRESHOLD", 6 * 2**20)
    monkeypatch.setattr(s3_module, "PART_SIZE", 5 * 2**20)  # S3's smallest part
    big = tmp_path / "big.csv"
    big.write_bytes(os.urandom(12 * 2**20 + 12345))
    with bucket_for(s3_server, bucket) as destination:
        destination.publish(big, PurePosixPath("big.csv"), replace=False)
        assert destination.sha256(PurePosixPath("big.csv")) == hashlib.sha256(big.read_bytes()).hexdigest()
    head = s3_server.client().head_object(Bucket=bucket, Key=PREFIX + "big.csv", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"].endswith("-3")  # three parts, each checked by the store
    assert s3_server.objects(bucket)[PREFIX + "big.csv"] == big.read_bytes()
    unfinished = s3_server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert unfinished == []


def test_an_unfinished_upload_a_killed_run_left_is_aborted_by_the_next(
    s3_server: SeaweedServer, bucket: str, tmp_path: Path, credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(s3_module, "MULTIPART_THRESHOLD", 6 * 2**20)
    monkeypatch.setattr(s3_module, "PART_SIZE", 5 * 2**20)
    client = s3_server.client()
    left = client.create_multipart_upload(Bucket=bucket, Key=PREFIX + "big.csv", ChecksumAlgorithm="SHA256")
    client.upload_part(
        Bucket=bucket,
        Key=PREFIX + "big.csv",
        UploadId=left["UploadId"],
        PartNumber=1,
        Body=b"x" * 5 * 2**20,
        ChecksumAlgorithm="SHA256",
    )
    other = client.create_multipart_upload(Bucket=bucket, Key=PREFIX + "other.csv")
    big = tmp_path / "big.csv"
    big.write_bytes(os.urandom(7 * 2**20))
    with bucket_for(s3_server, bucket) as destination:
        destination.publish(big, PurePosixPath("big.csv"), replace=False)
    unfinished = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in unfinished] == [(PREFIX + "other.csv", other["UploadId"])]
    assert s3_server.objects(bucket)[PREFIX + "big.csv"] == big.read_bytes()


def test_without_env_keys_the_aws_credential_chain_is_used_or_its_absence_named(
    built_duckdb: Project, s3_server: SeaweedServer, bucket: str, tmp_path: Path
) -> None:
    destination = s3_destination(s3_server, bucket)
    del destination["access_key_id_env"], destination["secret_access_key_env"]
    config = write_tenants(tmp_path / "tenants.yml", {"BRANDNAAM": {"destination": destination}})
    nowhere = {
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
    }
    chain = built_duckdb.run(
        "check", "--config", str(config), "--connect",
        env={**nowhere, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY},
    )  # fmt: skip
    assert "probe object" in chain.stdout and "AWS credential chain" in chain.stdout

    none = built_duckdb.run("check", "--config", str(config), "--connect", check=False, env=nowhere)
    assert none.returncode == 1
    assert "no credentials; set destination.access_key_id_env" in none.stdout, none.stdout + none.stderr
