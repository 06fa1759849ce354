"""In headless Chromium: the dev phone holds a conversation, the console signs in, shows, pauses and resumes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot import use
from bot.operators import VIEWER, Operators
from bot.rounds import Origin, start_round
from bot.sending import queue_for
from bot.web import dashboard
from tests.browser import MISSING, available, chromium, serve

pytestmark = pytest.mark.skipif(not available(), reason=MISSING)

VOTER = "+33612340001"
PASSWORD = "correct horse battery"
WAIT = 10


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


@pytest.fixture
def site(app, browser) -> Iterator[str]:
    browser.delete_all_cookies()  # cookies ignore ports: forget the previous test's server
    with serve(app) as url:
        yield url


def wait_for(browser, condition):
    """Wait until `condition` holds; an element read while the page it was on is being replaced is read again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT, ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def bubbles(browser) -> list[tuple[str, str]]:
    """Read the thread in one script call: it is redrawn as it updates, so elements go stale between calls."""
    return [tuple(pair) for pair in browser.execute_script(
        "return [...document.querySelectorAll('#thread .bubble')].map("
        "b => [b.classList.contains('voter') ? 'voter' : 'bot', b.querySelector('p').textContent]);")]


def test_the_dev_phone_shows_the_request_and_answering_oui_brings_confirmation_and_content(
        site, browser, accord, tmp_path: Path):
    from rq import SimpleWorker
    from selenium.webdriver.common.by import By

    flow = accord.flows["demo"]
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("telephone;prenom\n06 12 34 00 01;Camille\n07 12 34 00 02;Dominique\n", encoding="utf-8")
    origin = Origin(source_type="supporters", broker=flow.source, contract="", operator="camille",
                    file=contacts.name, imported_at="2026-12-01T09:00:00+00:00")
    use(accord)  # what a worker process does at start
    start_round(accord, flow, contacts, origin, rate=1000)
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)

    browser.get(f"{site}/dev/phone?phone=%2B33612340001&flow=demo")
    wait_for(browser, lambda b: bubbles(b) == [("bot", flow.texts.consent_request)])
    assert browser.find_element(By.ID, "state").text == "awaiting an answer"  # the browser asks for English

    browser.find_element(By.ID, "body").send_keys("oui")
    browser.find_element(By.ID, "send").click()
    wait_for(browser, lambda b: bubbles(b) == [("bot", flow.texts.consent_request), ("voter", "oui"),
                                               ("bot", flow.texts.confirmation), ("bot", flow.texts.content[0])])
    wait_for(browser, lambda b: b.find_element(By.ID, "state").text == "gave consent")
    assert accord.store.state(flow, VOTER) == "consented"
    assert browser.find_element(By.ID, "body").get_attribute("value") == ""


def test_in_the_dev_phone_mes_donnees_brings_a_link_that_opens_the_voters_page(site, browser, accord):
    from selenium.webdriver.common.by import By

    browser.get(f"{site}/dev/phone?phone=%2B33612340001&flow=demo")
    browser.find_element(By.ID, "body").send_keys("mes données")
    browser.find_element(By.ID, "send").click()
    link = wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#thread .bubble.transient a[href*='/v/']"))[0]
    href = link.get_attribute("href")
    # The link leads to the port `make run` serves (PORT); this test's server has a port of its own.
    assert href.startswith(f"http://127.0.0.1:{accord.config.port}/v/") and href in bubbles(browser)[-1][1]
    browser.get(site + urlsplit(href).path)  # as a voter's phone opens it: the page asks before using the link up
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "form button[type=submit]"))
    assert browser.execute_script("return document.documentElement.lang") == "fr"


def sign_in(browser, site: str, password: str, name: str = "camille") -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{site}/console/login")
    browser.find_element(By.NAME, "name").send_keys(name)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()


