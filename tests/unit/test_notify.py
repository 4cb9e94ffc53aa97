"""Signed notifications, against a real HTTP server on the loopback interface.

The server records what it receives and answers as each test tells it (200, 500, a pause longer
than the timeout). Deliveries run through the loader's own ``runs.deliver_one`` on the golden
warehouse (tests/support/golden.py) with a local destination and a real ledger.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook as StandardWebhook

from activity_export import notify
from activity_export.config import Notify
from activity_export.deliver import Context
from activity_export.ledger import open_ledger
from activity_export.notify import Outcome, Webhook, encoded
from activity_export.periods import parse_now
from activity_export.report import status_table
from activity_export.runs import Run, deliver_one
from activity_export.status import collect_status, read_warehouse
from activity_export.warehouse import Warehouse, read_watermark
from tests.support.golden import tenant
from tests.support.webhooks import Hook, serve

SECRET = "whsec_" + base64.b64encode(b"webhook-secret-for-tests" * 2).decode()
NOW = parse_now("2026-11-27T07:00:00+01:00")  # 2026-11-24, -25 and -26 are due
CONFIG = "tenants.yml"  # what the ledger records the deliveries under


@pytest.fixture
def hook() -> Iterator[Hook]:
    yield from serve(Hook())


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOLD_WEBHOOK_SECRET", SECRET)
    monkeypatch.setattr(notify, "FIRST_PAUSE_SECONDS", 0.01)


def post_event(settings: Notify, event: dict[str, Any], first_pause: float | None = None) -> Outcome:
    """One event sent as a run sends it: signed, with its retries."""
    webhook = Webhook(settings, first_pause=first_pause)
    return webhook.send(str(event["delivery_id"]), str(event["event"]), encoded(event))


def _tenant(hook: Hook, tmp_path: Path, **settings: Any) -> Any:
    return tenant(
        start="2026-11-24",
        manifest=True,
        destination={"type": "local", "root": str(tmp_path / "server")},
        notify={"url": hook.url, "secret_env": "GOLD_WEBHOOK_SECRET", "timeout_seconds": 2, "retries": 2},
        **settings,
    )


def _run(warehouse: Warehouse, configured: Any, tmp_path: Path) -> Any:
    run = Run([configured], tmp_path / "ledger.sqlite", Context(CONFIG, NOW))
    return deliver_one(run, warehouse, configured, read_watermark(warehouse))


def test_every_delivered_period_is_announced_and_signed(
    hook: Hook, warehouse: Warehouse, tmp_path: Path
) -> None:
    report = _run(warehouse, _tenant(hook, tmp_path), tmp_path)
    assert not report.failed and len(report.delivered) == 3
    events = hook.events()
    assert [(e["event"], e["period"]["label"]) for e in events] == [
        ("delivered", "2026-11-24"),
        ("delivered", "2026-11-25"),
        ("delivered", "2026-11-26"),
    ]
    for headers, body in hook.received:
        assert StandardWebhook(SECRET).verify(body, headers)["delivery_id"] == headers["webhook-id"]
        assert headers["content-type"] == "application/json"
        assert headers["x-activity-export-event"] == "delivered"
        assert SECRET.encode() not in body
    middle = events[1]
    assert middle["brand"] == "GOLD" and middle["manifest"] == "manifest_GOLD_20261125.json"
    for entry in middle["files"]:
        delivered = (tmp_path / "server" / entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(delivered).hexdigest() and entry["bytes"] == len(delivered)
    assert [entry["kind"] for entry in middle["files"]] == ["activity", "broadcast"]
    assert middle["files"][0]["rows"] == 12


def test_a_failing_webhook_neither_blocks_nor_fails_the_delivery(
    hook: Hook, warehouse: Warehouse, tmp_path: Path
) -> None:
    hook.answers = [500] * 20
    configured = _tenant(hook, tmp_path)
    report = _run(warehouse, configured, tmp_path)
    assert not report.failed and len(report.delivered) == 3
    assert len(list((tmp_path / "server").iterdir())) == 9  # three files per period
    # the first period: the first try and two retries; then one try each in this run
    assert [json.loads(body)["period"]["label"] for _, body in hook.received] == [
        "2026-11-24",
        "2026-11-24",
        "2026-11-24",
        "2026-11-25",
        "2026-11-26",
    ]
    with open_ledger(tmp_path / "ledger.sqlite") as ledger:
        status = ledger.webhook_status(CONFIG, "GOLD")
        assert status is not None and not status.ok and status.failures == 3 and status.detail == "HTTP 500"
        assert ledger.webhook_status("/another/tenants.yml", "GOLD") is None  # per configuration
        table = status_table(
            collect_status(ledger, read_warehouse(warehouse, [configured]), CONFIG, [configured], NOW),
            verified=False,
        )
    assert "webhook of GOLD: last delivered event (2026-11-26) NOT ACCEPTED: HTTP 500" in table


def test_a_retried_event_is_accepted_with_the_same_delivery_id(hook: Hook) -> None:
    hook.answers = [503, 429]
    settings = Notify(url=hook.url, secret_env="GOLD_WEBHOOK_SECRET", retries=3)
    outcome = post_event(settings, {"event": "delivered", "delivery_id": "d-1"}, first_pause=0)
    assert outcome.ok and outcome.attempts == 3 and outcome.detail == "HTTP 200"
    assert {headers["webhook-id"] for headers, _ in hook.received} == {"d-1"}


def test_a_refused_event_is_not_retried(hook: Hook) -> None:
    hook.answers = [401]
    settings = Notify(url=hook.url, secret_env="GOLD_WEBHOOK_SECRET", retries=3)
    outcome = post_event(settings, {"event": "delivered", "delivery_id": "d-2"}, first_pause=0)
    assert not outcome.ok and outcome.attempts == 1 and outcome.detail == "HTTP 401"


def test_a_webhook_that_does_not_answer_in_time_is_given_up(hook: Hook) -> None:
    hook.pause = 3
    settings = Notify(url=hook.url, secret_env="GOLD_WEBHOOK_SECRET", timeout_seconds=0.3, retries=1)
    outcome = post_event(settings, {"event": "overdue", "delivery_id": "d-3"}, first_pause=0)
    assert not outcome.ok and outcome.attempts == 2
    assert "no answer within" in outcome.detail and hook.url not in outcome.detail


def test_nothing_is_sent_without_the_secret(hook: Hook, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOLD_WEBHOOK_SECRET")
    settings = Notify(url=hook.url, secret_env="GOLD_WEBHOOK_SECRET")
    outcome = post_event(settings, {"event": "delivered", "delivery_id": "d-4"})
    assert not outcome.ok and "GOLD_WEBHOOK_SECRET is not set" in outcome.detail
    assert hook.received == []


def test_a_failed_period_is_announced_with_its_error(
    hook: Hook, warehouse: Warehouse, tmp_path: Path
) -> None:
    (tmp_path / "server").write_text("a file where the destination folder should be", encoding="utf-8")
    report = _run(warehouse, _tenant(hook, tmp_path), tmp_path)
    assert report.failed
    events = hook.events()
    assert [(e["event"], e["period"]["label"], e["files"]) for e in events] == [("failed", "2026-11-24", [])]
    assert events[0]["error"] == report.error
    assert isinstance(datetime.fromisoformat(events[0]["sent_at"].replace("Z", "+00:00")), datetime)


def test_an_overdue_period_is_announced(hook: Hook, warehouse: Warehouse, tmp_path: Path) -> None:
    later = parse_now("2026-11-28T07:00:00+01:00")  # 26 November became due 25 hours ago
    complete_until = parse_now("2026-11-25T23:00:00+00:00")  # as if the data stopped after the 25th
    configured = _tenant(hook, tmp_path)
    run = Run([configured], tmp_path / "ledger.sqlite", Context(CONFIG, later))
    report = deliver_one(run, warehouse, configured, complete_until)
    assert [o.period.label for o in report.overdue] == ["2026-11-26"] and not report.failed
    overdue = [e for e in hook.events() if e["event"] == "overdue"]
    assert [e["period"]["label"] for e in overdue] == ["2026-11-26"]
    assert "after it became due" in overdue[0]["error"]
