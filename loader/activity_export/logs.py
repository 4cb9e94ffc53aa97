"""Logging for people and for schedulers: verbosity, plain text or one JSON object per line.

Everything a command writes on stderr goes through here, so that ``--log-format json`` makes every
line of it one JSON object; stdout keeps the command's own output (a table, ``--json``).

Two kinds of line:

- **log lines** (``logging.getLogger(__name__)``), shown by verbosity: warnings by default, every
  step with ``-v``, debugging detail with ``-vv``; as text, ``time LEVEL logger: message``;
- **console lines** (``say``): what a person running the command is told whatever ``-v`` says
  (only ``-q`` hides all but errors): each period delivered, a tenant that failed, an overdue
  period, a warning about the data. As text, the message alone after ``error:`` or
  ``warning:``.

Every line written while a tenant, a period or a file is being delivered carries that context
(``brand``, ``period``, ``kind``), set with ``context(...)`` by the code doing the work, so a
scheduler can filter one brand's night without parsing messages. ``event`` names what happened
(``period_delivered``, ``tenant_failed``, ``period_overdue``, ...); other lines get ``log``. What a
line counts (``rows``, ``bytes``, ``seconds``), how it ended (``outcome``) and why (``error``) are
fields of their own (``fields=`` in ``extra``, or ``say``'s keywords).
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
CONSOLE = "activity_export.console"

_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("activity_export_log_context")
_format = {"current": "text"}
console = logging.getLogger(CONSOLE)


@contextmanager
def context(**fields: str) -> Iterator[None]:
    """Attach ``brand``, ``period`` and/or ``kind`` to every log line written inside the block."""
    token = _context.set({**_context.get({}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def say(
    message: str,
    *,
    event: str,
    level: int = logging.INFO,
    brand: str | None = None,
    period: str | None = None,
    **fields: object,
) -> None:
    """A console line: ``message`` for people (after ``error:`` or ``warning:`` by ``level``), or
    one JSON object with ``event``, the tenant and period, and ``fields``."""
    extra: dict[str, object] = {"event": event, "fields": fields}
    if brand is not None:
        extra["brand"] = brand
    if period is not None:
        extra["period"] = period
    console.log(level, "%s", message, extra=extra)


def is_json() -> bool:
    """Whether lines are JSON objects (no progress bar then: stderr is a log stream)."""
    return _format["current"] == "json"


def current_format() -> str:
    """``text`` or ``json``: what ``configure`` chose."""
    return _format["current"]


def configure_worker(log_format: str) -> None:
    """A worker process of a run (``run --processes``): its lines go to the run, which writes
    them; only the format is known here, for what asks ``is_json``."""
    _format["current"] = log_format


def live_bar() -> bool:
    """Whether a run may draw a progress bar: text lines on a terminal, not ``-q``."""
    return not is_json() and console.isEnabledFor(logging.INFO) and sys.stderr.isatty()


def level(verbose: int, *, quiet: bool) -> int:
    """-q: errors only; default: warnings; -v: every step; -vv: debugging detail."""
    if quiet:
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)


def configure(verbose: int, *, quiet: bool, log_format: str) -> None:
    """Send log and console lines to stderr at the chosen level and in the chosen format."""
    _format["current"] = log_format
    log_lines = _Stderr()
    log_lines.addFilter(add_context)
    console_lines = _Stderr()
    console_lines.addFilter(add_context)
    if log_format == "json":
        log_lines.setFormatter(JsonFormatter())
        console_lines.setFormatter(JsonFormatter())
    else:
        log_lines.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        console_lines.setFormatter(ConsoleFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(log_lines)
    root.setLevel(level(verbose, quiet=quiet))
    for old in list(console.handlers):
        console.removeHandler(old)
    console.addHandler(console_lines)
    console.propagate = False
    console.setLevel(logging.ERROR if quiet else logging.INFO)
    # Python's own warnings (a library's DeprecationWarning) are log lines too, in the same format
    logging.captureWarnings(True)
    # paramiko's own steps (banner, authentication) only with -vv; its packet-level debugging never
    logging.getLogger("paramiko").setLevel(logging.INFO if verbose >= 2 else logging.WARNING)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time: a progress bar on the terminal redirects
    it to print lines above itself."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def add_context(record: logging.LogRecord) -> bool:
    for name, value in _context.get({}).items():
        if not hasattr(record, name):
            setattr(record, name, value)
    return True


_PREFIXES = {logging.ERROR: "error: ", logging.WARNING: "warning: "}


class ConsoleFormatter(logging.Formatter):
    """A console line as text: the message, after ``error:`` or ``warning:``."""

    def format(self, record: logging.LogRecord) -> str:
        return _PREFIXES.get(record.levelno, "") + record.getMessage()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, tenant (and brand, the same), period,
    kind, the line's own fields (rows, bytes, seconds, outcome, error, ...) and message."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", "log"),
            "tenant": getattr(record, "brand", None),
        }
        for name in CONTEXT_FIELDS:
            entry[name] = getattr(record, name, None)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update({name: value for name, value in fields.items() if name not in entry})
        entry["message"] = record.getMessage()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:  # a worker process's traceback, sent as text
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)
