"""The stored layout of numbers' states: the codec, both sides agreeing, and compact hashes."""

from __future__ import annotations

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from bot import Accord, states
from bot.machine import STATES
from bot.states import StateRecordError
from tests.conftest import Clock

phones = st.from_regex(r"\+[1-9]\d{6,14}", fullmatch=True)
seconds = st.integers(min_value=0, max_value=2**40)


@given(phones)
def test_a_number_comes_back_from_its_hash_and_field(phone: str) -> None:
    key, field = states.slot("demo", phone)
    assert key == f"accord:state:demo:{phone[-4:]}"
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
    raw = redis_client.hget("accord:state:demo:5678", "3361234")
    assert raw == states.encode("consented", asked, clock()).encode()
    assert list(accord.store.records(flow)) == [(phone, "consented", asked, round(clock(), 3))]
    assert list(accord.store.numbers_in(flow, "consented")) == [phone]


def test_a_flow_of_many_numbers_stays_in_compact_hashes(accord: Accord, redis_client: redis.Redis) -> None:
    """About 1,000 numbers a hash (a flow of ten million) and Redis still keeps each as one list."""
    flow = accord.flows["demo"]
    phones = [f"+336{n:04d}0042" for n in range(1000)]  # all in the hash for ...0042
    for start in range(0, len(phones), 500):
        assert accord.store.admit(flow, phones[start:start + 500]) == "q" * 500
    for phone in phones:
        accord.store.claim(flow, phone, window_open=True)
    key = states.slot(flow.id, phones[0])[0]
    assert redis_client.hlen(key) == 1000
    assert redis_client.object("encoding", key) in (b"ziplist", b"listpack")
    assert redis_client.memory_usage(key, samples=0) < 1000 * 30
