"""Destinations: where a tenant's files are published, atomically.

Every destination offers the same small interface (``Destination``). A file is first written under a
hidden temporary name in its target folder (``.<name>.partial``, ``naming.partial_name``), checked,
then renamed to its final name, so a receiver polling the folder never sees a half-written file
under a final name.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Protocol

from activity_export.config import DEFAULT_FILE_MODE, LocalDestination, S3Destination, SftpDestination


class Follower(Protocol):
    """An upload that follows a file while it is written (see ``Destination.follow``)."""

    def finish(self, *, complete: bool) -> None:
        """The writer is done: ``complete`` when the file is whole, False when writing failed."""

    def result(self) -> tuple[int, str] | None:
        """Wait for the upload; its bytes and SHA-256 when all of the file went up, else None."""


class Destination(ABC):
    """One tenant's destination, opened once per run and reused for every file."""

    def __enter__(self) -> Destination:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:  # noqa: B027 (an optional hook: local folders need no connection)
        """Connect (a no-op for local folders)."""

    def close(self) -> None:  # noqa: B027 (an optional hook)
        """Disconnect."""

    @abstractmethod
    def describe(self) -> str:
        """Where files go, for logs and summaries; never holds a secret."""

    @abstractmethod
    def publish(self, local: Path, relative: PurePosixPath, *, replace: bool = True) -> str:
        """Place ``local`` at ``relative`` under the root, atomically; return the final location.

        ``replace`` is False when the delivery is not forced (``--force``, ``backfill``): a
        destination that can refuse to overwrite atomically (S3's conditional writes) keeps a file
        already there then. Local folders and SFTP rely on the ledger and replace.
        """

    @abstractmethod
    def exists(self, relative: PurePosixPath) -> bool:
        """Whether a file is present under its final name."""

    @abstractmethod
    def check_writable(self) -> str:
        """Create and remove a probe file in the root; a one-line report (for ``check --connect``)."""

    def follow(self, growing: Path, relative: PurePosixPath) -> Follower | None:
        """Start uploading a file while it is still being written, under its hidden partial name.

        ``growing`` is the file the writer is about to create and append to; the writer calls the
        follower's ``finish`` when it stops writing. Nothing is published: ``publish_staged``
        renames the upload only once it is complete and matches the finished file. None: this
        destination does not stream (it publishes the finished file).
        """
        return None

    def publish_staged(self, relative: PurePosixPath, size: int, sha256: str) -> str | None:
        """Publish a file ``follow`` uploaded completely with exactly these bytes; else None."""
        return None

    def discard_staged(self) -> None:  # noqa: B027 (an optional hook: only streaming destinations stage)
        """Remove uploads started by ``follow`` that were not published."""

    def size(self, relative: PurePosixPath) -> int | None:
        """Size of the file under its final name, or None when it is absent or unknown."""
        return None

    def list_files(self, folder: PurePosixPath) -> list[str]:
        """Names of the regular files in a folder under the root, partial files left out (``prune``)."""
        raise NotImplementedError(f"{self.describe()}: retention (retention_days) is for SFTP and S3")

    def delete(self, relative: PurePosixPath) -> None:
        """Remove one file under the root (``prune``); a file already gone is not an error."""
        raise NotImplementedError(f"{self.describe()}: retention (retention_days) is for SFTP and S3")

    def sha256(self, relative: PurePosixPath) -> str | None:
        """SHA-256 (hex) of the file under its final name, or None when it is absent or unknown.

        Resuming after a crash trusts a file already under its final name only when this matches.
        """
        return None


def open_destination(
    config: LocalDestination | SftpDestination | S3Destination,
    brand: str,
    file_mode: int = int(DEFAULT_FILE_MODE, 8),
) -> Destination:
    """The destination for one tenant's configuration (not yet connected).

    ``file_mode`` is the tenant's ``file_mode`` setting as a number (objects in a bucket have
    none). ``ACTIVITY_EXPORT_SFTP_RETRY_SECONDS`` bounds how long one SFTP operation retries
    transient failures (default 60). Each backend is imported only when a tenant uses it.
    """
    if isinstance(config, LocalDestination):
        from activity_export.destinations.local import LocalFolder

        return LocalFolder(config, file_mode)
    if isinstance(config, S3Destination):
        from activity_export.destinations.s3 import S3Bucket

        return S3Bucket(config, brand)
    with paramiko_without_invoke():
        from activity_export.destinations.sftp import SftpServer
    from activity_export.environment import sftp_retry_seconds

    return SftpServer(config, brand, retry_budget=sftp_retry_seconds(), file_mode=file_mode)


@contextmanager
def paramiko_without_invoke() -> Iterator[None]:
    """Import paramiko (the SFTP and SSH modules) inside this block: without ``invoke``.

    paramiko imports the task runner ``invoke`` only to run the ``Match exec`` lines of an
    OpenSSH client configuration, which this loader never reads; importing it took 0.07 s of
    every run's start (0.2 s on a busy machine). Within the block ``import invoke`` fails, which
    paramiko expects and tolerates; afterwards the module can be imported as usual.
    """
    if "invoke" in sys.modules:  # imported already, or another thread's block is under way
        yield
        return
    sys.modules["invoke"] = None  # type: ignore[assignment]  # the documented way to refuse an import
    try:
        yield
    finally:
        if "invoke" in sys.modules and sys.modules["invoke"] is None:
            del sys.modules["invoke"]
