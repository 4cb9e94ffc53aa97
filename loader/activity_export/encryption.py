"""OpenPGP encryption of the data files, by GnuPG's own ``gpg`` binary.

The receivers decrypt with GnuPG, so the files are made by GnuPG: no second OpenPGP
implementation whose defaults (algorithms, packet formats, compression) could differ from what
their ``gpg --decrypt`` expects. ``gpg`` streams the file from disk to disk, so memory stays flat
however large a period is. Each call runs with an empty, temporary home directory and
``--recipient-file``: the tenant's key files are used as they are, never imported into a keyring
that could drift, and nothing a user configured in ``~/.gnupg`` changes the output.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from activity_export.config import Tenant
from activity_export.destinations.keys import public_key_problem
from activity_export.errors import ConfigError, ExportError

log = logging.getLogger(__name__)

GPG_TIMEOUT_SECONDS = 3600  # one file; a stuck gpg must not hold a run forever


@dataclass(frozen=True)
class RecipientKey:
    """A usable public key read from a recipient file."""

    path: Path
    fingerprint: str
    user_id: str
    expires: datetime | None


def gpg_binary() -> str:
    """The ``gpg`` command, or a ConfigError saying what to install."""
    found = shutil.which("gpg")
    if found is None:
        raise ConfigError("encryption: pgp needs GnuPG's gpg command: apt-get install gnupg")
    return found


def _run_gpg(home: str, arguments: list[str], timeout: float) -> subprocess.CompletedProcess[bytes]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("GNUPG")}
    command = [gpg_binary(), "--homedir", home, "--batch", "--no-tty", "--quiet", *arguments]
    return subprocess.run(command, capture_output=True, env=environment, timeout=timeout, check=False)


def read_recipient(path: Path, now: datetime | None = None) -> RecipientKey:
    """The key in ``path``, or a ValueError saying why it cannot be encrypted to.

    Refused: a missing or unreadable file, a file others may change (``public_key_problem``), a
    file that holds no OpenPGP public key (or more than one), a key that is revoked or expired
    (now, by the machine's clock), and a key without a valid (sub)key for encryption.
    """
    moment = now or datetime.now(UTC)
    if not path.is_file():
        raise ValueError("no such file")
    too_open = public_key_problem(path)
    if too_open:
        raise ValueError(too_open)
    try:
        path.read_bytes()[:1]
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror})") from None
    with tempfile.TemporaryDirectory(prefix="activity-export-gpg-") as home:
        shown = _run_gpg(home, ["--with-colons", "--show-keys", str(path)], 60)
    records = [line.split(":") for line in shown.stdout.decode("utf-8", "replace").splitlines()]
    primaries = [record for record in records if record[0] == "pub"]
    if shown.returncode != 0 or not primaries:
        raise ValueError("holds no OpenPGP public key (expected an armored or binary key export)")
    if len(primaries) > 1:
        raise ValueError(f"holds {len(primaries)} keys; give one key per file")
    primary = primaries[0]
    fingerprint = next((r[9] for r in records if r[0] == "fpr"), primary[4])
    user_id = next((r[9] for r in records if r[0] == "uid"), "")
    expires = _epoch(primary[6])
    if primary[1] == "r":
        raise ValueError(f"key {fingerprint} is revoked")
    if primary[1] == "e" or (expires is not None and expires <= moment):
        raise ValueError(f"key {fingerprint} expired on {expires:%Y-%m-%d}" if expires else "key expired")
    usable = [
        record
        for record in records
        if record[0] in {"pub", "sub"}
        and "e" in record[11]
        and record[1] not in {"r", "e"}
        and _still_valid(record[6], moment)
    ]
    if not usable:
        raise ValueError(f"key {fingerprint} has no valid encryption (sub)key; it can only sign")
    return RecipientKey(path, fingerprint, user_id, expires)


def _still_valid(expiry: str, moment: datetime) -> bool:
    expires = _epoch(expiry)
    return expires is None or expires > moment


def _epoch(field: str) -> datetime | None:
    return datetime.fromtimestamp(int(field), UTC) if field.isdigit() else None


def recipient_problems(tenant: Tenant, now: datetime | None = None) -> list[str]:
    """One line per recipient key file that cannot be encrypted to (for ``check``)."""
    return [f"tenant {tenant.brand}: {problem}" for problem in _unusable_recipients(tenant, now)]


def require_recipients(tenant: Tenant) -> None:
    """A ConfigError (exit code 2) naming every recipient key file that cannot be encrypted to:
    ``run`` and ``export`` refuse, before writing anything, what ``check`` refuses."""
    problems = _unusable_recipients(tenant, None)
    if problems:
        raise ConfigError("; ".join(problems))


def _unusable_recipients(tenant: Tenant, now: datetime | None) -> list[str]:
    """``recipients[N] = 'path': why`` per key file that cannot be encrypted to."""
    if tenant.encryption != "pgp":
        return []
    problems = []
    for number, path in enumerate(tenant.recipients):
        try:
            read_recipient(path, now)
        except ValueError as exc:
            problems.append(f"recipients[{number}] = {str(path)!r}: {exc}")
        except ConfigError as exc:
            problems.append(str(exc))
            break
    return problems


def encrypt_file(tenant: Tenant, source: Path, target: Path) -> None:
    """Encrypt ``source`` to every recipient of the tenant into ``target`` (binary OpenPGP).

    gpg compresses only data that is not compressed already: a gzip or zstd file is encrypted
    as it is.
    """
    arguments = ["--trust-model", "always", "--yes", "--output", str(target)]
    for path in tenant.recipients:
        arguments += ["--recipient-file", str(path)]
    if tenant.compression != "none":
        arguments += ["--compress-algo", "none"]
    arguments += ["--encrypt", str(source)]
    with tempfile.TemporaryDirectory(prefix="activity-export-gpg-") as home:
        try:
            done = _run_gpg(home, arguments, GPG_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            raise ExportError(f"tenant {tenant.brand}: gpg did not finish encrypting {source.name}") from None
    if done.returncode != 0:
        target.unlink(missing_ok=True)
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ExportError(
            f"tenant {tenant.brand}: gpg could not encrypt {source.name}: "
            + ("; ".join(message[-3:]) or f"exit code {done.returncode}")
        )
    log.info("encrypted %s to %d recipient(s)", target.name, len(tenant.recipients))
