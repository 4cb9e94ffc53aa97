"""Periods: hourly, daily or weekly spans of local wall-clock time, as exact UTC bounds.

A period is ``[start, end)`` in the tenant's timezone. Periods follow the wall clock: a day on a DST
change lasts 23 or 25 hours, and the repeated hour of an autumn night is one two-hour period (its two
halves would otherwise get the same file name). Every real UTC offset is a whole number of quarter
hours, so every bound falls on a UTC quarter hour.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from activity_export.errors import ConfigError

EARLIEST_NOW = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_NOW = datetime(2999, 12, 31, tzinfo=UTC)


class HasSchedule(Protocol):
    @property
    def brand(self) -> str: ...

    @property
    def interval(self) -> str: ...

    @property
    def timezone(self) -> str: ...

    @property
    def zone(self) -> ZoneInfo: ...

    @property
    def run_at_time(self) -> time: ...


def _localize(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant a wall-clock time names; a time skipped by DST maps to the moment of the jump."""
    # fold=0: a repeated autumn wall time means its first occurrence
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC).astimezone(zone)


def _floor(wall: datetime, interval: str) -> datetime:
    if interval == "hourly":
        return wall.replace(minute=0, second=0, microsecond=0, tzinfo=None, fold=0)
    day = wall.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None, fold=0)
    if interval == "weekly":
        day -= timedelta(days=day.weekday())
    return day


def _step(wall: datetime, interval: str) -> datetime:
    return wall + {"hourly": timedelta(hours=1), "daily": timedelta(days=1)}.get(interval, timedelta(days=7))


@dataclass(frozen=True, eq=False)
class Period:
    """One period of one tenant's schedule.

    Two periods are equal when they cover the same UTC span on the same schedule (aware datetimes
    in one zone compare by wall time, which would make the two 02:00 of an autumn night equal).
    """

    interval: str
    zone: ZoneInfo
    start_local: datetime  # aware, in ``zone``
    end_local: datetime  # aware, in ``zone``
    # a period that does not start on the schedule's own boundary (the first one after a schedule
    # change, ``plan.transition_period``) may be named after the boundary it runs up to
    named_local: datetime | None = None

    @property
    def name_local(self) -> datetime:
        """The local time its file names are rendered from."""
        return self.named_local or self.start_local

    @property
    def start_utc(self) -> datetime:
        return self.start_local.astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        return self.end_local.astimezone(UTC)

    @property
    def duration(self) -> timedelta:
        return self.end_utc - self.start_utc

    @property
    def label(self) -> str:
        """How people write this period: ``2026-11-25``, or ``2026-11-25T13`` when hourly."""
        fmt = "%Y-%m-%dT%H" if self.interval == "hourly" else "%Y-%m-%d"
        return self.start_local.strftime(fmt)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Period):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _key(self) -> tuple[str, str, datetime, datetime]:
        return (self.interval, str(self.zone), self.start_utc, self.end_utc)

    def next(self) -> Period:
        return _period_from_wall(self.interval, self.zone, _step(self._start_wall, self.interval))

    @property
    def _start_wall(self) -> datetime:
        # the nominal wall start: a start moved by a DST jump (Santiago's midnight becomes 01:00)
        # must not move every following period
        return _floor(self.name_local.replace(tzinfo=None, fold=0), self.interval)


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
            f"tenant {tenant.brand}: period {text!r} carries an offset; give local time in {tenant.timezone}"
        )
    if not EARLIEST_NOW.year <= moment.year <= LATEST_NOW.year - 1:
        raise ConfigError(
            f"tenant {tenant.brand}: period {text!r} must lie between {EARLIEST_NOW:%Y-%m-%d} and "
            f"{LATEST_NOW.year - 1}-12-31"
        )
    return period_containing(tenant, moment)


def parse_now(text: str) -> datetime:
    """``--now``: ISO 8601 with an offset, e.g. ``2026-11-26T07:00:00+01:00``."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ConfigError(f"--now {text!r}: expected ISO 8601 with an offset, e.g. 2026-11-26T07:00:00+01:00")
    if not EARLIEST_NOW <= moment <= LATEST_NOW:
        # period arithmetic near year 1 or 9999 leaves what datetime (and DuckDB) can represent
        raise ConfigError(
            f"--now {text!r}: must lie between {EARLIEST_NOW:%Y-%m-%d} and {LATEST_NOW:%Y-%m-%d}"
        )
    return moment


def due_at(tenant: HasSchedule, period: Period) -> datetime:
    """When a finished period is due: its end plus ``run_at`` (minutes only for hourly tenants)."""
    run_at = tenant.run_at_time
    if period.interval == "hourly":
        # in UTC: wall-clock arithmetic on an aware datetime would ignore a DST change
        return (period.end_utc + timedelta(minutes=run_at.minute)).astimezone(period.zone)
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


# Local wall times the file-name check renders periods around: both DST changes of Europe, a year
# end, and the same dates a year later (a name without the year collides with those).
_SAMPLE_ANCHORS = tuple(
    datetime(year, month, day, 1, 30) for year in (2026, 2027) for month, day in ((3, 29), (10, 25), (12, 31))
)
_SAMPLE_LENGTH = {"hourly": 50, "daily": 10, "weekly": 6}


def sample_periods(tenant: HasSchedule) -> list[Period]:
    """Runs of consecutive periods around DST changes and year ends, in two years.

    Configuration validation renders file names for these: two periods with one name (a daily
    name without the day, an hourly one without the hour) would overwrite each other's files.
    """
    periods = []
    for anchor in _SAMPLE_ANCHORS:
        period = period_containing(tenant, anchor)
        for _ in range(_SAMPLE_LENGTH[tenant.interval]):
            periods.append(period)
            period = period.next()
    return periods


def periods_between(first: Period, last: Period) -> list[Period]:
    """``first`` up to and including ``last``, in order."""
    periods = [first]
    while periods[-1].start_utc < last.start_utc:
        periods.append(periods[-1].next())
    return periods
