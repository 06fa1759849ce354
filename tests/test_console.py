"""The operators' console: only signed-in operators, every form CSRF-checked, every action audited."""

from __future__ import annotations

import re

import pytest
from flask.testing import FlaskClient

from bot import audit
from bot.keys import failures_key
from bot.operators import LOCK_SECONDS, MAX_FAILURES
from tests.conftest import PASSWORD, SMS

VOTER = "+33612340001"


class Console:
    """Sign in and post forms the way the browser does: with the session's CSRF token."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    @staticmethod
    def token_in(page: str) -> str:
        """Read the CSRF token a page's forms carry."""
        return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    def token(self) -> str:
        return self.token_in(self.client.get("/console/login").get_data(as_text=True))

    def session_token(self) -> str:
        with self.client.session_transaction() as session:
            return session["csrf"]

    def sign_in(self, name: str = "camille", password: str = PASSWORD, *, address: str = "127.0.0.1",
                path: str = "/console/login"):
        """Post the sign-in form as a browser at `address` would."""
        return self.client.post(path, data={"name": name, "password": password, "csrf_token": self.token()},
                                environ_base={"REMOTE_ADDR": address})

    def post(self, path: str, **data: str):
        return self.client.post(path, data={**data, "csrf_token": self.session_token()})


@pytest.fixture
def console(client, operators) -> Console:
    return Console(client)


def actions(accord) -> list[tuple[str, str, str]]:
    return [(entry.operator, entry.action, entry.flow) for entry in reversed(audit.latest(accord.store.redis))]


def test_pages_need_a_signed_in_operator(client, operators):
    for path in ("/console/", "/console/flows/demo"):
        answer = client.get(path)
        assert answer.status_code == 302 and "/console/login" in answer.headers["Location"]


def test_an_operator_signs_in_and_sees_the_flows(console, accord):
    answer = console.sign_in()
    assert answer.status_code == 302
    page = console.client.get("/console/").get_data(as_text=True)
    assert "demo" in page and "presidentielle-2027" in page and "camille" in page
    assert actions(accord) == [("camille", "sign-in", "")]


def test_a_wrong_password_is_refused_and_counted_for_its_address_apart_from_the_trail(console, accord, clock):
    answer = console.sign_in(password="not the password", address="198.51.100.7")
    assert answer.status_code == 401 and "Nom ou mot de passe erroné" in answer.get_data(as_text=True)
    assert console.client.get("/console/").status_code == 302
    assert actions(accord) == []
    assert audit.failed_sign_ins(accord.store.redis, clock()) == [audit.FailedSignIns("198.51.100.7", 1, 0, 0)]
    console.sign_in(address="192.0.2.1")
    home = console.client.get("/console/").get_data(as_text=True)
    assert "Connexions échouées, dernières 24 heures" in home and "<td>198.51.100.7</td>" in home


def test_repeated_failures_lock_the_account_even_for_the_right_password(console, accord, operators, clock):
    codes = [console.sign_in(password="guess", address=f"198.51.100.{n % 4}").status_code  # one address alone
             for n in range(MAX_FAILURES)]  # would meet its throttle first
    assert codes == [401] * (MAX_FAILURES - 1) + [429]  # the last one checked locks the name
    answer = console.sign_in(address="192.0.2.1")
    assert answer.status_code == 429 and "Trop de connexions échouées" in answer.get_data(as_text=True)
    assert console.client.get("/console/").status_code == 302
    assert 0 < accord.store.redis.ttl(failures_key("camille")) <= LOCK_SECONDS
    assert actions(accord) == [("camille", "sign-ins locked", "")]  # once, in the trail: the name exists
    assert audit.failed_sign_ins(accord.store.redis, clock())[0] == audit.FailedSignIns("198.51.100.0", 5, 0, 0)
    assert audit.FailedSignIns("192.0.2.1", 0, 1, 0) in audit.failed_sign_ins(accord.store.redis, clock())
    accord.store.redis.delete(failures_key("camille"))  # what the lock's expiry does at the end of the hour
    assert console.sign_in(address="192.0.2.1").status_code == 302


