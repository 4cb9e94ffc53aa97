"""Tenant configurations as the tests write them, and the nightly job run against them.

Most tests deliver BRANDNAAM of the shared generated warehouse (three days from 2026-11-01) into
``<folder>/server``, with its ``tenants.yml`` (and so its ledger) in ``<folder>``.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.project import BIN, ROOT, Project
from tests.support.sshd import Account, SshServer

NOW = "2026-11-04T07:00:00+01:00"  # the three generated days are due and complete

# what a run at NOW delivers for BRANDNAAM
EXPECTED = [f"{kind}_BRANDNAAM_2026110{day}.csv" for kind in ("activity", "broadcast") for day in (1, 2, 3)]


def write_tenants(
    path: Path,
    tenants: dict[str, Any],
    defaults: dict[str, Any] | None = None,
    *,
    allow_unicode: bool = False,
) -> Path:
    """A configuration file at ``path`` with these ``tenants`` (and ``defaults``, when given)."""
    document: dict[str, Any] = {"tenants": tenants}
    if defaults is not None:
        document["defaults"] = defaults
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(document, allow_unicode=allow_unicode), encoding="utf-8")
    return path


def write_config(directory: Path, /, **settings: object) -> Path:
    """``directory/tenants.yml``: BRANDNAAM from 2026-11-01 into the local ``directory/server``;
    ``settings`` (``destination`` too) replace those or add to them. A tenant's ``folder`` setting
    is one of them, hence the positional-only ``directory``."""
    tenant: dict[str, object] = {
        "start": "2026-11-01",
        "destination": {"type": "local", "root": str(directory / "server")},
    }
    tenant.update(settings)
    return write_tenants(directory / "tenants.yml", {"BRANDNAAM": tenant})


def sftp_destination(
    server: SshServer, account: Account, known_hosts: Path, **settings: object
) -> dict[str, Any]:
    """A tenant's destination: ``account`` on the test ``server``, trusted through ``known_hosts``."""
    destination: dict[str, Any] = {
        "type": "sftp",
        "host": server.host,
        "port": server.port,
        "username": account.username,
        "private_key": str(account.private_key),
        "known_hosts": str(known_hosts),
        "root": account.root,
    }
    destination.update(settings)
    return destination


def sftp_tenant(
    server: SshServer, account: Account, known_hosts: Path, **destination: object
) -> dict[str, Any]:
    """A tenant from 2026-11-01 delivering to ``account``; ``destination`` settings added to its destination."""
    return {
        "start": "2026-11-01",
        "destination": sftp_destination(server, account, known_hosts, **destination),
    }


def run(project: Project, config: Path, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``activity-export run`` of ``config`` at NOW."""
    return project.run("run", "--config", str(config), "--now", NOW, *args, *project.cli_args(), **kwargs)


def server_files(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file on the 'server': name -> (sha256, inode)."""
    return {
        str(p.relative_to(folder / "server")): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_ino)
        for p in sorted((folder / "server").rglob("*"))
        if p.is_file()
    }


def run_stopped_at(
    project: Project, config: Path, env: dict[str, str], point: str, signum: int, *args: str, pauses: int = 1
) -> tuple[int, str, str]:
    """``run`` of ``config`` at NOW with the failpoint ``point`` pausing it, sent ``signum`` once
    ``pauses`` processes (a run's workers) have said they are paused there: exit code, stdout and
    stderr (all of it)."""
    process = subprocess.Popen(
        [
            str(BIN / "activity-export"),
            "run",
            "--config",
            str(config),
            "--now",
            NOW,
            *args,
            *project.cli_args(),
        ],
        env={**project.env, **env, "ACTIVITY_EXPORT_FAILPOINT": f"{point}:pause"},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        seen.append(line)
        if sum(1 for said in seen if said.startswith(f"paused at {point}")) == pauses:
            break
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    return process.returncode, out, "".join(seen) + err
