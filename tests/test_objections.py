"""An objection holds on every path: START lifts it only where the voter texted it, a damaged record
cannot keep it from being recorded, and each voter's own calendar decides on every path; on Twilio
and on OVHcloud alike."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from rq import SimpleWorker

from bot import Accord, create_app, use
from bot.cli import Services, main
from bot.sending import queue_for
from bot.states import slot
from tests.conftest import PARIS, Reply, Voter
from tests.flowfiles import NOTICE, TEXTS

VOTER = "+33612980001"
OTHER = "+33612980002"
FLOW = """\
id = "{id}"
controller_id = "{controller}"
controller = "Liste {name}"
purpose = "recevoir les SMS de la campagne {name}"
source = "le courtier DataTest"
notice_url = "https://example.org/{id}"
poll_date = 2030-06-09
sender = "{sender}"

""" + NOTICE + TEXTS + """\
content = ["{{controller}} : message de campagne {name}. STOP pour ne plus recevoir"]
"""
# Two flows of one controller texting from two senders, a third flow on the first sender, and a
# flow of another controller on the second sender.
FLOWS = {
    "alpha": ("Alpha", "liste-a", "38001"),
    "alpha-bis": ("Alpha bis", "liste-a", "38001"),
    "beta": ("Beta", "liste-a", "38002"),
    "gamma": ("Gamma", "liste-g", "38002"),
}


@pytest.fixture
def app(config, clock, redis_client, provider, tmp_path: Path) -> Flask:
    """The app with the flows above, sending through the provider's real client to its local server."""
    flows = tmp_path / "flows"
    flows.mkdir()
    for flow_id, (name, controller, sender) in FLOWS.items():
        (flows / f"{flow_id}.toml").write_text(FLOW.format(id=flow_id, name=name, controller=controller,
                                                            sender=sender), encoding="utf-8")
    config = provider.configure(dataclasses.replace(config, flows_dir=flows))
    app = create_app(config, gateway=provider.gateway(config), clock=clock)
    use(app.extensions["accord"])  # what a worker process does once at start
    return app


@pytest.fixture
def sms(client, provider) -> Voter:
    return Voter(provider, client)


def answers(reply: Reply) -> list[str]:
    return reply.texts


def run(accord: Accord, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), obj=Services(accord), catch_exceptions=False)


def round_for(accord: Accord, flow_id: str, tmp_path: Path, *phones: str, postcode: str = "") -> None:
    """Import `phones` into a round of the flow, as an operator does, and let a worker send it."""
    path = tmp_path / f"{flow_id}-contacts.csv"
    path.write_text("telephone;code_postal\n" + "".join(f"{p};{postcode}\n" for p in phones), encoding="utf-8")
    result = run(accord, "round", "start", flow_id, str(path), "--contract", "C-1", "--operator", "camille",
                 "--rate", "1000")
    assert result.exit_code == 0, result.output
    work(accord)


def work(accord: Accord) -> None:
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)


def content_send(accord: Accord, flow_id: str) -> None:
    result = run(accord, "content", "send", flow_id)
    assert result.exit_code == 0, result.output
    work(accord)


def received(provider, phone: str, flow: str, accord: Accord) -> list[str]:
    """The texts the provider took for `phone` from the flow's sender."""
    sender = accord.flows[flow].sender
    return [m["body"] for m in provider.taken() if m["to"] == phone and m["sender"] == sender]


def flow_of(accord: Accord, flow_id: str):
    return accord.flows[flow_id]


# START lifts an objection for the sender it was texted to, and nowhere else.

