"""Sent-message records: the furthest status per provider id, with no number, found 35 to 70 days."""

from __future__ import annotations

import pytest
import redis

from bot.keys import MESSAGE_PERIOD, legacy_out_key
from tests.conftest import SMS, Clock, new_sid

VOTER = "+33612980001"


@pytest.fixture
def flow(accord):
    return accord.flows["demo"]


def records(redis_client: redis.Redis) -> dict[bytes, bytes]:
    """Every sent-message record, by message id."""
    found = {}
    for key in redis_client.scan_iter("accord:messages:*"):
        found.update(redis_client.hgetall(key))
    return found


def test_a_record_holds_the_status_and_the_flow_but_no_number(sms: SMS, accord, flow, redis_client):
    sid = new_sid()
    accord.store.record_sent(flow, VOTER, sid, flow.texts.consent_request)
    for status in ("queued", "sent", "delivered"):
        sms.status(sid, status, to=VOTER)
    assert records(redis_client) == {sid.encode(): b"7delivered||demo"}
    counted = {name: n for name, n in accord.store.funnel(flow).items() if name.startswith("status:")}
    assert counted == {"status:delivered": 1}  # the final status only, once
    assert not [key for key in redis_client.scan_iter("accord:out:*")]  # no key a message any more


def test_a_record_is_found_through_the_next_generation_and_lives_no_longer(sms: SMS, accord, flow, clock: Clock,
                                                                           redis_client):
    sid = new_sid()
    accord.store.record_sent(flow, VOTER, sid, flow.texts.consent_request)
    (key,) = redis_client.scan_iter("accord:messages:*")
    left = redis_client.ttl(key)
    assert MESSAGE_PERIOD < left <= 2 * MESSAGE_PERIOD  # 35 days after its generation ends, at most 70
    clock.advance(seconds=left - 3600)  # the next generation, an hour before the first one expires
    sms.status(sid, "delivered", to=VOTER)
    assert accord.store.message_status(sid) == "delivered"
    assert accord.store.funnel(flow)["status:delivered"] == 1
    assert len(list(redis_client.scan_iter("accord:messages:*"))) == 1  # moved in place, not copied


def test_a_final_status_come_before_its_sending_is_logged_counts_once_it_is(sms: SMS, accord, flow, redis_client):
    sid = new_sid()
    sms.status(sid, "delivered", to=VOTER)  # before the worker logs it: no flow to count it in yet
    assert not redis_client.exists("accord:funnel:") and "status:delivered" not in accord.store.funnel(flow)
    assert accord.store.record_sent(flow, VOTER, sid, flow.texts.consent_request)
    assert not accord.store.record_sent(flow, VOTER, sid, flow.texts.consent_request)  # a worker's retry
    sms.status(sid, "delivered", to=VOTER)  # and Twilio's
    assert accord.store.message_status(sid) == "delivered" and accord.store.funnel(flow)["status:delivered"] == 1
    counted = {name: n for name, n in accord.store.funnel(flow).items() if name.startswith("status:")}
    assert counted == {"status:delivered": 1}


def test_a_status_short_of_final_come_first_counts_nothing(sms: SMS, accord, flow):
    sid = new_sid()
    sms.status(sid, "sent", to=VOTER)
    assert accord.store.record_sent(flow, VOTER, sid, flow.texts.consent_request)
    assert not [name for name in accord.store.funnel(flow) if name.startswith("status:")]


def test_a_sending_logged_twice_is_logged_once_even_after_its_callbacks(sms: SMS, accord, flow):
    sid = new_sid()
    sms.status(sid, "sent", to=VOTER)  # before the worker logs it: kept, with no flow yet
    assert accord.store.record_sent(flow, VOTER, sid, flow.texts.consent_request)
    assert not accord.store.record_sent(flow, VOTER, sid, flow.texts.consent_request)
    assert accord.store.message_status(sid) == "sent"
    assert [e["event"] for _, e in accord.store.ledger(flow.id)].count("sent") == 1


def test_a_message_an_earlier_version_recorded_in_a_key_of_its_own_still_climbs(sms: SMS, accord, flow,
                                                                                redis_client):
    sid = new_sid()
    redis_client.hset(legacy_out_key(sid), mapping={"flow": flow.id, "phone": VOTER, "status": "queued", "rank": 3})
    assert accord.store.record_status(sid, "delivered") == (flow.id, VOTER)
    assert accord.store.message_status(sid) == "delivered"
    assert accord.store.record_status(sid, "sent") == (flow.id, VOTER)
    assert accord.store.record_status(sid, "delivered") == (flow.id, VOTER)  # Twilio's retry: counted once
    assert accord.store.message_status(sid) == "delivered" and records(redis_client) == {}
    assert accord.store.funnel(flow)["status:delivered"] == 1


def test_erasure_takes_the_number_s_message_records(sms: SMS, accord, flow, redis_client):
    accord.store.claim(flow, VOTER, window_open=True)
    sid, old = new_sid(), new_sid()
    accord.store.record_sent(flow, VOTER, sid, flow.texts.consent_request)
    sms.status(sid, "delivered", to=VOTER)
    accord.store.record_sent(flow, VOTER, old, flow.texts.confirmation, reply=True)
    redis_client.hset(legacy_out_key(old), mapping={"flow": flow.id, "phone": VOTER, "status": "sent", "rank": 5})
    accord.store.erase([flow], VOTER, whole=True, objection=True)
    assert records(redis_client) == {} and not redis_client.exists(legacy_out_key(old))
