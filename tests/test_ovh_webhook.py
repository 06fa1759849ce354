"""OVHcloud's callbacks through the real app: only a URL carrying one of our secrets (and, if set, coming
from an allowed network) changes anything; voters' texts are answered through OVHcloud, once; receipts
climb the status ladder and a STOP list refusal is an objection."""

from __future__ import annotations

import dataclasses
import ipaddress
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bot import Accord, create_app, rights, use
from bot.gateways.ovh import sid_of
from bot.sending import ask
from tests.conftest import OVH_OLD_SECRET, OVH_SECRET, OvhProvider, Voter, forget_answer
from tests.ovh_server import BUFFERED, DELIVERED, FAILED, SUBMITTED, OvhServer

VOTER = "+33612980001"
PUBLIC = "https://sms.example.org"


@pytest.fixture
def provider(ovh_server: OvhServer) -> OvhProvider:
    chosen = OvhProvider(ovh_server)
    chosen.forget()
    return chosen


@pytest.fixture
def app(config, clock, redis_client, provider: OvhProvider) -> Flask:
    config = provider.configure(dataclasses.replace(config, public_url=PUBLIC))
    app = create_app(config, gateway=provider.gateway(config), clock=clock)
    use(app.extensions["accord"])
    return app


@pytest.fixture
def voter(client: FlaskClient, provider: OvhProvider) -> Voter:
    return Voter(provider, client)


def inbound(client: FlaskClient, secret: str = OVH_SECRET, *, to: str = "38000", remote: str = "127.0.0.1",
            **params: str):
    """Call the inbound callback as OVHcloud does: a STOP from VOTER to `to`, unless `params` say otherwise."""
    query = {"id": "4242", "sender": VOTER, "message": "STOP", **params}
    return client.get(f"/sms/ovh/{secret}/inbound/{to}", query_string=query,
                      environ_base={"REMOTE_ADDR": remote})


def held(accord: Accord) -> dict:
    """Everything the store holds: every key and its contents."""
    redis = accord.store.redis
    return {key: redis.dump(key) for key in sorted(redis.scan_iter())}


def asked(accord: Accord, provider: OvhProvider) -> str:
    """Ask VOTER in the demo flow as a worker does; return the consent request's sid."""
    assert ask(accord, accord.flows["demo"], VOTER) == "sent"
    return provider.taken()[-1]["sid"]


# Who may call.

@pytest.mark.parametrize("secret", ["wrong-" + OVH_SECRET[6:], OVH_SECRET[:-1], OVH_SECRET + "x", "x"])
def test_a_callback_without_one_of_our_secrets_is_refused_and_changes_nothing(accord: Accord, client: FlaskClient,
                                                                             provider: OvhProvider, secret: str):
    sid = asked(accord, provider)
    before = held(accord)
    assert inbound(client, secret).status_code == 403
    assert client.get(f"/sms/ovh/{secret}/status", query_string={"id": sid[3:], "dlr": DELIVERED}).status_code == 403
    assert held(accord) == before
    assert len(provider.server.jobs) == 1  # nothing answered


def test_every_rotated_secret_is_accepted_and_the_first_goes_in_the_urls(accord: Accord, client: FlaskClient,
                                                                          provider: OvhProvider):
    asked(accord, provider)
    assert provider.server.jobs[-1]["body"]["callBack"] == f"{PUBLIC}/sms/ovh/{OVH_SECRET}/status"
    assert inbound(client, OVH_OLD_SECRET).status_code == 204
    assert accord.store.is_suppressed(accord.flows["demo"], VOTER)


def test_the_network_allowlist_refuses_other_addresses(accord: Accord, provider: OvhProvider, clock, redis_client):
    config = dataclasses.replace(accord.config, ovh=dataclasses.replace(
        accord.config.ovh, callback_networks=(ipaddress.ip_network("198.51.100.0/24"),)))
    client = create_app(config, gateway=provider.gateway(config), clock=clock).test_client()
    before = held(accord)
    assert inbound(client, remote="203.0.113.9").status_code == 403
    assert held(accord) == before
    assert inbound(client, remote="198.51.100.7").status_code == 204
    assert accord.store.is_suppressed(accord.flows["demo"], VOTER)


