"""Two campaigns texting from the same number: answers are never mistaken, objections reach both."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot import Accord, create_app
from tests.conftest import SMS, answers
from tests.flowfiles import NOTICE, TEXTS

VOTER = "+33612980001"
FLOW = """\
id = "{id}"
controller_id = "{id}-controller"
controller = "Liste {name}"
purpose = "recevoir les SMS de la campagne {name}"
source = "le courtier DataTest"
notice_url = "https://example.org/{id}"
poll_date = 2030-06-09
sender = "38000"
sending_days = "mon-sun"

""" + NOTICE + TEXTS + """\
content = ["{{controller}} : message de campagne {name}. STOP pour ne plus recevoir"]
"""


@pytest.fixture
def app(config, clock, redis_client, tmp_path: Path):
    flows = tmp_path / "flows"
    flows.mkdir()
    for flow_id, name in (("alpha", "Alpha"), ("beta", "Beta")):
        (flows / f"{flow_id}.toml").write_text(FLOW.format(id=flow_id, name=name), encoding="utf-8")
    return create_app(dataclasses.replace(config, flows_dir=flows), clock=clock)


def claim(accord: Accord, flow_id: str):
    flow = accord.flows[flow_id]
    return accord.store.claim(flow, VOTER, window_open=True, siblings=accord.flows_for(flow.sender))


def test_a_second_flow_waits_while_the_first_question_is_open(accord, sms: SMS, clock):
    alpha, beta = accord.flows["alpha"], accord.flows["beta"]
    assert claim(accord, "alpha").dest == "asked"
    assert claim(accord, "beta").refused == "waiting: open question from alpha"
    assert answers(sms.send(VOTER, "OUI")) == [alpha.texts.confirmation, alpha.texts.content[0]]
    assert accord.store.state(beta, VOTER) == "new"
    assert claim(accord, "beta").dest == "asked"  # alpha answered: beta may ask now


def test_the_yes_goes_to_the_flow_whose_question_is_open(accord, sms: SMS):
    alpha, beta = accord.flows["alpha"], accord.flows["beta"]
    claim(accord, "alpha")
    sms.send(VOTER, "non")
    claim(accord, "beta")
    assert answers(sms.send(VOTER, "oui")) == [beta.texts.confirmation, beta.texts.content[0]]
    assert (accord.store.state(alpha, VOTER), accord.store.state(beta, VOTER)) == ("declined", "consented")


def test_stop_on_a_shared_sender_stops_every_flow_and_controller(accord, sms: SMS):
    alpha, beta = accord.flows["alpha"], accord.flows["beta"]
    claim(accord, "alpha")
    sms.send(VOTER, "oui")
    claim(accord, "beta")
    assert answers(sms.send(VOTER, "STOP")) == [beta.texts.stopped]  # one confirmation, from the open flow
    for flow in (alpha, beta):
        assert accord.store.state(flow, VOTER) == "opted_out"
        assert accord.store.is_suppressed(flow, VOTER)
    assert accord.store.verify_ledger("alpha") is None and accord.store.verify_ledger("beta") is None


def test_the_providers_opt_out_stops_every_flow_on_the_sender(accord, sms: SMS):
    claim(accord, "alpha")
    accord.store.record_sent(accord.flows["alpha"], VOTER, "SM" + "b" * 32, "request")
    assert sms.status("SM" + "b" * 32, "undelivered", to=VOTER, error_code="21610").status_code == 204
    for flow_id in ("alpha", "beta"):
        assert accord.store.state(accord.flows[flow_id], VOTER) == "opted_out"


def test_with_no_question_open_a_text_goes_to_the_latest_conversation_even_within_a_second(
        accord, sms: SMS, clock):
    """Which flow a text answers is decided to the millisecond: two conversations a half-second apart."""
    alpha, beta = accord.flows["alpha"], accord.flows["beta"]
    assert claim(accord, "alpha").dest == "asked"
    sms.send(VOTER, "NON")  # alpha declined, at a whole second
    clock.advance(seconds=0.5)
    assert claim(accord, "beta").dest == "asked"
    sms.send(VOTER, "NON")  # beta declined, half a second later
    clock.advance(seconds=0.1)
    assert answers(sms.send(VOTER, "OUI")) == [beta.texts.confirmation, beta.texts.content[0]]
    assert (accord.store.state(alpha, VOTER), accord.store.state(beta, VOTER)) == ("declined", "consented")


def test_a_round_queues_a_number_waiting_for_a_sibling_once_the_question_is_answered(accord, sms: SMS):
    beta = accord.flows["beta"]
    siblings = accord.flows_for(beta.sender)
    claim(accord, "alpha")
    assert accord.store.admit(beta, [VOTER], siblings) == "w"  # alpha's question is open
    sms.send(VOTER, "oui")
    assert accord.store.admit(beta, [VOTER], siblings, dry_run=True) == "q"
    assert accord.store.admit(beta, [VOTER], siblings) == "q"
    assert accord.store.admit(beta, [VOTER], siblings) == "a"
