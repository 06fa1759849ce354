"""The stored layout of numbers' states: the codec, both sides agreeing, and compact hashes."""

from __future__ import annotations

import random

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from bot import Accord, keys, states
from bot.machine import STATES
from bot.states import StateRecordError
from tests.conftest import Clock

phones = st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)
seconds = st.integers(min_value=0, max_value=2**40)


@given(phones)
def test_a_number_comes_back_from_its_hash_and_field(phone: str) -> None:
    key, field = states.slot("demo", phone)
    assert key == f"accord:state:demo:{phone[-5:]}"
    assert states.phone_of(key.rsplit(":", 1)[1], field.encode()) == phone


@given(st.sampled_from(STATES), seconds, st.integers(min_value=0, max_value=2**33), st.integers(0, 999))
def test_a_value_decodes_to_what_was_encoded(state: str, asked_at: int, whole: int, ms: int) -> None:
    touched = (whole * 1000 + ms) / 1000  # kept to the millisecond, as decode divides
    assert states.decode(states.encode(state, asked_at, touched)) == (state, asked_at, touched)


@pytest.mark.parametrize("value", ["", "a", "a1", "x1.2", "asked|1|2", "a1.2|", "A1.2"])
def test_a_torn_or_foreign_value_is_refused_by_name(value: str) -> None:
    with pytest.raises(StateRecordError, match="not a state record"):
        states.decode(value)


def test_the_scripts_write_what_the_codec_reads(accord: Accord, clock: Clock, redis_client: redis.Redis) -> None:
    flow = accord.flows["demo"]
    phone = "+33612345678"
    asked = int(clock())
    accord.store.claim(flow, phone, window_open=True)
    clock.advance(seconds=90.7)
    accord.store.step([flow], phone, "yes", inbound=True)
    raw = redis_client.hget("accord:state:demo:45678", "336123")
    assert raw == states.encode("consented", asked, clock()).encode()
    assert list(accord.store.records(flow)) == [(phone, "consented", asked, round(clock(), 3))]
    assert list(accord.store.numbers_in(flow, "consented")) == [phone]


def test_a_flow_of_many_numbers_stays_in_compact_hashes(accord: Accord, redis_client: redis.Redis) -> None:
    """About 1,000 numbers a hash (a flow of a hundred million) and Redis still keeps each as one list."""
    flow = accord.flows["demo"]
    phones = [f"+336{n:03d}00042" for n in range(1000)]  # all in the hash for ...00042
    for start in range(0, len(phones), 500):
        assert accord.store.admit(flow, phones[start:start + 500]) == "q" * 500
    for phone in phones:
        accord.store.claim(flow, phone, window_open=True)
    key = states.slot(flow.id, phones[0])[0]
    assert redis_client.hlen(key) == 1000
    assert redis_client.object("encoding", key) in (b"ziplist", b"listpack")
    assert redis_client.memory_usage(key, samples=0) < 1000 * 30


def test_the_import_and_the_step_script_mark_each_mobile_at_the_same_bit(
        accord: Accord, redis_client: redis.Redis) -> None:
    """+33 6 00 00 00 00 is bit 0 of a flow's bitmaps, +33 7 00 00 00 00 bit 100,000,000; one bit a number."""
    flow = accord.flows["demo"]
    edges = ["+33600000000", "+33600000001", "+33600000010", "+33609999999", "+33610000000", "+33699999999",
             "+33700000000", "+33700000001", "+33701000000", "+33799999999"]
    rng = random.Random(7)
    phones = edges + [f"+33{rng.choice('67')}{rng.randrange(10**8):08d}" for _ in range(300)]
    phones = list(dict.fromkeys(phones))
    expected = [int(phone[3:]) - 600_000_000 for phone in phones]

    def marked(key: str) -> bool:
        return (all(redis_client.getbit(key, offset) for offset in expected)
                and redis_client.bitcount(key) == len(phones))

    assert accord.store.admit(flow, phones) == "q" * len(phones)  # admit.lua
    assert marked(keys.queued_key(flow.id))
    redis_client.delete(keys.queued_key(flow.id))
    for phone in phones:  # step.lua, asking
        assert accord.store.claim(flow, phone, window_open=True).dest == "asked"
    assert marked(keys.queued_key(flow.id))
    for phone in phones:  # step.lua, a YES releasing the first content
        accord.store.step([flow], phone, "yes", inbound=True)
    assert marked(keys.content_key(flow.id, 1))


def test_only_french_mobiles_are_admitted_to_a_round(accord: Accord) -> None:
    for item in ("+33512345678", "+3361234567", "+44712345678", "+336123456789", "0612345678",
                 "+3361234567٧", "+33612345678\n", "+33612 45678"):
        with pytest.raises(ValueError, match="only French mobiles"):
            accord.store.admit(accord.flows["demo"], [item])
    for batch in (["+33612345678/75011, Paris"], ["+33612345678", "+33612345679/7,5"]):
        with pytest.raises(ValueError, match="no comma"):
            accord.store.admit(accord.flows["demo"], batch)


def test_a_batch_too_large_for_one_script_call_is_refused(accord: Accord) -> None:
    with pytest.raises(ValueError, match="at most 5000 numbers"):
        accord.store.admit(accord.flows["demo"], [f"+336{n:08d}" for n in range(5001)])
