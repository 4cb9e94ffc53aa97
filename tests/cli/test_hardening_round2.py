"""Hardening, second round: what a careless or hostile configuration, ledger or folder gets.

Each test acts through the command line in a child process, as the operator would, and looks at
what the operator sees: the exit code and the words of the message.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from tests.support.project import BIN, ROOT, Project

NOW = "2026-11-26T07:00:00+01:00"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``activity-export`` in a child process, without a warehouse."""
    return subprocess.run(
        [str(BIN / "activity-export"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if k != "ACTIVITY_EXPORT_CONFIG"}, **(env or {})},
        check=False,
        timeout=120,
    )


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tenants.yml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def tenant_config(tmp_path: Path, settings: str = "", defaults: str = "") -> Path:
    """One tenant BRANDNAAM with a local destination, plus the given settings (YAML lines)."""
    indented = textwrap.indent(textwrap.dedent(settings), "    ")
    top = f"defaults:\n{textwrap.indent(textwrap.dedent(defaults), '  ')}\n" if defaults else ""
    text = f"{top}tenants:\n  BRANDNAAM:\n{indented}\n    destination:\n      type: local\n      root: {tmp_path / 'out'}\n"
    path = tmp_path / "tenants.yml"
    path.write_text(text, encoding="utf-8")
    return path


