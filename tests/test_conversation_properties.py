"""Whatever a voter texts, in any order: no content without YES, STOP silences, the ledger counts all."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.replies import Reply, classify
from tests.conftest import SMS, answers, new_sid

VOTER = "+33612980001"
REPLIES = ["oui", "OUI !", "Ok 👍", "d'accord", "non", "Non merci", "STOP", "stop svp", "Arrêtez",
           "oui stop", "START", "aide", "Qui êtes-vous ?", "oui mais qui êtes-vous ?", "euh", "👍", "",
           "peut-être", "je ne veux plus recevoir vos messages", "unstop", "N", "O"]
texts = st.one_of(st.sampled_from(REPLIES), st.text(max_size=40))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conversation=st.lists(st.tuples(texts, st.booleans()), min_size=1, max_size=12))
def test_no_content_without_yes_and_silence_after_stop(sms: SMS, accord, redis_client, conversation):
    redis_client.flushall()
    flow = accord.flows["demo"]
    accord.store.claim(flow, VOTER, window_open=True)
    content, processed, stopped = set(flow.texts.content), 0, False
    previous: tuple[str, bytes] | None = None
    for text, replay in conversation:
        if replay and previous:  # Twilio retrying the last message: same sid, same answer
            sid, data = previous
            assert sms.send(VOTER, text, sid=sid).data == data
            continue
        before = accord.store.state(flow, VOTER)
        sid = new_sid()
        response = sms.send(VOTER, text, sid=sid)
        assert response.status_code == 200
        processed += 1
        previous = (sid, response.data)
        said, reply = answers(response), classify(text, flow.language)
        after = accord.store.state(flow, VOTER)
        if content.intersection(said):
            assert reply is Reply.YES and after == "consented" and before != "consented"
        if stopped and reply is not Reply.START:
            # After the one confirmation, only a request for help is answered.
            assert said == ([flow.texts.help] if reply is Reply.HELP else [])
        if reply is Reply.STOP:
            assert after == "opted_out" and accord.store.is_suppressed(flow, VOTER)
            stopped = True
        elif reply is Reply.START and before == "opted_out":
            stopped = False
    inbound = [f for _, f in accord.store.ledger(flow.id) if f["event"].startswith("in:")]
    assert len(inbound) == processed
    assert accord.store.verify_ledger(flow.id) is None
