"""Periods in the tenant's timezone, as exact UTC bounds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from activity_export.config import parse_config
from activity_export.errors import ConfigError
from activity_export.periods import (
    due_at,
    due_periods,
    parse_now,
    parse_period,
    period_containing,
    sample_periods,
)


def tenant(**settings):
    raw = {"tenants": {"T": {"destination": {"type": "local", "root": "/tmp/x"}, **settings}}}
    return parse_config(raw, Path("tenants.yml")).tenant("T")


@pytest.mark.parametrize(("day", "hours"), [("2026-03-29", 23), ("2026-10-25", 25), ("2026-11-25", 24)])
def test_amsterdam_days_last_23_25_or_24_hours(day: str, hours: int) -> None:
    period = parse_period(tenant(), day)
    assert period.duration == timedelta(hours=hours)
    assert period.start_local.strftime("%H:%M") == "00:00"


def test_hourly_kolkata_periods_start_on_the_half_hour_in_utc() -> None:
    period = parse_period(tenant(interval="hourly", timezone="Asia/Kolkata"), "2026-11-25T13")
    assert period.start_utc == datetime(2026, 11, 25, 7, 30, tzinfo=UTC)
    assert period.end_utc == datetime(2026, 11, 25, 8, 30, tzinfo=UTC)
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


def test_weekly_period_is_due_on_the_monday_it_ends_at_run_at() -> None:
    weekly = tenant(interval="weekly", run_at="06:00")
    period = parse_period(weekly, "2026-11-26")  # the week of Monday 2026-11-23
    due = due_at(weekly, period)
    assert due == parse_now("2026-11-30T06:00:00+01:00")
    assert due.strftime("%A") == "Monday"


def test_due_periods_wait_for_the_watermark() -> None:
    daily = tenant(start="2026-11-20")
    now = parse_now("2026-11-26T07:00:00+01:00")
    watermark = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    ready, waiting = due_periods(daily, daily.start, now, watermark)
    assert [p.label for p in ready] == ["2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23"]
    assert [p.label for p in waiting] == ["2026-11-24", "2026-11-25"]


def test_period_before_run_at_is_not_due() -> None:
    daily = tenant(start="2026-11-25", run_at="08:00")
    ready, waiting = due_periods(daily, daily.start, parse_now("2026-11-26T07:00:00+01:00"), None)
    assert ready == [] and waiting == []


def test_every_instant_belongs_to_exactly_one_period() -> None:
    hourly = tenant(interval="hourly")
    period = period_containing(hourly, datetime(2026, 10, 24, 22, tzinfo=UTC))
    for _ in range(30):
        following = period.next()
        assert following.start_utc == period.end_utc
        period = following


def test_bad_period_and_now_are_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="not a local date"):
        parse_period(tenant(), "yesterday")
    with pytest.raises(ConfigError, match="with an offset"):
        parse_now("2026-11-26T07:00:00")


# --- schedules: periods from the tenant's interval and timezone --------------------------------


ZONES = [
    "Europe/Amsterdam",
    "Asia/Kolkata",
    "America/New_York",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Pacific/Chatham",
    "UTC",
]


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("interval", ["hourly", "daily", "weekly"])
def test_every_instant_lies_in_exactly_one_period(zone: str, interval: str) -> None:
    configured = tenant(timezone=zone, interval=interval)
    # every 5 minutes through the 2026 DST changes of the northern and southern hemisphere
    for start in (
        datetime(2026, 3, 27, tzinfo=UTC),
        datetime(2026, 4, 3, tzinfo=UTC),
        datetime(2026, 9, 4, tzinfo=UTC),
        datetime(2026, 10, 23, tzinfo=UTC),
        datetime(2026, 10, 30, tzinfo=UTC),
    ):
        chain = period_containing(configured, start)
        for step in range(0, 4 * 24 * 12):
            instant = start + timedelta(minutes=5 * step)
            while chain.end_utc <= instant:
                following = chain.next()
                assert following.start_utc == chain.end_utc  # no gap, no overlap
                chain = following
            found = period_containing(configured, instant)
            assert found.start_utc <= instant < found.end_utc
            assert found == chain
            assert found.start_utc.minute % 15 == 0


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [
        ("Europe/Amsterdam", "2026-03-29", 23),
        ("Europe/Amsterdam", "2026-10-25", 25),
        ("America/New_York", "2026-03-08", 23),
        ("America/New_York", "2026-11-01", 25),
        ("Australia/Lord_Howe", "2026-04-05", 24.5),
        ("Asia/Kolkata", "2026-03-29", 24),
    ],
)
def test_daily_periods_follow_the_local_calendar(zone: str, day: str, hours: float) -> None:
    period = parse_period(tenant(timezone=zone), day)
    assert period.duration == timedelta(hours=hours)
    assert period.start_local.strftime("%Y-%m-%d %H:%M") == f"{day} 00:00"


def test_amsterdam_dst_days_have_exact_utc_bounds() -> None:
    spring = parse_period(tenant(), "2026-03-29")
    assert (spring.start_utc, spring.end_utc) == (
        datetime(2026, 3, 28, 23, tzinfo=UTC),
        datetime(2026, 3, 29, 22, tzinfo=UTC),
    )
    autumn = parse_period(tenant(), "2026-10-25")
    assert (autumn.start_utc, autumn.end_utc) == (
        datetime(2026, 10, 24, 22, tzinfo=UTC),
        datetime(2026, 10, 25, 23, tzinfo=UTC),
    )


def test_second_occurrence_of_the_autumn_hour_is_in_the_same_hourly_period() -> None:
    hourly = tenant(interval="hourly")
    first = period_containing(hourly, datetime(2026, 10, 25, 0, 30, tzinfo=UTC))  # 02:30 CEST
    second = period_containing(hourly, datetime(2026, 10, 25, 1, 30, tzinfo=UTC))  # 02:30 CET
    assert first == second
    assert first.start_utc == datetime(2026, 10, 25, 0, tzinfo=UTC)
    assert first.end_utc == datetime(2026, 10, 25, 2, tzinfo=UTC)
    assert str(hourly.relative_path("activity", first)) == "activity_T_2026102502.csv"


def test_a_wall_time_in_the_skipped_spring_hour_belongs_to_the_next_period() -> None:
    hourly = tenant(interval="hourly")
    period = parse_period(hourly, "2026-03-29T02")
    assert period.label == "2026-03-29T03"
    assert period.start_utc == datetime(2026, 3, 29, 1, tzinfo=UTC)


def test_weekly_periods_start_on_monday_in_the_tenant_timezone() -> None:
    weekly = tenant(interval="weekly", timezone="Asia/Kolkata")
    for day in ("2026-11-23", "2026-11-26", "2026-11-29"):
        period = parse_period(weekly, day)
        assert period.start_local.strftime("%A %Y-%m-%d %H:%M") == "Monday 2026-11-23 00:00"
        assert period.start_utc == datetime(2026, 11, 22, 18, 30, tzinfo=UTC)
    dst_week = parse_period(tenant(interval="weekly"), "2026-03-29")
    assert dst_week.duration == timedelta(days=7, hours=-1)


def test_hourly_due_time_counts_real_minutes_over_the_autumn_change() -> None:
    hourly = tenant(interval="hourly", run_at="00:15")
    merged = period_containing(hourly, datetime(2026, 10, 25, 0, 30, tzinfo=UTC))
    assert due_at(hourly, merged) == datetime(2026, 10, 25, 2, 15, tzinfo=UTC)


def test_sample_periods_are_consecutive_runs() -> None:
    for interval in ("hourly", "daily", "weekly"):
        periods = sample_periods(tenant(interval=interval))
        assert len(set(periods)) == len(periods)


def test_periods_of_the_autumn_night_are_told_apart() -> None:
    hourly = tenant(interval="hourly")
    a = period_containing(hourly, datetime(2026, 10, 25, 0, 30, tzinfo=UTC))
    b = a.next()
    assert a != b and len({a, b}) == 2
    assert re.fullmatch(r"2026-10-25T0[23]", b.label)
