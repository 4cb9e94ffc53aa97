"""An S3 bucket as a destination: AWS S3 or any S3-compatible store (MinIO, SeaweedFS, Ceph, R2).

An object appears only whole: a PUT, or the completion of a multipart upload, is atomic, so a
receiver listing the bucket never sees half a file and there is no temporary name to rename. An
object already there is never replaced unless the delivery says so (``--force``, ``backfill``):
a HEAD looks first, and the write itself is conditional (``If-None-Match: *``) where the store
honours it, so two runs racing cannot both win. Every byte is checked: the SHA-256 of the file
travels with the upload (``x-amz-checksum-sha256``, per part for a multipart upload), the store
refuses a body that does not match it, and the checksum the store reports for the object is
compared with the file's before the upload counts; a store that reports none is read back.

boto3 is imported here only, and this module only when an S3 tenant is delivered: the rest of
the product starts without it. Credentials come from the environment variables the tenant names
(``access_key_id_env``, ``secret_access_key_env``) or else the usual AWS credential chain; they
are handed to boto3 and never formatted into a message.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from activity_export import failpoints
from activity_export.config import S3Destination
from activity_export.destinations import Destination
from activity_export.errors import ExportError
from activity_export.naming import partial_name

log = logging.getLogger(__name__)

# Files up to this size go up in one PUT; bigger ones in parts, several at a time.
MULTIPART_THRESHOLD = 16 * 2**20
PART_SIZE = 8 * 2**20
MAX_PARTS = 10_000  # S3's limit per multipart upload
PARALLEL_PARTS = 8
READ_SIZE = 2**20
NOT_FOUND = ("404", "NoSuchKey", "NotFound")
CONDITIONAL = {"IfNoneMatch": "*"}  # create only: the write fails when the key holds an object


class S3Error(ExportError):
    """The store refused or could not be reached; the message says what and where, no secret."""


T = TypeVar("T")


class S3Bucket(Destination):
    """One tenant's bucket and prefix: connect once, publish many objects atomically.

    ``timeout`` bounds every network wait (connect, each answer); botocore retries transient
    failures (throttling, 5xx, broken connections) up to ``attempts`` times per request.
    """

    def __init__(
        self, config: S3Destination, brand: str, *, timeout: float = 30.0, attempts: int = 5
    ) -> None:
        self.config = config
        self.brand = brand
        self.timeout = timeout
        self.attempts = attempts
        self._client: Any = None
        self._conditional = True  # the store takes If-None-Match (until it says it does not)

    # -- Destination -----------------------------------------------------------------------------

    def describe(self) -> str:
        return self.config.describe()

    def open(self) -> None:
        """Make the client and check that the bucket is there and these credentials reach it."""
        self._call("reach", None, lambda s3: s3.head_bucket(Bucket=self.config.bucket))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def publish(self, local: Path, relative: PurePosixPath, *, replace: bool = True) -> str:
        """Upload ``local`` as the object ``prefix/relative``; return its ``s3://`` address.

        Without ``replace``, an object already there stays: the same bytes count as published,
        other bytes are an error. With it (``--force``, ``backfill``) the object is replaced, in
        one atomic step too.
        """
        key = self._key(relative)
        size = local.stat().st_size
        started = time.monotonic()
        if not replace and self._already_there(local, key):
            return self.config.url(key)
        if size > MULTIPART_THRESHOLD:
            self._put_in_parts(local, key, size, replace=replace)
        else:
            self._put_whole(local, key, replace=replace)
        elapsed = time.monotonic() - started
        log.info(
            "published %s to %s: %d bytes in %.2fs (%.1f MB/s)",
            local,
            self.config.url(key),
            size,
            elapsed,
            size / 1e6 / max(elapsed, 1e-6),
        )
        return self.config.url(key)

    def exists(self, relative: PurePosixPath) -> bool:
        return self._head(self._key(relative)) is not None

    def size(self, relative: PurePosixPath) -> int | None:
        head = self._head(self._key(relative))
        return None if head is None else int(head["ContentLength"])

    def sha256(self, relative: PurePosixPath) -> str | None:
        """SHA-256 of the object: the store's own full-object checksum when it has one, else read back."""
        key = self._key(relative)
        head = self._head(key)
        if head is None:
            return None
        reported = head.get("ChecksumSHA256")
        if reported and "-" not in reported and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT":
            return base64.b64decode(reported).hex()
        return self._read_back(key)

    # -- more than a Destination: check --connect, prune ----------------------------------------

    def check_writable(self) -> str:
        """Reach the bucket, write a probe object twice (the second time conditionally), remove it."""
        key = self.config.prefix + partial_name(f"activity-export-probe-{uuid.uuid4().hex[:8]}")
        body = b"activity-export probe\n"
        self._call("reach", None, lambda s3: s3.head_bucket(Bucket=self.config.bucket))
        self._call(
            "write a probe object",
            key,
            lambda s3: s3.put_object(Bucket=self.config.bucket, Key=key, Body=body),
        )
        try:
            try:
                self._call(
                    "write a probe object again",
                    key,
                    lambda s3: s3.put_object(Bucket=self.config.bucket, Key=key, Body=body, IfNoneMatch="*"),
                )
                guard = "conditional writes ignored by the store: a look before each upload guards instead"
            except _Refused as refused:
                if refused.code not in ("PreconditionFailed", "412"):
                    guard = "conditional writes not offered: a look before each upload guards instead"
                else:
                    guard = "conditional writes honoured"
        finally:
            self._call(
                "remove the probe object",
                key,
                lambda s3: s3.delete_object(Bucket=self.config.bucket, Key=key),
            )
        return f"{self.describe()}: signed in, wrote and removed a probe object ({guard})"

    def list_files(self, folder: PurePosixPath) -> list[str]:
        """Names of the objects directly in a folder under the prefix; sorted. No folder: no files."""
        base = self._key(folder) + "/" if folder.parts else self.config.prefix
        names: list[str] = []

        def list_all(s3: Any) -> None:
            pages = s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.config.bucket, Prefix=base, Delimiter="/"
            )
            for page in pages:
                names.extend(item["Key"][len(base) :] for item in page.get("Contents", []))

        self._call("list", base, list_all)
        return sorted(name for name in names if name)

    def delete(self, relative: PurePosixPath) -> None:
        """Remove one object under the prefix (for ``prune``); one already gone is not an error."""
        key = self._key(relative)
        self._call("delete", key, lambda s3: s3.delete_object(Bucket=self.config.bucket, Key=key))
        log.info("deleted %s", self.config.url(key))

    # -- publishing ------------------------------------------------------------------------------

    def _already_there(self, local: Path, key: str) -> bool:
        """Whether ``key`` already holds exactly this file (True); an error when it holds another."""
        if self._head(key) is None:
            return False
        there = self.sha256(PurePosixPath(key[len(self.config.prefix) :]))
        if there == _file_sha256(local):
            log.info("%s already holds these bytes: not uploaded again", self.config.url(key))
            return True
        raise S3Error(
            f"{self.describe()}: {self.config.url(key)} already holds other content; an object is "
            "replaced only by `run --force` or `backfill`: compare the two first"
        )

    def _put_whole(self, local: Path, key: str, *, replace: bool) -> None:
        digest = _file_sha256(local)
        checksum = base64.b64encode(bytes.fromhex(digest)).decode()

        failpoints.hit("mid-upload")  # one PUT: killed here or during it, no object appears

        def put(s3: Any, extra: dict[str, str]) -> dict[str, Any]:
            with local.open("rb") as body:
                answer: dict[str, Any] = s3.put_object(
                    Bucket=self.config.bucket,
                    Key=key,
                    Body=body,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=checksum,
                    **extra,
                )
                return answer

        answer = self._conditionally(key, local, put, replace=replace)
        if answer is None:
            return
        reported = answer.get("ChecksumSHA256")
        self._verify(key, digest, reported and base64.b64decode(reported).hex())

    def _put_in_parts(self, local: Path, key: str, size: int, *, replace: bool) -> None:
        """A multipart upload: parts in parallel, each with its SHA-256; the object appears at
        completion, whole. A failure (or an interruption) aborts the upload: nothing appears."""
        bucket = self.config.bucket
        part_size = max(PART_SIZE, -(-size // MAX_PARTS))
        self._abort_stale_uploads(key)
        upload = self._call(
            "start a multipart upload",
            key,
            lambda s3: s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256"),
        )
        upload_id = upload["UploadId"]

        def send(number: int) -> dict[str, Any]:
            with local.open("rb") as source:
                source.seek((number - 1) * part_size)
                body = source.read(part_size)
            checksum = base64.b64encode(hashlib.sha256(body).digest()).decode()
            answer = self._call(
                f"upload part {number} of",
                key,
                lambda s3: s3.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=checksum,
                ),
            )
            return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum}

        try:
            numbers = range(1, -(-size // part_size) + 1)
            with ThreadPoolExecutor(PARALLEL_PARTS, thread_name_prefix=f"upload {key}") as pool:
                parts = list(pool.map(send, numbers))
            failpoints.hit("mid-upload")
            composite = hashlib.sha256(b"".join(base64.b64decode(p["ChecksumSHA256"]) for p in parts))
            expected = f"{base64.b64encode(composite.digest()).decode()}-{len(parts)}"

            def complete(s3: Any, extra: dict[str, str]) -> dict[str, Any]:
                answer: dict[str, Any] = s3.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, **extra
                )
                return answer

            answer = self._conditionally(key, local, complete, replace=replace)
        except BaseException:
            self._abort_quietly(key, upload_id)
            raise
        if answer is None:
            self._abort_quietly(key, upload_id)
            return
        reported = answer.get("ChecksumSHA256")
        if reported == expected:  # every part's SHA-256 as the store computed it, as a whole
            return
        # no composite checksum from this store (or another form of it): read the object back
        self._verify(key, _file_sha256(local), None)

    def _conditionally(
        self, key: str, local: Path, write: Callable[[Any, dict[str, str]], dict[str, Any]], *, replace: bool
    ) -> dict[str, Any] | None:
        """Run ``write`` (a PUT or a completion) with ``If-None-Match: *`` among its arguments,
        unless ``replace``.

        None when the object turned up meanwhile with exactly these bytes (another run's upload,
        or a retried request of our own that had gone through).
        """
        conditional = not replace and self._conditional
        try:
            return self._call("upload", key, lambda s3: write(s3, CONDITIONAL if conditional else {}))
        except _Refused as refused:
            if refused.code in ("PreconditionFailed", "412") and conditional:
                if self._already_there(local, key):
                    return None
                raise  # pragma: no cover (_already_there raised)
            if conditional and refused.code in ("NotImplemented", "501"):
                log.info("%s does not take conditional writes: relying on the look before", self.describe())
                self._conditional = False
                return self._call("upload", key, lambda s3: write(s3, {}))
            raise

    def _verify(self, key: str, expected: str, reported: str | None) -> None:
        """Compare the object's SHA-256 (the store's, else read back) with the file's; on a
        mismatch the object is removed and the delivery fails."""
        found = reported or self._read_back(key)
        if found == expected:
            return
        self._call("remove the damaged", key, lambda s3: s3.delete_object(Bucket=self.config.bucket, Key=key))
        raise S3Error(
            f"{self.describe()}: {self.config.url(key)} came out with SHA-256 {found}, the file has "
            f"{expected}; the object was removed"
        )

    def _abort_stale_uploads(self, key: str) -> None:
        """Abort the unfinished multipart uploads of this very key (left by a killed run)."""

        def stale(s3: Any) -> list[str]:
            answer = s3.list_multipart_uploads(Bucket=self.config.bucket, Prefix=key)
            return [u["UploadId"] for u in answer.get("Uploads", []) if u["Key"] == key]

        try:
            uploads = self._call("list unfinished uploads of", key, stale)
        except S3Error as exc:  # not allowed to list them: they expire by the bucket's lifecycle
            log.debug("could not list unfinished uploads of %s: %s", key, exc)
            return
        for upload_id in uploads:
            log.info("aborting an unfinished upload of %s from an earlier run", self.config.url(key))
            self._abort_quietly(key, upload_id)

    def _abort_quietly(self, key: str, upload_id: str) -> None:
        try:
            self._call(
                "abort the upload of",
                key,
                lambda s3: s3.abort_multipart_upload(Bucket=self.config.bucket, Key=key, UploadId=upload_id),
            )
        except S3Error as exc:
            log.debug("could not abort the upload of %s: %s", key, exc)

    # -- look-ups --------------------------------------------------------------------------------

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            answer: dict[str, Any] = self._call(
                "look up",
                key,
                lambda s3: s3.head_object(Bucket=self.config.bucket, Key=key, ChecksumMode="ENABLED"),
            )
        except _Refused as refused:
            if refused.code in NOT_FOUND:
                return None
            raise
        return answer

    def _read_back(self, key: str) -> str | None:
        def digest(s3: Any) -> str:
            hashed = hashlib.sha256()
            for chunk in _chunks(s3.get_object(Bucket=self.config.bucket, Key=key)["Body"]):
                hashed.update(chunk)
            return hashed.hexdigest()

        try:
            return self._call("read back", key, digest)
        except _Refused as refused:
            if refused.code in NOT_FOUND:
                return None
            raise

    def _key(self, relative: PurePosixPath) -> str:
        relative = PurePosixPath(relative)
        if relative.is_absolute() or ".." in relative.parts:
            raise S3Error(f"{self.describe()}: {relative} is absolute or climbs out of the prefix")
        return self.config.prefix + str(relative)

    # -- the client ------------------------------------------------------------------------------

    def _s3(self) -> Any:
        """The boto3 client, made at first use (boto3 is imported only here)."""
        if self._client is None:
            self._client = make_client(self.config, timeout=self.timeout, attempts=self.attempts)
        return self._client

    def _call(self, what: str, key: str | None, action: Callable[[Any], T]) -> T:
        """Run ``action`` with the client; a refusal or a network failure as an S3Error that says
        what was done where (botocore's own messages carry no secret: they are kept)."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        where = self.config.url(key) if key is not None else f"bucket {self.config.bucket}"
        try:
            return action(self._s3())
        except ClientError as exc:
            code = _code(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            detail = exc.response.get("Error", {}).get("Message") or ""
            hint = _hint(code, status)
            raise _Refused(
                f"{self.describe()}: could not {what} {where}: {code} (HTTP {status})"
                + (f" {detail}" if detail and detail != code else "")
                + (f"; {hint}" if hint else ""),
                code,
            ) from None
        except NoCredentialsError:
            raise S3Error(
                f"{self.describe()}: could not {what} {where}: no credentials; set "
                "destination.access_key_id_env and secret_access_key_env, or give the AWS credential "
                "chain some (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, a role)"
            ) from None
        except BotoCoreError as exc:
            raise S3Error(f"{self.describe()}: could not {what} {where}: {exc}") from None


class _Refused(S3Error):
    """The store answered with an error (``code``: its error code, or the HTTP status)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def make_client(config: S3Destination, *, timeout: float = 30.0, attempts: int = 5) -> Any:
    """A boto3 S3 client for the destination, with the credentials its ``*_env`` settings name."""
    for name in ("botocore", "boto3", "s3transfer", "urllib3"):
        quiet = logging.getLogger(name)
        if quiet.level == logging.NOTSET:  # their debug output shows every request's headers
            quiet.setLevel(logging.WARNING)
    import boto3
    from botocore.config import Config

    keys: dict[str, str] = {}
    for setting, argument in (
        ("access_key_id_env", "aws_access_key_id"),
        ("secret_access_key_env", "aws_secret_access_key"),
    ):
        name = getattr(config, setting)
        if name is None:
            continue
        value = os.environ.get(name)
        if not value:
            raise S3Error(
                f"{config.describe()}: destination.{setting}: environment variable {name} is not set "
                "(it must hold the credential)"
            )
        keys[argument] = value
    session = boto3.session.Session()
    settings = Config(
        connect_timeout=timeout,
        read_timeout=timeout,
        retries={"max_attempts": attempts, "mode": "standard"},
        # an S3-compatible store is addressed as https://host/bucket/key; AWS by bucket host name
        s3={"addressing_style": "path" if config.endpoint_url else "auto"},
        # the SHA-256 is sent where it matters; no CRC32 of the SDK's own, which some stores refuse
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        user_agent_extra="activity-export",
    )
    return session.client(
        "s3",
        region_name=config.region,
        endpoint_url=config.endpoint_url,
        config=settings,
        **keys,
    )


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code") or "")


def _hint(code: str, status: int | None) -> str:
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403") or status == 403:
        return "check the credentials (the *_env variables or the AWS credential chain) and the bucket policy"
    if code in ("NoSuchBucket",) or (code == "404" and status == 404):
        return "is the bucket name right, and does the bucket exist (the loader does not create it)?"
    if code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "301"):
        return "the bucket is in another region: set destination.region to the bucket's"
    return ""


def _chunks(body: Any) -> Iterator[bytes]:
    while chunk := body.read(READ_SIZE):
        yield chunk


def _file_sha256(local: Path) -> str:
    hashed = hashlib.sha256()
    with local.open("rb") as source:
        while chunk := source.read(READ_SIZE):
            hashed.update(chunk)
    return hashed.hexdigest()
