"""A month of simulated operations on DuckDB and PostgreSQL: marked ``simulation`` and ``postgres``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.markers import mark_folder


@pytest.hookimpl(tryfirst=True)  # before -m deselects on the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_folder(items, Path(__file__).parent, "simulation", "postgres")
