"""One voter's file in the console: a whole number finds it, masked; an admin alone opens and reveals; all recorded."""

from __future__ import annotations

import re

import pytest
from markupsafe import escape

from bot import audit
from bot.web import voter_file
from tests.conftest import SMS
from tests.test_console import PASSWORD, Console

VOTER = "+33612340001"
MASKED = "+33 6 •• •• •• 01"
ENGLISH = {"Accept-Language": "en"}


@pytest.fixture
def console(client, operators) -> Console:
    console = Console(client)
    console.sign_in()
    return console


@pytest.fixture
def voter(accord, client) -> str:
    """A voter asked by the demo flow, who said yes, asked who we are, then STOP."""
    flow, sms = accord.flows["demo"], SMS(client)
    assert accord.store.claim(flow, VOTER, window_open=True).dest == "asked"
    accord.store.record_sent(flow, VOTER, "SM" + "1" * 32, flow.texts.consent_request)
    for body in ("Oui !", "Qui êtes-vous ?", "STOP"):
        sms.send(VOTER, body, to=flow.sender)
    return VOTER


def look_up(console: Console, number: str):
    return console.client.post("/console/voter", headers=ENGLISH,
                               data={"phone": number, "csrf_token": console.session_token()})


def reveal_in(console: Console, page: str):
    sealed = re.search(r'name="sealed" value="([^"]+)"', page).group(1)
    return console.client.post("/console/voter/reveal", headers=ENGLISH,
                               data={"sealed": sealed, "csrf_token": console.session_token()})


def lookups(accord) -> list[tuple[str, str, str]]:
    return [(item.user, item.action, item.subject) for item in reversed(audit.accesses(accord.store.redis))]


@pytest.mark.parametrize("typed", [VOTER, "06 12 34 00 01", "0033 6 12 34 00 01", "6.12.34.00.01"])
def test_a_whole_number_opens_the_file_with_its_state_thread_and_objection_masked(console, accord, voter, typed):
    answer = look_up(console, typed)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert f'<span class="phone" id="number">{MASKED}</span>' in page
    assert VOTER not in page and "612340001" not in page and "12 34 00 01" not in page  # not even in a form
    file = page[page.index('data-flow="demo"'):]
    assert ">objected<" in file and "Objection recorded: Liste Demo" in file
    assert "Oui !" in file and "Qui êtes-vous ?" in file and "STOP" in file  # the voter's words
    flow = accord.flows["demo"]
    assert escape(flow.texts.consent_request) in file and escape(flow.texts.confirmation) in file  # and the bot's
    assert "answered YES" in file and "awaiting an answer → gave consent" in file
    assert 'data-flow="presidentielle-2027"' not in page  # a flow that holds nothing on the number


@pytest.mark.parametrize("typed", ["0612", "06 12 34", "+3361234000", "61234", "06 12 34 00 0*", "06 12 34 00 XX"])
def test_a_prefix_or_part_of_a_number_finds_nothing_and_says_why(console, accord, voter, typed):
    answer = look_up(console, typed)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert 'id="problem"' in page and "a prefix or part of a number finds nothing" in page
    assert 'id="file"' not in page and "Oui !" not in page
    assert lookups(accord) == []  # nothing was looked up


def test_an_empty_lookup_asks_for_the_number(console, accord):
    answer = look_up(console, "  ")
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/voter"
    assert lookups(accord) == []


def test_every_lookup_is_recorded_with_the_operators_name_and_the_numbers_hmac_only(console, accord, voter):
    look_up(console, VOTER)
    look_up(console, "+33612349999")  # nothing held: the lookup is still recorded
    digest = accord.store.digest
    assert lookups(accord) == [("camille", voter_file.LOOKUP, digest(VOTER)),
                               ("camille", voter_file.LOOKUP, digest("+33612349999"))]
    raw = str(accord.store.redis.xrange("accord:access"))
    assert "612340001" not in raw and "612349999" not in raw
    home = console.client.get("/console/", headers=ENGLISH).get_data(as_text=True)
    assert home.count(voter_file.LOOKUP) == 2 and f"number {digest(VOTER)[:audit.SHOWN_DIGEST]}" in home


def test_nothing_held_says_so(console, accord):
    page = look_up(console, "+33612349999").get_data(as_text=True)
    assert 'id="nothing"' in page and 'class="card flow-file"' not in page


def test_an_admin_shows_the_whole_number_and_the_reveal_is_recorded(console, accord, voter):
    page = look_up(console, VOTER).get_data(as_text=True)
    answer = reveal_in(console, page)
    shown = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert f'<span class="phone" id="number">{VOTER}</span>' in shown and 'id="revealed"' in shown
    assert "Oui !" in shown
    assert [action for _, action, _ in lookups(accord)] == [voter_file.LOOKUP, voter_file.REVEAL]
    assert lookups(accord)[1] == ("camille", voter_file.REVEAL, accord.store.digest(VOTER))


def test_a_reveal_button_works_for_its_operator_only_and_not_for_long(app, console, operators, accord, voter, clock):
    page = look_up(console, VOTER).get_data(as_text=True)
    operators.add("sacha", PASSWORD)
    other = Console(app.test_client())
    other.sign_in("sacha")
    stolen = reveal_in(other, page)  # another admin handed the page's button
    assert stolen.status_code == 302 and stolen.headers["Location"] == "/console/voter"
    clock.advance(seconds=voter_file.SEALED_FOR)
    late = reveal_in(console, page)
    assert late.status_code == 302
    forged = console.client.post("/console/voter/reveal", data={"sealed": "bm90IHNlYWxlZA==",
                                                                "csrf_token": console.session_token()})
    assert forged.status_code == 302
    assert [action for _, action, _ in lookups(accord)] == [voter_file.LOOKUP]


def test_a_viewer_is_told_the_file_is_for_admins_and_can_neither_look_up_nor_reveal(app, console, accord, voter):
    page = look_up(console, VOTER).get_data(as_text=True)
    viewer = Console(app.test_client())
    viewer.sign_in("dominique")
    form = viewer.client.get("/console/voter", headers=ENGLISH).get_data(as_text=True)
    assert 'id="admins-only"' in form and 'name="phone"' not in form
    assert look_up(viewer, VOTER).status_code == 403
    assert reveal_in(viewer, page).status_code == 403
    assert [user for user, _, _ in lookups(accord)] == ["camille"]


def test_a_lookup_without_the_sessions_csrf_token_is_refused(console, accord, voter):
    answer = console.client.post("/console/voter", data={"phone": VOTER})
    assert answer.status_code == 400
    answer = console.client.post("/console/voter", data={"phone": VOTER, "csrf_token": "forged"})
    assert answer.status_code == 400
    assert lookups(accord) == []


def test_the_number_never_travels_in_a_url(console, accord, voter):
    answer = console.client.get(f"/console/voter?phone={VOTER}", headers=ENGLISH)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and 'id="file"' not in page and lookups(accord) == []
    page = look_up(console, VOTER).get_data(as_text=True)
    targets = re.findall(r'(?:action|href|src)="([^"]*)"', page)
    assert targets and not any(re.search(r"\d{4}", target) for target in targets)
    assert 'method="post"' in page and 'method="get"' not in page.lower()


def test_the_file_page_is_never_cached(console, voter):
    assert look_up(console, VOTER).headers["Cache-Control"] == "no-store"
