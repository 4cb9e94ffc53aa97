"""The column catalogue: which fields each file can hold, read from the dbt project's contracts.

The export relations' YAML (``models/exports/_exports__models.yml``) is the one place a file's
columns are declared. A column of ``export_activities``, ``export_broadcasts`` or
``export_erasures`` is a file field when it carries ``config: {meta: {file: ...}}``::

    - name: event_id
      data_type: bigint                 # the file's type: integer, string or datetime
      description: The platform's event id.
      constraints: [{type: not_null}]   # the manifest's `required`
      config:
        meta:
          file:
            field: eventid              # its name in the file (a tenant may retitle it)
            extra: true                 # only for tenants that list it in extra_fields
            personal: false             # true: empty for an erased customer (activity file)
            key: true                   # the manifest's primaryKey

Fields are in the YAML's order: the standard columns (``extra`` false) are every tenant's file;
the extra fields follow in the order a tenant lists them. An ``accepted_values`` data test gives
the manifest's allowed values; ``{{ doc('name') }}`` descriptions are read from the project's docs
blocks. The loader reads the YAML itself (no dbt parse, no ``target/``), so ``check`` and
``status`` know the columns before any build.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activity_export.errors import ConfigError
from activity_export.folders import read_regular_file
from activity_export.naming import ERASURE

# the relation each kind of file is read from
MODELS = {"activity": "export_activities", "broadcast": "export_broadcasts", ERASURE: "export_erasures"}

# a contract's data_type -> the file's type (Table Schema's names), for the types files carry
TYPES = {
    "bigint": "integer",
    "integer": "integer",
    "int": "integer",
    "smallint": "integer",
    "text": "string",
    "varchar": "string",
    "character varying": "string",
    "timestamp with time zone": "datetime",
    "timestamptz": "datetime",
}
META_KEYS = ("field", "extra", "personal", "key")
FIELD_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,63}")
DOC_REFERENCE = re.compile(r"""\{\{\s*doc\(\s*(['"])([A-Za-z_][A-Za-z0-9_]*)\1\s*\)\s*\}\}""")
DOCS_BLOCK = re.compile(r"\{%-?\s*docs\s+([A-Za-z_][A-Za-z0-9_]*)\s*-?%\}(.*?)\{%-?\s*enddocs\s*-?%\}", re.S)


@dataclass(frozen=True)
class FileColumn:
    """One field a file can hold, as the contract declares it."""

    field: str  # the name in the file, before a tenant's renames
    column: str  # the export relation's column
    type: str  # integer, string or datetime
    description: str
    extra: bool  # only in the files of tenants that list it in extra_fields
    personal: bool  # empty for an erased customer
    key: bool  # the file's primary key
    required: bool  # never empty (a not_null constraint)
    values: tuple[str, ...] = ()  # the only values it takes (an accepted_values test), if any


@dataclass(frozen=True)
class Catalogue:
    """Every kind of file's fields, in the contract's order."""

    columns: tuple[tuple[str, tuple[FileColumn, ...]], ...]  # (kind, fields), kind by kind

    def of(self, kind: str) -> tuple[FileColumn, ...]:
        return next(columns for each, columns in self.columns if each == kind)

    def standard(self, kind: str) -> tuple[str, ...]:
        """The fields every file of this kind has, in order."""
        return tuple(c.field for c in self.of(kind) if not c.extra)

    def extras(self, kind: str) -> tuple[str, ...]:
        """The fields a tenant may add to this kind of file."""
        return tuple(c.field for c in self.of(kind) if c.extra)

    def column(self, kind: str, field: str) -> FileColumn:
        return next(c for c in self.of(kind) if c.field == field)


def load(project_dir: Path) -> Catalogue:
    """The catalogue of the dbt project in ``project_dir``; a ConfigError says what is wrong."""
    from activity_export.profile import PROJECT_FILE, read_yaml

    project = read_yaml(
        project_dir / PROJECT_FILE,
        "the files' columns are read from the dbt project's export models: run from the project's "
        "folder or pass --project-dir (or DBT_PROJECT_DIR)",
    )
    paths = project.get("model-paths") or ["models"]
    folders = tuple(project_dir / str(path) for path in paths)
    files = tuple(sorted(_project_files(folders)))
    stamps = tuple((str(path), *_stamp(path)) for path in files)
    return _load(folders, stamps)


def _project_files(folders: tuple[Path, ...]) -> Iterator[Path]:
    for folder in folders:
        for pattern in ("*.yml", "*.yaml", "*.md"):
            yield from folder.rglob(pattern)


def _stamp(path: Path) -> tuple[int, int]:
    try:
        status = path.stat()
    except OSError:
        return (0, 0)
    return (status.st_mtime_ns, status.st_size)


@functools.cache
def _load(folders: tuple[Path, ...], stamps: tuple[tuple[str, int, int], ...]) -> Catalogue:
    docs: dict[str, str] = {}
    found: dict[str, tuple[Path, dict[str, Any]]] = {}
    for name, _, _ in stamps:
        path = Path(name)
        text = _read(path)
        if path.suffix == ".md":
            docs |= {block: body.strip() for block, body in DOCS_BLOCK.findall(text)}
        elif any(model in text for model in MODELS.values()):
            for model in _models(path, text):
                if model.get("name") in MODELS.values():
                    name = str(model["name"])
                    if name in found:
                        raise ConfigError(
                            f"{path}: model {name} is described twice (also in {found[name][0]})"
                        )
                    found[name] = (path, model)
    kinds = []
    for kind, name in MODELS.items():
        if name not in found:
            where = ", ".join(str(folder) for folder in folders)
            raise ConfigError(
                f"no YAML in {where} describes model {name}, whose columns make the {kind} file; "
                "run from the dbt project's folder or pass --project-dir (or DBT_PROJECT_DIR)"
            )
        path, model = found[name]
        kinds.append((kind, _file_columns(kind, path, model, docs)))
    return Catalogue(tuple(kinds))


def _read(path: Path) -> str:
    try:
        return read_regular_file(path).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def _models(path: Path, text: str) -> list[dict[str, Any]]:
    import yaml

    try:
        safe = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        loaded = yaml.load(text, Loader=safe)  # noqa: S506 (SafeLoader or its libyaml twin)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    models = loaded.get("models") if isinstance(loaded, dict) else None
    return [model for model in models or [] if isinstance(model, dict)]


def _file_columns(
    kind: str, path: Path, model: dict[str, Any], docs: dict[str, str]
) -> tuple[FileColumn, ...]:
    columns = []
    for entry in model.get("columns") or []:
        where = f"{path}: {model['name']}.{entry.get('name')}"
        meta = ((entry.get("config") or {}).get("meta") or {}).get("file")
        if meta is None:
            continue
        columns.append(_file_column(kind, where, entry, meta, docs))
    fields = [column.field for column in columns]
    doubles = sorted({field for field in fields if fields.count(field) > 1})
    if doubles:
        raise ConfigError(f"{path}: {model['name']}: two columns are the file field {doubles[0]!r}")
    if not any(not column.extra for column in columns):
        raise ConfigError(
            f"{path}: {model['name']}: no column is a standard field of the {kind} file "
            "(config: meta: file: with extra: false)"
        )
    return tuple(columns)


def _file_column(kind: str, where: str, entry: dict[str, Any], meta: Any, docs: dict[str, str]) -> FileColumn:
    if not isinstance(meta, dict):
        raise ConfigError(f"{where}: config.meta.file must be a mapping of {', '.join(META_KEYS)}")
    unknown = [str(key) for key in meta if key not in META_KEYS]
    if unknown:
        raise ConfigError(
            f"{where}: config.meta.file.{unknown[0]}: unknown key; allowed: {', '.join(META_KEYS)}"
        )
    field = meta.get("field")
    if not isinstance(field, str) or not FIELD_PATTERN.fullmatch(field):
        raise ConfigError(
            f"{where}: config.meta.file.field = {field!r}: the name in the file, lowercase letters, "
            "digits and _ (starting with a letter), at most 64"
        )
    flags = {}
    for key in ("extra", "personal", "key"):
        value = meta.get(key, False)
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: config.meta.file.{key} = {value!r}: true or false")
        flags[key] = value
    if kind == "activity" and "personal" not in meta:
        raise ConfigError(
            f"{where}: config.meta.file.personal: required for an activity field: true when it can "
            "hold the customer's address, number or free text (the loader leaves it empty for an "
            "erased customer), else false"
        )
    if kind != "activity" and flags["personal"]:
        raise ConfigError(
            f"{where}: config.meta.file.personal: only the activity file is emptied for an erased "
            f"customer; the {kind} file cannot hold personal data"
        )
    data_type = str(entry.get("data_type") or "")
    file_type = TYPES.get(re.sub(r"\(.*\)$", "", data_type.strip().lower()).strip())
    if file_type is None:
        raise ConfigError(
            f"{where}: data_type {data_type!r} is not a type the files carry; allowed: bigint, integer, "
            "smallint, text, varchar(n), timestamp with time zone"
        )
    constraints = entry.get("constraints") or []
    required = any(isinstance(c, dict) and c.get("type") == "not_null" for c in constraints)
    return FileColumn(
        field=field,
        column=str(entry["name"]),
        type=file_type,
        description=_description(where, str(entry.get("description") or ""), docs),
        extra=flags["extra"],
        personal=flags["personal"],
        key=flags["key"],
        required=required,
        values=_accepted_values(entry),
    )


def _description(where: str, text: str, docs: dict[str, str]) -> str:
    def block(reference: re.Match[str]) -> str:
        name = reference[2]
        if name not in docs:
            raise ConfigError(f"{where}: description: no docs block {name!r} in the project's .md files")
        return docs[name]

    rendered = DOC_REFERENCE.sub(block, text)
    if "{{" in rendered or "{%" in rendered:
        raise ConfigError(f"{where}: description: only {{{{ doc('name') }}}} is read here, no other Jinja")
    description = " ".join(rendered.split())
    if not description:
        raise ConfigError(f"{where}: description: required for a file field (the manifest shows it)")
    return description


def _accepted_values(entry: dict[str, Any]) -> tuple[str, ...]:
    for test in entry.get("data_tests") or []:
        if isinstance(test, dict) and isinstance(test.get("accepted_values"), dict):
            arguments = test["accepted_values"]
            values = (arguments.get("arguments") or arguments).get("values")
            if isinstance(values, list):
                return tuple(str(value) for value in values)
    return ()
