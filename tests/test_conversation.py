"""The consent conversation, held through the real webhook with signed requests and a real Redis."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from bot import Accord
from bot.store import SID_TTL
from tests.conftest import PARIS, SMS, Clock, answers, forget_answer, forget_seen, kept_answer

VOTER = "+33612980001"


@pytest.fixture
def flow(accord: Accord):
    return accord.flows["demo"]


@pytest.fixture
def asked(accord: Accord, flow) -> str:
    """A voter the demo round has asked."""
    outcome = accord.store.claim(flow, VOTER, window_open=True)
    assert (outcome.source, outcome.dest) == ("new", "asked")
    return VOTER


def state(accord: Accord, flow, phone: str = VOTER) -> str:
    return accord.store.state(flow, phone)


def test_yes_gives_consent_then_confirmation_and_first_content(sms: SMS, accord, flow, asked):
    response = sms.send(asked, "Oui !")
    assert response.status_code == 200
    assert answers(response) == [flow.texts.confirmation, flow.texts.content[0]]
    assert state(accord, flow) == "consented"


def test_no_declines_and_sends_no_content(sms: SMS, accord, flow, asked):
    assert answers(sms.send(asked, "Non merci")) == [flow.texts.declined]
    assert state(accord, flow) == "declined"


@pytest.mark.parametrize("before", ["asked", "clarified", "consented", "declined", "expired"])
def test_stop_in_any_state_ends_all_sending(sms: SMS, accord, flow, clock: Clock, asked, before):
    walk = {"clarified": ["euh"], "consented": ["oui"], "declined": ["non"], "expired": []}
    for text in walk.get(before, []):
        sms.send(asked, text)
    if before == "expired":
        clock.advance(days=8)
    assert state(accord, flow) == before
    assert answers(sms.send(asked, "Arrêtez de m'envoyer des SMS")) == [flow.texts.stopped]
    assert state(accord, flow) == "opted_out"
    assert accord.store.is_suppressed(flow, asked)
    # One confirmation, then silence, whatever the voter says next.
    for text in ("STOP", "oui", "OK", "non", "???"):
        assert answers(sms.send(asked, text)) == []
    assert state(accord, flow) == "opted_out"


def test_unclear_answer_gets_one_clarification_then_silence(sms: SMS, accord, flow, asked):
    assert answers(sms.send(asked, "oui mais pour quoi faire")) == [flow.texts.clarification]
    assert state(accord, flow) == "clarified"
    assert answers(sms.send(asked, "je sais pas trop")) == []
    assert answers(sms.send(asked, "OK")) == [flow.texts.confirmation, flow.texts.content[0]]


def test_help_gets_identity_and_keeps_the_question_open(sms: SMS, accord, flow, asked):
    assert answers(sms.send(asked, "Qui êtes-vous ? Comment avez-vous eu mon numéro ?")) == [flow.texts.help]
    assert state(accord, flow) == "asked"


def test_a_question_with_oui_in_it_is_not_consent(sms: SMS, accord, flow, asked):
    assert answers(sms.send(asked, "oui mais qui êtes-vous ?")) == [flow.texts.help]
    assert state(accord, flow) == "asked"


def test_declined_voter_may_consent_later_on_their_own(sms: SMS, accord, flow, asked):
    sms.send(asked, "non")
    assert answers(sms.send(asked, "bof")) == []
    assert state(accord, flow) == "declined"
    assert answers(sms.send(asked, "OUI")) == [flow.texts.confirmation, flow.texts.content[0]]
    assert state(accord, flow) == "consented"


def test_consent_given_again_gets_a_confirmation_but_not_the_same_content_twice(sms: SMS, accord, flow, asked):
    assert flow.texts.content[0] in answers(sms.send(asked, "oui"))
    sms.send(asked, "non")
    assert answers(sms.send(asked, "oui")) == [flow.texts.confirmation]
    assert state(accord, flow) == "consented"


def test_consent_can_be_withdrawn_with_no(sms: SMS, accord, flow, asked):
    sms.send(asked, "oui")
    assert answers(sms.send(asked, "non")) == [flow.texts.declined]
    assert state(accord, flow) == "declined"


def test_start_after_stop_asks_the_consent_question_again(sms: SMS, accord, flow, asked):
    sms.send(asked, "STOP")
    assert answers(sms.send(asked, "START")) == [flow.texts.consent_request]
    assert state(accord, flow) == "asked"
    assert not accord.store.is_suppressed(flow, asked)
    assert answers(sms.send(asked, "oui")) == [flow.texts.confirmation, flow.texts.content[0]]


def test_no_answer_within_expiry_means_expired(sms: SMS, accord, flow, clock: Clock, asked):
    clock.advance(days=flow.expiry_days, seconds=-1)
    assert state(accord, flow) == "asked"
    clock.advance(seconds=1)
    assert state(accord, flow) == "expired"
    assert answers(sms.send(asked, "hein ?")) == []
    events = [fields["event"] for _, fields in accord.store.ledger(flow.id)]
    assert events == ["ask", "expire", "in:OTHER"]


def test_unasked_number_hears_who_we_are_once(sms: SMS, accord, flow):
    stranger = "+33612980042"
    assert answers(sms.send(stranger, "Bonjour")) == [flow.texts.help]
    assert answers(sms.send(stranger, "Oui")) == []
    assert state(accord, flow, stranger) == "contacted"
    # ... and can still be asked by a round, once.
    assert accord.store.claim(flow, stranger, window_open=True).dest == "asked"


def test_unasked_number_saying_stop_is_honoured(sms: SMS, accord, flow):
    stranger = "+33612980043"
    assert answers(sms.send(stranger, "stop")) == [flow.texts.stopped]
    assert accord.store.is_suppressed(flow, stranger)
    assert accord.store.claim(flow, stranger, window_open=True).refused == "suppressed"


def test_replayed_message_sid_changes_nothing_and_gets_the_same_answer(sms: SMS, accord, flow, asked):
    first = sms.send(asked, "oui", sid="SM" + "a" * 32)
    ledger = accord.store.ledger(flow.id)
    again = sms.send(asked, "oui", sid="SM" + "a" * 32)
    assert again.data == first.data
    assert accord.store.ledger(flow.id) == ledger
    # Even a retry whose body differs is the same message: Twilio's sid is the identity.
    assert sms.send(asked, "stop", sid="SM" + "a" * 32).data == first.data
    assert state(accord, flow) == "consented"


@pytest.mark.parametrize("known_for_good", [True, False], ids=["known for good", "by its entry alone"])
def test_a_text_replayed_after_its_sid_is_forgotten_still_changes_nothing(sms: SMS, accord, flow, asked,
                                                                           redis_client, known_for_good):
    # The sid's own key lives 35 days; whoever kept the signed request of the voter's "oui" could
    # post it again after that, once they have said "non", and have it count as consent anew.
    yes = "SM" + "a" * 32
    sms.send(asked, "oui", sid=yes)
    sms.send(asked, "non", sid="SM" + "b" * 32)
    ledger = accord.store.ledger(flow.id)
    assert SID_TTL <= kept_answer(redis_client, yes)[1] <= 2 * SID_TTL  # kept 35 to 70 days
    forget_answer(redis_client, yes)  # as that time does
    if not known_for_good:
        forget_seen(accord.store, yes)
    assert answers(sms.send(asked, "oui", sid=yes)) == []
    assert state(accord, flow) == "declined" and accord.store.ledger(flow.id) == ledger


def test_a_stop_replayed_after_its_sid_is_forgotten_does_not_take_back_a_later_start(sms: SMS, accord, flow, asked,
                                                                                      redis_client):
    stop = "SM" + "5" * 32
    sms.send(asked, "STOP", sid=stop)
    assert answers(sms.send(asked, "START")) == [flow.texts.consent_request]
    forget_answer(redis_client, stop)
    ledger = accord.store.ledger(flow.id)
    assert answers(sms.send(asked, "STOP", sid=stop)) == []
    assert not accord.store.is_suppressed(flow, asked) and accord.store.ledger(flow.id) == ledger
    assert answers(sms.send(asked, "oui")) == [flow.texts.confirmation, flow.texts.content[0]]


def test_the_answer_kept_under_a_text_s_id_is_short_and_answers_a_retry_the_same(sms: SMS, asked, redis_client):
    yes, other = "SM" + "9" * 32, "SM" + "8" * 32
    first = sms.send(asked, "oui", sid=yes).data
    assert kept_answer(redis_client, yes)[0] == b"demo|asked|consented|confirmation,content"
    assert sms.send(asked, "oui", sid=yes).data == first
    said_nothing = sms.send(asked, "merci", sid=other).data
    assert kept_answer(redis_client, other)[0] == b"demo|consented|consented|"
    assert sms.send(asked, "merci", sid=other).data == said_nothing


def test_an_answer_an_earlier_version_kept_as_json_answers_a_retry(sms: SMS, flow, asked, redis_client):
    yes = "SM" + "7" * 32
    first = sms.send(asked, "oui", sid=yes).data
    for key in redis_client.scan_iter(match="accord:answered:*"):
        if redis_client.hexists(key, yes):
            redis_client.hset(key, yes, json.dumps({"flow": "demo", "from": "asked", "to": "consented",
                                                    "says": ["confirmation", "content"]}))
    assert sms.send(asked, "oui", sid=yes).data == first


def test_only_ids_unique_for_good_are_known_for_good(accord, flow, asked, redis_client):
    # OVHcloud's ids are an SMS service's own: without the service's name, whose text it was is unknown.
    accord.store.step([flow], asked, "yes", inbound=True, message_sid="OVH1234567")
    assert not list(redis_client.scan_iter(match="accord:seen:*"))
    accord.store.step([flow], asked, "yes", inbound=True, message_sid="SM" + "6" * 32)
    assert len(list(redis_client.scan_iter(match="accord:seen:*"))) == 1


def test_an_ovhcloud_id_is_known_for_good_under_its_service_s_name(accord, flow, asked, redis_client):
    ours = dataclasses.replace(accord.store, ovh_service="sms-ab12345-1")
    next_account = dataclasses.replace(accord.store, ovh_service="sms-cd67890-1")
    ours.step([flow], asked, "yes", inbound=True, message_sid="OVH7")
    forget_answer(redis_client, "OVH7")  # its 35 to 70 days past; the record of it stays
    other = "+33612980002"
    ours.claim(flow, other, window_open=True)
    # Called back again with another number in it: the entries of that number do not know the text.
    replayed = ours.step([flow], other, "yes", inbound=True, message_sid="OVH7")
    assert replayed.refused == "replayed" and state(accord, flow, other) == "asked"
    # The next account's own text 7 is another text.
    answered = next_account.step([flow], other, "yes", inbound=True, message_sid="OVH7")
    assert not answered.refused and state(accord, flow, other) == "consented"


def test_an_ovhcloud_stop_whose_name_another_text_holds_still_objects(accord, flow, asked, redis_client):
    # A text of the service the deployment left, its number retired and its callback still coming, is
    # recorded under the service the settings name now: this service's own text 7 shares its name. Refused
    # as that text's replay, a genuine STOP still objects, as OVHcloud's texts did before the record.
    ours = dataclasses.replace(accord.store, ovh_service="sms-ab12345-1")
    ours.step([flow], "+33612980002", "yes", inbound=True, message_sid="OVH7")
    forget_answer(redis_client, "OVH7")
    assert ours.step([flow], asked, "stop", inbound=True, message_sid="OVH7").refused == "replayed"
    assert accord.store.is_suppressed(flow, asked)


def test_a_text_retried_in_the_next_generation_of_answers_gets_the_same_answer(sms: SMS, accord, flow, asked,
                                                                               clock: Clock, redis_client):
    # Answers sit in a hash per 35-day generation: a retry just after the turn finds the one before.
    first = sms.send(asked, "oui", sid="SM" + "a" * 32)
    ledger = accord.store.ledger(flow.id)
    clock.advance(days=35)
    assert sms.send(asked, "non", sid="SM" + "a" * 32).data == first.data
    assert accord.store.ledger(flow.id) == ledger and state(accord, flow) == "consented"
    assert accord.store.answer_late("SM" + "a" * 32) is None  # reconcile leaves it be too


def test_a_text_an_earlier_version_answered_gets_that_answer(sms: SMS, accord, flow, asked, redis_client):
    # Earlier versions kept each answer in a key of its own, for 35 days: read until they expire.
    kept = json.dumps({"flow": flow.id, "from": "asked", "to": "declined", "says": ["declined"]})
    redis_client.set("accord:sid:SM" + "c" * 32, kept, ex=SID_TTL)
    assert answers(sms.send(asked, "oui", sid="SM" + "c" * 32)) == [flow.texts.declined]
    assert state(accord, flow) == "asked" and accord.store.answer_late("SM" + "c" * 32) is None


def test_the_campaign_flow_keeps_sundays_free_of_content(sms: SMS, accord, clock: Clock):
    campaign = accord.flows["presidentielle-2027"]
    accord.store.claim(campaign, VOTER, window_open=True)
    clock.set(dt.datetime(2026, 12, 6, 10, 0, tzinfo=PARIS))  # a Sunday
    assert answers(sms.send(VOTER, "oui", to=campaign.sender)) == [campaign.texts.confirmation]


def test_each_flow_keeps_its_own_consent(sms: SMS, accord):
    demo, campaign = accord.flows["demo"], accord.flows["presidentielle-2027"]
    accord.store.claim(demo, VOTER, window_open=True)
    accord.store.claim(campaign, VOTER, window_open=True)
    sms.send(VOTER, "oui", to=demo.sender)
    assert state(accord, demo) == "consented"
    assert state(accord, campaign) == "asked"


@pytest.mark.parametrize("moment, why", [
    (dt.datetime(2026, 12, 1, 23, 30, tzinfo=PARIS), "after hours"),
    (dt.datetime(2026, 12, 25, 10, 0, tzinfo=PARIS), "Christmas"),
    (dt.datetime(2030, 6, 8, 10, 0, tzinfo=PARIS), "eve of the poll"),
])
def test_outside_the_window_yes_is_confirmed_but_content_waits(sms: SMS, accord, flow, clock, asked,
                                                               moment, why):
    clock.set(moment)
    assert answers(sms.send(asked, "oui")) == [flow.texts.confirmation], why
    assert state(accord, flow) == "consented"


def test_start_outside_the_window_leaves_the_number_for_the_next_round(sms: SMS, accord, flow, clock,
                                                                        asked):
    sms.send(asked, "stop")
    clock.set(dt.datetime(2027, 5, 1, 10, 0, tzinfo=PARIS))  # 1 May
    assert answers(sms.send(asked, "start")) == []
    assert state(accord, flow) == "new"
    assert not accord.store.is_suppressed(flow, asked)


def test_every_step_lands_in_a_ledger_whose_chain_verifies(sms: SMS, accord, flow, asked):
    for text in ("euh", "oui", "non", "STOP", "START", "oui"):
        sms.send(asked, text)
    entries = accord.store.ledger(flow.id)
    inbound = [fields for _, fields in entries if fields["event"].startswith("in:")]
    assert [f["state"] for f in inbound] == ["asked>clarified", "clarified>consented", "consented>declined",
                                             "declined>opted_out", "opted_out>asked", "asked>consented"]
    assert json.loads(inbound[1]["reply"]) == [flow.texts.confirmation, flow.texts.content[0]]
    assert [f["text"] for f in inbound] == ["euh", "oui", "non", "STOP", "START", "oui"]
    assert all(f["flow_hash"] == flow.content_hash for _, f in entries)
    assert accord.store.verify_ledger(flow.id) is None
