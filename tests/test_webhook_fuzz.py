"""The webhook under forms no test thought of: any character, repeated or missing fields, 10 KB bodies.

tests/test_webhook.py holds the hostile bodies we thought of; here hypothesis makes the forms.
Each one is posted unsigned first (403, and Redis untouched), then signed as Twilio signs: the
handlers then run on it, and must never answer 5xx.
"""

from __future__ import annotations

import dataclasses
import shutil
from xml.etree import ElementTree

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from bot import create_app
from tests.conftest import ROOT, SMS, answers, new_sid
from tests.test_webhook import everything

VOTERS = ["+33612980001", "+33612980002"]
SENDERS = ["38000", "38123", "38999"]  # the demo flow, the presidential flow, a number no flow uses
# Every plane; lone surrogates aside, since no UTF-8 form can carry them.
characters = st.characters(codec=None, exclude_categories=["Cs"])
anything = st.text(alphabet=characters, max_size=60)
big = st.builds(lambda unit, times: unit * times, st.text(alphabet=characters, min_size=1, max_size=4),
                st.integers(2_500, 10_000))  # 10 to 40 KB once UTF-8 encoded
valid_sids = st.uuids().map(lambda u: "SM" + u.hex)  # fresh: a replayed sid is another test's business
values = {
    "MessageSid": valid_sids | anything,
    "SmsSid": valid_sids | anything,
    "AccountSid": st.just("AC" + "0" * 32) | anything,
    "MessagingServiceSid": anything,
    "From": st.sampled_from(VOTERS) | anything,
    "To": st.sampled_from(SENDERS) | anything,
    "Body": st.sampled_from(["oui", "STOP", "aide", "START", "non"]) | anything | big,
    "NumMedia": st.sampled_from(["0", "1", "-1", "99999999999999999999"]) | anything,
    "MediaUrl0": anything,
    "OptOutType": st.sampled_from(["STOP", "START", "HELP"]) | anything,
    "MessageStatus": st.sampled_from(["delivered", "undelivered", "failed", "read", ""]) | anything,
    "ErrorCode": st.sampled_from(["21610", "30003", ""]) | anything,
}
# What Twilio always sends, mostly well formed, one or two fields sometimes missing ...
core = st.fixed_dictionaries({"MessageSid": valid_sids, "From": st.sampled_from(VOTERS), "To": st.sampled_from(SENDERS),
                              "Body": values["Body"], "MessageStatus": values["MessageStatus"],
                              "ErrorCode": values["ErrorCode"]})
missing = st.sets(st.sampled_from(["MessageSid", "From", "To", "Body", "MessageStatus"]), max_size=2)
# ... then anything: known names again (repeated, with any value), and names Twilio may add without notice.
extra = st.lists(st.one_of(st.sampled_from(sorted(values)).flatmap(lambda name: st.tuples(st.just(name),
                                                                                          values[name])),
                           st.tuples(anything, anything)), max_size=8)
forms = st.builds(lambda fields, gone, more: [(k, v) for k, v in fields.items() if k not in gone] + more,
                  core, missing, extra)


def settled(accord) -> None:
    """Every ledger's chain still holds."""
    for flow_id in accord.flows:
        assert accord.store.verify_ledger(flow_id) is None, flow_id


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(path=st.sampled_from(["/sms/inbound", "/sms/status"]), pairs=forms, forged=st.sampled_from(["", "x", "==="]))
def test_any_form_unsigned_is_refused_and_signed_never_breaks_the_server(sms: SMS, accord, redis_client, path,
                                                                         pairs, forged):
    redis_client.flushall()  # each form alone: a sid seen in another example is a replay, tested below
    for flow in accord.flows.values():
        accord.store.claim(flow, VOTERS[0], window_open=True)
    form = MultiDict(pairs)
    before = everything(redis_client)
    assert sms.post(path, form, signature=forged).status_code == 403
    assert everything(redis_client) == before
    response = sms.post(path, form)
    assert response.status_code in ({200, 400} if path == "/sms/inbound" else {204, 400}), response.data[:200]
    if response.status_code == 400:
        assert everything(redis_client) == before
    if path == "/sms/inbound":
        ElementTree.fromstring(response.data)  # TwiML, whatever the body held
    settled(accord)


def test_a_replayed_sid_sent_to_another_sender_is_answered_as_the_first_time(sms: SMS, accord, redis_client):
    """A MessageSid is one message: a replay gets the first answer and changes nothing, whatever else it says.

    Found by tests/test_schema.py: the remembered answer names a flow the new `To` does not route to.
    """
    accord.store.claim(accord.flows["presidentielle-2027"], VOTERS[0], window_open=True)
    sid = new_sid()
    first = sms.send(VOTERS[0], "oui", to="38123", sid=sid)
    assert first.status_code == 200 and answers(first)
    before = everything(redis_client)
    again = sms.send(VOTERS[0], "oui", to="38000", sid=sid)  # a flow moved to another sender, a forged retry ...
    assert (again.status_code, again.data) == (200, first.data)
    assert everything(redis_client) == before


def test_a_replayed_sid_whose_flow_was_retired_since_changes_nothing(sms: SMS, accord, config, clock, redis_client,
                                                                     tmp_path):
    """Twilio retries a text after a deploy removed the flow that answered it: no 5xx, nothing changes."""
    accord.store.claim(accord.flows["presidentielle-2027"], VOTERS[0], window_open=True)
    sid = new_sid()
    assert sms.send(VOTERS[0], "oui", to="38123", sid=sid).status_code == 200
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(ROOT / "flows" / "demo.toml", flows)  # presidentielle-2027.toml is gone
    retired = SMS(create_app(dataclasses.replace(config, flows_dir=flows), clock=clock).test_client())
    before = everything(redis_client)
    for to in ("38123", "38000"):
        again = retired.send(VOTERS[0], "oui", to=to, sid=sid)
        assert again.status_code == 200, again.data[:300]
        assert everything(redis_client) == before
