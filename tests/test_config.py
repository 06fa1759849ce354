"""Settings are read once and a bad one fails at start-up naming the variable."""

from __future__ import annotations

import datetime as dt
import os
import stat
from decimal import Decimal
from pathlib import Path

import pytest

from bot import web_settings
from bot.config import Config, ConfigError

ROOT = Path(__file__).resolve().parent.parent
SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token"
KEY = "k" * 32


def settings(tmp_path: Path, dotenv: Path | None = None, **environ: str) -> Config:
    """Build a Config from `environ` only: a tmp INSTANCE_DIR, and no developer .env."""
    environ = {"INSTANCE_DIR": str(tmp_path / "instance"), **environ}
    return Config.from_env(environ, dotenv=dotenv or tmp_path / "absent.env")


def refusal(tmp_path: Path, **environ: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        settings(tmp_path, **environ)
    assert caught.value.name in str(caught.value)
    return caught.value


def test_defaults_run_locally_without_twilio(tmp_path: Path) -> None:
    config = settings(tmp_path)
    assert not config.twilio_configured
    assert (config.redis_url, config.public_url, config.port) == (None, None, 8000)
    assert config.flows_dir == ROOT / "flows"
    assert config.instance_dir == tmp_path / "instance"


def test_workers_archive_the_ledger_under_the_instance_unless_told_otherwise(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    assert settings(tmp_path, INSTANCE_DIR=str(instance)).archive_dir == instance / "ledger-archive"
    assert settings(tmp_path, INSTANCE_DIR=str(instance), LEDGER_ARCHIVE_DIR="off").archive_dir is None
    shared = tmp_path / "shared"
    assert settings(tmp_path, INSTANCE_DIR=str(instance), LEDGER_ARCHIVE_DIR=str(shared)).archive_dir == shared


def test_local_secrets_are_private_files_kept_across_starts(tmp_path: Path) -> None:
    first, second = settings(tmp_path), settings(tmp_path)
    instance = tmp_path / "instance"
    assert first.auth_token == second.auth_token == (instance / "dev-auth-token").read_text()
    assert first.suppression_key == second.suppression_key == (instance / "suppression.key").read_bytes()
    assert len(first.suppression_key) >= 32
    assert first.secret_key == second.secret_key == (instance / "secret.key").read_text()
    for name in ("dev-auth-token", "suppression.key", "secret.key"):
        assert stat.S_IMODE((instance / name).stat().st_mode) == 0o600
    assert sorted(path.name for path in instance.iterdir()) == ["dev-auth-token", "secret.key", "suppression.key"]


def test_twilio_fully_configured_uses_its_token(tmp_path: Path) -> None:
    config = settings(tmp_path, TWILIO_ACCOUNT_SID=SID, TWILIO_AUTH_TOKEN=TOKEN, SUPPRESSION_KEY=KEY,
                      SECRET_KEY="s" * 32)
    assert config.twilio_configured
    assert (config.auth_token, config.suppression_key, config.secret_key) == (TOKEN, KEY.encode(), "s" * 32)


def test_twilio_without_a_secret_key_for_console_sessions_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, TWILIO_ACCOUNT_SID=SID, TWILIO_AUTH_TOKEN=TOKEN, SUPPRESSION_KEY=KEY)
    assert error.name == "SECRET_KEY"


@pytest.mark.parametrize(("environ", "missing"), [
    ({"TWILIO_ACCOUNT_SID": SID}, "TWILIO_AUTH_TOKEN"),
    ({"TWILIO_AUTH_TOKEN": TOKEN}, "TWILIO_ACCOUNT_SID"),
], ids=["sid without token", "token without sid"])
def test_half_a_twilio_setup_names_the_missing_half(tmp_path: Path, environ: dict[str, str], missing: str) -> None:
    assert refusal(tmp_path, SUPPRESSION_KEY=KEY, **environ).name == missing


def test_twilio_without_a_suppression_key_is_refused(tmp_path: Path) -> None:
    error = refusal(tmp_path, TWILIO_ACCOUNT_SID=SID, TWILIO_AUTH_TOKEN=TOKEN)
    assert error.name == "SUPPRESSION_KEY"
    assert "32" in str(error)


# (environment, the variable the error names)
MALFORMED = {
    "account SID not AC+32 hex": ({"TWILIO_ACCOUNT_SID": "AC123", "TWILIO_AUTH_TOKEN": TOKEN}, "TWILIO_ACCOUNT_SID"),
    "redis URL over http": ({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL"),
    "public URL without scheme": ({"PUBLIC_URL": "accord.example.org"}, "PUBLIC_URL"),
    "public URL without host": ({"PUBLIC_URL": "https://"}, "PUBLIC_URL"),
    "public URL with the console's overrides": ({"PUBLIC_URL": "https://h.org/sms/inbound#rc=3&rp=ct,rt,5xx"},
                                               "PUBLIC_URL"),
    "public URL with a query": ({"PUBLIC_URL": "https://h.org?x=1"}, "PUBLIC_URL"),
    "public URL of the webhook itself": ({"PUBLIC_URL": "https://h.org/accord/sms/inbound"}, "PUBLIC_URL"),
    "port out of range": ({"PORT": "70000"}, "PORT"),
    "short suppression key": ({"SUPPRESSION_KEY": "k" * 31}, "SUPPRESSION_KEY"),
    "short secret key": ({"SECRET_KEY": "s" * 31}, "SECRET_KEY"),
    "port not a number": ({"PORT": "eighty"}, "PORT"),
    "twilio API URL without scheme": ({"TWILIO_API_URL": "api.twilio.com"}, "TWILIO_API_URL"),
    "twilio API URL with a space in its host": ({"TWILIO_API_URL": "https://api.twi lio.com"}, "TWILIO_API_URL"),
    "twilio API URL with a port not a number": ({"TWILIO_API_URL": "http://127.0.0.1:abc"}, "TWILIO_API_URL"),
    "public URL half an IPv6 address": ({"PUBLIC_URL": "https://[::1"}, "PUBLIC_URL"),
    "public URL with a full-width #": ({"PUBLIC_URL": "https://exa＃mple.org"}, "PUBLIC_URL"),
    "redis URL with a port not a number": ({"REDIS_URL": "redis://localhost:abc"}, "REDIS_URL"),
    "redis URL with a db not a number": ({"REDIS_URL": "redis://localhost/?db=x"}, "REDIS_URL"),
    "port in Arabic-Indic digits": ({"PORT": "٨٠٠٠"}, "PORT"),
    "port with an underscore": ({"PORT": "8_000"}, "PORT"),
    "port of 5,000 digits": ({"PORT": "8" * 5000}, "PORT"),
    "auth token outside ASCII": ({"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": "tökén€"}, "TWILIO_AUTH_TOKEN"),
    "suppression key of undecodable bytes": ({"SUPPRESSION_KEY": "\udcff" * 32}, "SUPPRESSION_KEY"),
    "flows directory of a name too long": ({"FLOWS_DIR": "a" * 300}, "FLOWS_DIR"),
    "flows directory with a NUL": ({"FLOWS_DIR": "flows\x00"}, "FLOWS_DIR"),
    "archive folder under a file": ({"LEDGER_ARCHIVE_DIR": str(ROOT / "README.md" / "archive")},
                                    "LEDGER_ARCHIVE_DIR"),
    "archive folder with a NUL": ({"LEDGER_ARCHIVE_DIR": "archive\x00"}, "LEDGER_ARCHIVE_DIR"),
    "instance directory under a file": ({"INSTANCE_DIR": str(ROOT / "README.md" / "instance"),
                                         "TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN, "SECRET_KEY": KEY},
                                        "INSTANCE_DIR"),
}


@pytest.mark.parametrize(("environ", "name"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_setting_is_named(tmp_path: Path, environ: dict[str, str], name: str) -> None:
    assert refusal(tmp_path, **{"SUPPRESSION_KEY": KEY, **environ}).name == name


@pytest.mark.parametrize("flows", ["missing", "file.toml"])
def test_flows_dir_must_be_a_directory(tmp_path: Path, flows: str) -> None:
    (tmp_path / "file.toml").write_text("")
    error = refusal(tmp_path, FLOWS_DIR=str(tmp_path / flows))
    assert error.name == "FLOWS_DIR"
    assert flows in str(error)


def test_urls_lose_their_trailing_slash(tmp_path: Path) -> None:
    config = settings(tmp_path, PUBLIC_URL="https://accord.example.org/", TWILIO_API_URL="http://127.0.0.1:8099/")
    assert config.public_url == "https://accord.example.org"
    assert config.twilio_api_url == "http://127.0.0.1:8099"


def test_twilio_api_url_defaults_to_twilio(tmp_path: Path) -> None:
    assert settings(tmp_path).twilio_api_url == "https://api.twilio.com"


def test_dotenv_fills_what_the_environment_leaves_unset(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("PORT=9000\nPUBLIC_URL=https://from-dotenv.example.org\n")
    config = settings(tmp_path, dotenv, PUBLIC_URL="https://from-env.example.org")
    assert config.port == 9000
    assert config.public_url == "https://from-env.example.org"


def test_web_workers_default_to_twice_the_cores_plus_one_up_to_twelve() -> None:
    cores = len(os.sched_getaffinity(0))
    expected = min(2 * cores + 1, 12)
    assert web_settings.worker_count({}) == web_settings.worker_count({"WEB_CONCURRENCY": " "}) == expected


def test_web_concurrency_sets_the_web_workers() -> None:
    assert web_settings.worker_count({"WEB_CONCURRENCY": "3"}) == 3


@pytest.mark.parametrize("value", ["0", "-2", "two", "2.5", "²", "100000", "0010000000", "1" * 4301])
def test_a_bad_web_concurrency_is_named(value: str) -> None:
    with pytest.raises(ConfigError, match=f"WEB_CONCURRENCY: .*{value[:20]!r}"):
        web_settings.worker_count({"WEB_CONCURRENCY": value})


def test_an_instance_directory_that_is_a_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "instance").write_text("")
    assert refusal(tmp_path).name == "INSTANCE_DIR"


def test_an_emptied_local_secret_is_refused_not_made_anew(tmp_path: Path) -> None:
    before = settings(tmp_path).suppression_key
    (tmp_path / "instance" / "suppression.key").write_text("\n")
    error = refusal(tmp_path)
    assert error.name == "INSTANCE_DIR" and "suppression.key" in str(error) and "backup" in str(error)
    assert before  # the key the suppression list's digests were made with, which a new one would not match


def test_a_dotenv_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_bytes(b"PORT=80\xff\n")
    with pytest.raises(ConfigError) as caught:
        settings(tmp_path, dotenv=dotenv)
    assert caught.value.name == str(dotenv) and "UTF-8" in str(caught.value)


def test_settings_other_tools_write_are_taken_as_they_are(tmp_path: Path) -> None:
    config = settings(tmp_path, PORT="000080", SUPPRESSION_KEY="clé-de-suppression-" + "é" * 14,
                      TWILIO_API_URL="http://twilio_mock:8080", PUBLIC_URL="https://élections.example.fr")
    assert config.port == 80 and config.suppression_key == ("clé-de-suppression-" + "é" * 14).encode()
    assert config.twilio_api_url == "http://twilio_mock:8080"


def test_a_lost_local_secret_says_whether_it_may_be_made_anew(tmp_path: Path) -> None:
    settings(tmp_path)
    (tmp_path / "instance" / "secret.key").write_text("")
    assert "delete it" in str(refusal(tmp_path))


# OVHcloud: all its credentials and a callback secret, or none of them.

OVH = {"OVH_APPLICATION_KEY": "appkey1234", "OVH_APPLICATION_SECRET": "appsecret1234",
       "OVH_CONSUMER_KEY": "consumer1234", "OVH_SMS_SERVICE": "sms-ab12345-1",
       "OVH_CALLBACK_SECRET": "c" * 32, "SUPPRESSION_KEY": KEY, "SECRET_KEY": KEY}


def test_ovh_fully_configured_reads_every_setting(tmp_path: Path) -> None:
    config = settings(tmp_path, **{**OVH, "OVH_CALLBACK_SECRET": f"{'n' * 32}, {'o' * 40}",
                                   "OVH_CALLBACK_NETWORKS": "198.51.100.0/24, 2001:db8::/32,203.0.113.7"})
    assert config.ovh_configured and not config.twilio_configured
    assert config.ovh is not None
    assert (config.ovh.endpoint, config.ovh.service) == ("ovh-eu", "sms-ab12345-1")
    assert config.ovh.callback_secrets == ("n" * 32, "o" * 40)  # the first goes in the URLs given to OVHcloud
    assert [str(network) for network in config.ovh.callback_networks] == [
        "198.51.100.0/24", "2001:db8::/32", "203.0.113.7/32"]
    assert settings(tmp_path, **OVH, OVH_ENDPOINT="http://127.0.0.1:9/1.0/").ovh.endpoint == "http://127.0.0.1:9/1.0"
    assert not settings(tmp_path).ovh_configured


@pytest.mark.parametrize("missing", ["OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY",
                                     "OVH_SMS_SERVICE", "OVH_CALLBACK_SECRET"])
def test_half_an_ovh_setup_names_what_is_missing(tmp_path: Path, missing: str) -> None:
    environ = {name: value for name, value in OVH.items() if name != missing}
    error = refusal(tmp_path, **environ)
    assert error.name == missing and "or none of the OVH_ settings" in str(error)


@pytest.mark.parametrize(("name", "value"), [
    ("OVH_ENDPOINT", "ovh-mars"),
    ("OVH_ENDPOINT", "ftp://api.example.org"),
    ("OVH_APPLICATION_KEY", "short"),
    ("OVH_APPLICATION_SECRET", "with space 123"),
    ("OVH_CONSUMER_KEY", "é" * 10),
    ("OVH_SMS_SERVICE", "my-account"),
    ("OVH_CALLBACK_SECRET", "too-short"),
    ("OVH_CALLBACK_SECRET", "c" * 32 + ",with/a/slash" + "x" * 32),
    ("OVH_CALLBACK_NETWORKS", "198.51.100.1/24"),
    ("OVH_CALLBACK_NETWORKS", "ovh.net"),
])
def test_a_malformed_ovh_setting_is_named(tmp_path: Path, name: str, value: str) -> None:
    assert refusal(tmp_path, **{**OVH, name: value}).name == name


@pytest.mark.parametrize("name", ["SUPPRESSION_KEY", "SECRET_KEY"])
def test_ovh_without_its_secrets_is_refused_as_twilio_is(tmp_path: Path, name: str) -> None:
    environ = {key: value for key, value in OVH.items() if key != name}
    assert "required with a provider" in str(refusal(tmp_path, **environ))


def test_segment_prices_are_read_exactly_with_the_day_each_was_set(tmp_path: Path) -> None:
    config = settings(tmp_path, SEGMENT_PRICES="twilio fr-mobile 0.0798 2026-11-01; ovh fr-mobile 0,045 2026-10-15;"
                                               " twilio fr-mobile 0.0815 2027-01-01")
    assert [(price.gateway, price.euros, price.set_on) for price in config.prices] == [
        ("ovh", Decimal("0.045"), dt.date(2026, 10, 15)),
        ("twilio", Decimal("0.0798"), dt.date(2026, 11, 1)), ("twilio", Decimal("0.0815"), dt.date(2027, 1, 1))]
    assert settings(tmp_path).prices == ()


@pytest.mark.parametrize(("value", "problem"), [
    ("twilio fr-mobile 0.0798", "'twilio fr-mobile 0.0798': give the date the price was set after it"),
    ("twilio fr-mobile -0.01 2026-11-01", "-0.01 is negative"),
    ("twilio fr-mobile cher 2026-11-01", "'cher' is not a price in euros"),
    ("twilio fr-mobile NaN 2026-11-01", "'NaN' is not a price in euros"),
    ("twilio fr-mobile 0.07 hier", "'hier' is not a date like 2026-10-15"),
    ("twilio fr-mobile 0.07 2026-02-30", "'2026-02-30' is not a date"),
    ("sinch fr-mobile 0.07 2026-11-01", "unknown gateway 'sinch'; use one of twilio, ovh"),
    ("outbox fr-mobile 0.07 2026-11-01", "the local outbox costs nothing"),
    ("ovh be-mobile 0.07 2026-11-01", "unknown destination 'be-mobile'; use fr-mobile"),
    ("ovh fr-mobile 0.07 2026-11-01; ovh fr-mobile 0.08 2026-11-01", "two prices set on 2026-11-01: 0.07 and 0.08"),
])
def test_a_segment_price_that_cannot_be_used_is_named(tmp_path: Path, value: str, problem: str) -> None:
    error = refusal(tmp_path, SEGMENT_PRICES=value)
    assert error.name == "SEGMENT_PRICES" and problem in str(error)
