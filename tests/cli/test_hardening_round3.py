"""Hardening, third round: folder modes under any umask, odd files where the loader writes, key
files others can change, keys that `check` must load as `run` does, and secrets in no output.

Each test acts through the command line in a child process, with real files, as the operator (or
whoever can write in a tenant's folder) would, and looks at what the operator sees: the exit code,
the words of the message, and what is left on disk.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.pgp import Keys
from tests.support.project import BIN, ROOT, Project
from tests.support.sshd import free_port, generate_key
from tests.support.tenants import EXPECTED, write_tenants

NOW = "2026-11-04T07:00:00+01:00"  # the shared warehouse's three days are due and complete


def activity_export(
    project: Project, *args: str, umask: int = 0o022, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``activity-export`` in a child process with the given umask, on the shared warehouse."""
    return subprocess.run(
        [str(BIN / "activity-export"), *args, *project.cli_args()],
        env={**project.env, **(env or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        umask=umask,
        timeout=timeout,
    )


def mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o7777)


def local(root: Path, **settings: object) -> dict[str, object]:
    """A tenant from 2026-11-01 delivering to the local folder ``root``."""
    return {"start": "2026-11-01", "destination": {"type": "local", "root": str(root)}, **settings}


# --- 7. every folder the loader creates gets its mode, whatever the umask --------------------------


def test_new_folders_above_a_root_and_for_the_ledger_get_their_mode_under_umask_000(
    built_duckdb: Project, tmp_path: Path
) -> None:
    shared = tmp_path / "srv" / "exports" / "BRANDNAAM"
    private = tmp_path / "home" / "private" / "MODEHUIS"
    ledger = tmp_path / "state" / "ledgers" / "activity-export.ledger.sqlite"
    config = write_tenants(
        tmp_path / "tenants.yml", {"BRANDNAAM": local(shared), "MODEHUIS": local(private, file_mode="0600")}
    )

    done = activity_export(
        built_duckdb, "run", "--config", str(config), "--now", NOW, "--ledger", str(ledger), umask=0o000
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in shared.iterdir()) == sorted(EXPECTED)
    for folder in (tmp_path / "srv", tmp_path / "srv" / "exports", shared):
        assert mode(folder) == "0o750", folder  # the search bits of file_mode "0640"
    for folder in (tmp_path / "home", tmp_path / "home" / "private", private):
        assert mode(folder) == "0o700", folder  # of file_mode "0600"
    for folder in (tmp_path / "state", ledger.parent, ledger.with_name(ledger.name + ".locks")):
        assert mode(folder) == "0o700", folder  # the ledger and its locks are the loader's alone


# --- 8. something else than a file at a temporary or final name ------------------------------------


def test_a_folder_at_a_temporary_name_fails_its_tenant_clearly_and_stays(
    built_duckdb: Project, tmp_path: Path
) -> None:
    root = tmp_path / "server"
    planted = root / ".activity_BRANDNAAM_20261101.csv.partial"
    (planted / "theirs").mkdir(parents=True)
    other = tmp_path / "other"
    config = write_tenants(tmp_path / "tenants.yml", {"BRANDNAAM": local(root), "MODEHUIS": local(other)})

    for _ in range(2):  # the same clear failure at every run, not a raw error
        done = activity_export(built_duckdb, "run", "--config", str(config), "--now", NOW)
        assert done.returncode == 1, done.stdout + done.stderr
        assert (
            f"tenant BRANDNAAM: period 2026-11-01: local folder {root}: {planted} is a folder" in done.stderr
        )
        assert "Error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert (planted / "theirs").is_dir()
    assert sorted(p.name for p in root.iterdir()) == [planted.name]
    assert len(list(other.iterdir())) == 6  # the other tenant was delivered


@pytest.mark.parametrize("how", ["a run killed after publishing", "--adopt"])
def test_a_fifo_at_a_final_name_fails_its_tenant_and_never_hangs(
    built_duckdb: Project, tmp_path: Path, how: str
) -> None:
    root = tmp_path / "server"
    final = root / "activity_BRANDNAAM_20261101.csv"
    other = tmp_path / "other"
    config = write_tenants(tmp_path / "tenants.yml", {"BRANDNAAM": local(root), "MODEHUIS": local(other)})
    run = ["run", "--config", str(config), "--now", NOW]
    if how == "--adopt":
        root.mkdir()
        run.append("--adopt")
    else:  # killed between publishing the first file and recording it: the next run looks at it
        killed = activity_export(
            built_duckdb, *run, "--brand", "BRANDNAAM", env={"ACTIVITY_EXPORT_FAILPOINT": "after-upload"}
        )
        assert killed.returncode == -9 and final.is_file(), killed.stderr
        final.unlink()
    os.mkfifo(final)

    done = activity_export(built_duckdb, *run, timeout=60)  # a read of the pipe would wait forever

    assert done.returncode == 1, done.stdout + done.stderr
    assert f"tenant BRANDNAAM: period 2026-11-01: local folder {root}: {final} is a named pipe" in done.stderr
    assert "Traceback" not in done.stderr
    assert stat.S_ISFIFO(os.lstat(final).st_mode)
    assert len(list(other.iterdir())) == 6


def test_a_fifo_at_a_temporary_name_fails_its_tenant_clearly(built_duckdb: Project, tmp_path: Path) -> None:
    root = tmp_path / "server"
    root.mkdir()
    planted = root / ".broadcast_BRANDNAAM_20261101.csv.partial"
    os.mkfifo(planted)
    config = write_tenants(tmp_path / "tenants.yml", {"BRANDNAAM": local(root)})

    done = activity_export(built_duckdb, "run", "--config", str(config), "--now", NOW, timeout=60)

    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        f"tenant BRANDNAAM: period 2026-11-01: local folder {root}: {planted} is a named pipe" in done.stderr
    )
    assert stat.S_ISFIFO(os.lstat(planted).st_mode)


