"""Settings: read from the environment (and `.env`) once, validated, named one way everywhere."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parent.parent
TWILIO_API = "https://api.twilio.com"
ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}\Z")


class ConfigError(ValueError):
    """A setting that is missing or malformed; the message names the variable."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name}: {problem}")
        self.name = name


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

    @property
    def twilio_configured(self) -> bool:
        """Say whether real sending through Twilio is configured."""
        return self.twilio_account_sid is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, dotenv: Path | None = None) -> Config:
        """Build the settings from the environment, `.env` filling what it leaves unset."""
        env = dict(dotenv_values(dotenv or ROOT / ".env"))
        env.update(os.environ if environ is None else environ)
        env = {name: value.strip() for name, value in env.items() if value and value.strip()}

        instance = Path(env.get("INSTANCE_DIR", ROOT / "instance")).resolve()
        flows = Path(env.get("FLOWS_DIR", ROOT / "flows")).resolve()
        if not flows.is_dir():
            raise ConfigError("FLOWS_DIR", f"{flows} is not a directory")

        redis_url = env.get("REDIS_URL")
        if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("REDIS_URL", "must start with redis://, rediss:// or unix://")

        sid, token = env.get("TWILIO_ACCOUNT_SID"), env.get("TWILIO_AUTH_TOKEN")
        if bool(sid) != bool(token):
            missing = "TWILIO_AUTH_TOKEN" if sid else "TWILIO_ACCOUNT_SID"
            raise ConfigError(missing, "set both TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or neither")
        if sid and not ACCOUNT_SID.match(sid):
            raise ConfigError("TWILIO_ACCOUNT_SID", "must be 'AC' followed by 32 hex digits")
        api_url = env.get("TWILIO_API_URL", TWILIO_API).rstrip("/")
        if not api_url.startswith(("https://", "http://")):
            raise ConfigError("TWILIO_API_URL", "must be an http(s) URL")

        public_url = env.get("PUBLIC_URL")
        if public_url:
            _check_public_url(public_url)

        key = _secret(env, "SUPPRESSION_KEY", "", required=bool(sid))
        secret = _secret(env, "SECRET_KEY", " that signs console sessions", required=bool(sid))

        try:
            port = int(env.get("PORT", "8000"))
        except ValueError as error:
            raise ConfigError("PORT", "must be a number") from error
        if not 1 <= port <= 65535:
            raise ConfigError("PORT", "must be between 1 and 65535")

        return cls(
            flows_dir=flows, instance_dir=instance,
            suppression_key=(key or _local_secret(instance, "suppression.key")).encode(),
            auth_token=token or _local_secret(instance, "dev-auth-token"),
            redis_url=redis_url, twilio_account_sid=sid, twilio_api_url=api_url,
            public_url=public_url.rstrip("/") if public_url else None, port=port,
            secret_key=secret or _local_secret(instance, "secret.key"),
        )


def _secret(env: dict[str, str], name: str, purpose: str, *, required: bool) -> str | None:
    """Read a secret setting: required with Twilio (local runs make their own), 32+ characters."""
    value = env.get(name)
    if value is None and required:
        raise ConfigError(name, f"required with Twilio: a secret of 32+ characters{purpose}"
                          " (python -c 'import secrets; print(secrets.token_hex(32))')")
    if value is not None and len(value) < 32:
        raise ConfigError(name, "must be at least 32 characters")
    return value


def _check_public_url(url: str) -> None:
    """Refuse a base URL that would make every genuine signature fail."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError("PUBLIC_URL", "must be the http(s) base URL Twilio calls, like https://sms.example.org")
    if parts.query or parts.fragment or "#" in url:
        raise ConfigError("PUBLIC_URL", "give the base URL only, without '?...' or '#...' (the connection "
                          "overrides go in the Twilio console, not here)")
    if parts.path.rstrip("/").endswith(("/sms/inbound", "/sms/status")):
        raise ConfigError("PUBLIC_URL", "give the base URL only; the bot adds /sms/inbound and /sms/status")


def _local_secret(instance: Path, name: str) -> str:
    """Return a secret kept under instance/, made on first use, for local runs without settings."""
    path = instance / name
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
    return path.read_text().strip()
