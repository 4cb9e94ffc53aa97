"""Quarantined events are reported where an operator and a receiver look: `check` warns per brand,
and every manifest states the brand's quarantined events when its period was exported.

One build, its clock fixed at 2026-11-02 13:00 UTC, over rows of brand A registered "in 2027" or
loaded "in 2027", and of brand B registered "in 2999"; brand C has no data at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import pytest

from activity_export.config import parse_config
from activity_export.manifest import PeriodFacts, data_package
from activity_export.periods import parse_period
from tests.support.bad_rows import build, delivery, raw_project
from tests.support.project import Project

CLOCK = "2026-11-02T13:00:00+00:00"
ROWS = [
    delivery(1, "A", 10, 7, "2026-11-02 12:00:00", "2026-11-02 12:01:00"),
    delivery(2, "B", 30, 8, "2026-11-02 12:30:00", "2026-11-02 12:31:00"),
    delivery(3, "B", 30, 8, "2999-01-01 00:00:00", "2026-11-02 12:32:00"),  # registered in the future
    delivery(13, "A", 10, 7, "2026-11-02 11:00:00", "2027-01-01 00:00:00"),  # loaded in the future
    delivery(14, "A", 10, 7, "2027-03-01 00:00:00", "2026-11-02 12:40:00"),  # registered in the future
]


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    with raw_project(request.param, tmp_path_factory.mktemp(f"quarantine_{request.param}")) as made:
        build(made, ROWS, CLOCK)
        yield made


def _tenants(folder: Path) -> Path:
    config = folder / "tenants.yml"
    config.write_text(
        "defaults:\n  manifest: true\n"
        f"  destination: {{type: local, root: {folder / 'unused'}}}\n"
        "tenants:\n  A: {}\n  B: {}\n  C: {}\n",
        encoding="utf-8",
    )
    return config


def test_check_warns_about_quarantined_events_per_brand(project: Project, tmp_path: Path) -> None:
    checked = project.run("check", "--config", str(_tenants(tmp_path)), *project.cli_args())
    assert checked.returncode == 0  # a warning, not a problem
    warnings = [line for line in checked.stderr.splitlines() if "quarantined" in line]
    assert len(warnings) == 2, checked.stderr
    a, b = warnings
    assert a.startswith("warning: tenant A: 2 e-mail event(s) quarantined")
    assert "the latest at 2027-03-01T00:00:00+00:00" in a
    assert b.startswith("warning: tenant B: 1 e-mail event(s) quarantined")
    assert "the latest at 2999-01-01T00:00:00+00:00" in b
    assert "warning: tenant C: the warehouse holds no data for brand 'C'" in checked.stderr


def test_manifest_states_the_brands_quarantined_events(project: Project, tmp_path: Path) -> None:
    config = _tenants(tmp_path)
    found = {}
    for brand in ("A", "B", "C"):
        out = tmp_path / brand
        project.run(
            "export", "--brand", brand, "--period", "2026-11-02", "--out", str(out), "--config", str(config),
            *project.cli_args(),
        )  # fmt: skip
        [manifest] = out.rglob("manifest_*.json")
        found[brand] = json.loads(manifest.read_text(encoding="utf-8"))["quarantined"]
    assert found == {
        "A": {"events": 2, "latest": "2027-03-01T00:00:00Z"},
        "B": {"events": 1, "latest": "2999-01-01T00:00:00Z"},
        "C": {"events": 0, "latest": None},
    }


def test_manifest_says_null_when_the_warehouse_cannot_tell() -> None:
    raw = {"tenants": {"A": {"manifest": True, "destination": {"type": "local", "root": "/unused"}}}}
    tenant = parse_config(raw, Path("tenants.yml")).tenant("A")
    period = parse_period(tenant, "2026-11-02")
    manifest = PurePosixPath("manifest_A_20261102.json")
    unknown = data_package(tenant, period, [], PeriodFacts(None), manifest)
    assert unknown["quarantined"] is None
    known = PeriodFacts(
        datetime(2026, 11, 2, 12, 30, tzinfo=UTC),
        quarantined_events=3,
        quarantined_latest=datetime(2027, 1, 1, 1, 0, tzinfo=UTC),
    )
    package = data_package(tenant, period, [], known, manifest)
    assert package["quarantined"] == {"events": 3, "latest": "2027-01-01T01:00:00Z"}
    assert list(package).index("quarantined") == list(package).index("heldRows") + 1
