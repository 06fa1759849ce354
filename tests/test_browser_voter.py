"""In headless Chromium on a 360-px phone: the voter opens the link, reads their data, objects, erases."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from bot.web.voter import COOKIE
from tests.browser import MISSING, available, chromium, serve
from tests.conftest import SMS, answers

pytestmark = pytest.mark.skipif(not available(), reason=MISSING)

VOTER = "+33612340001"
CAMPAIGN = "presidentielle-2027"
PHONE_WIDTH = 360
WAIT = 10


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        as_phone(driver)
        yield driver


def as_phone(driver, scale: float = 1) -> None:
    """Make the page 360 CSS pixels wide, as a phone's: a headless window is never narrower than 500."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": PHONE_WIDTH, "height": 740, "deviceScaleFactor": scale, "mobile": True})


@pytest.fixture
def site(app, browser) -> Iterator[str]:
    browser.delete_all_cookies()
    with serve(app) as url:
        yield url


def link(sms: SMS, accord) -> str:
    """Take the voter through a consent question and a YES, then text MES DONNEES; return the link's path."""
    flow = accord.flows[CAMPAIGN]
    accord.store.claim(flow, VOTER, window_open=True)
    accord.store.record_sent(flow, VOTER, "SM" + "1" * 32, flow.texts.consent_request)
    sms.send(VOTER, "Oui", to=flow.sender)
    (text,) = answers(sms.send(VOTER, "MES DONNEES", to=flow.sender))
    return re.search(r"(/v/[A-Za-z0-9_-]{43}) ", text).group(1)


def heading(browser) -> str:
    """Read the page's heading in one script call: a page being replaced leaves no element to go stale."""
    return browser.execute_script("const h = document.querySelector('h1'); return h ? h.textContent : '';")


def luminance(css: str) -> float:
    red, green, blue = (int(part) / 255 for part in re.findall(r"\d+", css)[:3])
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (red, green, blue)]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def colours(browser, selector: str, background_of: str | None = None) -> tuple[str, str]:
    return tuple(browser.execute_script(
        "const s = getComputedStyle(document.querySelector(arguments[0]));"
        "const b = getComputedStyle(document.querySelector(arguments[1]));"
        "return [s.color, b.backgroundColor];", selector, background_of or selector))


def test_a_voter_reads_objects_and_erases_on_a_phone_sized_screen(site, browser, accord, sms: SMS):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    path = link(sms, accord)
    browser.get(site + path)
    assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "fr"
    browser.find_element(By.ID, "open").click()
    WebDriverWait(browser, WAIT).until(lambda b: b.current_url.endswith("/v/page"))

    # What is held, readable at 360 px: nothing wider than the screen, headings, French.
    assert browser.execute_script("return window.innerWidth") <= PHONE_WIDTH
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Vos données"
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "Claire Martin, candidate" in body and "la société DataVote (location de fichier)" in body
    assert "vous avez donné votre accord" in body and "vous avez écrit (accès à vos données)" in body
    assert accord.flows[CAMPAIGN].texts.consent_request in body
    for selector, background in (("p", "body"), ("button#object", None), ("button#erase", None)):
        assert contrast(*colours(browser, selector, background)) >= 4.5, selector
    # The browser holds a random session id, out of scripts' reach; never the number.
    (cookie,) = [c for c in browser.get_cookies() if c["name"] == COOKIE]
    assert cookie["httpOnly"] and VOTER[1:] not in cookie["value"] and not re.search(r"\d{9}", cookie["value"])

    browser.find_element(By.ID, "object").click()
    WebDriverWait(browser, WAIT).until(lambda b: "done=objection" in b.current_url)
    assert "Opposition enregistrée" in browser.find_element(By.CSS_SELECTOR, "[role=status]").text
    assert all(accord.store.state(flow, VOTER) == "opted_out" for flow in accord.flows.values())

    # Erasing needs the box ticked; its label ticks it.
    browser.find_element(By.CSS_SELECTOR, "label.confirm").click()
    assert browser.find_element(By.ID, "confirm").is_selected()
    browser.find_element(By.ID, "erase").click()
    WebDriverWait(browser, WAIT).until(lambda b: heading(b) == "Données effacées")
    assert accord.store.person(VOTER) == {}
    browser.get(site + "/v/page")
    assert browser.find_element(By.TAG_NAME, "h1").text == "Lien invalide ou expiré"
    browser.get(site + path)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Lien invalide ou expiré"
