"""The runbook's scheduling examples are files in orchestration/, read by the tools that will read
them on a server: ``systemd-analyze verify`` for the systemd units, ``sh`` for the cron job, which
runs here with stand-ins for dbt and activity-export to show what reaches them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.project import ROOT

ORCHESTRATION = ROOT / "orchestration"
UNITS = [
    ORCHESTRATION / "systemd" / "activity-export.service",
    ORCHESTRATION / "systemd" / "activity-export.timer",
]
CRON = ORCHESTRATION / "cron" / "activity-export"
ENV_EXAMPLE = ORCHESTRATION / "activity-export.env.example"
INSTALLED = "/opt/activity-export"  # where the runbook installs the project and its .venv
PROGRAMS = ("dbt", "activity-export")


def _tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is missing: apt-get install {package}", pytrace=False)
    return found


def _stand_ins(folder: Path, record: Path) -> Path:
    """``folder/.venv/bin`` with a dbt and an activity-export that write their arguments and the
    variables they were given to ``record``."""
    bin_dir = folder / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for program in PROGRAMS:
        stand_in = bin_dir / program
        stand_in.write_text(
            "#!/bin/sh\n"
            f'echo "$(basename "$0") $* PGHOST=$PGHOST PGPASSWORD=$PGPASSWORD '
            f'DBT_PROFILES_DIR=$DBT_PROFILES_DIR" >> {record}\n',
            encoding="utf-8",
        )
        stand_in.chmod(0o755)
    return bin_dir


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = _tool("systemd-analyze", "systemd")
    # verify checks that each Exec* program exists and is executable: a copy of the units runs the
    # stand-ins instead of the programs under /opt/activity-export, with nothing else changed
    _stand_ins(tmp_path / "opt", tmp_path / "record")
    units = tmp_path / "units"
    units.mkdir()
    for unit in UNITS:
        text = unit.read_text(encoding="utf-8")
        (units / unit.name).write_text(text.replace(INSTALLED, str(tmp_path / "opt")), encoding="utf-8")
    assert str(tmp_path / "opt") in (units / "activity-export.service").read_text(encoding="utf-8")
    verified = subprocess.run(
        [analyze, "verify", *(str(units / unit.name) for unit in UNITS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (verified.returncode, verified.stdout + verified.stderr) == (0, "")


def test_systemd_units_have_no_comment_after_a_value() -> None:
    """systemd knows comments only on lines of their own: `Persistent=true  # ...` is no boolean,
    and `EnvironmentFile=/etc/x  # ...` names a file that does not exist. verify notices the first
    only."""
    for unit in UNITS:
        for number, line in enumerate(unit.read_text(encoding="utf-8").splitlines(), 1):
            if "=" in line and not line.lstrip().startswith(("#", ";")):
                assert not re.search(r"\s[#;]", line), f"{unit.name}:{number}: {line}"


def test_cron_file_is_in_cron_d_format() -> None:
    # cron ignores a file in /etc/cron.d whose name has a dot, and a last line without a newline
    assert re.fullmatch(r"[A-Za-z0-9_-]+", CRON.name)
    text = CRON.read_text(encoding="utf-8")
    assert text.endswith("\n")
    field = r"(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*"
    jobs = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", line):  # a variable for the jobs
            continue
        *times, user, command = line.split(None, 6)
        assert len(times) == 5 and all(re.fullmatch(field, time) for time in times), line
        assert user == "activity", line  # the user field of /etc/cron.d, not in a user's crontab
        assert "%" not in command, line  # cron turns % into a line break
        jobs.append(command)
    assert len(jobs) == 1


def test_cron_job_loads_the_environment_file_and_runs_freshness_build_and_run(tmp_path: Path) -> None:
    sh = _tool("sh", "dash")
    [job] = [line for line in CRON.read_text(encoding="utf-8").splitlines() if line[:1].isdigit()]
    command = job.split(None, 6)[6]
    record = tmp_path / "record"
    _stand_ins(tmp_path / "opt", record)
    here = (
        command.replace("/etc/activity-export/env", str(ENV_EXAMPLE))
        .replace(INSTALLED, str(tmp_path / "opt"))
        .replace("/var/log/activity-export.log", str(tmp_path / "log"))
    )
    ran = subprocess.run(
        [sh, "-c", here], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, check=False
    )
    assert ran.returncode == 0, ran.stderr + (tmp_path / "log").read_text(encoding="utf-8")
    calls = record.read_text(encoding="utf-8").splitlines()
    assert [call.split()[:2] for call in calls] == [
        ["dbt", "source"],
        ["dbt", "build"],
        ["activity-export", "run"],
    ]
    for call in calls:  # the PG* variables and the profile folder of the environment file reach all three
        assert "PGHOST=db.example.nl" in call and "PGPASSWORD=change-me" in call, call
        assert "DBT_PROFILES_DIR=/etc/activity-export" in call, call


def test_runbook_shows_the_files_as_they_are() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")
    for path in (*UNITS, CRON, ENV_EXAMPLE):
        assert path.read_text(encoding="utf-8") in runbook, (
            f"docs/runbook.md does not show {path.name} as it is"
        )
