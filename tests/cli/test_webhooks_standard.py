"""Webhooks by the Standard Webhooks specification, through the command line, against real HTTP
servers on the loopback interface, verified with the receivers' own library (``standardwebhooks``).

What a receiver relies on: every event verifies with its ``whsec_`` secret; an event it did not
accept comes again, with the same ``webhook-id``, in later runs; a slow or redirecting webhook
neither holds up the deliveries nor lands the event anywhere else.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.project import ROOT, Project
from tests.support.webhooks import Hook, serve

NOW = "2026-11-04T07:00:00+01:00"  # the three generated days are due and complete
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def verified(hook: Hook) -> list[dict[str, Any]]:
    """Every event the hook received, verified as a receiver verifies it."""
    events = []
    for headers, body in hook.received:
        payload = Webhook(SECRET).verify(body, headers)
        assert payload["delivery_id"] == headers["webhook-id"]
        events.append(payload)
    return events


@pytest.fixture
def hook() -> Iterator[Hook]:
    yield from serve(Hook())


@pytest.fixture
def elsewhere() -> Iterator[Hook]:
    yield from serve(Hook())


def _config(folder: Path, url: str, **notify: Any) -> Path:
    tenant = {
        "start": "2026-11-01",
        "destination": {"type": "local", "root": str(folder / "server")},
        "notify": {"url": url, "secret_env": "BRANDNAAM_WEBHOOK_SECRET", **notify},
    }
    path = folder / "tenants.yml"
    path.write_text(yaml.safe_dump({"tenants": {"BRANDNAAM": tenant}}))
    return path


def _run(project: Project, config: Path, now: str = NOW, secret: str = SECRET) -> Any:
    return project.run(
        "run", "--config", str(config), "--now", now, *project.cli_args(),
        check=False, env={"BRANDNAAM_WEBHOOK_SECRET": secret},
    )  # fmt: skip


def _status(project: Project, config: Path, now: str = NOW) -> dict[str, Any]:
    done = project.run("status", "--json", "--config", str(config), "--now", now, *project.cli_args())
    [entry] = json.loads(done.stdout)["tenants"]
    return dict(entry["webhook"])


def _delivered(folder: Path) -> list[str]:
    return sorted(p.name for p in (folder / "server").rglob("activity_*"))


def test_every_event_verifies_with_the_standard_webhooks_library(
    built_duckdb: Project, hook: Hook, tmp_path: Path
) -> None:
    done = _run(built_duckdb, _config(tmp_path, hook.url))
    assert done.returncode == 0, done.stderr
    events = verified(hook)
    assert [(e["event"], e["period"]["label"]) for e in events] == [
        ("delivered", "2026-11-01"),
        ("delivered", "2026-11-02"),
        ("delivered", "2026-11-03"),
    ]
    headers, body = hook.received[0]
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    # the signature covers id and timestamp: the same body under another id does not verify
    forged = {**headers, "webhook-id": "msg_replayed"}
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, forged)
    assert "x-activity-export-signature" not in headers
    assert SECRET not in done.stdout + done.stderr


def test_a_webhook_that_trickles_its_answer_is_given_up_at_the_deadline(
    built_duckdb: Project, hook: Hook, tmp_path: Path
) -> None:
    hook.trickle = 0.5  # one byte every half second, for a minute: never a read timeout
    config = _config(tmp_path, hook.url, timeout_seconds=1, retries=1)
    started = time.monotonic()
    done = _run(built_duckdb, config)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert _delivered(tmp_path) == [
        "activity_BRANDNAAM_20261101.csv",
        "activity_BRANDNAAM_20261102.csv",
        "activity_BRANDNAAM_20261103.csv",
    ]
    # one event's round (1 s, a pause of 1 s, 1 s) bounds all three events' cost, plus the run itself
    assert took < 20, f"the run took {took:.1f}s"
    status = _status(built_duckdb, config)
    # the first event used the run's time for notifications; the others wait for the next run
    assert status["ok"] is False and "used up" in status["detail"], status
    assert status["pending"] == 3
    assert len(hook.received) == 2


def test_a_redirect_is_not_followed_and_the_event_waits(
    built_duckdb: Project, hook: Hook, elsewhere: Hook, tmp_path: Path
) -> None:
    hook.status, hook.location = 302, elsewhere.url
    config = _config(tmp_path, hook.url)
    done = _run(built_duckdb, config)
    assert done.returncode == 0, done.stderr
    assert elsewhere.received == []
    assert len(hook.received) == 3  # one attempt each: a redirect is no passing failure
    status = _status(built_duckdb, config)
    assert status["ok"] is False and "redirect" in status["detail"]
    assert status["pending"] == 3


def test_an_event_not_accepted_is_sent_again_with_the_same_id_until_accepted(
    built_duckdb: Project, hook: Hook, tmp_path: Path
) -> None:
    hook.status = 500
    config = _config(tmp_path, hook.url, retries=0)
    assert _run(built_duckdb, config).returncode == 0
    refused = [headers["webhook-id"] for headers, _ in hook.received]
    assert len(refused) == 3
    assert _status(built_duckdb, config)["pending"] == 3

    hook.received.clear()
    hook.status = 200
    later = "2026-11-04T09:00:00+01:00"
    assert _run(built_duckdb, config, now=later).returncode == 0
    assert [headers["webhook-id"] for headers, _ in hook.received] == refused
    assert [e["period"]["label"] for e in verified(hook)] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    status = _status(built_duckdb, config, now=later)
    assert status["pending"] == 0 and status["ok"] is True

    hook.received.clear()
    assert _run(built_duckdb, config, now=later).returncode == 0
    assert hook.received == []  # accepted: never sent again


def test_an_event_older_than_a_week_is_given_up(built_duckdb: Project, hook: Hook, tmp_path: Path) -> None:
    hook.status = 503
    config = _config(tmp_path, hook.url, retries=0)
    assert _run(built_duckdb, config).returncode == 0
    hook.received.clear()
    # the ledger dates the events by the machine's clock: a week later is --now a week ahead of it
    from datetime import UTC, datetime, timedelta

    week_later = (datetime.now(UTC) + timedelta(days=8)).isoformat(timespec="seconds")
    done = _run(built_duckdb, config, now=week_later)
    assert "given up" in done.stderr
    assert all(json.loads(body)["period"]["label"] > "2026-11-03" for _, body in hook.received)
    # what is left pending are this run's own (overdue) events, none of the three given up
    assert _status(built_duckdb, config, now=week_later)["pending"] == len(hook.received)


def test_a_url_that_is_not_one_is_refused_by_check(built_duckdb: Project, tmp_path: Path) -> None:
    config = _config(tmp_path, "http://[::1/hook")
    done = built_duckdb.run(
        "check", "--config", str(config), "--now", NOW, check=False,
        env={"BRANDNAAM_WEBHOOK_SECRET": SECRET},
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "tenant BRANDNAAM: notify.url" in done.stderr


@pytest.mark.parametrize("secret", ["plain-old-secret", "whsec_not*base64", "whsec_" + "QUJD"])
def test_a_secret_not_in_the_standard_form_is_refused_by_check(
    built_duckdb: Project, tmp_path: Path, secret: str
) -> None:
    config = _config(tmp_path, "https://hooks.example.nl/export")
    done = built_duckdb.run(
        "check", "--config", str(config), "--now", NOW, check=False,
        env={"BRANDNAAM_WEBHOOK_SECRET": secret},
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "BRANDNAAM_WEBHOOK_SECRET" in output and "whsec_" in output
    assert secret not in output


def test_the_receiving_page_verifies_an_event_as_printed(
    built_duckdb: Project, hook: Hook, tmp_path: Path
) -> None:
    page = (ROOT / "docs" / "receiving.md").read_text()
    snippet = page.split("## Notifications", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(snippet.replace('"whsec_..."', repr(SECRET)), namespace)  # noqa: S102 (our own page)
    assert _run(built_duckdb, _config(tmp_path, hook.url)).returncode == 0
    headers, body = hook.received[0]
    assert namespace["event_of"](body, headers)["event"] == "delivered"
    assert namespace["event_of"](body + b" ", headers) is None
