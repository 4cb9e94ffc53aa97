"""The ``activity-export`` command line: parses arguments and calls the loader's modules."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from loader import generate as generator
from loader.build import dbt_build
from loader.config import load_config
from loader.deliver import TenantReport, deliver_due
from loader.errors import ConfigError, ExportError
from loader.periods import parse_period
from loader.warehouse import connect, read_watermark, resolve_target
from loader.writer import write_period

log = logging.getLogger("loader")

app = typer.Typer(
    help="Deliver each tenant's e-mail activity and broadcast files, built with dbt.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

DEMO_START = date(2026, 11, 1)

ConfigOption = Annotated[
    Path, typer.Option("--config", help="Tenant configuration file.", envvar="ACTIVITY_EXPORT_CONFIG")
]
ProjectDirOption = Annotated[
    Path, typer.Option("--project-dir", help="dbt project folder.", envvar="DBT_PROJECT_DIR")
]
ProfilesDirOption = Annotated[
    Path | None,
    typer.Option("--profiles-dir", help="Folder with dbt's profiles.yml.", envvar="DBT_PROFILES_DIR"),
]
TargetOption = Annotated[
    str | None, typer.Option("--target", help="dbt target (default: the profile's).", envvar="DBT_TARGET")
]

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """Turn the domain error into a message on stderr and the contract's exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ExportError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _setup(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log every step.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@app.command()
@reports_errors
def generate(
    brands: Annotated[str, typer.Option(help="Brand codes, comma separated.")] = "BRANDNAAM",
    days: Annotated[int, typer.Option(min=1, help="Number of days.")] = 7,
    events_per_day: Annotated[int, typer.Option(min=1, help="Events per brand per day.")] = 2000,
    start: Annotated[str, typer.Option(help="First day (UTC), YYYY-MM-DD.")] = DEMO_START.isoformat(),
    seed: Annotated[int, typer.Option(help="Same seed, same data.")] = 42,
    raw_schema: Annotated[str, typer.Option(help="Schema for the raw tables.")] = "raw",
    project_dir: ProjectDirOption = Path("."),
    profiles_dir: ProfilesDirOption = None,
    target: TargetOption = None,
) -> None:
    """Write synthetic raw data (broadcasts, customers, events) into a dbt target's warehouse."""
    plan = _plan(brands, days, events_per_day, start, seed)
    warehouse_target = resolve_target(project_dir, profiles_dir, target)
    with connect(warehouse_target, read_only=False) as warehouse:
        counts = generator.generate(warehouse, plan, raw_schema)
    typer.echo(
        f"generated into {warehouse_target}: "
        + ", ".join(f"{table} {count:,} rows" for table, count in counts.items())
    )


@app.command()
@reports_errors
def export(
    brand: Annotated[str, typer.Option(help="Brand code, as in tenants.yml.")],
    period: Annotated[str, typer.Option(help="A local date (or date-time) inside the period.")],
    out: Annotated[Path, typer.Option(help="Folder for the two files.")] = Path("exports"),
    config: ConfigOption = Path("tenants.yml"),
    project_dir: ProjectDirOption = Path("."),
    profiles_dir: ProfilesDirOption = None,
    target: TargetOption = None,
) -> None:
    """Write one period's activity and broadcast files to a folder: no delivery, no ledger."""
    tenant = load_config(config).tenant(brand)
    chosen = parse_period(tenant, period)
    with connect(resolve_target(project_dir, profiles_dir, target)) as warehouse:
        watermark = read_watermark(warehouse)
        if watermark is None or chosen.end_utc > watermark:
            typer.echo(
                f"warning: period {chosen.label} is not complete in the warehouse yet "
                f"(built up to {watermark}); the files may miss rows",
                err=True,
            )
        files = write_period(warehouse, tenant, chosen, out)
    for written in files:
        typer.echo(f"wrote {written.path}: {written.rows} rows, {written.bytes} bytes")


@app.command()
@reports_errors
def demo(
    config: ConfigOption = Path("demo/tenants.yml"),
    days: Annotated[int, typer.Option(min=1, help="Days of demo data.")] = 7,
    events_per_day: Annotated[int, typer.Option(min=1, help="Events per brand per day.")] = 2000,
    project_dir: ProjectDirOption = Path("."),
    profiles_dir: ProfilesDirOption = None,
    target: TargetOption = "duckdb",
) -> None:
    """The main job end to end on the embedded default: generate, dbt build, deliver."""
    tenants = load_config(config).selected(None)
    plan = _plan(",".join(t.brand for t in tenants), days, events_per_day, DEMO_START.isoformat(), 42)
    warehouse_target = resolve_target(project_dir, profiles_dir, target)
    if warehouse_target.kind != "duckdb" or warehouse_target.duckdb_path is None:
        raise ConfigError(
            f"demo runs on the embedded DuckDB default; dbt target {warehouse_target.name!r} is "
            f"{warehouse_target.kind}. Use `generate`, `dbt build` and `export` there instead."
        )
    # a fresh warehouse each time: the incremental relations must not keep another run's data
    for leftover in (warehouse_target.duckdb_path, warehouse_target.duckdb_path.with_suffix(".duckdb.wal")):
        leftover.unlink(missing_ok=True)
    typer.echo(f"1/3 generating {days} days of demo data into {warehouse_target}")
    with connect(warehouse_target, read_only=False) as warehouse:
        generator.generate(warehouse, plan)
    typer.echo("2/3 dbt build (seeds, models, tests)")
    dbt_build(project_dir, profiles_dir, warehouse_target.name)
    typer.echo(f"3/3 delivering every due period as of {plan.as_of.isoformat()}")
    with connect(warehouse_target) as warehouse:
        watermark = read_watermark(warehouse)
        reports = [deliver_due(warehouse, tenant, plan.as_of, watermark) for tenant in tenants]
    _print_summary(reports)


def _plan(brands: str, days: int, events_per_day: int, start: str, seed: int) -> generator.Plan:
    codes = tuple(code.strip() for code in brands.split(",") if code.strip())
    if not codes:
        raise ConfigError("--brands: give at least one brand code")
    try:
        first = date.fromisoformat(start)
    except ValueError:
        raise ConfigError(f"--start {start!r}: expected YYYY-MM-DD") from None
    return generator.Plan(codes, first, days, events_per_day, seed)


def _print_summary(reports: list[TenantReport]) -> None:
    typer.echo("")
    typer.echo(f"{'tenant':<14}{'periods':>8}{'waiting':>8}{'activities':>12}{'broadcasts':>12}{'files':>7}  destination")
    for report in reports:
        files = sum(len(d.files) for d in report.delivered)
        activities = sum(d.rows("activity") for d in report.delivered)
        broadcasts = sum(d.rows("broadcast") for d in report.delivered)
        typer.echo(
            f"{report.tenant.brand:<14}{len(report.delivered):>8}{len(report.waiting):>8}"
            f"{activities:>12,}{broadcasts:>12,}{files:>7}  {report.destination}"
        )


def main() -> None:
    """Console-script entry point."""
    app()