# --- 9. a recipient key file others can change ----------------------------------------------------


@pytest.mark.parametrize(
    "how", ["group-writable", "world-writable", "a link to a world-writable file", "another user's"]
)
def test_a_recipient_key_file_others_can_write_is_refused_by_check_and_run(
    built_duckdb: Project, keys: Keys, tmp_path: Path, how: str
) -> None:
    key = tmp_path / "keys" / "receiver.asc"
    key.parent.mkdir()
    real = tmp_path / "elsewhere.asc" if how.startswith("a link") else key
    shutil.copy(keys.receiver, real)
    real.chmod({"group-writable": 0o664, "another user's": 0o644}.get(how, 0o666))
    if how == "another user's":
        os.chown(real, 65534, 65534)  # nobody, who may write it
    if real != key:
        key.symlink_to(real)
    words = (
        [f"{real} belongs to user id 65534", f"chown {os.geteuid()} {real}"]
        if how == "another user's"
        else [f"permissions {real.stat().st_mode & 0o777:04o} of {real} are too open", f"chmod go-w {real}"]
    )
    root, other = tmp_path / "server", tmp_path / "other"
    config = write_tenants(
        tmp_path / "tenants.yml",
        {"BRANDNAAM": local(root, encryption="pgp", recipients=[str(key)]), "MODEHUIS": local(other)},
    )

    checked = activity_export(built_duckdb, "check", "--config", str(config), "--now", NOW)
    done = activity_export(built_duckdb, "run", "--config", str(config), "--now", NOW)

    for result in (checked, done):
        assert result.returncode == 2, result.stdout + result.stderr
        output = result.stdout + result.stderr
        assert f"tenant BRANDNAAM: recipients[0] = '{key}': " in output or (
            f"tenant BRANDNAAM: period 2026-11-01: recipients[0] = '{key}': " in output
        ), output
        assert "may be changed by others" in output
        for word in words:
            assert word in output, output
    assert not root.exists() or list(root.iterdir()) == []  # nothing encrypted to a key others set
    assert len(list(other.iterdir())) == 6


@pytest.mark.parametrize(("umask", "file_mode", "folder_mode"), [(0o000, "0640", "0o750"), (0o077, "0640", "0o750"),
                                                               (0o000, "0600", "0o700")])  # fmt: skip