def test_start_lifts_an_objection_only_on_the_sender_it_was_texted_to(accord, sms: Voter, provider, tmp_path):
    alpha, alpha_bis, beta = (accord.flows[f] for f in ("alpha", "alpha-bis", "beta"))
    round_for(accord, "beta", tmp_path, VOTER)
    assert answers(sms.send(VOTER, "OUI", to=beta.sender)) == [beta.texts.confirmation, beta.texts.content[0]]
    # An objection on alpha's sender stops the whole controller, beta's sender included.
    assert answers(sms.send(VOTER, "STOP", to=alpha.sender))[0] in (alpha.texts.stopped, alpha_bis.texts.stopped)
    assert accord.store.is_suppressed(beta, VOTER)

    asked = answers(sms.send(VOTER, "START", to=alpha.sender))
    lead, other = (alpha, alpha_bis) if asked == [alpha.texts.consent_request] else (alpha_bis, alpha)
    assert asked == [lead.texts.consent_request]  # the sender's flow the voter talked to asks again at once
    assert accord.store.state(lead, VOTER) == "asked"
    assert accord.store.state(other, VOTER) == "new"  # the sender's other flow may ask in its next round
    assert not accord.store.is_suppressed(alpha, VOTER) and not accord.store.is_suppressed(alpha_bis, VOTER)
    assert accord.store.is_suppressed(beta, VOTER)  # beta's sender never heard START

    provider.forget()
    content_send(accord, "beta")
    round_for(accord, "beta", tmp_path, VOTER)
    assert received(provider, VOTER, "beta", accord) == []  # no content, no new question: the objection holds

    assert answers(sms.send(VOTER, "oui", to=alpha.sender)) == [lead.texts.confirmation, lead.texts.content[0]]
    round_for(accord, other.id, tmp_path, VOTER)
    assert received(provider, VOTER, other.id, accord) == [other.texts.consent_request]


def test_a_stop_anywhere_takes_back_every_start_before_it(accord, sms: Voter, provider, tmp_path):
    alpha, alpha_bis, beta, gamma = (accord.flows[f] for f in FLOWS)
    sms.send(VOTER, "STOP", to=alpha.sender)
    asked = answers(sms.send(VOTER, "START", to=alpha.sender))
    lead = alpha if asked == [alpha.texts.consent_request] else alpha_bis
    assert not accord.store.is_suppressed(lead, VOTER)
    sms.send(VOTER, "stop", to=beta.sender)  # the controller's objection, made again elsewhere
    assert accord.store.is_suppressed(lead, VOTER) and accord.store.is_suppressed(gamma, VOTER)
    # A YES to the question START asked is recorded, but the later objection still holds there.
    assert answers(sms.send(VOTER, "OUI", to=alpha.sender)) == [lead.texts.confirmation]
    provider.forget()
    content_send(accord, lead.id)
    assert received(provider, VOTER, lead.id, accord) == []


def test_start_on_one_controller_s_sender_leaves_another_controller_s_objection(accord, sms: Voter, provider,
                                                                               tmp_path):
    gamma = accord.flows["gamma"]
    sms.send(VOTER, "STOP", to=gamma.sender)  # liste-g and liste-a (beta) both on 38002
    sms.send(VOTER, "START", to=accord.flows["alpha"].sender)
    assert accord.store.is_suppressed(gamma, VOTER)
    round_for(accord, "gamma", tmp_path, VOTER)
    assert received(provider, VOTER, "gamma", accord) == []


# An objection never depends on reading the number's record.

def damage(accord: Accord, flow_id: str, phone: str, value: str = "not a state") -> None:
    key, field = slot(flow_id, phone)
    accord.store.redis.hset(key, field, value)


def test_stop_is_recorded_even_when_the_number_s_record_cannot_be_read(accord, sms: Voter, tmp_path, caplog):
    alpha = accord.flows["alpha"]
    round_for(accord, "alpha", tmp_path, VOTER)
    damage(accord, "alpha", VOTER)
    with caplog.at_level(logging.ERROR, logger="bot.store"):
        response = sms.send(VOTER, "STOP", to=alpha.sender, sid="SM" + "a" * 32)
    assert response.status_code == 200
    assert answers(response)[0] in (alpha.texts.stopped, accord.flows["alpha-bis"].texts.stopped)
    assert accord.store.is_suppressed(alpha, VOTER)
    assert accord.store.state(alpha, VOTER) == "opted_out"
    held = accord.store.person(VOTER)["alpha"]
    assert [entry["event"] for entry in held if entry["state"] == "unreadable>opted_out"] in (["in:STOP"], ["stop"])
    logged = [record.getMessage() for record in caplog.records if record.name == "bot.store"]
    assert any("unreadable state record" in line for line in logged) and not any(VOTER in line for line in logged)
    assert accord.store.verify_ledger("alpha") is None
    # The provider's retry of the same text changes nothing.
    assert sms.send(VOTER, "STOP", to=alpha.sender, sid="SM" + "a" * 32).status_code == 200
    assert accord.store.person(VOTER)["alpha"] == held


