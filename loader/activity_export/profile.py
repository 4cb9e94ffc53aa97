"""The dbt profile: which warehouse ``dbt build`` writes to, read the way dbt reads it, without dbt.

Importing dbt costs seconds; a command that only needs the connection should not pay that. This
module follows dbt-core 1.11 step by step (``tests/cli/test_profile.py`` compares it with dbt's own
classes over many profile variants):

- the profiles folder: ``--profiles-dir``, else ``$DBT_PROFILES_DIR``, else the working directory
  when it holds a ``profiles.yml``, else ``~/.dbt`` (the project folder is *not* searched);
- the profile: ``$DBT_PROFILE``, else the ``profile:`` of ``dbt_project.yml`` in ``--project-dir``;
- the target: ``--target``, else ``$DBT_TARGET``, else the profile's ``target:``, else ``default``;
- every string value of the chosen output rendered with Jinja as dbt renders profiles (native
  types: ``env_var('X', 'default')`` stays text, ``| as_number`` / ``as_bool`` / ``as_native``
  convert, ``var('x', 'default')`` gives its default); only the chosen output is rendered, so
  unset variables in other outputs do no harm;
- a relative DuckDB ``path`` is relative to the working directory (dbt-duckdb hands it to
  ``duckdb.connect`` unchanged, and DuckDB expands a leading ``~``), never to the project folder.
"""

from __future__ import annotations

import ast
import functools
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from itertools import chain, islice
from pathlib import Path
from typing import Any

from activity_export.errors import ConfigError
from activity_export.folders import read_regular_file

PROFILES_FILE = "profiles.yml"
PROJECT_FILE = "dbt_project.yml"
_RENDER_CHARS = re.compile(r"{[{%#]")


@dataclass(frozen=True)
class Target:
    """Where the built relations live, as read from the dbt profile."""

    name: str
    kind: str  # "duckdb" or "postgres"
    schema: str
    duckdb_path: Path | None = None
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = field(default="", repr=False)
    dbname: str = ""
    # libpq settings from the profile that change how to connect (sslmode, connect_timeout, ...)
    options: tuple[tuple[str, str], ...] = ()

    def __repr__(self) -> str:  # never show the password
        return f"dbt target {self.name!r} ({self.kind} {self.where()}, schema {self.schema})"

    def where(self) -> str:
        """The database file, or ``host:port/dbname``; no secret."""
        if self.kind == "duckdb":
            return str(self.duckdb_path)
        return f"{self.host}:{self.port}/{self.dbname}"

    __str__ = __repr__


def profiles_dir(explicit: Path | None = None) -> Path:
    """dbt's rule: --profiles-dir, $DBT_PROFILES_DIR, the working directory if it has one, ~/.dbt."""
    if explicit is not None:
        return explicit
    if os.environ.get("DBT_PROFILES_DIR"):
        return Path(os.environ["DBT_PROFILES_DIR"])
    if (Path.cwd() / PROFILES_FILE).exists():
        return Path.cwd()
    return Path.home() / ".dbt"


def resolve_target(project_dir: Path, profiles: Path | None, target: str | None) -> Target:
    """Read the dbt profile named in ``dbt_project.yml`` and return the chosen target."""
    folder = profiles_dir(profiles)
    hint = "copy profiles.yml.example there or pass --profiles-dir"
    raw_profiles = read_yaml(folder / PROFILES_FILE, hint)
    profile_name = os.environ.get("DBT_PROFILE") or _project_profile(project_dir)
    where = folder / PROFILES_FILE
    raw_profile = raw_profiles.get(profile_name)
    if profile_name not in raw_profiles:
        raise ConfigError(
            f"{where} has no profile {profile_name!r} (the one {project_dir / PROJECT_FILE} names)"
        )
    if not isinstance(raw_profile, dict) or not raw_profile:
        raise ConfigError(f"{where}: profile {profile_name!r} is empty")
    if target:
        target_name = target
    elif os.environ.get("DBT_TARGET"):
        target_name = os.environ["DBT_TARGET"]
    elif "target" in raw_profile:
        target_name = str(_render(raw_profile["target"], (), f"{where}: {profile_name}.target"))
    else:
        target_name = "default"
    outputs = raw_profile.get("outputs")
    if not isinstance(outputs, dict):
        raise ConfigError(f"{where}: profile {profile_name!r} has no outputs")
    if target_name not in outputs:
        raise ConfigError(
            f"{where}: profile {profile_name!r} has no target {target_name!r}; "
            f"it has: {', '.join(map(str, outputs)) or 'none'} (choose with --target or DBT_TARGET)"
        )
    raw_output = outputs[target_name]
    if not isinstance(raw_output, dict):
        raise ConfigError(f"{where}: output {target_name!r} of profile {profile_name!r} is not a mapping")
    context = f"{where}: {profile_name}.outputs.{target_name}"
    data = {key: _render_deep(value, (str(key),), context) for key, value in raw_output.items()}
    return _target(target_name, data, context)


