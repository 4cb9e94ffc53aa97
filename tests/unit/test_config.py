"""Tenant configuration: the SPEC's tenants.yml is accepted, bad ones are refused before any work
(exit 2, with tenant, key, value and what is allowed), and ``check`` summarizes each tenant.

The bad-configuration corpus lives in ``tests/configs/bad/*.yml``; each file starts with
``# expect: <exit code>``, ``# message: <words> | <words> ...`` (all must appear) and optionally
``# absent: <words>`` (must not appear, e.g. a secret).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from activity_export.check import (
    check_config,
    config_problems,
    next_due_period,
    raise_on_problems,
    readable_delimiter,
    render_summary,
)
from activity_export.cli import app
from activity_export.config import Tenant, load_config, parse_config
from activity_export.errors import ConfigError
from activity_export.periods import parse_now, parse_period
from tests.support.project import ROOT

BAD = sorted((ROOT / "tests" / "configs" / "bad").glob("*.yml"))

SPEC_EXAMPLE = """
defaults:                  # optional; any tenant key
  timezone: Europe/Amsterdam
  interval: daily          # hourly | daily | weekly
  run_at: "06:00"          # local time at which a finished period is due
  extension: csv           # without the dot
  delimiter: ";"           # exactly one character; "\\t" for tab
  header: true             # false leaves out the column titles
  compression: none        # none | gzip | zstd (adds .gz / .zst)
  file_name: "{kind}_{brand}_{period:%Y%m%d}.{extension}"
  folder: ""               # folder template under the destination root
  manifest: false          # true: after the two files, a manifest
tenants:
  BRANDNAAM:
    start: 2026-11-01      # first period to deliver
    extra_fields:          # additional fields, appended after the standard columns
      activity: [os, url]
      broadcast: [campaignid]
    columns:               # renamed column titles
      activity: {externalid: klantnummer}
    destination:
      type: sftp           # sftp | local
      host: sftp.example.nl
      port: 22
      username: brandnaam
      private_key: /etc/activity-export/keys/brandnaam   # or password_env: BRANDNAAM_SFTP_PASSWORD
      known_hosts: /etc/activity-export/known_hosts
      root: /upload
      retention_days: 60   # the platform's own SFTP keeps files two months; omit to keep forever
