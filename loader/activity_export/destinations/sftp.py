"""An SFTP server as a destination: publish many files atomically over one connection.

A file is uploaded under a hidden partial name in its target folder, its remote size is compared
with the local size, then it is renamed to its final name. With the ``posix-rename@openssh.com``
extension (OpenSSH and most servers) the rename replaces an existing final file atomically; a
server without it gets "remove the old final file, then rename", which leaves a short moment where
the final name is absent (never a moment where it holds a half-written file).

The connection, host keys, login and retries are in ``ssh``; the protocol extensions paramiko
lacks are in ``sftp_protocol``. A broken connection mid-upload reconnects and uploads the whole
file again, within the retry budget.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path, PurePosixPath
from stat import S_ISDIR, S_ISREG

import paramiko

from activity_export.config import SftpDestination
from activity_export.destinations import Destination
from activity_export.destinations.sftp_protocol import POSIX_RENAME, ExtendedSftpClient
from activity_export.destinations.ssh import (
    HostKeyError,
    RemotePathError,
    SftpAuthError,
    SftpError,
    SshConnection,
    TransientSftpError,
)
from activity_export.naming import is_partial, partial_name

__all__ = [
    "POSIX_RENAME",
    "HostKeyError",
    "RemotePathError",
    "SftpAuthError",
    "SftpError",
    "SftpServer",
    "TransientSftpError",
]

log = logging.getLogger(__name__)

# Local read size per write() call; paramiko splits it into pipelined SFTP write requests.
READ_SIZE = 2**20


class SftpServer(Destination):
    """One tenant's SFTP destination: connect once, publish many files atomically.

    ``timeout`` bounds every network wait (connect, banner, handshake, login, each SFTP answer);
    ``retry_budget`` is the time one operation (``open``, one ``publish``, ...) may spend retrying
    transient failures before it gives up.
    """

    def __init__(
        self,
        config: SftpDestination,
        brand: str,
        *,
        timeout: float = 30.0,
        retry_budget: float = 60.0,
    ) -> None:
        self.config = config
        self.brand = brand
        self.root = PurePosixPath(config.root or "/")
        self._ssh = SshConnection(config, self.describe(), timeout=timeout, retry_budget=retry_budget)
        self._folders: set[PurePosixPath] = set()  # known to exist on the session below
        self._folders_session: ExtendedSftpClient | None = None

    @property
    def host_key_fingerprint(self) -> str:
        """The server's host key as ``type fingerprint``, once connected."""
        return self._ssh.host_key_fingerprint

    # -- Destination -----------------------------------------------------------------------------

    def describe(self) -> str:
        return self.config.describe()

    def open(self) -> None:
        """Connect, check the host key, log in and start the SFTP session (retried if transient)."""
        self._ssh.retrying("connect", lambda: self._session())

    def close(self) -> None:
        self._ssh.disconnect()

    def publish(self, local: Path, relative: PurePosixPath) -> str:
        """Upload ``local`` to ``root/relative`` via a hidden partial name; return the final path.

        A broken connection mid-upload reconnects and uploads the whole file again, within the
        retry budget. On any failure the partial file is removed (best effort) and the final name
        is left as it was.
        """
        final = self._remote(relative)
        size = local.stat().st_size
        started = time.monotonic()
        self._ssh.retrying(f"publish {final}", lambda: self._publish_once(local, final, size))
        elapsed = time.monotonic() - started
        log.info(
            "published %s to %s: %d bytes in %.2fs (%.1f MB/s)",
            local,
            self._where(final),
            size,
            elapsed,
            size / 1e6 / max(elapsed, 1e-6),
        )
        return str(final)

    def exists(self, relative: PurePosixPath) -> bool:
        final = self._remote(relative)
        return self._ssh.retrying(f"check {final}", lambda: self._is_file(final))

    def size(self, relative: PurePosixPath) -> int | None:
        final = self._remote(relative)

        def look() -> int | None:
            with self._ssh.step(f"look up {final}"):
                try:
                    attributes = self._session().stat(str(final))
                except FileNotFoundError:
                    return None
            return attributes.st_size if S_ISREG(attributes.st_mode or 0) else None

        return self._ssh.retrying(f"check {final}", look)

    # -- more than a Destination: check --connect, prune, cleanup --------------------------------

    def check_writable(self) -> str:
        """Log in, create and remove a probe file in the root; a one-line report for ``check``."""

        def probe() -> str:
            sftp = self._session()
            self._make_folders(self.root)
            name = self.root / partial_name(f"activity-export-probe-{uuid.uuid4().hex[:8]}")
            with self._ssh.step(f"write probe file {name}"), sftp.open(str(name), "wb") as target:
                target.write(b"activity-export probe\n")
            with self._ssh.step(f"remove probe file {name}"):
                sftp.remove(str(name))
            rename = "atomic replace" if sftp.posix_rename_supported else "remove-then-rename"
            return (
                f"{self.describe()}: logged in (host key {self.host_key_fingerprint}), "
                f"wrote and removed a probe file in {self.root} ({rename})"
            )

        return self._ssh.retrying("check write access", probe)

    def clean_partials(self, folder: PurePosixPath) -> list[str]:
        """Remove hidden partial files (``.<name>.partial``) left in a folder by crashed runs."""
        remote = self._remote(folder)

        def clean() -> list[str]:
            sftp = self._session()
            removed = []
            for name in self._names(remote, regular_only=False):
                if is_partial(name):
                    with self._ssh.step(f"remove partial file {remote / name}"):
                        sftp.remove(str(remote / name))
                    removed.append(str(remote / name))
                    log.info("removed partial file %s", self._where(remote / name))
            return removed

        return self._ssh.retrying(f"clean partial files in {remote}", clean)

    def list_files(self, folder: PurePosixPath) -> list[str]:
        """Names of the regular files in a folder under the root, partial files left out; sorted.

        A missing folder has no files.
        """
        remote = self._remote(folder)
        return self._ssh.retrying(
            f"list {remote}",
            lambda: sorted(n for n in self._names(remote, regular_only=True) if not is_partial(n)),
        )

    def delete(self, relative: PurePosixPath) -> None:
        """Remove one file under the root (for ``prune``); a file already gone is not an error."""
        remote = self._remote(relative)

        def remove() -> None:
            sftp = self._session()
            try:
                with self._ssh.step(f"delete {remote}"):
                    sftp.remove(str(remote))
            except RemotePathError:
                if self._is_file(remote):
                    raise
                log.info("%s was already gone", self._where(remote))
                return
            log.info("deleted %s", self._where(remote))

        self._ssh.retrying(f"delete {remote}", remove)

    # -- publishing ------------------------------------------------------------------------------

    def _publish_once(self, local: Path, final: PurePosixPath, size: int) -> None:
        sftp = self._session()
        self._make_folders(final.parent)
        temporary = final.with_name(partial_name(final.name))
        if self._exists(temporary):
            log.info("removing stale partial file %s from an earlier run", self._where(temporary))
            with self._ssh.step(f"remove stale partial file {temporary}"):
                sftp.remove(str(temporary))
        try:
            self._upload(local, temporary)
            with self._ssh.step(f"check size of {temporary}"):
                uploaded = sftp.stat(str(temporary)).st_size
            if uploaded != size:
                raise RemotePathError(
                    f"{self.describe()}: {temporary} holds {uploaded} bytes after upload, "
                    f"{local} has {size} (disk full?)"
                )
            self._replace(temporary, final)
        except BaseException:
            self._remove_quietly(temporary)
            raise

    def _upload(self, local: Path, remote: PurePosixPath) -> None:
        """Pipelined upload: write requests are sent without waiting for each answer."""
        sftp = self._session()
        with self._ssh.step(f"write {remote}"), local.open("rb") as source:
            # bufsize=0: paramiko's own write buffer would only copy our 1 MiB reads once more
            with sftp.open(str(remote), "wb", bufsize=0) as target:
                target.set_pipelined(True)
                target.MAX_REQUEST_SIZE = sftp.write_size  # paramiko's per-request cap
                while chunk := source.read(READ_SIZE):
                    target.write(chunk)

    def _replace(self, temporary: PurePosixPath, final: PurePosixPath) -> None:
        sftp = self._session()
        if sftp.posix_rename_supported:
            with self._ssh.step(f"rename {temporary} to {final}"):
                sftp.posix_rename(str(temporary), str(final))
            return
        # Plain SFTP rename refuses an existing target: remove it first (a short gap, never a
        # half-written file under the final name).
        if self._exists(final):
            with self._ssh.step(f"remove the previous {final}"):
                sftp.remove(str(final))
        with self._ssh.step(f"rename {temporary} to {final}"):
            sftp.rename(str(temporary), str(final))

    def _remove_quietly(self, remote: PurePosixPath) -> None:
        """Best-effort cleanup after a failure; a dead connection leaves it for the next attempt."""
        sftp = self._ssh.live_session()
        if sftp is None:
            return
        try:
            sftp.remove(str(remote))
        except (OSError, EOFError, paramiko.SSHException, paramiko.SFTPError) as exc:
            log.debug("could not remove %s after a failure: %s", remote, exc)

    def _make_folders(self, folder: PurePosixPath) -> None:
        """``mkdir -p``: create each missing folder from the top down."""
        if folder in self._folders:
            return
        sftp = self._session()
        missing: list[PurePosixPath] = []
        for candidate in (folder, *folder.parents):
            if str(candidate) in ("", ".", "/") or candidate in self._folders:
                break
            with self._ssh.step(f"look up folder {candidate}"):
                kind = self._kind(candidate)
            if kind == "dir":
                break
            if kind == "other":
                raise RemotePathError(f"{self.describe()}: {candidate} exists and is not a folder")
            missing.append(candidate)
        for candidate in reversed(missing):
            try:
                with self._ssh.step(f"create folder {candidate}"):
                    sftp.mkdir(str(candidate))
                log.info("created folder %s", self._where(candidate))
            except RemotePathError:
                if self._kind(candidate) != "dir":  # else: created meanwhile by someone else
                    raise
        self._folders.update((folder, *folder.parents))

    # -- remote look-ups -------------------------------------------------------------------------

    def _kind(self, remote: PurePosixPath) -> str:
        """``dir``, ``file``, ``other`` or ``missing``."""
        try:
            mode = self._session().stat(str(remote)).st_mode or 0
        except FileNotFoundError:
            return "missing"
        return "dir" if S_ISDIR(mode) else "file" if S_ISREG(mode) else "other"

    def _exists(self, remote: PurePosixPath) -> bool:
        with self._ssh.step(f"look up {remote}"):
            return self._kind(remote) != "missing"

    def _is_file(self, remote: PurePosixPath) -> bool:
        with self._ssh.step(f"look up {remote}"):
            return self._kind(remote) == "file"

    def _names(self, folder: PurePosixPath, *, regular_only: bool) -> list[str]:
        try:
            with self._ssh.step(f"list {folder}"):
                entries = self._session().listdir_attr(str(folder))
        except RemotePathError:
            if not self._exists(folder):
                return []
            raise
        return [e.filename for e in entries if not regular_only or S_ISREG(e.st_mode or 0)]

    def _remote(self, relative: PurePosixPath) -> PurePosixPath:
        relative = PurePosixPath(relative)
        if relative.is_absolute() or ".." in relative.parts:
            raise SftpError(f"{self.describe()}: {relative} is absolute or climbs out of the root")
        return self.root / relative

    def _where(self, remote: PurePosixPath) -> str:
        """``sftp://user@host:port/path``, for logs and messages (no secret in it)."""
        return self.config.url(remote)

    def _session(self) -> ExtendedSftpClient:
        """The open SFTP session, connecting first when there is none; a new one knows no folders."""
        sftp = self._ssh.session()
        if sftp is not self._folders_session:
            self._folders, self._folders_session = set(), sftp
        return sftp
