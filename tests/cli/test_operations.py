"""The nightly job as operators really run it: crashes, signals, shared folders, broken parts."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import subprocess
from pathlib import Path

import duckdb
import pytest
import yaml

from activity_export.check import _sharing_a_tree, path_collisions
from activity_export.config import parse_config
from tests.support.project import BIN, GENERATE_ARGS, ROOT, Project, fresh_project, make_project
from tests.support.sshd import generate_key, public_key_line
from tests.support.tenants import (
    EXPECTED,
    NOW,
    run,
    run_stopped_at,
    server_files,
    write_config,
    write_tenants,
)


def ledger_rows(folder: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(folder / "activity-export.ledger.sqlite") as db:
        return db.execute(sql).fetchall()


def test_resume_trusts_a_file_only_when_its_sha256_matches(built_duckdb: Project, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    killed = run(built_duckdb, config, check=False, env={"ACTIVITY_EXPORT_FAILPOINT": "after-upload"})
    assert killed.returncode == -9, killed.stderr
    [(name, _)] = server_files(tmp_path).items()
    published = tmp_path / "server" / name
    original = published.read_bytes()
    # an older file of the very same size under the final name: it must not count as delivered
    published.write_bytes(original.replace(b";", b",", 1))
    assert len(published.read_bytes()) == len(original) and published.read_bytes() != original

    run(built_duckdb, config)
    assert published.read_bytes() == original
    assert sorted(server_files(tmp_path)) == sorted(EXPECTED)


@pytest.mark.parametrize(
    ("point", "signum"),
    [("after-write", signal.SIGTERM), ("mid-upload", signal.SIGINT), ("after-write", signal.SIGINT)],
)
def test_signal_stops_at_a_safe_point_and_leaves_nothing_behind(
    built_duckdb: Project, tmp_path: Path, point: str, signum: int
) -> None:
    config = write_config(tmp_path)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    code, out, err = run_stopped_at(built_duckdb, config, {"TMPDIR": str(temporary)}, point, signum)
    assert code == 128 + signum, err
    assert "INTERRUPTED" in out  # the summary
    assert list(temporary.rglob("*")) == []  # no temporary file with e-mail addresses left
    assert not [p for p in (tmp_path / "server").rglob("*") if p.name.endswith(".partial")]
    outcomes = ledger_rows(tmp_path, "select outcome from attempts")
    assert outcomes == [("interrupted",)]
    assert ledger_rows(tmp_path, "select count(*) from deliveries where status = 'uploading'") == [(0,)]

    run(built_duckdb, config)  # the next run finishes the job
    assert sorted(server_files(tmp_path)) == sorted(EXPECTED)


def test_every_failure_stays_inside_its_tenant(built_duckdb: Project, tmp_path: Path) -> None:
    key = generate_key(tmp_path / "key")
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"@revoked 127.0.0.1 {public_key_line(key)}\n")  # paramiko cannot read it
    config = tmp_path / "tenants.yml"
    revoked = {
        "type": "sftp",
        "host": "127.0.0.1",
        "port": 2,
        "username": "nobody",
        "private_key": str(key),
        "known_hosts": str(known_hosts),
    }
    config.write_text(
        yaml.safe_dump(
            {
                "defaults": {"start": "2026-11-01"},
                "tenants": {
                    "MODEHUIS": {"destination": revoked},
                    "BRANDNAAM": {"destination": {"type": "local", "root": str(tmp_path / "server")}},
                },
            }
        )
    )
    hook = tmp_path / "notified.jsonl"
    result = run(built_duckdb, config, "--on-failure", f"cat >> {hook}; echo >> {hook}", check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert sorted(server_files(tmp_path)) == sorted(EXPECTED)  # the healthy tenant went on
    assert "tenant MODEHUIS" in result.stderr
    summary = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "FAILED" in summary["MODEHUIS"] and summary["BRANDNAAM"].endswith("ok")
    notified = [json.loads(line) for line in hook.read_text().splitlines() if line.strip()]
    assert [n["brand"] for n in notified] == ["MODEHUIS"]
    failed = ledger_rows(tmp_path, "select distinct brand from deliveries where status = 'failed'")
    assert failed == [("MODEHUIS",)]


@pytest.mark.parametrize("content", [b"this is not a ledger\n" * 200, b""])
def test_a_ledger_that_cannot_be_read_is_one_clear_error(
    built_duckdb: Project, tmp_path: Path, content: bytes
) -> None:
    config = write_config(tmp_path)
    ledger = tmp_path / "activity-export.ledger.sqlite"
    if content:
        ledger.write_bytes(content)
    else:  # held by another process: locked
        holder = sqlite3.connect(ledger, isolation_level=None)
        holder.execute("create table t (x)")
        holder.execute("begin exclusive")
    result = run(built_duckdb, config, check=False)
    if not content:
        holder.close()
    assert result.returncode == (2 if content else 1)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: ledger {ledger}")
    assert ("not a readable" if content else "locked") in result.stderr
    assert not (tmp_path / "server").exists()


def test_a_warehouse_that_is_down_is_one_whole_line_not_a_cut_reason_per_tenant(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    project = make_project(tmp_path, "postgres", "activity_export")
    secret = "hunter2-Sup3r-s3cret"
    down = {"PGHOST": "127.0.0.1", "PGPORT": str(closed), "PGPASSWORD": secret}
    config = write_tenants(
        tmp_path / "tenants.yml",
        {
            brand: {
                "start": "2026-11-01",
                "destination": {"type": "local", "root": str(tmp_path / "server" / brand)},
            }
            for brand in ("BRANDNAAM", "MODEHUIS")
        },
    )
    result = project.run(
        "run", "--config", str(config), "--now", NOW, *project.cli_args(), check=False, env=down
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert secret not in result.stdout + result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    # the whole reason on one line: where, and libpq's words to its end
    assert f"127.0.0.1:{closed}" in error and "Connection refused" in error, result.stderr
    assert error.rstrip().endswith("accepting TCP/IP connections?"), result.stderr
    assert "BRANDNAAM" in error and "MODEHUIS" in error
    rows = [line for line in result.stdout.splitlines() if line.startswith(("BRANDNAAM", "MODEHUIS"))]
    assert len(rows) == 2
    for row in rows:  # each tenant's row says it failed and why, in words that are not cut
        assert "FAILED: warehouse not read" in row and "IO Erro" not in row, result.stdout
    assert not (tmp_path / "server").exists()


def test_colliding_paths_are_refused_by_every_command_that_writes(
    built_duckdb: Project, tmp_path: Path
) -> None:
    shared = {"type": "local", "root": str(tmp_path / "server")}
    config = tmp_path / "tenants.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "defaults": {"start": "2026-11-01", "file_name": "{kind}_{period:%Y%m%d}.{extension}"},
                # two copies: one object twice would be written as a YAML alias, which is refused
                "tenants": {"BRANDNAAM": {"destination": shared}, "MODEHUIS": {"destination": dict(shared)}},
            }
        )
    )
    checked = built_duckdb.run("check", "--config", str(config), check=False)
    assert checked.returncode == 2
    assert "tenants BRANDNAAM and MODEHUIS: both write" in checked.stdout
    for command in (
        ["run", "--now", NOW, "--brand", "BRANDNAAM", *built_duckdb.cli_args()],
        [
            "backfill",
            "--brand",
            "BRANDNAAM",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-01",
            *built_duckdb.cli_args(),
        ],
        ["prune", "--now", NOW],
    ):
        refused = built_duckdb.run(command[0], "--config", str(config), *command[1:], check=False)
        assert refused.returncode == 2, (command, refused.stdout, refused.stderr)
        assert "both write" in refused.stderr
    assert not (tmp_path / "server").exists()

    # the same templates on different roots are fine
    config.write_text(
        yaml.safe_dump(
            {
                "defaults": {"start": "2026-11-01", "file_name": "{kind}_{period:%Y%m%d}.{extension}"},
                "tenants": {
                    "BRANDNAAM": {"destination": shared},
                    "MODEHUIS": {"destination": {"type": "local", "root": str(tmp_path / "other")}},
                },
            }
        )
    )
    assert built_duckdb.run("check", "--config", str(config)).returncode == 0


def test_a_collision_is_reported_once_though_it_concerns_two_tenants(tmp_path: Path) -> None:
    shared = {"type": "local", "root": str(tmp_path / "server")}
    config = tmp_path / "tenants.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "defaults": {"file_name": "{kind}_{period:%Y%m%d}.{extension}"},
                "tenants": {"BRANDNAAM": {"destination": shared}, "MODEHUIS": {"destination": dict(shared)}},
            }
        )
    )
    checked = subprocess.run(
        [str(BIN / "activity-export"), "check", "--config", str(config), "--now", NOW],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert checked.returncode == 2
    assert checked.stdout.count("both write") == 1, checked.stdout
    assert "1 problem(s)" in checked.stdout
    # the second tenant's block points at the first's, where the problem stands in full
    second = checked.stdout.split("\nMODEHUIS\n", 1)[1].split("\n\n")[0]
    assert "PROBLEM" in second and "BRANDNAAM" in second, second
    assert checked.stderr.count("both write") == 1, checked.stderr


def _sftp(username: str, port: int = 22, root: str = "/upload") -> dict[str, object]:
    return {
        "type": "sftp",
        "host": "sftp.example.nl",
        "port": port,
        "username": username,
        "password_env": "SFTP_PASSWORD",
        "known_hosts": "/etc/known_hosts",
        "root": root,
    }


@pytest.mark.parametrize(
    ("second", "collides"),
    [
        (_sftp("other"), True),  # another login on the same server and folder
        (_sftp("other", root="/upload/"), True),
        (_sftp("other", port=2222), False),
        (_sftp("other", root="/elsewhere"), False),
        # a root below the other's: only the folder template decides (the check renders these)
        ({**_sftp("other", root="/"), "folder": "upload"}, True),
        ({**_sftp("other", root="/"), "folder": "elsewhere"}, False),
        ({**_sftp("other", root="/upload/sub")}, False),
    ],
)
def test_collisions_are_found_per_server_and_root(second: dict[str, object], collides: bool) -> None:
    folder = second.pop("folder", None)
    raw = {
        "defaults": {"file_name": "{kind}_{period:%Y%m%d}.{extension}"},
        "tenants": {
            "BRANDNAAM": {"destination": _sftp("brandnaam")},
            "MODEHUIS": {"destination": second, **({"folder": folder} if folder else {})},
        },
    }
    problems = path_collisions(parse_config(raw, Path("tenants.yml")))
    assert bool(problems) == collides
    if collides:
        [problem] = problems
        assert problem.startswith("tenants BRANDNAAM and MODEHUIS: both write /upload/activity_2026")


def test_tenants_in_folders_of_their_own_are_checked_without_rendering_names() -> None:
    """One folder per tenant under a shared login: nothing can collide, and the check stays linear."""
    raw = {
        "defaults": {"file_name": "{kind}_{period:%Y%m%d}.{extension}"},
        "tenants": {
            f"T{i:05d}": {"destination": _sftp("shared", root=f"/upload/T{i:05d}")} for i in range(2_000)
        },
    }
    config = parse_config(raw, Path("tenants.yml"))
    assert _sharing_a_tree(config) == []
    assert path_collisions(config) == []


def test_default_names_never_collide_on_a_shared_root(tmp_path: Path) -> None:
    shared = {"type": "local", "root": str(tmp_path)}
    raw = {"tenants": {name: {"destination": shared} for name in ("A", "B", "AB", "A_B")}}
    assert path_collisions(parse_config(raw, Path("tenants.yml"))) == []


HELD_EVENT = """
insert into raw.events (event_id, brand, broadcast_id, customer_id, event_type, occurred_at,
    registered_at, email)