def test_the_console_refuses_a_wrong_password_and_signs_in_with_the_right_one(site, browser, accord):
    from selenium.webdriver.common.by import By

    Operators(accord.store.redis).add("camille", PASSWORD)
    sign_in(browser, site, "not the password")
    flash = wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".flash.error"))
    assert "Wrong name or password" in flash[0].text
    assert browser.current_url.startswith(f"{site}/console/login")

    sign_in(browser, site, PASSWORD)
    wait_for(browser, lambda b: b.current_url == f"{site}/console/")
    assert browser.find_element(By.CSS_SELECTOR, ".signout .who").text == "camille"
    assert "signed in" in browser.find_element(By.CSS_SELECTOR, "table.audit").text
    failed = browser.find_element(By.CSS_SELECTOR, "#failed-sign-ins table.failed tbody tr").text
    assert failed.split() == ["127.0.0.1", "1", "0", "0"]  # counted apart from the trail, for admins


def test_the_console_funnel_shows_what_the_store_holds_and_pause_resume_work(site, browser, accord):
    from selenium.webdriver.common.by import By

    flow = accord.flows["demo"]
    accord.store.count(flow, {"import:imported": 1_000_000, "sent": 987_654, "status:delivered": 950_000,
                              "answered": 420_000, "consented": 301_234, "declined": 80_000, "opted_out": 38_766})
    Operators(accord.store.redis).add("camille", PASSWORD)
    sign_in(browser, site, PASSWORD)
    wait_for(browser, lambda b: b.current_url == f"{site}/console/")
    browser.find_element(By.LINK_TEXT, "demo").click()

    shown = {g.get_attribute("data-stage"): g.find_element(By.CSS_SELECTOR, "text.value").text
             for g in browser.find_elements(By.CSS_SELECTOR, "#funnel g.stage")}
    held = dict(dashboard.stages(accord.store.funnel(flow)))
    assert shown == {stage: dashboard.count(value) for stage, value in held.items()}
    assert shown["imported"] == "1,000,000" and shown["consented"] == "301,234"  # in English, as the browser asks

    browser.find_element(By.ID, "pause").click()
    wait_for(browser, lambda b: b.find_elements(By.ID, "resume"))
    assert accord.store.is_paused(flow)
    browser.find_element(By.ID, "resume").click()
    wait_for(browser, lambda b: b.find_elements(By.ID, "pause"))
    assert not accord.store.is_paused(flow)


def test_a_console_post_without_the_csrf_token_is_refused(site, browser, accord):
    Operators(accord.store.redis).add("camille", PASSWORD)
    sign_in(browser, site, PASSWORD)
    wait_for(browser, lambda b: b.current_url == f"{site}/console/")
    status = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/console/flows/demo/pause', {method: 'POST', credentials: 'same-origin'})"
        ".then(answer => done(answer.status), () => done(0));")
    assert status == 400
    assert not accord.store.is_paused(accord.flows["demo"])


def test_a_viewer_sees_the_flow_without_pause_or_resume_and_an_admin_sees_them(site, browser, accord):
    from selenium.webdriver.common.by import By

    operators = Operators(accord.store.redis)
    operators.add("dominique", PASSWORD, VIEWER)
    operators.add("camille", PASSWORD)
    sign_in(browser, site, PASSWORD, "dominique")
    wait_for(browser, lambda b: b.current_url == f"{site}/console/")
    assert browser.find_element(By.CSS_SELECTOR, ".signout .role").text == "viewer"
    assert not browser.find_elements(By.ID, "failed-sign-ins")
    browser.find_element(By.LINK_TEXT, "demo").click()
    wait_for(browser, lambda b: b.find_elements(By.ID, "read-only"))
    assert not browser.find_elements(By.ID, "pause") and not browser.find_elements(By.ID, "resume")
    status = browser.execute_async_script(  # the form is hidden, and the action refused all the same
        "const done = arguments[arguments.length - 1];"
        "const form = new FormData(); form.append('csrf_token', arguments[0]);"
        "fetch('/console/flows/demo/pause', {method: 'POST', body: form, credentials: 'same-origin'})"
        ".then(answer => done(answer.status), () => done(0));",
        browser.find_element(By.CSS_SELECTOR, ".signout input[name=csrf_token]").get_attribute("value"))
    assert status == 403 and not accord.store.is_paused(accord.flows["demo"])

    browser.find_element(By.CSS_SELECTOR, ".signout button").click()
    wait_for(browser, lambda b: b.current_url.startswith(f"{site}/console/login"))
    sign_in(browser, site, PASSWORD)
    wait_for(browser, lambda b: b.current_url == f"{site}/console/")
    browser.get(f"{site}/console/flows/demo")
    assert browser.find_element(By.ID, "pause").is_displayed() and not browser.find_elements(By.ID, "read-only")


