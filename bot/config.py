"""Settings: read from the environment (and `.env`) once, validated, named one way everywhere."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values
from redis.connection import parse_url

from bot.prices import Price, PriceError, parse_setting

ROOT = Path(__file__).resolve().parent.parent
TWILIO_API = "https://api.twilio.com"
ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}\Z")
OVH_SETTINGS = ("OVH_ENDPOINT", "OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY",
                "OVH_SMS_SERVICE", "OVH_CALLBACK_SECRET", "OVH_CALLBACK_NETWORKS")
SETTINGS = ("INSTANCE_DIR", "FLOWS_DIR", "REDIS_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_URL",
            "PUBLIC_URL", "SUPPRESSION_KEY", "SECRET_KEY", "PORT", "LEDGER_KEY_FILE",
            "SEND_CONCURRENCY", "LEDGER_ARCHIVE_DIR", "SEGMENT_PRICES", *OVH_SETTINGS)  # what from_env reads
# Texts a worker has in flight at once: 100 texts/s against answers in 0.2 s keep 20 waiting, and
# answers slower than that now and then need room too. More than MOST_SENDS is a typo.
SEND_CONCURRENCY = 32
MOST_SENDS = 256


OVH_ENDPOINTS = ("ovh-eu", "ovh-ca", "ovh-us")  # the `ovh` client's names of the API's regions
# An SMS account's name as OVHcloud gives it ("sms-ab12345-1").
OVH_SERVICE = re.compile(r"^sms-[a-z]{2}[0-9]{1,10}-[0-9]{1,4}\Z")
OVH_KEY = re.compile(r"^[A-Za-z0-9]{8,64}\Z")
# A callback secret goes in a URL path: letters, digits, '-' and '_' need no escaping anywhere.
CALLBACK_SECRET = re.compile(r"^[A-Za-z0-9_-]{32,128}\Z")


class ConfigError(ValueError):
    """A setting that is missing or malformed; the message names the variable."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


@dataclass(frozen=True)
class OvhSettings:
    """How to reach one OVHcloud SMS account, and how its callbacks prove they come from OVHcloud.

    OVHcloud signs no callback: the unguessable secret in the URL path is their proof, and the
    optional network allowlist a second one. Several secrets rotate: all are accepted, the first
    goes in the URLs given to OVHcloud.
    """

    endpoint: str  # an `ovh` client region name, or an http(s) URL (a local server)
    application_key: str
    application_secret: str
    consumer_key: str
    service: str
    callback_secrets: tuple[str, ...]
    callback_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