def test_without_ovh_settings_every_callback_is_refused(config, clock, redis_client, provider: OvhProvider):
    app = create_app(config, clock=clock)  # no OVH_ settings: the local outbox
    assert inbound(app.test_client()).status_code == 403
    assert not app.extensions["accord"].store.is_suppressed(app.extensions["accord"].flows["demo"], VOTER)


# A voter's text, through the real app, answered through OVHcloud.

def test_yes_stop_and_anything_else_are_answered_through_ovh(accord: Accord, voter: Voter, provider: OvhProvider):
    flow = accord.flows["demo"]
    asked(accord, provider)
    assert voter.send(VOTER, "bonjour ?").texts == [flow.texts.clarification]
    assert voter.send(VOTER, "OUI").texts == [flow.texts.confirmation, flow.texts.content[0]]
    assert accord.store.state(flow, VOTER) == "consented"
    # The content expires when the voter's window shuts (23:00 for the demo flow: 13 hours on, held to
    # the ten hours the sending code allows any text); the thanks go whatever the hour.
    assert [job["body"]["validityPeriod"] for job in provider.server.jobs[-2:]] == [2880, 10 * 60]
    assert voter.send(VOTER, "STOP").texts == [flow.texts.stopped]
    assert accord.store.state(flow, VOTER) == "opted_out" and accord.store.is_suppressed(flow, VOTER)
    # Each answer went from the short code, and the ledger keeps them as TwiML answers are kept.
    assert {job["body"]["tag"] for job in provider.server.jobs} == {"38000"}
    replies = [entry.get("reply") for _, entry in accord.store.ledger(flow.id)
               if entry.get("event", "").startswith("in:")]
    assert all(replies) and len(replies) == 3
    assert accord.store.verify_ledger(flow.id) is None


def test_a_replayed_callback_answers_once_and_changes_nothing(accord: Accord, voter: Voter, provider: OvhProvider):
    asked(accord, provider)
    first = voter.send(VOTER, "OUI", sid="same text")
    before = held(accord)
    again = voter.send(VOTER, "OUI", sid="same text")
    assert len(first.texts) == 2 and again.status_code == 200 and again.texts == []
    assert held(accord) == before


def test_an_id_written_with_leading_zeros_is_the_same_text(accord: Accord, client: FlaskClient):
    assert inbound(client, id="0042").status_code == 204
    before = held(accord)
    assert inbound(client, id="42").status_code == 204
    assert held(accord) == before


def test_a_text_called_back_again_after_the_voter_s_erasure_changes_nothing(accord: Accord, voter: Voter,
                                                                            provider: OvhProvider, redis_client):
    # OVHcloud signs nothing: whoever saw a callback's URL (in a proxy's log) can call it again. Once the
    # number is erased and the answer kept under the text's id has gone (35 to 70 days on), nothing of the
    # voter is left to know the text by: only the record that knows it for good, under the service's name.
    flow = accord.flows["demo"]
    asked(accord, provider)
    assert len(voter.send(VOTER, "OUI", sid="captured").texts) == 2
    rights.erase(accord, VOTER)
    forget_answer(redis_client, sid_of(provider.ovh_id("captured")))
    before = held(accord)
    assert voter.send(VOTER, "OUI", sid="captured").texts == []
    assert held(accord) == before and accord.store.state(flow, VOTER) == "new"


def test_an_answer_refused_for_ovh_s_stop_list_records_the_objection(accord: Accord, voter: Voter,
                                                                       provider: OvhProvider):
    flow = accord.flows["demo"]
    asked(accord, provider)
    provider.server.blacklist(VOTER)  # the voter texted STOP to OVHcloud's own number meanwhile
    assert voter.send(VOTER, "OUI").texts == []
    assert accord.store.is_suppressed(flow, VOTER) and accord.store.state(flow, VOTER) == "opted_out"


def test_an_answer_ovh_was_too_busy_for_goes_with_the_callback_s_replay(accord: Accord, voter: Voter,
                                                                          provider: OvhProvider):
    flow = accord.flows["demo"]
    asked(accord, provider)
    provider.server.fail_next(1, 429)
    assert voter.send(VOTER, "OUI", sid="busy").texts == []  # the thanks refused, and content waits behind them
    assert accord.store.state(flow, VOTER) == "consented"
    answers = [flow.texts.confirmation, flow.texts.content[0]]
    assert voter.send(VOTER, "OUI", sid="busy").texts == answers  # OVHcloud calls again: now they go
    assert voter.send(VOTER, "OUI", sid="busy").texts == []
    # The claims on them last as long as the answer they claim is kept, not for good.
    (claims,) = accord.store.redis.keys("accord:answers:*")
    assert 0 < accord.store.redis.ttl(claims) <= 70 * 86400


