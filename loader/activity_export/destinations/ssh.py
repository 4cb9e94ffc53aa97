"""The SSH layer under SFTP delivery: connection, host keys, login, retries.

One ``SshConnection`` per destination and run. The server's host key must be in the configured
``known_hosts`` file and nowhere else; an unknown or changed key is refused with its fingerprint
and how to trust it. Login is with the configured private key or password only (never an agent or
``~/.ssh`` keys).

Network trouble (refused, reset, timeout, connection dropped) is retried with exponential backoff
and jitter for up to ``retry_budget`` seconds per operation, reconnecting first; authentication,
host key, permission and missing-folder problems fail at once.

What goes over the connection (the SFTP protocol extensions) is in ``sftp_protocol``, what is
published with it in ``sftp``.
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import random
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import paramiko

from activity_export.config import SftpDestination
from activity_export.destinations.keys import (
    KnownHostKeys,
    KnownHostsError,
    fingerprint,
    host_name,
    load_known_hosts,
    private_key_problem,
)
from activity_export.destinations.sftp_protocol import ExtendedSftpClient
from activity_export.errors import ConfigError, ExportError

log = logging.getLogger(__name__)

T = TypeVar("T")

KEEPALIVE_SECONDS = 15
# Our receive window and packet size (downloads, listings). Uploads are paced by the server's
# window; these only need to be at least OpenSSH's (2 MiB window, 32 KiB packets).
WINDOW_SIZE = 16 * 2**20
MAX_PACKET_SIZE = 2**15
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


class CredentialError(SftpAuthError, ConfigError):
    """The configured key or secret cannot be used on this machine: a variable that is not set, a
    key file that is refused, unreadable, not a key, encrypted without a passphrase or with another
    one. A configuration error (exit code 2) that ``check`` reports too; ``run`` finds it before
    connecting."""

    exit_code = 2


KEY_TYPES_ALLOWED = "an OpenSSH or PEM private key of type ed25519, ecdsa or rsa, as ssh-keygen writes it"


def load_private_key(config: SftpDestination) -> paramiko.PKey:
    """The configured private key, decrypted with the passphrase from ``passphrase_env``.

    What ``check`` and a login both rely on; a ``CredentialError`` names the key
    (``destination.private_key`` or ``destination.passphrase_env``), its value (a path, a
    variable's NAME: never the passphrase) and what is allowed. The passphrase lives only in this
    frame and is dropped before an error is raised, so it shows up neither in messages nor in
    traceback locals.
    """
    path, name = config.private_key, config.passphrase_env
    assert path is not None
    where = f"destination.private_key = {str(path)!r}"
    named = f"destination.passphrase_env = {name!r}"
    too_open = private_key_problem(path)
    if too_open:
        raise CredentialError(f"{where}: UNPROTECTED PRIVATE KEY FILE: {too_open}")
    try:
        regular = stat.S_ISREG(path.stat().st_mode)
    except OSError:
        regular = True  # missing or unreadable: said below, when it is opened
    if not regular:  # opening a named pipe would wait forever
        raise CredentialError(f"{where}: not a regular file; expected {KEY_TYPES_ALLOWED}")
    passphrase = os.environb.get(name.encode()) if name else None
    if name and not passphrase:
        raise CredentialError(
            f"{named}: environment variable {name} (passphrase_env) is not set; it must hold the "
            "key's passphrase"
        )
    problem = ""
    try:
        return paramiko.PKey.from_path(path, password=passphrase)
    except FileNotFoundError:
        problem = f"{where}: no such file"
    except OSError as exc:
        problem = f"{where}: cannot be read ({exc.strerror or type(exc).__name__})"
    except (TypeError, paramiko.PasswordRequiredException):
        # cryptography raises TypeError both for a missing and for a superfluous passphrase
        problem = (
            f"{named}: {path} is not encrypted, so it takes no passphrase; remove passphrase_env"
            if passphrase
            else f"{where}: the key is encrypted; set passphrase_env to the NAME of the environment "
            "variable holding its passphrase"
        )
    except (ValueError, paramiko.SSHException, paramiko.UnknownKeyType):
        problem = (
            f"{named}: the passphrase in {name} does not decrypt {path} (wrong passphrase); "
            f"{name} must hold the passphrase the key was encrypted with"
            if passphrase and _is_encrypted_key(path)
            else f"{where}: not a private key this loader can read; expected {KEY_TYPES_ALLOWED}"
        )
    finally:
        del passphrase
    raise CredentialError(problem)


def _is_encrypted_key(path: Path) -> bool:
    """Whether ``path`` holds a private key that reads as encrypted when no passphrase is given."""
    try:
        paramiko.PKey.from_path(path)
    except (TypeError, paramiko.PasswordRequiredException):
        return True
    except (OSError, ValueError, paramiko.SSHException, paramiko.UnknownKeyType):
        return False
    return False


# OpenSSH allows 10 sessions (channels) per connection by default (MaxSessions); stay under it.
SESSIONS_PER_CONNECTION = 8
# Logged-in connections kept open without a user, for the next tenant with the same account.
IDLE_CONNECTIONS = 16


@dataclass(eq=False)
class _Shared:
    """One logged-in SSH connection, how many SFTP sessions are in use over it now, and the
    sessions left clean by tenants that are done, for the next tenants."""

    transport: paramiko.Transport
    host_key_fingerprint: str
    users: int = 0
    last_used: float = field(default_factory=time.monotonic)
    idle: list[ExtendedSftpClient] = field(default_factory=list)


class ConnectionPool:
    """Logged-in SSH connections, shared by tenants that log in to the same server as the same account.

    Tenants share a connection only when host, port, user name, credentials (key file or password
    variable) and known_hosts file are all the same: the host key was checked and the login done
    exactly as each of them would do it. Each tenant has an SFTP session (a channel) to itself
    while it delivers, so one tenant's failing file operation never touches another's. A session
    the tenant leaves clean (open, no request without its answer) is handed to the next tenant of
    the account: a channel opened and a process started on the server for every small tenant were
    a noticeable part of a run over thousands of them. A connection that breaks is dropped, and
    each of its tenants reconnects within its own retry budget. Different accounts never share
    anything.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: dict[tuple[object, ...], list[_Shared]] = {}
        self._opening: dict[tuple[object, ...], threading.Lock] = {}

    def acquire(
        self, key: tuple[object, ...], open_new: Callable[[], tuple[paramiko.Transport, str]]
    ) -> tuple[_Shared, ExtendedSftpClient | None]:
        """A live connection for ``key`` and a clean session left on it, or a connection with room
        for one more session (None: open one); a new connection when there is none."""
        with self._lock:
            opening = self._opening.setdefault(key, threading.Lock())
            found = self._take(key)  # a clean session or room on a connection: no login to wait for
        if found is not None:
            return found
        with opening:  # one login per account at a time; the others then share it
            with self._lock:
                found = self._take(key)
            if found is not None:
                return found
            transport, fingerprint = open_new()
            shared = _Shared(transport, fingerprint, users=1)
            with self._lock:
                self._connections.setdefault(key, []).append(shared)
            return shared, None

    def _take(self, key: tuple[object, ...]) -> tuple[_Shared, ExtendedSftpClient | None] | None:
        live = []
        for shared in self._connections.get(key, []):
            if shared.transport.is_active():
                live.append(shared)
            elif shared.users == 0:
                _close(shared.transport)
        self._connections[key] = live
        for shared in live:
            while shared.idle:
                session = shared.idle.pop()
                if _clean(session):
                    shared.users += 1
                    return shared, session
                _close_session(session)
        for shared in live:
            if shared.users + len(shared.idle) < SESSIONS_PER_CONNECTION:
                shared.users += 1
                return shared, None
        return None

    def release(self, shared: _Shared, session: ExtendedSftpClient | None = None) -> None:
        """One session fewer in use: a clean ``session`` is kept for the next tenant, any other
        closed; a dead connection is closed, idle ones beyond a few are closed too."""
        idle: list[tuple[tuple[object, ...], _Shared]] = []
        with self._lock:
            shared.users -= 1
            shared.last_used = time.monotonic()
            if session is not None and shared.transport.is_active() and _clean(session):
                shared.idle.append(session)
                session = None
            for key, connections in self._connections.items():
                for candidate in connections:
                    if candidate.users == 0:
                        idle.append((key, candidate))
            dead = [(key, c) for key, c in idle if not c.transport.is_active()]
            alive = sorted((pair for pair in idle if pair not in dead), key=lambda pair: pair[1].last_used)
            closing = dead + alive[: max(0, len(alive) - IDLE_CONNECTIONS)]
            for key, candidate in closing:
                self._connections[key].remove(candidate)
        if session is not None:
            _close_session(session)
        for _key, candidate in closing:
            _close(candidate.transport)

    def close_all(self) -> None:
        """Close every connection (at the end of a run)."""
        with self._lock:
            connections = [c for group in self._connections.values() for c in group]
            self._connections.clear()
        for shared in connections:
            _close(shared.transport)


def _clean(session: ExtendedSftpClient) -> bool:
    """Whether a session can serve another tenant: its channel open, every request answered (an
    answer still on its way would be read by the next tenant's request)."""
    return not session.sock.closed and not session._expecting


def _close_session(session: ExtendedSftpClient) -> None:
    try:
        session.close()
    except (OSError, EOFError, paramiko.SSHException) as exc:
        log.debug("closing the SFTP session: %s", exc)


def _close(transport: paramiko.Transport) -> None:
    try:
        transport.close()
    except (OSError, EOFError, paramiko.SSHException) as exc:
        log.debug("closing a connection: %s", exc)


POOL = ConnectionPool()
atexit.register(POOL.close_all)


class SshConnection:
    """A (re)connectable SFTP session to one server, logged in with strict host keys.

    ``label`` names the destination in every message and log line (no secret in it). ``timeout``
    bounds every network wait (connect, banner, handshake, login, each SFTP answer);
    ``retry_budget`` is the time one operation (see ``retrying``) may spend retrying transient
    failures before it gives up.
    """

    def __init__(self, config: SftpDestination, label: str, *, timeout: float, retry_budget: float) -> None:
        self.config = config
        self.label = label
        self.timeout = timeout
        self.retry_budget = retry_budget
        self._transport: paramiko.Transport | None = None
        self._sftp: ExtendedSftpClient | None = None
        self._shared: _Shared | None = None
        self.host_key_fingerprint = ""

    def session(self) -> ExtendedSftpClient:
        """The open SFTP session, connecting first when there is none."""
        if self._sftp is None or self._transport is None or not self._transport.is_active():
            self.disconnect()
            self._connect()
        assert self._sftp is not None
        return self._sftp

    def live_session(self) -> ExtendedSftpClient | None:
        """The SFTP session if it is open and its connection alive; never connects."""
        if self._sftp is None or self._transport is None or not self._transport.is_active():
            return None
        return self._sftp

    def disconnect(self) -> None:
        """Done with this destination's SFTP session: it goes back to the pool with the connection
        under it (kept for the next tenant when clean, else closed)."""
        sftp, shared = self._sftp, self._shared
        self._sftp = self._transport = self._shared = None
        if shared is not None:
            POOL.release(shared, sftp)
        elif sftp is not None:
            _close_session(sftp)

    # -- connection ------------------------------------------------------------------------------

    def _connect(self) -> None:
        shared, session = POOL.acquire(self._account(), self._login)
        self._shared, self._transport = shared, shared.transport
        self.host_key_fingerprint = shared.host_key_fingerprint
        if session is not None:
            session.get_channel().settimeout(self.timeout)
            self._sftp = session
            return
        try:
            self._open_session(shared.transport)
        except BaseException:
            self.disconnect()
            raise

    def _account(self) -> tuple[object, ...]:
        """Who logs in where, and with what: connections are shared only when all of it is equal."""
        config = self.config
        files = [config.known_hosts, config.private_key]
        stamps = []
        for path in files:  # an edited known_hosts or key file is a different account from then on
            try:
                status = os.stat(path) if path is not None else None
            except OSError:
                status = None
            stamps.append((status.st_mtime_ns, status.st_size) if status else None)
        return (
            config.host,
            config.port,
            config.username,
            *(str(path) for path in files),
            config.passphrase_env,
            config.password_env,
            *stamps,
        )

    def _login(self) -> tuple[paramiko.Transport, str]:
        """A new connection: handshake, host key check and login.

        The key (or the password's variable) is checked first: one that cannot be used is a
        configuration error, whether or not the server can be reached.
        """
        config = self.config
        known = self._known_host_keys()
        key = self._private_key() if config.private_key is not None else None
        try:
            if config.password_env and not os.environ.get(config.password_env):
                raise CredentialError(
                    f"{self.label}: destination.password_env = {config.password_env!r}: environment "
                    f"variable {config.password_env} (password_env) is not set; it must hold the password"
                )
            log.debug("connecting to %s", self.label)
            sock = socket.create_connection((config.host, config.port), timeout=self.timeout)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                transport = paramiko.Transport(
                    sock, default_window_size=WINDOW_SIZE, default_max_packet_size=MAX_PACKET_SIZE
                )
            except BaseException:
                sock.close()
                raise
            try:
                self._start(transport, known, key)
            except BaseException:
                _close(transport)
                raise
        finally:
            del key
        return transport, self.host_key_fingerprint

    def _start(self, transport: paramiko.Transport, known: KnownHostKeys, key: paramiko.PKey | None) -> None:
        """Handshake, host key check and login on a fresh transport."""
        transport.banner_timeout = self.timeout
        transport.handshake_timeout = self.timeout
        transport.auth_timeout = self.timeout
        transport.channel_timeout = self.timeout
        options = transport.get_security_options()
        options.ciphers = [c for c in PREFERRED_CIPHERS if c in options.ciphers] + [
            c for c in options.ciphers if c not in PREFERRED_CIPHERS
        ]
        if known.types:
            # ask for the key type(s) we know, as OpenSSH does, so the check compares like with like
            wanted = [t for name in known.types for t in _signature_types(name)]
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
        self._authenticate(transport, key)
        transport.set_keepalive(KEEPALIVE_SECONDS)

    def _open_session(self, transport: paramiko.Transport) -> None:
        """This destination's own SFTP session (channel) on a logged-in connection."""
        sftp = ExtendedSftpClient.from_transport(
            transport, window_size=WINDOW_SIZE, max_packet_size=MAX_PACKET_SIZE
        )
        if sftp is None:
            raise paramiko.SSHException("the server opened no SFTP channel")
        sftp.get_channel().settimeout(self.timeout)
        sftp.write_size = sftp.announced_write_size()
        self._sftp = sftp
        log.info(
            "connected to %s (%s, %s, %d KiB writes)",
            self.label,
            transport.remote_cipher,
            "posix-rename" if sftp.posix_rename_supported else "plain rename",
            sftp.write_size // 1024,
        )

    # -- host keys -------------------------------------------------------------------------------

    def _host_key_name(self) -> str:
        """The host's name as OpenSSH writes it in known_hosts: ``[host]:port`` unless port 22."""
        return host_name(self.config.host, self.config.port)

    def _known_host_keys(self) -> KnownHostKeys:
        """The keys known_hosts lists for this host and port, as OpenSSH reads the file."""
        path = self.config.known_hosts
        try:
            return load_known_hosts(path, self.config.host, self.config.port)
        except FileNotFoundError:
            raise HostKeyError(f"{self.label}: known_hosts file {path} not found") from None
        except OSError as exc:
            raise HostKeyError(f"{self.label}: cannot read known_hosts {path}: {exc.strerror}") from None
        except KnownHostsError as exc:
            raise HostKeyError(f"{self.label}: {exc}") from None

    def _check_host_key(self, offered: paramiko.PKey, known: KnownHostKeys) -> None:
        """Refuse any key that is not a known one, saying what was offered and what to do."""
        name = self._host_key_name()
        blob = offered.asbytes()
        key_type, offered_print = offered.get_name(), fingerprint(blob)
        self.host_key_fingerprint = f"{key_type} {offered_print}"
        path = self.config.known_hosts
        if blob in known.revoked:
            raise HostKeyError(
                f"{self.label}: REVOKED HOST KEY: the server offered {key_type} key {offered_print}, "
                f"which {path} marks @revoked. The key may have been stolen: do not connect until "
                "the server's administrator has replaced it"
            )
        if known.trusts(blob):
            log.debug("host key of %s is %s %s (known)", name, key_type, offered_print)
            return
        port = self.config.port
        keyscan = f"ssh-keyscan -p {port} -t {_keyscan_type(key_type)} {self.config.host} >> {path}"
        expected = known.of_type(key_type)
        if expected:
            listed = " or ".join(fingerprint(each) for each in expected)
            raise HostKeyError(
                f"{self.label}: HOST KEY CHANGED: the server offered {key_type} key "
                f"{offered_print}, but {path} holds {listed} for {name}. "
                "Someone may be intercepting the connection, or the server was reinstalled. "
                "Check the new fingerprint with the server's administrator, then replace the "
                f"entry: ssh-keygen -R '{name}' -f {path} && {keyscan}"
            )
        listed = ", ".join(sorted(known.types)) if known.types else "no key"
        raise HostKeyError(
            f"{self.label}: unknown host key: the server offered {key_type} key "
            f"{offered_print}, and {path} has {listed} for {name}. To trust it: {keyscan} , "
            f"then verify that the fingerprint {offered_print} is the server's out of band "
            "(ask its administrator; `ssh-keygen -lf known_hosts` shows the fingerprint)."
        )

    # -- login -----------------------------------------------------------------------------------

    def _authenticate(self, transport: paramiko.Transport, key: paramiko.PKey | None) -> None:
        """Log in with the configured key (loaded by ``_private_key``) or password, and nothing else.

        Secrets live only in this frame and the helpers' frames, and are dropped before an error is
        raised, so they show up neither in messages nor in traceback locals.
        """
        config = self.config
        failure: SftpError | None = None
        if key is not None:
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
            return CredentialError(f"{self.label}: environment variable {name} (password_env) is not set")
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
        """The configured private key (``load_private_key``); its problems name this destination."""
        try:
            return load_private_key(self.config)
        except CredentialError as exc:
            raise CredentialError(f"{self.label}: {exc}") from None

    def _auth_failure(self, what: str, exc: paramiko.AuthenticationException) -> SftpError:
        if isinstance(exc, paramiko.BadAuthenticationType):
            allowed = ", ".join(exc.allowed_types) or "nothing"
            return SftpAuthError(
                f"{self.label}: login refused: the server does not accept this kind of "
                f"login (it allows: {allowed}); tried {what}"
            )
        return SftpAuthError(f"{self.label}: login refused for user {self.config.username} with {what}")

    # -- retries ---------------------------------------------------------------------------------

    def retrying(self, what: str, action: Callable[[], T]) -> T:
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
                log.debug("%s: %s failed", self.label, what, exc_info=True)
                reason = _reason(exc)
                transient = self._is_transient(exc)
            if transient:
                self.disconnect()
            else:
                raise SftpError(f"{self.label}: {what} failed: {reason}")
            delay = min(MAX_DELAY, FIRST_DELAY * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not a secret)
            elapsed = time.monotonic() - started
            if elapsed + delay > self.retry_budget:
                raise TransientSftpError(
                    f"{self.label}: {what} failed after {attempt} attempt(s) in "
                    f"{elapsed:.1f}s (retry budget {self.retry_budget:g}s): {reason}"
                )
            log.warning(
                "%s: %s failed (%s); retrying in %.1fs (attempt %d)",
                self.label,
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
    def step(self, doing: str) -> Iterator[None]:
        """Turn the server's refusal of one step into a RemotePathError that names the step."""
        try:
            yield
        except (OSError, paramiko.SFTPError) as exc:
            if self._is_transient(exc):
                raise
            raise RemotePathError(f"{self.label}: cannot {doing}: {_reason(exc)}") from exc


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