"""


def tenant(**settings: Any) -> Tenant:
    raw = {"tenants": {"T": {"destination": {"type": "local", "root": "/tmp/x"}, **settings}}}
    return parse_config(raw, Path("tenants.yml")).tenant("T")


def refusal(**settings: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        tenant(**settings)
    assert caught.value.exit_code == 2
    return str(caught.value)


# --- the SPEC's file -------------------------------------------------------------------------


def test_the_spec_example_is_accepted_as_written(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yml"
    path.write_text(SPEC_EXAMPLE, encoding="utf-8")
    brandnaam = load_config(path).tenant("BRANDNAAM")
    assert brandnaam.fields("activity")[-2:] == ("os", "url")
    assert brandnaam.titles("activity")[2] == "klantnummer"
    assert brandnaam.fields("broadcast")[-1] == "campaignid"
    assert brandnaam.destination.type == "sftp" and brandnaam.destination.retention_days == 60
    assert brandnaam.start.isoformat() == "2026-11-01"
    period = parse_period(brandnaam, "2026-11-25")
    assert str(brandnaam.relative_path("activity", period)) == "activity_BRANDNAAM_20261125.csv"


SPEC_S3_DESTINATION = {
    "type": "s3",
    "bucket": "brandnaam-exports",
    "prefix": "activity-export/",
    "region": "eu-west-1",
    "endpoint_url": "https://s3.example.nl",
    "access_key_id_env": "BRANDNAAM_S3_KEY_ID",
    "secret_access_key_env": "BRANDNAAM_S3_SECRET",
    "retention_days": 60,
}


def test_the_spec_s3_destination_is_accepted_as_written() -> None:
    s3 = tenant(destination=SPEC_S3_DESTINATION).destination
    assert s3.type == "s3" and s3.retention_days == 60
    assert s3.describe() == "s3://brandnaam-exports/activity-export/ at https://s3.example.nl"
    assert s3.secret_env_vars() == ["BRANDNAAM_S3_KEY_ID", "BRANDNAAM_S3_SECRET"]


def test_an_s3_destination_is_identified_by_endpoint_bucket_and_prefix() -> None:
    def key(**settings: Any) -> str:
        return tenant(destination={"type": "s3", "bucket": "exports", **settings}).destination.key

    assert key() == "s3:https://s3.amazonaws.com/exports/"
    assert key(prefix="a/b") == key(prefix="a/b/") == "s3:https://s3.amazonaws.com/exports/a/b/"
    assert key(endpoint_url="https://S3.Example.NL:443/") == "s3:https://s3.example.nl/exports/"
    assert key(endpoint_url="http://127.0.0.1:8333") == "s3:http://127.0.0.1:8333/exports/"
    # the region and the credentials do not move the files anywhere else
    assert key(region="eu-west-1") == key(region="us-east-1")
    assert key(access_key_id_env="A", secret_access_key_env="B") == key()


def test_tenant_settings_override_defaults() -> None:
    raw = {
        "defaults": {"delimiter": "|", "compression": "gzip", "header": False},
        "tenants": {
            "A": {"destination": {"type": "local", "root": "/a"}},
            "B": {"delimiter": "\\t", "header": True, "destination": {"type": "local", "root": "/b"}},
        },
    }
    config = parse_config(raw, Path("tenants.yml"))
    a, b = config.tenant("A"), config.tenant("B")
    assert (a.delimiter, a.compression, a.header) == ("|", "gzip", False)
    assert (b.delimiter, b.compression, b.header) == ("\t", "gzip", True)


def test_every_default_matches_the_spec() -> None:
    default = tenant()
    assert (default.timezone, default.interval, default.run_at) == ("Europe/Amsterdam", "daily", "06:00")
    assert (default.extension, default.delimiter, default.header) == ("csv", ";", True)
    assert (default.compression, default.folder, default.manifest) == ("none", "", False)
    assert default.titles("activity") == [
        "broadcastid",
        "customerid",
        "externalid",
        "email",
        "activity",
        "activitydate",
        "description",
    ]
    assert default.titles("broadcast") == [
        "broadcastid",
        "broadcasttype",
        "description",
        "subject",
        "sentdate",
    ]


@pytest.mark.parametrize(
    ("interval", "compression", "moment", "name"),
    [
        ("daily", "none", "2026-11-25", "activity_T_20261125.csv"),
        ("hourly", "none", "2026-11-25T13", "activity_T_2026112513.csv"),
        ("weekly", "none", "2026-11-26", "activity_T_20261123.csv"),
        ("daily", "gzip", "2026-11-25", "activity_T_20261125.csv.gz"),
        ("daily", "zstd", "2026-11-25", "activity_T_20261125.csv.zst"),
    ],
)
def test_default_file_names_use_the_local_period_start(
    interval: str, compression: str, moment: str, name: str
) -> None:
    configured = tenant(interval=interval, compression=compression)
    assert str(configured.relative_path("activity", parse_period(configured, moment))) == name


def test_folder_template_and_manifest_name() -> None:
    configured = tenant(folder="{kind}/{period:%Y}/{period:%m}", manifest=True, compression="gzip")
    period = parse_period(configured, "2026-11-25")
    assert str(configured.relative_path("broadcast", period)) == (
        "broadcast/2026/11/broadcast_T_20261125.csv.gz"
    )
    assert str(configured.manifest_path(period)) == "manifest/2026/11/manifest_T_20261125.json"


def test_parquet_files_are_named_parquet_unless_told_otherwise() -> None:
    period_text = "2026-11-25"
    configured = tenant(format="parquet", erasures=True, manifest=True)
    period = parse_period(configured, period_text)
    assert [str(configured.relative_path(kind, period)) for kind in configured.delivered_kinds()] == [
        "activity_T_20261125.parquet",
        "broadcast_T_20261125.parquet",
        "erasure_T_20261125.parquet",
        "manifest_T_20261125.json",
    ]
    assert tenant(format="parquet", extension="pq").relative_path("activity", period).name == (
        "activity_T_20261125.pq"
    )
    sealed = tenant(format="parquet", encryption="pgp", recipients=["/k.asc"])
    assert sealed.relative_path("activity", period).name == "activity_T_20261125.parquet.gpg"
    # a defaults' delimiter or timestamps has nothing to say to a Parquet file: accepted, unused
    raw = {
        "defaults": {"delimiter": "|", "timestamps": "utc"},
        "tenants": {"T": {"format": "parquet", "destination": {"type": "local", "root": "/x"}}},
    }
    assert parse_config(raw, Path("tenants.yml")).tenant("T").extension == "parquet"


def test_every_setting_a_parquet_file_cannot_honour_is_reported_at_once() -> None:
    lines = refusal(format="parquet", extension="csv", header=False, compression="zstd").splitlines()[1:]
    assert [line.split(":")[1].strip() for line in lines] == [
        "extension = 'csv'",
        "header = false",
        "compression = 'zstd'",
    ]


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"format": "xlsx"}, ["tenant T: format = 'xlsx'", "'csv' or 'parquet'"]),
        (
            {"format": "parquet", "compression": "gzip"},
            ["tenant T: compression = 'gzip'", "format: parquet", "compression: none"],
        ),
        ({"format": "parquet", "header": False}, ["tenant T: header = false", "format: parquet"]),
        (
            {"format": "parquet", "extension": "csv"},
            ["tenant T: extension = 'csv'", "format: parquet", "parquet"],
        ),
        ({"extension": "parquet"}, ["tenant T: extension = 'parquet'", "format: csv"]),
    ],
)
def test_settings_that_make_no_sense_for_the_format_are_refused(
    settings: dict[str, Any], words: list[str]
) -> None:
    message = refusal(**settings)
    for word in words:
        assert word in message, message


# --- refusals, one per rule -------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [";;", "", "ab", '"', "\n", "\r", "§", "€", "\x01"])
def test_delimiter_must_be_one_safe_ascii_character(delimiter: str) -> None:
    message = refusal(delimiter=delimiter)
    assert f"tenant T: delimiter = {delimiter!r}" in message


@pytest.mark.parametrize("delimiter", [";", "|", ",", "\\t", "\t", " ", ":", "~"])
def test_reasonable_delimiters_are_accepted(delimiter: str) -> None:
    assert tenant(delimiter=delimiter).delimiter == delimiter.replace("\\t", "\t")


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("{kind}_{period.__class__}.{extension}", "attribute or index access"),
        ("{kind}_{period.year}_{period:%Y%m%d}.{extension}", "attribute or index access"),
        ("{kind}_{brand[0]}_{period:%Y%m%d}.{extension}", "attribute or index access"),
        ("{kind}_{0}_{period:%Y%m%d}.{extension}", "is not a template field"),
        ("{kind}_{}_{period:%Y%m%d}.{extension}", "is not a template field"),
        ("{kind}_{brand!r}_{period:%Y%m%d}.{extension}", "conversions"),
        ("{kind}_{brand:>20}_{period:%Y%m%d}.{extension}", "only {period} takes a format"),
        ("{kind}_{period:{brand}}.{extension}", "may not hold another field"),
        ("{kind}_{period:%Y%m%d.{extension}", "not a valid template"),
        ("{kind}_{period:%Y%m%d}}.{extension}", "not a valid template"),
    ],
)
def test_template_fields_are_only_the_documented_ones(template: str, words: str) -> None:
    message = refusal(file_name=template)
    assert f"file_name = {template!r}" in message and words in message


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"folder": "/srv"}, "absolute or climbs out"),
        ({"folder": "../{kind}"}, "absolute or climbs out"),
        ({"folder": "{kind}/../../x"}, "absolute or climbs out"),
        ({"file_name": "{kind}_{period:%D}.{extension}"}, "not a plain visible file name"),
        ({"file_name": ".{kind}_{period:%Y%m%d}"}, "not a plain visible file name"),
        ({"file_name": "{kind}/{period:%Y%m%d}.{extension}"}, "path separator"),
        ({"file_name": "{kind}_{period:%Y%m%d%n}.{extension}"}, "control character"),
    ],
)
def test_template_results_stay_under_the_root(settings: dict[str, str], words: str) -> None:
    assert words in refusal(**settings)


@pytest.mark.parametrize(
    ("settings", "periods"),
    [
        (
            {"interval": "hourly", "file_name": "{kind}_{brand}_{period:%Y%m%d}.{extension}"},
            "hourly periods 2026-03-29T01 and 2026-03-29T03",
        ),
        (
            {"interval": "hourly", "file_name": "{kind}_{brand}_{period:%H}.{extension}"},
            "hourly periods 2026-03-29T01 and 2026-03-30T01",
        ),
        (
            {"file_name": "{kind}_{brand}_{period:%Y%m}.{extension}"},
            "daily periods 2026-03-29 and 2026-03-30",
        ),
        (
            {"file_name": "{kind}_{brand}_{period:%m%d}.{extension}"},
            "daily periods 2026-03-29 and 2027-03-29",
        ),
        ({"interval": "weekly", "file_name": "{kind}_{brand}_{period:%Y%m}.{extension}"}, "weekly periods"),
    ],
)
def test_two_periods_may_not_share_a_file_name(settings: dict[str, str], periods: str) -> None:
    message = refusal(**settings)
    assert periods in message and "both get the name" in message


def test_the_two_kinds_and_the_manifest_may_not_share_a_name() -> None:
    assert "activity and broadcast files" in refusal(file_name="{brand}_{period:%Y%m%d}.csv")
    # {kind} only in the folder is enough for data files and manifest alike
    tenant(folder="{kind}", file_name="{brand}_{period:%Y%m%d}.{extension}", manifest=True)


def test_extra_fields_come_from_the_catalogue() -> None:
    message = refusal(extra_fields={"activity": ["os", "ip"]})
    assert "'ip' is not an extra field" in message
    assert "allowed: eventid, registereddate, url, message, os, device, browser, useragent" in message
    assert "a field is listed twice" in refusal(extra_fields={"broadcast": ["campaignid", "campaignid"]})
    assert "extra_fields.sms = 'sms'" in refusal(extra_fields={"sms": ["os"]})


def test_renamed_columns_must_exist_and_titles_must_differ() -> None:
    assert "columns.activity.nope: 'nope' is not a column" in refusal(columns={"activity": {"nope": "x"}})
    clash = refusal(columns={"activity": {"externalid": "email"}})
    assert "externalid and email both get the title 'email'" in clash
    renamed_extra = tenant(extra_fields={"activity": ["os"]}, columns={"activity": {"os": "platform"}})
    assert renamed_extra.titles("activity")[-1] == "platform"
    assert "one non-empty line" in refusal(columns={"activity": {"email": "e\nmail"}})


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"timezone": "Europe/Amsterdan"}, "timezone = 'Europe/Amsterdan': not a known IANA timezone"),
        ({"timezone": "../../etc/passwd"}, "not a known IANA timezone"),
        ({"run_at": "6:00"}, "run_at = '6:00'"),
        ({"run_at": "24:00"}, "run_at = '24:00'"),
        ({"run_at": 360}, 'must be a quoted local time "HH:MM"'),
        ({"interval": "monthly"}, "interval = 'monthly'"),
        ({"extension": "tar.gz"}, "extension = 'tar.gz'"),
        ({"extension": "a\\b"}, "no path separator"),
    ],
)
def test_schedule_and_name_settings_are_checked(settings: dict[str, Any], words: str) -> None:
    assert words in refusal(**settings)


def test_destination_keys_belong_to_its_type() -> None:
    message = refusal(destination={"type": "local", "root": "/x", "username": "u"})
    assert "destination.username: unknown key; allowed here: type, root" in message
    assert "'u'" not in message  # nothing under destination is echoed
    sftp = {"type": "sftp", "host": "h", "username": "u", "known_hosts": "/k", "private_key": "/p"}
    assert "destination.retention_days" in refusal(destination={**sftp, "retention_days": 0})
    assert "passphrase_env goes with private_key" in refusal(
        destination={**sftp, "private_key": None, "password_env": "P", "passphrase_env": "Q"}
    )


def test_a_secret_is_never_echoed_in_a_refusal() -> None:
    sftp = {"type": "sftp", "host": "h", "username": "u", "known_hosts": "/k"}
    message = refusal(destination={**sftp, "password_env": "s3cr3t-Passw0rd!"})
    assert "s3cr3t" not in message and "destination.password_env" in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    raw = {
        "tenants": {
            "A": {"delimiter": ";;", "destination": {"type": "local", "root": "/a"}},
            "B": {
                "timezone": "Nowhere/City",
                "compression": "rar",
                "destination": {"type": "local", "root": "/b"},
            },
        }
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, Path("tenants.yml"))
    lines = str(caught.value).splitlines()
    assert lines[0] == "tenants.yml: invalid configuration"
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["tenant A", "tenant B", "tenant B"]


# --- the corpus, through the command line -----------------------------------------------------


def _expectations(path: Path) -> tuple[int, list[str], list[str]]:
    header = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("# ")]
    fields: dict[str, list[str]] = {}
    for line in header:
        key, _, value = line[2:].partition(": ")
        fields.setdefault(key, []).extend(part.strip() for part in value.split(" | "))
    assert "expect" in fields and "message" in fields, f"{path.name}: needs '# expect:' and '# message:'"
    return int(fields["expect"][0]), fields["message"], fields.get("absent", [])


def test_the_corpus_covers_every_refusal_rule() -> None:
    names = {path.stem for path in BAD}
    for rule in (
        "delimiter_two_characters",
        "delimiter_quote",
        "delimiter_line_break",
        "extension_with_dot",
        "extension_with_separator",
        "brand_code",
        "template_unknown_field",
        "template_attribute_access",
        "template_index_access",
        "folder_absolute",
        "folder_climbs_out",
        "extra_field_unknown",
        "column_rename_unknown",
        "column_titles_clash",
        "hourly_without_hour",
        "timezone_unknown",
        "run_at_out_of_range",
        "local_destination_with_sftp_key",
        "sftp_destination_unknown_key",
    ):
        assert rule in names


@pytest.mark.parametrize("path", BAD, ids=[path.stem for path in BAD])
def test_bad_configuration_is_refused_before_any_work(path: Path, tmp_path: Path) -> None:
    code, words, absent = _expectations(path)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "export",
            "--config",
            str(path),
            "--brand",
            "BRANDNAAM",
            "--period",
            "2026-11-25",
            "--out",
            str(out),
            "--project-dir",
            str(ROOT),  # the column catalogue; the warehouse would be next, and is never reached
            "--profiles-dir",
            str(tmp_path / "no-profiles"),
        ],
    )
    message = result.output
    assert result.exit_code == code, message
    for word in words:
        assert word in message, f"{path.name}: {word!r} not in:\n{message}"
    for word in absent:
        assert word not in message
    assert not out.exists()  # refused before any work: no warehouse, no folder
    assert "Traceback" not in message


# --- check -----------------------------------------------------------------------------------


def _check_config(tmp_path: Path, destination: dict[str, Any], **settings: Any) -> list[Any]:
    raw = {"tenants": {"BRANDNAAM": {"destination": destination, **settings}}}
    config = parse_config(raw, tmp_path / "tenants.yml")
    return check_config(config, parse_now("2026-11-26T07:00:00+01:00"))


def _sftp(tmp_path: Path, **login: str) -> dict[str, Any]:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("", encoding="utf-8")
    return {
        "type": "sftp",
        "host": "sftp.example.nl",
        "username": "brandnaam",
        "known_hosts": str(known_hosts),
        "root": "/upload",
        **login,
    }


def test_check_reports_an_unset_password_variable_as_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AEXP_TEST_UNSET_PASSWORD", raising=False)
    summaries = _check_config(tmp_path, _sftp(tmp_path, password_env="AEXP_TEST_UNSET_PASSWORD"))
    assert config_problems(summaries) == [
        "tenant BRANDNAAM: destination.password_env: environment variable AEXP_TEST_UNSET_PASSWORD is not set "
        "(it must hold the secret)"
    ]
    with pytest.raises(ConfigError) as caught:
        raise_on_problems(summaries)
    assert caught.value.exit_code == 2
    assert "PROBLEM" in render_summary(summaries)


def test_check_reports_unset_s3_credential_variables_and_names_them_in_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRANDNAAM_S3_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.delenv("BRANDNAAM_S3_SECRET", raising=False)
    summaries = _check_config(tmp_path, SPEC_S3_DESTINATION)
    assert config_problems(summaries) == [
        "tenant BRANDNAAM: destination.secret_access_key_env: environment variable BRANDNAAM_S3_SECRET "
        "is not set (it must hold the secret)"
    ]
    summary = render_summary(summaries)
    assert "s3://brandnaam-exports/activity-export/ at https://s3.example.nl, region eu-west-1" in summary
    assert "credentials from $BRANDNAAM_S3_KEY_ID and $BRANDNAAM_S3_SECRET" in summary
    assert "AKIAEXAMPLE" not in summary


def test_check_shows_the_variable_name_never_the_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEXP_TEST_PASSWORD", "Tr0ub4dor&3-very-secret")
    summaries = _check_config(tmp_path, _sftp(tmp_path, password_env="AEXP_TEST_PASSWORD"))
    text = render_summary(summaries)
    assert config_problems(summaries) == []
    raise_on_problems(summaries)
    assert "password from $AEXP_TEST_PASSWORD" in text
    assert "Tr0ub4dor" not in text and "Tr0ub4dor" not in repr(summaries)
    assert text.endswith("configuration OK: 1 tenant(s)")


def test_check_reports_missing_key_files(tmp_path: Path) -> None:
    summaries = _check_config(tmp_path, _sftp(tmp_path, private_key=str(tmp_path / "nokey")))
    assert config_problems(summaries) == [
        f"tenant BRANDNAAM: destination.private_key = {str(tmp_path / 'nokey')!r}: no such file"
    ]


def test_check_summary_describes_schedule_format_and_names(tmp_path: Path) -> None:
    summaries = _check_config(
        tmp_path,
        {"type": "local", "root": str(tmp_path / "out")},
        interval="hourly",
        timezone="Asia/Kolkata",
        run_at="00:15",
        delimiter="\\t",
        header=False,
        compression="zstd",
        timestamps="offset",
        manifest=True,
        folder="{kind}/{period:%Y}",
        extra_fields={"activity": ["os", "url"], "broadcast": ["campaignid"]},
        columns={"activity": {"externalid": "klantnummer"}},
    )
    text = render_summary(summaries)
    assert "hourly in Asia/Kolkata, due at 15 minutes past each hour" in text
    # now is 11:30 IST: the 10:00 hour was due at 11:15, the 11:00 hour is next
    assert (
        "next period     2026-11-26T11: 2026-11-26 11:00 IST to 2026-11-26 12:00 IST, due 2026-11-26 12:15 IST"
        in text
    )
    assert (
        'format csv, delimiter "\\t" (tab), header no, compression zstd, timestamps offset, extension csv, '
        "manifest yes" in text
    )
    assert "activity file   extra fields os, url; renamed externalid as klantnummer" in text
    assert "broadcast file  extra fields campaignid; renamed none" in text
    assert "activity/2026/activity_BRANDNAAM_2026112611.csv.zst" in text
    assert "manifest/2026/manifest_BRANDNAAM_2026112611.json" in text
    assert f"local folder {tmp_path / 'out'}" in text


def test_check_summary_of_a_parquet_tenant_leaves_out_what_does_not_apply(tmp_path: Path) -> None:
    summaries = _check_config(tmp_path, {"type": "local", "root": str(tmp_path / "out")}, format="parquet")
    text = render_summary(summaries)
    assert "format parquet (typed columns, dates as instants), extension parquet, manifest no" in text
    assert "delimiter" not in text and "timestamps" not in text


def test_readable_delimiters() -> None:
    assert readable_delimiter("\t") == '"\\t" (tab)'
    assert readable_delimiter(";") == '";" (semicolon)'
    assert readable_delimiter("~") == '"~"'


def test_next_due_period_respects_start_and_run_at() -> None:
    daily = tenant(run_at="08:00")
    at_seven = parse_now("2026-11-26T07:00:00+01:00")
    assert next_due_period(daily, at_seven).label == "2026-11-25"  # due at 08:00, not yet
    assert next_due_period(daily, parse_now("2026-11-26T08:00:00+01:00")).label == "2026-11-26"
    later = tenant(start="2027-01-04", interval="weekly")
    assert next_due_period(later, at_seven).label == "2027-01-04"


@pytest.mark.parametrize(
    ("second", "collides"),
    [
        ({}, True),  # the same endpoint, bucket and prefix
        ({"region": "us-east-1", "access_key_id_env": "A", "secret_access_key_env": "B"}, True),
        ({"prefix": "other/"}, False),
        ({"bucket": "other-exports"}, False),
        ({"endpoint_url": "https://s3.other.example"}, False),
    ],
)
def test_s3_tenants_collide_on_the_same_endpoint_bucket_and_prefix(
    second: dict[str, object], collides: bool
) -> None:
    from activity_export.check import path_collisions

    raw = {
        "defaults": {"file_name": "{kind}_{period:%Y%m%d}.{extension}"},
        "tenants": {
            "BRANDNAAM": {"destination": SPEC_S3_DESTINATION},
            "MODEHUIS": {"destination": {**SPEC_S3_DESTINATION, **second}},
        },
    }
    problems = path_collisions(parse_config(raw, Path("tenants.yml")))
    assert bool(problems) == collides, problems
    if collides:
        assert "both write /activity-export/activity_2026" in problems[0]
