"""The example Airflow DAG, run in .venv-airflow by ``make test-airflow``: marked ``airflow``, which ``make test`` leaves out."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.markers import mark_folder


@pytest.hookimpl(tryfirst=True)  # before -m deselects on the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_folder(items, Path(__file__).parent, "airflow")
