"""Property: whatever hostile value any configuration key holds, the outcome is a clear refusal
(exit 2 naming the tenant and the key) or a run that succeeds; never a traceback, never a secret.

Every key of the tenant schema and of every destination type is drawn, so a key added later is
covered without touching this file. For a local destination an accepted configuration is run for
real (files written and published); for SFTP and S3, which need a server per case, the property
stops at ``check``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from activity_export.cli import app
from activity_export.config import LocalDestination, S3Destination, SftpDestination, Tenant
from tests.support.project import ROOT, Project
from tests.support.sshd import generate_key
from tests.support.tenants import write_tenants

NOW = "2026-11-04T07:00:00+01:00"  # the shared warehouse's three days are due and complete
SECRET = "Hunter2-s3cret-VALUE"
TENANT_KEYS = sorted(key for key in Tenant.model_fields if key not in {"brand", "destination"})
SFTP_KEYS = sorted(key for key in SftpDestination.model_fields if key != "type")
LOCAL_KEYS = sorted(key for key in LocalDestination.model_fields if key != "type")
S3_KEYS = sorted(key for key in S3Destination.model_fields if key != "type")
# values that may be a secret pasted by mistake
SECRET_KEYS = {"password_env", "passphrase_env", "access_key_id_env", "secret_access_key_env"}
# No shrinking: a failing case already names its key and value, and shrinking real runs takes minutes.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate)
FULL_RUN_FROM = date(2026, 10, 1)  # an earlier accepted start is run with --dry-run (years of files)

text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=24)
scalars = st.one_of(
    text,
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "..",
            "../../etc",
            "/etc/passwd",
            "a\nb",
            "X\n",
            "{period.__class__}",
            "{brand[0]}",
            "%n",
            "\t",
            "0640",
            "0777",
            "06:00",
            "24:00",
            "-1",
            "1e309",
            "NaN",
            "posix/Europe/Amsterdam",
            "right/UTC",
            "localtime",
            "Europe/Amsterdam",
            "UTC",
            "{kind}",
            "{period:%Y/%m}",
            ".hidden",
            "é" * 300,
            "pgp",
            "gzip",
            "hourly",
            "weekly",
        ]
    ),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.dates(),
)
# Per key, values at the edge of what is allowed, so that many cases pass check and really run.
EDGE: dict[str, list[Any]] = {
    "timezone": ["Asia/Kolkata", "Pacific/Kiritimati", "America/St_Johns", "UTC", "Etc/GMT+12"],
    "interval": ["hourly", "daily", "weekly"],
    "run_at": ["00:00", "23:59", "00:59", "12:30"],
    "start": [date(2026, 11, 2), date(2026, 10, 30), date(2026, 11, 3), None],
    "extension": ["tsv", "TXT", "c_s-v", "a" * 16],
    "delimiter": ["|", ",", "\\t", " ", "~", "'"],
    "header": [True, False],
    "compression": ["none", "gzip", "zstd"],
    "timestamps": ["local", "offset", "utc"],
    "format": ["csv", "parquet"],
    "file_name": [
        "{kind}_{brand}_{period:%Y%m%d%H}.{extension}",
        "{brand}-{kind}-{period:%Y-%m-%d %H.%M}.{extension}",
        "{kind} {brand} {period:%G-W%V-%u %H}.{extension}",
    ],
    "folder": ["{kind}/{period:%Y}/{period:%m}", "{brand}/ë/{kind}", "a b/{period:%Y%m%d%H}", ""],
    "manifest": [True, False],
    "file_mode": ["0600", "0640", "0660", "0750", "644"],
    "extra_fields": [{"activity": ["os", "url", "useragent", "message"]}, {"broadcast": ["fromaddress"]}],
    "columns": [
        {"activity": {"email": 'e-mail ;"quoted"', "activity": "wat|type"}},
        {"broadcast": {"subject": "Ünïcode onderwerp", "sentdate": "verzonden\tom"}},
    ],
    "erasures": [False],
    "encryption": ["none"],
    "destination.root": ["out/with space", "out/ë/..", "./out"],
}
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(
        st.sampled_from(["activity", "broadcast", "erasure", "x", "url", "secret_env"]),
        st.one_of(scalars, st.lists(scalars, max_size=2), st.dictionaries(text, scalars, max_size=2)),
        max_size=2,
    ),
)


@contextlib.contextmanager
def _inside(folder: Path) -> Iterator[None]:
    """Work deep inside ``folder``: a relative root, even one with a few "..", stays in it."""
    deep = folder.joinpath("sandbox", *["down"] * 12)  # deeper than 24 characters of "../" climb
    deep.mkdir(parents=True, exist_ok=True)
    before = Path.cwd()
    os.chdir(deep)
    try:
        yield
    finally:
        os.chdir(before)


def _outcome(config: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    with _inside(config.parent):
        # the dbt project (its contract gives the files' columns) from elsewhere, as a job may
        project = ["--project-dir", str(ROOT)]
        result = CliRunner().invoke(app, [*args, "--config", str(config), "--now", NOW, *project], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{args[0]} crashed: {result.exception!r}\n{result.output}")
    return result.exit_code, result.output


def _write(folder: Path, tenant: dict[str, Any]) -> Path:
    return write_tenants(folder / "tenants.yml", {"BRANDNAAM": tenant}, allow_unicode=True)


def _assert_refused_or_fine(code: int, output: str, key: str) -> None:
    assert "Traceback" not in output, output
    assert code in (0, 2), output
    if code == 2:
        assert "tenant BRANDNAAM" in output, output
        assert key in output, f"{key} not named in:\n{output}"


@pytest.fixture(scope="module")
def warehouse_env(built_duckdb: Project) -> tuple[list[str], dict[str, str]]:
    return built_duckdb.cli_args(), {"ACTIVITY_EXPORT_DUCKDB": built_duckdb.env["ACTIVITY_EXPORT_DUCKDB"]}


@settings(
    max_examples=150,
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_hostile_value_is_refused_clearly_or_runs(
    warehouse_env: tuple[list[str], dict[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
    data: st.DataObject,
) -> None:
    key = data.draw(st.sampled_from(TENANT_KEYS + [f"destination.{k}" for k in LOCAL_KEYS]), label="key")
    edge = EDGE.get(key)
    value = data.draw(st.sampled_from(edge) if edge and data.draw(st.booleans()) else values, label="value")
    warehouse_args, env = warehouse_env
    folder = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    tenant: dict[str, Any] = {
        "start": date(2026, 11, 1),
        "destination": {"type": "local", "root": str(folder / "out")},
    }
    if key == "destination.root" and isinstance(value, str) and value.startswith("/"):
        value = str(folder) + value  # an absolute root, kept inside this case's folder
    if key.startswith("destination."):
        tenant["destination"][key.split(".", 1)[1]] = value
    else:
        tenant[key] = value
    tenant["destination"]["pw"] = SECRET  # an unknown key, maybe a password: never echoed
    config = _write(folder, tenant)
    code, output = _outcome(config, "check")
    assert SECRET not in output
    assert code == 2 and "destination.pw: unknown key" in output, output

    del tenant["destination"]["pw"]
    config = _write(folder, tenant)
    code, output = _outcome(config, "check")
    _assert_refused_or_fine(code, output, key)
    event("refused by check" if code else "accepted by check")
    if code != 0:
        return
    start = tenant.get("start")
    dry = ["--dry-run"] if not isinstance(start, date) or start < FULL_RUN_FROM else []
    event("run --dry-run" if dry else "run, files published")
    with _inside(folder):
        result = CliRunner().invoke(
            app, ["run", "--config", str(config), "--now", NOW, *dry, *warehouse_args], env=env
        )
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code == 0, f"check accepted {key} = {value!r}, run failed:\n{result.output}"


@settings(
    max_examples=120,
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(key=st.sampled_from(S3_KEYS), value=values, secret=st.booleans())
def test_any_hostile_s3_value_is_refused_clearly_or_checked(
    tmp_path_factory: pytest.TempPathFactory, key: str, value: Any, secret: bool
) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    destination: dict[str, Any] = {
        "type": "s3",
        "bucket": "brandnaam-exports",
        "prefix": "activity-export/",
        "access_key_id_env": "BRANDNAAM_S3_KEY_ID",
        "secret_access_key_env": "BRANDNAAM_S3_SECRET",
    }
    if key in SECRET_KEYS and secret:
        value = f"{SECRET} {value}"  # a secret pasted where a variable name belongs
    if key == "endpoint_url" and secret and isinstance(value, str):
        value = f"https://key:{SECRET}@{value}"  # a login in the URL
    destination[key] = value
    config = _write(folder, {"destination": destination})
    code, output = _outcome(
        config, "check", env={"BRANDNAAM_S3_KEY_ID": "AKIAEXAMPLE", "BRANDNAAM_S3_SECRET": SECRET}
    )
    _assert_refused_or_fine(code, output, key)
    assert SECRET not in output


@pytest.fixture(scope="module")
def private_key(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real, unencrypted private key: ``check`` loads the key as a login would."""
    return generate_key(tmp_path_factory.mktemp("ssh-key") / "key").read_bytes()


@settings(
    max_examples=120,
    deadline=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(key=st.sampled_from(SFTP_KEYS), value=values, secret=st.booleans())
def test_any_hostile_sftp_value_is_refused_clearly_or_checked(
    tmp_path_factory: pytest.TempPathFactory, private_key: bytes, key: str, value: Any, secret: bool
) -> None:
    folder = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    (folder / "known_hosts").write_text("")
    (folder / "key").write_bytes(private_key)
    (folder / "key").chmod(0o600)
    destination: dict[str, Any] = {
        "type": "sftp",
        "host": "sftp.example.nl",
        "username": "brandnaam",
        "private_key": str(folder / "key"),
        "known_hosts": str(folder / "known_hosts"),
    }
    if key in SECRET_KEYS and secret:
        value = f"{SECRET} {value}"  # a password pasted where a variable name belongs
    if key == "password_env":
        destination.pop("private_key")
    destination[key] = value
    config = _write(folder, {"destination": destination})
    code, output = _outcome(config, "check", env={"BRANDNAAM_PASSWORD": SECRET})
    _assert_refused_or_fine(code, output, key)
    assert SECRET not in output
