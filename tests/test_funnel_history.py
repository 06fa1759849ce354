"""The funnel's history: who ever consented, withdrew and objected, beside where numbers are now."""

from __future__ import annotations

import re

import pytest

from bot.funnel import History, history
from bot.keys import funnel_key
from bot.operators import Operators
from tests.conftest import SMS
from tests.test_console import PASSWORD, Console

VOTERS = ("+33612340001", "+33612340002")


@pytest.mark.parametrize("counters, expected", [
    ({}, History(0, 0, 0, 0)),
    ({b"i:asked>consented": b"2", b"i:consented>opted_out": b"2"}, History(2, 2, 2, 0)),
    ({"i:asked>consented": 3, "i:consented>declined": 1, "i:declined>consented": 1}, History(4, 1, 0, 0)),
    ({"i:asked>opted_out": 1, "m:new>opted_out": 4, "i:opted_out>asked": 1}, History(0, 0, 5, 0)),
    ({"m:?>opted_out": 1, "m:consented>-": 2, "m:asked>-": 1}, History(0, 0, 1, 3)),
    # per-state counts, answers and open questions per hour are not moves
    ({"consented": 9, "answers:490000": 5, "h:490000": 2, "import:imported": 7, "sent": 7}, History(0, 0, 0, 0)),
])
def test_history_adds_up_the_moves_by_where_they_led(counters, expected):
    assert history(counters) == expected


@pytest.fixture
def two_voters_said_yes_then_stop(accord, client):
    flow, sms = accord.flows["demo"], SMS(client)
    for phone in VOTERS:
        assert accord.store.claim(flow, phone, window_open=True).dest == "asked"
        sms.send(phone, "oui", to=flow.sender)
        sms.send(phone, "STOP", to=flow.sender)
    assert [accord.store.state(flow, phone) for phone in VOTERS] == ["opted_out", "opted_out"]
    return flow


def test_two_voters_who_said_yes_then_stop_count_as_consented_ever_and_withdrawn(accord, two_voters_said_yes_then_stop):
    flow = two_voters_said_yes_then_stop
    assert accord.store.funnel(flow).get("consented", 0) == 0  # where they are now
    assert history(accord.store.redis.hgetall(funnel_key(flow.id))) == History(2, 2, 2, 0)


def row(page: str, key: str) -> tuple[str, str]:
    found = re.search(rf'<tr data-history="{key}"><td>[^<]*</td><td class="num">([^<]*)</td>'
                      rf'<td class="num">([^<]*)</td></tr>', page)
    assert found, key
    return found.group(1), found.group(2)


def test_the_flow_page_shows_now_and_ever_side_by_side(accord, client, two_voters_said_yes_then_stop):
    Operators(accord.store.redis).add("camille", PASSWORD)
    console = Console(client)
    console.sign_in()
    page = client.get("/console/flows/demo", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert row(page, "consented") == ("0", "2")
    assert row(page, "withdrew") == ("—", "2")
    assert row(page, "objected") == ("2", "2")
    assert "not distinct numbers" in page
