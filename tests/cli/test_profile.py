"""The loader reads the dbt profile without dbt, and gets what dbt itself gets.

Every variant is resolved twice: by ``activity_export.profile`` and by dbt-core's own classes
(``read_profile``, ``Profile.render_profile``, the adapters' credentials), in the same working
directory and environment. DuckDB paths are compared with the file DuckDB opens for the path dbt
hands it, as dbt-duckdb does (``duckdb.connect(credentials.path)``).
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pytest

from activity_export.errors import ConfigError
from activity_export.profile import Target, resolve_target
from tests.support.project import BIN, ROOT, Project

PROJECT = "name: p\nversion: '1.0.0'\nconfig-version: 2\nprofile: \"{{ env_var('P_PROFILE', 'shop') }}\"\n"

PROFILES = """\
shop:
  target: "{{ env_var('P_TARGET', 'local') }}"
  outputs:
    local:
      type: duckdb
      path: "{{ env_var('P_DUCKDB', 'data/warehouse.duckdb') }}"
      threads: 1
    home:
      type: duckdb
      path: ~/p-profile-test.duckdb
      schema: "{{ var('schema', 'marts') }}"
    pg:
      type: postgres
      host: "{{ env_var('P_HOST', 'db.example.nl') }}"
      port: "{{ env_var('P_PORT', '6543') | as_number }}"
      user: "{{ env_var('P_USER') }}"
      pass: "{{ env_var('DBT_ENV_SECRET_PASSWORD', 'x') }}"
      dbname: exports_{{ env_var('P_ENV', 'prod') }}
      schema: analytics
      sslmode: require
      connect_timeout: 7
    pg_plain:
      type: postgres
      host: localhost
      port: 5432
      user: postgres
      password: "p{%w"
      database: "{{ 'a' ~ 'b' }}"
      schema: "{{ env_var('P_SCHEMA', 'analytics') | as_text }}"
other:
  outputs:
    default:
      type: duckdb
      path: /tmp/p-profile-other.duckdb
"""


@contextmanager
def environment(cwd: Path, values: dict[str, str]) -> Iterator[None]:
    """Working directory and variables as a user's shell would set them."""
    saved_env, saved_cwd = dict(os.environ), Path.cwd()
    for name in [n for n in os.environ if n.startswith(("DBT_", "P_"))]:
        del os.environ[name]
    os.environ.update(values)
    os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def dbt_resolution(project_dir: Path, profiles_dir: Path | None, target: str | None) -> dict[str, Any]:
    """What dbt-core 1.11 resolves, with its own classes (the flags as its click options read them)."""
    from dbt.cli.resolvers import default_profiles_dir
    from dbt.config.profile import Profile, read_profile
    from dbt.config.project import load_raw_project
    from dbt.config.renderer import DbtProjectYamlRenderer, ProfileRenderer
    from dbt_common.context import set_invocation_context

    set_invocation_context(dict(os.environ))
    folder = profiles_dir or Path(os.environ.get("DBT_PROFILES_DIR") or default_profiles_dir())
    raw_profiles = read_profile(str(folder))
    project_profile = DbtProjectYamlRenderer().render_value(load_raw_project(str(project_dir))["profile"])
    name = Profile.pick_profile_name(os.environ.get("DBT_PROFILE"), project_profile)
    target_name, data = Profile.render_profile(
        raw_profiles[name], name, target or os.environ.get("DBT_TARGET"), ProfileRenderer({})
    )
    data.pop("threads", None)
    credentials: Any = Profile._credentials_from_profile(data, name, target_name)
    found: dict[str, Any] = {"name": target_name, "kind": credentials.type, "schema": credentials.schema}
    if credentials.type == "duckdb":
        # dbt-duckdb opens exactly this string; the file DuckDB creates is the one dbt builds
        duckdb.connect(credentials.path).close()
        found["path"] = credentials.path
    else:
        found.update(
            host=credentials.host,
            port=credentials.port,
            user=credentials.user,
            password=credentials.password,
            dbname=credentials.database,
            sslmode=credentials.sslmode,
            connect_timeout=credentials.connect_timeout,
        )
    return found


def ours(target: Target) -> dict[str, Any]:
    found: dict[str, Any] = {"name": target.name, "kind": target.kind, "schema": target.schema}
    if target.kind == "duckdb":
        assert target.duckdb_path is not None
        assert target.duckdb_path.is_absolute()
        found["path"] = target.duckdb_path
    else:
        options = dict(target.options)
        found.update(
            host=target.host,
            port=target.port,
            user=target.user,
            password=target.password,
            dbname=target.dbname,
            sslmode=options.get("sslmode"),
            connect_timeout=int(options.get("connect_timeout", 10)),
        )
    return found


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """A project, a profiles folder elsewhere, and a third folder to run from."""
    project = tmp_path / "project"
    profiles = tmp_path / "profiles"
    elsewhere = tmp_path / "elsewhere"
    home = tmp_path / "home"
    for folder in (project, profiles, elsewhere, home / ".dbt"):
        folder.mkdir(parents=True)
    (project / "dbt_project.yml").write_text(PROJECT)
    (profiles / "profiles.yml").write_text(PROFILES)
    (elsewhere / "data").mkdir()
    (project / "data").mkdir()
    return {"project": project, "profiles": profiles, "elsewhere": elsewhere, "home": home}


