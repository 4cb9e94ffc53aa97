"""The simulated world of the exactly-once simulation, seeded: one seed, one world.

Three brands in three timezones and three intervals, e-mail, sms and page broadcasts, customers,
and events of every type, some of them unknown; and when each raw row reaches the warehouse:
registered seconds to days after it happened, committed minutes to hours later and out of order,
a backlog after an outage, replays of the same event id, and broadcasts, customers and erasures of
customers that arrive after their events.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

SIM_START = datetime(2026, 10, 12, tzinfo=UTC)  # a Monday
SIM_END = datetime(2026, 11, 8, tzinfo=UTC)  # every event is registered before this
SENTINEL_AT = datetime(2026, 11, 9, 6, tzinfo=UTC)  # after New York's last week of activity ends
FINAL_BUILD = SENTINEL_AT + timedelta(minutes=30)
FINAL_RUN = SENTINEL_AT + timedelta(hours=5, minutes=30)  # due periods past the watermark: not overdue
SENTINEL_IDS = 9_000_000

LABELS = {
    "sent": "BROADCAST",
    "open": "OPEN",
    "click": "CLICK",
    "softbounce": "SOFTBOUNCE",
    "hardbounce": "HARDBOUNCE",
    "complaint": "COMPLAINT",
    "unsubscribe": "UNSUBSCRIBE",
}
EVENT_TYPES = [  # (event_type as the platform writes it, weight)
    ("sent", 30),
    ("open", 28),
    ("click", 14),
    ("softbounce", 4),
    ("hardbounce", 3),
    ("complaint", 2),
    ("unsubscribe", 4),
    ("OPEN", 3),  # staging lower-cases the type
    ("forward", 3),  # unknown: never exported
    ("print", 2),
]


@dataclass(frozen=True)
class Brand:
    code: str
    timezone: str
    interval: str
    start: date | None
    active_from: datetime  # when its broadcasts start going out
    broadcasts: int  # e-mail broadcasts

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def stamp(self, moment: datetime) -> str:
        """The file-name stamp of the period holding ``moment``, computed here, not by the loader."""
        local = moment.astimezone(self.zone)
        if self.interval == "hourly":
            return local.strftime("%Y%m%d%H")
        day = local.date()
        if self.interval == "weekly":
            day -= timedelta(days=day.weekday())
        return day.strftime("%Y%m%d")

    def bounds(self, stamp: str) -> tuple[datetime, datetime]:
        """The UTC ``[start, end)`` of the period a file-name stamp names (wall-clock arithmetic)."""
        if self.interval == "hourly":
            start = datetime.strptime(stamp, "%Y%m%d%H").replace(tzinfo=self.zone)
            step = timedelta(hours=1)
        else:
            start = datetime.strptime(stamp, "%Y%m%d").replace(tzinfo=self.zone)
            step = timedelta(days=7 if self.interval == "weekly" else 1)
        return start.astimezone(UTC), (start + step).astimezone(UTC)

    def next_stamp(self, stamp: str) -> str:
        return self.stamp(self.bounds(stamp)[1])

    def latest_due_stamp(self, now: datetime) -> str:
        """The latest period due at ``now`` with the default run_at (06:00; minute 0 when hourly)."""
        stamp = self.stamp(now)
        while True:
            start, end = self.bounds(stamp)
            if self.interval == "hourly":
                due = end
            else:
                due = datetime.combine(end.astimezone(self.zone).date(), datetime.min.time())
                due = due.replace(hour=6, tzinfo=self.zone).astimezone(UTC)
            if due <= now:
                return stamp
            stamp = self.stamp(start - timedelta(seconds=1))


BRANDS = {
    brand.code: brand
    for brand in (
        # across the DST change of 25 October: a 25-hour day
        Brand(
            "AMSTEL",
            "Europe/Amsterdam",
            "daily",
            date(2026, 10, 13),
            datetime(2026, 10, 12, 23, tzinfo=UTC),
            12,
        ),
        # no start: the first run delivers the latest due week; across the change of 1 November
        Brand("HUDSON", "America/New_York", "weekly", None, datetime(2026, 10, 12, 4, tzinfo=UTC), 12),
        # half-hour offset; activity begins before its start
        Brand("GANGES", "Asia/Kolkata", "hourly", date(2026, 11, 5), datetime(2026, 11, 4, 6, tzinfo=UTC), 5),
    )
}


# --- the world: what the platform holds, and when each row reaches the warehouse -------------------


@dataclass
class Customer:
    brand: str
    customer_id: int
    external_id: str
    email: str
    visible_at: datetime  # of its raw.customers row, or of its raw.erasures row when erased
    erased: bool = False  # erased under the GDPR: never in raw.customers, listed in raw.erasures


@dataclass
class Broadcast:
    broadcast_id: int
    brand: str
    broadcast_type: str
    channel: str
    description: str
    subject: str
    sent_at: datetime
    visible_at: datetime


@dataclass
class Delivery:
    """One row of raw.events: an event as ingestion delivered it (once, or again in a replay)."""

    registered_at: datetime
    visible_at: datetime  # committed: the first build after this sees it
    loaded_at: datetime  # the ingestion tool's stamp: at or before the commit


@dataclass
class Event:
    event_id: int
    brand: str
    broadcast_id: int
    customer_id: int
    event_type: str
    occurred_at: datetime
    email: str | None
    url: str | None
    message: str | None
    deliveries: list[Delivery] = field(default_factory=list)

    @property
    def registered_at(self) -> datetime:
        return min(d.registered_at for d in self.deliveries)


@dataclass
class World:
    customers: dict[tuple[str, int], Customer]
    broadcasts: dict[int, Broadcast]
    events: dict[int, Event]

    def exportable(self, event: Event) -> bool:
        return self.broadcasts[event.broadcast_id].channel == "email" and event.event_type.lower() in LABELS


def between(rng: random.Random, low: timedelta, high: timedelta) -> timedelta:
    return timedelta(seconds=rng.uniform(low.total_seconds(), high.total_seconds()))


def _ingestion_delay(rng: random.Random) -> timedelta:
    """From registration to commit in the warehouse."""
    draw = rng.random()
    if draw < 0.72:
        return between(rng, timedelta(minutes=1), timedelta(minutes=30))
    if draw < 0.90:  # committed out of order, hours later
        return between(rng, timedelta(minutes=30), timedelta(hours=5))
    if draw < 0.97:  # a backlog
        return between(rng, timedelta(days=1), timedelta(days=4))
    return timedelta(days=60)  # stuck until the final catch-up


def make_world(rng: random.Random) -> World:
    customers: dict[tuple[str, int], Customer] = {}
    broadcasts: dict[int, Broadcast] = {}
    events: list[Event] = []
    for index, brand in enumerate(BRANDS.values()):
        span = SIM_END - timedelta(hours=6) - brand.active_from
        # customer 10 signs up during the month and its row arrives hours to a day after its
        # first events; customer 11 is erased, and its erasure arrives after its last events
        signed_up = brand.active_from + between(rng, span * 0.2, span * 0.7)
        erased = brand.active_from + between(rng, span * 0.2, span * 0.7)
        for number in range(1, 12):  # the same customer ids in every brand
            known = {10: signed_up + between(rng, timedelta(hours=2), timedelta(hours=30)), 11: erased}
            customers[(brand.code, number)] = Customer(
                brand.code,
                number,
                f"{brand.code[:2]}-{number:05d}",
                f"klant{number}@{brand.code.lower()}.example",
                known.get(number, SIM_START),
                erased=number == 11,
            )
        channels = ["email"] * brand.broadcasts + ["sms", "sms", "page"]
        for number, channel in enumerate(channels, start=1):
            broadcast_id = (index + 1) * 1000 + number
            sent_at = brand.active_from + between(rng, timedelta(0), span * 0.9)
            visible_at = sent_at - timedelta(minutes=5)
            if rng.random() < 0.25:  # the broadcast row comes after its first events
                visible_at = sent_at + between(rng, timedelta(hours=2), timedelta(hours=36))
            broadcasts[broadcast_id] = Broadcast(
                broadcast_id,
                brand.code,
                rng.choice(["SINGLE", "CAMPAIGN", "QUICKMAIL", "SPLITRUN"]),
                channel,
                f'Nieuwsbrief {number}; "herfst"\nactie' if number % 3 == 0 else f"Mailing {number}",
                "Hallo {$voornaam}, 50% korting" if number % 2 == 0 else f"Onderwerp {number}",
                sent_at,
                visible_at,
            )
            for _ in range(rng.randint(6, 16)):
                event_type = rng.choices([t for t, _ in EVENT_TYPES], [w for _, w in EVENT_TYPES])[0]
                if event_type == "sent":
                    occurred = sent_at + between(rng, timedelta(0), timedelta(minutes=20))
                else:
                    occurred = sent_at + timedelta(hours=rng.expovariate(1 / 18))
                draw = rng.random()
                lag = between(
                    rng,
                    *(
                        (timedelta(0), timedelta(minutes=2))
                        if draw < 0.6
                        else (timedelta(minutes=2), timedelta(hours=3))
                        if draw < 0.9
                        else (timedelta(hours=3), timedelta(days=2))
                    ),
                )
                registered = occurred + lag
                if registered >= SIM_END:
                    continue
                events.append(
                    Event(
                        0,
                        brand.code,
                        broadcast_id,
                        rng.choice(
                            [*range(1, 10)]
                            + ([10] if occurred >= signed_up else [])
                            + ([11] if erased - timedelta(days=2) <= occurred < erased else [])
                        ),
                        event_type,
                        occurred,
                        f"alt{rng.randint(1, 99)}@example.org" if rng.random() < 0.2 else None,
                        'https://shop.example/p?id=1;x="y"' if event_type == "click" else None,
                        'mailbox full;\n"550"'
                        if event_type in ("softbounce", "hardbounce", "complaint")
                        else None,
                        [Delivery(registered, registered, registered)],
                    )
                )

    ids = rng.sample(range(1000, 1000 + 10 * len(events)), len(events))  # ids say nothing about time
    outage_start = SIM_START + between(rng, timedelta(days=4), timedelta(days=22))
    outage_end = outage_start + timedelta(hours=14)
    for event, event_id in zip(events, ids, strict=True):
        event.event_id = event_id
        first = event.deliveries[0]
        registrations = [first.registered_at]
        if rng.random() < 0.08:  # a replay: the same event again, at once or days later
            again = first.registered_at + (
                timedelta(0) if rng.random() < 0.3 else between(rng, timedelta(minutes=1), timedelta(days=3))
            )
            registrations.append(min(again, SIM_END - timedelta(seconds=1)))
        event.deliveries = []
        for registered in registrations:
            visible = registered + _ingestion_delay(rng)
            if outage_start <= visible < outage_end:  # ingestion was down: all of it comes at once
                visible = outage_end + timedelta(days=2)
            visible = min(visible, FINAL_BUILD)  # the final catch-up loads whatever is left
            loaded = visible
            if rng.random() < 0.3:  # stamped when the batch began, committed later
                loaded = max(registered, visible - between(rng, timedelta(0), timedelta(hours=2)))
            event.deliveries.append(Delivery(registered, visible, loaded))

    # one event per brand far after the month, so the final watermark passes every period of it
    for index, brand in enumerate(BRANDS.values()):
        broadcast_id = (index + 1) * 1000 + 1
        events.append(
            Event(
                SENTINEL_IDS + index,
                brand.code,
                broadcast_id,
                1,
                "open",
                SENTINEL_AT,
                None,
                None,
                None,
                [Delivery(SENTINEL_AT, FINAL_BUILD, FINAL_BUILD)],
            )
        )
        broadcasts[broadcast_id].visible_at = min(broadcasts[broadcast_id].visible_at, FINAL_BUILD)
        customers[(brand.code, 1)].visible_at = SIM_START
    return World(customers, broadcasts, {event.event_id: event for event in events})
