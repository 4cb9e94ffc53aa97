"""Tests that run the command line on dbt-built DuckDB warehouses, without a server: marked ``cli``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.markers import mark_folder


@pytest.hookimpl(tryfirst=True)  # before -m deselects on the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_folder(items, Path(__file__).parent, "cli")
