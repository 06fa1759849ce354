"""A voter texts MES DONNEES and sees, from the phone that was texted, what is held on the number.

Everything goes through the signed webhook and the real app on a real Redis: the link arrives in
the TwiML answer, opens once, then a short page session shows the data and its two buttons work.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re

import pytest
from flask.testing import FlaskClient

from bot import audit, create_app, rights_requests, voter_access
from bot.conversation import handle_inbound
from bot.keys import voter_keys_key
from bot.store import Store
from bot.voter_access import CLIENT_REQUESTS, IDENTITY, LINKS_AN_HOUR
from bot.web.voter import COOKIE
from tests.conftest import PARIS, SMS, Clock, Voter, answers, new_sid
from tests.test_erasure import flows_dir, key_contents, services

VOTER, OTHER = "+33612340001", "+33612340002"
LINK = re.compile(r"http://127\.0\.0\.1:8000(/v/[A-Za-z0-9_-]+) ")
CAMPAIGN = "presidentielle-2027"  # sender 38123, another controller than demo's (38000)


def link_in(texts: list[str]) -> str:
    """Return the path of the one link the answer carries."""
    (path,) = [match.group(1) for text in texts for match in LINK.finditer(text)]
    return path


def ask_link(sms: SMS, phone: str = VOTER, body: str = "MES DONNEES", **extra: str) -> str:
    return link_in(answers(sms.send(phone, body, **extra)))


def csrf(client: FlaskClient, path: str = "/v/page") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


def open_page(client: FlaskClient, path: str):
    """Do what the voter does: follow the link, press the button; return the answer to the press."""
    shown = client.get(path)
    assert shown.status_code == 200, shown.status_code
    token = re.search(r'name="csrf_token" value="([^"]+)"', shown.get_data(as_text=True)).group(1)
    return client.post(path, data={"csrf_token": token})


def voter_client(app) -> FlaskClient:
    return app.test_client()


def asked(accord, flow_id: str, phone: str = VOTER) -> None:
    flow = accord.flows[flow_id]
    assert accord.store.claim(flow, phone, window_open=True).dest == "asked"
    accord.store.record_sent(flow, phone, "SM" + phone[-8:] * 4, flow.texts.consent_request)


@pytest.mark.parametrize("body", ["MES DONNEES", "Mes données", "DONNEES", "données", "DATA", "my data",
                                  "Mes données svp", "Quelles données avez-vous sur moi ?"])
def test_a_rights_keyword_brings_a_link_naming_the_controller_and_stop(accord, sms: SMS, body: str):
    asked(accord, "demo")
    texts = answers(sms.send(VOTER, body))
    assert len(texts) == 1
    assert "Liste Demo" in texts[0] and "STOP" in texts[0] and "15 min" in texts[0]
    assert link_in(texts).startswith("/v/")
    assert accord.store.state(accord.flows["demo"], VOTER) == "asked"  # the question stays open
    assert accord.store.person(VOTER)["demo"][-1]["event"] == "in:DATA"


def test_the_request_goes_to_the_register_with_its_identity_check_and_deadline(accord, sms: SMS, redis_client):
    ask_link(sms)
    (request,) = rights_requests.all_requests(redis_client)
    assert (request.kind, request.channel, request.identity) == ("access", "sms", IDENTITY)
    assert request.subject == accord.store.digest(VOTER) and request.is_open
    assert request.received == dt.date(2026, 12, 1) and request.deadline == dt.date(2027, 1, 1)


def test_the_token_is_held_only_as_its_hash(accord, sms: SMS, redis_client):
    token = ask_link(sms).rpartition("/")[2]
    held = [value for key in redis_client.scan_iter() for value in (key, *key_contents(redis_client, key))]
    assert not any(token.encode() in value for value in held)
    assert any(hashlib.sha256(token.encode()).hexdigest().encode() in value for value in held)


@pytest.mark.parametrize("body", ["Effacez mes données", "efface mes donnees", "STOP mes données", "DATA STOP",
                                  "supprimer mes données personnelles"])
def test_an_objection_that_mentions_data_stays_an_objection(accord, sms: SMS, body: str):
    texts = answers(sms.send(VOTER, body))
    assert texts == [accord.flows["demo"].texts.stopped]
    assert accord.store.state(accord.flows["demo"], VOTER) == "opted_out"


def test_the_link_opens_once_and_a_preview_does_not_use_it(app, sms: SMS):
    path = ask_link(sms)
    voter = voter_client(app)
    assert voter.get(path).status_code == 200  # a link preview fetching it
    opened = open_page(voter, path)
    assert opened.status_code == 303 and opened.headers["Location"].endswith("/v/page")
    assert COOKIE in opened.headers["Set-Cookie"] and "HttpOnly" in opened.headers["Set-Cookie"]
    assert VOTER not in opened.headers["Set-Cookie"]
    assert voter.get("/v/page").status_code == 200
    again = voter.post(path, data={"csrf_token": csrf(voter)})
    assert again.status_code == 404
    assert voter_client(app).get(path).status_code == 404


def test_unknown_used_and_expired_links_all_look_the_same(app, sms: SMS, clock: Clock):
    used, expired = ask_link(sms), ask_link(sms)
    open_page(voter_client(app), used)
    clock.advance(minutes=15, seconds=1)
    unknown = "/v/" + "A" * 43
    answers_ = [voter_client(app).get(path) for path in (used, expired, unknown, "/v/not-a-token")]
    assert {response.status_code for response in answers_} == {404}
    assert len({response.get_data() for response in answers_}) == 1


def test_links_and_page_sessions_expire_by_the_injected_clock(app, sms: SMS, clock: Clock):
    path = ask_link(sms)
    clock.advance(minutes=14, seconds=59)
    voter = voter_client(app)
    assert open_page(voter, path).status_code == 303
    assert voter.get("/v/page").status_code == 200
    clock.advance(seconds=voter_access.PAGE_TTL)
    assert voter.get("/v/page").status_code == 404
    late = ask_link(sms)
    clock.advance(minutes=15)
    assert voter_client(app).get(late).status_code == 404


def test_a_page_shows_only_its_own_number_and_acts_only_on_it(app, accord, sms: SMS, redis_client):
    sms.send(OTHER, "Bonjour, qui est-ce ?")
    mine, theirs = voter_client(app), voter_client(app)
    open_page(mine, ask_link(sms, VOTER))
    open_page(theirs, ask_link(sms, OTHER))
    page = mine.get("/v/page").get_data(as_text=True)
    assert "MES DONNEES" in page and "qui est-ce" not in page and OTHER not in page
    # Nothing a voter sends names a number: a forged one is ignored, the session's own is erased.
    mine.post("/v/page/erase", data={"csrf_token": csrf(mine), "confirm": "yes", "phone": OTHER})
    assert accord.store.person(VOTER) == {}
    assert accord.store.person(OTHER)["demo"]
    assert "qui est-ce" in theirs.get("/v/page").get_data(as_text=True)
    # Nor does a cookie another session made, or one made up, open a page.
    forged = voter_client(app)
    forged.set_cookie(COOKIE, "A" * 43, path="/v")
    assert forged.get("/v/page").status_code == 404
    assert forged.post("/v/page/object", data={"csrf_token": csrf(forged, ask_link(sms, OTHER))}).status_code == 404
    assert not accord.store.is_suppressed(accord.flows["demo"], OTHER)


def test_links_are_rate_limited_per_number(sms: SMS, redis_client, accord):
    for _ in range(LINKS_AN_HOUR):
        ask_link(sms)
    (wait,) = answers(sms.send(VOTER, "MES DONNEES"))
    assert "réessayez plus tard" in wait and "STOP" in wait and "/v/" not in wait
    assert answers(sms.send(VOTER, "MES DONNEES")) == []  # then silence
    assert ask_link(sms, OTHER)  # another number is not held back
    assert len(rights_requests.all_requests(redis_client)) == LINKS_AN_HOUR + 1
    assert any(entry.action.startswith("voter link refused") for entry in audit.accesses(redis_client))


def test_page_requests_are_rate_limited_per_client(app, sms: SMS):
    path = ask_link(sms)
    guesser = voter_client(app)
    for n in range(CLIENT_REQUESTS):
        assert guesser.get(f"/v/{n:043d}").status_code == 404
    assert guesser.get(path).status_code == 429  # even the right link, from this address, now
    elsewhere = app.test_client()
    elsewhere.environ_base["REMOTE_ADDR"] = "127.0.0.2"
    assert open_page(elsewhere, path).status_code == 303


def test_a_text_sent_again_gets_no_link_and_opens_no_request(app, sms: SMS, redis_client):
    """The answer goes to whoever posted the request: one replaying a captured, signed text would get the
    voter's page. A retry whose first answer never arrived gets nothing either: the voter texts again."""
    sid = new_sid()
    first = ask_link(sms, sid=sid)
    assert answers(sms.send(VOTER, "MES DONNEES", sid=sid)) == []
    assert len(rights_requests.all_requests(redis_client)) == 1
    assert open_page(voter_client(app), first).status_code == 303  # answers the request


