"""File naming: the kinds of file a period has, the name templates, and reading a name back.

Everything that decides what a delivered file is called lives here: the kinds (``activity``,
``broadcast``, ``erasure``, ``manifest``), the ``file_name`` and ``folder`` templates with their
fields (``brand``, ``kind``, ``period``, ``extension``), the suffixes compression and encryption
add, the hidden partial name a file is uploaded under, the checks configuration validation runs
on a template, and the reverse parse ``prune`` uses to tell this product's files (and their
period) from anything else on a server.
"""

from __future__ import annotations

import re
import secrets
import string
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, Protocol

from activity_export.errors import shown_value
from activity_export.periods import HasSchedule, Period, period_containing, sample_periods

KINDS = ("activity", "broadcast")
ERASURE = "erasure"  # the third data file, with ``erasures: true``
MANIFEST = "manifest"

TEMPLATE_FIELDS = ("brand", "kind", "period", "extension")
COMPRESSION_SUFFIX = {"none": "", "gzip": ".gz", "zstd": ".zst"}
ENCRYPTION_SUFFIX = {"none": "", "pgp": ".gpg"}
DEFAULT_FILE_NAME = {
    "hourly": "{kind}_{brand}_{period:%Y%m%d%H}.{extension}",
    "daily": "{kind}_{brand}_{period:%Y%m%d}.{extension}",
    "weekly": "{kind}_{brand}_{period:%Y%m%d}.{extension}",
}
MANIFEST_EXTENSION = "json"
# A path component of at most 255 bytes leaves room for the temporary name's prefix and suffix.
MAX_NAME_BYTES = 200

PARTIAL_PREFIX = "."
PARTIAL_SUFFIX = ".partial"

# strftime directives a period format may use, and what they look like in a name
DIRECTIVES = {
    "Y": r"\d{4}",
    "y": r"\d{2}",
    "m": r"\d{2}",
    "d": r"\d{2}",
    "H": r"\d{2}",
    "M": r"\d{2}",
    "j": r"\d{3}",
    "V": r"\d{2}",
    "G": r"\d{4}",
    "u": r"\d",
    "%": "%",
}


class HasNaming(HasSchedule, Protocol):
    """The settings a file's name is made from (a tenant has them)."""

    @property
    def file_name(self) -> str | None: ...

    @property
    def folder(self) -> str: ...

    @property
    def extension(self) -> str: ...

    @property
    def compression(self) -> str: ...

    @property
    def encryption(self) -> str: ...

    @property
    def erasures(self) -> bool: ...

    @property
    def manifest(self) -> bool: ...

    def model_dump(self, *, mode: str, exclude: set[str]) -> dict[str, Any]:
        """Every setting as JSON values: ``check_naming`` remembers a set-up by them."""
        ...


# -- kinds ---------------------------------------------------------------------------------------


def data_kinds(tenant: HasNaming) -> tuple[str, ...]:
    """The data files of a period, in delivery order: activity, broadcast (, erasure)."""
    return (*KINDS, ERASURE) if tenant.erasures else KINDS


def delivered_kinds(tenant: HasNaming) -> tuple[str, ...]:
    """Every file of a period, in delivery order; the manifest, when enabled, is last."""
    return (*data_kinds(tenant), MANIFEST) if tenant.manifest else data_kinds(tenant)


# -- rendering -----------------------------------------------------------------------------------


def name_template(tenant: HasNaming) -> str:
    """The tenant's ``file_name``, or the default for its interval."""
    return tenant.file_name or DEFAULT_FILE_NAME[tenant.interval]


def suffix(tenant: HasNaming, kind: str) -> str:
    """What follows the template's name: ``.gz``/``.zst``, then ``.gpg`` (data files only)."""
    if kind == MANIFEST:
        return ""
    return COMPRESSION_SUFFIX[tenant.compression] + ENCRYPTION_SUFFIX[tenant.encryption]


def file_name(tenant: HasNaming, kind: str, period: Period) -> str:
    """The final name of one file, e.g. ``activity_BRANDNAAM_20261125.csv.gz``."""
    return name_template(tenant).format(**_values(tenant, kind, period)) + suffix(tenant, kind)


def relative_path(tenant: HasNaming, kind: str, period: Period) -> PurePosixPath:
    """Where a file lands under the destination root, e.g. ``activity/activity_X_20261125.csv``.

    The name is the ``file_name`` template filled in with the period's local start, plus ``.gz``
    or ``.zst`` when compressed and ``.gpg`` when encrypted; the folder is the ``folder`` template.
    The manifest is named like the data files, with kind ``manifest`` and extension ``json``.
    """
    folder = tenant.folder.format(**_values(tenant, kind, period))
    return PurePosixPath(folder) / file_name(tenant, kind, period)