@dataclass(frozen=True)
class Config:
    """Every setting the bot reads."""

    flows_dir: Path
    instance_dir: Path
    suppression_key: bytes
    auth_token: str  # Twilio's, or the local development token the local tools sign with
    redis_url: str | None = None  # None: the embedded Redis under instance_dir
    twilio_account_sid: str | None = None
    twilio_api_url: str = TWILIO_API
    public_url: str | None = None
    port: int = 8000
    secret_key: str = ""  # signs console sessions; from_env always sets one (empty: a key per process)
    ledger_key_file: Path | None = None  # signs ledger checkpoints; None: instance_dir/ledger-signing.key
    send_concurrency: int = SEND_CONCURRENCY  # texts one worker has in flight at once
    archive_dir: Path | None = None  # where workers archive the ledger (bot/archivist.py); None: they do not
    ovh: OvhSettings | None = None  # None: no flow sends through OVHcloud
    prices: tuple[Price, ...] = ()  # euros per segment, per gateway and destination (bot/prices.py)

    @property
    def signing_key_path(self) -> Path:
        """Where the ledger's checkpoint signing key lives: outside Redis, by design."""
        return self.ledger_key_file or self.instance_dir / "ledger-signing.key"

    @property
    def twilio_configured(self) -> bool:
        """Say whether real sending through Twilio is configured."""
        return self.twilio_account_sid is not None

    @property
    def ovh_configured(self) -> bool:
        """Say whether real sending through OVHcloud is configured."""
        return self.ovh is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, dotenv: Path | None = None) -> Config:
        """Build the settings from the environment, `.env` filling what it leaves unset."""
        env = read_dotenv(dotenv or ROOT / ".env")
        env.update(os.environ if environ is None else environ)
        env = {name: value.strip() for name, value in env.items() if value and value.strip()}
        for name, value in env.items():
            if name in SETTINGS and not _is_text(value):
                raise ConfigError(name, "holds bytes that are not UTF-8 text")

        instance = _directory(env, "INSTANCE_DIR", ROOT / "instance", must_exist=False)
        flows = _directory(env, "FLOWS_DIR", ROOT / "flows", must_exist=True)

        redis_url = env.get("REDIS_URL")
        if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("REDIS_URL", "must start with redis://, rediss:// or unix://")
        if redis_url:
            try:
                parse_url(redis_url)
            except ValueError as error:
                raise ConfigError("REDIS_URL", f"cannot be read: {error}") from error

        sid, token = env.get("TWILIO_ACCOUNT_SID"), env.get("TWILIO_AUTH_TOKEN")
        if bool(sid) != bool(token):
            missing = "TWILIO_AUTH_TOKEN" if sid else "TWILIO_ACCOUNT_SID"
            raise ConfigError(missing, "set both TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or neither")
        if sid and not ACCOUNT_SID.match(sid):
            raise ConfigError("TWILIO_ACCOUNT_SID", "must be 'AC' followed by 32 hex digits")
        if token and not _is_printable_ascii(token):
            raise ConfigError("TWILIO_AUTH_TOKEN", "must be the token as the Twilio console shows it "
                              "(letters and digits)")
        api_url = env.get("TWILIO_API_URL", TWILIO_API).rstrip("/")
        _http_url("TWILIO_API_URL", api_url, "an http(s) URL, like https://api.twilio.com")

        public_url = env.get("PUBLIC_URL")
        if public_url:
            _check_public_url(public_url)

        ovh = ovh_settings(env)
        provider = bool(sid) or ovh is not None
        key = _secret(env, "SUPPRESSION_KEY", "", required=provider)
        secret = _secret(env, "SECRET_KEY", " that signs console sessions", required=provider)

        port_text = env.get("PORT", "8000")
        if not (port_text.isascii() and port_text.isdigit()) or len(port_text.lstrip("0")) > 5:
            raise ConfigError("PORT", f"must be a number between 1 and 65535, not {port_text[:20]!r}")
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise ConfigError("PORT", "must be between 1 and 65535")
        sends = _count(env, "SEND_CONCURRENCY", SEND_CONCURRENCY, MOST_SENDS, "texts a worker has in flight")
        try:
            prices = parse_setting(env.get("SEGMENT_PRICES", ""))
        except PriceError as error:
            raise ConfigError("SEGMENT_PRICES", str(error)) from error

        return cls(
            flows_dir=flows, instance_dir=instance,
            suppression_key=(key or _local_secret(instance, "suppression.key")).encode(),
            auth_token=token or _local_secret(instance, "dev-auth-token"),
            redis_url=redis_url, twilio_account_sid=sid, twilio_api_url=api_url,
            public_url=public_url.rstrip("/") if public_url else None, port=port,
            secret_key=secret or _local_secret(instance, "secret.key"),
            ledger_key_file=_key_file(env, "LEDGER_KEY_FILE"), send_concurrency=sends,
            archive_dir=_archive_dir(env, instance), ovh=ovh, prices=prices,
        )


