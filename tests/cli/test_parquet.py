"""``format: parquet`` through the commands, on the dbt-built DuckDB warehouse: ``run``, ``export`` and
``backfill`` deliver Parquet files that hold the rows of the CSV of the same period, value for
value (read with pyarrow and with DuckDB), and the same bytes every time.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.support.parquet import arrow_text_rows, csv_text_rows, duckdb_difference
from tests.support.project import Project
from tests.support.tenants import EXPECTED, run, server_files, write_config

SETTINGS = {
    "extra_fields": {"activity": ["eventid", "registereddate", "url", "os"], "broadcast": ["campaignid"]},
    "columns": {"activity": {"externalid": "klantnummer"}},
    "erasures": True,
}
DAYS = ("20261101", "20261102", "20261103")


def export(project: Project, config: Path, period: str, out: Path) -> Path:
    """``activity-export export`` of one period of BRANDNAAM into ``out``."""
    project.run(
        "export", "--config", str(config), "--brand", "BRANDNAAM", "--period", period, "--out", str(out),
        *project.cli_args(),
    )  # fmt: skip
    return out


def test_run_export_and_backfill_deliver_the_csv_rows_as_parquet(
    built_duckdb: Project, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "parquet", format="parquet", manifest=True, **SETTINGS)
    result = run(built_duckdb, config)
    assert "BRANDNAAM 2026-11-03: " in result.stderr
    delivered = server_files(tmp_path / "parquet")
    assert sorted(delivered) == sorted(
        [name.replace(".csv", ".parquet") for name in EXPECTED]
        + [f"erasure_BRANDNAAM_{day}.parquet" for day in DAYS]
        + [f"manifest_BRANDNAAM_{day}.json" for day in DAYS]
    )
    server = tmp_path / "parquet" / "server"

    local = write_config(tmp_path / "csv", **SETTINGS)
    offset = write_config(tmp_path / "offset", timestamps="offset", **SETTINGS)
    rows = 0
    for day in DAYS:
        period = f"{day[:4]}-{day[4:6]}-{day[6:]}"
        as_text = export(built_duckdb, local, period, tmp_path / "csv" / day)
        as_instants = export(built_duckdb, offset, period, tmp_path / "offset" / day)
        for kind in ("activity", "broadcast", "erasure"):
            parquet = server / f"{kind}_BRANDNAAM_{day}.parquet"
            titles, expected = csv_text_rows(as_text / f"{kind}_BRANDNAAM_{day}.csv")
            assert pq.read_schema(parquet).names == titles
            assert arrow_text_rows(parquet, "Europe/Amsterdam") == expected, parquet.name
            csv_rows, parquet_rows, different = duckdb_difference(
                parquet, as_instants / f"{kind}_BRANDNAAM_{day}.csv"
            )
            assert (csv_rows, parquet_rows, different) == (len(expected), len(expected), [])
            rows += len(expected)
        schema = pq.read_schema(server / f"activity_BRANDNAAM_{day}.parquet")
        assert schema.field("eventid").type == pa.int64()
        assert schema.field("activitydate").type == pa.timestamp("us", tz="UTC")
        manifest = json.loads((server / f"manifest_BRANDNAAM_{day}.json").read_text(encoding="utf-8"))
        for entry in manifest["resources"]:
            data = (server / entry["path"]).read_bytes()
            assert entry["format"] == "parquet"
            assert entry["hash"] == "sha256:" + hashlib.sha256(data).hexdigest()
            assert entry["rows"] == pq.ParquetFile(server / entry["path"]).metadata.num_rows
    assert rows > 500  # the generated days are not empty

    # export writes the bytes run delivered; backfill sends them again, the same bytes
    exported = export(built_duckdb, config, "2026-11-02", tmp_path / "exported")
    for name in ("activity_BRANDNAAM_20261102.parquet", "broadcast_BRANDNAAM_20261102.parquet"):
        assert (exported / name).read_bytes() == (server / name).read_bytes()
    built_duckdb.run(
        "backfill", "--config", str(config), "--brand", "BRANDNAAM", "--from", "2026-11-01", "--to", "2026-11-03",
        *built_duckdb.cli_args(),
    )  # fmt: skip
    again = server_files(tmp_path / "parquet")
    assert {name: sha for name, (sha, _) in again.items()} == {
        name: sha for name, (sha, _) in delivered.items()
    }
    # the data files really written again; a manifest describing unchanged data stays as it was
    kept = [name for name in delivered if again[name][1] == delivered[name][1]]
    assert kept == [f"manifest_BRANDNAAM_{day}.json" for day in DAYS]


def test_a_parquet_tenant_with_a_defaults_compression_is_refused_naming_the_fix(
    built_duckdb: Project, tmp_path: Path
) -> None:
    config = write_config(tmp_path, format="parquet")
    text = config.read_text(encoding="utf-8")
    config.write_text("defaults:\n  compression: gzip\n" + text, encoding="utf-8")
    result = run(built_duckdb, config, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "tenant BRANDNAAM: compression = 'gzip': does not apply to format: parquet" in result.stderr
    assert "compression: none" in result.stderr
    assert not (tmp_path / "server").exists()
