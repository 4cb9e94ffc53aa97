"""docs/models.md, "Adding a column to the files", walked as written on DuckDB and PostgreSQL.

A copy of the dbt project gets the recipe's blocks (the model's line, the contract's column, the
history's fill, the tenant's extra field), is built by dbt and exported from by the CLI: the new
field is in the file where the recipe says it is, typed and described in the manifest, and no
Python was changed for it.
"""

from __future__ import annotations

import csv
import json
import re
import textwrap
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.support.postgres import fresh_database
from tests.support.project import ROOT, Project, copy_of_project, make_project
from tests.support.warehouses import execute

RECIPE = "## Adding a column to the files"
BRAND = "BRANDNAAM"
THIRD_DAY = "registered_at >= timestamptz '2026-11-03 00:00:00+00'"
RAW_TABLES = ("broadcasts", "customers", "erasures")


def recipe_blocks() -> list[str]:
    """The recipe's fenced blocks in order (model line, contract column, fill, tenant), dedented."""
    text = (ROOT / "docs" / "models.md").read_text(encoding="utf-8")
    section = text[text.index(RECIPE) :].split("\n## ", 1)[0]
    blocks = re.findall(r"\n( *)```(?:sql|yaml)\n(.*?)\n\1```", section, flags=re.S)
    return [textwrap.dedent(body) for _, body in blocks]


def follow_steps_1_and_2(project_dir: Path, select_line: str, contract_column: str) -> None:
    """Step 1: the line after ``user_agent`` in the final CTE; step 2: the column after the last
    of ``export_activities`` in the contract."""
    model = project_dir / "models" / "exports" / "export_activities.sql"
    sql = model.read_text(encoding="utf-8")
    after = "        user_agent\n    from placeable\n"
    assert after in sql, "the recipe adds the column after user_agent in the final CTE"
    line = select_line.strip().rstrip(",")
    model.write_text(sql.replace(after, f"        user_agent,\n        {line}\n    from placeable\n"))
    contract = project_dir / "models" / "exports" / "_exports__models.yml"
    text = contract.read_text(encoding="utf-8")
    next_model = "\n  - name: export_held_events\n"
    assert text.count(next_model) == 1
    column = textwrap.indent(contract_column.strip() + "\n", "      ")
    contract.write_text(text.replace(next_model, "\n" + column + next_model), encoding="utf-8")


def export(project: Project, config: Path, period: str, out: Path) -> tuple[list[dict[str, str]], Any]:
    """The activity file's rows and the manifest of one period, written by ``export``."""
    project.run(
        "export", "--config", str(config), "--brand", BRAND, "--period", period, "--out", str(out),
        *project.cli_args(),
    )  # fmt: skip
    [activity] = out.rglob("activity_*.csv")
    [manifest] = out.rglob("manifest_*.json")
    with activity.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter=";"))
    return rows, json.loads(manifest.read_text(encoding="utf-8"))


@pytest.mark.parametrize("target", ["duckdb", "postgres"])
def test_the_add_a_column_recipe_works_as_written(target: str, tmp_path: Path) -> None:
    select_line, contract_column, fill, tenant_block = recipe_blocks()
    with ExitStack() as stack:
        database = stack.enter_context(fresh_database("aexp_column")) if target == "postgres" else None
        base = make_project(tmp_path, target, database)
        project = replace(base, project_dir=copy_of_project(tmp_path / "project"))
        # three days of the platform upstream: two reach raw now, the third after the change
        project.run(
            "generate", "--brands", BRAND, "--days", "3", "--events-per-day", "300",
            "--start", "2026-11-01", "--raw-schema", "upstream", *project.cli_args(),
        )  # fmt: skip
        execute(
            project,
            [
                "create schema raw",
                *(f"create table raw.{table} as select * from upstream.{table}" for table in RAW_TABLES),
                f"create table raw.events as select * from upstream.events where not ({THIRD_DAY})",
            ],
        )
        project.build()

        # the tenant as step 5 shows it, with a manifest to see the field described; run from
        # the project's folder, as the runbook's jobs do
        config = tmp_path / "tenants.yml"
        where = f"destination: {{type: local, root: {tmp_path / 'files'}}}"
        settings = textwrap.indent(f"timezone: UTC\nmanifest: true\n{where}\n", "    ")
        config.write_text(tenant_block.strip() + "\n" + settings, encoding="utf-8")
        before = project.run("check", "--config", str(config), check=False)
        assert before.returncode == 2, before.stdout + before.stderr
        assert "'eventtype' is not an extra field; allowed: eventid, registereddate" in before.stderr

        # steps 1 and 2, then 3: the third day arrives and dbt builds it
        follow_steps_1_and_2(project.project_dir, select_line, contract_column)
        execute(project, [f"insert into raw.events select * from upstream.events where {THIRD_DAY}"])
        project.build()
        checked = project.run("check", "--config", str(config))
        assert "eventtype" in checked.stdout, checked.stdout

        new_rows, manifest = export(project, config, "2026-11-03", tmp_path / "new")
        assert new_rows and list(new_rows[0])[-2:] == ["eventid", "eventtype"]
        assert {(row["activity"], row["eventtype"]) for row in new_rows} >= {
            ("BROADCAST", "sent"),
            ("OPEN", "open"),
        }
        fields = manifest["resources"][0]["schema"]["fields"]
        assert fields[-1] == {
            "name": "eventtype",
            "type": "string",
            "description": "The platform's own event type (sent, open, click, ...).",
        }

        # rows built before the column keep it empty, until step 4 fills the history
        old_rows, _ = export(project, config, "2026-11-01", tmp_path / "old")
        assert old_rows and {row["eventtype"] for row in old_rows} == {""}
        schema = "main" if target == "duckdb" else "analytics"
        execute(project, [fill.replace("analytics.", f"{schema}.")])
        filled, _ = export(project, config, "2026-11-01", tmp_path / "filled")
        assert [row["eventid"] for row in filled] == [row["eventid"] for row in old_rows]
        assert {row["eventtype"] for row in filled if row["activity"] == "CLICK"} == {"click"}
        assert all(row["eventtype"] for row in filled)
