"""Signed notifications: one JSON event per delivered, failed or overdue period, POSTed to a webhook.

Events follow Standard Webhooks (https://www.standardwebhooks.com): the headers ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature`` (``v1,`` and the base64 HMAC-SHA256 of
``id.timestamp.body`` under the tenant's ``whsec_`` secret), so a receiver verifies them with the
``standardwebhooks`` libraries and tells a replay apart by its id and time (docs/receiving.md).

What a webhook can cost a run is bounded: each attempt has one deadline for everything (connect,
send, answer), not a timeout per read; a failed attempt is retried a few times with a growing
pause; and all notifications of one tenant in one run together stay within ``run_budget``. No
redirect is followed. A webhook that fails never fails or blocks a delivery: the outcome is
returned and logged, and the caller keeps the event in the ledger, which sends it again in later
runs (same id) until it is accepted or ``GIVE_UP_AFTER`` old.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http.client
import json
import logging
import os
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from activity_export import __version__
from activity_export.config import Notify, Tenant

if TYPE_CHECKING:
    from activity_export.writer import WrittenFile

log = logging.getLogger(__name__)

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
EVENT_HEADER = "X-Activity-Export-Event"
SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix of every secret, not a secret)
SECRET_BYTES = (24, 64)  # the Standard Webhooks recommendation for the key's length
FIRST_PAUSE_SECONDS = 1.0  # then 2, 4, ... between attempts
MAX_PAUSE_SECONDS = 30.0
MAX_BUDGET_SECONDS = 300.0  # what one tenant's notifications may add to a run, at most
GIVE_UP_AFTER = timedelta(days=7)


@dataclass(frozen=True)
class Outcome:
    """What became of one event."""

    ok: bool
    attempts: int
    detail: str  # an HTTP status or the error, never the secret or the URL
    delivery_id: str = ""  # the event's id: webhook-id, and delivery_id in the body


def secret_key(value: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret: the base64 after ``whsec_``.

    The ValueError says what is wrong, never the value.
    """
    if not value.startswith(SECRET_PREFIX):
        raise ValueError(
            f"does not hold a Standard Webhooks secret: it must start with '{SECRET_PREFIX}', "
            "followed by 24 to 64 random bytes in base64"
        )
    text = value.removeprefix(SECRET_PREFIX)
    text += "=" * (-len(text) % 4)  # as the standardwebhooks libraries, unpadded base64 is fine
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"does not hold a Standard Webhooks secret: not base64 after '{SECRET_PREFIX}'"
        ) from None
    low, high = SECRET_BYTES
    if not low <= len(key) <= high:
        raise ValueError(
            "does not hold a Standard Webhooks secret (whsec_...): "
            f"its key is {len(key)} bytes, expected {low} to {high}"
        )
    return key


def secret_problem(settings: Notify) -> str | None:
    """What is wrong with the secret in ``settings.secret_env`` (unset, or not ``whsec_...``)."""
    value = os.environ.get(settings.secret_env)
    if not value:
        return f"environment variable {settings.secret_env} is not set (it must hold the secret)"
    try:
        secret_key(value)
    except ValueError as exc:
        return f"environment variable {settings.secret_env} {exc}"
    return None


