"""`activity-export demo`: the main job end to end on the embedded default."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import shutil
import subprocess
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from tests.support.project import BIN, ROOT, Project, own_duckdb

# the demo's clock in the tests that name its files: its data is the days before 2026-11-04
NOW = "2026-11-04T07:00:00+01:00"


def own_warehouse(project: Project, folder: Path) -> Project:
    """The demo deletes and rebuilds its DuckDB file: give it one no other test uses."""
    return own_duckdb(project, folder, "demo.duckdb")


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_demo_delivers_every_due_period_and_a_second_run_changes_nothing(
    duckdb_project: Project, tmp_path: Path
) -> None:
    duckdb_project = own_warehouse(duckdb_project, tmp_path)
    workdir = tmp_path / "work"
    (workdir / "demo").mkdir(parents=True)
    shutil.copy(ROOT / "demo" / "tenants.yml", workdir / "demo" / "tenants.yml")
    args = ["demo", "--days", "3", "--events-per-day", "300", "--now", NOW, *duckdb_project.cli_args()]

    first = duckdb_project.run(*args, cwd=workdir)
    delivered = _tree(workdir / "exports")
    second = duckdb_project.run(*args, cwd=workdir)

    assert "BRANDNAAM" in first.stdout and "MODEHUIS" in first.stdout
    assert _tree(workdir / "exports") == delivered  # same names, same bytes, nothing added
    assert second.stdout.splitlines()[-2:] == first.stdout.splitlines()[-2:]
    brandnaam = sorted(p for p in delivered if p.startswith("BRANDNAAM/"))
    assert brandnaam == [
        f"BRANDNAAM/{kind}_BRANDNAAM_2026110{day}.csv"
        for kind in ("activity", "broadcast")
        for day in (1, 2, 3)
    ]
    for name in brandnaam:
        with (workdir / "exports" / name).open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle, delimiter=";"))
        assert len(rows) > 1 and len({len(row) for row in rows}) == 1, name
    assert not [p for p in delivered if ".partial" in p]


def test_demo_tenant_with_gzip_folders_and_manifest(duckdb_project: Project, tmp_path: Path) -> None:
    duckdb_project = own_warehouse(duckdb_project, tmp_path)
    workdir = tmp_path / "work"
    (workdir / "demo").mkdir(parents=True)
    shutil.copy(ROOT / "demo" / "tenants.yml", workdir / "demo" / "tenants.yml")
    duckdb_project.run(
        "demo",
        "--days",
        "2",
        "--events-per-day",
        "300",
        "--now",
        NOW,
        *duckdb_project.cli_args(),
        cwd=workdir,
    )

    root = workdir / "exports" / "MODEHUIS"
    folder = root / "manifest/2026/11"
    # two days up to the day before NOW: 2 and 3 November
    manifest = json.loads((folder / "manifest_MODEHUIS_20261102.json").read_text())
    for entry in manifest["resources"]:  # paths are relative to the manifest's folder
        path = (folder / entry["path"]).resolve()
        assert path.is_relative_to(root.resolve())
        data = path.read_bytes()
        assert len(data) == entry["bytes"]
        assert "sha256:" + hashlib.sha256(data).hexdigest() == entry["hash"]
        lines = list(csv.reader(gzip.decompress(data).decode("utf-8").splitlines(True), delimiter="|"))
        assert len(lines) - 1 == entry["rows"]
    header = gzip.decompress((folder / manifest["resources"][0]["path"]).read_bytes()).decode().split("\n")[0]
    assert header.split("|")[2] == "klantnummer"
    assert header.split("|")[-4:] == ["eventid", "registereddate", "os", "device"]


# What the README's demo steps use of the project folder.
DEMO_TREE = (
    "Makefile",
    "pyproject.toml",
    "constraints.txt",
    "profiles.yml.example",
    "dbt_project.yml",
    "models",
    "macros",
    "seeds",
    "tests/dbt",
    "demo/tenants.yml",
)


def readme_demo_steps() -> list[str]:
    """The shell lines of the README's demo block, as written there."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## The demo\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def project_copy(folder: Path) -> Path:
    """The project as a user checks it out, in ``folder``: its ``.venv/bin`` is the virtualenv
    these tests run in, and its install stamp is newer than the copied ``pyproject.toml``, so
    ``make demo`` installs nothing and leaves that virtualenv as it is."""
    for name in DEMO_TREE:
        source, copy = ROOT / name, folder / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, copy)
        else:
            shutil.copy2(source, copy)
    venv = folder / ".venv"
    venv.mkdir()
    (venv / "bin").symlink_to(BIN)
    (venv / ".installed-stamp").touch()
    return folder


def user_environment() -> dict[str, str]:
    """This environment without what the tests set for their own targets and what an outer
    ``make`` passes down: a user's shell in a fresh checkout."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ACTIVITY_EXPORT_", "DBT_", "MAKE", "MFLAGS"))
    }
    env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    return env


def latest_due_day(config: Path, moment: datetime) -> date:
    """The latest daily period of the demo's tenants due at ``moment`` (their zone and run_at)."""
    defaults = yaml.safe_load(config.read_text(encoding="utf-8"))["defaults"]
    local = moment.astimezone(ZoneInfo(defaults["timezone"]))
    due = time.fromisoformat(defaults["run_at"])
    return local.date() - timedelta(days=1 if local.time() >= due else 2)


def test_the_readmes_demo_steps_work_today_as_written(tmp_path: Path) -> None:
    """`make demo` and the lines after it in the README, in a copy of the project on today's
    clock: every line exits 0, nothing is overdue, the demo delivered up to the latest due day and
    `run` finds nothing left."""
    folder = project_copy(tmp_path / "project")
    steps = readme_demo_steps()
    assert steps[0] == "make demo" and len(steps) >= 3, steps
    before = datetime.now().astimezone()
    outputs = {}
    for line in steps:
        done = subprocess.run(  # noqa: S602 (the README's lines, run as a reader runs them)
            line, shell=True, cwd=folder, env=user_environment(), capture_output=True, text=True, check=False
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"`{line}` exited {done.returncode}:\n{output[-6000:]}"
        # status warns "is OVERDUE", run's summary says "OVERDUE:" and its error lines "is overdue"
        assert "OVERDUE" not in output and "is overdue" not in output, f"`{line}`:\n{output[-6000:]}"
        outputs[line.split("#")[0].split()[1]] = done.stdout
    after = datetime.now().astimezone()

    config = folder / "demo" / "tenants.yml"
    rows = {
        words[0]: words
        for words in (line.split() for line in outputs["status"].splitlines())
        if words[:1] == ["BRANDNAAM"] or words[:1] == ["MODEHUIS"]
    }
    assert sorted(rows) == ["BRANDNAAM", "MODEHUIS"], outputs["status"]
    if latest_due_day(config, before) == latest_due_day(config, after):  # not run across run_at
        latest = latest_due_day(config, after).isoformat()
        assert {brand: words[1] for brand, words in rows.items()} == {"BRANDNAAM": latest, "MODEHUIS": latest}
        ran = [
            line.split() for line in outputs["run"].splitlines() if line.startswith(("BRANDNAAM", "MODEHUIS"))
        ]
        assert [words[1] for words in ran] == ["0", "0"], outputs["run"]  # delivered nothing
