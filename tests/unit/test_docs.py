"""The docs name everything a user can set or type, so they cannot silently fall behind the code."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from activity_export import catalogue
from activity_export.cli import app
from activity_export.config import (
    LocalDestination,
    Notify,
    S3Destination,
    SftpDestination,
    Tenant,
    load_config,
)
from activity_export.naming import ERASURE
from tests.support.project import ROOT


def configuration_keys() -> set[str]:
    """Every key tenants.yml accepts: top level, tenant, destination (every type) and notify."""
    keys = {"defaults", "tenants"}
    for model in (Tenant, LocalDestination, SftpDestination, S3Destination, Notify):
        keys |= {name for name in model.model_fields if name != "brand"}
    return keys


def test_every_configuration_key_is_in_the_configuration_reference() -> None:
    reference = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`([a-z_]+)`", reference))
    missing = sorted(configuration_keys() - documented)
    assert not missing, f"docs/configuration.md does not mention: {', '.join(missing)}"


def test_every_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert len(commands) >= 8
    missing = [name for name in commands if f"activity-export {name}" not in readme]
    assert not missing, f"README.md does not show: {', '.join(missing)}"


def test_the_configuration_examples_are_accepted(tmp_path: Path) -> None:
    """Every whole tenants.yml the reference shows (a block starting with defaults: or tenants:)."""
    reference = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", reference, flags=re.S)
    documents = [block for block in blocks if block.startswith(("defaults:", "tenants:"))]
    assert len(documents) >= 4
    tenants = []
    for number, document in enumerate(documents):
        path = tmp_path / f"example{number}.yml"
        path.write_text(document, encoding="utf-8")
        tenants += load_config(path).tenants.values()
    assert [t.extension for t in tenants if t.format == "parquet"] == ["parquet"]


def _table_rows(text: str, after: str) -> list[list[str]]:
    """The cells of the first Markdown table after the line that begins with ``after``."""
    lines = text[text.index("\n" + after) + 1 :].splitlines()[1:]
    start = next(number for number, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_column_tables_list_every_field_of_the_catalogue() -> None:
    """docs/file-format.md and docs/configuration.md against the contract the loader reads."""
    columns = catalogue.load(ROOT)
    file_format = (ROOT / "docs" / "file-format.md").read_text(encoding="utf-8")
    for kind, heading in (
        ("activity", "Activity file"),
        ("broadcast", "Broadcast file"),
        (ERASURE, "Erasure file"),
    ):
        documented = [re.findall(r"`([a-z_]+)`", row[0]) for row in _table_rows(file_format, heading)]
        assert [names[0] for names in documented] == list(columns.standard(kind)), kind
    extras = file_format[file_format.index("**Extra fields**") :].split("\n\n")[0]
    configuration = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = _table_rows(configuration, "### Extra fields")
    for kind in ("activity", "broadcast"):
        listed = [name for row in table if row[0] == kind for name in re.findall(r"`([a-z_]+)`", row[1])]
        assert listed == list(columns.extras(kind)), f"docs/configuration.md, extra fields of {kind}"
        missing = [name for name in columns.extras(kind) if not re.search(rf"\b{name}\b", extras)]
        assert not missing, f"docs/file-format.md, extra fields: {missing}"