def check(path: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return cli("check", "--config", str(path), "--now", NOW, *extra, env=env)


def refused(done: subprocess.CompletedProcess[str], *words: str) -> str:
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output, output
    for word in words:
        assert word in output, f"{word!r} not in:\n{output}"
    return output


# --- 10. YAML read strictly ----------------------------------------------------------------------


def test_a_duplicate_key_is_refused_with_both_lines(tmp_path: Path) -> None:
    path = config_file(
        tmp_path,
        f"""
        tenants:
          BRANDNAAM:
            destination: {{type: local, root: {tmp_path}/a}}
          BRANDNAAM:
            destination: {{type: local, root: {tmp_path}/b}}
        """,
    )
    refused(check(path), "duplicate key 'BRANDNAAM'", "line 5", "line 3")


def test_an_alias_bomb_is_refused_within_a_second(tmp_path: Path) -> None:
    levels = ['&a ["x","x","x","x","x","x","x","x","x"]'] + [
        f"&{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)
    ]
    bomb = "tenants:\n  BRANDNAAM:\n    recipients: [" + ", ".join(levels) + "]\n"
    path = config_file(tmp_path, bomb)
    assert len(bomb.encode()) < 600
    started = time.monotonic()
    done = check(path)
    took = time.monotonic() - started
    refused(done, "aliases (*name) are not allowed", "line 3")
    assert took < 5, f"{took:.2f}s"  # the process start included; the refusal itself is instant


def test_yaml_1_1_booleans_are_not_brands(tmp_path: Path) -> None:
    path = config_file(
        tmp_path,
        f"""
        tenants:
          yes:
            destination: {{type: local, root: {tmp_path}/out}}
        """,
    )
    done = check(path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\nyes\n" in "\n" + done.stdout and "True" not in done.stdout


@pytest.mark.parametrize(("setting", "key"), [('header: "yes"', "header"), ("manifest: 1", "manifest"),
                                              ("erasures: yes", "erasures")])  # fmt: skip
def test_a_switch_takes_true_or_false_only(tmp_path: Path, setting: str, key: str) -> None:
    refused(check(tenant_config(tmp_path, setting)), f"tenant BRANDNAAM: {key}", "true or false")


# --- 11. every problem at once, in words -------------------------------------------------------


def test_an_impossible_unquoted_date_is_a_clear_refusal(tmp_path: Path) -> None:
    refused(check(tenant_config(tmp_path, "start: 2026-13-01")), "tenant BRANDNAAM: start", "2026-13-01")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tenant_config(tmp_path, "interval: fortnightly", defaults="colour: blue")
    refused(check(path), "defaults: unknown key 'colour'", "tenant BRANDNAAM: interval")


def test_a_misspelt_key_gets_a_suggestion(tmp_path: Path) -> None:
    refused(check(tenant_config(tmp_path, "extention: txt")), "extention", "did you mean 'extension'")


def test_a_legacy_timezone_is_warned_about(tmp_path: Path) -> None:
    done = check(tenant_config(tmp_path, "timezone: EST"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tenant BRANDNAAM: timezone 'EST'" in done.stderr and "America/New_York" in done.stderr


# --- 5. secrets never echo, wherever they are planted ---------------------------------------


LEDGER_SECRETS = ["pA/AAq7z", "pB#BBq7z", "pC@CCq7z", "pDDDq7z"]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:pA/AAq7z@127.0.0.1:5432/no_such_db",
        "postgresql://postgres:pB#BBq7z@127.0.0.1/no_such_db",
        "postgresql://postgres:pC@CCq7z@127.0.0.1/no_such_db?password=pDDDq7z",
        "postgresql://postgres:pA/AAq7z@[::1/no_such_db",
    ],
)
def test_a_ledger_password_is_never_printed(tmp_path: Path, url: str) -> None:
    path = tenant_config(tmp_path)
    for command in (["status"], ["check"], ["run", "--dry-run"]):
        done = cli(*command, "--config", str(path), "--ledger", url, "--now", NOW)
        output = done.stdout + done.stderr
        assert "Traceback" not in output, output
        for secret in LEDGER_SECRETS:
            for piece in {secret, *secret.replace("#", "/").replace("@", "/").split("/")}:
                if len(piece) >= 4:
                    assert piece not in output, f"{piece!r} printed by {command}:\n{output}"


def test_a_profile_value_that_cannot_be_converted_is_not_echoed(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "profiles.yml").write_text(
        textwrap.dedent(
            """
            activity_export:
              target: postgres
              outputs:
                postgres:
                  type: postgres
                  host: 127.0.0.1
                  port: "{{ env_var('AEXP_SECRET_PORT') | as_number }}"
                  user: postgres
                  password: "{{ env_var('AEXP_SECRET_PW') | as_bool }}"
                  dbname: activity_export
                  schema: analytics
            """
        )
    )
    secret = "s3cr3t-Value-42"
    path = tenant_config(tmp_path)
    done = cli(
        "status", "--config", str(path), "--profiles-dir", str(profiles), "--project-dir", str(ROOT),
        env={"AEXP_SECRET_PW": secret, "AEXP_SECRET_PORT": secret},
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert "Traceback" not in output and secret not in output, output


# --- 6. lock files follow no link ----------------------------------------------------------------


def test_a_link_at_the_lock_file_is_refused_and_its_target_untouched(
    built_duckdb: Project, tmp_path: Path
) -> None:
    path = tenant_config(tmp_path, "start: 2026-11-01")
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    locks = tmp_path / "activity-export.ledger.sqlite.locks"
    locks.mkdir(mode=0o700)
    (locks / "BRANDNAAM.lock").symlink_to(victim)
    done = built_duckdb.run(
        "run", "--config", str(path), "--now", "2026-11-04T07:00:00+01:00", *built_duckdb.cli_args(), check=False
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "lock file" in done.stderr
    assert victim.read_text() == "keep me\n"


def test_a_lock_folder_others_can_write_is_refused(built_duckdb: Project, tmp_path: Path) -> None:
    path = tenant_config(tmp_path, "start: 2026-11-01")
    locks = tmp_path / "activity-export.ledger.sqlite.locks"
    locks.mkdir()
    locks.chmod(0o777)
    done = built_duckdb.run(
        "run", "--config", str(path), "--now", "2026-11-04T07:00:00+01:00", *built_duckdb.cli_args(), check=False
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "lock folder" in done.stderr and "no one else can write" in done.stderr


# --- 13. an empty ledger file reads as empty ----------------------------------------------------


def test_an_empty_ledger_file_is_read_as_an_empty_ledger(tmp_path: Path) -> None:
    path = tenant_config(tmp_path)
    (tmp_path / "activity-export.ledger.sqlite").write_bytes(b"")
    for command in ("check", "status"):
        done = cli(command, "--config", str(path), "--now", NOW)
        assert "Traceback" not in done.stderr and "no such table" not in done.stderr, done.stderr
    assert cli("check", "--config", str(path), "--now", NOW).returncode == 0


# --- a named pipe where a file is read ------------------------------------------------------------


def test_a_named_pipe_as_the_configuration_is_refused_at_once(tmp_path: Path) -> None:
    """Reading a FIFO waits for a writer forever: a job would hang instead of failing."""
    pipe = tmp_path / "tenants.yml"
    os.mkfifo(pipe)
    started = time.monotonic()
    refused(check(pipe), f"{pipe}: cannot read the configuration file: not a regular file")
    assert time.monotonic() - started < 30


def test_a_named_pipe_as_known_hosts_is_refused_at_once(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    pipe = tmp_path / "known_hosts"
    os.mkfifo(pipe)
    config = config_file(
        tmp_path,
        f"""
        tenants:
          BRANDNAAM:
            destination:
              type: sftp
              host: sftp.example.nl
              username: brandnaam
              private_key: {key}
              known_hosts: {pipe}
        """,
    )
    started = time.monotonic()
    refused(check(config), f"destination.known_hosts = '{pipe}': not a regular file")
    assert time.monotonic() - started < 30
