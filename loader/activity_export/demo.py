"""``demo``: the main job end to end on the embedded default, and nothing but its own files touched.

Its data ends where the demo tenants' yesterday ends, whatever the day: every period due is
complete, so `status` and `run` right after it find nothing owed and nothing overdue. A tenant
without ``start`` is delivered from the first day of that data, which the ledger remembers.

The demo starts from a fresh DuckDB file each time, so it deletes the one the profile points at.
It only does so for a file it made itself (it leaves a marker table in it); any other file, say a
warehouse someone pointed the profile at, is refused unless ``--force``. Likewise it delivers
synthetic data only to a configuration written for the demo: one carrying the demo marker line
whose tenants all deliver to local folders, never to a real tenant's server.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb

from activity_export import generate as generator
from activity_export.config import Config, LocalDestination, Tenant, load_config
from activity_export.errors import ConfigError
from activity_export.warehouse import Warehouse

MARKER_TABLE = "activity_export_demo"
CONFIG_MARKER = "# activity-export: demo configuration"
SEED = 42  # the same data every time for the same days


def demo_plan(tenants: list[Tenant], days: int, events_per_day: int, now: datetime) -> generator.Plan:
    """The demo's data: ``days`` whole days ending at the latest of the tenants' last local
    midnights before ``now``, so that every tenant's yesterday is complete, as the platform holds
    it at ``now`` (yesterday's late registrations come in until six hours after that midnight)."""
    end = max(_local_midnight(tenant.zone, now) for tenant in tenants)
    first = end - timedelta(days=days)
    brands = ",".join(tenant.brand for tenant in tenants)
    plan = generator.plan_from_options(brands, days, events_per_day, first.date().isoformat(), SEED)
    return dataclasses.replace(plan, first_at=first, until=now)


def _local_midnight(zone: ZoneInfo, moment: datetime) -> datetime:
    """The instant the day of ``moment`` began in ``zone`` (a midnight DST skips: the jump)."""
    wall = moment.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
    return wall.astimezone(UTC)


def from_first_day(tenants: list[Tenant], plan: generator.Plan) -> list[Tenant]:
    """The tenants as the demo delivers them: one without ``start`` starts on the first day of the
    demo's data (the local day its first instant is nearest to); the ledger records that period
    as its first, so that a later ``run`` or ``status`` owes it the same days."""
    return [
        tenant
        if tenant.start is not None
        else tenant.model_copy(update={"start": _nearest_day(tenant.zone, plan.first_instant)})
        for tenant in tenants
    ]


def _nearest_day(zone: ZoneInfo, instant: datetime) -> date:
    return (instant + timedelta(hours=12)).astimezone(zone).date()


def check_config_is_the_demos(config: Config, *, own: Path, force: bool, project_dir: Path = Path()) -> None:
    """Refuse a configuration that is not a demo configuration (unless ``force``), saying how to
    mend the demo's ``own`` file when that is the one edited, and pointing at it only while it is
    usable itself."""
    if force:
        return
    found = _not_a_demo(config)
    if found is None:
        return
    why, mend = found
    refused = f"{config.path} is not a demo configuration ({why})"
    if config.path.resolve() == own.resolve():
        raise ConfigError(
            f"{refused}; the demo delivers synthetic data only to a configuration written for it, to "
            f"local folders. To run the demo, {mend} (`git checkout {own}` restores the original), "
            "or pass --force if this really is a demo"
        )
    instead = f"Use the demo's own {own}, or pass" if _usable(own, project_dir) else "Pass"
    raise ConfigError(
        f"{refused}; the demo delivers synthetic data and would send it to these tenants. "
        f"{instead} --force if this really is a demo"
    )


def _not_a_demo(config: Config) -> tuple[str, str] | None:
    """Why ``config`` is not a demo configuration and how to make it one; None when it is one."""
    text = config.path.read_text(encoding="utf-8")
    foreign = [t.brand for t in config.tenants.values() if not isinstance(t.destination, LocalDestination)]
    if foreign:
        return (
            f"tenant {foreign[0]} delivers to a server",
            f"give tenant {foreign[0]} a local destination (type: local, root: a folder) or remove it",
        )
    if CONFIG_MARKER not in text.splitlines():
        return f"it lacks the line {CONFIG_MARKER!r}", f"put back the line {CONFIG_MARKER!r} at its top"
    return None


def _usable(path: Path, project_dir: Path) -> bool:
    """Whether ``path`` is a valid demo configuration, so that a message may send people to it."""
    try:
        return _not_a_demo(load_config(path, project_dir)) is None
    except ConfigError:
        return False


def is_demo_warehouse(path: Path) -> bool:
    """Whether ``path`` is a DuckDB file this demo created (it holds the marker table)."""
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            row = con.execute(
                "select count(*) from information_schema.tables where table_name = ?", [MARKER_TABLE]
            ).fetchone()
    except duckdb.Error:
        return False  # not a DuckDB file, or one in use: not ours to delete
    return bool(row and row[0])


def remove_previous_warehouse(path: Path, *, force: bool) -> None:
    """Delete the demo's previous DuckDB file (and its WAL); refuse any other file unless ``force``."""
    if path.exists() and not force and not is_demo_warehouse(path):
        raise ConfigError(
            f"{path} exists and was not created by `activity-export demo`; the demo starts from a "
            "fresh file and would delete it. Point the dbt profile's duckdb path elsewhere (or "
            "delete the file yourself), or pass --force"
        )
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)


def mark_warehouse(warehouse: Warehouse) -> None:
    """Leave the marker by which a later demo knows this file is its own."""
    warehouse.con.execute(
        f"create or replace table main.{MARKER_TABLE} as "
        "select 'created by activity-export demo; deleted and rebuilt by the next demo' as note"
    )


def remove_previous_ledger(path: Path) -> None:
    """The demo's ledger starts afresh with its warehouse (with SQLite's -wal and -shm files)."""
    for leftover in (path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))):
        leftover.unlink(missing_ok=True)
