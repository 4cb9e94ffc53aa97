"""The simulated world of the exactly-once simulation, seeded: one seed, one world.

Three brands in three timezones and three intervals, e-mail, sms and page broadcasts, customers,
and events of every type, some of them unknown; and when each raw row reaches the warehouse:
registered seconds to days after it happened, committed minutes to hours later and out of order,
a backlog after an outage, replays of the same event id, and broadcasts, customers and erasures of
customers that arrive after their events. And the rows that must not stop or fool the export:
events of one brand stamped by a wrong clock (registered days or years ahead, or loaded years
ahead), erased customers whose address and number are in their bounce messages and tracked links,
e-mail broadcasts without activity whose rows arrive after their brand's watermark passed their
send, and rows committed out of order beyond the incremental read window's lookback.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

SIM_START = datetime(2026, 10, 12, tzinfo=UTC)  # a Monday
SIM_END = datetime(2026, 11, 8, tzinfo=UTC)  # every event is registered before this
SENTINEL_AT = datetime(2026, 11, 9, 6, tzinfo=UTC)  # after New York's last week of activity ends
FINAL_BUILD = SENTINEL_AT + timedelta(minutes=30)
FINAL_RUN = SENTINEL_AT + timedelta(hours=5, minutes=30)  # due periods past the watermark: not overdue
SENTINEL_IDS = 9_000_000
SPECIAL_IDS = 8_000_000  # the events of the cases below, after the random ones
LATE_BROADCASTS = 100  # broadcast ids from brand * 1000 + 100: e-mail broadcasts nobody acts on
CLOCK_SKEW = timedelta(minutes=5)  # dbt var clock_skew_minutes
YEARS_AHEAD = datetime(2029, 3, 14, 9, tzinfo=UTC)  # a wrong clock: this time never comes in the month
WRONG_CLOCK_BRAND = "AMSTEL"  # the one brand with future-dated rows

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
    visible_at: datetime  # when the warehouse first knows it: its raw.customers or raw.erasures row
    erased_at: datetime | None = None  # erased under the GDPR (right to erasure)
    erasure_visible_at: datetime | None = None  # when its raw.erasures row arrives
    in_customers: bool = True  # has a raw.customers row (an erased one may never have had one)

    @property
    def erased(self) -> bool:
        return self.erased_at is not None

    @property
    def work_email(self) -> str:
        """A second address of its own that some mailings went to."""
        local, domain = self.email.split("@")
        return f"{local}.werk@{domain}"

    def personal(self) -> list[str]:
        """What identifies it in a file: its addresses and the brand's customer number."""
        return [self.email, self.work_email, self.external_id]


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
    loaded_at: datetime  # the ingestion tool's stamp: at or before the commit (or a wrong clock)
    # committed after a build with a load time older than that build's read window (its newest
    # load less lookback_hours): the loader fixes loaded_at and visible_at at that moment
    beyond_lookback: bool = False


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

    def trusted_by(self, event: Event, built: datetime, with_loaded_at: bool) -> bool:
        """Whether the build with clock ``built`` trusts the event: the first of its rows committed
        by then (earliest registration) is registered, and loaded when builds read a load time,
        no later than the clock plus the skew. Otherwise the build quarantines it."""
        visible = [d for d in event.deliveries if d.visible_at <= built]
        if not visible:
            return False
        first = min(visible, key=lambda d: (d.registered_at, d.loaded_at))
        stamp = max(first.registered_at, first.loaded_at) if with_loaded_at else first.registered_at
        return stamp <= built + CLOCK_SKEW


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


def _event(
    rng: random.Random,
    customer: Customer,
    broadcast_id: int,
    event_type: str,
    occurred: datetime,
    delivery: Delivery,
) -> Event:
    """An event whose free text carries what identifies the customer, as real ones do: the
    bounce message quotes the address, the tracked link the address and the customer number."""
    email = None
    if rng.random() < 0.2:  # another address than the customer's own
        email = customer.work_email if customer.erased else f"alt{rng.randint(1, 99)}@example.org"
    to = email or customer.email
    return Event(
        0,
        customer.brand,
        broadcast_id,
        customer.customer_id,
        event_type,
        occurred,
        email,
        f'https://shop.example/p?id=1;x="y"&to={to}&kid={customer.external_id}'
        if event_type == "click"
        else None,
        f'mailbox full;\n"550" <{to}>' if event_type in ("softbounce", "hardbounce", "complaint") else None,
        [delivery],
    )


