"""Uploading a file while DuckDB writes it: only whole, verified files get their final name.

Against the real sshd of tests/support/sshd.py, with enough rows for DuckDB to write in many batches.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from threading import Event
from typing import BinaryIO

import duckdb
import pytest

from activity_export.destinations import Follower
from activity_export.destinations.sftp import FOLLOW_MIN_BYTES
from activity_export.errors import ExportError
from activity_export.periods import parse_period
from activity_export.warehouse import Target, Warehouse
from activity_export.writer import write_period
from tests.support.golden import TOUCHES_SQL, create_export_relations, tenant
from tests.support.pgp import Keys
from tests.support.sftp import destination, sftp_server
from tests.support.sshd import SshServer

ROWS = 400_000


@pytest.fixture(scope="module")
def big_warehouse() -> Iterator[Warehouse]:
    con = duckdb.connect()
    create_export_relations(con)
    con.execute(
        f"""
        insert into main.export_activities
        select i, 'GOLD', i % 7, i % 1000, 'ext' || (i % 13), 'x' || i || '@x.nl', 'OPEN',
               timestamptz '2026-11-25 00:00:00+00' + (i % 3600) * interval 1 second,
               timestamptz '2026-11-25 01:00:00+00', null, null, null, null, null, null, null, null
        from range({ROWS}) as r(i)
        """
    )
    con.execute(TOUCHES_SQL)
    yield Warehouse(con, Target("memory", "duckdb", "main"), "memory")
    con.close()


def remote_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_files_uploaded_while_written_are_published_whole(
    big_warehouse: Warehouse, sshd_server: SshServer, sftp_account, tmp_path: Path, compression: str
) -> None:
    account = sftp_account()
    configured = tenant(compression=compression, folder="{kind}")
    period = parse_period(configured, "2026-11-25")
    with sftp_server(destination(sshd_server, account)) as server:
        files = write_period(
            big_warehouse, configured, period, tmp_path, follow=lambda _k, g, r: server.follow(g, r)
        )
        uploaded = remote_files(account.upload)
        assert all(".partial" in name for name in uploaded)  # no final name yet
        activity, broadcast = files
        assert (activity.bytes > FOLLOW_MIN_BYTES) == (compression == "none")  # gzip: small
        staged = server.publish_staged(activity.relative, activity.bytes, activity.sha256)
        if staged is None:
            server.publish(activity.path, activity.relative)
        # a small file is not followed: it goes up in one piece after writing
        assert server.publish_staged(broadcast.relative, broadcast.bytes, broadcast.sha256) is None
        server.publish(broadcast.path, broadcast.relative)
        server.discard_staged()
    # followed only when the watcher saw it past FOLLOW_MIN_BYTES before DuckDB was done (a race
    # a fast machine can lose; test_a_file_grown_by_hand_is_followed_and_published_whole has none)
    assert staged is None or compression == "none"
    assert files[0].rows == ROWS
    delivered = remote_files(account.upload)
    assert sorted(delivered) == sorted(str(f.relative) for f in files)
    for written in files:
        content = delivered[str(written.relative)]
        assert content == written.path.read_bytes()
        assert hashlib.sha256(content).hexdigest() == written.sha256 and len(content) == written.bytes


def test_a_file_grown_by_hand_is_followed_and_published_whole(
    sshd_server: SshServer, sftp_account, tmp_path: Path
) -> None:
    """The upload starts while the file is still growing, reads to its end, and only then gets
    its final name: the file grows here under the test's control, so nothing depends on timing."""
    account = sftp_account()
    growing = tmp_path / "activity.csv.partial"
    relative = PurePosixPath("activity.csv")
    chunk = bytes(range(256)) * 4096  # 1 MiB
    with sftp_server(destination(sshd_server, account)) as server:
        with growing.open("wb") as handle:
            follower = server.follow(growing, relative)
            assert follower is not None
            for _ in range(FOLLOW_MIN_BYTES // len(chunk) + 1):
                handle.write(chunk)
            handle.flush()
            started = wait_for(lambda: [p for p in account.upload.iterdir() if ".partial" in p.name])
            assert started, "no upload began while the file was growing"
            for _ in range(3):
                handle.write(chunk)
            handle.write(b"the end\n")
        follower.finish(complete=True)
        content = growing.read_bytes()
        sha256 = hashlib.sha256(content).hexdigest()
        assert follower.result() == (len(content), sha256)
        assert remote_files(account.upload) != {}  # still under its hidden name
        assert "activity.csv" not in remote_files(account.upload)
        published = server.publish_staged(relative, len(content), sha256)
        assert published is not None and published.endswith("/activity.csv")
        server.discard_staged()
    assert remote_files(account.upload) == {"activity.csv": content}


def wait_for(found: Callable[[], list[Path]], seconds: float = 10.0) -> list[Path]:
    deadline = time.monotonic() + seconds
    while not (result := found()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return result


def test_a_failed_write_leaves_nothing_on_the_server(
    big_warehouse: Warehouse, sshd_server: SshServer, sftp_account, tmp_path: Path
) -> None:
    account = sftp_account()
    configured = tenant()
    period = parse_period(configured, "2026-11-25")
    (tmp_path / ".broadcast_GOLD_20261125.csv.partial").mkdir()  # the broadcast COPY fails
    with sftp_server(destination(sshd_server, account)) as server:
        with pytest.raises(ExportError, match="writing period 2026-11-25 failed"):
            write_period(
                big_warehouse, configured, period, tmp_path, follow=lambda _k, g, r: server.follow(g, r)
            )
        server.discard_staged()
        assert server.publish_staged(PurePosixPath("activity_GOLD_20261125.csv"), 1, "x") is None
    assert remote_files(account.upload) == {}  # not even a partial file


def test_an_encrypting_tenant_is_never_uploaded_while_written(
    big_warehouse: Warehouse,
    keys: Keys,
    tmp_path: Path,
) -> None:
    configured = tenant(encryption="pgp", recipients=[str(keys.receiver)])
    asked: list[str] = []

    def follow(kind: str, growing: Path, relative: PurePosixPath) -> Follower | None:
        asked.append(kind)
        return None

    period = parse_period(configured, "2026-11-25")
    files = write_period(big_warehouse, configured, period, tmp_path / "out", follow=follow)
    assert asked == []
    assert keys.decrypt(files[0].path).startswith(b"broadcastid;customerid;")


def test_a_failure_while_following_falls_back_to_the_ordinary_upload(
    big_warehouse: Warehouse, sshd_server: SshServer, sftp_account, tmp_path: Path, monkeypatch
) -> None:
    account = sftp_account()
    configured = tenant()
    period = parse_period(configured, "2026-11-25")
    with sftp_server(destination(sshd_server, account)) as server:
        original = server._stage_once

        def broken_for_activity(
            growing: BinaryIO, final: PurePosixPath, temporary: PurePosixPath, done: Event
        ) -> tuple[int, str]:
            outcome = original(growing, final, temporary, done)
            if final.name.startswith("activity"):
                raise ConnectionResetError("connection reset by peer")
            return outcome

        monkeypatch.setattr(server, "_stage_once", broken_for_activity)
        files = write_period(
            big_warehouse, configured, period, tmp_path, follow=lambda _k, g, r: server.follow(g, r)
        )
        activity, broadcast = files
        assert server.publish_staged(activity.relative, activity.bytes, activity.sha256) is None
        assert not [p for p in account.upload.iterdir() if p.name.startswith(".activity")]
        server.publish(activity.path, activity.relative)
        server.publish(broadcast.path, broadcast.relative)
        server.discard_staged()
    delivered = remote_files(account.upload)
    assert delivered == {str(f.relative): f.path.read_bytes() for f in files}