values (999000077, 'BRANDNAAM', 987654321, 1, 'open', timestamptz '2026-11-04 09:30:00+00',
    timestamptz '2026-11-04 10:00:00+00', 'held@example.nl');
insert into raw.events (event_id, brand, broadcast_id, customer_id, event_type, occurred_at,
    registered_at, email)
select 999000076, 'BRANDNAAM', broadcast_id, 2, 'open', timestamptz '2026-11-05 01:00:00+00',
    timestamptz '2026-11-05 01:00:00+00', 'marker@example.nl'
from raw.broadcasts where brand = 'BRANDNAAM' and channel = 'email' and sent_at is not null
order by broadcast_id limit 1;
"""
RELEASE_AND_LATE = """
insert into raw.broadcasts (broadcast_id, brand, broadcast_type, channel, description, subject, sent_at)
values (987654321, 'BRANDNAAM', 'SINGLE', 'email', 'late mailing', 'Hallo',
    timestamptz '2026-11-01 09:00:00+00');
insert into raw.events (event_id, brand, broadcast_id, customer_id, event_type, occurred_at,
    registered_at, email)
values (999000078, 'BRANDNAAM', 987654321, 1, 'click', timestamptz '2026-11-02 11:00:00+00',
    timestamptz '2026-11-02 12:00:00+00', 'late@example.nl');
