"""The column catalogue read from the export models' contract: what it gives, and a clear error
(the file, the model, the column, the key, what is allowed) for each way the YAML can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from activity_export import catalogue
from activity_export.cli import app
from activity_export.errors import ConfigError
from tests.support.project import ROOT, copy_of_project

CONTRACT = Path("models/exports/_exports__models.yml")


def test_the_files_columns_come_from_the_contract() -> None:
    columns = catalogue.load(ROOT)
    assert columns.standard("activity") == (
        "broadcastid", "customerid", "externalid", "email", "activity", "activitydate", "description",
    )  # fmt: skip
    assert columns.extras("broadcast") == ("campaignid", "fromaddress")
    eventid = columns.column("activity", "eventid")
    assert (eventid.column, eventid.type, eventid.key, eventid.extra) == ("event_id", "integer", True, True)
    # a docs block, rendered as dbt renders it
    assert eventid.description == "The platform's event id: unique, the key for an idempotent load."
    personal = {c.field for c in columns.of("activity") if c.personal}
    assert personal == {"externalid", "email", "description", "url", "message", "useragent"}
    assert columns.column("activity", "activity").values[:2] == ("BROADCAST", "OPEN")


BROKEN = {
    "personal_left_out": (
        "              field: os\n              extra: true\n              personal: false\n",
        "              field: os\n              extra: true\n",
        "export_activities.os: config.meta.file.personal: required for an activity field",
    ),
    "type_the_files_do_not_carry": (
        "      - name: os\n        data_type: text\n",
        "      - name: os\n        data_type: double precision\n",
        "export_activities.os: data_type 'double precision' is not a type the files carry; allowed: bigint",
    ),
    "field_twice": (
        "              field: device\n",
        "              field: os\n",
        "export_activities: two columns are the file field 'os'",
    ),
    "field_not_a_name": (
        "              field: device\n",
        "              field: Device Class\n",
        "export_activities.device: config.meta.file.field = 'Device Class': the name in the file",
    ),
    "unknown_meta_key": (
        "              field: device\n",
        "              field: device\n              persnal: false\n",
        "export_activities.device: config.meta.file.persnal: unknown key; allowed: field, extra, personal, key",
    ),
    "personal_broadcast_field": (
        "              field: fromaddress\n              extra: true\n",
        "              field: fromaddress\n              extra: true\n              personal: true\n",
        "export_broadcasts.from_address: config.meta.file.personal: only the activity file",
    ),
    "docs_block_missing": (
        "description: \"{{ doc('event_id') }}\"\n        config:",
        "description: \"{{ doc('event_key') }}\"\n        config:",
        "export_activities.event_id: description: no docs block 'event_key'",
    ),
    "model_gone": (
        "  - name: export_erasures\n",
        "  - name: export_erasures_v2\n",
        "describes model export_erasures, whose columns make the erasure file",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_wrong_contract_is_a_clear_configuration_error(case: str, tmp_path: Path) -> None:
    old, new, expected = BROKEN[case]
    project = copy_of_project(tmp_path)
    text = (project / CONTRACT).read_text(encoding="utf-8")
    assert old in text, case
    (project / CONTRACT).write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        catalogue.load(project)
    assert expected in str(refused.value)
    # through the CLI: exit 2, the same words
    config = tmp_path / "tenants.yml"
    config.write_text("tenants:\n  X:\n    destination: {type: local, root: out}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["check", "--config", str(config), "--project-dir", str(project)])
    assert result.exit_code == 2 and expected in " ".join(result.output.split()), result.output


def test_a_command_outside_the_project_says_where_the_columns_come_from(tmp_path: Path) -> None:
    config = tmp_path / "tenants.yml"
    config.write_text("tenants:\n  X:\n    destination: {type: local, root: out}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["check", "--config", str(config), "--project-dir", str(tmp_path)])
    assert result.exit_code == 2
    said = " ".join(result.output.split())
    assert f"no dbt_project.yml in {tmp_path}; the files' columns are read from the dbt project's" in said
    assert "--project-dir (or DBT_PROJECT_DIR)" in said


def test_an_edit_of_the_contract_is_read_again(tmp_path: Path) -> None:
    """One process that loads twice (a test, a long-lived caller) sees the edited YAML."""
    project = copy_of_project(tmp_path)
    assert "fromaddress" in catalogue.load(project).extras("broadcast")
    text = (project / CONTRACT).read_text(encoding="utf-8")
    (project / CONTRACT).write_text(text.replace("field: fromaddress", "field: sender"), encoding="utf-8")
    assert catalogue.load(project).extras("broadcast") == ("campaignid", "sender")
