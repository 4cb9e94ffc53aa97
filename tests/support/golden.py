"""The golden warehouse: small literal export relations behind the golden files in tests/golden/.

The export relations are created with the columns and types of
``models/exports/_exports__models.yml`` and filled with a handful of literal rows, so the golden
files do not depend on the generator or on dbt. ``GOLDEN_CASES`` names each case's tenant settings
and period; the writer tests compare what it makes of them with the files.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path
from typing import Any

import duckdb
import pytest

from activity_export.config import Tenant, parse_config

GOLDEN = Path(__file__).resolve().parent.parent / "golden"

# Column lists and types as in models/exports/_exports__models.yml (contracts enforced there).
EXPORT_RELATIONS_DDL = """
create table main.export_activities (
    event_id bigint not null, brand varchar(64) not null, broadcast_id bigint, customer_id bigint,
    external_id text, email text, activity varchar(32), occurred_at timestamp with time zone,
    registered_at timestamp with time zone, description text, url text, message text, os text,
    device text, browser text, user_agent text, available_at timestamp with time zone
);
create table main.export_broadcasts (
    broadcast_id bigint not null, brand varchar(64), broadcast_type varchar(64), description text,
    subject text, sent_at timestamp with time zone, campaign_id bigint, from_address text
);
create table main.export_broadcast_touches (
    broadcast_id bigint, brand varchar(64), touched_at timestamp with time zone
);
create table main.export_watermark (
    brand varchar(64), complete_until timestamp with time zone, held_events bigint,
    held_since timestamp with time zone, registered_until timestamp with time zone,
    loaded_until timestamp with time zone
);
create table main.export_erasures (
    brand varchar(64) not null, customer_id bigint not null, erased_at timestamp with time zone not null
);
create table main.export_held_events (
    event_id bigint not null, brand varchar(64) not null, broadcast_id bigint, customer_id bigint,
    registered_at timestamp with time zone, missing varchar(16)
);
"""

# Touches derived the way export_broadcast_touches defines them: per UTC quarter hour in which a
# broadcast was sent or had an activity become available (here: at its registration).
TOUCHES_SQL = """
update main.export_activities set available_at = registered_at where available_at is null;
delete from main.export_broadcast_touches;
insert into main.export_broadcast_touches
select distinct broadcast_id, brand, time_bucket(interval 15 minutes, moment) as touched_at
from (
    select broadcast_id, brand, available_at as moment from main.export_activities
    union all
    select broadcast_id, brand, sent_at from main.export_broadcasts where sent_at is not null
);
delete from main.export_watermark;
insert into main.export_watermark
select distinct brand, timestamptz '2027-01-01 00:00:00+00', 0, null, null, null from main.export_activities;
"""

BROADCASTS = [
    # broadcast_id, brand, type, description, subject, sent_at (UTC), campaign_id, from_address
    (
        101,
        "GOLD",
        "SINGLE",
        "Winter sale; 50% off",
        'Hi {$firstname}, "cold" deals',
        "2026-11-25 08:00:00",
        7,
        "news@gold.example",
    ),
    (102, "GOLD", "CAMPAIGN", "Welkom | series", "Line one\r\nline two", "2025-11-20 09:00:00", None, None),
    (
        103,
        "GOLD",
        "QUICKMAIL",
        "Sent today, no activity yet",
        "",
        "2026-11-25 22:30:00",
        8,
        "quick@gold.example",
    ),
    (
        104,
        "GOLD",
        "SPLITRUN",
        "Tab\there",
        "Ünïcödé 😀 – “quotes”",
        "2026-03-28 23:30:00",
        None,
        "split@gold.example",
    ),
    (105, "GOLD", "SINGLE", "Herfst", "Autumn night", "2026-10-25 01:15:00", 9, None),
    (106, "GOLD", "SINGLE", "Kolkata hour", None, "2026-11-25 07:45:00", None, None),
    (107, "GOLD", "SINGLE", "Never sent", "Draft", None, None, None),
    (201, "OTHER", "SINGLE", "Another brand", "Not yours", "2026-11-25 10:00:00", 1, None),
]

UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"
BOUNCE = "550 5.1.1 <d@x.nl>: Recipient address rejected:\nUser unknown in virtual mailbox"
COMPLAINT = 'Spam; "abuse" report\r\nsecond line'
URL = 'https://gold.example/p?a=1;b=2|c=\t3&d="4"'


def _event(
    event_id: int,
    broadcast_id: int,
    customer_id: int,
    activity: str,
    occurred: str,
    registered: str,
    *,
    brand: str = "GOLD",
    external_id: str | None = None,
    email: str | None = None,
    description: str | None = None,
    url: str | None = None,
    message: str | None = None,
    os_name: str | None = None,
    device: str | None = None,
    browser: str | None = None,
    user_agent: str | None = None,
) -> tuple[Any, ...]:
    return (
        event_id,
        brand,
        broadcast_id,
        customer_id,
        external_id,
        email,
        activity,
        occurred,
        registered,
        description,
        url,
        message,
        os_name,
        device,
        browser,
        user_agent,
    )


ACTIVITIES = [
    # 2026-11-25 in Europe/Amsterdam is [2026-11-24 23:00, 2026-11-25 23:00) UTC
    _event(
        1001,
        101,
        1,
        "BROADCAST",
        "2026-11-25 08:00:05",
        "2026-11-25 08:00:06",
        external_id="K-1",
        email="a@x.nl",
    ),
    _event(
        1002,
        101,
        2,
        "OPEN",
        "2026-11-25 09:15:00",
        "2026-11-25 09:15:01",
        email="b@x.nl",
        os_name="iOS",
        device="mobile",
        browser="Apple Mail",
        user_agent=UA,
    ),
    _event(
        1003,
        101,
        3,
        "CLICK",
        "2026-11-25 09:20:00",
        "2026-11-25 09:20:30",
        external_id="",
        email="c@x.nl",
        description=URL,
        url=URL,
        os_name="Windows",
        device="desktop",
        browser="Edge",
        user_agent="",
    ),
    _event(
        1004, 102, 1, "OPEN", "2026-11-25 12:00:00", "2026-11-25 12:00:01", external_id="K-1", email="a@x.nl"
    ),
    _event(
        1005,
        101,
        4,
        "HARDBOUNCE",
        "2026-11-24 22:59:59",
        "2026-11-25 03:00:00",
        external_id="K-4",
        email="d@x.nl",
        description=BOUNCE,
        message=BOUNCE,
    ),
    _event(1006, 101, 5, "OPEN", "2026-11-24 20:00:00", "2026-11-24 22:59:59", email="e@x.nl"),
    _event(
        1007,
        101,
        6,
        "CLICK",
        "2026-11-25 22:50:00",
        "2026-11-25 23:00:00",
        email="f@x.nl",
        description="https://late.example",
        url="https://late.example",
    ),
    _event(
        1008,
        101,
        7,
        "UNSUBSCRIBE",
        "2026-11-25 22:59:59",
        "2026-11-25 22:59:59",
        external_id="K-7",
        email="g@x.nl",
    ),
    _event(
        1009,
        101,
        8,
        "COMPLAINT",
        "2026-11-25 10:00:00",
        "2026-11-25 10:05:00",
        external_id="K;8",
        email="h@x.nl",
        description=COMPLAINT,
        message=COMPLAINT,
    ),
    _event(
        1010,
        101,
        9,
        "SOFTBOUNCE",
        "2026-11-25 09:20:00",
        "2026-11-25 09:21:00",
        external_id='K"9',
        email="i@x.nl",
        description="mailbox full",
        message="mailbox full",
    ),
    # Asia/Kolkata 2026-11-25T13 is [07:30, 08:30) UTC
    _event(1011, 106, 10, "OPEN", "2026-11-25 07:29:00", "2026-11-25 07:29:59", email="j@x.nl"),
    _event(1012, 106, 10, "OPEN", "2026-11-25 07:29:30", "2026-11-25 07:30:00", email="j@x.nl"),
    _event(
        1013,
        106,
        11,
        "CLICK",
        "2026-11-25 08:29:00",
        "2026-11-25 08:29:59",
        email="k@x.nl",
        description="https://in.example",
        url="https://in.example",
    ),
    _event(1014, 106, 11, "OPEN", "2026-11-25 08:30:00", "2026-11-25 08:30:00", email="k@x.nl"),
    _event(
        2001, 201, 1, "OPEN", "2026-11-25 10:00:00", "2026-11-25 10:00:00", brand="OTHER", email="other@x.nl"
    ),
    # 2026-03-29 in Amsterdam: [2026-03-28 23:00, 2026-03-29 22:00) UTC, 23 hours
    _event(1101, 104, 12, "OPEN", "2026-03-28 22:59:59", "2026-03-28 22:59:59", email="l@x.nl"),
    _event(1102, 104, 12, "OPEN", "2026-03-28 23:00:00", "2026-03-28 23:00:00", email="l@x.nl"),
    _event(
        1103,
        104,
        13,
        "CLICK",
        "2026-03-29 00:59:00",
        "2026-03-29 00:59:59",
        email="m@x.nl",
        description="https://spring.example",
        url="https://spring.example",
    ),
    _event(1104, 104, 13, "OPEN", "2026-03-29 01:00:00", "2026-03-29 01:00:00", email="m@x.nl"),
    _event(1105, 104, 14, "OPEN", "2026-03-29 21:59:59", "2026-03-29 21:59:59", email="n@x.nl"),
    _event(1106, 104, 14, "OPEN", "2026-03-29 22:00:00", "2026-03-29 22:00:00", email="n@x.nl"),
    # 2026-10-25 in Amsterdam: [2026-10-24 22:00, 2026-10-25 23:00) UTC, 25 hours
    _event(1201, 105, 15, "OPEN", "2026-10-24 21:59:59", "2026-10-24 21:59:59", email="o@x.nl"),
    _event(1202, 105, 15, "OPEN", "2026-10-24 22:00:00", "2026-10-24 22:00:00", email="o@x.nl"),
    _event(1203, 105, 16, "OPEN", "2026-10-25 00:30:00", "2026-10-25 00:30:00", email="p@x.nl"),
    _event(
        1204,
        105,
        16,
        "CLICK",
        "2026-10-25 01:30:00",
        "2026-10-25 01:30:00",
        email="p@x.nl",
        description="https://autumn.example",
        url="https://autumn.example",
    ),
    _event(1205, 105, 17, "OPEN", "2026-10-25 22:59:59", "2026-10-25 22:59:59", email="q@x.nl"),
    _event(1206, 105, 17, "OPEN", "2026-10-25 23:00:00", "2026-10-25 23:00:00", email="q@x.nl"),
]


# Customer 2 is erased the day after 2026-11-25: a file of that day written now has no address for
# it. Customer 99 (no activity) is erased on 2026-11-25; OTHER's customer 1 is not GOLD's.
ERASURES = [
    ("GOLD", 2, "2026-11-26 10:00:00"),
    ("GOLD", 99, "2026-11-25 12:00:00"),
    ("OTHER", 1, "2026-11-25 12:00:00"),
]


def create_export_relations(con: duckdb.DuckDBPyConnection) -> None:
    """The export relations, empty, in schema main."""
    con.execute("set timezone = 'UTC'")
    con.execute(EXPORT_RELATIONS_DDL)


def fill_export_relations(
    con: duckdb.DuckDBPyConnection,
    activities: list[tuple[Any, ...]],
    broadcasts: list[tuple[Any, ...]],
) -> None:
    """Replace the relations' rows (UTC timestamps given as text) and derive touches/watermark."""
    con.execute("delete from main.export_activities")
    con.execute("delete from main.export_broadcasts")
    con.execute("delete from main.export_erasures")
    con.executemany(
        "insert into main.export_erasures values (?, ?, cast(? || '+00' as timestamptz))", ERASURES
    )
    if activities:
        con.executemany(
            "insert into main.export_activities values "
            "(?, ?, ?, ?, ?, ?, ?, cast(? || '+00' as timestamptz), "
            "cast(? || '+00' as timestamptz), ?, ?, ?, ?, ?, ?, ?, null)",
            activities,
        )
    if broadcasts:
        con.executemany(
            "insert into main.export_broadcasts values "
            "(?, ?, ?, ?, ?, cast(? || '+00' as timestamptz), ?, ?)",
            broadcasts,
        )
    con.execute(TOUCHES_SQL)


