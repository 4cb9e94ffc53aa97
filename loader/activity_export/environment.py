"""Every environment variable the product reads, validated in one place.

A bad value is a configuration error (exit 2) that names the variable and what it may hold, checked
when the command starts, before any work. Secrets named in ``tenants.yml`` (``password_env`` and the
like) are checked by ``check`` and at login, and their values are never shown.
"""

from __future__ import annotations

import math
import os

from activity_export import failpoints
from activity_export.errors import ConfigError

SFTP_RETRY_SECONDS = "ACTIVITY_EXPORT_SFTP_RETRY_SECONDS"
DEFAULT_SFTP_RETRY_SECONDS = 60.0
MAX_SFTP_RETRY_SECONDS = 3600.0

# Read as paths or names by the command line (typer) or by the dbt profile: set means not empty.
NOT_EMPTY = (
    "ACTIVITY_EXPORT_CONFIG",
    "ACTIVITY_EXPORT_LEDGER",
    "ACTIVITY_EXPORT_ON_FAILURE",
    "ACTIVITY_EXPORT_DUCKDB",
    "DBT_PROJECT_DIR",
    "DBT_PROFILES_DIR",
    "DBT_TARGET",
)
PORT_VARIABLES = ("PGPORT",)  # read by profiles.yml.example


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:35] + "...")


def sftp_retry_seconds() -> float:
    """``ACTIVITY_EXPORT_SFTP_RETRY_SECONDS``: how long one SFTP operation retries (default 60)."""
    text = os.environ.get(SFTP_RETRY_SECONDS, "").strip()
    if not text:
        return DEFAULT_SFTP_RETRY_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 <= value <= MAX_SFTP_RETRY_SECONDS):
        raise ConfigError(
            f"environment variable {SFTP_RETRY_SECONDS}={_shown(text)}: must be a number of seconds "
            f"from 0 to {MAX_SFTP_RETRY_SECONDS:.0f} (default {DEFAULT_SFTP_RETRY_SECONDS:.0f}); "
            f"unset it for the default"
        )
    return value


def failpoint() -> str | None:
    """``ACTIVITY_EXPORT_FAILPOINT``: a test hook; when set it must name a known failpoint."""
    value = os.environ.get(failpoints.VARIABLE)
    if value is None:
        return None
    if value not in failpoints.POINTS:
        raise ConfigError(
            f"environment variable {failpoints.VARIABLE}={_shown(value)}: not a failpoint; known: "
            f"{', '.join(failpoints.POINTS)}. It is a test hook: unset it in production"
        )
    return value


def validate_environment() -> None:
    """Check every variable the product reads; a ConfigError (exit 2) names the first bad one."""
    sftp_retry_seconds()
    failpoint()
    for name in NOT_EMPTY:
        value = os.environ.get(name)
        if value is not None and not value.strip():
            raise ConfigError(f"environment variable {name} is set but empty: unset it or give a value")
    for name in PORT_VARIABLES:
        value = os.environ.get(name)
        if value is not None and not (value.strip().isdigit() and 1 <= int(value) <= 65535):
            raise ConfigError(f"environment variable {name}={_shown(value)}: must be a TCP port, 1 to 65535")
