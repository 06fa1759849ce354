"""In headless Chromium on a 360-px phone: the console's charts fit, and the dev phone says when the window opens."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from bot.operators import Operators
from tests.browser import MISSING, available, chromium, serve
from tests.conftest import PARIS
from tests.test_browser import wait_for

pytestmark = pytest.mark.skipif(not available(), reason=MISSING)

PHONE_WIDTH = 360
PASSWORD = "correct horse battery"
VOTER = "+33612340001"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        # A headless window is never narrower than 500: make the page 360 CSS pixels wide, as a phone's.
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": PHONE_WIDTH, "height": 740, "deviceScaleFactor": 1, "mobile": True})
        yield driver


@pytest.fixture
def site(app, browser) -> Iterator[str]:
    browser.delete_all_cookies()
    with serve(app) as url:
        yield url


def sideways(browser) -> int:
    """Return by how many CSS pixels the page is wider than the screen (0: no sideways scrolling)."""
    return browser.execute_script("return document.scrollingElement.scrollWidth - window.innerWidth")


def test_at_360_px_the_flow_page_and_its_charts_fit_the_screen_with_readable_labels(site, browser, accord):
    from selenium.webdriver.common.by import By

    flow = accord.flows["demo"]
    accord.store.count(flow, {"import:imported": 1_000_000, "sent": 987_654, "status:delivered": 950_000,
                              "answered": 420_000, "consented": 301_234, "declined": 80_000, "opted_out": 38_766})
    Operators(accord.store.redis).add("camille", PASSWORD, "viewer")
    browser.get(f"{site}/console/login")
    browser.find_element(By.NAME, "name").send_keys("camille")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for(browser, lambda b: b.current_url == f"{site}/console/")
    browser.get(f"{site}/console/flows/demo")

    assert browser.execute_script("return window.innerWidth") == PHONE_WIDTH
    assert sideways(browser) <= 0
    for chart in browser.find_elements(By.CSS_SELECTOR, "svg.chart"):
        card = chart.find_element(By.XPATH, "./ancestor::section[1]")
        assert chart.rect["width"] <= card.rect["width"]
    # Scaled down, the labels stay readable: at least 10 CSS pixels high on the phone's screen.
    heights = browser.execute_script(
        "return [...document.querySelectorAll('svg.chart text')].filter(t => getComputedStyle(t).display != 'none')"
        ".map(t => t.getBoundingClientRect().height);")
    assert heights and min(heights) >= 10, heights


def test_at_360_px_the_dev_phone_says_the_window_is_shut_and_when_it_opens(site, browser, accord, clock):
    from selenium.webdriver.common.by import By

    flow = accord.flows["demo"]
    outcome = accord.store.claim(flow, VOTER, window_open=True)
    accord.store.record_sent(flow, VOTER, accord.gateway.send(VOTER, outcome.texts[0], sender=flow.sender),
                             outcome.texts[0])
    clock.set(dt.datetime(2026, 12, 2, 3, 0, tzinfo=PARIS))  # the demo flow sends 07:00-23:00
    browser.get(f"{site}/dev/phone?phone=%2B33612340001&flow=demo")
    note = wait_for(browser, lambda b: b.find_element(By.ID, "window").text)
    assert "(before sending hours)" in note and "Dec 2, 2026 07:00" in note

    browser.find_element(By.ID, "body").send_keys("oui")
    browser.find_element(By.ID, "send").click()
    wait_for(browser, lambda b: "«" in b.find_element(By.ID, "window").text)
    note = browser.find_element(By.ID, "window").text
    assert flow.texts.content[0] in note and "Dec 2, 2026 07:00" in note
    assert sideways(browser) <= 0
