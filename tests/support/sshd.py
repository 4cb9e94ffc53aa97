"""A real OpenSSH ``sshd`` for tests and benchmarks, plus a TCP proxy that can cut a connection.

Plain functions and classes, used by the benchmark too; the fixtures that hand them to the tests
are in ``tests/sshd/conftest.py``.

Each server listens on a free 127.0.0.1 port with its own generated host key. Test accounts are
real system users (``aexp_<name>``, created with ``useradd`` and reused when they exist) in the
group ``aexp_sftp``: chrooted, ``ForceCommand internal-sftp``, each with an ``upload`` folder it
owns inside a root-owned chroot. Members of ``aexp_password`` may also log in with a password
(``UsePAM no``: sshd checks ``/etc/shadow`` itself). This needs root, like sshd itself.

The chroots live under ``/var/lib/aexp-sshd``, not the pytest temporary folder: sshd refuses a
chroot with a group- or world-writable path component, and ``/tmp`` is world-writable.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"
SFTP = "sftp"
SFTP_GROUP = "aexp_sftp"
PASSWORD_GROUP = "aexp_password"
CHROOT_BASE = Path("/var/lib/aexp-sshd")
REMOTE_ROOT = "/upload"
USER_PREFIX = "aexp_"


class SshdUnavailable(RuntimeError):
    """A prerequisite for the test sshd is missing; the message says what to install."""


def require_tools() -> None:
    """Fail loudly, naming the package, when sshd or the OpenSSH client tools are missing."""
    if not SSHD.is_file():
        raise SshdUnavailable(f"{SSHD} not found: install openssh-server (apt-get install openssh-server)")
    for tool in (SSH_KEYGEN, SFTP, "ssh-keyscan"):
        if shutil.which(tool) is None:
            raise SshdUnavailable(
                f"{tool} not found: install openssh-client (apt-get install openssh-client)"
            )
    for tool in ("useradd", "usermod", "groupadd", "chpasswd"):
        if shutil.which(tool) is None:
            raise SshdUnavailable(f"{tool} not found: install passwd (apt-get install passwd)")
    if os.geteuid() != 0:
        raise SshdUnavailable("the test sshd needs root (it creates system users and chroots)")


def generate_key(path: Path, key_type: str = "ed25519", passphrase: str = "") -> Path:
    """An OpenSSH private key at ``path`` (public key at ``path.pub``); returns ``path``."""
    bits = {"rsa": ["-b", "2048"], "ecdsa": ["-b", "256"]}.get(key_type, [])
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + ".pub")):
        stale.unlink(missing_ok=True)
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", key_type, *bits, "-N", passphrase, "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path


def public_key_line(private_key: Path) -> str:
    """``type base64`` of the key's public half, without the comment."""
    fields = private_key.with_name(private_key.name + ".pub").read_text().split()
    return f"{fields[0]} {fields[1]}"


def known_hosts_entry(host: str, port: int, public_key: str) -> str:
    """A known_hosts line, with OpenSSH's ``[host]:port`` form for ports other than 22."""
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {public_key}\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, input=stdin)


def _ensure_group(name: str) -> None:
    if _run("getent", "group", name, check=False).returncode != 0:
        result = _run("groupadd", "--system", name, check=False)
        if result.returncode not in (0, 9):  # 9: created meanwhile by a parallel run
            raise RuntimeError(f"groupadd {name} failed: {result.stderr.strip()}")


@dataclass(frozen=True)
class Account:
    """One chrooted SFTP login on the test server."""

    username: str
    private_key: Path
    chroot: Path  # on disk; the account sees it as "/"
    root: str  # the folder it may write to, as the account sees it ("/upload")
    uid: int
    gid: int
    password: str | None = None

    @property
    def upload(self) -> Path:
        """The writable folder on disk."""
        return self.chroot / self.root.lstrip("/")

    def make_folder(self, relative: str) -> Path:
        """A folder under ``upload`` owned by the account, as if it had created it itself."""
        folder = self.upload
        for part in Path(relative).parts:
            folder = folder / part
            folder.mkdir(exist_ok=True)
            os.chown(folder, self.uid, self.gid)
        return folder


