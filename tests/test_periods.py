"""Periods in the tenant's timezone, as exact UTC bounds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from loader.config import parse_config
from loader.errors import ConfigError
from loader.periods import due_periods, parse_now, parse_period, period_containing
from pathlib import Path


def tenant(**settings):  # noqa: ANN201
    raw = {"tenants": {"T": {"destination": {"type": "local", "root": "/tmp/x"}, **settings}}}
    return parse_config(raw, Path("tenants.yml")).tenant("T")


@pytest.mark.parametrize(
    ("day", "hours"), [("2026-03-29", 23), ("2026-10-25", 25), ("2026-11-25", 24)]
)
def test_amsterdam_days_last_23_25_or_24_hours(day: str, hours: int) -> None:
    period = parse_period(tenant(), day)
    assert period.duration == timedelta(hours=hours)
    assert period.start_local.strftime("%H:%M") == "00:00"


def test_hourly_kolkata_periods_start_on_the_half_hour_in_utc() -> None:
    period = parse_period(tenant(interval="hourly", timezone="Asia/Kolkata"), "2026-11-25T13")
    assert period.start_utc == datetime(2026, 11, 25, 7, 30, tzinfo=timezone.utc)
    assert period.end_utc == datetime(2026, 11, 25, 8, 30, tzinfo=timezone.utc)
    assert period.label == "2026-11-25T13"


def test_repeated_autumn_hour_is_one_period_and_skipped_spring_hour_has_none() -> None:
    hourly = tenant(interval="hourly")
    autumn = parse_period(hourly, "2026-10-25T02")
    assert autumn.duration == timedelta(hours=2)
    spring = parse_period(hourly, "2026-03-29T01")
    assert spring.next().start_local.hour == 3


def test_weekly_periods_run_monday_to_monday() -> None:
    period = parse_period(tenant(interval="weekly"), "2026-11-26")
    assert period.start_local.date().isoformat() == "2026-11-23"
    assert period.end_local.date().isoformat() == "2026-11-30"


def test_due_periods_wait_for_the_watermark() -> None:
    daily = tenant(start="2026-11-20")
    now = parse_now("2026-11-26T07:00:00+01:00")
    watermark = datetime(2026, 11, 24, 1, 0, tzinfo=timezone.utc)
    ready, waiting = due_periods(daily, daily.start, now, watermark)
    assert [p.label for p in ready] == ["2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23"]
    assert [p.label for p in waiting] == ["2026-11-24", "2026-11-25"]


def test_period_before_run_at_is_not_due() -> None:
    daily = tenant(start="2026-11-25", run_at="08:00")
    ready, waiting = due_periods(daily, daily.start, parse_now("2026-11-26T07:00:00+01:00"), None)
    assert ready == [] and waiting == []


def test_every_instant_belongs_to_exactly_one_period() -> None:
    hourly = tenant(interval="hourly")
    period = period_containing(hourly, datetime(2026, 10, 24, 22, tzinfo=timezone.utc))
    for _ in range(30):
        following = period.next()
        assert following.start_utc == period.end_utc
        period = following


def test_bad_period_and_now_are_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="not a local date"):
        parse_period(tenant(), "yesterday")
    with pytest.raises(ConfigError, match="with an offset"):
        parse_now("2026-11-26T07:00:00")
