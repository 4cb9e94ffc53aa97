"""Signed notifications: one JSON event per delivered, failed or overdue period, POSTed to a webhook.

The body is signed with HMAC-SHA256 under the tenant's secret (``notify.secret_env``); the
signature travels in the ``X-Activity-Export-Signature`` header as ``sha256=<hex>``, the way
GitHub and Stripe sign theirs, so a receiver checks it with a few lines of standard library code
(docs/receiving.md). Each attempt has a timeout and a failed attempt is retried a few times with a
growing pause. A webhook that fails never fails or blocks a delivery: the outcome is returned
and logged; the caller keeps it in the ledger, which ``status`` shows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import http.client
import json
import logging
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from activity_export import __version__
from activity_export.config import Notify, Tenant
from activity_export.writer import WrittenFile

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Activity-Export-Signature"
EVENT_HEADER = "X-Activity-Export-Event"
DELIVERY_HEADER = "X-Activity-Export-Delivery"
FIRST_PAUSE_SECONDS = 1.0  # then 2, 4, ... between attempts


@dataclass(frozen=True)
class Outcome:
    """What became of one event."""

    ok: bool
    attempts: int
    detail: str  # an HTTP status or the error, never the secret or the URL
    delivery_id: str = ""  # the event's id, in its headers and body


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the hex HMAC-SHA256 of the exact body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


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
        "delivery_id": str(uuid.uuid4()),
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


def post_event(
    settings: Notify,
    event: dict[str, Any],
    sleep: Callable[[float], None] = time.sleep,
    first_pause: float | None = None,
    retries: int | None = None,
) -> Outcome:
    """POST the signed event; retry on a network error, a timeout, 429 or a 5xx answer."""
    secret = os.environ.get(settings.secret_env)
    if not secret:
        return Outcome(False, 0, f"environment variable {settings.secret_env} is not set")
    body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"activity-export/{__version__}",
        SIGNATURE_HEADER: sign(secret.encode("utf-8"), body),
        EVENT_HEADER: str(event["event"]),
        DELIVERY_HEADER: str(event["delivery_id"]),
    }
    detail = ""
    attempts = 0
    for attempt in range((settings.retries if retries is None else retries) + 1):
        if attempt:
            sleep((FIRST_PAUSE_SECONDS if first_pause is None else first_pause) * 2 ** (attempt - 1))
        attempts += 1
        request = urllib.request.Request(settings.url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=settings.timeout_seconds) as answer:  # noqa: S310
                return Outcome(True, attempts, f"HTTP {answer.status}")
        except urllib.error.HTTPError as exc:
            detail = f"HTTP {exc.code}"
            if exc.code != 429 and exc.code < 500:
                break  # the receiver refused this event: sending it again changes nothing
        except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            detail = f"no answer: {type(reason).__name__}: {reason}".replace(settings.url, "<url>")
    return Outcome(False, attempts, detail)


def announce(
    tenant: Tenant,
    event: str,
    period: Any,
    files: list[WrittenFile],
    error: str | None = None,
    retries: int | None = None,
) -> Outcome | None:
    """Send one period's event if the tenant has a webhook; never raises for a failing webhook.

    ``retries`` overrides the configured number, e.g. 0 once the webhook failed earlier in a run,
    so a dead webhook costs one timeout per period rather than a full round of retries.
    """
    if tenant.notify is None:
        return None
    described = [
        {"kind": f.kind, "path": str(f.relative), "rows": f.rows, "bytes": f.bytes, "sha256": f.sha256}
        for f in files
        if f.kind != "manifest"
    ]
    manifest = next((str(f.relative) for f in files if f.kind == "manifest"), None)
    payload = period_event(event, tenant, period, described, manifest, error, datetime.now(UTC))
    outcome = post_event(tenant.notify, payload, retries=retries)
    if outcome.ok:
        log.info("tenant %s: %s event for %s sent (%s)", tenant.brand, event, period.label, outcome.detail)
    else:
        log.warning(
            "tenant %s: %s event for %s not accepted by the webhook after %d attempt(s): %s",
            tenant.brand,
            event,
            period.label,
            outcome.attempts,
            outcome.detail,
        )
    return dataclasses.replace(outcome, delivery_id=str(payload["delivery_id"]))
