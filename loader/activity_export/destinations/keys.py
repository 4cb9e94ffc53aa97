"""Key files the way OpenSSH reads them: who may read or change a key file, and ``known_hosts``.

``known_hosts`` (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT"): one key per line, ``[marker] hosts
keytype base64 [comment]``. ``hosts`` is a comma-separated list of patterns (``*`` and ``?``
wildcards, ``!`` negation, ``[host]:port`` for another port than 22) or one hashed name
(``|1|salt|hash``, written by ``HashKnownHosts yes``). A host may have several keys, of one type or
several; any of them is accepted. A key on a ``@revoked`` line is never accepted, even when another
line lists it. ``@cert-authority`` (host certificates) is not supported: a line of it for the host
is a configuration error rather than a silent fallback. Lines OpenSSH would skip (comments, bad
base64) are skipped.

Nothing here needs paramiko: keys are compared as their public blobs, which is what OpenSSH does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from activity_export.errors import ExportError
from activity_export.folders import read_regular_file

log = logging.getLogger(__name__)

REVOKED = "@revoked"
CERT_AUTHORITY = "@cert-authority"


class KnownHostsError(ExportError):
    """known_hosts holds a line for this host that the loader cannot honour."""


@dataclass
class KnownHostKeys:
    """The keys a known_hosts file lists for one host: accepted (type, blob) pairs and revoked blobs."""

    accepted: list[tuple[str, bytes]] = field(default_factory=list)
    revoked: set[bytes] = field(default_factory=set)

    @property
    def types(self) -> list[str]:
        """The key types listed for the host, in file order, each once (revoked keys left out)."""
        return list(dict.fromkeys(kind for kind, blob in self.accepted if blob not in self.revoked))

    def trusts(self, blob: bytes) -> bool:
        return blob not in self.revoked and any(blob == known for _, known in self.accepted)

    def of_type(self, key_type: str) -> list[bytes]:
        """The accepted keys of one type (what a changed key is compared with)."""
        return [blob for kind, blob in self.accepted if kind == key_type and blob not in self.revoked]


def fingerprint(blob: bytes) -> str:
    """``SHA256:...`` of a public key blob, as ``ssh-keygen -l`` prints it."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def host_name(host: str, port: int) -> str:
    """The host's name as known_hosts writes it: ``host``, or ``[host]:port`` unless port 22."""
    host = host.lower()
    return host if port == 22 else f"[{host}]:{port}"


def load_known_hosts(path: Path, host: str, port: int) -> KnownHostKeys:
    """The keys ``path`` lists for ``host``:``port``; OSError when the file cannot be read."""
    name = host_name(host, port)
    found = KnownHostKeys()
    text = read_regular_file(path).decode("utf-8", errors="replace")
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        marker = fields.pop(0) if fields[0].startswith("@") else None
        if len(fields) < 3:
            log.debug("%s line %d: not a known_hosts entry; skipped", path, number)
            continue
        patterns, key_type, encoded = fields[0], fields[1], fields[2]
        if not _matches(patterns, name):
            continue
        if marker not in (None, REVOKED):
            supported = "only plain host keys and @revoked are supported"
            if marker == CERT_AUTHORITY:
                supported = (
                    "host certificates (@cert-authority) are not supported; list the server's own "
                    "host key instead (ssh-keyscan)"
                )
            raise KnownHostsError(f"{path} line {number}: {marker} for {name}: {supported}")
        blob = _blob(encoded, key_type)
        if blob is None:
            log.warning(
                "%s line %d: the key is not valid base64 of a %s key; skipped", path, number, key_type
            )
            continue
        if marker == REVOKED:
            found.revoked.add(blob)
        else:
            found.accepted.append((key_type, blob))
    return found


def private_key_problem(path: Path) -> str | None:
    """Why OpenSSH would refuse to use this private key file, or None.

    OpenSSH ignores a key file of one's own that others may read or write ("UNPROTECTED PRIVATE
    KEY FILE"): whoever can read it can log in as us, so the key must be considered leaked. The
    loader applies the same rule.
    """
    found = _key_file_status(path)
    if found is not None and found.st_uid == os.geteuid() and found.st_mode & 0o077:
        return (
            f"permissions {found.st_mode & 0o777:04o} for {path} are too open: a private key file "
            "must not be accessible by others (OpenSSH refuses it for the same reason: anyone who "
            f"can read it can log in as this account). Run: chmod 600 {path}"
        )
    return None


def public_key_problem(path: Path) -> str | None:
    """Why a public key file the loader trusts (a receiver's OpenPGP key) may not be used, or None.

    Whoever can change the file can put their own key in it and read every file encrypted to it
    from then on. So the file, after following any link, must belong to this user or root and
    must not be writable by the group or others: OpenSSH's rule for ``authorized_keys``
    (``StrictModes``), checked the way ``private_key_problem`` checks private keys.
    """
    found = _key_file_status(path)
    if found is None:
        return None
    real = path.resolve()
    if found.st_mode & 0o022:
        return (
            f"permissions {found.st_mode & 0o777:04o} of {real} are too open: it may be changed by "
            "others, who could put their own key in it and read every file encrypted to it; a "
            f"key file must be writable by its owner only. Run: chmod go-w {real}"
        )
    if found.st_uid not in (0, os.geteuid()):
        return (
            f"{real} belongs to user id {found.st_uid}: it may be changed by others, who could put "
            "their own key in it; a key file must belong to this user or root. Run: chown "
            f"{os.geteuid()} {real}"
        )
    return None


def _key_file_status(path: Path) -> os.stat_result | None:
    """The key file's status, through any link; None when it is missing or cannot be looked at
    (reported when it is opened)."""
    try:
        return path.stat()
    except OSError:
        return None


def _matches(patterns: str, name: str) -> bool:
    """OpenSSH's match_hostname: a hashed name, or patterns where a matching ``!`` one vetoes."""
    if patterns.startswith("|1|"):
        return _hashed_matches(patterns, name)
    matched = False
    for pattern in patterns.lower().split(","):
        negated = pattern.startswith("!")
        if _wildcard(pattern[1:] if negated else pattern).fullmatch(name):
            if negated:
                return False
            matched = True
    return matched


def _hashed_matches(entry: str, name: str) -> bool:
    parts = entry.split("|")
    if len(parts) != 4:
        return False
    try:
        salt, expected = base64.b64decode(parts[2], validate=True), base64.b64decode(parts[3], validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(hmac.new(salt, name.encode("utf-8"), hashlib.sha1).digest(), expected)


def _wildcard(pattern: str) -> re.Pattern[str]:
    """``*`` and ``?`` only; everything else (the brackets of ``[host]:port`` too) is literal."""
    return re.compile("".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern))


def _blob(encoded: str, key_type: str) -> bytes | None:
    """The decoded public key blob, when it is valid base64 and starts with its own type."""
    try:
        blob = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(blob) < 4:
        return None
    (length,) = struct.unpack(">I", blob[:4])
    if blob[4 : 4 + length] != key_type.encode("ascii", "replace"):
        return None
    return blob
