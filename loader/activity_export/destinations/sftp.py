"""An SFTP server, reached with paramiko: one connection per run, strict host keys, atomic publish.

The connection is opened once (``open``) and reused for every file. The server's host key must be
in the configured ``known_hosts`` file and nowhere else; an unknown or changed key is refused with
its fingerprint and how to trust it. Login is with the configured private key or password only
(never an agent or ``~/.ssh`` keys).

A file is uploaded under a hidden partial name in its target folder, its remote size is compared
with the local size, then it is renamed to its final name. With the ``posix-rename@openssh.com``
extension (OpenSSH and most servers) the rename replaces an existing final file atomically; a
server without it gets "remove the old final file, then rename", which leaves a short moment where
the final name is absent (never a moment where it holds a half-written file).

Network trouble (refused, reset, timeout, connection dropped) is retried with exponential backoff
and jitter for up to ``retry_budget`` seconds per operation, reconnecting and re-uploading the
whole file; authentication, host key, permission and missing-folder problems fail at once.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from stat import S_ISDIR, S_ISREG
from typing import TypeVar

import paramiko

from activity_export.config import SftpDestination
from activity_export.destinations import Destination, is_partial, partial_name
from activity_export.errors import ExportError

log = logging.getLogger(__name__)

T = TypeVar("T")

POSIX_RENAME = "posix-rename@openssh.com"
KEEPALIVE_SECONDS = 15
# Our receive window and packet size (downloads, listings). Uploads are paced by the server's
# window; these only need to be at least OpenSSH's (2 MiB window, 32 KiB packets).
WINDOW_SIZE = 16 * 2**20
MAX_PACKET_SIZE = 2**15
# Local read size per write() call; paramiko splits it into pipelined SFTP write requests.
READ_SIZE = 2**20
# SFTP write request size: the protocol guarantees 32 KiB; a server announcing
# limits@openssh.com (OpenSSH 8.6+) tells how much it takes, and bigger requests mean fewer
# requests and answers for paramiko to handle in Python (about 1.5x the throughput at 256 KiB).
LIMITS = "limits@openssh.com"
MIN_WRITE_SIZE = 2**15
MAX_WRITE_SIZE = 2**18
# AES-GCM first: one AEAD call per packet instead of AES-CTR plus a separate HMAC (paramiko has
# no chacha20-poly1305). OpenSSH offers both since 6.2; the CTR modes remain for other servers.
PREFERRED_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
    "aes192-ctr",
)
FIRST_DELAY = 0.5
MAX_DELAY = 10.0
TRANSIENT_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.ETIMEDOUT,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ENETDOWN,
    errno.EPIPE,
}


class SftpError(ExportError):
    """A delivery over SFTP failed; the message names the server and the step, never a secret."""


class TransientSftpError(SftpError):
    """The network failed for longer than the retry budget."""


class HostKeyError(SftpError):
    """The server's host key is not the one in known_hosts."""


class SftpAuthError(SftpError):
    """The server refused the login, or the credentials could not be read."""