def _email_broadcast(
    rng: random.Random, brand: Brand, broadcasts: dict[int, Broadcast], before: datetime
) -> Broadcast | None:
    """One of the brand's e-mail broadcasts with activity, sent before ``before``."""
    candidates = [
        b
        for b in broadcasts.values()
        if b.brand == brand.code
        and b.channel == "email"
        and b.sent_at < before
        and b.broadcast_id % 1000 < 100
    ]
    return rng.choice(sorted(candidates, key=lambda b: b.broadcast_id)) if candidates else None


def _after_first_send(
    rng: random.Random, brand: Brand, broadcasts: dict[int, Broadcast], low: datetime, high: datetime
) -> datetime:
    """A moment in ``[low, high]``, after the brand's first e-mail broadcast went out when it can."""
    first = min(b.sent_at for b in broadcasts.values() if b.brand == brand.code and b.channel == "email")
    low = max(low, min(first + timedelta(minutes=10), high))
    return low + between(rng, timedelta(0), high - low)


def _special(
    rng: random.Random,
    ids: Iterator[int],
    brand: Brand,
    customer: Customer,
    broadcasts: dict[int, Broadcast],
    event_type: str,
    occurred: datetime,
    delivery: Delivery,
) -> list[Event]:
    broadcast = _email_broadcast(rng, brand, broadcasts, occurred)
    if broadcast is None:
        return []
    event = _event(rng, customer, broadcast.broadcast_id, event_type, occurred, delivery)
    event.event_id = next(ids)
    return [event]


def _erased_customers_text(
    rng: random.Random,
    brand: Brand,
    customers: dict[tuple[str, int], Customer],
    broadcasts: dict[int, Broadcast],
    ids: Iterator[int],
) -> list[Event]:
    """A click and a bounce of each erased customer: customer 11's arrive before its erasure,
    customer 12's are committed after its erasure arrived (written to files after it)."""
    events: list[Event] = []
    for number in (11, 12):
        customer = customers[(brand.code, number)]
        assert customer.erased_at is not None and customer.erasure_visible_at is not None
        for event_type in ("click", "hardbounce"):
            occurred = customer.erased_at - between(rng, timedelta(hours=2), timedelta(hours=20))
            registered = occurred + between(rng, timedelta(0), timedelta(minutes=30))
            visible = registered + between(rng, timedelta(minutes=1), timedelta(minutes=30))
            if number == 12:
                visible = customer.erasure_visible_at + between(rng, timedelta(hours=1), timedelta(days=2))
            delivery = Delivery(registered, min(visible, FINAL_BUILD), min(visible, FINAL_BUILD))
            events += _special(rng, ids, brand, customer, broadcasts, event_type, occurred, delivery)
    return events


def _wrong_clock(
    rng: random.Random,
    brand: Brand,
    customers: dict[tuple[str, int], Customer],
    broadcasts: dict[int, Broadcast],
    ids: Iterator[int],
) -> list[Event]:
    """Events of one brand stamped by a wrong clock upstream: two registered days after they
    reached the warehouse (their time comes during the month), one registered years ahead and one
    loaded years ahead (their time never comes)."""
    events: list[Event] = []
    for ahead in ("days", "days", "registered years", "loaded years"):
        occurred = _after_first_send(
            rng, brand, broadcasts, brand.active_from + timedelta(days=2), SIM_END - timedelta(days=9)
        )
        visible = occurred + between(rng, timedelta(minutes=1), timedelta(hours=1))
        delivery = Delivery(occurred + between(rng, timedelta(0), timedelta(minutes=1)), visible, visible)
        if ahead == "days":
            delivery.registered_at = visible + between(rng, timedelta(days=2), timedelta(days=5))
        elif ahead == "registered years":
            delivery.registered_at = YEARS_AHEAD + between(rng, timedelta(0), timedelta(days=30))
        else:
            delivery.loaded_at = YEARS_AHEAD + between(rng, timedelta(0), timedelta(days=30))
        customer = customers[(brand.code, rng.randint(1, 9))]
        event_type = rng.choice(["open", "click", "softbounce", "unsubscribe"])
        events += _special(rng, ids, brand, customer, broadcasts, event_type, occurred, delivery)
    return events