def test_any_other_text_on_an_unreadable_record_is_answered_and_changes_nothing(accord, sms: Voter, tmp_path):
    alpha = accord.flows["alpha"]
    round_for(accord, "alpha", tmp_path, VOTER)
    damage(accord, "alpha", VOTER)
    response = sms.send(VOTER, "OUI", to=alpha.sender)
    assert response.status_code == 200 and answers(response) == []
    key, field = slot("alpha", VOTER)
    assert accord.store.redis.hget(key, field) == b"not a state"
    assert accord.store.state(alpha, VOTER) == "unreadable"


def test_a_worker_passes_over_an_unreadable_record_and_the_batch_goes_on(accord, sms: Voter, provider, tmp_path):
    alpha = accord.flows["alpha"]
    damage(accord, "alpha", VOTER)
    round_for(accord, "alpha", tmp_path, VOTER, OTHER)
    assert received(provider, VOTER, "alpha", accord) == []
    assert received(provider, OTHER, "alpha", accord) == [alpha.texts.consent_request]

    sms.send(OTHER, "oui", to=alpha.sender)
    provider.forget()
    content_send(accord, "alpha")  # the broadcast's scan passes over it too
    assert received(provider, OTHER, "alpha", accord) == []  # content 1 went with the confirmation
    result = run(accord, "states", "check")
    assert result.exit_code == 1
    assert f"alpha: {VOTER}: unreadable state record 'not a state'" in result.output
    sms.send(VOTER, "STOP", to=alpha.sender)  # the voter's objection overwrites it
    result = run(accord, "states", "check", "alpha")
    assert result.exit_code == 0 and "0 unreadable state record(s)" in result.output


def test_content_is_released_to_none_but_a_readable_consented_record(accord, sms: Voter, provider, tmp_path):
    alpha = accord.flows["alpha"]
    round_for(accord, "alpha", tmp_path, VOTER, OTHER)
    sms.send(VOTER, "oui", to=alpha.sender)
    sms.send(OTHER, "oui", to=alpha.sender)
    damage(accord, "alpha", VOTER, "y0.0Z9")  # almost a consented record
    assert accord.store.release(alpha, VOTER, 1) == "unreadable record"


# One window per voter, on every path: the voter's calendar region is kept beside their state.

@pytest.mark.parametrize(("asked", "holiday", "after"), [
    (dt.date(2027, 3, 25), dt.date(2027, 3, 26), dt.date(2027, 3, 27)),  # Good Friday
    (dt.date(2026, 12, 24), dt.date(2026, 12, 26), dt.date(2026, 12, 28)),  # St Stephen's, a Saturday
], ids=["Good Friday", "St Stephen's day"])
def test_an_alsatian_answering_yes_on_a_local_holiday_gets_content_the_next_sending_day(
        accord, sms: Voter, provider, clock, tmp_path, asked, holiday, after):
    alpha = accord.flows["alpha"]
    clock.set(dt.datetime.combine(asked, dt.time(10), tzinfo=PARIS))
    round_for(accord, "alpha", tmp_path, VOTER, postcode="67000")
    round_for(accord, "alpha", tmp_path, OTHER, postcode="75011")
    key, field = slot("alpha", VOTER)
    assert accord.store.redis.hget(key, field).endswith(b"A")  # Alsace, kept beside the state

    clock.set(dt.datetime.combine(holiday, dt.time(10), tzinfo=PARIS))
    assert answers(sms.send(OTHER, "OUI", to=alpha.sender)) == [alpha.texts.confirmation, alpha.texts.content[0]]
    assert answers(sms.send(VOTER, "OUI", to=alpha.sender)) == [alpha.texts.confirmation]
    provider.forget()
    content_send(accord, "alpha")  # on the holiday: held back for the Alsatian
    assert received(provider, VOTER, "alpha", accord) == []

    clock.set(dt.datetime.combine(after, dt.time(10), tzinfo=PARIS))
    content_send(accord, "alpha")
    assert received(provider, VOTER, "alpha", accord) == [alpha.texts.content[0]]
    assert received(provider, OTHER, "alpha", accord) == []  # it had its content with the confirmation


