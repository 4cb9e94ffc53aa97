"""`activity-export demo`: the main job end to end on the embedded default."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import shutil
from pathlib import Path

from tests.support.project import ROOT, Project, own_duckdb


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
    args = ["demo", "--days", "3", "--events-per-day", "300", *duckdb_project.cli_args()]

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
        "demo", "--days", "2", "--events-per-day", "300", *duckdb_project.cli_args(), cwd=workdir
    )

    root = workdir / "exports" / "MODEHUIS"
    folder = root / "manifest/2026/11"
    manifest = json.loads((folder / "manifest_MODEHUIS_20261101.json").read_text())
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
