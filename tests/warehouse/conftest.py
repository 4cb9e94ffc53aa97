"""Tests on PostgreSQL (and DuckDB) warehouses, built by dbt or filled by hand: marked ``postgres``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support.markers import mark_folder
from tests.support.postgres import fresh_database


@pytest.hookimpl(tryfirst=True)  # before -m deselects on the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_folder(items, Path(__file__).parent, "postgres")


@pytest.fixture(scope="module")
def new_database() -> Iterator[Callable[[], str]]:
    """Creates fresh PostgreSQL databases on demand; drops them after the module."""
    with ExitStack() as created:
        yield lambda: created.enter_context(fresh_database("aexp_models"))