def partial_name(final_name: str) -> str:
    """The hidden temporary name a file is written or uploaded under before it is renamed."""
    return f"{PARTIAL_PREFIX}{final_name}{PARTIAL_SUFFIX}"


def is_partial(name: str) -> bool:
    return name.startswith(PARTIAL_PREFIX) and name.endswith(PARTIAL_SUFFIX)


def unique_partial_name(final_name: str) -> str:
    """An unpredictable hidden temporary name, ``.<name>.<random>.partial``.

    Nobody can plant a link at a name they cannot guess, and with an exclusive create an upload
    fails rather than write through one.
    """
    return f"{PARTIAL_PREFIX}{final_name}.{secrets.token_hex(8)}{PARTIAL_SUFFIX}"


def is_partial_of(name: str, final_name: str) -> bool:
    """Whether ``name`` is a temporary name of ``final_name`` (the fixed or the unpredictable form)."""
    unique = re.escape(PARTIAL_PREFIX + final_name) + r"\.[0-9a-f]{16}" + re.escape(PARTIAL_SUFFIX)
    return name == partial_name(final_name) or re.fullmatch(unique, name) is not None


def _values(tenant: HasNaming, kind: str, period: Period) -> dict[str, object]:
    return {
        "brand": tenant.brand,
        "kind": kind,
        "period": period.name_local.replace(tzinfo=None, fold=0),
        "extension": MANIFEST_EXTENSION if kind == MANIFEST else tenant.extension,
    }


# -- validation ----------------------------------------------------------------------------------


def check_naming(tenant: HasNaming) -> None:
    """Raise ValueError (for configuration validation) when the templates are unsafe or ambiguous."""
    template = name_template(tenant)
    check_template("file_name", template)
    check_template("folder", tenant.folder)
    if "/" in template or "\\" in template:
        raise ValueError(f"file_name = {template!r}: may not hold a path separator; use folder for folders")
    # Rendering a year of sample names costs milliseconds, and thousands of tenants share a few
    # naming set-ups. A brand code is letters, digits, '_' and '-' (config.BRAND_PATTERN), so its
    # text can neither add a separator, a dot or a control character nor make two names equal:
    # the outcome depends on the brand only through its length. A set-up that passed is not
    # rendered again; one that fails is, so its message names the tenant's own file names.
    key = _naming_key(tenant)
    if key not in _PASSED:
        _check_sample_paths(tenant)
        _PASSED.add(key)


_PASSED: set[str] = set()
# Settings that never reach a file name or a period (everything else is part of the key).
_NOT_NAMING = {"brand", "destination", "notify", "columns", "extra_fields", "recipients"}


def _naming_key(tenant: HasNaming) -> str:
    settings = tenant.model_dump(mode="json", exclude=_NOT_NAMING)
    return f"{len(tenant.brand.encode())}:{sorted(settings.items())!r}"


def check_template(key: str, template: str) -> None:
    """Only the documented fields, no attribute or index access, a format only for {period}."""
    allowed = ", ".join("{" + name + "}" for name in TEMPLATE_FIELDS)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"{key} = {template!r}: not a valid template ({exc})") from None
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        name = re.split(r"[.\[]", field, maxsplit=1)[0]
        if name != field and name in TEMPLATE_FIELDS:
            raise ValueError(
                f"{key} = {template!r}: {{{field}}} uses attribute or index access, which is "
                f"not allowed; allowed fields: {allowed}"
            )
        if field not in TEMPLATE_FIELDS:
            raise ValueError(f"{key} = {template!r}: {{{field}}} is not a template field; allowed: {allowed}")
        if conversion:
            raise ValueError(f"{key} = {template!r}: conversions like !{conversion} are not allowed")
        if spec and field != "period":
            raise ValueError(f"{key} = {template!r}: only {{period}} takes a format, e.g. {{period:%Y%m%d}}")
        if spec and ("{" in spec or "}" in spec):
            raise ValueError(f"{key} = {template!r}: a format may not hold another field")


