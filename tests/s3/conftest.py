"""Tests that need an S3-compatible store, and the fixture that starts one (SeaweedFS): marked ``s3``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.markers import mark_folder
from tests.support.seaweedfs import SeaweedServer, SeaweedUnavailable


@pytest.hookimpl(tryfirst=True)  # before -m deselects on the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_folder(items, Path(__file__).parent, "s3")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """A running SeaweedFS S3 store for the whole test session (fails, never skips, when it cannot start)."""
    try:
        server = SeaweedServer(tmp_path_factory.mktemp("seaweedfs")).start()
    except SeaweedUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_server: SeaweedServer) -> str:
    """A fresh, empty bucket on the store."""
    return s3_server.new_bucket()
