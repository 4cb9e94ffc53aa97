"""A local folder: the embedded default and the demo's destination.

Whoever can write below the root (often the tenant itself, through the platform's own SFTP) could
plant a symbolic link where the loader writes: ``activity -> /somewhere/else``, or a link at a
temporary name pointing at a file the loader may write. So nothing below the root is reached by a
path the kernel resolves: the root is opened once, each folder is opened relative to its parent
with ``O_NOFOLLOW | O_DIRECTORY``, a temporary file is created with
``O_CREAT | O_EXCL | O_NOFOLLOW`` under an unpredictable name, and the final rename happens between
two names of that one opened folder. Where a link stands, publishing stops with an error for the
tenant; nothing is written anywhere else. The root itself is the operator's setting and may be a
link. Only regular files (and links planted at a temporary name, removed themselves) are replaced
or removed: a folder or a named pipe at a temporary or final name stops the tenant likewise, and a
file is never opened in a way that could wait on a named pipe.

Files get the tenant's ``file_mode`` (set on the open file before the rename, whatever the umask);
folders the loader creates, the root and any missing folder above it included, get the matching
search bits.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from activity_export import failpoints
from activity_export.config import DEFAULT_FILE_MODE, LocalDestination, folder_mode
from activity_export.destinations import Destination
from activity_export.errors import ExportError
from activity_export.folders import make_folders
from activity_export.naming import is_partial_of, unique_partial_name

FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class UnsafePathError(ExportError):
    """A symbolic link (or something else than expected) stands where the loader would write."""


class LocalFolder(Destination):
    """Files under a directory, published by exclusive create, fsync, then rename."""

    def __init__(self, config: LocalDestination, file_mode: int = int(DEFAULT_FILE_MODE, 8)) -> None:
        self.config = config
        self.root = config.root
        self.file_mode = file_mode
        self.folder_mode = folder_mode(file_mode)

    def describe(self) -> str:
        return self.config.describe()

    def publish(self, local: Path, relative: PurePosixPath, *, replace: bool = True) -> str:
        with self._folder(relative.parent, create=True) as folder:
            assert folder is not None  # created when missing
            name = relative.name
            for stale in os.listdir(folder):  # left by a run that crashed mid-copy
                if is_partial_of(stale, name):
                    self._remove_partial(folder, stale, relative.with_name(stale))
            self._refuse_unsafe(folder, name, relative)
            temporary = unique_partial_name(name)
            target = os.open(temporary, CREATE_FLAGS, self.file_mode, dir_fd=folder)
            try:
                with os.fdopen(target, "wb") as handle, local.open("rb") as source:
                    os.fchmod(handle.fileno(), self.file_mode)  # the umask may have taken bits
                    shutil.copyfileobj(source, handle, 1 << 20)
                    failpoints.hit("mid-upload")
                    handle.flush()
                    os.fsync(handle.fileno())
                    if os.fstat(handle.fileno()).st_size != local.stat().st_size:
                        raise OSError(f"{self.root / relative}: size differs from {local} after copy")
                self._refuse_unsafe(folder, name, relative)
                os.rename(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary, dir_fd=folder)
            os.fsync(folder)
        return str(self.root.joinpath(*relative.parts))

    def exists(self, relative: PurePosixPath) -> bool:
        return self._regular_size(relative) is not None

    def size(self, relative: PurePosixPath) -> int | None:
        return self._regular_size(relative)

    def sha256(self, relative: PurePosixPath) -> str | None:
        with self._folder(relative.parent, create=False) as folder:
            if folder is None:
                return None
            try:
                # O_NONBLOCK: a named pipe planted at the name would otherwise wait for a writer forever
                handle = os.open(relative.name, READ_FLAGS, dir_fd=folder)
            except (FileNotFoundError, IsADirectoryError):
                return None
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # a link: not a file this loader published
                    return None
                raise
            digest = hashlib.sha256()
            with os.fdopen(handle, "rb") as source:
                if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
                    return None
                while chunk := source.read(1 << 20):
                    digest.update(chunk)
            return digest.hexdigest()

    def check_writable(self) -> str:
        try:
            with self._folder(PurePosixPath(), create=True) as folder:
                assert folder is not None
                probe = unique_partial_name("activity-export-probe")
                handle = os.open(probe, CREATE_FLAGS, self.file_mode, dir_fd=folder)
                try:
                    os.write(handle, b"activity-export probe\n")
                finally:
                    os.close(handle)
                    os.unlink(probe, dir_fd=folder)
        except OSError as exc:
            raise ExportError(f"{self.describe()}: not writable: {exc.strerror or exc}") from None
        return f"{self.describe()}: wrote and removed a probe file"

    # -- walking without following links ---------------------------------------------------------

    def _regular_size(self, relative: PurePosixPath) -> int | None:
        with self._folder(relative.parent, create=False) as folder:
            if folder is None:
                return None
            try:
                found = os.stat(relative.name, dir_fd=folder, follow_symlinks=False)
            except FileNotFoundError:
                return None
            return found.st_size if stat.S_ISREG(found.st_mode) else None

    @contextlib.contextmanager
    def _folder(self, relative: PurePosixPath, *, create: bool) -> Iterator[int | None]:
        """An open descriptor of ``root/relative``, reached without following any link below root.

        With ``create``, missing folders are made (with the folder mode); without it, a missing
        folder gives None.
        """
        if create and not self.root.is_dir():
            make_folders(self.root, self.folder_mode)  # the folders above it too
        try:
            current = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            if create:
                raise
            yield None
            return
        try:
            walked = PurePosixPath()
            for part in relative.parts:
                walked /= part
                made = False
                if create:
                    try:
                        os.mkdir(part, self.folder_mode, dir_fd=current)
                        made = True
                    except FileExistsError:
                        pass
                try:
                    child = os.open(part, FOLDER_FLAGS, dir_fd=current)
                except FileNotFoundError:
                    if create:
                        raise
                    os.close(current)
                    current = -1
                    yield None
                    return
                except OSError as exc:
                    if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                        raise
                    raise self._unsafe(current, part, walked, "a folder") from None
                if made:
                    os.fchmod(child, self.folder_mode)  # the umask may have taken bits
                os.close(current)
                current = child
            yield current
        finally:
            if current >= 0:
                os.close(current)

    def _refuse_unsafe(self, folder: int, name: str, relative: PurePosixPath) -> None:
        """Refuse to replace anything but a regular file at the final name (above all: a link)."""
        try:
            found = os.stat(name, dir_fd=folder, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not stat.S_ISREG(found.st_mode):
            raise self._unsafe(folder, name, relative, "a regular file")

    def _remove_partial(self, folder: int, name: str, relative: PurePosixPath) -> None:
        """Remove a temporary file a crashed run left: a regular file, or a link planted at its name
        (the link itself, never its target); anything else there is not the loader's to remove."""
        try:
            found = os.stat(name, dir_fd=folder, follow_symlinks=False)
        except FileNotFoundError:
            return
        if not (stat.S_ISREG(found.st_mode) or stat.S_ISLNK(found.st_mode)):
            raise self._unsafe(folder, name, relative, "a temporary file of the loader")
        try:
            os.unlink(name, dir_fd=folder)
        except FileNotFoundError:
            pass
        except IsADirectoryError:  # swapped for a folder meanwhile
            raise self._unsafe(folder, name, relative, "a temporary file of the loader") from None

    def _unsafe(self, folder: int, name: str, relative: PurePosixPath, expected: str) -> UnsafePathError:
        """The error for ``relative``: a link, or something else than ``expected``, stands there."""
        try:
            mode = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
        except OSError:
            mode = 0
        path = self.root.joinpath(*relative.parts)
        if stat.S_ISLNK(mode):
            return UnsafePathError(
                f"{self.describe()}: {path} is a symbolic link; the loader never follows links below "
                "the root and wrote nothing. Remove it (and find out who put it there), then run again"
            )
        return UnsafePathError(
            f"{self.describe()}: {path} is {file_kind(mode)}, not {expected}; the loader replaces "
            "and removes only regular files and wrote nothing. Remove it (and find out who put it "
            "there), then run again"
        )


def file_kind(mode: int) -> str:
    """What ``st_mode`` says a directory entry is, in words: "a folder", "a named pipe (FIFO)"."""
    kinds = [
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISREG, "a regular file"),
    ]
    return next((words for test, words in kinds if test(mode)), "something unknown")