class RemotePathError(SftpError):
    """The server refused a file operation: permission denied, missing folder, disk full."""


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
        self.timeout = timeout
        self.retry_budget = retry_budget
        self.root = PurePosixPath(config.root or "/")
        self._transport: paramiko.Transport | None = None
        self._sftp: _SFTPClient | None = None
        self._folders: set[PurePosixPath] = set()  # known to exist on this connection
        self.host_key_fingerprint = ""

    # -- Destination -----------------------------------------------------------------------------

    def describe(self) -> str:
        return self._where(self.root)

    def open(self) -> None:
        """Connect, check the host key, log in and start the SFTP session (retried if transient)."""
        self._retrying("connect", lambda: self._session())

    def close(self) -> None:
        self._disconnect()

    def publish(self, local: Path, relative: PurePosixPath) -> str:
        """Upload ``local`` to ``root/relative`` via a hidden partial name; return the final path.

        A broken connection mid-upload reconnects and uploads the whole file again, within the
        retry budget. On any failure the partial file is removed (best effort) and the final name
        is left as it was.
        """
        final = self._remote(relative)
        size = local.stat().st_size
        started = time.monotonic()
        self._retrying(f"publish {final}", lambda: self._publish_once(local, final, size))
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
        return self._retrying(f"check {final}", lambda: self._is_file(final))

    def size(self, relative: PurePosixPath) -> int | None:
        final = self._remote(relative)

        def look() -> int | None:
            with self._step(f"look up {final}"):
                try:
                    attributes = self._session().stat(str(final))
                except FileNotFoundError:
                    return None
            return attributes.st_size if S_ISREG(attributes.st_mode or 0) else None

        return self._retrying(f"check {final}", look)

    # -- more than a Destination: check --connect, prune, cleanup --------------------------------

    def check_writable(self) -> str:
        """Log in, create and remove a probe file in the root; a one-line report for ``check``."""

        def probe() -> str:
            sftp = self._session()
            self._make_folders(self.root)
            name = self.root / partial_name(f"activity-export-probe-{uuid.uuid4().hex[:8]}")
            with self._step(f"write probe file {name}"), sftp.open(str(name), "wb") as target:
                target.write(b"activity-export probe\n")
            with self._step(f"remove probe file {name}"):
                sftp.remove(str(name))
            rename = "atomic replace" if sftp.posix_rename_supported else "remove-then-rename"
            return (
                f"{self.describe()}: logged in (host key {self.host_key_fingerprint}), "
                f"wrote and removed a probe file in {self.root} ({rename})"
            )

        return self._retrying("check write access", probe)

    def clean_partials(self, folder: PurePosixPath) -> list[str]:
        """Remove hidden partial files (``.<name>.partial``) left in a folder by crashed runs."""
        remote = self._remote(folder)

        def clean() -> list[str]:
            sftp = self._session()
            removed = []
            for name in self._names(remote, regular_only=False):
                if is_partial(name):
                    with self._step(f"remove partial file {remote / name}"):
                        sftp.remove(str(remote / name))
                    removed.append(str(remote / name))
                    log.info("removed partial file %s", self._where(remote / name))
            return removed

        return self._retrying(f"clean partial files in {remote}", clean)

    def list_files(self, folder: PurePosixPath) -> list[str]:
        """Names of the regular files in a folder under the root, partial files left out; sorted.

        A missing folder has no files.
        """
        remote = self._remote(folder)
        return self._retrying(
            f"list {remote}",
            lambda: sorted(n for n in self._names(remote, regular_only=True) if not is_partial(n)),
        )

    def delete(self, relative: PurePosixPath) -> None:
        """Remove one file under the root (for ``prune``); a file already gone is not an error."""
        remote = self._remote(relative)

        def remove() -> None:
            sftp = self._session()
            try:
                with self._step(f"delete {remote}"):
                    sftp.remove(str(remote))
            except RemotePathError:
                if self._is_file(remote):
                    raise
                log.info("%s was already gone", self._where(remote))
                return
            log.info("deleted %s", self._where(remote))

        self._retrying(f"delete {remote}", remove)

    # -- publishing ------------------------------------------------------------------------------

    def _publish_once(self, local: Path, final: PurePosixPath, size: int) -> None:
        sftp = self._session()
        self._make_folders(final.parent)
        temporary = final.with_name(partial_name(final.name))
        if self._exists(temporary):
            log.info("removing stale partial file %s from an earlier run", self._where(temporary))
            with self._step(f"remove stale partial file {temporary}"):
                sftp.remove(str(temporary))
        try:
            self._upload(local, temporary)
            with self._step(f"check size of {temporary}"):
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
        with self._step(f"write {remote}"), local.open("rb") as source:
            # bufsize=0: paramiko's own write buffer would only copy our 1 MiB reads once more
            with sftp.open(str(remote), "wb", bufsize=0) as target:
                target.set_pipelined(True)
                target.MAX_REQUEST_SIZE = sftp.write_size  # paramiko's per-request cap
                while chunk := source.read(READ_SIZE):
                    target.write(chunk)

    def _replace(self, temporary: PurePosixPath, final: PurePosixPath) -> None:
        sftp = self._session()
        if sftp.posix_rename_supported:
            with self._step(f"rename {temporary} to {final}"):
                sftp.posix_rename(str(temporary), str(final))
            return
        # Plain SFTP rename refuses an existing target: remove it first (a short gap, never a
        # half-written file under the final name).
        if self._exists(final):
            with self._step(f"remove the previous {final}"):
                sftp.remove(str(final))
        with self._step(f"rename {temporary} to {final}"):
            sftp.rename(str(temporary), str(final))

    def _remove_quietly(self, remote: PurePosixPath) -> None:
        """Best-effort cleanup after a failure; a dead connection leaves it for the next attempt."""
        if self._sftp is None or self._transport is None or not self._transport.is_active():
            return
        try:
            self._sftp.remove(str(remote))
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
            with self._step(f"look up folder {candidate}"):
                kind = self._kind(candidate)
            if kind == "dir":
                break
            if kind == "other":
                raise RemotePathError(f"{self.describe()}: {candidate} exists and is not a folder")
            missing.append(candidate)
        for candidate in reversed(missing):
            try:
                with self._step(f"create folder {candidate}"):
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
        with self._step(f"look up {remote}"):
            return self._kind(remote) != "missing"

    def _is_file(self, remote: PurePosixPath) -> bool:
        with self._step(f"look up {remote}"):
            return self._kind(remote) == "file"

    def _names(self, folder: PurePosixPath, *, regular_only: bool) -> list[str]:
        try:
            with self._step(f"list {folder}"):
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
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        path = str(remote).lstrip("/")
        return f"sftp://{self.config.username}@{host}:{self.config.port}/{path}"

    # -- connection ------------------------------------------------------------------------------

    def _session(self) -> _SFTPClient:
        """The open SFTP session, connecting first when there is none."""
        if self._sftp is None or self._transport is None or not self._transport.is_active():
            self._disconnect()
            self._connect()
        assert self._sftp is not None
        return self._sftp

    def _connect(self) -> None:
        config = self.config
        known = self._known_host_keys()
        log.debug("connecting to %s", self.describe())
        sock = socket.create_connection((config.host, config.port), timeout=self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transport = paramiko.Transport(
                sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET_SIZE
            )
        except BaseException:
            sock.close()
            raise
        self._transport = transport
        try:
            self._start(transport, known)
        except BaseException:
            self._disconnect()
            raise

    def _start(self, transport: paramiko.Transport, known: dict[str, paramiko.PKey]) -> None:
        """Handshake, host key check, login and SFTP session on a fresh transport."""
        transport.banner_timeout = self.timeout
        transport.handshake_timeout = self.timeout
        transport.auth_timeout = self.timeout
        transport.channel_timeout = self.timeout
        options = transport.get_security_options()
        options.ciphers = [c for c in PREFERRED_CIPHERS if c in options.ciphers] + [
            c for c in options.ciphers if c not in PREFERRED_CIPHERS
        ]
        if known:
            # ask for the key type(s) we know, as OpenSSH does, so the check compares like with like
            wanted = [t for name in known for t in _signature_types(name)]
            options.key_types = [t for t in wanted if t in options.key_types] + [
                t for t in options.key_types if t not in wanted
            ]
        transport.start_client(timeout=self.timeout)
        if not transport.is_active() or not transport.initial_kex_done:
            # start_client returns quietly when its timeout passes: a silent server lands here
            cause = transport.get_exception()
            raise paramiko.SSHException(
                f"SSH handshake not done within {self.timeout:g}s" + (f" ({cause})" if cause else "")
            )
        self._check_host_key(transport.get_remote_server_key(), known)
        self._authenticate(transport)
        transport.set_keepalive(KEEPALIVE_SECONDS)
        sftp = _SFTPClient.from_transport(transport, window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET_SIZE)
        if sftp is None:
            raise paramiko.SSHException("the server opened no SFTP channel")
        sftp.get_channel().settimeout(self.timeout)
        sftp.write_size = sftp.announced_write_size()
        self._sftp = sftp
        self._folders = set()
        log.info(
            "connected to %s (%s, %s, %d KiB writes)",
            self.describe(),
            transport.remote_cipher,
            "posix-rename" if sftp.posix_rename_supported else "plain rename",
            sftp.write_size // 1024,
        )

    def _disconnect(self) -> None:
        sftp, transport = self._sftp, self._transport
        self._sftp = self._transport = None
        self._folders = set()
        for closable in (sftp, transport):
            if closable is not None:
                try:
                    closable.close()
                except (OSError, EOFError, paramiko.SSHException) as exc:
                    log.debug("closing the connection: %s", exc)

    def _host_key_name(self) -> str:
        """The host's name as OpenSSH writes it in known_hosts: ``[host]:port`` unless port 22."""
        host, port = self.config.host, self.config.port
        return host if port == 22 else f"[{host}]:{port}"

    def _known_host_keys(self) -> dict[str, paramiko.PKey]:
        """The keys known_hosts lists for this host and port (by key type); may be empty."""
        path = self.config.known_hosts
        try:
            keys = paramiko.HostKeys(str(path))
        except FileNotFoundError:
            raise HostKeyError(f"{self.describe()}: known_hosts file {path} not found") from None
        except (OSError, paramiko.SSHException) as exc:
            raise HostKeyError(f"{self.describe()}: cannot read known_hosts {path}: {exc}") from None
        return dict(keys.lookup(self._host_key_name()) or {})

    def _check_host_key(self, offered: paramiko.PKey, known: dict[str, paramiko.PKey]) -> None:
        """Refuse any key that is not the known one, saying what was offered and what to do."""
        name = self._host_key_name()
        key_type, fingerprint = offered.get_name(), offered.fingerprint
        self.host_key_fingerprint = f"{key_type} {fingerprint}"
        expected = known.get(key_type)
        if expected is not None and expected == offered:
            log.debug("host key of %s is %s %s (known)", name, key_type, fingerprint)
            return
        path = self.config.known_hosts
        port = self.config.port
        keyscan = f"ssh-keyscan -p {port} -t {_keyscan_type(key_type)} {self.config.host} >> {path}"
        if expected is not None:
            raise HostKeyError(
                f"{self.describe()}: HOST KEY CHANGED: the server offered {key_type} key "
                f"{fingerprint}, but {path} holds {expected.fingerprint} for {name}. "
                "Someone may be intercepting the connection, or the server was reinstalled. "
                "Check the new fingerprint with the server's administrator, then replace the "
                f"entry: ssh-keygen -R '{name}' -f {path} && {keyscan}"
            )
        listed = ", ".join(sorted(known)) if known else "no key"
        raise HostKeyError(
            f"{self.describe()}: unknown host key: the server offered {key_type} key "
            f"{fingerprint}, and {path} has {listed} for {name}. To trust it: {keyscan} , "
            f"then verify that the fingerprint {fingerprint} is the server's out of band "
            "(ask its administrator; `ssh-keygen -lf known_hosts` shows the fingerprint)."
        )

    def _authenticate(self, transport: paramiko.Transport) -> None:
        """Log in with the configured key or password, and nothing else.

        Secrets live only in this frame and the helpers' frames, and are dropped before an error is
        raised, so they show up neither in messages nor in traceback locals.
        """
        config = self.config
        failure: SftpError | None = None
        if config.private_key is not None:
            key = self._private_key()
            try:
                transport.auth_publickey(config.username, key)
            except paramiko.AuthenticationException as exc:
                failure = self._auth_failure(f"key {config.private_key}", exc)
            finally:
                del key
        else:
            failure = self._password_login(transport)
        if failure is not None:
            raise failure

    def _password_login(self, transport: paramiko.Transport) -> SftpError | None:
        """Try the password from ``password_env``; the error to raise, or None when logged in."""
        name = self.config.password_env
        assert name is not None
        password = os.environ.get(name)
        if not password:
            return SftpAuthError(f"{self.describe()}: environment variable {name} (password_env) is not set")
        failure: SftpError | None = None
        try:
            # falls back to keyboard-interactive with the same password where that is the
            # server's way of asking for it; never to any other credential
            transport.auth_password(self.config.username, password)
        except paramiko.AuthenticationException as exc:
            failure = self._auth_failure(f"the password from {name}", exc)
        finally:
            del password
        return failure

    def _private_key(self) -> paramiko.PKey:
        """The configured private key, decrypted with the passphrase from ``passphrase_env``."""
        path, name = self.config.private_key, self.config.passphrase_env
        assert path is not None
        passphrase = os.environb.get(name.encode()) if name else None
        if name and not passphrase:
            raise SftpAuthError(f"{self.describe()}: environment variable {name} (passphrase_env) is not set")
        problem = ""
        try:
            return paramiko.PKey.from_path(path, password=passphrase)
        except FileNotFoundError:
            problem = "file not found"
        except PermissionError:
            problem = "permission denied"
        except (TypeError, paramiko.PasswordRequiredException):
            # cryptography raises TypeError both for a missing and for a superfluous passphrase
            problem = (
                f"it is not encrypted, but passphrase_env ({name}) is set; remove passphrase_env"
                if passphrase
                else "it is encrypted; set passphrase_env to the variable holding its passphrase"
            )
        except (ValueError, paramiko.SSHException, paramiko.UnknownKeyType):
            problem = (
                "wrong passphrase, or not an OpenSSH/PEM ed25519, ecdsa or rsa private key"
                if passphrase
                else "not an OpenSSH/PEM ed25519, ecdsa or rsa private key"
            )
        finally:
            del passphrase
        raise SftpAuthError(f"{self.describe()}: cannot use private key {path}: {problem}")

    def _auth_failure(self, what: str, exc: paramiko.AuthenticationException) -> SftpError:
        if isinstance(exc, paramiko.BadAuthenticationType):
            allowed = ", ".join(exc.allowed_types) or "nothing"
            return SftpAuthError(
                f"{self.describe()}: login refused: the server does not accept this kind of "
                f"login (it allows: {allowed}); tried {what}"
            )
        return SftpAuthError(f"{self.describe()}: login refused for user {self.config.username} with {what}")

    # -- retries ---------------------------------------------------------------------------------

    def _retrying(self, what: str, action: Callable[[], T]) -> T:
        """Run ``action``; on a transient failure reconnect and run it again, within the budget."""
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return action()
            except SftpError:
                raise
            except (OSError, EOFError, paramiko.SSHException, paramiko.SFTPError) as exc:
                log.debug("%s: %s failed", self.describe(), what, exc_info=True)
                reason = _reason(exc)
                transient = self._is_transient(exc)
            if transient:
                self._disconnect()
            else:
                raise SftpError(f"{self.describe()}: {what} failed: {reason}")
            delay = min(MAX_DELAY, FIRST_DELAY * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not a secret)
            elapsed = time.monotonic() - started
            if elapsed + delay > self.retry_budget:
                raise TransientSftpError(
                    f"{self.describe()}: {what} failed after {attempt} attempt(s) in "
                    f"{elapsed:.1f}s (retry budget {self.retry_budget:g}s): {reason}"
                )
            log.warning(
                "%s: %s failed (%s); retrying in %.1fs (attempt %d)",
                self.describe(),
                what,
                reason,
                delay,
                attempt + 1,
            )
            time.sleep(delay)

    def _is_transient(self, exc: BaseException) -> bool:
        """Network trouble (worth a new connection) rather than an answer from the server."""
        if isinstance(exc, paramiko.AuthenticationException | paramiko.BadHostKeyException):
            return False
        if isinstance(exc, socket.gaierror):
            return exc.errno == socket.EAI_AGAIN
        if isinstance(exc, EOFError | TimeoutError | ConnectionError | paramiko.SSHException):
            return True
        if isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS:
            return True
        # any other failure on a connection that has died under us is the connection's fault
        return self._transport is not None and not self._transport.is_active()

    @contextmanager
    def _step(self, doing: str) -> Iterator[None]:
        """Turn the server's refusal of one step into a RemotePathError that names the step."""
        try:
            yield
        except (OSError, paramiko.SFTPError) as exc:
            if self._is_transient(exc):
                raise
            raise RemotePathError(f"{self.describe()}: cannot {doing}: {_reason(exc)}") from exc


class _SFTPClient(paramiko.SFTPClient):  # type: ignore[misc]  # paramiko ships no types
    """paramiko's SFTP client, also keeping the extensions the server announced.

    paramiko reads the server's version packet and drops the extension list; we need it to know
    whether ``posix-rename@openssh.com`` and ``limits@openssh.com`` are offered.
    """

    server_extensions: dict[str, bytes]
    write_size: int = MIN_WRITE_SIZE

    def _send_version(self) -> int:
        from paramiko.sftp import CMD_INIT, CMD_VERSION, SFTPError

        message = paramiko.Message()
        message.add_int(3)
        self._send_packet(CMD_INIT, message)
        kind, data = self._read_packet()
        if kind != CMD_VERSION:
            raise SFTPError("Incompatible sftp protocol")
        self.server_extensions = _extensions(data[4:])
        version: int = struct.unpack(">I", data[:4])[0]
        return version

    @property
    def posix_rename_supported(self) -> bool:
        return POSIX_RENAME in getattr(self, "server_extensions", {})

    def announced_write_size(self) -> int:
        """The largest write request the server takes (limits@openssh.com), up to 256 KiB."""
        if LIMITS not in getattr(self, "server_extensions", {}):
            return MIN_WRITE_SIZE
        from paramiko.sftp import CMD_EXTENDED, CMD_EXTENDED_REPLY

        try:
            kind, reply = self._request(CMD_EXTENDED, LIMITS)
        except OSError:  # the server's answer is an error status: stay with the safe size
            return MIN_WRITE_SIZE
        if kind != CMD_EXTENDED_REPLY or reply is None:
            return MIN_WRITE_SIZE
        _max_packet, _max_read, max_write = (reply.get_int64() for _ in range(3))
        return max(MIN_WRITE_SIZE, min(max_write or MIN_WRITE_SIZE, MAX_WRITE_SIZE))


def _extensions(data: bytes) -> dict[str, bytes]:
    """The ``name, data`` string pairs that follow the version number in SSH_FXP_VERSION."""
    found: dict[str, bytes] = {}
    offset = 0
    while offset + 4 <= len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        name = data[offset + 4 : offset + 4 + length]
        offset += 4 + length
        if offset + 4 > len(data):
            break
        (length,) = struct.unpack_from(">I", data, offset)
        found[name.decode("utf-8", "replace")] = data[offset + 4 : offset + 4 + length]
        offset += 4 + length
    return found


def _signature_types(key_type: str) -> list[str]:
    """Host key algorithms that prove a known_hosts key type (RSA keys sign with SHA-2)."""
    if key_type == "ssh-rsa":
        return ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
    return [key_type]


def _keyscan_type(key_type: str) -> str:
    """ssh-keyscan's -t name for a key type: rsa, ecdsa or ed25519."""
    if "ed25519" in key_type:
        return "ed25519"
    if "ecdsa" in key_type:
        return "ecdsa"
    return "rsa"


def _reason(exc: BaseException) -> str:
    """A short description of a low-level failure, for messages."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "no such file or folder"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the SFTP server running and the port right?)"
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
