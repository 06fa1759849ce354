"""The consent ledger: every step chained, any edit found, and erasure that leaves a verifiable chain."""

from __future__ import annotations

import json

import pytest
import redis

from bot import Accord
from bot.keys import ledger_key, legacy_subject_field, legacy_subject_key, person_key, subject_slot
from bot.ledger import PERSONAL, lp, sha1, stored_fields
from tests.conftest import SMS, as_stored

VOTER = "+33612980001"


@pytest.fixture
def flow(accord: Accord):
    return accord.flows["demo"]


@pytest.fixture
def conversation(accord: Accord, flow, sms: SMS) -> None:
    accord.store.claim(flow, VOTER, window_open=True)
    sms.send(VOTER, "non", sid="SM" + "a" * 32)
    sms.send(VOTER, "oui", sid="SM" + "b" * 32)
    assert accord.store.verify_ledger(flow.id) is None


def person_of(accord: Accord, redis_client: redis.Redis) -> str:
    return person_key(accord.store.pid(accord.store.digest(VOTER)).decode())


def rewrite_stream(redis_client: redis.Redis, key: str, change) -> None:
    """Rewrite a stream in place, entry ids kept, as someone tampering with Redis would."""
    entries = redis_client.xrange(key)
    redis_client.delete(key)
    for entry_id, fields in entries:
        redis_client.xadd(key, change(entry_id, dict(fields)), id=entry_id)


def test_the_stream_holds_no_number_and_no_text(accord, flow, conversation, redis_client):
    for _, fields in redis_client.xrange(ledger_key(flow.id)):
        assert set(fields) == {b"at", b"flow", b"flow_hash", b"kind", b"pid", b"commit", b"prev", b"hash"}
        assert VOTER.encode() not in b"".join(fields.values())


def test_what_the_stream_keeps_of_an_erased_number_does_not_give_its_number_back(accord, flow, conversation,
                                                                                 redis_client):
    # Someone holding the stream (or its archive files) knows each entry's person id and commitment, and
    # can list every French mobile; the other personal fields of a first entry are the same for every
    # number. The salt is what keeps them from opening a commitment: nothing public may give it away.
    pid = accord.store.pid(accord.store.digest(VOTER)).decode()
    held = {name.decode().partition("|")[2]: stored_fields(raw)
            for name, raw in redis_client.hgetall(person_key(pid)).items()}
    accord.store.erase([flow], VOTER, whole=True, objection=False)
    entries = [(entry_id.decode(), fields) for entry_id, fields in redis_client.xrange(ledger_key(flow.id))
               if fields[b"pid"] == pid.encode()]
    assert len(entries) == len(held) >= 3
    for entry_id, fields in entries:
        values = [str(held[entry_id][name]).encode() for name in PERSONAL]  # the right guess of every field
        assert fields[b"commit"] == sha1(held[entry_id]["salt"].encode() + lp(values))
        for salt in (pid, *(f"{pid}.{n}" for n in range(1, 4)), entry_id, fields[b"at"].decode()):
            assert fields[b"commit"] != sha1(salt.encode() + lp(values))
        # Nor trying every salt: 96 random bits at least (2^64 SHA-1 is within a well-funded attacker's reach).
        assert len(held[entry_id]["salt"].partition(".")[0]) * 4 >= 96


def test_an_edited_answer_is_detected(accord, flow, conversation, redis_client):
    person = person_of(accord, redis_client)
    for name, raw in redis_client.hgetall(person).items():
        if name == b"pid":
            continue
        fields = stored_fields(raw)
        if fields["event"] == "in:NO":  # turn the voter's "non" into a "oui"
            redis_client.hset(person, name, as_stored({**fields, "text": "oui", "event": "in:YES"}))
            assert accord.store.verify_ledger(flow.id) == name.decode().split("|")[1]
            return
    pytest.fail("no NO answer in the ledger")


