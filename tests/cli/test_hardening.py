"""What a careless or hostile party can try, and what they get: a clear refusal, never a secret echoed,
never a file outside its place.

Each test acts through the command line, the way the operator (or someone who can write where the
product reads or writes) would.
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner, Result

from activity_export.cli import app
from tests.support.project import BIN, ROOT, Project
from tests.support.tenants import write_tenants

NOW = "2026-11-26T07:00:00+01:00"
SECRET = "hunter2-Sup3r-s3cret"


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tenants.yml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def local_config(tmp_path: Path, settings: str = "", destination: str = "") -> Path:
    root = tmp_path / "out"
    return config_file(
        tmp_path,
        f"""
        tenants:
          BRANDNAAM:
            {settings}
            destination:
              type: local
              root: {root}
              {destination}
        """,
    )


def check(path: Path, *extra: str) -> Result:
    return cli("check", "--config", str(path), "--now", NOW, *extra)


def assert_refused(result: Result, *words: str) -> str:
    output = result.output
    assert result.exit_code == 2, output
    assert "Traceback" not in output
    for word in words:
        assert word in output, f"{word!r} not in:\n{output}"
    return output


# --- 4. secrets never echo ---------------------------------------------------------------------


@pytest.mark.parametrize("key", ["passwd", "pw", "secret", "password"])
def test_a_password_under_a_misspelled_key_is_named_never_printed(tmp_path: Path, key: str) -> None:
    path = config_file(
        tmp_path,
        f"""
        tenants:
          BRANDNAAM:
            {key}: {SECRET}
            destination:
              type: sftp
              host: sftp.example.nl
              username: brandnaam
              {key}: {SECRET}
              private_key: /etc/keys/brandnaam
              known_hosts: /etc/known_hosts
        """,
    )
    output = assert_refused(
        check(path), "tenant BRANDNAAM", f"destination.{key}: unknown key", f"{key}: unknown key"
    )
    assert SECRET not in output


def test_nothing_under_destination_is_echoed(tmp_path: Path) -> None:
    path = config_file(
        tmp_path,
        f"""
        tenants:
          BRANDNAAM:
            destination:
              type: sftp
              host: "{SECRET} with spaces"
              port: "{SECRET}"
              username: brandnaam
              password_env: "{SECRET}"
              known_hosts: /etc/known_hosts
        """,
    )
    output = assert_refused(check(path), "destination.host", "destination.port", "destination.password_env")
    assert SECRET not in output


def test_a_yaml_syntax_error_shows_line_and_column_not_the_text(tmp_path: Path) -> None:
    path = config_file(
        tmp_path,
        f"""
        tenants:
          BRANDNAAM:
            destination: {{type: sftp, password: "{SECRET}
        """,
    )
    output = assert_refused(check(path), "not valid YAML at line", "column")
    assert SECRET not in output


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (  # a flow mapping never closed: what was expected, and where the mapping began
            f"tenants:\n  BRANDNAAM:\n    destination: {{type: sftp, password: {SECRET}\n",
            ["line 4, column 1", "expected ',' or '}'", "flow mapping", "line 3, column 18"],
        ),
        (  # a key indented one space short
            "tenants:\n  BRANDNAAM:\n    destination:\n      type: local\n     root: /srv\n",
            ["line 5, column 6", "indent"],
        ),
        (  # a tab where YAML wants spaces
            "tenants:\n  BRANDNAAM:\n\tdestination: {}\n",
            ["line 3, column 1", "tab"],
        ),
        (  # a value holding ": " without quotes
            f"tenants:\n  BRANDNAAM:\n    file_name: {SECRET}: x\n",
            ["line 3, column", "quote"],
        ),
        (  # an alias whose name is the secret
            f"tenants:\n  BRANDNAAM:\n    file_name: *{SECRET}\n",
            ["line 3, column 16", "alias"],
        ),
    ],
)
def test_a_yaml_syntax_error_says_where_and_what_was_expected(
    tmp_path: Path, text: str, words: list[str]
) -> None:
    path = tmp_path / "tenants.yml"
    path.write_text(text, encoding="utf-8")
    output = assert_refused(check(path), f"{path}: not valid YAML at ", *words)
    assert SECRET not in output
    assert "a character" not in output  # the text that was blanked out, garbling the sentence


def test_a_configuration_that_is_not_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yml"
    path.write_bytes(b"tenants:\n  \xff\xfe: {}\n")
    assert_refused(check(path), "not UTF-8")
    assert_refused(check(tmp_path), "cannot read")


# --- 5. check refuses what run would trip on ---------------------------------------------------


@pytest.mark.parametrize("zone", ["posix/Europe/Amsterdam", "right/UTC", "localtime", "Europe/Nowhere"])
def test_timezones_the_writer_does_not_know_are_refused(tmp_path: Path, zone: str) -> None:
    assert_refused(check(local_config(tmp_path, f"timezone: {zone}")), "tenant BRANDNAAM", "timezone", zone)


def test_a_column_title_with_a_nul_character_is_refused(tmp_path: Path) -> None:
    settings = 'columns: {activity: {email: "e\\0mail"}}'
    assert_refused(check(local_config(tmp_path, settings)), "tenant BRANDNAAM", "columns.activity.email")


@pytest.mark.parametrize("start", ["0001-01-01", "9999-12-31", "1969-12-31"])
def test_a_start_outside_the_reachable_years_is_refused(tmp_path: Path, start: str) -> None:
    assert_refused(
        check(local_config(tmp_path, f"start: {start}")), "tenant BRANDNAAM", "start", "1970-01-01"
    )


def test_huge_retention_days_are_refused(tmp_path: Path) -> None:
    path = config_file(
        tmp_path,
        """
        tenants:
          BRANDNAAM:
            destination:
              type: sftp
              host: sftp.example.nl
              username: brandnaam
              private_key: /etc/keys/brandnaam
              known_hosts: /etc/known_hosts
              retention_days: 99999999999
        """,
    )
    assert_refused(check(path), "tenant BRANDNAAM", "destination.retention_days", "36500")


@pytest.mark.parametrize("now", ["9999-12-31T23:00:00+00:00", "0001-01-01T00:00:00+00:00"])
@pytest.mark.parametrize("command", ["check", "run", "status", "prune"])
def test_a_clock_outside_the_reachable_years_is_refused(tmp_path: Path, now: str, command: str) -> None:
    result = cli(command, "--config", str(local_config(tmp_path)), "--now", now)
    assert_refused(result, "--now", "1970-01-01")


def test_a_period_outside_the_reachable_years_is_refused(tmp_path: Path) -> None:
    result = cli(
        "backfill", "--config", str(local_config(tmp_path)), "--brand", "BRANDNAAM",
        "--from", "9999-12-30", "--to", "9999-12-31",
    )  # fmt: skip
    assert_refused(result, "tenant BRANDNAAM", "9999-12-30")


def test_a_brand_code_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    path = config_file(
        tmp_path,
        f"""
        tenants:
          "BRANDNAAM\\n":
            destination: {{type: local, root: {tmp_path}}}
        """,
    )
    assert_refused(check(path), "tenant 'BRANDNAAM\\n'", "brand")


@pytest.mark.parametrize("root", ['""', '"  "', '"a\\0b"'])
def test_an_empty_or_binary_root_is_refused(tmp_path: Path, root: str) -> None:
    path = config_file(
        tmp_path,
        f"""
        tenants:
          BRANDNAAM:
            destination: {{type: local, root: {root}}}
        """,
    )
    assert_refused(check(path), "tenant BRANDNAAM", "destination.root")


@pytest.mark.parametrize(
    ("mode", "words"),
    [
        ("0640", "quoted"),
        ('"rw-r-----"', "octal"),
        ('"0400"', "read and write"),
        ('"0666"', "writable by everyone"),
        ('"4750"', "octal"),
    ],
)
def test_file_mode_must_be_safe_quoted_octal(tmp_path: Path, mode: str, words: str) -> None:
    assert_refused(
        check(local_config(tmp_path, f"file_mode: {mode}")), "tenant BRANDNAAM", "file_mode", words
    )


def test_a_hidden_folder_is_refused(tmp_path: Path) -> None:
    assert_refused(check(local_config(tmp_path, 'folder: ".ssh"')), "tenant BRANDNAAM", "folder")


# --- 1. local publishing never follows a link -----------------------------------------------------

RUN_NOW = "2026-11-04T07:00:00+01:00"  # the three generated days of the shared warehouse are due


def tenants_file(folder: Path, **tenants: dict[str, object]) -> Path:
    return write_tenants(folder / "tenants.yml", tenants, {"start": "2026-11-01"})


def run_cli(project: Project, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return project.run(
        "run", "--config", str(config), "--now", RUN_NOW, *args, *project.cli_args(), check=False
    )


def under_umask(umask: int, project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """``activity-export`` in a child process started with the given umask."""
    return subprocess.run(
        [str(BIN / "activity-export"), *args, *project.cli_args()],
        env=project.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        umask=umask,
    )


def test_a_folder_link_below_the_root_is_refused_and_nothing_lands_outside(
    built_duckdb: Project, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "server" / "BRANDNAAM"
    root.mkdir(parents=True)
    (root / "activity").symlink_to(outside)
    config = tenants_file(
        tmp_path,
        BRANDNAAM={"folder": "{kind}", "destination": {"type": "local", "root": str(root)}},
        MODEHUIS={"destination": {"type": "local", "root": str(tmp_path / "server" / "MODEHUIS")}},
    )

    result = run_cli(built_duckdb, config)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "tenant BRANDNAAM" in result.stderr and "activity is a symbolic link" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(outside.iterdir()) == []
    assert len(list((tmp_path / "server" / "MODEHUIS").glob("*.csv"))) == 6  # the other tenant ran


def test_a_link_at_the_final_name_is_refused_and_its_target_untouched(
    built_duckdb: Project, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    root = tmp_path / "server"
    root.mkdir()
    (root / "activity_BRANDNAAM_20261101.csv").symlink_to(victim)
    config = tenants_file(tmp_path, BRANDNAAM={"destination": {"type": "local", "root": str(root)}})

    result = run_cli(built_duckdb, config)

    assert result.returncode == 1
    assert "activity_BRANDNAAM_20261101.csv is a symbolic link" in result.stderr
    assert victim.read_text() == "precious\n"
    assert (root / "activity_BRANDNAAM_20261101.csv").is_symlink()


def test_a_link_planted_at_a_temporary_name_is_never_written_through(
    built_duckdb: Project, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    root = tmp_path / "server"
    root.mkdir()
    for kind in ("activity", "broadcast"):
        for day in (1, 2, 3):
            (root / f".{kind}_BRANDNAAM_2026110{day}.csv.partial").symlink_to(victim)
    config = tenants_file(tmp_path, BRANDNAAM={"destination": {"type": "local", "root": str(root)}})

    result = run_cli(built_duckdb, config)

    assert result.returncode == 0, result.stderr
    assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in root.iterdir()) == sorted(
        f"{kind}_BRANDNAAM_2026110{day}.csv" for kind in ("activity", "broadcast") for day in (1, 2, 3)
    )
    assert not any(p.is_symlink() for p in root.iterdir())


# --- 2. file modes follow file_mode, not the umask --------------------------------------------------


def test_files_and_folders_get_file_mode_and_backfill_keeps_it(built_duckdb: Project, tmp_path: Path) -> None:
    root = tmp_path / "server"
    config = tenants_file(
        tmp_path,
        BRANDNAAM={"folder": "{kind}/{period:%Y}", "destination": {"type": "local", "root": str(root)}},
        MODEHUIS={"file_mode": "0600", "destination": {"type": "local", "root": str(tmp_path / "private")}},
    )
    run = under_umask(0o000, built_duckdb, "run", "--config", str(config), "--now", RUN_NOW)
    assert run.returncode == 0, run.stderr

    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(files) == 6
    assert {oct(p.stat().st_mode & 0o7777) for p in files} == {"0o640"}
    assert {oct(p.stat().st_mode & 0o7777) for p in root.rglob("*") if p.is_dir()} == {"0o750"}
    private = list((tmp_path / "private").iterdir())
    assert {oct(p.stat().st_mode & 0o7777) for p in private} == {"0o600"}
    assert oct((tmp_path / "private").stat().st_mode & 0o7777) == "0o700"

    for path in private:
        path.chmod(0o644)  # someone loosened them; a backfill puts file_mode back
    backfill = under_umask(
        0o022, built_duckdb, "backfill", "--config", str(config), "--brand", "MODEHUIS",
        "--from", "2026-11-01", "--to", "2026-11-03",
    )  # fmt: skip
    assert backfill.returncode == 0, backfill.stderr
    assert {oct(p.stat().st_mode & 0o7777) for p in (tmp_path / "private").iterdir()} == {"0o600"}


# --- 8. environment variables -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("ACTIVITY_EXPORT_SFTP_RETRY_SECONDS", "abc", "number of seconds"),
        ("ACTIVITY_EXPORT_SFTP_RETRY_SECONDS", "nan", "number of seconds"),
        ("ACTIVITY_EXPORT_SFTP_RETRY_SECONDS", "-5", "number of seconds"),
        ("ACTIVITY_EXPORT_SFTP_RETRY_SECONDS", "1e400", "number of seconds"),
        ("ACTIVITY_EXPORT_FAILPOINT", "everywhere", "not a failpoint"),
        ("ACTIVITY_EXPORT_LEDGER", "", "set but empty"),
        ("ACTIVITY_EXPORT_CONFIG", " ", "set but empty"),
        ("PGPORT", "five", "TCP port"),
    ],
)
def test_a_bad_environment_variable_is_a_configuration_error(
    tmp_path: Path, variable: str, value: str, words: str
) -> None:
    for command in ("check", "run", "status"):
        result = cli(command, "--config", str(local_config(tmp_path)), env={variable: value})
        assert_refused(result, f"environment variable {variable}", words)


# --- 5. a brand without data is a warning -------------------------------------------------------------


def test_a_brand_absent_from_the_data_is_a_warning_in_check_and_status(
    built_duckdb: Project, tmp_path: Path
) -> None:
    config = tenants_file(
        tmp_path,
        BRANDNAAM={"destination": {"type": "local", "root": str(tmp_path / "a")}},
        BRANDNAAMM={"destination": {"type": "local", "root": str(tmp_path / "b")}},
    )
    checked = built_duckdb.run("check", "--config", str(config), "--now", RUN_NOW, *built_duckdb.cli_args())
    status = built_duckdb.run("status", "--config", str(config), "--now", RUN_NOW, *built_duckdb.cli_args())

    for result in (checked, status):
        assert (
            "warning: tenant BRANDNAAMM: the warehouse holds no data for brand 'BRANDNAAMM'" in result.stderr
        )
        assert "tenant BRANDNAAM:" not in result.stderr


# --- 6. generate takes identifiers only through a validator -------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--brands", "X'); drop table raw.events; --", "not a brand code"),
        ("--brands", "A,BRAND NAAM", "not a brand code"),
        ("--raw-schema", 'raw"; drop schema main; --', "--raw-schema"),
        ("--raw-schema", "raw.events", "--raw-schema"),
        ("--start", "0001-01-01", "--start"),
        ("--days", "99999999", "--days"),
    ],
)
def test_generate_refuses_what_would_become_sql(
    duckdb_project: Project, tmp_path: Path, option: str, value: str, words: str
) -> None:
    own = dict(duckdb_project.env, ACTIVITY_EXPORT_DUCKDB=str(tmp_path / "gen.duckdb"))
    result = duckdb_project.run("generate", option, value, *duckdb_project.cli_args(), check=False, env=own)
    assert result.returncode == 2, result.stdout + result.stderr
    assert words in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "gen.duckdb").exists()


# --- 7. demo deletes only its own warehouse and delivers only to its own configuration ----------------


def demo_workdir(tmp_path: Path, text: str | None = None) -> Path:
    workdir = tmp_path / "work"
    (workdir / "demo").mkdir(parents=True)
    source = (ROOT / "demo" / "tenants.yml").read_text(encoding="utf-8")
    (workdir / "demo" / "tenants.yml").write_text(source if text is None else text, encoding="utf-8")
    return workdir


def test_demo_refuses_to_delete_a_warehouse_it_did_not_create(
    duckdb_project: Project, tmp_path: Path
) -> None:
    precious = tmp_path / "precious.duckdb"
    with duckdb.connect(str(precious)) as con:
        con.execute("create table customers as select 42 as customer_id")
    stranger = tmp_path / "notes.txt"
    stranger.write_text("not a database\n")
    for path in (precious, stranger):
        before = path.read_bytes()
        env = dict(duckdb_project.env, ACTIVITY_EXPORT_DUCKDB=str(path))
        result = duckdb_project.run(
            "demo",
            "--days",
            "1",
            *duckdb_project.cli_args(),
            check=False,
            env=env,
            cwd=demo_workdir(tmp_path / path.stem),
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert "was not created by `activity-export demo`" in result.stderr and "--force" in result.stderr
        assert path.read_bytes() == before


@pytest.mark.parametrize("change", ["no marker", "a server"])
def test_demo_refuses_a_configuration_that_is_not_its_own(
    duckdb_project: Project, tmp_path: Path, change: str
) -> None:
    text = (ROOT / "demo" / "tenants.yml").read_text(encoding="utf-8")
    if change == "no marker":
        text = text.replace("# activity-export: demo configuration\n", "")
    else:
        text += (
            "  REAL:\n    destination: {type: sftp, host: sftp.example.nl, username: real,"
            " password_env: REAL_PASSWORD, known_hosts: /etc/known_hosts}\n"
        )
    env = dict(duckdb_project.env, ACTIVITY_EXPORT_DUCKDB=str(tmp_path / "demo.duckdb"))
    workdir = demo_workdir(tmp_path, text)
    result = duckdb_project.run("demo", *duckdb_project.cli_args(), check=False, env=env, cwd=workdir)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "is not a demo configuration" in result.stderr
    assert not (tmp_path / "demo.duckdb").exists() and not (workdir / "exports").exists()
    # it is the demo's own file, edited: the way out is to undo the edit, not to "use" that file
    assert "Use demo/tenants.yml" not in result.stderr
    if change == "no marker":
        assert "put back the line '# activity-export: demo configuration'" in result.stderr
    else:
        assert "tenant REAL" in result.stderr and "type: local" in result.stderr
    assert "git checkout demo/tenants.yml" in result.stderr and "--force" in result.stderr


@pytest.mark.parametrize("demos_own_edited", [False, True])
def test_demo_given_another_configuration_points_at_its_own_only_while_that_one_is_usable(
    duckdb_project: Project, tmp_path: Path, demos_own_edited: bool
) -> None:
    own = (ROOT / "demo" / "tenants.yml").read_text(encoding="utf-8")
    workdir = demo_workdir(
        tmp_path, own.replace("# activity-export: demo configuration\n", "") if demos_own_edited else own
    )
    other = workdir / "tenants.yml"
    other.write_text(own.replace("# activity-export: demo configuration\n", ""), encoding="utf-8")
    env = dict(duckdb_project.env, ACTIVITY_EXPORT_DUCKDB=str(tmp_path / "demo.duckdb"))
    result = duckdb_project.run(
        "demo", "--config", str(other), *duckdb_project.cli_args(), check=False, env=env, cwd=workdir
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{other} is not a demo configuration" in result.stderr
    assert ("demo/tenants.yml" in result.stderr) is not demos_own_edited, result.stderr
