"""SftpServer against a real OpenSSH sshd (tests/support/sshd.py): what lands on disk, what users read."""

from __future__ import annotations

import hashlib
import logging
import socket
import subprocess
import threading
import time
import traceback
from pathlib import Path, PurePosixPath

import pytest

from activity_export.config import SftpDestination
from activity_export.destinations.sftp import (
    POSIX_RENAME,
    HostKeyError,
    RemotePathError,
    SftpAuthError,
    TransientSftpError,
)
from activity_export.errors import ExportError
from activity_export.naming import partial_name
from tests.support.sftp import destination, local_file, sftp_server
from tests.support.sshd import SshServer, free_port, generate_key, known_hosts_entry, public_key_line

PASSWORD = "pw-Hunter2-never-logged"
PASSPHRASE = "pp-Correct-Horse-never-logged"


def openssh_fingerprint(public_key: Path) -> str:
    """The SHA256 fingerprint as OpenSSH itself prints it."""
    out = subprocess.run(["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True)
    return out.stdout.split()[1]


def files_on_disk(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# -- publishing ---------------------------------------------------------------------------------


def test_published_file_is_downloaded_byte_for_byte_by_openssh_sftp(
    sshd_server: SshServer, sftp_account, tmp_path: Path
) -> None:
    account = sftp_account()
    source = local_file(tmp_path, size=3 * 2**20 + 17)
    with sftp_server(destination(sshd_server, account)) as server:
        final = server.publish(source, PurePosixPath("activity_BRAND_20261125.csv"))

    assert final == "/upload/activity_BRAND_20261125.csv"
    copy = tmp_path / "downloaded.csv"
    result = sshd_server.openssh_sftp(account, f"get {final} {copy}\n")
    assert result.returncode == 0, result.stderr
    assert copy.read_bytes() == source.read_bytes()
    assert files_on_disk(account.upload) == ["activity_BRAND_20261125.csv"]


def test_missing_folders_under_the_root_are_created(
    sshd_server: SshServer, sftp_account, tmp_path: Path
) -> None:
    account = sftp_account()
    source = local_file(tmp_path)
    with sftp_server(destination(sshd_server, account)) as server:
        server.publish(source, PurePosixPath("activity/2026/11/a.csv"))
        server.publish(source, PurePosixPath("activity/2026/12/b.csv"))

    assert files_on_disk(account.upload) == ["activity/2026/11/a.csv", "activity/2026/12/b.csv"]
    assert (account.upload / "activity/2026/12/b.csv").read_bytes() == source.read_bytes()


def test_missing_root_folder_is_created(sshd_server: SshServer, sftp_account, tmp_path: Path) -> None:
    account = sftp_account()
    with sftp_server(destination(sshd_server, account, root="/upload/brand/exports")) as server:
        final = server.publish(local_file(tmp_path), PurePosixPath("a.csv"))

    assert final == "/upload/brand/exports/a.csv"
    assert (account.upload / "brand/exports/a.csv").is_file()


def test_existing_final_file_is_replaced_in_one_rename(
    sshd_server: SshServer, sftp_account, tmp_path: Path
) -> None:
    account = sftp_account()
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    old.write_bytes(b"old contents\n" * 1000)
    new.write_bytes(b"new\n")
    with sftp_server(destination(sshd_server, account)) as server:
        server.publish(old, PurePosixPath("a.csv"))
        inode_before = (account.upload / "a.csv").stat().st_ino
        server.publish(new, PurePosixPath("a.csv"))

    assert (account.upload / "a.csv").read_bytes() == b"new\n"
    assert (account.upload / "a.csv").stat().st_ino != inode_before  # renamed over, not rewritten
    assert files_on_disk(account.upload) == ["a.csv"]


def test_server_without_posix_rename_gets_remove_then_rename(
    sshd_server: SshServer, sftp_account, tmp_path: Path
) -> None:
    account = sftp_account()
    first, second = local_file(tmp_path, "1.csv", size=1000), local_file(tmp_path, "2.csv", size=2000)
    with sftp_server(destination(sshd_server, account)) as server:
        server.publish(first, PurePosixPath("a.csv"))
        # OpenSSH always offers the extension: take it away to reach the plain-rename path
        server._ssh.session().server_extensions.pop(POSIX_RENAME)
        server.publish(second, PurePosixPath("a.csv"))

    assert (account.upload / "a.csv").read_bytes() == second.read_bytes()
    assert files_on_disk(account.upload) == ["a.csv"]


def test_one_connection_serves_every_file_of_a_run(
    sshd_server: SshServer, sftp_account, cutting_proxy, tmp_path: Path
) -> None:
    account = sftp_account()
    proxy = cutting_proxy()
    known_hosts = sshd_server.write_known_hosts(tmp_path / "known_hosts", proxy.port)
    config = destination(sshd_server, account, port=proxy.port, known_hosts=known_hosts)
    with sftp_server(config) as server:
        for day in range(1, 6):
            server.publish(local_file(tmp_path), PurePosixPath(f"activity_BRAND_202611{day:02}.csv"))

    assert proxy.connections == 1
    assert len(files_on_disk(account.upload)) == 5


def test_stale_partial_file_from_a_crashed_run_is_replaced(
    sshd_server: SshServer, sftp_account, tmp_path: Path
) -> None:
    account = sftp_account()
    stale = account.upload / partial_name("a.csv")
    stale.write_bytes(b"half a fi")
    source = local_file(tmp_path)
    with sftp_server(destination(sshd_server, account)) as server:
        server.publish(source, PurePosixPath("a.csv"))

    assert files_on_disk(account.upload) == ["a.csv"]
    assert (account.upload / "a.csv").read_bytes() == source.read_bytes()


def test_clean_partials_removes_only_our_partial_files(
    sshd_server: SshServer, sftp_account, tmp_path: Path
) -> None:
    account = sftp_account()
    folder = account.make_folder("activity")
    for name in (partial_name("a.csv"), partial_name("b.csv"), "c.csv", ".hidden", "d.partial"):
        (folder / name).write_bytes(b"x")
    with sftp_server(destination(sshd_server, account)) as server:
        removed = server.clean_partials(PurePosixPath("activity"))
        nothing = server.clean_partials(PurePosixPath("no-such-folder"))

    assert sorted(removed) == ["/upload/activity/.a.csv.partial", "/upload/activity/.b.csv.partial"]
    assert nothing == []
    assert sorted(p.name for p in folder.iterdir()) == [".hidden", "c.csv", "d.partial"]


def test_list_exists_and_delete_for_prune(sshd_server: SshServer, sftp_account, tmp_path: Path) -> None:
    account = sftp_account()
    account.make_folder("activity/sub")
    (account.upload / "activity" / partial_name("x.csv")).write_bytes(b"x")
    with sftp_server(destination(sshd_server, account)) as server:
        server.publish(local_file(tmp_path), PurePosixPath("activity/b.csv"))
        server.publish(local_file(tmp_path), PurePosixPath("activity/a.csv"))
        listed = server.list_files(PurePosixPath("activity"))
        assert server.exists(PurePosixPath("activity/a.csv"))
        server.delete(PurePosixPath("activity/a.csv"))
        server.delete(PurePosixPath("activity/a.csv"))  # already gone: fine
        assert not server.exists(PurePosixPath("activity/a.csv"))
        assert not server.exists(PurePosixPath("activity/sub"))  # a folder is not a file
        assert server.list_files(PurePosixPath("nothing-here")) == []

    assert listed == ["a.csv", "b.csv"]
    assert files_on_disk(account.upload) == ["activity/.x.csv.partial", "activity/b.csv"]


def test_sftp_sha256_reads_the_remote_file_back(sshd_server: SshServer, sftp_account, tmp_path: Path) -> None:
    account = sftp_account()
    source = local_file(tmp_path, size=3 * 2**20 + 5)
    relative = PurePosixPath("sub/activity_BRAND_20261125.csv")
    with sftp_server(destination(sshd_server, account)) as server:
        assert server.sha256(relative) is None
        server.publish(source, relative)
        assert server.sha256(relative) == hashlib.sha256(source.read_bytes()).hexdigest()


def test_paths_climbing_out_of_the_root_are_refused(
    sshd_server: SshServer, sftp_account, tmp_path: Path
) -> None:
    account = sftp_account()
    with sftp_server(destination(sshd_server, account)) as server:
        with pytest.raises(ExportError, match="climbs out of the root"):
            server.publish(local_file(tmp_path), PurePosixPath("../a.csv"))


def test_check_writable_writes_and_removes_a_probe(
    sshd_server: SshServer, sftp_account, tmp_path: Path
) -> None:
    account = sftp_account()
    server = sftp_server(destination(sshd_server, account))
    try:
        report = server.check_writable()
    finally:
        server.close()

    assert report.startswith(f"sftp://{account.username}@127.0.0.1:{sshd_server.port}/upload: logged in")
    assert openssh_fingerprint(sshd_server.host_key.with_suffix(".pub")) in report
    assert "wrote and removed a probe file" in report
    assert files_on_disk(account.upload) == []


def test_check_writable_fails_on_a_read_only_root(sshd_server: SshServer, sftp_account) -> None:
    account = sftp_account()
    with sftp_server(destination(sshd_server, account, root="/")) as server:
        with pytest.raises(RemotePathError, match="permission denied"):
            server.check_writable()


def test_describe_names_user_host_port_and_root_only(sshd_server: SshServer, sftp_account) -> None:
    account = sftp_account()
    server = sftp_server(destination(sshd_server, account))
    assert server.describe() == f"sftp://{account.username}@127.0.0.1:{sshd_server.port}/upload"


# -- logging in -------------------------------------------------------------------------------


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa", "rsa"])
def test_key_types_log_in_and_publish(
    sshd_server: SshServer, sftp_account, tmp_path: Path, key_type: str
) -> None:
    account = sftp_account(key_type=key_type)
    with sftp_server(destination(sshd_server, account)) as server:
        server.publish(local_file(tmp_path), PurePosixPath("a.csv"))
    assert files_on_disk(account.upload) == ["a.csv"]


def test_passphrase_protected_key_logs_in(
    sshd_server: SshServer, sftp_account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = sftp_account(passphrase=PASSPHRASE)
    monkeypatch.setenv("AEXP_TEST_PASSPHRASE", PASSPHRASE)
    config = destination(sshd_server, account, passphrase_env="AEXP_TEST_PASSPHRASE")
    with sftp_server(config) as server:
        server.publish(local_file(tmp_path), PurePosixPath("a.csv"))
    assert files_on_disk(account.upload) == ["a.csv"]


def test_password_logs_in(
    sshd_server: SshServer, sftp_account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = sftp_account(password=PASSWORD)
    monkeypatch.setenv("AEXP_TEST_PASSWORD", PASSWORD)
    config = destination(sshd_server, account, private_key=None, password_env="AEXP_TEST_PASSWORD")
    with sftp_server(config) as server:
        server.publish(local_file(tmp_path), PurePosixPath("a.csv"))
    assert files_on_disk(account.upload) == ["a.csv"]


def test_wrong_key_is_refused_at_once_without_retry(
    sshd_server: SshServer, sftp_account, cutting_proxy, tmp_path: Path
) -> None:
    account = sftp_account()
    other_key = generate_key(tmp_path / "other_key")
    proxy = cutting_proxy()
    known_hosts = sshd_server.write_known_hosts(tmp_path / "known_hosts", proxy.port)
    config = destination(
        sshd_server, account, port=proxy.port, known_hosts=known_hosts, private_key=other_key
    )
    started = time.monotonic()
    with pytest.raises(SftpAuthError, match=f"login refused for user {account.username}") as caught:
        sftp_server(config, retry_budget=30).open()

    assert time.monotonic() - started < 5
    assert proxy.connections == 1
    assert caught.value.exit_code == 1
    assert str(other_key) in str(caught.value)


def test_wrong_password_is_refused(
    sshd_server: SshServer, sftp_account, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = sftp_account(password=PASSWORD)
    monkeypatch.setenv("AEXP_TEST_PASSWORD", "not-" + PASSWORD)
    config = destination(sshd_server, account, private_key=None, password_env="AEXP_TEST_PASSWORD")
    with pytest.raises(SftpAuthError, match="login refused.*the password from AEXP_TEST_PASSWORD"):
        sftp_server(config, retry_budget=30).open()


def test_password_for_a_key_only_account_names_what_the_server_allows(
    sshd_server: SshServer, sftp_account, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = sftp_account()
    monkeypatch.setenv("AEXP_TEST_PASSWORD", PASSWORD)
    config = destination(sshd_server, account, private_key=None, password_env="AEXP_TEST_PASSWORD")
    with pytest.raises(SftpAuthError, match="it allows: publickey"):
        sftp_server(config).open()


def test_unset_secret_variable_is_named(
    sshd_server: SshServer, sftp_account, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = sftp_account(passphrase=PASSPHRASE)
    monkeypatch.delenv("AEXP_TEST_UNSET", raising=False)
    for config in (
        destination(sshd_server, account, private_key=None, password_env="AEXP_TEST_UNSET"),
        destination(sshd_server, account, passphrase_env="AEXP_TEST_UNSET"),
    ):
        with pytest.raises(SftpAuthError, match="environment variable AEXP_TEST_UNSET .* is not set"):
            sftp_server(config).open()


def test_encrypted_key_without_passphrase_says_to_set_passphrase_env(
    sshd_server: SshServer, sftp_account
) -> None:
    account = sftp_account(passphrase=PASSPHRASE)
    with pytest.raises(SftpAuthError, match="encrypted; set passphrase_env"):
        sftp_server(destination(sshd_server, account)).open()


def test_no_secret_in_messages_tracebacks_or_logs(
    sshd_server: SshServer,
    sftp_account,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # paramiko's own debug logging included
    password_account = sftp_account(password=PASSWORD)
    key_account = sftp_account(passphrase=PASSPHRASE)
    wrong_password = "wrong-" + PASSWORD
    wrong_passphrase = "wrong-" + PASSPHRASE
    secrets = [PASSWORD, PASSPHRASE, wrong_password, wrong_passphrase]
    texts: list[str] = []

    def failing(config: SftpDestination) -> None:
        try:
            sftp_server(config).open()
        except ExportError as exc:
            texts.extend([str(exc), repr(exc), traceback.format_exc()])
            texts.extend(_traceback_locals(exc))
        else:
            pytest.fail("login should have failed")

    monkeypatch.setenv("AEXP_TEST_PASSWORD", wrong_password)
    failing(destination(sshd_server, password_account, private_key=None, password_env="AEXP_TEST_PASSWORD"))
    monkeypatch.setenv("AEXP_TEST_PASSPHRASE", wrong_passphrase)
    failing(destination(sshd_server, key_account, passphrase_env="AEXP_TEST_PASSPHRASE"))

    monkeypatch.setenv("AEXP_TEST_PASSWORD", PASSWORD)
    monkeypatch.setenv("AEXP_TEST_PASSPHRASE", PASSPHRASE)
    for config in (
        destination(sshd_server, password_account, private_key=None, password_env="AEXP_TEST_PASSWORD"),
        destination(sshd_server, key_account, passphrase_env="AEXP_TEST_PASSPHRASE"),
    ):
        server = sftp_server(config)
        with server:
            server.publish(local_file(tmp_path), PurePosixPath("a.csv"))
        texts.append(repr(vars(server)))

    texts.append(caplog.text)
    assert any("login refused" in text for text in texts)
    assert any("wrong passphrase" in text for text in texts)
    for secret in secrets:
        for text in texts:
            assert secret not in text


def _traceback_locals(exc: BaseException) -> list[str]:
    """repr() of every local of every frame in the exception's traceback and its chain."""
    found: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            found.extend(repr(value) for value in tb.tb_frame.f_locals.values())
            tb = tb.tb_next
        current = current.__cause__ or current.__context__
    return found


# -- host keys ----------------------------------------------------------------------------------


def test_unknown_host_key_is_refused_with_fingerprint_and_how_to_trust_it(
    sshd_server: SshServer, sftp_account, tmp_path: Path
) -> None:
    account = sftp_account()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(known_hosts_entry("10.0.0.1", 22, public_key_line(sshd_server.host_key)))
    with pytest.raises(HostKeyError) as caught:
        sftp_server(destination(sshd_server, account, known_hosts=known_hosts), retry_budget=30).open()

    message = str(caught.value)
    assert "unknown host key" in message
    assert "ssh-ed25519" in message
    assert openssh_fingerprint(sshd_server.host_key.with_suffix(".pub")) in message
    assert f"ssh-keyscan -p {sshd_server.port} -t ed25519 127.0.0.1 >> {known_hosts}" in message
    assert "out of band" in message
    assert files_on_disk(account.upload) == []


def test_trusting_the_key_with_ssh_keyscan_as_suggested_lets_the_login_through(
    sshd_server: SshServer, sftp_account, tmp_path: Path
) -> None:
    account = sftp_account()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    scanned = subprocess.run(
        ["ssh-keyscan", "-p", str(sshd_server.port), "-t", "ed25519", "127.0.0.1"],
        capture_output=True,
        text=True,
        check=True,
    )
    known_hosts.write_text(scanned.stdout)
    with sftp_server(destination(sshd_server, account, known_hosts=known_hosts)) as server:
        server.publish(local_file(tmp_path), PurePosixPath("a.csv"))
    assert files_on_disk(account.upload) == ["a.csv"]


def test_changed_host_key_is_refused(sshd_server: SshServer, sftp_account, tmp_path: Path) -> None:
    account = sftp_account()
    impostor = generate_key(tmp_path / "impostor_host_key")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(known_hosts_entry("127.0.0.1", sshd_server.port, public_key_line(impostor)))
    with pytest.raises(HostKeyError) as caught:
        sftp_server(destination(sshd_server, account, known_hosts=known_hosts), retry_budget=30).open()

    message = str(caught.value)
    assert "HOST KEY CHANGED" in message
    assert openssh_fingerprint(sshd_server.host_key.with_suffix(".pub")) in message
    assert openssh_fingerprint(impostor.with_suffix(".pub")) in message
    assert f"ssh-keygen -R '[127.0.0.1]:{sshd_server.port}'" in message


def test_host_key_for_another_port_is_not_trusted(
    sshd_server: SshServer, sftp_account, tmp_path: Path
) -> None:
    account = sftp_account()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(known_hosts_entry("127.0.0.1", 22, public_key_line(sshd_server.host_key)))
    with pytest.raises(HostKeyError, match="unknown host key"):
        sftp_server(destination(sshd_server, account, known_hosts=known_hosts)).open()


def test_missing_known_hosts_file_is_named(sshd_server: SshServer, sftp_account, tmp_path: Path) -> None:
    account = sftp_account()
    missing = tmp_path / "nowhere" / "known_hosts"
    with pytest.raises(HostKeyError, match=f"known_hosts file {missing} not found"):
        sftp_server(destination(sshd_server, account, known_hosts=missing)).open()


# -- server-side refusals -------------------------------------------------------------------------


def test_folder_without_write_permission_is_refused_at_once(
    sshd_server: SshServer, sftp_account, tmp_path: Path
) -> None:
    account = sftp_account()
    source = local_file(tmp_path)
    with sftp_server(destination(sshd_server, account, root="/"), retry_budget=30) as server:
        started = time.monotonic()
        with pytest.raises(
            RemotePathError, match=r"cannot write /\.a\.csv\.[0-9a-f]{16}\.partial: permission denied"
        ):
            server.publish(source, PurePosixPath("a.csv"))
        with pytest.raises(RemotePathError, match="cannot create folder /exports: permission denied"):
            server.publish(source, PurePosixPath("exports/a.csv"))
        assert time.monotonic() - started < 5

    assert files_on_disk(account.chroot) == []


# -- network trouble ----------------------------------------------------------------------------


def test_server_not_listening_is_retried_then_fails_within_the_budget(
    caplog: pytest.LogCaptureFixture, tmp_path: Path, sshd_server: SshServer, sftp_account
) -> None:
    account = sftp_account()
    config = destination(sshd_server, account, port=free_port())
    started = time.monotonic()
    with pytest.raises(TransientSftpError) as caught:
        sftp_server(config, retry_budget=1.5).open()

    elapsed = time.monotonic() - started
    assert elapsed < 3
    message = str(caught.value)
    assert "connection refused" in message
    assert "retry budget 1.5s" in message
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) >= 1


def test_silent_server_times_out_instead_of_hanging(sshd_server: SshServer, sftp_account) -> None:
    account = sftp_account()
    silent = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    config = destination(sshd_server, account, port=silent.getsockname()[1])
    started = time.monotonic()
    try:
        with pytest.raises(TransientSftpError, match="SSH handshake not done within 1s|banner"):
            sftp_server(config, timeout=1, retry_budget=0).open()
    finally:
        silent.close()
        for sock in accepted:
            sock.close()
    assert time.monotonic() - started < 5


def test_connection_cut_mid_upload_is_retried_on_a_new_connection(
    sshd_server: SshServer, sftp_account, cutting_proxy, tmp_path: Path
) -> None:
    account = sftp_account()
    proxy = cutting_proxy(cut_after=400_000, cut_connections=1)
    known_hosts = sshd_server.write_known_hosts(tmp_path / "known_hosts", proxy.port)
    source = local_file(tmp_path, size=3 * 2**20)
    config = destination(sshd_server, account, port=proxy.port, known_hosts=known_hosts)
    with sftp_server(config, retry_budget=10) as server:
        server.publish(source, PurePosixPath("a.csv"))

    assert proxy.cuts == 1
    assert proxy.connections == 2
    assert (account.upload / "a.csv").read_bytes() == source.read_bytes()
    assert files_on_disk(account.upload) == ["a.csv"]


def test_connection_cut_every_time_leaves_no_file_under_the_final_name(
    sshd_server: SshServer, sftp_account, cutting_proxy, tmp_path: Path
) -> None:
    account = sftp_account()
    proxy = cutting_proxy(cut_after=400_000, cut_connections=1000)
    known_hosts = sshd_server.write_known_hosts(tmp_path / "known_hosts", proxy.port)
    source = local_file(tmp_path, size=3 * 2**20)
    config = destination(sshd_server, account, port=proxy.port, known_hosts=known_hosts)
    started = time.monotonic()
    with pytest.raises(TransientSftpError, match="publish /upload/a.csv failed after"):
        with sftp_server(config, retry_budget=1) as server:
            server.publish(source, PurePosixPath("a.csv"))

    assert time.monotonic() - started < 5
    assert proxy.cuts >= 2  # it did retry
    assert not (account.upload / "a.csv").exists()