def ovh_settings(env: dict[str, str]) -> OvhSettings | None:
    """Read the OVH_* settings: all the credentials and a callback secret, or none of them."""
    needed = ("OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY", "OVH_SMS_SERVICE",
              "OVH_CALLBACK_SECRET")
    given = [name for name in OVH_SETTINGS if name in env]
    if not given:
        return None
    missing = [name for name in needed if name not in env]
    if missing:
        raise ConfigError(missing[0], f"required with {given[0]}: set {', '.join(needed)} to send through "
                          "OVHcloud, or none of the OVH_ settings")
    endpoint = env.get("OVH_ENDPOINT", "ovh-eu")
    if endpoint.startswith(("http://", "https://")):
        _http_url("OVH_ENDPOINT", endpoint, "an OVHcloud API region or an http(s) URL")
        endpoint = endpoint.rstrip("/")
    elif endpoint not in OVH_ENDPOINTS:
        raise ConfigError("OVH_ENDPOINT", f"must be one of {', '.join(OVH_ENDPOINTS)} (or an http(s) URL), "
                          f"not {endpoint[:20]!r}")
    for name in ("OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY"):
        if not OVH_KEY.match(env[name]):
            raise ConfigError(name, "must be the key as OVHcloud gave it (8 to 64 letters and digits)")
    if not OVH_SERVICE.match(env["OVH_SMS_SERVICE"]):
        raise ConfigError("OVH_SMS_SERVICE", "must be the SMS account's name, like sms-ab12345-1")
    secrets_ = tuple(part.strip() for part in env["OVH_CALLBACK_SECRET"].split(","))
    if not all(CALLBACK_SECRET.match(part) for part in secrets_):
        raise ConfigError("OVH_CALLBACK_SECRET", "must be one or more comma-separated secrets of 32 to 128 "
                          "letters, digits, '-' or '_' (python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return OvhSettings(endpoint, env["OVH_APPLICATION_KEY"], env["OVH_APPLICATION_SECRET"],
                       env["OVH_CONSUMER_KEY"], env["OVH_SMS_SERVICE"], secrets_,
                       _networks(env.get("OVH_CALLBACK_NETWORKS", "")))


def _networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Read OVH_CALLBACK_NETWORKS: comma-separated networks in CIDR notation (a bare address is a /32)."""
    networks = []
    for part in filter(None, (part.strip() for part in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(part))
        except ValueError as error:  # a typo, or host bits set ("10.0.0.1/24")
            raise ConfigError("OVH_CALLBACK_NETWORKS", f"{part[:45]!r} is not a network like 198.51.100.0/24: "
                              f"{error}") from error
    return tuple(networks)


def _secret(env: dict[str, str], name: str, purpose: str, *, required: bool) -> str | None:
    """Read a secret setting: required with Twilio (local runs make their own), 32+ characters."""
    value = env.get(name)
    if value is None and required:
        raise ConfigError(name, f"required with a provider (Twilio, OVHcloud): a secret of 32+ characters{purpose}"
                          " (python -c 'import secrets; print(secrets.token_hex(32))')")
    if value is not None and len(value) < 32:
        raise ConfigError(name, "must be at least 32 characters")
    return value


def _count(env: dict[str, str], name: str, default: int, most: int, what: str) -> int:
    """Read a whole number setting from 1 to `most`."""
    text = env.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text.lstrip("0")[:4] or "0") <= most:
        raise ConfigError(name, f"must be a number of {what} from 1 to {most}, not {text[:20]!r}")
    return int(text)


def read_dotenv(path: Path) -> dict[str, str | None]:
    """Read the settings in `.env` (none if it is absent); one that is not UTF-8 is named, not a traceback."""
    try:
        return dict(dotenv_values(path))
    except UnicodeDecodeError as error:
        raise ConfigError(str(path), f"is not UTF-8 text (byte {error.start}): save it as UTF-8") from error
    except OSError as error:
        raise ConfigError(str(path), f"cannot be read ({error.strerror})") from error


def _is_text(value: str) -> bool:
    """Say whether a value came as UTF-8: undecodable bytes in the environment arrive as lone surrogates."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _is_printable_ascii(value: str) -> bool:
    return value.isascii() and value.isprintable()