def test_opening_the_page_answers_the_request_and_logs_the_access(app, accord, sms: SMS, redis_client):
    voter = voter_client(app)
    open_page(voter, ask_link(sms))
    assert voter.get("/v/page").status_code == 200
    (request,) = rights_requests.all_requests(redis_client)
    assert not request.is_open and request.outcome == "shown on the voter's page"
    shown = [entry for entry in audit.accesses(redis_client) if entry.action == "person show (voter page)"]
    assert shown and shown[0].subject == accord.store.digest(VOTER) and shown[0].request == request.ref


def test_the_page_shows_states_events_with_times_sources_and_texts_sent(app, accord, sms: SMS):
    asked(accord, CAMPAIGN)
    sms.send(VOTER, "OUI", to="38123")
    voter = voter_client(app)
    open_page(voter, ask_link(sms, to="38123"))
    page = voter.get("/v/page").get_data(as_text=True)
    assert '<html lang="fr">' in page and "+33 6 •• •• •• 01" in page
    assert "Claire Martin, candidate" in page and "la société DataVote (location de fichier)" in page
    assert "vous avez donné votre accord" in page and "01/12/2026 10:00" in page
    flow = accord.flows[CAMPAIGN]
    for text in (flow.texts.consent_request, flow.texts.confirmation, flow.texts.content[0]):
        assert text.replace("'", "&#39;") in page


