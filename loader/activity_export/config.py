"""Tenant configuration (``tenants.yml``): schema, defaults, and validation before any work starts.

Every setting has a default and a description here; ``docs/configuration.md`` is the reference a
user reads. Errors name the tenant, the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
import re
from collections.abc import Iterable
from datetime import date, time
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from activity_export import catalogue, naming
from activity_export.catalogue import Catalogue
from activity_export.errors import ConfigError, shown_value
from activity_export.folders import read_regular_file
from activity_export.naming import KINDS
from activity_export.periods import Period

log = logging.getLogger(__name__)

# Extensions that name a format: a file of the other format may not carry them.
FORMAT_EXTENSIONS = {"csv": {"csv", "tsv", "txt"}, "parquet": {"parquet", "pq"}}

# Used with fullmatch: "$" would also match before a trailing newline.
BRAND_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# The periods a run can reach without date arithmetic leaving what Python and DuckDB represent.
EARLIEST_START = date(1970, 1, 1)
LATEST_START = date(2999, 12, 31)
MAX_RETENTION_DAYS = 36_500
DEFAULT_FILE_MODE = "0640"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _plain_text(value: Any, what: str) -> Any:
    """A non-empty string without control characters (a NUL would only fail at the first file)."""
    if isinstance(value, str):
        if not value.strip():
            raise ValueError(f"must be a non-empty {what}")
        if any(not ch.isprintable() for ch in value):
            raise ValueError(f"a {what} may not hold control characters")
        if len(value) > 4096:
            raise ValueError(f"a {what} of at most 4096 characters")
    return value


def _environment_name(value: str | None) -> str | None:
    """A setting that names an environment variable holding a secret: a name, never the secret."""
    if value is not None and not ENV_NAME_PATTERN.fullmatch(value):
        raise ValueError(
            "must be the NAME of an environment variable (letters, digits, '_'), not the secret itself"
        )
    return value


class LocalDestination(_Strict):
    """A directory on this machine: the embedded default, and handy for tests."""

    type: Literal["local"]
    root: Path = Field(description="Directory the tenant's folder and files are placed under.")

    @field_validator("root", mode="before")
    @classmethod
    def _root_folder(cls, value: Any) -> Any:
        return _plain_text(value, "folder")

    def describe(self) -> str:
        """Where the files go, as every command shows it and the ledger records it."""
        return f"local folder {self.root}"

    @property
    def key(self) -> str:
        """A destination's identity, without secrets: ``sftp://user@host:port/root`` or ``local:/root``.

        Two tenants with the same key write into the same folder tree; a tenant whose key changes
        writes somewhere else than its deliveries so far.
        """
        return f"local:{self.root.resolve()}"


class SftpDestination(_Strict):
    """An SFTP server; host keys are checked strictly against ``known_hosts``."""

    type: Literal["sftp"]
    host: str = Field(min_length=1, description="Server name or address.")
    port: int = Field(22, ge=1, le=65535, description="TCP port.")
    username: str = Field(min_length=1, description="Login name.")
    private_key: Path | None = Field(None, description="Private key file (ed25519, ecdsa, rsa).")
    passphrase_env: str | None = Field(
        None, description="Environment variable holding the private key's passphrase."
    )
    password_env: str | None = Field(
        None, description="Environment variable holding the password (instead of a key)."
    )
    known_hosts: Path = Field(description="OpenSSH known_hosts file the server key must be in.")
    root: str = Field("/", description="Remote folder the tenant's files go under.")
    retention_days: int | None = Field(
        None,
        ge=1,
        le=MAX_RETENTION_DAYS,
        description="`prune` deletes this product's files older than this.",
    )

    @field_validator("host", "username", "root", "private_key", "known_hosts", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        return _plain_text(value, "value")

    @field_validator("host")
    @classmethod
    def _host_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._:\[\]-]{1,253}", value):
            raise ValueError("must be a host name or IP address")
        return value

    @model_validator(mode="after")
    def _one_way_to_log_in(self) -> SftpDestination:
        if (self.private_key is None) == (self.password_env is None):
            raise ValueError("set exactly one of private_key or password_env")
        if self.passphrase_env and self.private_key is None:
            raise ValueError("passphrase_env goes with private_key")
        return self

    @field_validator("password_env", "passphrase_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        return _environment_name(value)

    def describe(self) -> str:
        """Where the files go, as every command shows it and the ledger records it (no secret)."""
        return self.url(self.root)

    @property
    def key(self) -> str:
        """A destination's identity, without secrets: ``sftp://user@host:port/root`` or ``local:/root``.

        Two tenants with the same key write into the same folder tree; a tenant whose key changes
        writes somewhere else than its deliveries so far.
        """
        host = f"[{self.host}]" if ":" in self.host else self.host
        root = PurePosixPath("/") / PurePosixPath(self.root or "/")
        return f"sftp://{self.username}@{host.lower()}:{self.port}{root}"

    def url(self, path: str | PurePosixPath) -> str:
        """``sftp://user@host:port/path`` of a path on this server, for logs and messages."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"sftp://{self.username}@{host}:{self.port}/{str(path).lstrip('/')}"

    def secret_env_vars(self) -> list[str]:
        """The environment variables this destination reads secrets from."""
        return [name for name in (self.password_env, self.passphrase_env) if name]


