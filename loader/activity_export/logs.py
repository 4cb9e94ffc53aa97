"""Logging for people and for schedulers: verbosity, plain text or one JSON object per line.

Every log line written while a tenant, a period or a file is being delivered carries that context
(``brand``, ``period``, ``kind``), set with ``context(...)`` by the code doing the work, so a
scheduler that ingests ``--log-format json`` can filter one brand's night without parsing
messages. ``event`` names what happened (``file_published``, ``period_delivered``,
``tenant_failed``, ...), given as ``extra={"event": ...}`` where a line marks a step; other lines
get ``log``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

FORMATS = ("text", "json")
CONTEXT_FIELDS = ("brand", "period", "kind")

_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("activity_export_log_context")


@contextmanager
def context(**fields: str) -> Iterator[None]:
    """Attach ``brand``, ``period`` and/or ``kind`` to every log line written inside the block."""
    token = _context.set({**_context.get({}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def level(verbose: int, *, quiet: bool) -> int:
    """-q: errors only; default: warnings; -v: every step; -vv: debugging detail."""
    if quiet:
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)


def configure(verbose: int, *, quiet: bool, log_format: str) -> None:
    """Send the package's log lines to stderr at the chosen level and in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_add_context)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level(verbose, quiet=quiet))
    # paramiko's own steps (banner, authentication) only with -vv; its packet-level debugging never
    logging.getLogger("paramiko").setLevel(logging.INFO if verbose >= 2 else logging.WARNING)


def _add_context(record: logging.LogRecord) -> bool:
    for name, value in _context.get({}).items():
        if not hasattr(record, name):
            setattr(record, name, value)
    return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, brand, period, kind, message."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", "log"),
        }
        for name in CONTEXT_FIELDS:
            entry[name] = getattr(record, name, None)
        entry["message"] = record.getMessage()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
