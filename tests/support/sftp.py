"""The loader's SFTP destination pointed at an account of the test sshd (tests/support/sshd.py)."""

from __future__ import annotations

import os
from pathlib import Path

from activity_export.config import SftpDestination
from activity_export.destinations.sftp import SftpServer
from tests.support.sshd import Account, SshServer


def destination(server: SshServer, account: Account, **overrides: object) -> SftpDestination:
    values: dict[str, object] = {
        "type": "sftp",
        "host": server.host,
        "port": server.port,
        "username": account.username,
        "private_key": account.private_key,
        "known_hosts": server.known_hosts,
        "root": account.root,
    }
    values.update(overrides)
    return SftpDestination(**values)


def sftp_server(config: SftpDestination, **options: float) -> SftpServer:
    options.setdefault("timeout", 5.0)
    options.setdefault("retry_budget", 2.0)
    return SftpServer(config, "BRAND", **options)


def local_file(tmp_path: Path, name: str = "activity_BRAND_20261125.csv", size: int = 0) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size) if size else b"broadcastid;customerid\n1;2\n")
    return path
