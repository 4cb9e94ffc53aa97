"""Temporary work folders: one private folder per tenant while its files are written, and one for
DuckDB to spill a large sort to.

A folder's name carries the process id, so a later run can remove what a killed run left behind
(``remove_stale_workdirs``): those files hold e-mail addresses.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

WORKDIR_PREFIX = "activity-export."


class workdir:
    """A private temporary folder for one tenant's files, removed however the block ends."""

    def __init__(self, brand: str) -> None:
        self.path = private_folder(brand)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def private_folder(label: str) -> Path:
    """A new temporary folder only this user can enter, named so a later run can tell whether the
    process that made it still lives."""
    return Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}.{label[:40]}."))


def remove_stale_workdirs() -> list[Path]:
    """Remove temporary folders of runs that no longer exist (killed with SIGKILL, power loss)."""
    removed = []
    for folder in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        parts = folder.name.split(".")
        if len(parts) < 4 or not parts[1].isdigit() or not folder.is_dir():
            continue
        pid = int(parts[1])
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
        log.info("removed %s, left by an earlier run that did not finish", folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