@pytest.mark.parametrize("params", [
    {"sender": "0612980001"}, {"sender": ""}, {"id": "12ab"}, {"id": ""}, {"id": "9" * 30},
], ids=["national number", "no sender", "id not a number", "no id", "id too long"])
def test_a_malformed_callback_is_refused_without_change(accord: Accord, client: FlaskClient, params: dict[str, str]):
    before = held(accord)
    assert inbound(client, **params).status_code == 400
    assert held(accord) == before


@pytest.mark.parametrize("message", ["\x00\u202e\ufffd" * 3, "x" * 5000, ""],
                         ids=["odd characters", "very long", "empty"])
def test_a_voter_s_text_never_causes_a_500(accord: Accord, client: FlaskClient, message: str):
    assert inbound(client, message=message).status_code == 204


def test_bytes_that_are_not_utf8_never_cause_a_500(client: FlaskClient):
    response = client.get(f"/sms/ovh/{OVH_SECRET}/inbound/38000?id=77&sender=%2B33612980001&message=%FF%FE%C3%28")
    assert response.status_code in (204, 400)


def test_a_stop_to_a_sender_no_flow_uses_stops_every_flow(accord: Accord, client: FlaskClient):
    assert inbound(client, to="36999").status_code == 204
    assert all(accord.store.is_suppressed(flow, VOTER) for flow in accord.flows.values())


# Delivery receipts.

def receipt(client: FlaskClient, url: str):
    parts = urlsplit(url)
    return client.get(f"{parts.path}?{parts.query}")


def test_a_receipt_naming_its_id_with_leading_zeros_is_the_message_s(accord: Accord, client: FlaskClient,
                                                                     provider: OvhProvider):
    sid = asked(accord, provider)
    query = {"id": "00" + sid.removeprefix("OVH"), "dlr": DELIVERED}
    assert client.get(f"/sms/ovh/{OVH_SECRET}/status", query_string=query).status_code == 204
    assert accord.store.message_status(sid) == "delivered"


def test_receipts_climb_the_status_ladder_and_never_go_back(accord: Accord, client: FlaskClient,
                                                           provider: OvhProvider):
    sid = asked(accord, provider)
    for dlr, status in ((SUBMITTED, "sent"), (DELIVERED, "delivered"), (BUFFERED, "delivered"),
                        (SUBMITTED, "delivered")):
        (url,) = provider.server.receipts(dlr)
        assert receipt(client, url).status_code == 204
        assert accord.store.message_status(sid) == status
    (url,) = provider.server.receipts(DELIVERED)
    before = held(accord)
    assert receipt(client, url).status_code == 204  # the same receipt again: nothing moves
    assert held(accord) == before


def test_a_receipt_refused_for_ovh_s_stop_list_records_the_objection(accord: Accord, client: FlaskClient,
                                                                     provider: OvhProvider):
    flow = accord.flows["demo"]
    sid = asked(accord, provider)
    (failed,) = provider.server.receipts(FAILED)
    assert receipt(client, failed).status_code == 204
    assert accord.store.message_status(sid) == "undelivered" and not accord.store.is_suppressed(flow, VOTER)
    (stopped,) = provider.server.receipts(FAILED, "Receiver is blacklisted (STOP)")
    assert receipt(client, stopped).status_code == 204
    assert accord.store.is_suppressed(flow, VOTER) and accord.store.state(flow, VOTER) == "opted_out"
    before = held(accord)
    assert receipt(client, stopped).status_code == 204  # replayed: nothing more
    assert held(accord) == before


@pytest.mark.parametrize("query", [{"id": "1", "dlr": "3"}, {"id": "x", "dlr": "1"}, {"dlr": "1"}, {"id": "1"}])
def test_a_malformed_receipt_is_refused_without_change(accord: Accord, client: FlaskClient, query: dict[str, str]):
    before = held(accord)
    assert client.get(f"/sms/ovh/{OVH_SECRET}/status", query_string=query).status_code == 400
    assert held(accord) == before