def test_unknown_names_fail_like_wrong_passwords(console):
    answer = console.sign_in(name="nobody")
    assert answer.status_code == 401 and "Nom ou mot de passe erroné" in answer.get_data(as_text=True)


def test_a_post_without_the_csrf_token_is_refused(console, accord):
    console.sign_in()
    flow = accord.flows["demo"]
    assert console.client.post("/console/flows/demo/pause").status_code == 400
    assert console.client.post("/console/flows/demo/pause", data={"csrf_token": "forged"}).status_code == 400
    assert not accord.store.is_paused(flow)
    assert console.client.post("/console/login", data={"name": "camille", "password": PASSWORD}).status_code == 400


def test_pause_and_resume_act_on_the_store_and_are_audited(console, accord):
    console.sign_in()
    flow = accord.flows["demo"]
    assert console.post("/console/flows/demo/pause").status_code == 302
    assert accord.store.is_paused(flow)
    assert 'id="resume"' in console.client.get("/console/flows/demo").get_data(as_text=True)
    assert console.post("/console/flows/demo/resume").status_code == 302
    assert not accord.store.is_paused(flow)
    console.post("/console/logout")
    assert actions(accord) == [("camille", "sign-in", ""), ("camille", "pause", "demo"),
                               ("camille", "resume", "demo"), ("camille", "sign-out", "")]
    assert console.client.get("/console/").status_code == 302
    page = Console(console.client)
    page.sign_in()
    home = page.client.get("/console/").get_data(as_text=True)
    assert home.count('class="action-pause"') == 1 and home.count('class="action-sign-out"') == 1


def test_a_removed_operator_is_signed_out(console, operators):
    console.sign_in()
    operators.remove("camille")
    assert console.client.get("/console/").status_code == 302


def test_the_flow_page_shows_the_store_counters_and_masks_numbers(console, accord, sms: SMS):
    flow = accord.flows["demo"]
    accord.store.claim(flow, VOTER, window_open=True)
    sms.send(VOTER, "oui", to=flow.sender)
    accord.store.count(flow, {"import:imported": 1_234_567})
    console.sign_in()
    page = console.client.get("/console/flows/demo").get_data(as_text=True)
    assert 'data-stage="imported" data-value="1234567"' in page
    assert 'data-stage="consented" data-value="1"' in page and 'data-stage="answered" data-value="1"' in page
    assert "+33 6 •• •• •• 01" in page and VOTER not in page and "612340001" not in page
    assert 'class="hour"' in page  # the answer, in its hour


def test_pages_load_nothing_from_elsewhere(console):
    console.sign_in()
    answer = console.client.get("/console/flows/presidentielle-2027")
    assert "default-src 'self'" in answer.headers["Content-Security-Policy"]
    assert not re.search(r'(src|href)="(https?:)?//', answer.get_data(as_text=True))


def test_session_cookie_is_http_only_and_same_site(console):
    answer = console.sign_in()
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_answers_are_counted_per_hour_and_each_number_answers_a_question_once(accord, sms: SMS, clock):
    flow = accord.flows["demo"]
    accord.store.claim(flow, VOTER, window_open=True)
    sms.send(VOTER, "Qui êtes-vous ?", to=flow.sender)  # HELP leaves the question open
    assert accord.store.funnel(flow).get("answered", 0) == 0
    sms.send(VOTER, "oui", to=flow.sender)
    clock.advance(hours=1)
    sms.send(VOTER, "non", to=flow.sender)  # withdrawing consent is not a second answer to the question
    funnel = accord.store.funnel(flow)
    hour = int(clock() // 3600)
    assert funnel["answered"] == 1
    assert (funnel[f"answers:{hour - 1}"], funnel[f"answers:{hour}"]) == (2, 1)


def test_after_sign_out_a_copy_of_the_session_cookie_is_useless(console, app):
    console.sign_in()
    stolen = console.client.get_cookie("accord_session").value
    thief = app.test_client()
    thief.set_cookie("accord_session", stolen)
    assert thief.get("/console/").status_code == 200
    console.post("/console/logout")
    assert thief.get("/console/").status_code == 302