def _beyond_lookback(
    rng: random.Random,
    brand: Brand,
    customers: dict[tuple[str, int], Customer],
    broadcasts: dict[int, Broadcast],
    ids: Iterator[int],
) -> list[Event]:
    """Two events per brand active long enough whose rows are committed after a build, with a
    load time older than that build's newest load less the lookback (loading.py picks the build)."""
    events: list[Event] = []
    if SIM_END - brand.active_from < timedelta(days=14):
        return events
    for _ in range(2):
        occurred = _after_first_send(
            rng, brand, broadcasts, brand.active_from + timedelta(days=1), SIM_END - timedelta(days=12)
        )
        registered = occurred + between(rng, timedelta(0), timedelta(minutes=10))
        loaded = registered + between(rng, timedelta(minutes=1), timedelta(minutes=20))
        delivery = Delivery(registered, FINAL_BUILD, loaded, beyond_lookback=True)
        customer = customers[(brand.code, rng.randint(1, 9))]
        events += _special(rng, ids, brand, customer, broadcasts, "open", occurred, delivery)
    return events


def _late_broadcasts(rng: random.Random, brand: Brand, broadcasts: dict[int, Broadcast]) -> None:
    """Two e-mail broadcasts per brand active long enough that nobody acts on, whose rows arrive
    12 to 13 days after their send: longer than any stretch without a build, so the brand's
    watermark has passed the send when they arrive."""
    if SIM_END - brand.active_from < timedelta(days=16):
        return
    index = list(BRANDS).index(brand.code)
    for number in (1, 2):
        sent_at = brand.active_from + between(rng, timedelta(days=1), timedelta(days=11))
        broadcast_id = (index + 1) * 1000 + LATE_BROADCASTS + number
        broadcasts[broadcast_id] = Broadcast(
            broadcast_id,
            brand.code,
            rng.choice(["SINGLE", "CAMPAIGN", "QUICKMAIL", "SPLITRUN"]),
            "email",
            f"Laat {number}",
            f"Te laat {number}",
            sent_at,
            sent_at + between(rng, timedelta(days=12), timedelta(days=13)),
        )


def make_world(rng: random.Random) -> World:
    customers: dict[tuple[str, int], Customer] = {}
    broadcasts: dict[int, Broadcast] = {}
    events: list[Event] = []
    for index, brand in enumerate(BRANDS.values()):
        span = SIM_END - timedelta(hours=6) - brand.active_from
        # customer 10 signs up during the month and its row arrives hours to a day after its
        # first events; customer 11 is erased, and its erasure arrives after its last events
        # (it never had a raw.customers row); customer 12 is known from the start and erased
        # during the month, its row stays in raw.customers and some of its events arrive after
        signed_up = brand.active_from + between(rng, span * 0.2, span * 0.7)
        erased = brand.active_from + between(rng, span * 0.2, span * 0.7)
        erased_12 = brand.active_from + between(rng, span * 0.3, span * 0.7)
        for number in range(1, 13):  # the same customer ids in every brand
            known = {10: signed_up + between(rng, timedelta(hours=2), timedelta(hours=30)), 11: erased}
            customer = Customer(
                brand.code,
                number,
                f"{brand.code[:2]}-{number:05d}",
                f"klant{number}@{brand.code.lower()}.example",
                known.get(number, SIM_START),
            )
            if number == 11:
                customer.erased_at = erased - timedelta(hours=1)
                customer.erasure_visible_at = erased
                customer.in_customers = False
            if number == 12:
                customer.erased_at = erased_12
                customer.erasure_visible_at = erased_12 + between(
                    rng, timedelta(minutes=20), timedelta(hours=8)
                )
            customers[(brand.code, number)] = customer
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
                customer = customers[
                    (
                        brand.code,
                        rng.choice(
                            [*range(1, 10)]
                            + ([10] if occurred >= signed_up else [])
                            + ([11] if erased - timedelta(days=2) <= occurred < erased else [])
                            + ([12] if occurred < erased_12 else [])
                        ),
                    )
                ]
                events.append(
                    _event(
                        rng,
                        customer,
                        broadcast_id,
                        event_type,
                        occurred,
                        Delivery(registered, registered, registered),
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

    special = iter(range(SPECIAL_IDS, SENTINEL_IDS))
    for brand in BRANDS.values():
        events += _erased_customers_text(rng, brand, customers, broadcasts, special)
        events += _beyond_lookback(rng, brand, customers, broadcasts, special)
        _late_broadcasts(rng, brand, broadcasts)
    events += _wrong_clock(rng, BRANDS[WRONG_CLOCK_BRAND], customers, broadcasts, special)

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
