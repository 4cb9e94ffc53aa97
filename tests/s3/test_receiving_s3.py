"""docs/receiving.md's S3 snippet, run as printed against the test store: DuckDB's httpfs reads
a delivered object where it is, with the receiver's read-only credentials, into the same table
the page's local snippet loads. Only the secret's settings change: this store's endpoint and keys
instead of the credential chain. The extension is installed from its wheel beforehand (a fresh
DuckDB would download it), so the page's own `install httpfs` finds it there."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import duckdb_extension_httpfs  # type: ignore[import-untyped]

from tests.support.receiving import GOLDEN, snippet
from tests.support.seaweedfs import READER_ACCESS_KEY, READER_SECRET_KEY, SeaweedServer

BUCKET = "brandnaam-exports"  # as the page names them
KEY = "activity-export/activity_BRANDNAAM_20261125.csv"


def _httpfs_file() -> Path:
    root = Path(duckdb_extension_httpfs.__file__).parent / "extensions"
    [found] = sorted(root.glob(f"v{duckdb.__version__}/**/httpfs.duckdb_extension"))
    return found


def test_the_s3_snippet_loads_a_delivered_object_as_the_local_one_loads_the_file(
    s3_server: SeaweedServer, tmp_path: Path
) -> None:
    client = s3_server.client()
    if BUCKET not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=BUCKET)
    golden = GOLDEN / "activity_GOLD_20261125.csv"
    client.put_object(Bucket=BUCKET, Key=KEY, Body=golden.read_bytes())

    printed = snippet("duckdb-s3")
    endpoint = s3_server.endpoint.removeprefix("http://")
    sql, replaced = re.subn(
        r"create secret exports \(.*?\);",
        f"create secret exports (type s3, key_id '{READER_ACCESS_KEY}', secret '{READER_SECRET_KEY}', "
        f"region 'us-east-1', endpoint '{endpoint}', url_style 'path', use_ssl false);",
        printed,
        flags=re.S,
    )
    assert replaced == 1, printed
    create_activity = snippet("duckdb").split(";")[0] + ";"

    for _night in range(2):  # a second load of the same object changes nothing, as the page says
        with duckdb.connect(str(tmp_path / "receiver.duckdb")) as receiver:
            receiver.execute(f"set extension_directory = '{tmp_path / 'extensions'}'")
            receiver.execute(f"install '{_httpfs_file()}'")
            receiver.execute(create_activity)
            receiver.execute(sql)
            from_bucket = receiver.sql("select * from activity order by eventid").fetchall()

    # the same file read from disk with the same statement (the page: only the path changes)
    insert = re.search(r"insert or ignore into activity.*?\n\);", printed, flags=re.S)
    assert insert is not None, printed
    local = duckdb.connect()
    local.execute(create_activity)
    local.execute(insert.group(0).replace(f"'s3://{BUCKET}/{KEY}'", f"'{golden}'"))
    assert from_bucket == local.sql("select * from activity order by eventid").fetchall()
    assert len(from_bucket) > 0
