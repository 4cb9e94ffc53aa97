"""No command ever shows a secret: a key's passphrase, the ledger URL's password and a webhook
secret are planted where the operator puts them (environment variables), every command runs on
them as in production (a PostgreSQL ledger, a webhook that answers, an SFTP key that must be
loaded, a server that cannot be reached, with debugging detail and JSON logs), and everything it
printed, every failure notification, every webhook body and every ledger row is searched for them.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import fresh_database, pg_connect, pg_settings
from tests.support.project import Project
from tests.support.sshd import free_port, generate_key
from tests.support.tenants import write_tenants
from tests.support.webhooks import Hook, serve

NOW = "2026-11-04T07:00:00+01:00"  # the three generated days are due and complete
PASSPHRASE = "Pass-Phr4se-n3ver-sh0wn"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def hook() -> Iterator[Hook]:
    yield from serve(Hook())


@pytest.fixture
def ledger() -> Iterator[tuple[str, str, str]]:
    """(URL, its password, database) of a PostgreSQL ledger of its own. The password is the
    server's own when it asks for one; else a planted one (a trusting server ignores it)."""
    settings = pg_settings()
    password = settings["password"] or "Ledger-pa55word-n3ver-sh0wn"
    with fresh_database("aexp_secrets") as name:
        url = f"postgresql://{settings['user']}:{password}@{settings['host']}:{settings['port']}/{name}"
        yield url, password, name


def test_no_command_prints_a_planted_secret(
    built_duckdb: Project, hook: Hook, ledger: tuple[str, str, str], tmp_path: Path
) -> None:
    url, ledger_password, database = ledger
    key = generate_key(tmp_path / "keys" / "modehuis", passphrase=PASSPHRASE)
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    notify = {"url": hook.url, "secret_env": "AEXP_WEBHOOK_SECRET", "timeout_seconds": 5, "retries": 0}
    config = write_tenants(
        tmp_path / "tenants.yml",
        {
            "BRANDNAAM": {
                "start": "2026-11-01",
                "destination": {"type": "local", "root": str(tmp_path / "server")},
                "notify": notify,
            },
            "MODEHUIS": {  # its server cannot be reached: every failure path, with the key loaded
                "start": "2026-11-01",
                "notify": dict(notify),  # a copy: the same object would be written as a YAML alias
                "destination": {
                    "type": "sftp",
                    "host": "127.0.0.1",
                    "port": free_port(),
                    "username": "modehuis",
                    "private_key": str(key),
                    "passphrase_env": "AEXP_KEY_PASSPHRASE",
                    "known_hosts": str(known_hosts),
                    "root": "/upload",
                    "retention_days": 30,
                },
            },
        },
    )
    env = {
        "AEXP_KEY_PASSPHRASE": PASSPHRASE,
        "AEXP_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "ACTIVITY_EXPORT_LEDGER": url,
        "ACTIVITY_EXPORT_SFTP_RETRY_SECONDS": "1",
        "ACTIVITY_EXPORT_ON_FAILURE": f"cat >> {tmp_path / 'on-failure.json'}",
    }
    common = ["--config", str(config), "--now", NOW]
    period = ["--from", "2026-11-01", "--to", "2026-11-01"]
    commands = [
        ["check", *common],
        ["check", "--connect", *common, "-vv"],
        ["run", "--dry-run", *common, "-vv"],
        ["run", *common, "-vv"],
        ["run", "--force", "--json", *common, "--log-format", "json", "-vv"],
        ["status", *common, "-vv"],
        ["status", "--json", "--verify", *common],
        ["export", "--config", str(config), "--brand", "BRANDNAAM", "--period", "2026-11-02",
         "--out", str(tmp_path / "export"), "-vv"],
        ["backfill", "--config", str(config), "--brand", "BRANDNAAM", *period, "-vv"],
        ["backfill", "--config", str(config), "--brand", "MODEHUIS", *period, "--log-format", "json", "-vv"],
        ["prune", "--dry-run", *common, "-vv"],
        ["prune", *common],
    ]  # fmt: skip
    texts: dict[str, str] = {}
    for command in commands:
        done = built_duckdb.run(*command, *built_duckdb.cli_args(), check=False, env=env)
        texts[" ".join(["activity-export", *(word for word in command if str(tmp_path) not in word)])] = (
            done.stdout + done.stderr
        )
        if "-vv" not in command:  # debugging detail may show where a retried step failed
            assert "Traceback" not in done.stderr, done.stderr

    # every path was taken: delivered with webhooks and a PostgreSQL ledger, failed with the key loaded
    assert len(list((tmp_path / "server").iterdir())) == 6 and len(hook.received) >= 4
    run = texts[f"activity-export run --config --now {NOW} -vv"]
    assert "tenant MODEHUIS: period 2026-11-01: sftp://modehuis@127.0.0.1:" in run
    assert "connect failed after" in run  # not refused for its key: the key was loaded
    texts["--on-failure"] = (tmp_path / "on-failure.json").read_text()
    texts["webhook bodies"] = "\n".join(body.decode() for _, body in hook.received)
    with pg_connect(database) as con, con.cursor() as cursor:
        cursor.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema not in ('pg_catalog', 'information_schema')"
        )
        for schema, table in cursor.fetchall():
            cursor.execute(f'select row_to_json(t)::text from "{schema}"."{table}" as t')
            texts[f"ledger table {table}"] = "\n".join(row[0] for row in cursor.fetchall())
    assert any("failed" in text for name, text in texts.items() if name.startswith("ledger table"))

    planted = {
        "the key's passphrase": PASSPHRASE,
        "the ledger URL's password": ledger_password,
        "the webhook secret": WEBHOOK_SECRET,
        "the webhook secret's key": WEBHOOK_SECRET.removeprefix("whsec_"),
    }
    for where, text in texts.items():
        for what, secret in planted.items():
            assert secret not in text, f"{what} in the output of {where}:\n{text}"
