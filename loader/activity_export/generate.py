"""Synthetic raw data following the source contract, for demos, tests and benchmarks.

Everything is generated inside DuckDB from ``range()`` with hash-based pseudo-random numbers, so the
same options always give the same rows and memory stays bounded at any size: rows stream from the
generator straight into the target table (a DuckDB file, or PostgreSQL through the attached
database, which the postgres extension loads with binary COPY).

The data covers ``days`` whole days from the first instant (midnight UTC of ``start``, or
``first_at``) and is a snapshot "as of" their end plus ``as_of_hours``, or ``until`` when that is
earlier: an event that would register after that instant is not in the platform yet.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from activity_export.errors import ConfigError
from activity_export.warehouse import Warehouse, one_value

log = logging.getLogger(__name__)

# Per event: which type, in per-mille of all events (the rest of the 1000 are sends).
EVENT_MIX = (
    ("open", 250),
    ("click", 70),
    ("softbounce", 10),
    ("hardbounce", 7),
    ("complaint", 1),
    ("unsubscribe", 3),
    ("forward", 1),  # a type the platform has but the export does not know
)
BROADCASTS_PER_DAY = 8
OLD_BROADCASTS = 12  # sent about a year before the first day; they keep getting opens
OLD_OFFSET = 900_000  # broadcast numbers of the old ones, apart from the daily ones
UNSENT_OFFSET = 999_998
DUPLICATE_PER_MILLE = 2

# Text that breaks naive CSV handling: delimiters, quotes, line breaks, non-ASCII.
SUBJECTS = [
    "Zomer sale; tot 50% korting",
    'Nieuw: de "Winter" collectie',
    "{if $firstname}Hoi {$firstname},{else}Hallo,{/if} uw order",
    "Één dag: €10 korting\nalleen vandaag",
    "Ça va? Grüße aus Köln, 東京 and 🎉",
    "Tab\there, comma, pipe | semicolon;",
    "",
]
DESCRIPTIONS = [
    "Weekly newsletter",
    'Campaign "Black Friday"; wave 2',
    "Quickmail: prijswijziging, info",
    "Split run A/B\r\nvariant B",
    "Rückblick 2026 — élan",
]
URLS = [
    "https://shop.example.nl/p?id=12;13&utm=mail",
    'https://shop.example.nl/search?q="sokken"',
    "https://shop.example.nl/über-uns",
    "https://shop.example.nl/a,b|c\td",
    "https://shop.example.nl/",
]
BOUNCE_MESSAGES = [
    "550 5.1.1 <user@example.nl>: Recipient address rejected; mailbox unavailable",
    '552 5.2.2 Mailbox full: "quota exceeded"',
    "421 4.7.0 Try again later\nRemote host said: greylisted",
    "Boîte pleine — réessayer",
]
COMPLAINT_MESSAGES = ["Complaint via feedback loop (abuse report)", "Spam, says the receiver"]
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
    "Microsoft Outlook 16.0",
]


# What the options may hold. Identifiers reach SQL, so they are checked here, not escaped later.
BRAND_CODE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # as in tenants.yml (config.BRAND_PATTERN)
SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")  # unquoted, the same on DuckDB and PostgreSQL
MAX_DAYS = 3660
MAX_EVENTS_PER_DAY = 100_000_000
MAX_BRANDS = 100_000


@dataclass(frozen=True)
class Plan:
    """What to generate."""

    brands: tuple[str, ...]
    start: date
    days: int
    events_per_day: int
    seed: int = 42
    as_of_hours: int = 6
    first_at: datetime | None = None  # the first day's first instant; default: midnight UTC of start
    until: datetime | None = None  # the snapshot's moment, when earlier than as_of_hours past the end

    @property
    def first_instant(self) -> datetime:
        return self.first_at or datetime.combine(self.start, datetime.min.time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The end of the last day: no event happens at or after it."""
        return self.first_instant + timedelta(days=self.days)

    @property
    def as_of(self) -> datetime:
        """The snapshot's moment: no event registers at or after it."""
        after = self.end + timedelta(hours=self.as_of_hours)
        return min(after, self.until) if self.until is not None else after

    @property
    def customers_per_brand(self) -> int:
        return max(50, min(self.events_per_day // 4, 2_000_000))


def plan_from_options(brands: str, days: int, events_per_day: int, start: str, seed: int) -> Plan:
    """A Plan from command-line text, every value checked (exit 2 naming the option)."""
    codes = tuple(code.strip() for code in brands.split(",") if code.strip())
    if not codes:
        raise ConfigError("--brands: give at least one brand code")
    for code in codes:
        if not BRAND_CODE.fullmatch(code):
            raise ConfigError(
                f"--brands: {code[:70]!r} is not a brand code: 1 to 64 letters, digits, '_' and '-'"
            )
    if len(set(codes)) != len(codes) or len(codes) > MAX_BRANDS:
        raise ConfigError(f"--brands: every code once, at most {MAX_BRANDS:,}")
    if not 1 <= days <= MAX_DAYS:
        raise ConfigError(f"--days {days}: from 1 to {MAX_DAYS}")
    if not 1 <= events_per_day <= MAX_EVENTS_PER_DAY:
        raise ConfigError(f"--events-per-day {events_per_day}: from 1 to {MAX_EVENTS_PER_DAY:,}")
    try:
        first = date.fromisoformat(start)
    except ValueError:
        raise ConfigError(f"--start {start[:40]!r}: expected YYYY-MM-DD") from None
    if not 1970 <= first.year <= 2900:
        raise ConfigError(f"--start {start}: a day from 1970 to 2900")
    if not 0 <= seed < 2**63:
        raise ConfigError(f"--seed {seed}: from 0 to 2**63 - 1")
    return Plan(codes, first, days, events_per_day, seed)


def checked_schema(name: str) -> str:
    """``--raw-schema``: a plain lowercase SQL identifier, so it can never become SQL itself."""
    if not SCHEMA_NAME.fullmatch(name):
        raise ConfigError(
            f"--raw-schema {name[:70]!r}: a schema name of lowercase letters, digits and '_' "
            "(not starting with a digit, at most 63), e.g. raw"
        )
    return name


def _lit(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _pick(values: list[str], index_sql: str) -> str:
    return f"{_lit(values)}[cast(1 + ({index_sql}) % {len(values)} as bigint)]"


def _rand(seed: int, key: str, salt: str) -> str:
    """A uniform number in [0, 1) that depends only on the seed, the row and the salt."""
    return f"(hash({seed}, {key}, '{salt}') % 1000000) / 1000000.0"


def _types_case(roll: str) -> str:
    parts, edge = [], 0
    for name, per_mille in EVENT_MIX:
        edge += per_mille
        parts.append(f"when {roll} < {edge / 1000} then '{name}'")
    return "case " + " ".join(parts) + " else 'sent' end"


def generate(warehouse: Warehouse, plan: Plan, schema: str = "raw") -> dict[str, int]:
    """Replace the raw tables in ``schema`` with the plan's data; return row counts per table.

    The optional ``erasures`` table is made too, without rows (nobody is erased), so that every
    source of the contract exists and ``dbt source freshness`` checks them all, as in production.
    """
    checked_schema(schema)
    for brand in plan.brands:
        if not BRAND_CODE.fullmatch(brand):
            raise ConfigError(f"not a brand code: {brand[:70]!r}")
    con = warehouse.con
    catalog = '"' + warehouse.catalog.replace('"', '""') + '"'
    con.execute(f'create schema if not exists {catalog}."{schema}"')
    counts = {}
    for table, select in (
        ("broadcasts", _broadcasts_sql(plan)),
        ("customers", _customers_sql(plan)),
        ("events", _events_sql(plan)),
        ("erasures", ERASURES_SQL),
    ):
        target = warehouse.relation(table, schema)
        con.execute(f"drop table if exists {target}")
        con.execute(f"create table {target} as {select}")
        counts[table] = one_value(con.execute(f"select count(*) from {target}").fetchone())
        log.info("generated %s: %d rows", target, counts[table])
    return counts


# raw.erasures as the source contract has it, empty
ERASURES_SQL = (
    "select cast(null as varchar) as brand, cast(null as bigint) as customer_id, "
    "cast(null as timestamptz) as erased_at where false"
)


def _brands_sql(plan: Plan) -> str:
    rows = ", ".join(f"(cast({i} as bigint), {_lit([brand])[1:-1]})" for i, brand in enumerate(plan.brands))
    return f"(values {rows}) as brands(brand_index, brand)"


def _broadcasts_sql(plan: Plan) -> str:
    """Per brand: BROADCASTS_PER_DAY a day, OLD_BROADCASTS sent a year earlier, one unsent.

    Numbers do not depend on ``days``: generating one day more leaves the earlier rows unchanged.
    """
    seed, first = plan.seed, plan.first_instant.isoformat()
    key = "brand_index * 1000000 + n"
    return f"""
    with numbered as (
        select brands.brand_index, brands.brand, n
        from {_brands_sql(plan)},
            (select range as n from range({plan.days * BROADCASTS_PER_DAY})
             union all select {OLD_OFFSET} + range from range({OLD_BROADCASTS})
             union all select {UNSENT_OFFSET}) as numbers
    )
    select
        cast(brand_index * 1000000 + n + 1 as bigint) as broadcast_id,
        brand,
        {_pick(["SINGLE", "CAMPAIGN", "QUICKMAIL", "SPLITRUN", "CAMPAIGN"], f"hash({seed}, {key}, 't')")}
            as broadcast_type,
        case
            when n % {BROADCASTS_PER_DAY} = 5 then 'sms'
            when n % {BROADCASTS_PER_DAY} = 6 then 'page'
            else 'email'
        end as channel,
        {_pick(DESCRIPTIONS, f"hash({seed}, {key}, 'd')")} || ' #' || (n + 1) as description,
        case when n % 7 = 3 then null
             else {_pick(SUBJECTS, f"hash({seed}, {key}, 's')")} end as subject,
        case
            when n = {UNSENT_OFFSET} then null  -- a broadcast that is not sent yet
            when n >= {OLD_OFFSET} then
                timestamptz '{first}' - interval 365 day
                + to_seconds(cast((n - {OLD_OFFSET}) * 3600 as bigint))
            else timestamptz '{first}' + to_seconds(cast(
                (n // {BROADCASTS_PER_DAY}) * 86400 + 5 * 3600
                + floor({_rand(seed, key, "h")} * 14 * 3600) as bigint))
        end as sent_at,
        case when n % 3 = 0 then cast(brand_index * 1000 + n // 3 as bigint) end as campaign_id,
        case when n % 2 = 0 then 'nieuws@' || lower(brand) || '.example'
             else '"' || brand || ' Service" <service@example.nl>' end as from_address
    from numbered
    """


def _customers_sql(plan: Plan) -> str:
    seed, count = plan.seed, plan.customers_per_brand
    key = "brand_index * 100000000 + n"
    return f"""
    select
        brand,
        cast(n + 1 as bigint) as customer_id,
        case when {_rand(seed, key, "x")} < 0.3 then null
             else 'K' || lpad(cast(n + 1 as varchar), 8, '0') end as external_id,
        case when n % 97 = 0 then 'jürgen.' || n || '@münchen.example'
             when n % 89 = 0 then null
             else 'klant' || n || '@' || lower(brand) || '.example' end as email
    from {_brands_sql(plan)}, range({count}) as r(n)
    """


def _events_sql(plan: Plan) -> str:
    seed, first = plan.seed, plan.first_instant.isoformat()
    per_day, days = plan.events_per_day, plan.days
    key = "event_key"
    roll = _rand(seed, key, "type")
    today_broadcast = (
        f"brand_index * 1000000 + day * {BROADCASTS_PER_DAY} "
        f"+ hash({seed}, {key}, 'b') % {BROADCASTS_PER_DAY} + 1"
    )
    old_broadcast = f"brand_index * 1000000 + {OLD_OFFSET} + hash({seed}, {key}, 'o') % {OLD_BROADCASTS} + 1"
    recent_cutoff = 1  # device details are only known for recent events: not on the first day
    return f"""
    with base as (
        select
            brands.brand_index,
            brands.brand,
            day,
            i,
            cast(brands.brand_index * 1000000000000 + day * 1000000000 + i as bigint) as event_key
        from {_brands_sql(plan)}, range({days}) as d(day), range({per_day}) as e(i)
    ),
    typed as (
        select *, {_types_case(roll)} as event_type
        from base
    ),
    placed as (
        select
            *,
            cast(case
                when event_type in ('open', 'click') and {_rand(seed, key, "old")} < 0.08
                    then {old_broadcast}
                else {today_broadcast}
            end as bigint) as broadcast_id,
            timestamptz '{first}' + to_seconds(cast(
                day * 86400 + floor({_rand(seed, key, "at")} * 86400) as bigint)) as occurred_at,
            case
                when event_type in ('softbounce', 'hardbounce')
                    then floor({_rand(seed, key, "lag")} * 3 * 86400)
                when {_rand(seed, key, "late")} < 0.01
                    then floor({_rand(seed, key, "lag")} * 2 * 86400)
                else 5 + floor(pow({_rand(seed, key, "lag")}, 3) * 600)
            end as lag_seconds
        from typed
    ),
    events as (
        select
            event_key as event_id,
            brand,
            broadcast_id,
            cast(1 + hash({seed}, {key}, 'c') % {plan.customers_per_brand} as bigint) as customer_id,
            event_type,
            occurred_at,
            occurred_at + to_seconds(cast(lag_seconds as bigint)) as registered_at,
            case when {_rand(seed, key, "e")} < 0.05 then null
                 when {_rand(seed, key, "e")} < 0.06 then 'Ünïcode.Üser@exämple.nl'
                 else 'ontvanger' || (hash({seed}, {key}, 'c') % 100000) || '@example.nl'
            end as email,
            case when event_type = 'click' then {_pick(URLS, f"hash({seed}, {key}, 'u')")} end as url,
            case when event_type in ('open', 'click') and day >= {recent_cutoff}
                 then {_pick(["Windows", "iOS", "Android", "macOS"], f"hash({seed}, {key}, 'os')")}
            end as os,
            case when event_type in ('open', 'click') and day >= {recent_cutoff}
                 then {_pick(["desktop", "mobile", "tablet"], f"hash({seed}, {key}, 'dv')")}
            end as device,
            case when event_type in ('open', 'click') and day >= {recent_cutoff}
                 then {_pick(["Outlook", "Gmail", "Apple Mail", "Chrome"], f"hash({seed}, {key}, 'br')")}
            end as browser,
            case when event_type in ('open', 'click') and day >= {recent_cutoff}
                 then {_pick(USER_AGENTS, f"hash({seed}, {key}, 'ua')")}
            end as user_agent,
            case when event_type in ('softbounce', 'hardbounce')
                    then {_pick(BOUNCE_MESSAGES, f"hash({seed}, {key}, 'm')")}
                 when event_type = 'complaint'
                    then {_pick(COMPLAINT_MESSAGES, f"hash({seed}, {key}, 'm')")}
            end as message,
            {_rand(seed, key, "dup")} < {DUPLICATE_PER_MILLE / 1000} as is_duplicated
        from placed
    ),
    delivered as (
        select * exclude (is_duplicated) from events
        union all
        -- ingestion delivering the same event a second time, a little later
        select * exclude (is_duplicated) replace (
            registered_at + interval 90 second as registered_at
        )
        from events
        where is_duplicated
    )
    select * from delivered
    where registered_at < timestamptz '{plan.as_of.isoformat()}'
    """