class SshServer:
    """A running ``/usr/sbin/sshd -D`` on 127.0.0.1 with its own host key and config."""

    def __init__(self, workdir: Path, host_key_type: str = "ed25519") -> None:
        require_tools()
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.port = 0
        self.run_id = uuid.uuid4().hex[:12]
        self.chroot_base = CHROOT_BASE / self.run_id
        # read by sshd as the logging-in user: outside the (private) workdir, world-readable
        self.keys_dir = self.chroot_base / ".authorized_keys"
        self.host_key = generate_key(workdir / "host_key", host_key_type)
        self.known_hosts = workdir / "known_hosts"
        self.log = workdir / "sshd.log"
        self._process: subprocess.Popen | None = None
        self._counter = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> SshServer:
        _ensure_group(SFTP_GROUP)
        _ensure_group(PASSWORD_GROUP)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
        for folder in (CHROOT_BASE, self.chroot_base):
            folder.mkdir(mode=0o755, exist_ok=True)
            os.chown(folder, 0, 0)
            folder.chmod(0o755)
        self.keys_dir.mkdir(mode=0o755, exist_ok=True)
        last_error = ""
        for _attempt in range(5):  # a free port can be taken between probing and binding
            self.port = free_port()
            config = self._write_config()
            test = _run(str(SSHD), "-t", "-f", str(config), check=False)
            if test.returncode != 0:
                raise RuntimeError(f"sshd rejects its test configuration: {test.stderr.strip()}")
            with self.log.open("ab") as log:
                self._process = subprocess.Popen(
                    [str(SSHD), "-D", "-e", "-f", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            if self._wait_until_listening():
                self.write_known_hosts(self.known_hosts)
                return self
            last_error = self.log.read_text(errors="replace")[-2000:]
            self._kill()
        raise RuntimeError(f"sshd did not start; its log:\n{last_error}")

    def stop(self) -> None:
        self._kill()
        shutil.rmtree(self.chroot_base, ignore_errors=True)

    def _kill(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
            self._process = None

    def __enter__(self) -> SshServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _wait_until_listening(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as probe:
                    if probe.recv(64).startswith(b"SSH-"):
                        return True
            except OSError:
                time.sleep(0.05)
        return False

    def _write_config(self) -> Path:
        config = self.workdir / "sshd_config"
        config.write_text(
            f"""\
ListenAddress {self.host}
Port {self.port}
HostKey {self.host_key}
PidFile {self.workdir}/sshd.pid
AuthorizedKeysFile {self.keys_dir}/%u
StrictModes no
UsePAM no
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowGroups {SFTP_GROUP}
Subsystem sftp internal-sftp
LogLevel VERBOSE
MaxStartups 100
MaxSessions 100
Match Group {PASSWORD_GROUP}
    PasswordAuthentication yes
Match Group {SFTP_GROUP}
    ChrootDirectory {self.chroot_base}/%u
    ForceCommand internal-sftp
    AllowTcpForwarding no
    X11Forwarding no
"""
        )
        return config

    # -- what tests need -------------------------------------------------------------------------

    def write_known_hosts(self, path: Path, port: int | None = None) -> Path:
        """A known_hosts file trusting this server's key at ``port`` (default: the server's)."""
        entry = known_hosts_entry(self.host, port or self.port, public_key_line(self.host_key))
        path.write_text(entry)
        return path

    def add_account(
        self,
        name: str | None = None,
        *,
        key_type: str = "ed25519",
        passphrase: str = "",
        password: str | None = None,
    ) -> Account:
        """A fresh chrooted account: system user ``aexp_<name>``, new key, empty ``/upload``."""
        if name is None:
            self._counter += 1
            name = f"t{self._counter}"
        username = USER_PREFIX + name
        groups = PASSWORD_GROUP if password is not None else ""
        if _run("id", "-u", username, check=False).returncode != 0:
            result = _run(
                "useradd",
                "--no-create-home",
                "--home-dir",
                "/",
                "--shell",
                "/usr/sbin/nologin",
                "--gid",
                SFTP_GROUP,
                "--password",
                "*",
                username,
                check=False,
            )
            if result.returncode not in (0, 9):  # 9: created meanwhile by a parallel run
                raise RuntimeError(f"useradd {username} failed: {result.stderr.strip()}")
        # '*' (no password, not locked): sshd without PAM refuses even key logins to a '!' account
        _run("usermod", "--gid", SFTP_GROUP, "--groups", groups, "--password", "*", username)
        if password is not None:
            _run("chpasswd", stdin=f"{username}:{password}\n")
        key = generate_key(self.workdir / "client_keys" / username, key_type, passphrase)
        (self.keys_dir / username).write_text(public_key_line(key) + "\n")
        (self.keys_dir / username).chmod(0o644)
        chroot = self.chroot_base / username
        shutil.rmtree(chroot, ignore_errors=True)
        chroot.mkdir(mode=0o755)
        os.chown(chroot, 0, 0)
        upload = chroot / REMOTE_ROOT.lstrip("/")
        upload.mkdir(mode=0o755)
        uid = int(_run("id", "-u", username).stdout)
        gid = int(_run("id", "-g", username).stdout)
        os.chown(upload, uid, gid)
        return Account(username, key, chroot, REMOTE_ROOT, uid, gid, password)

    def openssh_sftp(
        self,
        account: Account,
        batch: str,
        *,
        port: int | None = None,
        options: tuple[str, ...] = (),
        timeout: float = 120,
    ) -> subprocess.CompletedProcess:
        """Run OpenSSH's own ``sftp -b -`` as ``account`` (key login, this known_hosts only)."""
        return subprocess.run(
            [
                SFTP,
                "-b",
                "-",
                "-i",
                str(account.private_key),
                "-P",
                str(port or self.port),
                "-o",
                f"UserKnownHostsFile={self.known_hosts}",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
                "-F",
                "/dev/null",
                *options,
                f"{account.username}@{self.host}",
            ],
            input=batch,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


class CuttingProxy:
    """A loopback TCP proxy to ``target`` that can break connections mid-stream.

    The first ``cut_connections`` connections are reset after ``cut_after`` bytes went from client
    to server; later connections pass through untouched. ``None`` never cuts.
    """

    def __init__(
        self, target_host: str, target_port: int, cut_after: int | None = None, cut_connections: int = 1
    ) -> None:
        self.target = (target_host, target_port)
        self.cut_after = cut_after
        self.cut_connections = cut_connections
        self.connections = 0
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = self._listener.getsockname()[:2]
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False
        accept = threading.Thread(target=self._accept, name="proxy-accept", daemon=True)
        accept.start()
        self._threads.append(accept)

    def _accept(self) -> None:
        self._listener.settimeout(0.1)  # a closed listener does not wake accept() on Linux
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self._lock:
                self.connections += 1
                limit = self.cut_after if self.connections <= self.cut_connections else None
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            pair = _Pair(client, server)
            self._sockets += [client, server]
            for source, target, cut in ((client, server, limit), (server, client, None)):
                pump = threading.Thread(
                    target=self._pump, args=(pair, source, target, cut), name="proxy-pump", daemon=True
                )
                pump.start()
                self._threads.append(pump)

    def _pump(self, pair: _Pair, source: socket.socket, target: socket.socket, cut: int | None) -> None:
        sent = 0
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if cut is not None and sent + len(data) >= cut:
                    target.sendall(data[: cut - sent])
                    with self._lock:
                        self.cuts += 1
                    pair.reset()
                    return
                target.sendall(data)
                sent += len(data)
        except OSError:
            pass
        pair.close()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a pump blocked in recv()
            except OSError:
                pass
            _close_quietly(sock)
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Pair:
    """Both ends of one proxied connection."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client = client
        self.server = server

    def reset(self) -> None:
        """Abort both ends with a TCP reset, as a dropped network path or a killed peer would."""
        for sock in (self.client, self.server):
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
        self.close()

    def close(self) -> None:
        for sock in (self.client, self.server):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            _close_quietly(sock)


def _close_quietly(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