VARIANTS: list[tuple[str, dict[str, str], str | None, bool]] = [
    # (name, environment, --target, pass --profiles-dir)
    ("defaults", {}, None, True),
    ("target from DBT_TARGET", {"DBT_TARGET": "pg", "P_USER": "loader"}, None, True),
    ("target from the profile's env_var", {"P_TARGET": "pg", "P_USER": "u"}, None, True),
    ("--target wins over DBT_TARGET", {"DBT_TARGET": "home", "P_USER": "u"}, "pg", True),
    ("env_var values set", {"P_USER": "u", "P_HOST": "h", "P_PORT": "5433", "P_ENV": "test"}, "pg", True),
    ("secret env var", {"P_USER": "u", "DBT_ENV_SECRET_PASSWORD": "s3cr{t"}, "pg", True),
    ("plain values, Jinja-looking password, as_text", {"P_SCHEMA": "007"}, "pg_plain", True),
    ("relative path from env_var", {"P_DUCKDB": "elsewhere.duckdb"}, None, True),
    ("absolute path", {"P_DUCKDB": "/tmp/p-profile-abs.duckdb"}, None, True),
    ("home path and var() default", {}, "home", True),
    ("profiles folder from DBT_PROFILES_DIR", {"DBT_PROFILES_DIR": "<profiles>"}, None, False),
    ("profile from DBT_PROFILE, default target", {"DBT_PROFILE": "other"}, None, True),
    ("profile name from dbt_project.yml env_var", {"P_PROFILE": "other"}, None, True),
]