def _project_profile(project_dir: Path) -> str:
    project = read_yaml(project_dir / PROJECT_FILE, "pass the dbt project folder with --project-dir")
    name = project.get("profile")
    if name is None:
        raise ConfigError(f"{project_dir / PROJECT_FILE} names no profile (add `profile: <name>`)")
    return str(_render(name, (), f"{project_dir / PROJECT_FILE}: profile"))


def read_yaml(path: Path, hint: str) -> dict[str, Any]:
    import yaml

    try:
        text = read_regular_file(path).decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no {path.name} in {path.parent}; {hint}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        safe = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        loaded = yaml.load(text, Loader=safe)  # noqa: S506 (SafeLoader or its libyaml twin)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return loaded


def _target(name: str, data: dict[str, Any], context: str) -> Target:
    kind = data.get("type")
    if kind == "duckdb":
        path = str(_typed(data, "path", str, context, ":memory:"))
        if path == ":memory:" or ":" in path.split("/", 1)[0]:  # :memory:, md:, s3://, ...
            raise ConfigError(
                f"{context}: path {path!r}: the loader reads a DuckDB database file; "
                "set path to a file (relative paths are relative to the working directory, as in dbt)"
            )
        return Target(
            name,
            "duckdb",
            str(_typed(data, "schema", str, context, "main")),
            duckdb_path=Path.cwd() / Path(path).expanduser(),
        )
    if kind == "postgres":
        data = dict(data)
        for alias, canonical in (("dbname", "database"), ("pass", "password")):
            if alias in data:
                data[canonical] = data.pop(alias)
        port = _typed(data, "port", int, context)
        if isinstance(port, bool) or not 0 <= port <= 65535:
            raise ConfigError(f"{context}: port {port!r} is not a port number")
        options = tuple(
            (key, str(data[key]))
            for key in ("connect_timeout", "sslmode", "sslcert", "sslkey", "sslrootcert", "keepalives_idle")
            if data.get(key) not in (None, "")
        )
        return Target(
            name,
            "postgres",
            str(_typed(data, "schema", str, context)),
            host=str(_typed(data, "host", str, context)),
            port=int(port),
            user=str(_typed(data, "user", str, context)),
            password=str(_typed(data, "password", str, context)),
            dbname=str(_typed(data, "database", str, context)),
            options=options,
        )
    raise ConfigError(f"{context}: type {kind!r}; the loader reads duckdb and postgres targets")


_MISSING = object()


def _typed(data: Mapping[str, Any], key: str, kind: type, context: str, default: Any = _MISSING) -> Any:
    """A required (or defaulted) key of the rendered output, of the type dbt's credentials demand."""
    value = data.get(key, default)
    if value is _MISSING or value is None:
        raise ConfigError(f"{context}: {key} is missing")
    if not isinstance(value, kind):
        shown = "(hidden)" if key == "password" else repr(value)
        raise ConfigError(
            f"{context}: {key} is {shown}, expected {kind.__name__}"
            + (" (render numbers with `| as_number`)" if kind is int else "")
        )
    return value


# -- rendering ------------------------------------------------------------------------------------


