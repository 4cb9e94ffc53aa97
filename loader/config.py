"""Tenant configuration (``tenants.yml``): schema, defaults, and validation before any work starts.

Every setting has a default and a description here; ``docs/configuration.md`` is the reference a
user reads. Errors name the tenant, the key, the value and what is allowed.
"""

from __future__ import annotations

import os
import re
import string
from datetime import date, datetime, time
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from loader.errors import ConfigError

KINDS = ("activity", "broadcast")

STANDARD_COLUMNS: dict[str, tuple[str, ...]] = {
    "activity": (
        "broadcastid",
        "customerid",
        "externalid",
        "email",
        "activity",
        "activitydate",
        "description",
    ),
    "broadcast": ("broadcastid", "broadcasttype", "description", "subject", "sentdate"),
}

EXTRA_FIELDS: dict[str, tuple[str, ...]] = {
    "activity": (
        "eventid",
        "registereddate",
        "url",
        "message",
        "os",
        "device",
        "browser",
        "useragent",
    ),
    "broadcast": ("campaignid", "fromaddress"),
}

TEMPLATE_FIELDS = ("brand", "kind", "period", "extension")
COMPRESSION_SUFFIX = {"none": "", "gzip": ".gz", "zstd": ".zst"}
BRAND_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
DEFAULT_FILE_NAME = {
    "hourly": "{kind}_{brand}_{period:%Y%m%d%H}.{extension}",
    "daily": "{kind}_{brand}_{period:%Y%m%d}.{extension}",
    "weekly": "{kind}_{brand}_{period:%Y%m%d}.{extension}",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LocalDestination(_Strict):
    """A directory on this machine: the embedded default, and handy for tests."""

    type: Literal["local"]
    root: Path = Field(description="Directory the tenant's folder and files are placed under.")


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
        None, ge=1, description="`prune` deletes this product's files older than this."
    )

    @model_validator(mode="after")
    def _one_way_to_log_in(self) -> SftpDestination:
        if (self.private_key is None) == (self.password_env is None):
            raise ValueError("set exactly one of private_key or password_env")
        if self.passphrase_env and self.private_key is None:
            raise ValueError("passphrase_env goes with private_key")
        return self

    def secret_env_vars(self) -> list[str]:
        """The environment variables this destination reads secrets from."""
        return [name for name in (self.password_env, self.passphrase_env) if name]


Destination = Annotated[LocalDestination | SftpDestination, Field(discriminator="type")]