def test_export_gives_its_files_and_new_folders_the_tenants_file_mode(
    built_duckdb: Project, tmp_path: Path, umask: int, file_mode: str, folder_mode: str
) -> None:
    settings = {"file_mode": file_mode, "folder": "{kind}", "manifest": True}
    config = write_tenants(tmp_path / "tenants.yml", {"BRANDNAAM": local(tmp_path / "server", **settings)})
    out = tmp_path / "exports" / "november"

    done = activity_export(
        built_duckdb, "export", "--config", str(config), "--brand", "BRANDNAAM", "--period", "2026-11-02",
        "--out", str(out), umask=umask,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert [p.name for p in files] == [
        "activity_BRANDNAAM_20261102.csv", "broadcast_BRANDNAAM_20261102.csv", "manifest_BRANDNAAM_20261102.json"
    ]  # fmt: skip
    assert {mode(p) for p in files} == {oct(int(file_mode, 8))}
    folders = [tmp_path / "exports", out, *(p for p in out.rglob("*") if p.is_dir())]
    assert {mode(p) for p in folders} == {folder_mode}
    for path in files:
        assert f"wrote {path}: " in done.stdout


# --- 12. run refuses what check refuses, as a configuration error ---------------------------------


def test_an_expired_recipient_key_is_a_configuration_error_in_run_too(
    built_duckdb: Project, keys: Keys, tmp_path: Path
) -> None:
    root, other = tmp_path / "server", tmp_path / "other"
    config = write_tenants(
        tmp_path / "tenants.yml",
        {
            "BRANDNAAM": local(root, encryption="pgp", recipients=[str(keys.receiver), str(keys.expired)]),
            "MODEHUIS": local(other),
        },
    )

    checked = activity_export(built_duckdb, "check", "--config", str(config), "--now", NOW)
    done = activity_export(built_duckdb, "run", "--config", str(config), "--now", NOW)

    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert f"tenant BRANDNAAM: recipients[1] = '{keys.expired}': key " in checked.stdout
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"tenant BRANDNAAM: period 2026-11-01: recipients[1] = '{keys.expired}': key " in done.stderr
    assert "expired on 2020-01-02" in done.stderr and "Traceback" not in done.stderr
    assert not root.exists() or list(root.iterdir()) == []
    assert len(list(other.iterdir())) == 6


PASSPHRASE = "pp-Tr0ub4dor-never-shown"


def sftp_tenant(tmp_path: Path, key: Path, passphrase_env: str | None = None) -> dict[str, object]:
    """A tenant delivering over SFTP with ``key`` to a port where nothing listens: whatever fails
    before a connection is the key's doing."""
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    destination: dict[str, object] = {
        "type": "sftp",
        "host": "127.0.0.1",
        "port": free_port(),
        "username": "brandnaam",
        "private_key": str(key),
        "known_hosts": str(known_hosts),
        "root": "/upload",
    }
    if passphrase_env:
        destination["passphrase_env"] = passphrase_env
    return {"start": "2026-11-01", "destination": destination}


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("encrypted, no passphrase_env", ["destination.private_key = '{key}'", "is encrypted; set passphrase_env"]),
        ("wrong passphrase", ["destination.passphrase_env = 'BRANDNAAM_KEY_PASSPHRASE'", "wrong passphrase"]),
        ("not a key", ["destination.private_key = '{key}'", "not a private key", "ed25519, ecdsa or rsa"]),
        ("empty file", ["destination.private_key = '{key}'", "not a private key", "ed25519, ecdsa or rsa"]),
        ("not encrypted, passphrase_env", ["destination.passphrase_env = 'BRANDNAAM_KEY_PASSPHRASE'",
                                           "is not encrypted", "remove passphrase_env"]),
    ],
)  # fmt: skip
def test_a_private_key_run_cannot_use_is_a_configuration_error_in_check_and_run(
    built_duckdb: Project, tmp_path: Path, case: str, words: list[str]
) -> None:
    key = tmp_path / "keys" / "brandnaam"
    generate_key(key, passphrase="" if case.startswith("not encrypted") else PASSPHRASE)
    if case == "not a key":
        key.write_text(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nbm9uc2Vuc2U=\n-----END OPENSSH PRIVATE KEY-----\n"
        )
    elif case == "empty file":
        key.write_text("")
    named = case in ("wrong passphrase", "not encrypted, passphrase_env")
    env = {"BRANDNAAM_KEY_PASSPHRASE": "wrong-" + PASSPHRASE if case == "wrong passphrase" else PASSPHRASE}
    env["ACTIVITY_EXPORT_SFTP_RETRY_SECONDS"] = "1"  # should it try to connect after all
    other = tmp_path / "other"
    config = write_tenants(
        tmp_path / "tenants.yml",
        {
            "BRANDNAAM": sftp_tenant(tmp_path, key, "BRANDNAAM_KEY_PASSPHRASE" if named else None),
            "MODEHUIS": local(other),
        },
    )

    checked = activity_export(built_duckdb, "check", "--config", str(config), "--now", NOW, env=env)
    done = activity_export(built_duckdb, "run", "--config", str(config), "--now", NOW, env=env)

    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(list(other.iterdir())) == 6  # the other tenant was delivered
    for output, prefix in (
        (checked.stdout, "tenant BRANDNAAM: "),
        (done.stderr, "tenant BRANDNAAM: period 2026-11-01: "),
    ):
        assert prefix in output and "Traceback" not in output, output
        for word in words:
            assert word.format(key=key) in output, output
        assert "PP-TR0UB4DOR" not in output.upper(), output  # neither passphrase, in any case
