"""The command line as people meet it: options, messages, machine output, and what it leaves behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

import jsonschema
import pytest

from activity_export.cli import COMMAND_ORDER
from activity_export.ledger import WebhookStatus
from activity_export.report import status_json
from activity_export.status import TenantStatus
from tests.support.project import BIN, ROOT, Project, own_duckdb
from tests.support.tenants import NOW, write_config, write_tenants


def test_run_and_status_describe_the_destination_alike(built_duckdb: Project, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    run = built_duckdb.run("run", "--config", str(config), "--now", NOW, *built_duckdb.cli_args())
    status = built_duckdb.run(
        "status", "--json", "--config", str(config), "--now", NOW, *built_duckdb.cli_args()
    )
    where = f"local folder {tmp_path / 'server'}"
    assert where in run.stdout
    assert [entry["destination"] for entry in json.loads(status.stdout)["tenants"]] == [where]


SCHEMAS = ROOT / "docs" / "schemas"


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``activity-export`` in a child process, without a warehouse (nor ACTIVITY_EXPORT_CONFIG)."""
    return subprocess.run(
        [str(BIN / "activity-export"), *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        # the dbt project as a job's environment names it (a systemd unit's EnvironmentFile)
        env={
            **{k: v for k, v in os.environ.items() if k != "ACTIVITY_EXPORT_CONFIG"},
            "DBT_PROJECT_DIR": str(ROOT),
            **(env or {}),
        },
        check=False,
    )


def valid(document: object, schema: str) -> None:
    jsonschema.validate(document, json.loads((SCHEMAS / schema).read_text()))


def files_under(*folders: Path) -> list[str]:
    return sorted(str(p) for folder in folders for p in folder.rglob("*"))


def test_version_is_shown() -> None:
    result = cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"activity-export {version('activity-export')}"


def test_help_lists_commands_in_the_order_people_use_them() -> None:
    result = cli("--help")
    commands = result.stdout.split("Commands")[1]
    listed = [words[0] for line in commands.splitlines() if (words := line.replace("│", " ").split())[:1]]
    listed = [name for name in listed if name in COMMAND_ORDER]
    assert listed == ["demo", "run", "status", "check", "export", "backfill", "prune", "generate"]
    assert "--install-completion" in result.stdout  # shell completion is on


def test_logging_options_work_before_and_after_the_command_name(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    for args in (
        ["-v", "check", "--config", str(config)],
        ["check", "-v", "--config", str(config)],
        ["check", "-vv", "--config", str(config)],
        ["check", "--config", str(config), "-q"],
        ["check", "--log-format", "json", "--config", str(config)],
    ):
        result = cli(*args)
        assert result.returncode == 0, (args, result.stderr)
        assert "BRANDNAAM" in result.stdout
    for command in COMMAND_ORDER:
        help_text = cli(command, "--help").stdout
        assert "--verbose" in help_text and "--quiet" in help_text and "--log-format" in help_text, command


def test_every_commands_help_names_its_values_plainly() -> None:
    """A metavar is a word a reader understands, never a Python type or object address."""
    for command in ("", *COMMAND_ORDER):
        result = cli(*command.split(), "--help")
        assert result.returncode == 0, (command, result.stderr)
        for leak in ("typing.", "OptionInfo", "<list[", "0x", "Annotated"):
            assert leak not in result.stdout, (command, leak, result.stdout)
        assert "--log-format <text|json>" in result.stdout, command
    for command in ("run", "status", "check", "prune"):
        assert "--brand <brand>" in cli(command, "--help").stdout, command


def test_missing_configuration_says_where_it_looked_and_how_to_point_elsewhere(tmp_path: Path) -> None:
    result = cli("check", cwd=tmp_path)
    assert result.returncode == 2
    assert str(tmp_path / "tenants.yml") in result.stderr
    assert "--config" in result.stderr and "ACTIVITY_EXPORT_CONFIG" in result.stderr

    (tmp_path / "elsewhere").mkdir()
    config = write_config(tmp_path / "elsewhere")
    pointed = cli("check", cwd=tmp_path, env={"ACTIVITY_EXPORT_CONFIG": str(config)})
    assert pointed.returncode == 0, pointed.stderr


def test_prune_without_retention_anywhere_says_so(tmp_path: Path) -> None:
    result = cli("prune", "--config", str(write_config(tmp_path)))
    assert result.returncode == 0
    assert "nothing to prune" in result.stdout and "retention_days" in result.stdout


def test_run_json_and_json_logs_describe_the_run(built_duckdb: Project, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    args = ["--config", str(config), "--now", NOW, *built_duckdb.cli_args()]
    result = built_duckdb.run("run", "--json", "-v", "--log-format", "json", *args)

    summary = json.loads(result.stdout)  # stdout holds the JSON document and nothing else
    valid(summary, "run.schema.json")
    [tenant] = summary["tenants"]
    assert summary["ok"] and tenant["state"] == "ok"
    assert [d["period"] for d in tenant["delivered"]] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    first = tenant["delivered"][0]["files"][0]
    assert (tmp_path / "server" / first["path"]).stat().st_size == first["bytes"]

    lines = [json.loads(line) for line in result.stderr.splitlines()]
    delivered = [line for line in lines if line["event"] == "file_delivered"]
    assert len(delivered) == 6
    assert {(line["brand"], line["kind"]) for line in delivered} == {
        ("BRANDNAAM", "activity"),
        ("BRANDNAAM", "broadcast"),
    }
    assert {line["period"] for line in delivered} == {"2026-11-01", "2026-11-02", "2026-11-03"}

    status = built_duckdb.run("status", "--json", "--verify", *args)
    valid(json.loads(status.stdout), "status.schema.json")
    again = json.loads(built_duckdb.run("run", "--json", *args).stdout)
    valid(again, "run.schema.json")
    assert again["tenants"][0]["delivered"] == [] and again["tenants"][0]["already_delivered"] == 3


def test_json_logs_put_every_stderr_line_in_one_object_failures_and_overdue_included(
    built_duckdb: Project, tmp_path: Path
) -> None:
    """A night with one tenant delivered, one failing and one whose data never came (overdue):
    under --log-format json each line on stderr is a JSON object, each outcome has its record
    with its numbers in fields, and stdout holds the summary table alone."""
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the destination folder should be")
    config = write_tenants(
        tmp_path / "tenants.yml",
        {
            "BRANDNAAM": {
                "start": "2026-11-01",
                "destination": {"type": "local", "root": str(tmp_path / "ok")},
            },
            "MODEHUIS": {"start": "2026-11-01", "destination": {"type": "local", "root": str(blocked)}},
            "NIEUWMERK": {
                "start": "2026-11-01",
                "destination": {"type": "local", "root": str(tmp_path / "new")},
            },
        },
    )
    args = ["--config", str(config), "--now", NOW, *built_duckdb.cli_args()]
    result = built_duckdb.run("run", "--log-format", "json", *args, check=False)

    assert result.returncode == 1, result.stderr
    records = []
    for line in result.stderr.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not JSON on stderr: {line!r}\n{result.stderr}")
    assert all(isinstance(r, dict) and {"time", "level", "event", "message"} <= r.keys() for r in records)
    assert result.stdout.splitlines()[0].split()[:2] == ["tenant", "delivered"]  # the table, nothing else
    assert not [line for line in result.stdout.splitlines() if line.startswith("BRANDNAAM 2026")]

    def events(name: str) -> list[dict[str, object]]:
        return [r for r in records if r["event"] == name]

    delivered = events("period_delivered")
    assert [(r["tenant"], r["period"], r["outcome"]) for r in delivered] == [
        ("BRANDNAAM", f"2026-11-0{day}", "delivered") for day in (1, 2, 3)
    ]
    for record in delivered:
        assert isinstance(record["rows"], int) and record["rows"] > 0, record
        assert isinstance(record["bytes"], int) and record["bytes"] > 0, record
        assert isinstance(record["seconds"], float | int) and record["seconds"] >= 0, record
        assert "rows" not in str(record["message"]).split(":")[0]
    [failed] = events("tenant_failed")
    assert (failed["tenant"], failed["period"], failed["outcome"], failed["level"]) == (
        "MODEHUIS",
        "2026-11-01",
        "failed",
        "error",
    )
    assert str(blocked) in str(failed["error"]), failed
    overdue = {(r["tenant"], r["period"]): r for r in events("period_overdue")}
    assert {("NIEUWMERK", "2026-11-01"), ("NIEUWMERK", "2026-11-02")} <= overdue.keys(), records
    assert ("NIEUWMERK", "2026-11-03") not in overdue  # due an hour ago: not overdue yet
    first = overdue[("NIEUWMERK", "2026-11-01")]
    assert first["outcome"] == "overdue" and first["due_at"] == "2026-11-02T06:00:00+01:00"
    assert first["hours_overdue"] == 49.0
    assert not [r for r in records if r["tenant"] == "NIEUWMERK" and r["event"] == "tenant_failed"]


def test_read_only_commands_create_no_files(built_duckdb: Project, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    before = files_under(tmp_path)
    common = ["--config", str(config), "--now", NOW]
    for args in (
        ["check", *common, "--project-dir", str(ROOT)],
        ["status", *common, *built_duckdb.cli_args()],
        ["status", "--json", *common, *built_duckdb.cli_args()],
        ["run", "--dry-run", *common, *built_duckdb.cli_args()],
    ):
        built_duckdb.run(*args, cwd=tmp_path)
        assert files_under(tmp_path) == before, args

    dry = json.loads(built_duckdb.run("run", "--dry-run", "--json", *common, *built_duckdb.cli_args()).stdout)
    valid(dry, "run.schema.json")
    assert dry["tenants"][0]["planned"] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert files_under(tmp_path) == before


def test_status_after_the_demo_shows_what_it_delivered(duckdb_project: Project, tmp_path: Path) -> None:
    project = own_duckdb(duckdb_project, tmp_path, "demo.duckdb")
    (tmp_path / "demo").mkdir()
    shutil.copy(ROOT / "demo" / "tenants.yml", tmp_path / "demo" / "tenants.yml")
    demo = project.run(
        "demo", "--days", "3", "--events-per-day", "300", "--now", NOW, *project.cli_args(), cwd=tmp_path
    )
    assert "status --config demo/tenants.yml" in demo.stdout
    assert "Target(" not in demo.stdout  # the warehouse is named readably

    common = ["--config", "demo/tenants.yml", "--now", NOW, *project.cli_args()]
    status = json.loads(project.run("status", "--json", *common, cwd=tmp_path).stdout)["tenants"]
    assert {s["brand"]: (s["delivered_periods"], s["last_delivered"]) for s in status} == {
        "BRANDNAAM": (3, "2026-11-03"),
        "MODEHUIS": (3, "2026-11-03"),
    }
    plan = json.loads(project.run("run", "--dry-run", "--json", *common, cwd=tmp_path).stdout)
    assert [t["planned"] for t in plan["tenants"]] == [[], []]  # run would not deliver it again


def test_status_schema_describes_a_tenant_with_a_webhook() -> None:
    """The webhook part of status --json, built from the same objects status builds it from."""
    heard = WebhookStatus("failed", "2026-11-03", False, "HTTP 500", "2026-11-04T06:15:00+00:00", 2)
    status = TenantStatus("BRANDNAAM", "local folder x", "2026-11-03", 3, [], [], [], 10, 100, [])
    status.webhook = dict(heard.__dict__)
    moment = datetime.fromisoformat(NOW)
    valid(status_json([status], moment, None), "status.schema.json")
    status.webhook = {**status.webhook, "unexpected": 1}
    with pytest.raises(jsonschema.ValidationError):
        valid(status_json([status], moment, None), "status.schema.json")


def test_demo_without_its_configuration_says_where_it_looked(tmp_path: Path) -> None:
    result = cli("demo", cwd=tmp_path)
    assert result.returncode == 2
    assert str(tmp_path / "demo" / "tenants.yml") in result.stderr and "--config" in result.stderr
    assert "ACTIVITY_EXPORT_CONFIG" not in result.stderr  # the demo never reads it


def test_a_period_being_written_shows_its_bytes_on_a_terminal(built_duckdb: Project, tmp_path: Path) -> None:
    """Below the bar of tenants, a line per period being written: its bytes so far. Held at
    ``after-write`` (all files of the period written), the line shows the period's data bytes."""
    import pty
    import re
    import select
    import time

    config = write_config(tmp_path)
    run = ["run", "--config", str(config), "--now", NOW, *built_duckdb.cli_args()]
    piped = built_duckdb.run(*run, "--dry-run")
    assert "bytes written" not in piped.stderr  # not a terminal: no live lines

    leader, follower = pty.openpty()
    env = {**built_duckdb.env, "ACTIVITY_EXPORT_FAILPOINT": "after-write:wait", "COLUMNS": "200"}
    process = subprocess.Popen(
        [str(BIN / "activity-export"), *run], cwd=ROOT, env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=follower,
    )  # fmt: skip
    os.close(follower)
    shown, screens = b"", []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.1)
        try:
            chunk = os.read(leader, 65536) if ready else b""
        except OSError:  # the process closed the terminal: it is done
            break
        shown += chunk
        if shown.count(b"waiting at after-write") > len(screens):
            time.sleep(0.5)  # the bar draws ten times a second
            ready, _, _ = select.select([leader], [], [], 0.1)
            shown += os.read(leader, 65536) if ready else b""
            screens.append(shown.decode(errors="replace"))
            assert process.stdin is not None
            process.stdin.write(b"\n")
            process.stdin.flush()
    os.close(leader)
    assert process.wait(timeout=60) == 0, shown.decode(errors="replace")
    assert len(screens) == 3, "one hold per period of the three days"
    first = re.findall(r"BRANDNAAM 2026-11-01 broadcast\S*\s.*?([\d,]+) bytes written", screens[0])
    assert first, screens[0]
    files = [tmp_path / "server" / f"{kind}_BRANDNAAM_20261101.csv" for kind in ("activity", "broadcast")]
    assert int(first[-1].replace(",", "")) == sum(path.stat().st_size for path in files)


def test_status_check_and_export_leave_pandas_unimported(built_duckdb: Project, tmp_path: Path) -> None:
    """DuckDB imports pandas (0.35 s) the first time a query binds a Python value, when pandas is
    installed (a receiver's machine, this suite): the loader's queries bind none."""
    config = write_config(tmp_path, manifest=True)
    common = ["--config", str(config), *built_duckdb.cli_args()]
    probe = (
        "import sys\nfrom activity_export.cli import app\n"
        "try:\n    app(sys.argv[1:])\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "assert 'pandas' not in sys.modules, 'pandas imported'\n"
    )
    for command in (
        ["status", *common, "--now", NOW],
        ["check", *common, "--now", NOW],
        ["export", *common, "--brand", "BRANDNAAM", "--period", "2026-11-02", "--out", str(tmp_path / "x")],
    ):
        done = subprocess.run(
            [str(BIN / "python"), "-c", probe, *command],
            env=built_duckdb.env, cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{command[0]}: {done.stderr[-2000:]}"