def tenant(**settings: Any) -> Tenant:
    raw = {"tenants": {"GOLD": {"destination": {"type": "local", "root": "/unused"}, **settings}}}
    return parse_config(raw, Path("tenants.yml")).tenant("GOLD")


def make_golden_database(path: Path) -> Path:
    """A DuckDB file at ``path`` holding only the literal rows above."""
    with duckdb.connect(str(path)) as con:
        create_export_relations(con)
        fill_export_relations(con, ACTIVITIES, BROADCASTS)
    return path


def decompressed(path: Path) -> bytes:
    """A file's content, decompressed by the standard tools (gzip module, zstd command)."""
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        assert data[:2] == b"\x1f\x8b", path
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        assert data[:4] == b"\x28\xb5\x2f\xfd", path
        zstd = shutil.which("zstd")
        if zstd is None:
            pytest.fail("the zstd command is needed to check .zst files: apt-get install zstd")
        return subprocess.run([zstd, "-dc", str(path)], capture_output=True, check=True).stdout
    return data


GOLDEN_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "default": ({}, "2026-11-25"),
    "pipe_delimiter": ({"delimiter": "|"}, "2026-11-25"),
    "tab_delimiter": ({"delimiter": "\\t"}, "2026-11-25"),
    "no_header": ({"header": False}, "2026-11-25"),
    "gzip": ({"compression": "gzip"}, "2026-11-25"),
    "zstd": ({"compression": "zstd"}, "2026-11-25"),
    "extras_renamed_manifest": (
        {
            "extra_fields": {
                "activity": [
                    "eventid",
                    "registereddate",
                    "url",
                    "message",
                    "os",
                    "device",
                    "browser",
                    "useragent",
                ],
                "broadcast": ["fromaddress", "campaignid"],
            },
            "columns": {
                "activity": {"externalid": "klantnummer", "registereddate": "geregistreerd"},
                "broadcast": {"sentdate": "verzonden", "campaignid": "campagne"},
            },
            "folder": "{kind}/{period:%Y}/{period:%m}",
            "manifest": True,
            "compression": "gzip",
        },
        "2026-11-25",
    ),
    "hourly_kolkata": ({"interval": "hourly", "timezone": "Asia/Kolkata"}, "2026-11-25T13"),
    "dst_spring_amsterdam": ({}, "2026-03-29"),
    "dst_autumn_amsterdam": ({}, "2026-10-25"),
    # the repeated hour of the autumn night: 1203 and 1204 both happened at 02:30 local time
    "dst_autumn_amsterdam_offset": ({"timestamps": "offset"}, "2026-10-25"),
    "dst_autumn_amsterdam_utc": ({"timestamps": "utc"}, "2026-10-25"),
    "hourly_kolkata_offset": (
        {"interval": "hourly", "timezone": "Asia/Kolkata", "timestamps": "offset"},
        "2026-11-25T13",
    ),
    "erasures_manifest": (
        {"erasures": True, "manifest": True, "extra_fields": {"activity": ["eventid"]}},
        "2026-11-25",
    ),
}
