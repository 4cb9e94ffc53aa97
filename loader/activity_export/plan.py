"""What a tenant is owed at a moment: due periods since its anchor, split into ready and waiting.

Nothing is ever skipped: every due period from the tenant's anchor on is owed until the ledger
holds it as delivered, failed periods included, oldest first. The anchor is the period holding the
tenant's ``start`` when it has one; otherwise the first period the ledger ever recorded for it
(at its first run: the latest period due then). A due period that is still not delivered
``overdue_after_hours`` after it became due is overdue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import PurePosixPath

from activity_export.config import Tenant
from activity_export.periods import Period, due_at, first_period, period_containing


def schedule_of(tenant: Tenant) -> str:
    """What the ledger remembers of a tenant's schedule: a change of any part moves its periods or
    their due times, so it is never taken silently."""
    return f"{tenant.interval} in {tenant.timezone}, due at {tenant.run_at}"


def kinds_of(tenant: Tenant) -> list[str]:
    """The kinds of file a period of this tenant consists of (its manifest included)."""
    return list(tenant.delivered_kinds())


def anchor_period(
    tenant: Tenant,
    recorded_first: datetime | None,
    now: datetime,
    *,
    moved: bool = False,
    schedule_from: datetime | None = None,
    taken: Callable[[Period], bool] = lambda period: False,
) -> Period:
    """The first period the tenant is owed: its ``start``'s, the recorded one, or the latest due.

    After a destination change was accepted (``moved``), the new destination is owed only the
    periods from the recorded one on, even when ``start`` is earlier. After a schedule change was
    accepted, the first period owed starts where the last one delivered ended (``schedule_from``):
    the part of the new schedule's period that the old schedule's files do not cover.
    """
    if schedule_from is not None:
        since = schedule_from
        if moved and recorded_first is not None:  # a destination accepted later starts later
            since = max(since, recorded_first)
        return transition_period(tenant, since, taken)
    if tenant.start is not None:
        start = period_containing(tenant, datetime.combine(tenant.start, time()))
        if moved and recorded_first is not None and recorded_first > start.start_utc:
            return period_containing(tenant, recorded_first)
        return start
    if recorded_first is not None:
        return period_containing(tenant, recorded_first)
    return first_period(tenant, None, now)


@dataclass(frozen=True)
class Overdue:
    """A due period not delivered long after it became due."""

    period: Period
    due: datetime
    hours: float  # since it became due

    def as_dict(self) -> dict[str, object]:
        return {
            "period": self.period.label,
            "due_at": self.due.isoformat(),
            "hours_overdue": round(self.hours, 1),
        }


@dataclass
class Plan:
    """One tenant's due periods at ``now``, oldest first."""

    anchor: Period
    ready: list[Period] = field(default_factory=list)  # due, complete, not delivered
    waiting: list[Period] = field(default_factory=list)  # due, not complete in the warehouse yet
    delivered: int = 0  # due periods the ledger holds as delivered

    def overdue(self, tenant: Tenant, now: datetime, delivered_now: set[Period]) -> list[Overdue]:
        """Owed periods (ready or waiting) not delivered ``overdue_after_hours`` after their due time."""
        limit = timedelta(hours=tenant.overdue_after_hours)
        found = []
        for period in sorted(self.ready + self.waiting, key=lambda p: p.start_utc):
            if period in delivered_now:
                continue
            due = due_at(tenant, period)
            if now - due >= limit:
                found.append(Overdue(period, due, (now - due).total_seconds() / 3600))
        return found


def plan_periods(
    tenant: Tenant,
    anchor: Period,
    now: datetime,
    complete_until: datetime | None,
    delivered_starts: set[datetime],
    *,
    force: bool = False,
) -> Plan:
    """Every period from ``anchor`` due at ``now``: delivered ones counted, the others ready or waiting.

    A period is ready when the built relations hold everything available up to its end
    (``end <= complete_until``, the brand's watermark); otherwise it waits. With ``force``,
    delivered periods are ready again.
    """
    plan = Plan(anchor)
    period = anchor
    while due_at(tenant, period) <= now:
        if period.start_utc in delivered_starts and not force:
            plan.delivered += 1
        elif complete_until is not None and period.end_utc <= complete_until:
            plan.ready.append(period)
        else:
            plan.waiting.append(period)
        period = period.next()
    return plan


def transition_period(tenant: Tenant, since: datetime, taken: Callable[[Period], bool]) -> Period:
    """The first period after a schedule change: from ``since`` (where the last period delivered
    ended) to the new schedule's next boundary, so nothing is missed and nothing sent twice.

    Its files are named after its own start, unless a delivered file already has that name (a
    timezone moved west: the old last day and the new first hours share a date); then it runs on
    to the end of the following period and is named after that one.
    """
    period = period_containing(tenant, since)
    if period.start_utc == since:
        return period
    start = since.astimezone(period.zone)
    first = Period(period.interval, period.zone, start, period.end_local)
    if not taken(first):
        return first
    following = period.next()
    return Period(period.interval, period.zone, start, following.end_local, following.start_local)


def names_taken(tenant: Tenant, remote_paths: set[str]) -> Callable[[Period], bool]:
    """Whether any file of a period would have the name of a file already delivered."""

    delivered = [PurePosixPath(path).parts for path in remote_paths]

    def taken(period: Period) -> bool:
        for kind in tenant.delivered_kinds():
            name = tenant.relative_path(kind, period).parts  # a path or URL ends with it
            if any(parts[-len(name) :] == name for parts in delivered):
                return True
        return False

    return taken