def test_a_voter_overseas_answering_before_their_sending_hours_gets_content_later(accord, sms: Voter, provider, clock,
                                                                                  tmp_path):
    alpha = accord.flows["alpha"]
    clock.set(dt.datetime(2026, 12, 1, 16, 0, tzinfo=PARIS))  # 11:00 in Guadeloupe
    round_for(accord, "alpha", tmp_path, VOTER, postcode="97110")
    assert received(provider, VOTER, "alpha", accord) == [alpha.texts.consent_request]
    clock.set(dt.datetime(2026, 12, 2, 10, 0, tzinfo=PARIS))  # 05:00 in Guadeloupe
    assert answers(sms.send(VOTER, "oui", to=alpha.sender)) == [alpha.texts.confirmation]


def test_the_retention_purge_keeps_a_start_the_voter_made_on_another_sender(accord, sms: Voter, clock, tmp_path):
    alpha, beta = accord.flows["alpha"], accord.flows["beta"]
    sms.send(VOTER, "STOP", to=beta.sender)
    sms.send(VOTER, "STOP", to=alpha.sender)
    asked = answers(sms.send(VOTER, "START", to=alpha.sender))
    lead = alpha if asked == [alpha.texts.consent_request] else accord.flows["alpha-bis"]
    assert answers(sms.send(VOTER, "OUI", to=alpha.sender))[1:] == [lead.texts.content[0]]
    clock.advance(days=61)
    clock.set(dt.datetime.fromtimestamp(clock(), PARIS).replace(hour=10))
    result = run(accord, "purge")
    assert result.exit_code == 0 and "beta: opted out" in result.output
    assert accord.store.is_suppressed(beta, VOTER)
    assert not accord.store.is_suppressed(lead, VOTER)  # the START on alpha's sender still holds


def test_start_after_the_purge_reduced_the_number_to_its_hmac_asks_again(accord, sms: Voter, clock, tmp_path):
    alpha = accord.flows["alpha"]
    sms.send(VOTER, "STOP", to=alpha.sender)
    clock.advance(days=1)
    assert run(accord, "purge").exit_code == 0  # opted out: only the HMAC is left
    key, field = slot("alpha", VOTER)
    assert accord.store.redis.hget(key, field) is None
    asked = answers(sms.send(VOTER, "START", to=alpha.sender))
    lead = alpha if asked == [alpha.texts.consent_request] else accord.flows["alpha-bis"]
    assert asked == [lead.texts.consent_request]
    assert not accord.store.is_suppressed(lead, VOTER)
    assert answers(sms.send(VOTER, "oui", to=alpha.sender)) == [lead.texts.confirmation, lead.texts.content[0]]


def test_start_to_a_sender_the_objection_reached_from_another_asks_there_again(accord, sms: Voter, provider, tmp_path):
    beta = accord.flows["beta"]
    round_for(accord, "beta", tmp_path, VOTER)
    sms.send(VOTER, "OUI", to=beta.sender)
    sms.send(VOTER, "STOP", to=accord.flows["alpha"].sender)  # the controller's objection reaches beta too
    assert answers(sms.send(VOTER, "START", to=beta.sender)) == [beta.texts.consent_request]  # consent asked anew
    assert accord.store.state(beta, VOTER) == "asked"
    assert not accord.store.is_suppressed(beta, VOTER)
    assert accord.store.is_suppressed(accord.flows["alpha"], VOTER)  # where the STOP was sent, it holds


def test_a_region_this_version_does_not_know_gets_no_campaign_text(accord, sms: Voter, tmp_path):
    alpha = accord.flows["alpha"]
    round_for(accord, "alpha", tmp_path, VOTER)
    key, field = slot("alpha", VOTER)
    accord.store.redis.hset(key, field, accord.store.redis.hget(key, field) + b"Z")
    assert answers(sms.send(VOTER, "oui", to=alpha.sender)) == [alpha.texts.confirmation]


def test_a_claim_refused_for_an_objection_leaves_no_bit_of_the_number(accord, sms: Voter):
    alpha = accord.flows["alpha"]
    assert accord.store.admit(alpha, [VOTER]) == "q"
    sms.send(VOTER, "STOP", to=accord.flows["beta"].sender)  # the controller's objection, made elsewhere
    assert accord.store.claim(alpha, VOTER, window_open=True).refused == "suppressed"
    assert not accord.store.redis.getbit("accord:queued:alpha", 12_980_001)
