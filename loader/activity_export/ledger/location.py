"""Where a ledger lives: a SQLite file, or a PostgreSQL database named by a URL.

``--ledger`` (or ``ACTIVITY_EXPORT_LEDGER``) is parsed once, here, into a ``Path`` or a
``PostgresUrl``; everything else asks which of the two it holds. A URL is never shown with its
password: ``str()`` of a ``PostgresUrl`` masks it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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
    """A URL without its password (in the authority or as a ``password`` parameter), for messages."""
    parts = urlsplit(url)
    if parts.password is not None:
        netloc = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{netloc}")
    query = re.sub(r"(?i)(^|&)(password)=[^&]*", r"\1\2=***", parts.query)
    return urlunsplit(parts._replace(query=query))
