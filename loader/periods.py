"""Periods: hourly, daily or weekly spans of local wall-clock time, as exact UTC bounds.

A period is ``[start, end)`` in the tenant's timezone. Periods follow the wall clock: a day on a DST
change lasts 23 or 25 hours, and the repeated hour of an autumn night is one two-hour period (its two
halves would otherwise get the same file name). Every real UTC offset is a whole number of quarter
hours, so every bound falls on a UTC quarter hour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Protocol
from zoneinfo import ZoneInfo

from loader.errors import ConfigError


class HasSchedule(Protocol):
    brand: str
    interval: str
    timezone: str

    @property
    def zone(self) -> ZoneInfo: ...

    @property
    def run_at_time(self) -> time: ...


def _localize(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a wall-clock time names; a time skipped by DST maps to the moment of the jump."""
    return wall.replace(tzinfo=zone).astimezone(timezone.utc).astimezone(zone)


def _floor(wall: datetime, interval: str) -> datetime:
    if interval == "hourly":
        return wall.replace(minute=0, second=0, microsecond=0, tzinfo=None)
    day = wall.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    if interval == "weekly":
        day -= timedelta(days=day.weekday())
    return day


def _step(wall: datetime, interval: str) -> datetime:
    return wall + {"hourly": timedelta(hours=1), "daily": timedelta(days=1)}.get(
        interval, timedelta(days=7)
    )


@dataclass(frozen=True)
class Period:
    """One period of one tenant's schedule."""

    interval: str
    zone: ZoneInfo
    start_local: datetime  # aware, in ``zone``
    end_local: datetime  # aware, in ``zone``

    @property
    def start_utc(self) -> datetime:
        return self.start_local.astimezone(timezone.utc)

    @property
    def end_utc(self) -> datetime:
        return self.end_local.astimezone(timezone.utc)

    @property
    def duration(self) -> timedelta:
        return self.end_utc - self.start_utc

    @property
    def label(self) -> str:
        """How people write this period: ``2026-11-25``, or ``2026-11-25T13`` when hourly."""
        fmt = "%Y-%m-%dT%H" if self.interval == "hourly" else "%Y-%m-%d"
        return self.start_local.strftime(fmt)

    def next(self) -> Period:
        return _period_from_wall(self.interval, self.zone, _step(self._start_wall, self.interval))

    @property
    def _start_wall(self) -> datetime:
        return self.start_local.replace(tzinfo=None)


def _period_from_wall(interval: str, zone: ZoneInfo, start_wall: datetime) -> Period:
    start = _localize(start_wall, zone)
    end = _localize(_step(start_wall, interval), zone)
    if end <= start:  # the skipped wall hour of a spring night: no period of its own
        return _period_from_wall(interval, zone, _step(start_wall, interval))
    return Period(interval=interval, zone=zone, start_local=start, end_local=end)


def period_containing(tenant: HasSchedule, moment: datetime) -> Period:
    """The tenant's period containing ``moment``: an aware instant, or a naive local wall time."""
    zone = tenant.zone
    wall = moment.astimezone(zone).replace(tzinfo=None) if moment.tzinfo else moment
    start_wall = _floor(wall, tenant.interval)
    period = _period_from_wall(tenant.interval, zone, start_wall)
    instant = _localize(wall, zone) if moment.tzinfo is None else moment
    while period.end_utc <= instant:  # a wall time inside a skipped hour belongs to the next one
        period = period.next()
    return period


def parse_period(tenant: HasSchedule, text: str) -> Period:
    """A command-line period: any local date or date-time inside it (``2026-11-25T13``)."""
    value = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}", value):
        value += ":00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(
            f"tenant {tenant.brand}: period {text!r} is not a local date or date-time; "
            "use e.g. 2026-11-25 or 2026-11-25T13"
        ) from None
    if moment.tzinfo is not None:
        raise ConfigError(
            f"tenant {tenant.brand}: period {text!r} carries an offset; give local time "
            f"in {tenant.timezone}"
        )
    return period_containing(tenant, moment)


def parse_now(text: str) -> datetime:
    """``--now``: ISO 8601 with an offset, e.g. ``2026-11-26T07:00:00+01:00``."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ConfigError(
            f"--now {text!r}: expected ISO 8601 with an offset, e.g. 2026-11-26T07:00:00+01:00"
        )
    return moment


def due_at(tenant: HasSchedule, period: Period) -> datetime:
    """When a finished period is due: its end plus ``run_at`` (minutes only for hourly tenants)."""
    run_at = tenant.run_at_time
    if period.interval == "hourly":
        return period.end_local + timedelta(minutes=run_at.minute)
    return _localize(datetime.combine(period.end_local.date(), run_at), period.zone)


def first_period(tenant: HasSchedule, start: date | None, now: datetime) -> Period:
    """The first period to deliver: the one holding ``start``, else the latest due one."""
    if start is not None:
        return period_containing(tenant, datetime.combine(start, time()))
    period = period_containing(tenant, now)
    while due_at(tenant, period) > now:
        period = period_containing(tenant, period.start_utc - timedelta(microseconds=1))
    return period


def due_periods(
    tenant: HasSchedule, start: date | None, now: datetime, watermark: datetime | None
) -> tuple[list[Period], list[Period]]:
    """Periods from ``start`` that are due at ``now``, oldest first, split into ready and waiting.

    A due period is ready when the built relations hold everything registered before its end
    (``end <= watermark``); otherwise it waits for a later run.
    """
    ready: list[Period] = []
    waiting: list[Period] = []
    period = first_period(tenant, start, now)
    while due_at(tenant, period) <= now:
        if watermark is not None and period.end_utc <= watermark:
            ready.append(period)
        else:
            waiting.append(period)
        period = period.next()
    return ready, waiting