def test_text_cannot_be_shifted_between_personal_fields(accord, flow, sms: SMS, redis_client):
    accord.store.claim(flow, VOTER, window_open=True)
    sms.send(VOTER, "non STOP")
    person = person_of(accord, redis_client)
    for name, raw in redis_client.hgetall(person).items():
        if name != b"pid" and stored_fields(raw)["event"].startswith("in:"):
            fields = stored_fields(raw)
            redis_client.hset(person, name, as_stored({**fields, "text": "non", "sid": "STOP" + fields["sid"]}))
            assert accord.store.verify_ledger(flow.id) == name.decode().split("|")[1]


def test_an_edited_stream_entry_is_detected(accord, flow, conversation, redis_client):
    key = ledger_key(flow.id)
    second = redis_client.xrange(key)[1][0]
    rewrite_stream(redis_client, key, lambda entry_id, f: {**f, b"at": b"1"} if entry_id == second else f)
    assert accord.store.verify_ledger(flow.id) == second.decode()


def test_a_deleted_last_entry_is_detected(accord, flow, conversation, redis_client):
    key = ledger_key(flow.id)
    redis_client.xdel(key, redis_client.xrevrange(key, count=1)[0][0])
    assert accord.store.verify_ledger(flow.id) == "head"


def test_an_entry_edited_into_invalid_utf8_is_named_not_crashed_on(accord, flow, conversation, redis_client):
    person = person_of(accord, redis_client)
    name = next(n for n in redis_client.hkeys(person) if n != b"pid")
    redis_client.hset(person, name, b'{"phone": "\xff\xfe"}')
    assert accord.store.verify_ledger(flow.id) == name.decode().split("|")[1]


def test_personal_fields_removed_without_a_recorded_erasure_are_caught(accord, flow, conversation, redis_client):
    redis_client.delete(person_of(accord, redis_client))
    entries = accord.store.ledger(flow.id)
    assert entries and all(fields.get("erased") == "1" for _, fields in entries)
    assert accord.store.verify_ledger(flow.id) == entries[0][0]  # the first entry emptied, and no erasure says so


def test_personal_fields_erased_leave_a_chain_that_verifies(accord, flow, conversation):
    accord.store.erase([flow], VOTER, whole=True, objection=True)
    entries = accord.store.ledger(flow.id)
    assert [fields.get("erased") for _, fields in entries[:3]] == ["1", "1", "1"]
    assert entries[-1][1]["text"].startswith("3 entries erased: ")
    assert accord.store.verify_ledger(flow.id) is None


def test_the_ledger_joins_each_entry_with_its_exact_texts(accord, flow, conversation):
    entries = [fields for _, fields in accord.store.ledger(flow.id)]
    assert [f["event"] for f in entries] == ["ask", "in:NO", "in:YES"]
    assert entries[0]["text"] == flow.texts.consent_request
    assert entries[2]["sid"] == "SM" + "b" * 32
    assert json.loads(entries[2]["reply"]) == [flow.texts.confirmation, flow.texts.content[0]]
    assert {f["phone"] for f in entries} == {VOTER} and {f["flow_hash"] for f in entries} == {flow.content_hash}


def test_personal_fields_are_stored_without_their_names(accord, flow, conversation, redis_client):
    held = [raw for name, raw in redis_client.hgetall(person_of(accord, redis_client)).items() if name != b"pid"]
    assert held and all(raw.startswith(b"[") and b'"event"' not in raw for raw in held)


def test_entries_written_as_named_fields_by_earlier_versions_still_read_and_verify(accord, flow, conversation,
                                                                                  redis_client):
    before = accord.store.person(VOTER)
    person = person_of(accord, redis_client)
    for name, raw in redis_client.hgetall(person).items():
        if name != b"pid":
            redis_client.hset(person, name, json.dumps(stored_fields(raw)))  # {"phone": ..., "salt": ...}
    assert accord.store.verify_ledger(flow.id) is None
    assert accord.store.person(VOTER) == before


