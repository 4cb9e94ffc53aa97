"""Tenants that log in to the same server as the same account share one SSH connection.

Against the real sshd of tests/support/sshd.py: the connection is seen as the client's TCP port.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest
from paramiko.sftp import CMD_STAT

from activity_export.destinations.sftp import RemotePathError, SftpServer
from activity_export.destinations.ssh import POOL, SESSIONS_PER_CONNECTION
from tests.support.sftp import destination, local_file, sftp_server
from tests.support.sshd import SshServer


def client_port(server: SftpServer) -> int:
    """The local TCP port of the connection a destination's SFTP session runs over."""
    transport = server._ssh._transport
    assert transport is not None, "not connected"
    port: int = transport.sock.getsockname()[1]
    return port


def test_tenants_with_one_account_share_a_connection_each_with_its_own_session(
    sshd_server: SshServer, sftp_account, tmp_path: Path
) -> None:
    account = sftp_account()
    config = destination(sshd_server, account)
    with sftp_server(config) as first, sftp_server(config) as second:
        assert client_port(first) == client_port(second)
        assert first._ssh._sftp is not second._ssh._sftp
        first.publish(local_file(tmp_path, "a.csv"), PurePosixPath("A/a.csv"))
        second.publish(local_file(tmp_path, "b.csv"), PurePosixPath("B/b.csv"))
    assert (account.upload / "A" / "a.csv").read_bytes() == (tmp_path / "a.csv").read_bytes()
    assert (account.upload / "B" / "b.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_other_accounts_never_share_a_connection(
    sshd_server: SshServer, sftp_account, tmp_path: Path
) -> None:
    one, other = sftp_account(), sftp_account()
    with (
        sftp_server(destination(sshd_server, one)) as first,
        sftp_server(destination(sshd_server, other)) as second,
    ):
        assert client_port(first) != client_port(second)
        second.publish(local_file(tmp_path), PurePosixPath("x.csv"))
    assert (other.upload / "x.csv").exists()
    assert not (one.upload / "x.csv").exists()


def test_one_tenants_failure_leaves_the_shared_connection_to_the_others(
    sshd_server: SshServer, sftp_account, tmp_path: Path
) -> None:
    account = sftp_account()
    (account.upload / "locked").mkdir(mode=0o555)
    config = destination(sshd_server, account)
    with sftp_server(config) as failing, sftp_server(config) as fine:
        with pytest.raises(RemotePathError, match="permission denied"):
            failing.publish(local_file(tmp_path, "f.csv"), PurePosixPath("locked/f.csv"))
        fine.publish(local_file(tmp_path, "g.csv"), PurePosixPath("g.csv"))
        failing.publish(local_file(tmp_path, "h.csv"), PurePosixPath("h.csv"))
        assert client_port(failing) == client_port(fine)
    assert sorted(p.name for p in account.upload.iterdir() if p.is_file()) == ["g.csv", "h.csv"]


def test_a_connection_carries_at_most_a_few_sessions(sshd_server: SshServer, sftp_account) -> None:
    config = destination(sshd_server, sftp_account())
    servers = [sftp_server(config) for _ in range(SESSIONS_PER_CONNECTION + 1)]
    try:
        for server in servers:
            server.open()
        ports = [client_port(server) for server in servers]
    finally:
        for server in servers:
            server.close()
    assert len(set(ports[:SESSIONS_PER_CONNECTION])) == 1
    assert ports[-1] != ports[0]


def test_an_idle_connection_is_reused_by_the_next_tenant_and_closed_at_the_end(
    sshd_server: SshServer, sftp_account
) -> None:
    config = destination(sshd_server, sftp_account())
    with sftp_server(config) as first:
        port = client_port(first)
        transport = first._ssh._transport
    with sftp_server(config) as second:
        assert client_port(second) == port
    POOL.close_all()
    assert transport is not None and not transport.is_active()


def sessions_started(server: SshServer) -> int:
    """SFTP sessions sshd started so far (a ``Starting session`` line each, process and all)."""
    return server.log.read_text(errors="replace").count("Starting session:")


def test_the_next_tenant_takes_over_a_finished_tenants_session(
    sshd_server: SshServer, sftp_account, tmp_path: Path
) -> None:
    """A session left clean (nothing asked and unanswered) goes to the next tenant of the same
    account: no new channel, no new process on the server for every small tenant."""
    config = destination(sshd_server, sftp_account())
    before = sessions_started(sshd_server)
    with sftp_server(config) as first:
        first.publish(local_file(tmp_path, "a.csv"), PurePosixPath("A/a.csv"))
        session = first._ssh._sftp
    with sftp_server(config) as second:
        assert second._ssh._sftp is session
        second.publish(local_file(tmp_path, "b.csv"), PurePosixPath("B/b.csv"))
    assert sessions_started(sshd_server) - before == 1


def test_a_session_with_an_unanswered_request_is_not_handed_on(sshd_server: SshServer, sftp_account) -> None:
    """An answer still on its way (a tenant stopped mid-request) would reach the next tenant:
    such a session is closed, and the next tenant starts a new one."""
    config = destination(sshd_server, sftp_account())
    with sftp_server(config) as first:
        session = first._ssh._sftp
        assert session is not None
        session._async_request(type(None), CMD_STAT, "/")  # asked, never read
    with sftp_server(config) as second:
        assert second._ssh._sftp is not session
    assert session.sock.closed
