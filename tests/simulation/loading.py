"""Loading the simulated world into the simulation's warehouse, and building it with dbt.

Raw rows are small literal inserts, committed in random batches and order as ingestion delivers
them; ``Loading`` is mixed into the simulation and works on its world, warehouse and clock. Every
build runs with its clock fixed at the simulated moment (dbt var ``export_now``), so rows stamped
later than that are quarantined until their time has come.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import duckdb
import yaml

from tests.simulation.world import World
from tests.support.postgres import pg_connect
from tests.support.project import ROOT, Project

# how far before the newest load seen a build reads again (dbt var lookback_hours)
LOOKBACK = timedelta(hours=yaml.safe_load((ROOT / "dbt_project.yml").read_text())["vars"]["lookback_hours"])

RAW_TABLES = [
    "create schema raw",
    """create table raw.broadcasts (
        broadcast_id bigint not null, brand text not null, broadcast_type text not null,
        channel text not null, description text, subject text, sent_at timestamptz,
        campaign_id bigint, from_address text)""",
    "create table raw.customers (brand text not null, customer_id bigint not null, external_id text, email text)",
    "create table raw.erasures (brand text not null, customer_id bigint not null, erased_at timestamptz not null)",
    """create table raw.events (
        event_id bigint not null, brand text not null, broadcast_id bigint not null,
        customer_id bigint not null, event_type text not null, occurred_at timestamptz not null,
        registered_at timestamptz not null, email text, url text, os text, device text,
        browser text, user_agent text, message text{loaded_at})""",
]


def _literal(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, datetime):
        return f"timestamptz '{value.astimezone(UTC).isoformat()}'"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _values(rows: list[tuple[object, ...]]) -> str:
    return ",\n".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)


class Warehouse:
    """The simulation's own warehouse: a DuckDB file, or a PostgreSQL database of its own."""

    def __init__(self, project: Project) -> None:
        self.project = project

    def scalar(self, query: str) -> object:
        """The first column of the first row of ``query`` on the warehouse (``{schema}`` names the
        schema dbt builds into)."""
        if self.project.target == "postgres":
            query = query.replace("{schema}", self.project.env.get("DBT_SCHEMA", "analytics"))
            con = pg_connect(self.project.env["PGDATABASE"])
            try:
                with con, con.cursor() as cursor:
                    cursor.execute(query)
                    row = cursor.fetchone()
            finally:
                con.close()
        else:
            with duckdb.connect(self.project.env["ACTIVITY_EXPORT_DUCKDB"], read_only=True) as con:
                row = con.execute(query.replace("{schema}", "main")).fetchone()
        return None if row is None else row[0]

    def execute(self, statements: list[str]) -> None:
        if self.project.target == "postgres":
            con = pg_connect(self.project.env["PGDATABASE"])
            try:
                with con, con.cursor() as cursor:  # one transaction: a batch commits whole
                    for statement in statements:
                        cursor.execute(statement)
            finally:
                con.close()
        else:
            with duckdb.connect(self.project.env["ACTIVITY_EXPORT_DUCKDB"]) as con:
                con.execute("begin")
                for statement in statements:
                    con.execute(statement)
                con.execute("commit")