@pytest.mark.parametrize(("name", "env", "target", "pass_dir"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_profile_resolves_as_dbt_does(
    layout: dict[str, Path], name: str, env: dict[str, str], target: str | None, pass_dir: bool
) -> None:
    env = {k: v.replace("<profiles>", str(layout["profiles"])) for k, v in env.items()}
    env["HOME"] = str(layout["home"])
    explicit = layout["profiles"] if pass_dir else None
    with environment(layout["elsewhere"], env):
        mine = ours(resolve_target(layout["project"], explicit, target))
        theirs = dbt_resolution(layout["project"], explicit, target)
        if "path" in theirs:
            opened = Path(os.path.expanduser(theirs["path"]))
            theirs["path"] = opened if opened.is_absolute() else layout["elsewhere"] / opened
            assert theirs["path"].exists(), "DuckDB did not create the file dbt names"
    assert mine == theirs
    for made in ("/tmp/p-profile-abs.duckdb", "/tmp/p-profile-other.duckdb"):
        Path(made).unlink(missing_ok=True)


def test_relative_duckdb_path_is_relative_to_the_working_directory_not_the_project(
    layout: dict[str, Path],
) -> None:
    with environment(layout["elsewhere"], {"HOME": str(layout["home"])}):
        target = resolve_target(layout["project"], layout["profiles"], None)
    assert target.duckdb_path == layout["elsewhere"] / "data" / "warehouse.duckdb"


def test_profiles_folder_is_the_working_directory_then_home_never_the_project(
    layout: dict[str, Path],
) -> None:
    (layout["project"] / "profiles.yml").write_text(PROFILES.replace("data/warehouse", "project"))
    home_profile = PROFILES.replace("data/warehouse", "home")
    (layout["home"] / ".dbt" / "profiles.yml").write_text(home_profile)
    with environment(layout["elsewhere"], {"HOME": str(layout["home"])}):
        from_home = resolve_target(layout["project"], None, None)
    assert from_home.duckdb_path == layout["elsewhere"] / "home.duckdb"
    (layout["elsewhere"] / "profiles.yml").write_text(PROFILES.replace("data/warehouse", "cwd"))
    with environment(layout["elsewhere"], {"HOME": str(layout["home"])}):
        from_cwd = resolve_target(layout["project"], None, None)
    assert from_cwd.duckdb_path == layout["elsewhere"] / "cwd.duckdb"


@pytest.mark.parametrize(
    ("env", "target", "message"),
    [
        ({}, "pg", "environment variable P_USER is required by the profile but not set"),
        ({}, "nope", "has no target 'nope'; it has: local, home, pg, pg_plain"),
        ({"P_USER": "u", "P_PORT": "x"}, "pg", "cannot convert the value into a number"),
        ({"DBT_PROFILE": "missing"}, None, "has no profile 'missing'"),
    ],
)
def test_bad_profile_is_a_configuration_error_naming_the_key(
    layout: dict[str, Path], env: dict[str, str], target: str | None, message: str
) -> None:
    with (
        environment(layout["elsewhere"], {"HOME": str(layout["home"]), **env}),
        pytest.raises(ConfigError) as raised,
    ):
        resolve_target(layout["project"], layout["profiles"], target)
    assert message in str(raised.value)
    assert str(layout["profiles"] / "profiles.yml") in str(raised.value)


def test_string_port_is_refused_as_dbt_refuses_it(layout: dict[str, Path]) -> None:
    (layout["profiles"] / "profiles.yml").write_text(
        textwrap.dedent(
            """\
            shop:
              target: pg
              outputs:
                pg: {type: postgres, host: h, port: "{{ '5432' }}", user: u, password: p,
                     dbname: d, schema: s}
            """
        )
    )
    with environment(layout["elsewhere"], {"HOME": str(layout["home"])}):
        with pytest.raises(ConfigError, match="port is '5432', expected int"):
            resolve_target(layout["project"], layout["profiles"], None)
        with pytest.raises(Exception, match="5432"):
            dbt_resolution(layout["project"], layout["profiles"], None)


def test_password_never_in_the_target_text(layout: dict[str, Path]) -> None:
    env = {"HOME": str(layout["home"]), "P_USER": "u", "DBT_ENV_SECRET_PASSWORD": "hunter2-secret"}
    with environment(layout["elsewhere"], env):
        target = resolve_target(layout["project"], layout["profiles"], "pg")
    assert target.password == "hunter2-secret"
    assert "hunter2" not in repr(target) and "hunter2" not in str(target)


def test_reading_the_profile_does_not_import_dbt(layout: dict[str, Path]) -> None:
    code = (
        "import sys; from pathlib import Path; from activity_export.warehouse import resolve_target; "
        "resolve_target(Path(sys.argv[1]), Path(sys.argv[2]), None); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dbt', 'dbt_common')))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, str(layout["project"]), str(layout["profiles"])],
        cwd=layout["elsewhere"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert completed.stdout.strip() == "[]"


def test_run_build_from_another_folder_builds_and_delivers_one_warehouse(
    duckdb_project: Project, tmp_path: Path
) -> None:
    """A relative DuckDB path names one file for `generate`, `dbt build` and the delivery alike."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = {
        "ACTIVITY_EXPORT_DUCKDB": "relative.duckdb",
        "DBT_TARGET_PATH": str(tmp_path / "target"),
    }
    config = workdir / "tenants.yml"
    config.write_text(
        "tenants:\n  BRANDNAAM:\n    start: 2026-11-01\n    timezone: UTC\n"
        "    destination: {type: local, root: out}\n"
    )
    generate = ["generate", "--brands", "BRANDNAAM", "--days", "2", "--events-per-day", "50"]
    duckdb_project.run(*generate, *duckdb_project.cli_args(), cwd=workdir, env=env)
    run = ["run", "--build", "--config", str(config), "--now", "2026-11-03T07:00:00+00:00"]
    piped = duckdb_project.run(*run, *duckdb_project.cli_args(), cwd=workdir, env=env)
    assert "Running with dbt=" not in piped.stderr  # not a terminal: dbt is quiet

    assert (workdir / "relative.duckdb").is_file()
    assert not (ROOT / "relative.duckdb").exists()
    delivered = workdir / "out" / "activity_BRANDNAAM_20261101.csv"
    assert len(delivered.read_text().splitlines()) > 1

    # on a terminal, dbt's own lines show the build moving; stdout keeps only the run's table
    shown, stdout, code = _on_a_terminal(
        [str(BIN / "activity-export"), *run, "--force", *duckdb_project.cli_args()],
        cwd=workdir, env={**duckdb_project.env, **env},
    )  # fmt: skip
    assert code == 0, shown
    assert "Running with dbt=" in shown and "export_activities" in shown, shown
    assert "Running with dbt=" not in stdout and "BRANDNAAM" in stdout


def _on_a_terminal(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[str, str, int]:
    """Run ``command`` with stderr on a pseudo-terminal: what the terminal showed, stdout, exit code."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's other end closed: the process is done with it
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    stdout = process.stdout.read() if process.stdout else b""
    process.wait(timeout=300)
    return shown.decode(errors="replace"), stdout.decode(errors="replace"), process.returncode


@pytest.mark.parametrize(
    "template",
    [
        "{{ env_var('P_SET') }}",
        "{{env_var('P_SET')}}",
        '{{ env_var("P_UNSET", "fallback") }}',
        "{{ env_var('P_UNSET', 5432) }}",
        "{{ env_var('P_NUMBER') | as_number }}",
        "{{ env_var('P_UNSET', 'True') | as_bool }}",
        "{{ env_var('P_NUMBER') | as_text }}",
        "{{ env_var('P_NUMBER', '1') | as_native }}",
        "db_{{ env_var('P_SET') }}_{{ env_var('P_NUMBER') }}",
        "{{ env_var('P_NUMBER') }}{{ env_var('P_NUMBER') }}",
    ],
)
def test_simple_env_var_templates_render_as_jinja_renders_them(template: str) -> None:
    """The Jinja-free path for plain env_var() calls gives what the Jinja path gives."""
    from activity_export import profile

    with environment(Path.cwd(), {"P_SET": "value", "P_NUMBER": "42"}):
        nodes = profile._simple_nodes(template)
        assert nodes is not None, "this form should not need Jinja"
        fast = profile._concat(iter(nodes))
        slow = profile._environment().from_string(template).render(profile._CONTEXT)
    assert (type(fast), fast) == (type(slow), slow)