"""
LATER = "2026-11-06T07:00:00+01:00"


def test_held_brand_waits_says_what_holds_it_and_late_rows_are_counted(
    duckdb_project: Project, tmp_path: Path
) -> None:
    project = fresh_project(duckdb_project, tmp_path, *GENERATE_ARGS)
    config = write_config(tmp_path, extra_fields={"activity": ["eventid"]})
    with duckdb.connect(project.env["ACTIVITY_EXPORT_DUCKDB"]) as con:
        con.execute(HELD_EVENT)  # 999000077's broadcast has not arrived; later events have
    project.build()

    def at_later(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return project.run(*args, "--config", str(config), "--now", LATER, *project.cli_args(), check=check)

    held = at_later("run", check=False)
    assert held.returncode == 1  # 4 November became due 25 hours ago: overdue
    assert sorted(server_files(tmp_path)) == sorted(EXPECTED)  # 1 to 3 November
    [tenant] = json.loads(at_later("status", "--json").stdout)["tenants"]
    assert tenant["waiting"] == ["2026-11-04", "2026-11-05"]
    assert tenant["held"]["events"] == 1
    assert tenant["held"]["since"].startswith("2026-11-04T10:00")
    [example] = tenant["held"]["examples"]
    assert (example["event_id"], example["missing"]) == (999000077, "broadcast")
    assert [o["period"] for o in tenant["overdue"]] == ["2026-11-04"]
    table = at_later("status").stdout
    assert "held back since 2026-11-04T10:00" in table and "999000077" in table

    with duckdb.connect(project.env["ACTIVITY_EXPORT_DUCKDB"]) as con:
        con.execute(RELEASE_AND_LATE)  # the broadcast arrives, and an event for the shipped 2 November
    project.build()
    at_later("run")  # 4 November goes; 5 November is due only 1 hour: waiting, not overdue
    day_four = (tmp_path / "server" / "activity_BRANDNAAM_20261104.csv").read_text()
    assert "999000077" in day_four and "999000078" in day_four
    [tenant] = json.loads(at_later("status", "--json").stdout)["tenants"]
    assert tenant["held"] is None and tenant["overdue"] == []
    late = {c["period"]: c["late_rows"] for c in tenant["counts"]}
    assert late["2026-11-01"] == 0 and late["2026-11-04"] >= 1
    assert tenant["late_rows"] == sum(late.values())


def test_brand_without_data_waits_and_is_reported(built_duckdb: Project, tmp_path: Path) -> None:
    config = tmp_path / "tenants.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "tenants": {
                    "GEENDATA": {
                        "start": "2026-11-01",
                        "destination": {"type": "local", "root": str(tmp_path / "server")},
                    }
                }
            }
        )
    )
    result = run(built_duckdb, config, check=False)
    assert result.returncode == 1  # waiting since 2 November 06:00: overdue
    assert not (tmp_path / "server").exists()  # no empty files for a brand the warehouse lacks
    status = built_duckdb.run("status", "--config", str(config), "--now", NOW, *built_duckdb.cli_args())
    assert "the warehouse holds no data for brand 'GEENDATA'" in status.stderr
    assert "never delivered as empty files" in status.stderr
    [tenant] = json.loads(
        built_duckdb.run(
            "status", "--config", str(config), "--now", NOW, "--json", *built_duckdb.cli_args()
        ).stdout
    )["tenants"]
    assert tenant["watermark"] is None and tenant["waiting"] == ["2026-11-01", "2026-11-02", "2026-11-03"]