def test_the_page_speaks_english_for_an_english_flow(config, clock: Clock, redis_client, tmp_path):
    accord, sms = services(config, clock, flows_dir(tmp_path, "flows", alpha='language = "en"'))
    texts = answers(sms.send(VOTER, "my data", to="38000"))
    assert "link valid 15 min" in texts[0] and "STOP" in texts[0]
    voter = sms.client.application.test_client()
    open_page(voter, link_in(texts))
    page = voter.get("/v/page").get_data(as_text=True)
    assert '<html lang="en">' in page and "Your data" in page and "you wrote (access to your data)" in page


def test_objecting_on_the_page_stops_every_flow_on_every_sender(app, accord, sms: SMS, redis_client):
    asked(accord, CAMPAIGN)
    sms.send(VOTER, "OUI", to="38123")
    voter = voter_client(app)
    open_page(voter, ask_link(sms))
    done = voter.post("/v/page/object", data={"csrf_token": csrf(voter)})
    assert done.headers["Location"].endswith("done=objection")
    for flow in accord.flows.values():
        assert accord.store.state(flow, VOTER) == "opted_out"
        assert accord.store.is_suppressed(flow, VOTER)
        assert accord.store.admit(flow, [VOTER], dry_run=True) == "s"
    events = [entry["event"] for entries in accord.store.person(VOTER).values() for entry in entries]
    assert "stop:voter-page" in events
    objection = [r for r in rights_requests.all_requests(redis_client) if r.kind == "objection"]
    assert [(r.channel, r.identity, r.is_open) for r in objection] == [("page", IDENTITY, False)]
    assert "every sender" in objection[0].outcome
    assert "Opposition enregistrée" in voter.get(done.headers["Location"]).get_data(as_text=True)


