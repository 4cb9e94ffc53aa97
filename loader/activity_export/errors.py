"""The one domain error type, caught at the CLI boundary."""

from __future__ import annotations


class ExportError(Exception):
    """A failure a user can act on; the message says what and where, never a secret.

    ``exit_code`` follows the command contract: 1 for a failed delivery, 2 for bad usage or
    configuration.
    """

    exit_code = 1


class ConfigError(ExportError):
    """The configuration (tenants.yml, dbt profile, command-line values) is not usable."""

    exit_code = 2


def shown_value(value: object, limit: int = 80) -> str:
    """A value for a message: repr, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "...'"