def _render_deep(value: Any, keypath: tuple[str, ...], context: str) -> Any:
    if isinstance(value, list):
        return [_render_deep(item, (*keypath, str(i)), context) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {k: _render_deep(v, (*keypath, str(k)), context) for k, v in value.items()}
    return _render(value, keypath, context)


def _render(value: Any, keypath: tuple[str, ...], context: str) -> Any:
    """One value as dbt's ProfileRenderer renders it."""
    if not isinstance(value, str):
        return value.isoformat() if isinstance(value, date) else value
    if not _RENDER_CHARS.search(value):
        return value  # what jinja's native rendering of a constant gives back
    where = ".".join(keypath) or "value"
    try:
        nodes = _simple_nodes(value)
        if nodes is not None:
            return _concat(iter(nodes))
        return _environment().from_string(value).render(_CONTEXT)
    except ConfigError as exc:
        raise ConfigError(f"{context}: {where}: {_without_env_values(str(exc), value)}") from None
    except Exception as exc:
        if "password" in keypath:
            return value  # dbt keeps a password that only looks like Jinja as it is
        raise ConfigError(
            f"{context}: cannot render {where}: {_without_env_values(str(exc), value)}"
        ) from None


def _without_env_values(text: str, template: str) -> str:
    """A rendering error without the values of the environment variables the template reads:
    any of them may be a secret."""
    for name in re.findall(r"""env_var\( *['"]([A-Za-z0-9_.-]+)""", template):
        secret = os.environ.get(name)
        if secret:
            text = text.replace(secret, "***")
    return text


# ``{{ env_var('NAME') }}`` or ``{{ env_var('NAME', 'default') | as_number }}``, the form nearly
# every profile uses: evaluated without Jinja (importing it costs a tenth of a second). Anything
# else goes to Jinja; tests/cli/test_profile.py compares both with dbt.
_SIMPLE = re.compile(
    r"""\{\{ *env_var\( *(['"])([A-Za-z0-9_.-]+)\1 *(?:, *('[^'\\]*'|"[^"\\]*"|-?[0-9]+) *)?\)"""
    r""" *(?:\| *(as_text|as_number|as_bool|as_native) *)?\}\}"""
)
_FILTERS: dict[str, type[str]] = {}


def _simple_nodes(template: str) -> list[Any] | None:
    """The output nodes of a template made of text and simple env_var() calls; else None."""
    matches = list(_SIMPLE.finditer(template))
    bounds = [0, *(edge for match in matches for edge in match.span()), len(template)]
    texts = [template[start:end] for start, end in zip(bounds[::2], bounds[1::2], strict=True)]
    if any(_RENDER_CHARS.search(text) or "}}" in text for text in texts) or "\n" in template:
        return None
    nodes: list[Any] = [texts[0]]
    for match, text in zip(matches, texts[1:], strict=True):
        _quote, name, default, name_of_filter = match.groups()
        found = _env_var(name, None if default is None else ast.literal_eval(default))
        nodes += [_FILTERS[name_of_filter](found) if name_of_filter else found, text]
    return [node for index, node in enumerate(nodes) if index % 2 or node]


class _Text(str):
    """``| as_text``: stays text."""


class _Native(str):
    """``| as_native``: evaluated as a Python literal."""


class _Bool(_Native):
    """``| as_bool``."""


class _Number(_Native):
    """``| as_number``."""


_FILTERS.update({"as_text": _Text, "as_bool": _Bool, "as_native": _Native, "as_number": _Number})


def _concat(nodes: Iterator[Any]) -> Any:
    """dbt's ``quoted_native_concat``: one node keeps its type, several become text."""
    head = list(islice(nodes, 2))
    if not head:
        return ""
    if len(head) > 1:
        return "".join(str(node) for node in chain(head, nodes))
    raw = head[0]
    if isinstance(raw, _Text):
        return str(raw)
    if not isinstance(raw, _Native):
        return raw
    try:
        result = ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError):
        result = raw
    if isinstance(raw, _Bool) and not isinstance(result, bool):
        raise ConfigError("cannot convert the value into a bool (the value is not shown: it may be a secret)")
    is_number = isinstance(result, int | float) and not isinstance(result, bool)
    if isinstance(raw, _Number) and not is_number:
        raise ConfigError(
            "cannot convert the value into a number (the value is not shown: it may be a secret)"
        )
    return result


def _env_var(name: str, default: Any = None) -> Any:
    if name in os.environ:
        return os.environ[name]
    if default is not None:
        return default
    raise ConfigError(f"environment variable {name} is required by the profile but not set")


def _var(name: str, default: Any = None) -> Any:
    # the loader passes no --vars: a variable has its default, as in `dbt build` without --vars
    if default is not None:
        return default
    raise ConfigError(f"var({name!r}) has no default, and the loader passes no --vars")


_CONTEXT: dict[str, Callable[..., Any]] = {"env_var": _env_var, "var": _var}


@functools.cache
def _environment() -> Any:
    """A sandboxed native Jinja environment like dbt's (imported only when a value needs it)."""
    import jinja2
    import jinja2.nativetypes
    import jinja2.sandbox

    class Undefined(jinja2.StrictUndefined):
        """Any name but env_var and var: refused, naming it."""

        def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
            raise ConfigError(
                f"{self._undefined_name!r} is not available to the loader "
                "(it evaluates env_var, var and the as_text/as_number/as_bool/as_native filters)"
            )

    class Template(jinja2.nativetypes.NativeTemplate):
        def render(self, *args: Any, **kwargs: Any) -> Any:
            context = self.new_context(dict(*args, **kwargs))
            try:
                return _concat(self.root_render_func(context))
            except ConfigError:
                raise
            except Exception:
                return self.environment.handle_exception()

    class Environment(jinja2.sandbox.SandboxedEnvironment):
        code_generator_class = jinja2.nativetypes.NativeCodeGenerator
        template_class = Template

    environment = Environment(extensions=["jinja2.ext.do", "jinja2.ext.loopcontrols"], undefined=Undefined)
    environment.filters.update(
        {"as_text": _Text, "as_bool": _Bool, "as_native": _Native, "as_number": _Number}
    )
    return environment
