"""Folders the loader creates get the mode meant for them, whatever the umask; the files it reads
(configuration, known_hosts, the dbt project's YAML) are regular files.

``mkdir`` passes its mode through the process umask: under ``umask 000`` every folder a plain
``mkdir -p`` makes is open to everyone, under ``umask 077`` closed to the receivers' group. So each
folder the loader makes is set to its mode right after it is made (on the opened folder, never
through a link); folders that were there already are the operator's and keep theirs.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

PRIVATE = 0o700  # the loader's own: the ledger, its locks, work folders


def make_folders(path: Path, mode: int) -> list[Path]:
    """Create ``path`` and whichever of its parents are missing, each with exactly ``mode``.

    Returns the folders it created, top down. A folder another process creates meanwhile is left as
    it is; anything else in the way (a file) raises the OSError of ``mkdir``.
    """
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():  # a link to a folder counts: the operator's setting
            break
        missing.append(folder)
    made = []
    for folder in reversed(missing):
        try:
            folder.mkdir(mode)
        except FileExistsError:
            if folder.is_dir():
                continue  # made meanwhile by someone else
            raise
        handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fchmod(handle, mode)  # the umask may have taken bits
        finally:
            os.close(handle)
        made.append(folder)
    return made


def read_regular_file(path: Path) -> bytes:
    """The bytes of ``path``, which must be a regular file (links followed). A named pipe, a device
    or a folder in its place is an OSError at once: opening a named pipe to read would wait for a
    writer forever, and a job would hang instead of failing."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a named pipe, a device or a folder)", str(path))
        return handle.read()
