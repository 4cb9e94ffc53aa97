"""File naming: every name rendered for a period reads back as that period, and nothing else does."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from activity_export.config import Tenant, parse_config
from activity_export.naming import (
    delivered_kinds,
    is_partial,
    partial_name,
    period_of_name,
    relative_path,
)
from activity_export.periods import period_containing


def tenant(**settings: Any) -> Tenant:
    raw = {"tenants": {"BRANDNAAM": {"destination": {"type": "local", "root": "out"}, **settings}}}
    return parse_config(raw, Path("tenants.yml")).tenant("BRANDNAAM")


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"interval": "hourly", "timezone": "Europe/Amsterdam"},
        {"interval": "weekly", "compression": "gzip", "manifest": True},
        {"file_name": "{brand}-{kind}-{period:%Y-%m-%d}.{extension}", "folder": "{kind}/{period:%Y}"},
        {"compression": "zstd", "erasures": True, "extension": "txt"},
    ],
)
def test_every_rendered_name_reads_back_as_its_period(settings: dict[str, Any]) -> None:
    configured = tenant(**settings)
    period = period_containing(configured, datetime(2026, 10, 25, 2, 30))  # a DST change night
    for _ in range(30):
        for kind in delivered_kinds(configured):
            path = relative_path(configured, kind, period)
            assert period_of_name(configured, kind, path.name) == period, (kind, str(path))
        period = period.next()


def test_names_of_other_brands_kinds_or_suffixes_are_not_ours() -> None:
    configured = tenant(compression="gzip")
    assert period_of_name(configured, "activity", "activity_BRANDNAAM_20261125.csv.gz") is not None
    for name in (
        "activity_BRANDNAAM_20261125.csv",  # no .gz: not what we deliver
        "activity_OTHER_20261125.csv.gz",
        "broadcast_BRANDNAAM_20261125.csv.gz",  # asked for activity files
        "activity_BRANDNAAM_20261325.csv.gz",  # no 13th month
        "activity_BRANDNAAM_20261125.csv.gz.bak",
        partial_name("activity_BRANDNAAM_20261125.csv.gz"),
    ):
        assert period_of_name(configured, "activity", name) is None, name


def test_a_name_that_is_not_a_period_start_is_not_ours() -> None:
    weekly = tenant(interval="weekly")  # weeks start on Monday: 2026-11-23
    assert period_of_name(weekly, "activity", "activity_BRANDNAAM_20261123.csv") is not None
    assert period_of_name(weekly, "activity", "activity_BRANDNAAM_20261124.csv") is None


def test_partial_names_are_hidden_and_recognised() -> None:
    name = partial_name("activity_BRANDNAAM_20261125.csv")
    assert name.startswith(".")
    assert is_partial(name)
    assert not is_partial("activity_BRANDNAAM_20261125.csv")