def _directory(env: dict[str, str], name: str, default: Path, *, must_exist: bool) -> Path:
    """Resolve a directory setting; say what is wrong with it by name."""
    try:
        path = Path(env.get(name, default)).resolve()
        nearest = next(parent for parent in (path, *path.parents) if parent.exists())
        usable = path.is_dir() or (not must_exist and nearest != path and nearest.is_dir())
    except (OSError, ValueError) as error:  # a name too long, a NUL byte
        raise ConfigError(name, f"cannot be used as a directory ({error})") from error
    if not usable:
        raise ConfigError(name, f"{path} is not a directory")
    return path


def _archive_dir(env: dict[str, str], instance: Path) -> Path | None:
    """Read LEDGER_ARCHIVE_DIR: the folder workers archive the ledger to ("off": they do not)."""
    value = env.get("LEDGER_ARCHIVE_DIR")
    if value is None:
        return instance / "ledger-archive"
    if value.strip().lower() == "off":
        return None
    try:
        path = Path(value).resolve()
        usable = path.is_dir() or (not path.exists() and path.parent.is_dir())
    except (OSError, ValueError) as error:  # a name too long, a NUL byte
        raise ConfigError("LEDGER_ARCHIVE_DIR", f"cannot be used as a folder ({error})") from error
    if not usable:
        raise ConfigError("LEDGER_ARCHIVE_DIR", f"{path} is neither a folder nor a new name in an existing one")
    return path


def _key_file(env: dict[str, str], name: str) -> Path | None:
    """Resolve a key file setting: a file, or a name in an existing directory (made on first use)."""
    if name not in env:
        return None
    try:
        path = Path(env[name]).resolve()
        usable = path.is_file() or (not path.exists() and path.parent.is_dir())
    except (OSError, ValueError) as error:  # a name too long, a NUL byte
        raise ConfigError(name, f"cannot be used as a key file ({error})") from error
    if not usable:
        raise ConfigError(name, f"{path} is neither a file nor a new name in an existing directory")
    return path


def _http_url(name: str, url: str, expected: str) -> None:
    """Refuse what is not an http(s) URL with a host (and a port, if any, that is a number)."""
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname or "", parts.port
    except ValueError as error:  # "Invalid IPv6 URL", a port that is not a number
        raise ConfigError(name, f"must be {expected}: {error}") from error
    if parts.scheme not in ("http", "https") or not host or not host.isprintable() or " " in host:
        raise ConfigError(name, f"must be {expected}")


def _check_public_url(url: str) -> None:
    """Refuse a base URL that would make every genuine signature fail."""
    _http_url("PUBLIC_URL", url, "the http(s) base URL Twilio calls, like https://sms.example.org")
    parts = urlsplit(url)
    if parts.query or parts.fragment or "#" in url:
        raise ConfigError("PUBLIC_URL", "give the base URL only, without '?...' or '#...' (the connection "
                          "overrides go in the Twilio console, not here)")
    if parts.path.rstrip("/").endswith(("/sms/inbound", "/sms/status")):
        raise ConfigError("PUBLIC_URL", "give the base URL only; the bot adds /sms/inbound and /sms/status")


def _local_secret(instance: Path, name: str) -> str:
    """Return a secret kept under instance/, made on first use, for local runs without settings."""
    path = instance / name
    try:
        if not path.exists():
            instance.mkdir(parents=True, exist_ok=True)
            draft = instance / f".{name}.{os.getpid()}"
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_hex(32))
            try:
                os.link(draft, path)  # atomic: two processes starting at once keep the same secret
            except FileExistsError:
                pass
            finally:
                draft.unlink()
        value = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError("INSTANCE_DIR", f"{path} cannot hold this run's secret ({error})") from error
    if not _is_printable_ascii(value) or len(value) < 32:
        remedy = ("restore it from a backup: the suppression list's digests are keyed by it, so a new "
                  "key would let earlier objections through" if name == "suppression.key"
                  else "delete it, and a new one is made at the next start")
        raise ConfigError("INSTANCE_DIR", f"{path} holds no secret of 32+ characters: {remedy}")
    return value
