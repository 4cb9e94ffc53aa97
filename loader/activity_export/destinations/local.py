"""A local folder: the embedded default and the demo's destination."""

from __future__ import annotations

import os
import shutil
from pathlib import Path, PurePosixPath

from activity_export import failpoints
from activity_export.config import LocalDestination
from activity_export.destinations import Destination
from activity_export.errors import ExportError
from activity_export.naming import is_partial, partial_name


class LocalFolder(Destination):
    """Files under a directory, published by copy to a hidden name, fsync, then rename."""

    def __init__(self, config: LocalDestination) -> None:
        self.config = config
        self.root = config.root

    def describe(self) -> str:
        return self.config.describe()

    def publish(self, local: Path, relative: PurePosixPath) -> str:
        final = self.root.joinpath(*relative.parts)
        final.parent.mkdir(parents=True, exist_ok=True)
        for stale in final.parent.iterdir():  # left by a run that crashed mid-copy
            if is_partial(stale.name) and stale.name == partial_name(final.name):
                stale.unlink()
        temporary = final.with_name(partial_name(final.name))
        try:
            with local.open("rb") as source, temporary.open("wb") as target:
                shutil.copyfileobj(source, target, 1 << 20)
                failpoints.hit("mid-upload")
                target.flush()
                os.fsync(target.fileno())
            if temporary.stat().st_size != local.stat().st_size:
                raise OSError(f"{temporary}: size differs from {local} after copy")
            os.replace(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)
        _fsync_dir(final.parent)
        return str(final)

    def exists(self, relative: PurePosixPath) -> bool:
        return self.root.joinpath(*relative.parts).is_file()

    def check_writable(self) -> str:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / partial_name(f"activity-export-probe-{os.getpid()}")
            probe.write_bytes(b"activity-export probe\n")
            probe.unlink()
        except OSError as exc:
            raise ExportError(f"{self.describe()}: not writable: {exc}") from None
        return f"{self.describe()}: wrote and removed a probe file"

    def size(self, relative: PurePosixPath) -> int | None:
        path = self.root.joinpath(*relative.parts)
        return path.stat().st_size if path.is_file() else None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