class Loading:
    """Loads what reached the warehouse by a moment, and runs ``dbt build`` as production would."""

    # the simulation's own state, read and advanced here
    world: World
    rng: random.Random
    project: Project
    warehouse: Warehouse
    with_loaded_at: bool
    loaded_until: datetime
    builds: list[datetime]
    note: Callable[[str], None]

    def load(self, until: datetime) -> None:
        """Commit every raw row that reached the warehouse by ``until``, in random batches and order."""
        since = self.loaded_until
        statements: list[str] = []
        customers = [
            c for c in self.world.customers.values() if c.in_customers and since < c.visible_at <= until
        ]
        if customers:
            rows = [(c.brand, c.customer_id, c.external_id, c.email) for c in customers]
            statements.append(
                "insert into raw.customers (brand, customer_id, external_id, email) values " + _values(rows)
            )
        erasures = [
            c
            for c in self.world.customers.values()
            if c.erasure_visible_at is not None and since < c.erasure_visible_at <= until
        ]
        if erasures:
            rows = [(c.brand, c.customer_id, c.erased_at) for c in erasures]
            statements.append(
                "insert into raw.erasures (brand, customer_id, erased_at) values " + _values(rows)
            )
        broadcasts = [b for b in self.world.broadcasts.values() if since < b.visible_at <= until]
        if broadcasts:
            rows = [
                (
                    b.broadcast_id,
                    b.brand,
                    b.broadcast_type,
                    b.channel,
                    b.description,
                    b.subject,
                    b.sent_at,
                    None,
                    None,
                )
                for b in broadcasts
            ]
            statements.append(
                "insert into raw.broadcasts (broadcast_id, brand, broadcast_type, channel, description, "
                "subject, sent_at, campaign_id, from_address) values " + _values(rows)
            )
        deliveries = [
            (event, delivery)
            for event in self.world.events.values()
            for delivery in event.deliveries
            if since < delivery.visible_at <= until
        ]
        self.rng.shuffle(deliveries)
        columns = "event_id, brand, broadcast_id, customer_id, event_type, occurred_at, registered_at, email, url, message"
        if self.with_loaded_at:
            columns += ", loaded_at"
        batches: list[list[tuple[object, ...]]] = [[]]
        for event, delivery in deliveries:
            row: tuple[object, ...] = (
                event.event_id,
                event.brand,
                event.broadcast_id,
                event.customer_id,
                event.event_type,
                event.occurred_at,
                delivery.registered_at,
                event.email,
                event.url,
                event.message,
            )
            if self.with_loaded_at:
                row += (delivery.loaded_at,)
            batches[-1].append(row)
            if self.rng.random() < 0.05:
                batches.append([])
        statements += [f"insert into raw.events ({columns}) values " + _values(b) for b in batches if b]
        self.rng.shuffle(statements)  # batches commit in any order; each is one transaction
        for statement in statements:
            self.warehouse.execute([statement])
        self.loaded_until = until
        self.note(
            f"{until:%m-%d %H:%M} load: {len(customers)} customers, {len(erasures)} erasures, "
            f"{len(broadcasts)} broadcasts, "
            f"{len(deliveries)} event rows in {sum(1 for b in batches if b)} batches"
        )

    def build(self, at: datetime) -> None:
        self.load(at)
        started = time.monotonic()
        # as in production, without the unit tests (they test the SQL on fixtures, not the data)
        # its clock is the simulated moment, not the machine's: rows stamped later are quarantined
        variables = f'export_now: "{at.isoformat()}"'
        if self.with_loaded_at:
            variables += ", loaded_at_column: loaded_at"
        self.project.build("--vars", "{" + variables + "}")
        self.builds.append(at)
        self.note(f"{at:%m-%d %H:%M} dbt build ({time.monotonic() - started:.1f}s)")
        self.commit_beyond_lookback(at)

    def commit_beyond_lookback(self, built: datetime) -> None:
        """Rows committed out of order beyond the lookback: each waits for the first build whose
        read window (its newest load less the lookback) has passed its registration, and is
        committed after that build with a load time before that window, within the days the
        completeness check counts again. Only the next build can find it."""
        pending = [
            delivery
            for event in self.world.events.values()
            for delivery in event.deliveries
            if delivery.beyond_lookback and delivery.visible_at > built
        ]
        if not pending:
            return
        loaded_until = self.warehouse.scalar("select max(loaded_until) from {schema}.export_watermark")
        if not isinstance(loaded_until, datetime):  # nothing loaded yet
            return
        window = loaded_until.astimezone(UTC) - LOOKBACK
        for delivery in pending:
            if delivery.registered_at >= window - timedelta(hours=1):
                continue
            earliest = max(delivery.registered_at, window - timedelta(days=5))
            delivery.loaded_at = earliest + (window - timedelta(hours=1) - earliest) * self.rng.random()
            delivery.visible_at = built + timedelta(minutes=self.rng.uniform(1, 120))
            self.note(
                f"{built:%m-%d %H:%M} to commit after this build: a row loaded {delivery.loaded_at:%m-%d %H:%M}, "
                f"before the read window from {window:%m-%d %H:%M}"
            )
