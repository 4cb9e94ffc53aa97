"""Tests that need OpenSSH's sshd, and the fixtures that start it: marked ``sshd``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.markers import mark_folder
from tests.support.sshd import CuttingProxy, SshdUnavailable, SshServer


@pytest.hookimpl(tryfirst=True)  # before -m deselects on the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_folder(items, Path(__file__).parent, "sshd")


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A running sshd for the whole test session (fails, never skips, when it cannot start)."""
    try:
        server = SshServer(tmp_path_factory.mktemp("sshd")).start()
    except SshdUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sftp_account(sshd_server: SshServer):
    """A factory for fresh chrooted accounts: ``sftp_account(key_type=..., passphrase=..., password=...)``."""
    return sshd_server.add_account


@pytest.fixture
def cutting_proxy(sshd_server: SshServer) -> Iterator[type[CuttingProxy]]:
    """A factory ``cutting_proxy(cut_after=N)`` for proxies to the test sshd; all closed afterwards."""
    proxies: list[CuttingProxy] = []

    def make(cut_after: int | None = None, cut_connections: int = 1) -> CuttingProxy:
        proxy = CuttingProxy(sshd_server.host, sshd_server.port, cut_after, cut_connections)
        proxies.append(proxy)
        return proxy

    yield make  # type: ignore[misc]
    for proxy in proxies:
        proxy.close()
