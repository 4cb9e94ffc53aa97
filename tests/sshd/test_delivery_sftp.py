"""The nightly job against a real OpenSSH server: delivered files checked with OpenSSH's own sftp."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.support.pgp import Keys
from tests.support.project import Project
from tests.support.sshd import SshServer
from tests.support.tenants import EXPECTED, NOW, run, sftp_tenant, write_tenants


def test_run_delivers_over_sftp_the_same_bytes_export_writes(
    built_duckdb: Project, sshd_server: SshServer, tmp_path: Path
) -> None:
    account = sshd_server.add_account()
    known_hosts = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    config = write_tenants(
        tmp_path / "tenants.yml", {"BRANDNAAM": sftp_tenant(sshd_server, account, known_hosts)}
    )

    result = built_duckdb.run("run", "--config", str(config), "--now", NOW, *built_duckdb.cli_args())
    assert "sftp://" in result.stdout

    listing = sshd_server.openssh_sftp(account, "ls -1 /upload\n")
    assert listing.returncode == 0, listing.stderr
    names = sorted(
        line.strip().rsplit("/", 1)[-1] for line in listing.stdout.splitlines() if "_BRANDNAAM_" in line
    )
    assert names == sorted(
        f"{k}_BRANDNAAM_2026110{d}.csv" for k in ("activity", "broadcast") for d in (1, 2, 3)
    )

    built_duckdb.run(
        "export",
        "--config",
        str(config),
        "--brand",
        "BRANDNAAM",
        "--period",
        "2026-11-02",
        "--out",
        str(tmp_path / "local"),
        *built_duckdb.cli_args(),
    )
    fetched = tmp_path / "fetched.csv"
    get = sshd_server.openssh_sftp(account, f"get /upload/activity_BRANDNAAM_20261102.csv {fetched}\n")
    assert get.returncode == 0, get.stderr
    assert fetched.read_bytes() == (tmp_path / "local" / "activity_BRANDNAAM_20261102.csv").read_bytes()


def test_unreachable_server_fails_its_tenant_only_and_is_recorded(
    built_duckdb: Project, sshd_server: SshServer, tmp_path: Path
) -> None:
    account = sshd_server.add_account()
    known_hosts = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    down = sftp_tenant(sshd_server, account, known_hosts)
    down["destination"]["port"] = 1  # nothing listens there
    config = write_tenants(
        tmp_path / "tenants.yml",
        {
            "BRANDNAAM": down,
            "MODEHUIS": {
                "start": "2026-11-01",
                "destination": {"type": "local", "root": str(tmp_path / "ok")},
            },
        },
    )
    result = built_duckdb.run(
        "run",
        "--config",
        str(config),
        "--now",
        NOW,
        *built_duckdb.cli_args(),
        check=False,
        env={"ACTIVITY_EXPORT_SFTP_RETRY_SECONDS": "2"},
    )
    assert result.returncode == 1
    assert "BRANDNAAM" in result.stderr and "127.0.0.1:1" in result.stderr
    assert len(list((tmp_path / "ok").glob("*.csv"))) == 6
    status = built_duckdb.run(
        "status", "--config", str(config), "--now", NOW, "--json", *built_duckdb.cli_args()
    )
    by_brand = {entry["brand"]: entry for entry in json.loads(status.stdout)["tenants"]}
    assert by_brand["BRANDNAAM"]["last_delivered"] is None
    assert by_brand["BRANDNAAM"]["pending"] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert by_brand["MODEHUIS"]["last_delivered"] == "2026-11-03"
    with sqlite3.connect(tmp_path / "activity-export.ledger.sqlite") as db:
        [(outcome, error)] = db.execute(
            "select outcome, error from attempts where brand = 'BRANDNAAM'"
        ).fetchall() or [(None, None)]
    assert outcome == "failed" and "127.0.0.1:1" in error


def test_wrong_password_is_refused_without_showing_it(
    built_duckdb: Project, sshd_server: SshServer, tmp_path: Path
) -> None:
    account = sshd_server.add_account(password="right-horse-battery")
    known_hosts = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    tenant = sftp_tenant(sshd_server, account, known_hosts)
    del tenant["destination"]["private_key"]
    tenant["destination"]["password_env"] = "BRAND_SFTP_PASSWORD"
    config = write_tenants(tmp_path / "tenants.yml", {"BRANDNAAM": tenant})
    secret = "wrong-staple-Secret-42"
    result = built_duckdb.run(
        "-v",
        "run",
        "--config",
        str(config),
        "--now",
        NOW,
        *built_duckdb.cli_args(),
        check=False,
        env={"BRAND_SFTP_PASSWORD": secret},
    )
    assert result.returncode == 1
    assert "BRANDNAAM" in result.stderr
    assert secret not in result.stdout + result.stderr
    ledger = (tmp_path / "activity-export.ledger.sqlite").read_bytes()
    assert b"authentication" in ledger.lower() or b"password" in ledger.lower()
    assert secret.encode() not in ledger


def test_prune_deletes_only_our_own_expired_files(
    sshd_server: SshServer, tmp_path: Path, built_duckdb: Project
) -> None:
    account = sshd_server.add_account()
    known_hosts = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    config = write_tenants(
        tmp_path / "tenants.yml",
        {"BRANDNAAM": sftp_tenant(sshd_server, account, known_hosts, retention_days=60)},
    )
    names = {
        "activity_BRANDNAAM_20260801.csv": True,  # expired
        "broadcast_BRANDNAAM_20260801.csv": True,
        "activity_BRANDNAAM_20261101.csv": False,  # recent
        "activity_OTHER_20260801.csv": False,  # another brand's
        "activity_BRANDNAAM_20260801.csv.bak": False,  # not our name
        "notes.txt": False,
    }
    for name in names:
        (account.upload / name).write_text("x\n")
    dry = built_duckdb.run("prune", "--config", str(config), "--now", NOW, "--dry-run")
    assert "would delete 2 files" in dry.stdout
    assert sorted(p.name for p in account.upload.iterdir()) == sorted(names)

    built_duckdb.run("prune", "--config", str(config), "--now", NOW)
    assert sorted(p.name for p in account.upload.iterdir()) == sorted(
        n for n, gone in names.items() if not gone
    )


def test_sftp_resume_publishes_again_when_the_remote_content_differs(
    built_duckdb: Project, sshd_server: SshServer, tmp_path: Path
) -> None:
    account = sshd_server.add_account()
    known_hosts = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    config = write_tenants(
        tmp_path / "tenants.yml", {"BRANDNAAM": sftp_tenant(sshd_server, account, known_hosts)}
    )
    killed = run(built_duckdb, config, check=False, env={"ACTIVITY_EXPORT_FAILPOINT": "after-upload"})
    assert killed.returncode == -9, killed.stderr
    [published] = [p for p in account.upload.iterdir() if p.name.endswith(".csv")]
    original = published.read_bytes()
    published.write_bytes(original.replace(b";", b",", 1))  # same size, other content

    run(built_duckdb, config)
    assert published.read_bytes() == original
    assert sorted(p.name for p in account.upload.iterdir()) == sorted(EXPECTED)


def test_check_connect_logs_in_and_names_the_tenant_it_cannot_trust(
    built_duckdb: Project, sshd_server: SshServer, tmp_path: Path
) -> None:
    good, other = sshd_server.add_account(), sshd_server.add_account()
    known_hosts = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    config = write_tenants(
        tmp_path / "tenants.yml",
        {
            "BRANDNAAM": sftp_tenant(sshd_server, good, known_hosts),
            "MODEHUIS": sftp_tenant(sshd_server, other, empty),
        },
    )
    result = built_duckdb.run("check", "--config", str(config), "--connect", check=False)
    assert result.returncode == 1
    lines = {
        line.split(":")[0]: line
        for line in result.stdout.splitlines()
        if line.startswith(("BRANDNAAM:", "MODEHUIS:"))
    }
    assert "ok" in lines["BRANDNAAM"] and "probe" in lines["BRANDNAAM"]
    assert (
        "FAILED" in lines["MODEHUIS"]
        and "SHA256:" in lines["MODEHUIS"]
        and "ssh-keyscan" in lines["MODEHUIS"]
    )
    assert list(good.upload.iterdir()) == []  # the probe file was removed again


def test_run_delivers_encrypted_parquet_that_decrypts_to_what_export_writes(
    built_duckdb: Project, sshd_server: SshServer, keys: Keys, tmp_path: Path
) -> None:
    account = sshd_server.add_account()
    known_hosts = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    sealed = {
        **sftp_tenant(sshd_server, account, known_hosts),
        "format": "parquet",
        "encryption": "pgp",
        "recipients": [str(keys.receiver)],
        "manifest": True,
    }
    config = write_tenants(tmp_path / "tenants.yml", {"BRANDNAAM": sealed})
    built_duckdb.run("run", "--config", str(config), "--now", NOW, *built_duckdb.cli_args())

    days = ("20261101", "20261102", "20261103")
    assert sorted(p.name for p in account.upload.iterdir()) == sorted(
        [f"{kind}_BRANDNAAM_{day}.parquet.gpg" for kind in ("activity", "broadcast") for day in days]
        + [f"manifest_BRANDNAAM_{day}.json" for day in days]
    )
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    get = sshd_server.openssh_sftp(account, f"get /upload/*_BRANDNAAM_20261102.* {fetched}/\n")
    assert get.returncode == 0, get.stderr
    manifest = json.loads((fetched / "manifest_BRANDNAAM_20261102.json").read_text(encoding="utf-8"))
    for entry in manifest["resources"]:
        data = (fetched / entry["path"]).read_bytes()
        assert entry["encryption"] == "openpgp" and entry["format"] == "parquet"
        assert entry["hash"] == "sha256:" + hashlib.sha256(data).hexdigest()

    plain = write_tenants(
        tmp_path / "plain" / "tenants.yml",
        {"BRANDNAAM": {"format": "parquet", "destination": {"type": "local", "root": str(tmp_path / "x")}}},
    )
    out = tmp_path / "plain" / "export"
    built_duckdb.run(
        "export", "--config", str(plain), "--brand", "BRANDNAAM", "--period", "2026-11-02", "--out", str(out),
        *built_duckdb.cli_args(),
    )  # fmt: skip
    for kind in ("activity", "broadcast"):
        opened = keys.decrypt(fetched / f"{kind}_BRANDNAAM_20261102.parquet.gpg")
        assert opened == (out / f"{kind}_BRANDNAAM_20261102.parquet").read_bytes()
    table = pq.read_table(out / "activity_BRANDNAAM_20261102.parquet")
    assert table.num_rows == manifest["resources"][0]["rows"] > 0
    assert table.schema.field("customerid").type == pa.int64()
