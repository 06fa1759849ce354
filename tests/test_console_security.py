"""The console's defences: a trail no anonymous flood can empty, sign-in limits that count before they
check, safe redirects after sign-in, safety headers on every kind of response, and a role on every route."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from urllib.parse import urlencode

import pytest
import requests
from flask import Flask

from bot import audit, create_app
from bot.keys import failures_key, sign_in_failures_key
from bot.operators import MAX_FAILURES, VIEWER
from bot.web import WITHOUT_SIGN_IN
from bot.web.console import OPEN, SIGN_IN_LIMIT, VIEWER_MAY
from bot.web.csrf import SAFE
from tests.browser import serve
from tests.conftest import SMS, new_sid
from tests.test_console import PASSWORD, Console, actions

PUBLIC_URL = "https://accord.example.org"


@pytest.fixture
def console(client, operators) -> Console:
    return Console(client)


# The audit trail against a flood

def test_a_flood_of_failed_sign_ins_leaves_every_operator_action_in_the_trail(app, console, accord, clock):
    console.sign_in(address="192.0.2.1")
    console.post("/console/flows/demo/pause")
    console.post("/console/flows/demo/resume")
    flood = Console(app.test_client())  # anyone who can reach the form
    token, codes = flood.token(), Counter()
    for n in range(3_000):
        answer = flood.client.post("/console/login", data={"name": f"nobody{n}", "password": "guess",
                                                           "csrf_token": token},
                                   environ_base={"REMOTE_ADDR": f"203.0.113.{n % 6}"})
        codes[answer.status_code] += 1
    assert codes == {401: 6 * SIGN_IN_LIMIT.amount, 429: 3_000 - 6 * SIGN_IN_LIMIT.amount}
    assert actions(accord) == [("camille", "sign-in", ""), ("camille", "pause", "demo"),
                               ("camille", "resume", "demo")]
    counted = audit.failed_sign_ins(accord.store.redis, clock())
    assert len(counted) == 6 and sum(row.total for row in counted) == 3_000
    assert counted[0] == audit.FailedSignIns("203.0.113.0", SIGN_IN_LIMIT.amount, 0, 500 - SIGN_IN_LIMIT.amount)
    home = console.client.get("/console/").get_data(as_text=True)
    assert home.count('class="action-pause"') == 1 and home.count('class="action-resume"') == 1
    assert "203.0.113.5" in home


def test_failed_sign_ins_from_countless_addresses_take_bounded_room(accord, clock):
    sent = audit.ADDRESSES_PER_HOUR + 2_500
    with accord.store.redis.pipeline(transaction=False) as pipe:
        for n in range(sent):
            audit.failed_sign_in(pipe, clock(), f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}", "failed")
        pipe.execute()
    key = sign_in_failures_key(int(clock() // 3600))
    assert accord.store.redis.hlen(key) == audit.ADDRESSES_PER_HOUR + 1  # and one count for the rest
    rows = audit.failed_sign_ins(accord.store.redis, clock())
    assert rows[0] == audit.FailedSignIns(audit.OTHERS, 2_500, 0, 0) and sum(row.total for row in rows) == sent
    assert 0 < accord.store.redis.ttl(key) <= audit.FAILED_KEEP_DAYS * 86_400


# Sign-in limits, against a real server and parallel attempts

def sign_in_together(site: str, addresses: list[str], password: str = "guess") -> list[requests.Response]:
    """Post the sign-in form from each address at the same moment, each from its own browser session."""
    sessions = [requests.Session() for _ in addresses]
    tokens = [Console.token_in(session.get(f"{site}/console/login", timeout=10).text) for session in sessions]
    start, answers = threading.Barrier(len(addresses)), [None] * len(addresses)

    def attempt(index: int) -> None:
        start.wait()
        answers[index] = sessions[index].post(
            f"{site}/console/login", data={"name": "camille", "password": password, "csrf_token": tokens[index]},
            headers={"X-Forwarded-For": addresses[index]}, allow_redirects=False, timeout=120)

    threads = [threading.Thread(target=attempt, args=(index,)) for index in range(len(addresses))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def test_thirty_parallel_wrong_passwords_are_counted_before_any_is_checked(app, operators, accord, clock):
    with serve(app) as site:  # no PUBLIC_URL: the one proxy's X-Forwarded-For names the client
        answers = sign_in_together(site, [f"198.51.100.{n}" for n in range(30)])
    assert Counter(answer.status_code for answer in answers) == {401: MAX_FAILURES - 1, 429: 30 - MAX_FAILURES + 1}
    counted = audit.failed_sign_ins(accord.store.redis, clock())
    assert sum(row.failed for row in counted) == MAX_FAILURES  # checked: no more than the lock allows
    assert sum(row.locked for row in counted) == 30 - MAX_FAILURES  # refused unchecked
    assert actions(accord) == [("camille", "sign-ins locked", "")]


def test_one_address_is_throttled_and_cannot_lock_the_operator_out(app, operators, accord, clock):
    with serve(app) as site:
        answers = sign_in_together(site, ["203.0.113.9"] * 30)
        assert Counter(answer.status_code for answer in answers) == {401: SIGN_IN_LIMIT.amount,
                                                                     429: 30 - SIGN_IN_LIMIT.amount}
        throttled = [answer for answer in answers if answer.status_code == 429]
        assert all("Trop de tentatives de connexion depuis votre adresse" in answer.text for answer in throttled)
        assert all(0 < int(answer.headers["Retry-After"]) <= 3600 for answer in throttled)
        assert 'class="top"' in throttled[0].text  # the console's own page, not a bare error
        assert [(row.failed, row.throttled) for row in audit.failed_sign_ins(accord.store.redis, clock())] == [
            (SIGN_IN_LIMIT.amount, 30 - SIGN_IN_LIMIT.amount)]
        assert int(accord.store.redis.get(failures_key("camille"))) < MAX_FAILURES
        (elsewhere,) = sign_in_together(site, ["192.0.2.44"], password=PASSWORD)
        assert elsewhere.status_code == 302 and elsewhere.headers["Location"].endswith("/console/")
        (again,) = sign_in_together(site, ["203.0.113.9"], password=PASSWORD)
        assert again.status_code == 429  # the throttled address waits, whoever types there
    assert actions(accord) == [("camille", "sign-in", "")]


# Where a sign-in leads

@pytest.mark.parametrize("target", [
    "/console/\r\nSet-Cookie: taken=1", "/console/flows/demo\n", "/console/\x00", "/console/\t",
    "//evil.example/console/", "https://evil.example/console/", "/console\\..\\evil", "/elsewhere",
    "/consoleevil", "javascript:alert(1)", "/console/é",
])
def test_a_sign_in_with_a_bad_next_target_goes_home(console, target):
    answer = console.sign_in(path="/console/login?" + urlencode({"next": target}))
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/"


def test_a_sign_in_follows_a_next_target_in_the_console(console):
    answer = console.sign_in(path="/console/login?" + urlencode({"next": "/console/flows/demo?x=1"}))
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/flows/demo?x=1"


# Safety headers on every kind of response

def response_kinds(app: Flask, url: str = SMS.URL) -> dict[str, object]:
    """Fetch one response of each kind the app gives without a signed-in session."""
    client = app.test_client()
    sms = SMS(client)
    sms.URL = url  # the URL Twilio signs: PUBLIC_URL when set
    flow = app.extensions["accord"].flows["demo"]
    return {
        "static file": client.get("/static/accord.css"),
        "404 page": client.get("/no/such/page"),
        "405 page": client.get("/sms/inbound"),
        "redirect to sign-in": client.get("/console/"),
        "health check": client.get("/healthz"),
        "webhook TwiML": sms.send("+33612340001", "info", to=flow.sender, sid=new_sid()),
        "refused webhook": sms.post("/sms/inbound", {"Body": "x"}, signature="forged"),
        "sign-in page": client.get("/console/login"),
        "dev phone": client.get("/dev/phone"),
    }


def test_every_kind_of_response_carries_the_safety_headers(app, console):
    kinds = response_kinds(app)
    console.sign_in()
    kinds["console page"] = console.client.get("/console/flows/demo")
    kinds["403 page"] = Console(app.test_client()).client.post("/console/flows/demo/pause")  # no token: 400
    assert kinds["webhook TwiML"].status_code == 200 and kinds["405 page"].status_code == 405
    for kind, answer in kinds.items():
        headers = answer.headers
        assert headers["X-Content-Type-Options"] == "nosniff", kind
        assert headers["Referrer-Policy"] == "same-origin", kind
        assert headers["X-Frame-Options"] == "DENY", kind
        assert "Strict-Transport-Security" not in headers, kind  # plain http: no HSTS
        if answer.mimetype == "text/html":
            assert "default-src 'self'" in headers["Content-Security-Policy"], kind
    for kind in ("sign-in page", "redirect to sign-in", "console page", "dev phone"):
        assert kinds[kind].headers["Cache-Control"] == "no-store", kind
    assert "no-store" not in kinds["static file"].headers.get("Cache-Control", "")


def test_with_an_https_public_url_every_response_asks_for_https(config, clock, redis_client):
    app = create_app(dataclasses.replace(config, public_url=PUBLIC_URL), clock=clock)
    for kind, answer in response_kinds(app, PUBLIC_URL).items():
        assert answer.headers["Strict-Transport-Security"] == "max-age=31536000", kind
    assert response_kinds(app, PUBLIC_URL)["webhook TwiML"].status_code == 200


# Roles

def route_rules(app: Flask):
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.rpartition(".")[0] or None
        yield rule, blueprint, rule.build({argument: "demo" for argument in rule.arguments})[1]


def test_every_route_is_the_consoles_or_says_why_it_needs_no_operator(app):
    for rule, blueprint, _ in route_rules(app):
        assert rule.endpoint == "static" or blueprint == "console" or blueprint in WITHOUT_SIGN_IN, (
            f"{rule} ({rule.endpoint}): check the operator and role in its blueprint, or name the blueprint "
            "in bot.web.WITHOUT_SIGN_IN with the reason")


def test_signed_out_every_console_route_leads_to_the_sign_in(app, console):
    token = console.token()
    for rule, blueprint, path in route_rules(app):
        if blueprint != "console" or rule.endpoint in OPEN:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            answer = console.client.open(path, method=method, data={"csrf_token": token})
            assert answer.status_code == 302 and "/console/login" in answer.headers["Location"], (method, path)


def test_a_viewer_reads_every_console_page_and_changes_nothing(app, console, accord):
    console.sign_in("dominique")
    token = console.session_token()
    seen = Counter()
    rules = sorted(route_rules(app), key=lambda found: (found[0].endpoint in VIEWER_MAY,
                                                        found[0].endpoint == "console.logout"))  # signing out last
    for rule, blueprint, path in rules:
        if blueprint != "console" or rule.endpoint in OPEN:
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            answer = console.client.open(path, method=method, data={"csrf_token": token})
            if method in SAFE:
                assert answer.status_code == 200, (method, path)
            elif rule.endpoint in VIEWER_MAY:
                assert answer.status_code == 302, (method, path)
            else:
                page = answer.get_data(as_text=True)
                assert answer.status_code == 403 and 'id="forbidden"' in page and "seul un administrateur" in page, path
                seen["refused"] += 1
    assert seen["refused"] >= 2  # pause and resume at least
    assert not accord.store.is_paused(accord.flows["demo"])
    assert [action for _, action, _ in actions(accord)] == ["sign-in", "sign-out"]


def test_an_admin_may_make_every_console_change(app, console, accord):
    console.sign_in()
    for rule, blueprint, path in route_rules(app):
        if blueprint != "console" or rule.endpoint in OPEN | VIEWER_MAY:
            continue
        for method in sorted(rule.methods - SAFE):
            answer = console.post(path) if method == "POST" else console.client.open(path, method=method)
            assert answer.status_code == 302, (method, path)


def test_a_viewer_sees_no_pause_button_and_an_admin_does(console, operators):
    console.sign_in("dominique")
    page = console.client.get("/console/flows/demo").get_data(as_text=True)
    assert 'id="pause"' not in page and 'id="read-only"' in page and '<span class="badge role">lecteur</span>' in page
    assert 'id="failed-sign-ins"' not in console.client.get("/console/").get_data(as_text=True)  # admins only
    console.post("/console/logout")
    console.sign_in()
    page = console.client.get("/console/flows/demo").get_data(as_text=True)
    assert 'id="pause"' in page and 'id="read-only"' not in page


def test_a_role_change_applies_from_the_next_request(console, operators, accord):
    console.sign_in()
    operators.set_role("camille", VIEWER)
    assert console.post("/console/flows/demo/pause").status_code == 403
    assert not accord.store.is_paused(accord.flows["demo"])


def test_ipv6_clients_are_throttled_by_their_64_block(console):
    codes = [console.sign_in(password="guess", address=f"2001:db8:1:2::{n:x}").status_code
             for n in range(SIGN_IN_LIMIT.amount + 1)]
    assert codes == [401] * SIGN_IN_LIMIT.amount + [429]  # hopping addresses inside one block does not help
    assert console.sign_in(address="2001:db8:1:3::1").status_code == 302  # the next block is someone else