def test_a_person_id_an_earlier_version_kept_in_a_key_of_its_own_is_found_then_moved(accord, flow, conversation,
                                                                                    sms: SMS, redis_client):
    digest = accord.store.digest(VOTER)
    bucket, field = subject_slot(digest)
    pid = redis_client.hget(bucket, field)
    redis_client.hdel(bucket, field)
    redis_client.set(legacy_subject_key(digest), pid)  # the layout before subjects hashes
    held = accord.store.person(VOTER)
    assert len(held[flow.id]) == 3  # read through the old key: ask, NON, OUI

    sms.send(VOTER, "stop")
    assert redis_client.hget(bucket, field) == pid and not redis_client.exists(legacy_subject_key(digest))
    assert len(accord.store.person(VOTER)[flow.id]) == 4  # one person still: the STOP joined the others
    accord.store.erase([flow], VOTER, whole=True, objection=True)
    assert accord.store.pid(digest) is None and not redis_client.exists(person_key(pid.decode()))


def test_a_numbers_person_id_sits_under_twenty_digits_of_its_hmac_past_the_hashs_name(accord, flow, conversation,
                                                                                      redis_client):
    digest = accord.store.digest(VOTER)
    bucket = f"accord:subjects:{digest[:4]}"
    assert redis_client.hgetall(bucket) == {digest[4:24].encode(): accord.store.pid(digest)}


def test_a_person_id_an_earlier_version_kept_under_the_long_field_is_found_then_moved(accord, flow, conversation,
                                                                                    sms: SMS, redis_client):
    digest = accord.store.digest(VOTER)
    bucket, field = subject_slot(digest)
    long = legacy_subject_field(digest)
    pid = redis_client.hget(bucket, field)
    redis_client.hdel(bucket, field)
    redis_client.hset(bucket, long, pid)  # the field of the version before: all 28 digits past the hash's name
    assert len(long) == 28 and accord.store.pid(digest) == pid
    assert len(accord.store.person(VOTER)[flow.id]) == 3  # read through the long field: ask, NON, OUI

    sms.send(VOTER, "stop")
    assert redis_client.hgetall(bucket) == {field.encode(): pid}  # moved, and no second person made
    assert len(accord.store.person(VOTER)[flow.id]) == 4  # one person still: the STOP joined the others
    assert accord.store.verify_ledger(flow.id) is None


def test_a_number_seen_before_costs_its_script_one_lookup_of_its_person_id(accord, flow, conversation, sms: SMS,
                                                                          redis_client):
    digest = accord.store.digest(VOTER)
    bucket = subject_slot(digest)[0]
    with redis_client.monitor() as monitor:
        sms.send(VOTER, "stop")
        redis_client.echo("sent")
        seen = []
        for command in monitor.listen():
            if command["command"] == "ECHO sent":
                break
            if command["client_type"] == "lua" and (bucket in command["command"]
                                                    or legacy_subject_key(digest) in command["command"]):
                seen.append(command["command"])
    assert seen == [f"HGET {bucket} {subject_slot(digest)[1]}"]


@pytest.mark.parametrize("whole", [True, False], ids=["erasure request", "retention"])
def test_erasure_removes_the_person_id_under_every_name_a_version_gave_it(accord, flow, conversation, redis_client,
                                                                         whole):
    digest = accord.store.digest(VOTER)
    bucket, field = subject_slot(digest)
    pid = redis_client.hget(bucket, field)
    # As a version running beside this one during an upgrade could leave them, besides the field it reads.
    redis_client.hset(bucket, legacy_subject_field(digest), pid)
    redis_client.set(legacy_subject_key(digest), pid)
    accord.store.erase([flow], VOTER, whole=whole, objection=whole)
    assert not redis_client.exists(bucket)
    assert not redis_client.exists(legacy_subject_key(digest))
    assert accord.store.pid(digest) is None