@pytest.fixture
def french(browser) -> Iterator[None]:
    """Have the browser ask for French, as a French operator's does, then for English again."""
    agent = browser.execute_script("return navigator.userAgent")
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setUserAgentOverride", {"userAgent": agent, "acceptLanguage": "fr-FR,fr"})
    yield
    browser.execute_cdp_cmd("Network.setUserAgentOverride", {"userAgent": agent, "acceptLanguage": "en-GB,en"})


def test_in_french_the_dev_phone_and_the_console_speak_french_until_the_operator_picks_english(
        site, browser, accord, french):
    from selenium.webdriver.common.by import By

    flow = accord.flows["demo"]
    accord.store.claim(flow, VOTER, window_open=True)
    sid = accord.gateway.send(VOTER, flow.texts.consent_request, sender=flow.sender)
    accord.store.record_sent(flow, VOTER, sid, flow.texts.consent_request)
    accord.store.count(flow, {"import:imported": 1_000_000})

    browser.get(f"{site}/dev/phone?phone=%2B33612340001&flow=demo")
    assert browser.execute_script("return document.documentElement.lang") == "fr"
    assert browser.find_element(By.TAG_NAME, "h1").text == "Téléphone de test"
    wait_for(browser, lambda b: b.find_element(By.ID, "state").text == "en attente de réponse")
    browser.find_element(By.ID, "body").send_keys("oui")
    browser.find_element(By.ID, "send").click()
    wait_for(browser, lambda b: b.find_element(By.ID, "state").text == "a donné son accord")
    metas = [meta.text for meta in browser.find_elements(By.CSS_SELECTOR, "#thread .bubble small")]
    assert metas[0].endswith("envoyé par le bot") and metas[1].endswith("écrit par l'électeur")

    Operators(accord.store.redis).add("camille", PASSWORD)
    sign_in(browser, site, "not the password")
    flash = wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".flash.error"))
    assert flash[0].text == "Nom ou mot de passe erroné."
    sign_in(browser, site, PASSWORD)
    wait_for(browser, lambda b: b.current_url == f"{site}/console/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Campagnes"
    assert "s'est connecté" in browser.find_element(By.CSS_SELECTOR, "table.audit").text
    browser.find_element(By.LINK_TEXT, "demo").click()
    stage = browser.find_element(By.CSS_SELECTOR, '#funnel g.stage[data-stage="imported"]')
    assert stage.find_element(By.CSS_SELECTOR, "text.label").text == "importés"
    assert stage.find_element(By.CSS_SELECTOR, "text.value").text == "1\u202f000\u202f000"
    ledger = browser.find_element(By.ID, "ledger").text
    assert "a répondu OUI" in ledger and "en attente de réponse → a donné son accord" in ledger

    browser.find_element(By.ID, "lang-en").click()  # the operator's choice, over the browser's
    wait_for(browser, lambda b: b.execute_script("return document.documentElement.lang") == "en")
    assert browser.current_url == f"{site}/console/flows/demo"
    assert "answered YES" in browser.find_element(By.ID, "ledger").text
    browser.find_element(By.CSS_SELECTOR, ".signout button").click()
    wait_for(browser, lambda b: b.current_url.startswith(f"{site}/console/login"))
    assert browser.execute_script("return document.documentElement.lang") == "fr"  # signed out: the browser's
    sign_in(browser, site, PASSWORD)
    wait_for(browser, lambda b: b.current_url == f"{site}/console/")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Flows"  # kept in the account
    assert not browser.find_element(By.ID, "lang-fr").get_attribute("disabled")
    browser.find_element(By.ID, "lang-fr").click()
    wait_for(browser, lambda b: b.find_element(By.TAG_NAME, "h1").text == "Campagnes")