def test_erasing_on_the_page_leaves_only_the_hmac_and_no_link(app, accord, sms: SMS, redis_client):
    asked(accord, "demo")
    spare = ask_link(sms)  # another link, never used: it names the number too
    voter = voter_client(app)
    open_page(voter, ask_link(sms))
    unconfirmed = voter.post("/v/page/erase", data={"csrf_token": csrf(voter)})
    assert unconfirmed.headers["Location"].endswith("done=confirm") and accord.store.person(VOTER)
    erased = voter.post("/v/page/erase", data={"csrf_token": csrf(voter), "confirm": "yes"})
    assert erased.status_code == 200 and "Données effacées" in erased.get_data(as_text=True)
    held = [(key, value) for key in redis_client.scan_iter() for value in (key, *key_contents(redis_client, key))]
    assert [key for key, value in held if VOTER.encode() in value] == []
    assert not redis_client.exists(voter_keys_key(accord.store.digest(VOTER)))
    assert accord.store.is_suppressed(accord.flows["demo"], VOTER)
    assert voter.get("/v/page").status_code == 404 and voter_client(app).get(spare).status_code == 404
    erasure = [r for r in rights_requests.all_requests(redis_client) if r.kind == "erasure"]
    assert [(r.channel, r.is_open) for r in erasure] == [("page", False)] and "only the suppression HMAC" in \
        erasure[0].outcome
    assert any(e.action == "person erase (voter page)" and e.request == erasure[0].ref
               for e in audit.accesses(redis_client))


def test_the_link_is_answered_in_electoral_silence_and_at_night_like_help(accord, sms: SMS, clock: Clock):
    flow = accord.flows["demo"]
    for moment in (dt.datetime(2030, 6, 8, 12, 0, tzinfo=PARIS), dt.datetime(2026, 12, 2, 3, 0, tzinfo=PARIS)):
        clock.set(moment)
        assert not flow.is_open(clock(), "")
        assert answers(sms.send(OTHER, "AIDE")) == [flow.texts.help]
        assert ask_link(sms)


def test_the_link_arrives_through_each_gateway_and_opens(provider, config, clock: Clock, redis_client):
    config = provider.configure(config)
    app = create_app(config, gateway=provider.gateway(config), clock=clock)
    reply = Voter(provider, app.test_client()).send(VOTER, "MES DONNEES")
    assert reply.status_code == 200
    (text,) = reply.texts
    assert "Liste Demo" in text and "STOP" in text
    assert open_page(voter_client(app), link_in([text])).status_code == 303


def test_where_no_page_is_served_no_link_is_given(accord, redis_client, clock: Clock):
    """A process without the voter's pages (a worker) has nowhere to send a voter: no link, no key."""
    bare = Store(redis_client, accord.config.suppression_key, clock=clock, flows=accord.flows)
    outcome = handle_inbound(bare, accord.flows_for("38000"), phone=VOTER, body="DONNEES", message_sid=new_sid())
    assert outcome.texts == ()
    assert not list(redis_client.scan_iter("accord:voter-*"))


def test_the_link_leads_to_the_public_address_when_one_is_set(config, clock: Clock, redis_client):
    app = create_app(dataclasses.replace(config, public_url="https://sms.example.org"), clock=clock)
    accord = app.extensions["accord"]
    outcome = handle_inbound(accord.store, accord.flows_for("38000"), phone=VOTER, body="DONNEES",
                             message_sid=new_sid())
    (text,) = outcome.texts
    path = re.search(r"https://sms\.example\.org(/v/[A-Za-z0-9_-]{43}) ", text).group(1)
    voter = app.test_client()
    shown = voter.get(path)  # behind a proxy that ends TLS: the app sees plain HTTP
    token = re.search(r'name="csrf_token" value="([^"]+)"', shown.get_data(as_text=True)).group(1)
    opened = voter.post(path, data={"csrf_token": token})
    assert opened.status_code == 303 and "Secure" in opened.headers["Set-Cookie"]


def test_the_dev_phone_gets_the_link(client, app):
    page = client.get("/dev/phone").get_data(as_text=True)
    token = re.search(r'data-csrf="([^"]+)"', page).group(1)
    sent = client.post("/dev/phone/send", data={"phone": VOTER, "flow": "demo", "body": "mes données"},
                       headers={"X-CSRF-Token": token})
    assert sent.status_code == 200
    assert open_page(voter_client(app), link_in(sent.json["replies"])).status_code == 303


def test_the_pages_load_nothing_from_elsewhere_and_are_never_cached(app, sms: SMS):
    voter = voter_client(app)
    opened = open_page(voter, ask_link(sms))
    for response in (opened, voter.get("/v/page"), voter.get("/v/" + "A" * 43)):
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "no-store"
    assert "<script" not in voter.get("/v/page").get_data(as_text=True)
