"""Hardening of SFTP delivery against a real OpenSSH sshd: key files, known_hosts as OpenSSH reads
it, file modes, and links planted in the tenant's folder. Everything through the command line."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

from tests.support.project import Project
from tests.support.sshd import Account, SshServer, generate_key, known_hosts_entry, public_key_line
from tests.support.tenants import sftp_destination, write_config

NOW = "2026-11-04T07:00:00+01:00"
EXPECTED = sorted(f"{k}_BRANDNAAM_2026110{d}.csv" for k in ("activity", "broadcast") for d in (1, 2, 3))


def account_config(
    base: Path, server: SshServer, account: Account, known_hosts: Path, **extra: object
) -> Path:
    """BRANDNAAM delivering to ``account``, in a configuration (and ledger) of its own per account."""
    return write_config(
        base / account.username, destination=sftp_destination(server, account, known_hosts), **extra
    )


def run(project: Project, config: Path) -> subprocess.CompletedProcess[str]:
    return project.run("run", "--config", str(config), "--now", NOW, *project.cli_args(), check=False)


def check(project: Project, config: Path) -> subprocess.CompletedProcess[str]:
    return project.run("check", "--config", str(config), "--now", NOW, check=False)


def delivered(account: Account) -> list[str]:
    return sorted(str(p.relative_to(account.upload)) for p in account.upload.rglob("*") if p.is_file())


def server_line(server: SshServer, name: str | None = None) -> str:
    host = name or f"[{server.host}]:{server.port}"
    return f"{host} {public_key_line(server.host_key)}\n"


# --- 3. key files ---------------------------------------------------------------------------------


def test_a_private_key_readable_by_others_is_refused_like_openssh(
    built_duckdb: Project, sshd_server: SshServer, tmp_path: Path
) -> None:
    account = sshd_server.add_account()
    account.private_key.chmod(0o644)
    known_hosts = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    config = account_config(tmp_path, sshd_server, account, known_hosts)

    checked = check(built_duckdb, config)
    result = run(built_duckdb, config)

    assert checked.returncode == 2
    assert "permissions 0644" in checked.stderr and f"chmod 600 {account.private_key}" in checked.stderr
    assert result.returncode == 2  # a configuration error, in run as in check
    assert "UNPROTECTED PRIVATE KEY FILE" in result.stderr and "tenant BRANDNAAM" in result.stderr
    assert delivered(account) == []


def test_a_revoked_host_key_is_refused_even_when_listed(
    built_duckdb: Project, sshd_server: SshServer, tmp_path: Path
) -> None:
    account = sshd_server.add_account()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(server_line(sshd_server) + f"@revoked * {public_key_line(sshd_server.host_key)}\n")
    config = account_config(tmp_path, sshd_server, account, known_hosts)

    result = run(built_duckdb, config)

    assert result.returncode == 1, result.stdout
    assert "REVOKED HOST KEY" in result.stderr and "Traceback" not in result.stderr
    assert delivered(account) == []


def test_known_hosts_read_as_openssh_reads_it(
    built_duckdb: Project, sshd_server: SshServer, tmp_path: Path
) -> None:
    """Two keys of one type for the host, a revoked other key, comments and a hashed name."""
    account = sshd_server.add_account()
    old = generate_key(tmp_path / "old_host_key")
    stolen = generate_key(tmp_path / "stolen_host_key")
    name = f"[{sshd_server.host}]:{sshd_server.port}"
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        "# the server's keys, old and new\n"
        f"{known_hosts_entry(sshd_server.host, sshd_server.port, public_key_line(old))}"
        f"@revoked * {public_key_line(stolen)}\n"
        f"other.example.nl,!{name} {public_key_line(sshd_server.host_key)}\n"
        f"{server_line(sshd_server)}"
    )
    config = account_config(tmp_path, sshd_server, account, known_hosts)
    first = run(built_duckdb, config)
    assert first.returncode == 0, first.stderr
    assert delivered(account) == EXPECTED

    hashed = tmp_path / "known_hosts_hashed"
    hashed.write_text(server_line(sshd_server))
    subprocess.run(["ssh-keygen", "-H", "-f", str(hashed)], check=True, capture_output=True)
    assert name not in hashed.read_text()  # really hashed
    account2 = sshd_server.add_account()
    second = run(built_duckdb, account_config(tmp_path, sshd_server, account2, hashed))
    assert second.returncode == 0, second.stderr
    assert delivered(account2) == EXPECTED


def test_a_negated_pattern_does_not_trust_the_host(
    built_duckdb: Project, sshd_server: SshServer, tmp_path: Path
) -> None:
    account = sshd_server.add_account()
    name = f"[{sshd_server.host}]:{sshd_server.port}"
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"*,!{name} {public_key_line(sshd_server.host_key)}\n")
    result = run(built_duckdb, account_config(tmp_path, sshd_server, account, known_hosts))
    assert result.returncode == 1
    assert "unknown host key" in result.stderr


def test_cert_authority_is_a_clear_configuration_error(
    built_duckdb: Project, sshd_server: SshServer, tmp_path: Path
) -> None:
    account = sshd_server.add_account()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"@cert-authority * {public_key_line(sshd_server.host_key)}\n")
    config = account_config(tmp_path, sshd_server, account, known_hosts)

    checked = check(built_duckdb, config)
    result = run(built_duckdb, config)

    for outcome, code in ((checked, 2), (result, 1)):
        assert outcome.returncode == code, outcome.stderr
        assert "line 1: @cert-authority" in outcome.stderr and "not supported" in outcome.stderr
        assert "Traceback" not in outcome.stderr


# --- 2. file modes on the server ------------------------------------------------------------------


def test_uploaded_files_and_folders_get_file_mode(
    built_duckdb: Project, sshd_server: SshServer, tmp_path: Path
) -> None:
    account = sshd_server.add_account()
    known_hosts = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    config = account_config(tmp_path, sshd_server, account, known_hosts, folder="{kind}/{period:%Y}")
    assert run(built_duckdb, config).returncode == 0
    files = [p for p in account.upload.rglob("*") if p.is_file()]
    folders = [p for p in account.upload.rglob("*") if p.is_dir()]
    assert len(files) == 6 and len(folders) == 4
    assert {oct(p.stat().st_mode & 0o7777) for p in files} == {"0o640"}
    assert {oct(p.stat().st_mode & 0o7777) for p in folders} == {"0o750"}

    account2 = sshd_server.add_account()
    private = account_config(tmp_path, sshd_server, account2, known_hosts, file_mode="0600")
    assert run(built_duckdb, private).returncode == 0
    for path in account2.upload.iterdir():
        path.chmod(0o644)
    backfill = built_duckdb.run(
        "backfill", "--config", str(private), "--brand", "BRANDNAAM", "--from", "2026-11-01",
        "--to", "2026-11-03", *built_duckdb.cli_args(),
    )  # fmt: skip
    assert backfill.returncode == 0
    assert {oct(p.stat().st_mode & 0o7777) for p in account2.upload.iterdir()} == {"0o600"}


def test_missing_folders_above_the_root_get_the_folder_mode_not_the_servers(
    built_duckdb: Project, sshd_server: SshServer, tmp_path: Path
) -> None:
    account = sshd_server.add_account()
    known_hosts = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    root = f"{account.root}/exports/daily/BRANDNAAM"
    destination = sftp_destination(sshd_server, account, known_hosts, root=root)
    config = write_config(tmp_path / account.username, destination=destination, file_mode="0600")

    assert run(built_duckdb, config).returncode == 0
    created = [account.upload / "exports", account.upload / "exports" / "daily"]
    created.append(account.upload / "exports" / "daily" / "BRANDNAAM")
    assert {oct(p.stat().st_mode & 0o7777) for p in created} == {"0o700"}  # of file_mode "0600"
    assert sorted(p.name for p in created[-1].iterdir()) == EXPECTED


# --- 1. links planted in the tenant's folder on the server ----------------------------------------


def test_links_on_the_server_are_refused_and_never_written_through(
    built_duckdb: Project, sshd_server: SshServer, tmp_path: Path
) -> None:
    account = sshd_server.add_account()
    known_hosts = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    outside = account.chroot / "elsewhere"  # another folder the account can write in
    outside.mkdir()
    (outside / "victim.csv").write_text("precious\n")
    __import__("os").chown(outside, account.uid, account.gid)

    (account.upload / "activity").symlink_to("/elsewhere")  # as the account would plant it
    config = account_config(tmp_path, sshd_server, account, known_hosts, folder="{kind}")
    folder_link = run(built_duckdb, config)
    assert folder_link.returncode == 1
    assert "/upload/activity is a symbolic link" in folder_link.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["victim.csv"]

    account2 = sshd_server.add_account()
    victim = account2.upload / "victim.csv"
    victim.write_text("precious\n")
    (account2.upload / "activity_BRANDNAAM_20261101.csv").symlink_to("/upload/victim.csv")
    for kind in ("activity", "broadcast"):
        for day in (2, 3):
            (account2.upload / f".{kind}_BRANDNAAM_2026110{day}.csv.partial").symlink_to("/upload/victim.csv")
    final_link = run(built_duckdb, account_config(tmp_path, sshd_server, account2, known_hosts))
    assert final_link.returncode == 1
    assert "activity_BRANDNAAM_20261101.csv is a symbolic link" in final_link.stderr
    assert victim.read_text() == "precious\n"

    (account2.upload / "activity_BRANDNAAM_20261101.csv").unlink()
    again = run(built_duckdb, account_config(tmp_path, sshd_server, account2, known_hosts))
    assert again.returncode == 0, again.stderr
    assert victim.read_text() == "precious\n"  # the planted partial links were removed, not followed
    assert delivered(account2) == sorted([*EXPECTED, "victim.csv"])
    assert not any(p.is_symlink() for p in account2.upload.iterdir())


# --- 8. something else than a file at a temporary or final name on the server ---------------------


def test_a_folder_at_a_temporary_name_on_the_server_fails_the_tenant_clearly(
    built_duckdb: Project, sshd_server: SshServer, tmp_path: Path
) -> None:
    account = sshd_server.add_account()
    known_hosts = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    planted = account.make_folder(".activity_BRANDNAAM_20261101.csv.partial")

    result = run(built_duckdb, account_config(tmp_path, sshd_server, account, known_hosts))

    assert result.returncode == 1, result.stdout + result.stderr
    assert "tenant BRANDNAAM: period 2026-11-01: " in result.stderr
    assert "/upload/.activity_BRANDNAAM_20261101.csv.partial is a folder" in result.stderr
    assert planted.is_dir() and delivered(account) == []


def test_a_fifo_at_a_final_name_on_the_server_fails_the_tenant_and_never_hangs(
    built_duckdb: Project, sshd_server: SshServer, tmp_path: Path
) -> None:
    account = sshd_server.add_account()
    known_hosts = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    fifo = account.upload / "activity_BRANDNAAM_20261101.csv"
    os.mkfifo(fifo)
    os.chown(fifo, account.uid, account.gid)
    config = account_config(tmp_path, sshd_server, account, known_hosts)

    started = time.monotonic()
    result = built_duckdb.run(
        "run", "--config", str(config), "--now", NOW, "--adopt", *built_duckdb.cli_args(), check=False
    )  # fmt: skip

    assert time.monotonic() - started < 20  # reading the pipe would wait for the channel's timeout
    assert result.returncode == 1, result.stdout + result.stderr
    assert "/upload/activity_BRANDNAAM_20261101.csv is a named pipe" in result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and delivered(account) == []
