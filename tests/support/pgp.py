"""OpenPGP keys for the receivers, made with the real ``gpg`` in a temporary home.

A receiver with an encryption subkey, a second receiver, a key that expired, a sign-only key and a
file that is not a key: the first two decrypt what the loader encrypts, ``check`` must refuse the
others.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

GPG = shutil.which("gpg")


@dataclass
class Keys:
    """Public key files and the GnuPG home that holds the receivers' private keys."""

    home: Path
    receiver: Path
    second: Path
    expired: Path
    sign_only: Path
    not_a_key: Path

    def gpg(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        assert GPG is not None
        return subprocess.run(
            [GPG, "--homedir", str(self.home), "--batch", "--no-tty", "--quiet", *args],
            capture_output=True,
            check=True,
        )

    def decrypt(self, path: Path) -> bytes:
        return self.gpg("--decrypt", str(path)).stdout


def make_keys(root: Path) -> Keys:
    """The keys, their public halves as files in ``root`` and the private ones in ``root/home``."""
    home = root / "home"
    home.mkdir(mode=0o700)
    made = Keys(
        home,
        root / "receiver.asc",
        root / "second.gpg",
        root / "expired.asc",
        root / "sign-only.asc",
        root / "not-a-key.asc",
    )
    new_key = ["--passphrase", "", "--pinentry-mode", "loopback", "--quick-gen-key"]
    made.gpg(*new_key, "Receiver <receiver@gold.example>", "future-default", "default", "1y")
    made.gpg(*new_key, "Second <second@gold.example>", "future-default", "default", "never")
    made.gpg(
        "--faked-system-time", "20200101T000000!", *new_key,
        "Expired <expired@gold.example>", "future-default", "default", "1d",
    )  # fmt: skip
    made.gpg(*new_key, "Signer <signer@gold.example>", "ed25519", "sign", "never")
    made.receiver.write_bytes(made.gpg("--armor", "--export", "receiver@gold.example").stdout)
    made.second.write_bytes(made.gpg("--export", "second@gold.example").stdout)  # binary
    made.expired.write_bytes(made.gpg("--armor", "--export", "expired@gold.example").stdout)
    made.sign_only.write_bytes(made.gpg("--armor", "--export", "signer@gold.example").stdout)
    made.not_a_key.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\nnonsense\n", encoding="utf-8")
    return made


def stop_agent(keys: Keys) -> None:
    """Stop the gpg-agent that ``gpg`` started for the keys' home."""
    subprocess.run(
        ["gpgconf", "--homedir", str(keys.home), "--kill", "all"], check=False, capture_output=True
    )