# S3's bucket naming rules (general purpose buckets): 3 to 63 lowercase letters, digits, dots and
# hyphens, a letter or digit at both ends
BUCKET_PATTERN = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# One folder of a prefix: S3's "safe characters" for object key names, nothing a shell or URL bends
PREFIX_PART_PATTERN = re.compile(r"[A-Za-z0-9!_.*'()=+-]{1,255}")
REGION_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


class S3Destination(_Strict):
    """An S3 bucket: AWS S3 or any S3-compatible store (MinIO, SeaweedFS, Ceph, R2, ...)."""

    type: Literal["s3"]
    bucket: str = Field(description="Bucket name (S3's rules: 3-63 of a-z, 0-9, '.', '-').")
    prefix: str = Field(
        "", description="Key prefix the tenant's folders and files go under (plays the part of root)."
    )
    region: str | None = Field(
        None, description="Region, e.g. eu-west-1; without it, the AWS configuration's (AWS_REGION)."
    )
    endpoint_url: str | None = Field(
        None, description="https:// URL of an S3-compatible store; without it, AWS S3."
    )
    access_key_id_env: str | None = Field(
        None, description="Environment variable holding the access key id; else the AWS credential chain."
    )
    secret_access_key_env: str | None = Field(
        None, description="Environment variable holding the secret access key (with access_key_id_env)."
    )
    retention_days: int | None = Field(
        None,
        ge=1,
        le=MAX_RETENTION_DAYS,
        description="`prune` deletes this product's objects older than this.",
    )

    @field_validator("bucket", "prefix", "region", "endpoint_url", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        if value == "":
            return value  # an empty prefix is the bucket's top; the other keys refuse it below
        return _plain_text(value, "value")

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        rules = (
            "must be an S3 bucket name: 3 to 63 lowercase letters, digits, '.' and '-', "
            "beginning and ending with a letter or digit (no s3:// and no folder: those go in prefix)"
        )
        if not BUCKET_PATTERN.fullmatch(value) or ".." in value:
            raise ValueError(rules)
        if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", value):
            raise ValueError(f"{rules}; not an IP address")
        return value

    @field_validator("prefix")
    @classmethod
    def _key_prefix(cls, value: str) -> str:
        if value in ("", "/"):
            return ""
        parts = value.strip("/").split("/")
        if value.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise ValueError(
                "must be a relative key prefix such as activity-export/ : no leading '/', "
                "no empty, '.' or '..' folder"
            )
        if not all(PREFIX_PART_PATTERN.fullmatch(part) for part in parts) or len(value) > 512:
            raise ValueError(
                "folders of letters, digits and !_.*'()=+- only, separated by '/', at most 512 characters"
            )
        return "/".join(parts) + "/"  # a folder: the files go below it

    @field_validator("region")
    @classmethod
    def _region_name(cls, value: str | None) -> str | None:
        if value is not None and not REGION_PATTERN.fullmatch(value):
            raise ValueError("must be a region name such as eu-west-1 (lowercase letters, digits, '-')")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return value
        allowed = "must be an https:// URL of the S3 API without a path, e.g. https://s3.example.nl"
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError:
            raise ValueError(f"{allowed}; this one has a malformed host or port") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(allowed)
        if parts.username is not None or parts.password is not None:
            raise ValueError(f"{allowed}; no login in it (credentials go in the *_env variables)")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{allowed}; the bucket goes in bucket, folders in prefix")
        if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
            # the files hold e-mail addresses: in clear text only to a store on this machine
            raise ValueError(f"{allowed}; http:// only to a store on this machine (localhost)")
        if port == 0:
            raise ValueError(f"{allowed}; port 0 is not a port")
        return value.rstrip("/")

    @field_validator("access_key_id_env", "secret_access_key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        return _environment_name(value)

    @model_validator(mode="after")
    def _both_or_neither(self) -> S3Destination:
        if (self.access_key_id_env is None) != (self.secret_access_key_env is None):
            raise ValueError(
                "set both access_key_id_env and secret_access_key_env, or neither (then the AWS "
                "credential chain: AWS_ACCESS_KEY_ID, AWS_PROFILE, an instance role, ...)"
            )
        return self

    @property
    def endpoint(self) -> str:
        """The S3 API's address: ``endpoint_url``, or AWS S3 (``https://s3.amazonaws.com``)."""
        return self.endpoint_url or "https://s3.amazonaws.com"

    def describe(self) -> str:
        """Where the files go, as every command shows it and the ledger records it (no secret)."""
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"{self.url(self.prefix)}{where}"

    @property
    def key(self) -> str:
        """A destination's identity, without secrets: ``s3:endpoint/bucket/prefix``.

        Two tenants with the same key write into the same folder tree; a tenant whose key changes
        writes somewhere else than its deliveries so far.
        """
        parts = urlsplit(self.endpoint)
        host = parts.hostname or ""
        host = f"[{host}]" if ":" in host else host
        default = {"https": 443, "http": 80}[parts.scheme]
        port = f":{parts.port}" if parts.port not in (None, default) else ""
        return f"s3:{parts.scheme}://{host.lower()}{port}/{self.bucket}/{self.prefix}"

    def url(self, key: str | PurePosixPath) -> str:
        """``s3://bucket/key`` of an object, for logs and messages."""
        return f"s3://{self.bucket}/{str(key).lstrip('/')}"

    def secret_env_vars(self) -> list[str]:
        """The environment variables this destination reads secrets from."""
        return [name for name in (self.access_key_id_env, self.secret_access_key_env) if name]


Destination = Annotated[LocalDestination | SftpDestination | S3Destination, Field(discriminator="type")]


class Notify(_Strict):
    """A webhook that gets one signed JSON event per delivered, failed or overdue period."""

    url: str = Field(description="http(s) URL the events are POSTed to.")
    secret_env: str = Field(
        description="Environment variable holding the Standard Webhooks secret (whsec_ and base64) "
        "the events are signed with."
    )
    timeout_seconds: float = Field(
        10, gt=0, le=120, description="Per attempt, in all: connect, send and the whole answer."
    )
    retries: int = Field(3, ge=0, le=10, description="Attempts after the first one fails.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        allowed = "must be an http:// or https:// URL, e.g. https://hooks.example.nl/export"
        if not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", value):
            raise ValueError(allowed)
        try:  # what the sender parses at every event: "http://[::1/hook" must fail here, not there
            parts = urlsplit(value)
            parts.port  # noqa: B018 (raises on a port that is not a number from 0 to 65535)
        except ValueError:
            raise ValueError(f"{allowed}; this one has a malformed host or port") from None
        if not parts.hostname:
            raise ValueError(f"{allowed}; this one has no host")
        return value

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        _environment_name(value)
        return value


def _catalogue(info: ValidationInfo) -> Catalogue:
    """The column catalogue a tenant is validated against: the one ``load_config`` read from the
    dbt project, else (a tenant built in code) the working folder's project."""
    given = (info.context or {}).get("catalogue")
    return given if isinstance(given, Catalogue) else catalogue.load(Path())


class Tenant(_Strict):
    """One brand's delivery: period, file format, and destination."""

    _catalogue: Catalogue = PrivateAttr()
    brand: str = Field(description="Brand code as in the source tables.")
    timezone: str = Field("Europe/Amsterdam", description="IANA timezone of periods and dates.")
    interval: Literal["hourly", "daily", "weekly"] = Field("daily", description="Period length.")
    run_at: str = Field(
        "06:00",
        description="Local HH:MM at which a finished period is due (minutes past the hour "
        "for hourly tenants).",
    )
    start: date | None = Field(None, description="First period to deliver.")
    format: Literal["csv", "parquet"] = Field(
        "csv",
        description="csv: delimited text; parquet: one Parquet file per kind, typed columns "
        "(delimiter, header, compression and timestamps do not apply).",
    )
    extension: str = Field("csv", description="File extension, without the dot (parquet: parquet).")
    delimiter: str = Field(";", description='Exactly one character; "\\t" for tab.')
    header: bool = Field(True, description="Write a line of column titles.")
    compression: Literal["none", "gzip", "zstd"] = Field("none", description="Adds .gz / .zst.")
    timestamps: Literal["local", "offset", "utc"] = Field(
        "local",
        description="How dates are written: local time without offset, local time with its UTC "
        "offset (unambiguous in the repeated hour of a DST change), or UTC with a Z.",
    )
    file_name: str | None = Field(None, description="File name template.")
    folder: str = Field("", description="Folder template under the destination root.")
    overdue_after_hours: float = Field(
        6,
        gt=0,
        le=24 * 366,
        description="A due period still undelivered this many hours after it became due is overdue.",
    )
    manifest: bool = Field(
        False, description="Write a Frictionless Data Package (datapackage.json) after the data files."
    )
    encryption: Literal["none", "pgp"] = Field(
        "none", description="pgp: encrypt each data file to the recipients (OpenPGP); adds .gpg."
    )
    recipients: list[Path] = Field(
        default_factory=list, description="Public key files (armored or binary) to encrypt to."
    )
    erasures: bool = Field(False, description="Deliver a third file listing the period's erasures.")
    notify: Notify | None = Field(None, description="Webhook for delivered, failed and overdue periods.")
    file_mode: str = Field(
        DEFAULT_FILE_MODE,
        description='Permissions of delivered files, octal, e.g. "0640"; folders get the matching '
        "search (x) bits.",
    )
    extra_fields: dict[Literal["activity", "broadcast"], list[str]] = Field(
        default_factory=dict, description="Additional fields appended after the standard ones."
    )
    columns: dict[Literal["activity", "broadcast"], dict[str, str]] = Field(
        default_factory=dict, description="Renamed column titles."
    )
    destination: Destination

    @model_validator(mode="before")
    @classmethod
    def _extension_of_the_format(cls, data: Any) -> Any:
        """Without an ``extension``, the format's own: ``csv`` or ``parquet``."""
        if isinstance(data, dict) and "extension" not in data and data.get("format") == "parquet":
            return {**data, "extension": "parquet"}
        return data

    @field_validator("brand")
    @classmethod
    def _brand_code(cls, value: str) -> str:
        if not BRAND_PATTERN.fullmatch(value):
            raise ValueError("a brand code holds 1 to 64 letters, digits, '_' and '-', nothing else")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        # the periods are computed with Python's zoneinfo, the dates in the files by DuckDB's ICU:
        # both must know the name (ICU knows neither posix/... nor right/... nor localtime)
        if value not in writer_timezones():
            raise ValueError("not a known IANA timezone, e.g. Europe/Amsterdam or UTC")
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not a known IANA timezone, e.g. Europe/Amsterdam or UTC") from None
        return value

    @field_validator("start")
    @classmethod
    def _reachable_start(cls, value: date | None) -> date | None:
        if value is not None and not EARLIEST_START <= value <= LATEST_START:
            raise ValueError(f"must be a date from {EARLIEST_START} to {LATEST_START}")
        return value

    @field_validator("header", "manifest", "erasures", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            # pydantic would take "yes", "on", 1 and "0" for booleans: a typo must not switch a file on
            raise ValueError("must be true or false, unquoted")
        return value

    @field_validator("file_mode", mode="before")
    @classmethod
    def _octal_mode(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML 1.1 reads an unquoted 0640 as the number 416
            raise ValueError('must be quoted octal permissions, e.g. file_mode: "0640"')
        if not isinstance(value, str) or not re.fullmatch(r"0?[0-7]{3}", value):
            raise ValueError('must be octal permissions such as "0640" or "0600"')
        mode = int(value, 8)
        if mode & 0o600 != 0o600:
            raise ValueError("the owner must be able to read and write the files (at least 0600)")
        if mode & 0o002:
            raise ValueError("files holding e-mail addresses may not be writable by everyone")
        return value

    @field_validator("run_at", mode="before")
    @classmethod
    def _clock_time(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML 1.1 reads an unquoted 06:00 as the base-60 number 360
            raise ValueError('must be a quoted local time "HH:MM", e.g. run_at: "06:00"')
        if not isinstance(value, str) or not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError('must be a local time "HH:MM" (00:00 to 23:59), e.g. "06:00"')
        return value

    @field_validator("extension")
    @classmethod
    def _plain_extension(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", value):
            raise ValueError("letters, digits, '_' and '-' only: no dot, no path separator")
        return value

    @field_validator("delimiter", mode="before")
    @classmethod
    def _one_character(cls, value: Any) -> Any:
        if value == "\\t":
            value = "\t"
        if not isinstance(value, str) or len(value) != 1:
            # DuckDB would silently use only the first character of a longer delimiter
            raise ValueError('must be exactly one character, e.g. ";", "|", "," or "\\t" for tab')
        if value in {'"', "\n", "\r"}:
            raise ValueError("may not be the quote character '\"' or a line break")
        if not value.isascii() or (not value.isprintable() and value != "\t"):
            # DuckDB's CSV writer takes one byte: a multi-byte character crashes it
            raise ValueError('must be a printable ASCII character or "\\t" (tab)')
        return value

    @field_validator("extension", "header", "compression")
    @classmethod
    def _fits_the_format(cls, value: Any, info: ValidationInfo) -> Any:
        """Refuse what a file of the tenant's format cannot be: a Parquet file named .csv, gzipped
        or without titles. delimiter and timestamps are left as they are: a defaults' value for
        the CSV tenants cannot be misread by a Parquet reader."""
        form = info.data.get("format")  # absent when format itself was refused
        if info.field_name == "extension" and form is not None:
            other = "parquet" if form == "csv" else "csv"
            if value.lower() in FORMAT_EXTENSIONS[other]:
                raise ValueError(
                    f"names a {other} file, but format: {form} writes {form}; leave extension out "
                    f"(it follows the format) or give this tenant its own, e.g. extension: {form}"
                )
        elif info.field_name == "compression" and form == "parquet" and value != "none":
            raise ValueError(
                "does not apply to format: parquet, which compresses its column chunks itself "
                "(zstd) and is never wrapped in .gz or .zst; give this tenant compression: none"
            )
        elif info.field_name == "header" and form == "parquet" and value is False:
            raise ValueError(
                "does not apply to format: parquet, whose columns always carry their titles; "
                "give this tenant header: true or leave it out"
            )
        return value

    @field_validator("extra_fields")
    @classmethod
    def _catalogue_fields(cls, value: dict[str, list[str]], info: ValidationInfo) -> dict[str, list[str]]:
        for kind, fields in value.items():
            allowed = _catalogue(info).extras(kind)
            for field in fields:
                if field not in allowed:
                    raise ValueError(
                        f"{kind}: {field!r} is not an extra field; allowed: {', '.join(allowed) or 'none'}"
                    )
            if len(set(fields)) != len(fields):
                raise ValueError(f"{kind}: a field is listed twice")
        return value

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Tenant:
        self._catalogue = _catalogue(info)
        if self.encryption == "pgp" and not self.recipients:
            raise ValueError("encryption = 'pgp' needs recipients: at least one public key file")
        if self.encryption == "none" and self.recipients:
            raise ValueError("recipients are only used with encryption: pgp")
        for kind, renames in self.columns.items():
            known = self.fields(kind)
            for column, title in renames.items():
                if column not in known:
                    raise ValueError(
                        f"columns.{kind}.{column}: {column!r} is not a column of this tenant's "
                        f"{kind} file; its columns: {', '.join(known)}"
                    )
                if not title.strip() or any(not ch.isprintable() for ch in title) or len(title) > 256:
                    raise ValueError(
                        f"columns.{kind}.{column} = {shown_value(title)}: a title must be one non-empty "
                        "line of at most 256 characters, without control characters"
                    )
        for each in KINDS:
            titles = self.titles(each)
            doubles = sorted({t for t in titles if titles.count(t) > 1})
            if doubles:
                which = [f for f, t in zip(self.fields(each), titles, strict=True) if t == doubles[0]]
                raise ValueError(
                    f"columns.{each}: columns {' and '.join(which)} both get the title "
                    f"{doubles[0]!r}; every title must be different"
                )
        naming.check_naming(self)
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def file_mode_bits(self) -> int:
        """``file_mode`` as a number, e.g. 0o640."""
        return int(self.file_mode, 8)

    @property
    def folder_mode_bits(self) -> int:
        """Folders: ``file_mode`` plus the search bit wherever it grants reading (0640 -> 0750)."""
        return folder_mode(self.file_mode_bits)

    @property
    def run_at_time(self) -> time:
        return time.fromisoformat(self.run_at)

    # File naming lives in ``naming``; these are the tenant's shorthands for it.

    @property
    def name_template(self) -> str:
        return naming.name_template(self)

    def data_kinds(self) -> tuple[str, ...]:
        """The data files of a period, in delivery order: activity, broadcast (, erasure)."""
        return naming.data_kinds(self)

    def delivered_kinds(self) -> tuple[str, ...]:
        """Every file of a period, in delivery order; the manifest, when enabled, is last."""
        return naming.delivered_kinds(self)

    def suffix(self, kind: str) -> str:
        """What follows the template's name: ``.gz``/``.zst``, then ``.gpg`` (data files only)."""
        return naming.suffix(self, kind)

    @property
    def catalogue(self) -> Catalogue:
        """The fields the files can hold, from the dbt project the tenant was read with."""
        return self._catalogue

    def fields(self, kind: str) -> tuple[str, ...]:
        """The file's fields in order: the standard columns, then the configured extras."""
        return self._catalogue.standard(kind) + self.extras(kind)

    def extras(self, kind: str) -> tuple[str, ...]:
        """The configured additional fields of one kind of file, in order."""
        return next((tuple(v) for k, v in self.extra_fields.items() if k == kind), ())

    def renames(self, kind: str) -> dict[str, str]:
        """Column renames of one kind of file: field -> title."""
        return next((dict(v) for k, v in self.columns.items() if k == kind), {})

    def titles(self, kind: str) -> list[str]:
        """The header line's titles, after renames."""
        renames = self.renames(kind)
        return [renames.get(field, field) for field in self.fields(kind)]

    def relative_path(self, kind: str, period: Period) -> PurePosixPath:
        """Where a file lands under the destination root (see ``naming.relative_path``)."""
        return naming.relative_path(self, kind, period)

    def manifest_path(self, period: Period) -> PurePosixPath:
        """The manifest is named like the data files, with kind ``manifest`` and ``.json``."""
        return naming.relative_path(self, naming.MANIFEST, period)

    def missing_secrets(self) -> list[str]:
        """Environment variables this tenant needs that are not set (checked by ``check``)."""
        destination = self.destination
        names = destination.secret_env_vars() if not isinstance(destination, LocalDestination) else []
        if self.notify is not None:
            names.append(self.notify.secret_env)
        return [name for name in names if not os.environ.get(name)]


def folder_mode(file_mode: int) -> int:
    """The folder permissions matching a file mode: x wherever r is granted (0640 -> 0750)."""
    return file_mode | ((file_mode & 0o444) >> 2)


@functools.cache
def writer_timezones() -> frozenset[str]:
    """The timezone names DuckDB's ICU extension knows: the writer formats dates with it."""
    from importlib.metadata import version

    from activity_export import duckdb_timezones

    shipped_version, names = duckdb_timezones.shipped()
    if version("duckdb") == shipped_version:  # the list, without opening DuckDB
        return names
    return duckdb_timezones.live_names()


class Config(BaseModel):
    """A validated ``tenants.yml``."""

    model_config = ConfigDict(frozen=True)

    path: Path
    tenants: dict[str, Tenant]

    def tenant(self, brand: str) -> Tenant:
        try:
            return self.tenants[brand]
        except KeyError:
            known = ", ".join(sorted(self.tenants)) or "none"
            raise ConfigError(f"{self.path}: no tenant {brand!r}; configured tenants: {known}") from None

    def selected(self, brands: list[str] | None) -> list[Tenant]:
        """The tenants to work on: all, or the named ones (each must exist)."""
        if not brands:
            return list(self.tenants.values())
        return [self.tenant(brand) for brand in brands]


SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class StrictLoader(SAFE_LOADER):  # type: ignore[misc]
    """YAML read strictly: a key twice in one mapping, an alias (``*name``) and a value whose
    construction fails are errors with a line number; booleans are YAML 1.2's (``true``,
    ``false``), so ``yes``, ``no``, ``on`` and ``off`` stay text; and dates stay text, checked
    by the schema (``2026-13-01`` is a clear refusal, not a traceback)."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:  # noqa: FBT001, FBT002 (PyYAML's)
        if node in self.constructed_objects or node in self.recursive_objects:
            # the same node reached twice: an alias. Refused outright, so that a few hundred bytes
            # of nested aliases can never expand into billions of values
            raise yaml.constructor.ConstructorError(
                None, None, "aliases (*name) are not allowed in tenants.yml", node.start_mark
            )
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError):
            raise yaml.constructor.ConstructorError(
                None, None, "a value that cannot be read", node.start_mark
            ) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:  # noqa: FBT001, FBT002
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise yaml.constructor.ConstructorError(
                    None, None, "merge keys (<<) are not allowed in tenants.yml", key_node.start_mark
                )
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:
                continue  # an unhashable key: the constructor says so below
            if first != key_node.start_mark.line + 1:
                raise DuplicateKeyError(key, first, key_node.start_mark.line + 1)
        # the keys are constructed above: construct the mapping from their values
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.constructed_objects[key_node]
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


class DuplicateKeyError(yaml.YAMLError):
    """A key given twice in one mapping: YAML keeps the last one silently, we refuse both."""

    def __init__(self, key: Any, first: int, again: int) -> None:
        super().__init__(f"duplicate key {_label(key)!r} at line {again} (first at line {first})")
        self.key, self.first, self.again = key, first, again


# YAML 1.2 booleans: YAML 1.1's yes/no/on/off (and y/n) are text, never a brand called True
StrictLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"}
    ]
    for first, resolvers in SAFE_LOADER.yaml_implicit_resolvers.items()
}
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_config(path: Path, project_dir: Path = Path()) -> Config:
    """Read and validate ``tenants.yml`` against the column catalogue of the dbt project in
    ``project_dir``; every problem is reported at once as a ConfigError."""
    columns = catalogue.load(project_dir)
    try:
        text = read_regular_file(path).decode("utf-8")
        # libyaml's safe loader when present: the same documents, ten times faster on many tenants
        raw = yaml.load(text, Loader=StrictLoader)  # noqa: S506 (a SafeLoader or its libyaml twin)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: configuration file not found (looked for {path.absolute()}); "
            "give its place with --config PATH or the ACTIVITY_EXPORT_CONFIG environment variable"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}") from None
    except DuplicateKeyError as exc:
        raise ConfigError(f"{path}: {exc}; give every key once") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML{_yaml_position(exc, text)}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid YAML: nested too deeply") from None
    return parse_config(raw, path, columns)


# What PyYAML quotes in a message that is YAML's own syntax (an indicator, a token name such as
# '<block end>'), and so may be shown; any other quoted text was read from the file
_YAML_SYNTAX = re.compile(r"[-,:?\[\]{}!&*|>#%@`]|<[a-z ]+>")

# A word of advice for the syntax errors people make most, by a phrase of PyYAML's (or libyaml's)
_YAML_HINTS = {
    "expected key": "is this line indented like the keys above it?",
    "expected <block end>": "is this line indented like the keys above it?",
    "mapping values are not allowed": 'a value holding ": " must be quoted',
    "expected '-' indicator": "a list (- item) and keys (key: value) cannot share one level",
}


def _yaml_position(exc: yaml.YAMLError, text: str) -> str:
    """Where the YAML error is, what was expected there and where the enclosing block began;
    never the text of the file (it may be a secret), only YAML's own syntax."""

    def syntax_only(message: str) -> str:
        # "found unknown escape character 'q'": the 'q' came from the file
        shown = re.sub(
            r"'([^']*)'",
            lambda quoted: quoted[0] if _YAML_SYNTAX.fullmatch(quoted[1]) else "",
            message,
        )
        return re.sub(r" {2,}", " ", shown).strip()

    mark = getattr(exc, "problem_mark", None)
    problem = syntax_only(getattr(exc, "problem", None) or "")
    if mark is None:
        return f": {problem}" if problem else ""
    found = f" at line {mark.line + 1}, column {mark.column + 1}" + (f": {problem}" if problem else "")
    context, begun = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and begun is not None and (begun.line, begun.column) != (mark.line, mark.column):
        found += f" ({syntax_only(context)} that began at line {begun.line + 1}, column {begun.column + 1})"
    lines = text.splitlines()
    if mark.line < len(lines) and lines[mark.line][mark.column : mark.column + 1] == "\t":
        return found + "; a tab: YAML indents with spaces only"
    hint = next((advice for phrase, advice in _YAML_HINTS.items() if phrase in problem), None)
    return found + (f"; {hint}" if hint else "")


def _label(name: Any) -> str:
    """A tenant or key name for a message: as written, or repr when it holds odd characters."""
    text = str(name)
    return text if text.isprintable() and text.strip() == text and len(text) <= 80 else shown_value(text)


def parse_config(raw: Any, path: Path, columns: Catalogue | None = None) -> Config:
    """Validate an already-parsed ``tenants.yml`` document (against ``columns``, else the column
    catalogue of the dbt project in the working folder)."""
    columns = columns or catalogue.load(Path())
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'tenants:' (and optional 'defaults:')")
    problems = [
        f"unknown top-level key {shown_value(str(key))}; allowed: defaults, tenants"
        + _did_you_mean(key, TOP_LEVEL)
        for key in raw
        if key not in TOP_LEVEL
    ]
    defaults = raw.get("defaults") or {}
    tenants_raw = raw.get("tenants")
    if not isinstance(defaults, dict):
        problems.append("'defaults' must be a mapping of tenant keys")
        defaults = {}
    if not isinstance(tenants_raw, dict) or not tenants_raw:
        problems.append("'tenants' must map at least one brand code to its settings")
        tenants_raw = {}
    tenant_keys = [name for name in Tenant.model_fields if name != "brand"]
    for key in list(defaults):
        if not isinstance(key, str) or key not in tenant_keys:
            # reported once here, not once per tenant; the tenants are checked without it
            problems.append(
                f"defaults: unknown key {shown_value(key)}; allowed: {_allowed_keys(())}"
                f"{_did_you_mean(key, tenant_keys)}"
            )
            defaults = {k: v for k, v in defaults.items() if k != key}
    tenants: dict[str, Tenant] = {}
    for brand, settings in tenants_raw.items():
        if not isinstance(brand, str):
            problems.append(
                f"tenant {_label(brand)}: a brand code must be text; YAML read this one as "
                f"{type(brand).__name__}: quote it"
            )
            continue
        if settings is not None and not isinstance(settings, dict):
            problems.append(f"tenant {_label(brand)}: settings must be a mapping")
            continue
        if settings and "brand" in settings:
            problems.append(
                f"tenant {_label(brand)}: brand: unknown key; the brand code is the tenant's name"
            )
            continue
        merged = {**defaults, **(settings or {}), "brand": brand}
        try:
            tenants[brand] = Tenant.model_validate(merged, context={"catalogue": columns})
        except ValidationError as exc:
            problems.extend(_describe(_label(brand), exc))
    if problems:
        raise ConfigError(f"{path}: invalid configuration\n  " + "\n  ".join(problems))
    for tenant in tenants.values():
        note = legacy_timezone_note(tenant.timezone)
        if note:
            log.warning("tenant %s: timezone %r %s", tenant.brand, tenant.timezone, note)
    # every Tenant is validated above; constructing Config must not validate them all again
    return Config.model_construct(path=path, tenants=tenants)


TOP_LEVEL = ("defaults", "tenants")

# Zones kept by the tz database for old systems; most have no summer time, or the wrong rules for
# every real place: a tenant almost always means the city.
LEGACY_ZONES = {
    "EST": "America/New_York",
    "MST": "America/Denver (or America/Phoenix, without summer time)",
    "HST": "Pacific/Honolulu",
    "EST5EDT": "America/New_York",
    "CST6CDT": "America/Chicago",
    "MST7MDT": "America/Denver",
    "PST8PDT": "America/Los_Angeles",
    "CET": "Europe/Amsterdam, Europe/Berlin or Europe/Paris",
    "MET": "Europe/Amsterdam, Europe/Berlin or Europe/Paris",
    "EET": "Europe/Athens or Europe/Helsinki",
    "WET": "Europe/Lisbon",
}


def legacy_timezone_note(zone: str) -> str | None:
    """What to say about a timezone kept only for old systems (``EST``, ``US/Eastern``, ``Etc/GMT+5``);
    None for a city's zone or UTC."""
    if zone in LEGACY_ZONES:
        return (
            "is a legacy zone of fixed rules, not a place's time (EST, for one, never has summer "
            f"time); did you mean {LEGACY_ZONES[zone]}?"
        )
    if zone.startswith(("US/", "Canada/", "Brazil/", "Chile/", "Mexico/", "SystemV/")) or re.fullmatch(
        r"Etc/GMT[+-]\d+", zone
    ):
        return (
            "is a legacy or fixed-offset zone, not a place's time: name the city (Area/City), "
            "e.g. America/New_York"
        )
    return None


def _did_you_mean(key: Any, allowed: Iterable[str]) -> str:
    """``; did you mean 'extension'?`` for a key close to an allowed one, else nothing."""
    close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.75)
    return f"; did you mean {close[0]!r}?" if close else ""


def _allowed_keys(location: tuple[Any, ...]) -> str:
    """The keys a section takes, for an "unknown key" message."""
    model: type[BaseModel] = Tenant
    if location[:1] == ("destination",) and len(location) > 2:
        chosen: dict[str, type[BaseModel]] = {"local": LocalDestination, "s3": S3Destination}
        model = chosen.get(str(location[1]), SftpDestination)
    elif location[:1] == ("notify",) and len(location) > 1:
        model = Notify
    return ", ".join(name for name in model.model_fields if name != "brand")


def _yaml_value(value: Any) -> str:
    """A value for a message, booleans as YAML spells them (``header = false``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return shown_value(value)


# Destination settings that are never a secret, so a message may show their value
SHOWN_DESTINATION_KEYS = (
    "destination.type",
    "destination.bucket",
    "destination.prefix",
    "destination.region",
    "destination.retention_days",
)


def _describe(brand: str, exc: ValidationError) -> list[str]:
    """One readable line per pydantic error: tenant, key, value, what is allowed."""
    lines = []
    for error in exc.errors(include_url=False):
        raw_location = tuple(error["loc"])
        location = [str(part) for part in raw_location if not str(part).startswith("function-")]
        # a discriminated union puts the chosen type in the path, a dict its "[key]": drop them
        location = [part for part in location if part not in {"local", "sftp", "s3", "[key]"}]
        key = ".".join(_label(part) for part in location)
        message = error["msg"].removeprefix("Value error, ")
        value = error.get("input")
        if error["type"] == "extra_forbidden":
            allowed = _allowed_keys(raw_location)
            suggestion = _did_you_mean(location[-1] if location else "", allowed.split(", "))
            message = f"unknown key; allowed here: {allowed}{suggestion}"
        elif error["type"] == "missing":
            message = "required"
        elif error["type"] == "union_tag_not_found":
            message = "needs a type: sftp, s3 or local"
        elif error["type"] == "union_tag_invalid":
            key, value = f"{key}.type", error.get("ctx", {}).get("tag", value)
            message = "allowed types: sftp, s3, local"
        shown = "" if isinstance(value, dict) or error["type"] == "missing" else f" = {_yaml_value(value)}"
        hidden = location[:1] in (["destination"], ["notify"]) and key not in SHOWN_DESTINATION_KEYS
        if error["type"] in {"extra_forbidden", "union_tag_not_found"} or hidden:
            # an unknown key may be a misspelled password, and anything under destination may
            # be a host name, a login or a secret: the key is named, the value never shown
            shown = ""
        lines.append(f"tenant {brand}: {key}{shown}: {message}" if key else f"tenant {brand}: {message}")
    return lines
