"""In headless Chromium: an admin opens one voter's file from the console, masked, then shows the whole number."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot import audit
from bot.operators import VIEWER, Operators
from bot.web import voter_file
from tests.browser import MISSING, available, chromium, serve
from tests.conftest import SMS
from tests.test_browser import PASSWORD, sign_in, wait_for

pytestmark = pytest.mark.skipif(not available(), reason=MISSING)

VOTER = "+33612340001"
MASKED = "+33 6 •• •• •• 01"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


@pytest.fixture
def site(app, browser, accord, client) -> Iterator[str]:
    operators = Operators(accord.store.redis)
    operators.add("camille", PASSWORD)
    operators.add("dominique", PASSWORD, VIEWER)
    flow = accord.flows["demo"]
    assert accord.store.claim(flow, VOTER, window_open=True).dest == "asked"
    for body in ("oui", "STOP"):
        SMS(client).send(VOTER, body, to=flow.sender)
    browser.delete_all_cookies()  # cookies ignore ports: forget the previous test's server
    with serve(app) as url:
        yield url


def test_an_admin_opens_a_voters_file_masked_then_shows_the_number_and_the_url_never_holds_it(site, browser, accord):
    from selenium.webdriver.common.by import By

    sign_in(browser, site, PASSWORD)
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".signout .who"))
    browser.find_element(By.CSS_SELECTOR, "nav a[href='/console/voter']").click()
    wait_for(browser, lambda b: b.find_elements(By.ID, "phone"))
    browser.find_element(By.ID, "phone").send_keys("06 12 34")
    browser.find_element(By.ID, "open").click()
    problem = wait_for(browser, lambda b: b.find_elements(By.ID, "problem"))[0]
    assert "a prefix or part of a number finds nothing" in problem.text
    assert not browser.find_elements(By.ID, "file")

    browser.find_element(By.ID, "phone").send_keys("06 12 34 00 01")
    browser.find_element(By.ID, "open").click()
    number = wait_for(browser, lambda b: b.find_elements(By.ID, "number"))[0]
    assert number.text == MASKED and browser.current_url == f"{site}/console/voter"
    demo = browser.find_element(By.CSS_SELECTOR, "section.flow-file[data-flow='demo']")
    assert "oui" in demo.text and "STOP" in demo.text and "objected" in demo.text
    assert "612340001" not in browser.page_source

    browser.find_element(By.ID, "reveal").click()
    wait_for(browser, lambda b: b.find_elements(By.ID, "revealed"))
    assert browser.find_element(By.ID, "number").text == VOTER
    assert browser.current_url == f"{site}/console/voter/reveal"
    assert not browser.find_elements(By.ID, "reveal")
    assert [(item.user, item.action) for item in reversed(audit.accesses(accord.store.redis))] == [
        ("camille", voter_file.LOOKUP), ("camille", voter_file.REVEAL)]
    # The page fits a phone's width, as the console's others do.
    browser.set_window_size(500, 900)
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


def test_a_viewer_is_told_a_voters_file_is_for_admins(site, browser, accord):
    from selenium.webdriver.common.by import By

    sign_in(browser, site, PASSWORD, "dominique")
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".signout .who"))
    browser.find_element(By.CSS_SELECTOR, "nav a[href='/console/voter']").click()
    wait_for(browser, lambda b: b.find_elements(By.ID, "admins-only"))
    assert not browser.find_elements(By.ID, "phone")
    assert audit.accesses(accord.store.redis) == []