def sign(key: bytes, delivery_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,`` and the base64 HMAC-SHA256 of ``id.timestamp.body``."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def run_budget(settings: Notify) -> float:
    """Seconds one tenant's notifications may add to a run: one event's full round of attempts
    and pauses, at most ``MAX_BUDGET_SECONDS``."""
    pauses = sum(_pause(attempt, FIRST_PAUSE_SECONDS) for attempt in range(1, settings.retries + 1))
    return min(MAX_BUDGET_SECONDS, settings.timeout_seconds * (settings.retries + 1) + pauses)


def _pause(attempt: int, first: float) -> float:
    return float(min(MAX_PAUSE_SECONDS, first * 2 ** (attempt - 1)))


def period_event(
    event: str,
    tenant: Tenant,
    period: Any,
    files: list[dict[str, Any]],
    manifest: str | None,
    error: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The JSON event of one period: what happened, which files with rows and SHA-256."""
    return {
        "event": event,
        "delivery_id": f"msg_{uuid.uuid4().hex}",
        "brand": tenant.brand,
        "period": {
            "label": period.label,
            "start": period.start_local.isoformat(),
            "end": period.end_local.isoformat(),
            "timezone": tenant.timezone,
        },
        "status": event,
        "files": files,
        "manifest": manifest,
        "error": error,
        "sent_at": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "product_version": __version__,
    }


def encoded(event: dict[str, Any]) -> bytes:
    """The exact bytes of an event's body, as signed and as kept for sending again."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class Webhook:
    """One tenant's webhook during one run: sends events and keeps the run's time for them.

    After an event was not accepted, later events of the run get one attempt each (a dead webhook
    costs one deadline per event, not a round of retries); once ``run_budget`` is spent, nothing
    more is sent in this run and the events wait in the ledger for the next one.
    """

    def __init__(
        self,
        settings: Notify,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        first_pause: float | None = None,
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._clock = clock
        self._first_pause = FIRST_PAUSE_SECONDS if first_pause is None else first_pause
        self._budget = run_budget(settings)
        self._started: float | None = None
        self.failed = False  # an event was not accepted in this run

    def remaining(self) -> float:
        """Seconds left of this run's budget for the tenant's notifications."""
        if self._started is None:
            return self._budget
        return max(0.0, self._budget - (self._clock() - self._started))

    def send(self, delivery_id: str, event_name: str, body: bytes) -> Outcome:
        """POST one event (its id and exact body); retry on no answer, 429 or a 5xx answer."""
        problem = secret_problem(self.settings)
        if problem:
            self.failed = True
            return Outcome(False, 0, problem, delivery_id)
        key = secret_key(os.environ[self.settings.secret_env])
        if self._started is None:
            self._started = self._clock()
        retries = 0 if self.failed else self.settings.retries
        detail = ""
        attempts = 0
        for attempt in range(retries + 1):
            if attempt:
                pause = _pause(attempt, self._first_pause)
                if pause >= self.remaining():
                    break
                self._sleep(pause)
            deadline = min(self.settings.timeout_seconds, self.remaining())
            if deadline <= 0:
                detail = detail or "not sent: this run's time for notifications is used up"
                break
            attempts += 1
            timestamp = int(time.time())
            headers = {
                "Content-Type": "application/json",
                "User-Agent": f"activity-export/{__version__}",
                ID_HEADER: delivery_id,
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(key, delivery_id, timestamp, body),
                EVENT_HEADER: event_name,
            }
            status, detail = post_once(self.settings.url, body, headers, deadline)
            if status is not None and 200 <= status < 300:
                return Outcome(True, attempts, detail, delivery_id)
            if status is not None and status != 429 and status < 500:
                break  # refused or redirected: sending it again in this run changes nothing
        self.failed = True
        return Outcome(False, attempts, detail, delivery_id)


def post_once(url: str, body: bytes, headers: dict[str, str], deadline: float) -> tuple[int | None, str]:
    """One POST, within ``deadline`` seconds in all: the HTTP status (None: no answer) and a
    detail for the ledger that holds neither the URL nor the secret.

    The request runs in a helper thread; when the deadline passes, its socket is shut down, which
    ends any read at once, however slowly the server trickles bytes. Redirects are answers like
    any other: never followed.
    """
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    outcome: dict[str, Any] = {}
    connection: list[http.client.HTTPConnection] = []

    def attempt() -> None:
        try:
            if parts.scheme == "https":
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    parts.hostname or "", parts.port, timeout=deadline, context=ssl.create_default_context()
                )
            else:
                conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=deadline)
            connection.append(conn)
            conn.request("POST", target, body=body, headers=headers)
            answer = conn.getresponse()
            outcome["status"] = answer.status
        except (OSError, http.client.HTTPException, ValueError) as exc:
            outcome["error"] = exc
        finally:
            for each in connection:
                each.close()

    worker = threading.Thread(target=attempt, name="webhook", daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        for each in connection:
            if each.sock is not None:
                try:
                    each.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed
        return None, f"no answer within {deadline:g}s"
    if "status" in outcome:
        status = int(outcome["status"])
        if 300 <= status < 400:
            return status, f"HTTP {status}: a redirect, not followed; configure the final URL"
        return status, f"HTTP {status}"
    error = outcome.get("error")
    text = f"no answer: {type(error).__name__}: {error}"
    for secret in (url, parts.netloc):
        if secret:
            text = text.replace(secret, "<url>")
    return None, text


def announce(
    tenant: Tenant,
    webhook: Webhook | None,
    event: str,
    period: Any,
    files: list[WrittenFile],
    error: str | None = None,
) -> tuple[Outcome, bytes] | None:
    """Send one period's event if the tenant has a webhook; the outcome and the exact body (kept
    by the caller to send again). Never raises for a failing webhook."""
    if tenant.notify is None or webhook is None:
        return None
    described = [
        {"kind": f.kind, "path": str(f.relative), "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256}
        for f in files
        if f.kind != "manifest"
    ]
    manifest = next((str(f.relative) for f in files if f.kind == "manifest"), None)
    payload = period_event(event, tenant, period, described, manifest, error, datetime.now(UTC))
    body = encoded(payload)
    outcome = webhook.send(str(payload["delivery_id"]), event, body)
    _log(tenant.brand, event, period.label, outcome)
    return outcome, body


def _log(brand: str, event: str, label: str, outcome: Outcome) -> None:
    if outcome.ok:
        log.info("tenant %s: %s event for %s sent (%s)", brand, event, label, outcome.detail)
    else:
        log.warning(
            "tenant %s: %s event for %s not accepted by the webhook after %d attempt(s): %s; "
            "a later run sends it again",
            brand,
            event,
            label,
            outcome.attempts,
            outcome.detail,
        )


def resend(webhook: Webhook, brand: str, delivery_id: str, event: str, label: str, body: bytes) -> Outcome:
    """Send a kept event again, with its own id and body and a fresh timestamp and signature."""
    outcome = webhook.send(delivery_id, event, body)
    _log(brand, event, label, outcome)
    return outcome