def _check_sample_paths(tenant: HasNaming) -> None:
    """Render the templates for a sample of periods: safe, and one name per period and kind."""
    template = name_template(tenant)
    seen: dict[PurePosixPath, tuple[str, Period]] = {}
    for period in sample_periods(tenant):
        for kind in delivered_kinds(tenant):
            path = relative_path(tenant, kind, period)
            _check_rendered(path, file_name(tenant, kind, period))
            if path in seen:
                other_kind, other = seen[path]
                if other_kind != kind:
                    raise ValueError(
                        f"file_name = {template!r}: the {other_kind} and {kind} "
                        f"files both get the name {str(path)!r}; put {{kind}} in it"
                    )
                raise ValueError(
                    f"file_name = {template!r}: the {tenant.interval} periods "
                    f"{other.label} and {period.label} both get the name {str(path)!r}; "
                    f"put the whole period in it, e.g. {DEFAULT_FILE_NAME[tenant.interval]!r}"
                )
            seen[path] = (kind, period)


def _check_rendered(path: PurePosixPath, name: str) -> None:
    """A rendered path stays under the root and names a plain file."""
    text = str(path)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(
            f"file_name/folder: {text!r} is absolute or climbs out of the destination root; "
            "give a relative folder without '..'"
        )
    if "/" in name or "\\" in name or name in {"", ".", ".."} or name.startswith("."):
        raise ValueError(
            f"file_name: {name!r} is not a plain visible file name (no path separator from a "
            "{period:...} format, no leading dot)"
        )
    if any(not ch.isprintable() for ch in text):
        raise ValueError(f"file_name/folder: {shown_value(text)} holds a control character")
    hidden = [part for part in path.parts[:-1] if part.startswith(".")]
    if hidden or "\\" in text:
        raise ValueError(
            f"folder: {text!r}: a folder may not start with a dot or hold a backslash; "
            "hidden names are reserved for temporary files"
        )
    if any(len(part.encode("utf-8")) > MAX_NAME_BYTES for part in path.parts):
        raise ValueError(f"file_name/folder: {shown_value(text)}: a name longer than {MAX_NAME_BYTES} bytes")


# -- reading a name back -------------------------------------------------------------------------


def period_of_name(tenant: HasNaming, kind: str, name: str) -> Period | None:
    """The period a file name of ``kind`` was rendered for, or None when it is not one of ours.

    A name is the tenant's only when it matches the template exactly (brand, kind, extension and
    suffixes included) and the period read from it is a period start of the tenant's schedule.
    """
    compiled = _name_pattern(tenant, kind)
    if compiled is None:
        return None
    pattern, period_format = compiled
    match = pattern.match(name)
    if not match:
        return None
    try:
        start = datetime.strptime(match.group("period"), period_format)
    except ValueError:
        return None
    period = period_containing(tenant, start)
    if period.start_local.replace(tzinfo=None) != start:  # not a period start: not our name
        return None
    return period


def folders_between(tenant: HasNaming, kind: str, first: Period, before: datetime) -> list[PurePosixPath]:
    """Every folder the ``folder`` template gives for periods from ``first`` starting before ``before``."""
    folders: dict[str, PurePosixPath] = {}
    period = first
    while period.start_utc < before:
        parent = relative_path(tenant, kind, period).parent
        folders.setdefault(str(parent), parent)
        period = period.next()
    return list(folders.values())


def _name_pattern(tenant: HasNaming, kind: str) -> tuple[re.Pattern[str], str] | None:
    """A regex for the tenant's file names of one kind, and the period's strftime format."""
    pattern, period_format = "", None
    for literal, field, spec, _ in string.Formatter().parse(name_template(tenant)):
        pattern += re.escape(literal)
        if field is None:
            continue
        if field == "period":
            period_format = spec or "%Y-%m-%d %H:%M:%S"
            pattern += f"(?P<period>{_format_regex(period_format)})"
        else:
            value = {
                "brand": tenant.brand,
                "kind": kind,
                "extension": MANIFEST_EXTENSION if kind == MANIFEST else tenant.extension,
            }[field]
            pattern += re.escape(value)
    if period_format is None:
        return None
    return re.compile(pattern + re.escape(suffix(tenant, kind)) + r"\Z"), period_format


def _format_regex(period_format: str) -> str:
    """A regex for what ``strftime(period_format)`` produces."""
    regex, index = "", 0
    while index < len(period_format):
        if period_format[index] == "%" and index + 1 < len(period_format):
            regex += DIRECTIVES.get(period_format[index + 1], ".+?")
            index += 2
        else:
            regex += re.escape(period_format[index])
            index += 1
    return regex
