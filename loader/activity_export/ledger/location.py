"""Where a ledger lives: a SQLite file, or a PostgreSQL database named by a URL.

``--ledger`` (or ``ACTIVITY_EXPORT_LEDGER``) is parsed once, here, into a ``Path`` or a
``PostgresUrl``; everything else asks which of the two it holds. A URL is never shown with its
password: ``str()`` of a ``PostgresUrl`` masks it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_LEDGER_NAME = "activity-export.ledger.sqlite"


@dataclass(frozen=True)
class PostgresUrl:
    """A PostgreSQL ledger's connection URL; printed without its password."""

    url: str = field(repr=False)

    def __str__(self) -> str:
        return safe_url(self.url)

    def __repr__(self) -> str:
        return f"PostgresUrl({safe_url(self.url)!r})"


Location = Path | PostgresUrl


def parse_location(value: str | Path) -> Location:
    """A ``--ledger`` value: ``postgresql://...`` (or ``postgres://``) for the shared ledger in
    PostgreSQL, anything else a SQLite file. A path option may have folded the URL's ``//``."""
    text = str(value)
    if re.match(r"postgres(ql)?:/", text) is None:
        return Path(value)
    scheme, _, rest = text.partition(":")
    return PostgresUrl(f"{scheme}://{rest.lstrip('/')}")


def ledger_location(value: str | Path | None, config_path: Path) -> Location:
    """Where the ledger is: ``--ledger`` when given, else beside the configuration file."""
    return parse_location(value) if value else default_ledger_path(config_path)


def default_ledger_path(config_path: Path) -> Path:
    """The ledger beside the configuration file, when ``--ledger`` does not say otherwise."""
    return config_path.resolve().parent / DEFAULT_LEDGER_NAME


def config_key(config_path: Path) -> str:
    """What a configuration file is known as in the ledger: its absolute path."""
    return str(config_path.resolve())


def safe_url(url: str) -> str:
    """A URL without its password (in the authority or as a ``password`` parameter), for messages.

    Read as leniently as possible: a password holding ``/``, ``#``, ``?`` or ``@`` unencoded, or a
    malformed host, must still be masked, never raise or show through.
    """
    scheme, separator, rest = url.partition("://")
    if not separator:
        return re.sub(r"(?i)(password=)[^&#\s]*", r"\1***", url)
    at = rest.rfind("@")
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        rest = f"{user}{':***' if colon else ''}{rest[at:]}"
    return scheme + separator + re.sub(r"(?i)(password=)[^&#\s]*", r"\1***", rest)


def url_secrets(url: str) -> list[str]:
    """The password pieces of a URL (authority and ``password`` parameters), longest first, for
    scrubbing them out of a driver's error message."""
    found = [match.group(1) for match in re.finditer(r"(?i)password=([^&#\s]+)", url)]
    rest = url.partition("://")[2]
    at = rest.rfind("@")
    if at >= 0 and ":" in rest[:at]:
        found.append(rest[:at].partition(":")[2])
    pieces = {value for value in found if value}
    pieces |= {piece for value in found for piece in re.split(r"[/#?@:]", value) if len(piece) >= 3}
    return sorted(pieces, key=len, reverse=True)


def scrubbed(text: str, url: str) -> str:
    """``text`` with every password piece of ``url`` replaced by ``***``."""
    for secret in url_secrets(url):
        text = text.replace(secret, "***")
    return text