class Tenant(_Strict):
    """One brand's delivery: period, file format, and destination."""

    brand: str = Field(description="Brand code as in the source tables.")
    timezone: str = Field("Europe/Amsterdam", description="IANA timezone of periods and dates.")
    interval: Literal["hourly", "daily", "weekly"] = Field("daily", description="Period length.")
    run_at: str = Field(
        "06:00",
        description="Local HH:MM at which a finished period is due (minutes past the hour "
        "for hourly tenants).",
    )
    start: date | None = Field(None, description="First period to deliver.")
    extension: str = Field("csv", description="File extension, without the dot.")
    delimiter: str = Field(";", description='Exactly one character; "\\t" for tab.')
    header: bool = Field(True, description="Write a line of column titles.")
    compression: Literal["none", "gzip", "zstd"] = Field("none", description="Adds .gz / .zst.")
    file_name: str | None = Field(None, description="File name template.")
    folder: str = Field("", description="Folder template under the destination root.")
    manifest: bool = Field(False, description="Write a manifest after the two data files.")
    extra_fields: dict[Literal["activity", "broadcast"], list[str]] = Field(
        default_factory=dict, description="Additional fields appended after the standard ones."
    )
    columns: dict[Literal["activity", "broadcast"], dict[str, str]] = Field(
        default_factory=dict, description="Renamed column titles."
    )
    destination: Destination

    @field_validator("brand")
    @classmethod
    def _brand_code(cls, value: str) -> str:
        if not BRAND_PATTERN.match(value):
            raise ValueError("a brand code holds only letters, digits, '_' and '-'")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not a known IANA timezone, e.g. Europe/Amsterdam") from None
        return value

    @field_validator("run_at")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
            raise ValueError('must be a local time "HH:MM", e.g. "06:00"')
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
            raise ValueError("must be exactly one character (\"\\t\" for tab)")
        if value in {'"', "\n", "\r"}:
            raise ValueError("may not be the quote character or a line break")
        return value

    @field_validator("extra_fields")
    @classmethod
    def _catalogue_fields(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for kind, fields in value.items():
            allowed = EXTRA_FIELDS[kind]
            for field in fields:
                if field not in allowed:
                    raise ValueError(
                        f"{kind}: {field!r} is not an extra field; allowed: {', '.join(allowed)}"
                    )
            if len(set(fields)) != len(fields):
                raise ValueError(f"{kind}: a field is listed twice")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Tenant:
        for kind, renames in self.columns.items():
            known = self.fields(kind)
            for column, title in renames.items():
                if column not in known:
                    raise ValueError(
                        f"columns.{kind}: {column!r} is not a column of this tenant's "
                        f"{kind} file; its columns: {', '.join(known)}"
                    )
                if not title or any(ch in title for ch in "\r\n"):
                    raise ValueError(f"columns.{kind}: title for {column!r} is empty or multi-line")
        for kind in KINDS:
            titles = self.titles(kind)
            doubles = sorted({t for t in titles if titles.count(t) > 1})
            if doubles:
                raise ValueError(f"columns.{kind}: two columns have the title {doubles[0]!r}")
        _check_template("file_name", self.name_template)
        _check_template("folder", self.folder)
        if "/" in self.name_template or "\\" in self.name_template:
            raise ValueError("file_name: may not hold a path separator; use folder for folders")
        self._check_paths()
        return self

    def _check_paths(self) -> None:
        from loader.periods import period_containing  # periods needs no config: no cycle

        first = period_containing(self, datetime(2026, 3, 29, 1, 30))  # a DST change day
        second = first.next()
        for kind in KINDS:
            for period in (first, second):
                path = self.relative_path(kind, period)
                if path.is_absolute() or ".." in path.parts or path.parts[:1] == ("",):
                    raise ValueError(
                        f"file_name/folder: {str(path)!r} is absolute or climbs out of the root"
                    )
            if self.relative_path(kind, first) == self.relative_path(kind, second):
                raise ValueError(
                    f"file_name: two {self.interval} periods get the same name "
                    f"{str(self.relative_path(kind, first))!r}; put the period in it "
                    f"({DEFAULT_FILE_NAME[self.interval]!r})"
                )
        if self.relative_path("activity", first) == self.relative_path("broadcast", first):
            raise ValueError("file_name: the activity and broadcast files get the same name")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def run_at_time(self) -> time:
        return time.fromisoformat(self.run_at)

    @property
    def name_template(self) -> str:
        return self.file_name or DEFAULT_FILE_NAME[self.interval]

    def fields(self, kind: str) -> tuple[str, ...]:
        """The file's fields in order: the standard columns, then the configured extras."""
        return STANDARD_COLUMNS[kind] + tuple(self.extra_fields.get(kind, ()))

    def titles(self, kind: str) -> list[str]:
        """The header line's titles, after renames."""
        renames = self.columns.get(kind, {})
        return [renames.get(field, field) for field in self.fields(kind)]

    def relative_path(self, kind: str, period: Any) -> PurePosixPath:
        """Where a file lands under the destination root, e.g. ``activity/activity_X_20261125.csv``."""
        values = {
            "brand": self.brand,
            "kind": kind,
            "period": period.start_local.replace(tzinfo=None),
            "extension": self.extension,
        }
        name = self.name_template.format(**values)
        if kind in KINDS:
            name += COMPRESSION_SUFFIX[self.compression]
        return PurePosixPath(self.folder.format(**values)) / name

    def manifest_path(self, period: Any) -> PurePosixPath:
        """The manifest is named like the data files, with kind ``manifest`` and ``.json``."""
        values = {
            "brand": self.brand,
            "kind": "manifest",
            "period": period.start_local.replace(tzinfo=None),
            "extension": "json",
        }
        return PurePosixPath(self.folder.format(**values)) / self.name_template.format(**values)

    def missing_secrets(self) -> list[str]:
        """Environment variables this tenant needs that are not set (checked by ``check``)."""
        if isinstance(self.destination, SftpDestination):
            return [name for name in self.destination.secret_env_vars() if name not in os.environ]
        return []


def _check_template(key: str, template: str) -> None:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{key}: {template!r} is not a valid template ({exc})") from None
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in TEMPLATE_FIELDS:
            raise ValueError(
                f"{key}: {{{field}}} is not a template field; allowed: "
                + ", ".join("{" + name + "}" for name in TEMPLATE_FIELDS)
            )
        if conversion:
            raise ValueError(f"{key}: conversions like !{conversion} are not allowed")
        if spec and field != "period":
            raise ValueError(f"{key}: only {{period}} takes a format, e.g. {{period:%Y%m%d}}")


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
            raise ConfigError(
                f"{self.path}: no tenant {brand!r}; configured tenants: {known}"
            ) from None

    def selected(self, brands: list[str] | None) -> list[Tenant]:
        """The tenants to work on: all, or the named ones (each must exist)."""
        if not brands:
            return list(self.tenants.values())
        return [self.tenant(brand) for brand in brands]


def load_config(path: Path) -> Config:
    """Read and validate ``tenants.yml``; every problem is reported at once as a ConfigError."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(raw, path)


def parse_config(raw: Any, path: Path) -> Config:
    """Validate an already-parsed ``tenants.yml`` document."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with 'tenants:' (and optional 'defaults:')")
    unknown = sorted(set(raw) - {"defaults", "tenants"})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key {unknown[0]!r}; allowed: defaults, tenants")
    defaults = raw.get("defaults") or {}
    tenants_raw = raw.get("tenants")
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: 'defaults' must be a mapping of tenant keys")
    if not isinstance(tenants_raw, dict) or not tenants_raw:
        raise ConfigError(f"{path}: 'tenants' must map at least one brand code to its settings")
    problems: list[str] = []
    tenants: dict[str, Tenant] = {}
    for brand, settings in tenants_raw.items():
        if settings is not None and not isinstance(settings, dict):
            problems.append(f"tenant {brand}: settings must be a mapping")
            continue
        merged = {**defaults, **(settings or {}), "brand": str(brand)}
        try:
            tenants[str(brand)] = Tenant.model_validate(merged)
        except ValidationError as exc:
            problems.extend(_describe(str(brand), exc))
    if problems:
        raise ConfigError(f"{path}: invalid configuration\n  " + "\n  ".join(problems))
    return Config(path=path, tenants=tenants)


def _describe(brand: str, exc: ValidationError) -> list[str]:
    """One readable line per pydantic error: tenant, key, value, what is allowed."""
    lines = []
    for error in exc.errors(include_url=False):
        location = [str(part) for part in error["loc"] if not str(part).startswith("function-")]
        # a discriminated union puts the chosen type in the path: drop it for the reader
        location = [part for part in location if part not in {"local", "sftp"}]
        key = ".".join(location)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key for this section"
        elif error["type"] == "missing":
            message = "required"
        value = error.get("input")
        shown = "" if isinstance(value, dict) or error["type"] == "missing" else f" = {value!r}"
        if "password" in key or "passphrase" in key:
            shown = ""
        lines.append(f"tenant {brand}: {key}{shown}: {message}" if key else f"tenant {brand}: {message}")
    return lines
