"""In headless Chromium: the console's flow page shows the texts' cost in euros, on a desk and on a phone."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest

from bot import create_app
from bot.gateways.twilio import TwilioGateway
from bot.operators import Operators
from bot.prices import parse_setting
from bot.segments import segments
from tests.browser import MISSING, available, chromium, serve
from tests.conftest import PARIS, TOKEN
from tests.test_browser import PASSWORD, sign_in, wait_for

pytestmark = pytest.mark.skipif(not available(), reason=MISSING)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    with chromium(tmp_path_factory.mktemp("chromium-profile"), width=360, height=740) as driver:
        yield driver


@pytest.fixture
def site(config, clock, redis_client, browser) -> Iterator[tuple[str, object]]:
    """The demo flow sending through Twilio (never called here) at 0.06 EUR a segment, set on 2 December."""
    clock.set(dt.datetime(2026, 12, 2, 10, 0, tzinfo=PARIS))
    gateway = TwilioGateway("AC" + "0" * 32, TOKEN, api_url="http://127.0.0.1:9")
    app = create_app(dataclasses.replace(config, prices=parse_setting("twilio fr-mobile 0.06 2026-12-02")),
                     gateway=gateway, clock=clock)
    accord = app.extensions["accord"]
    Operators(accord.store.redis).add("camille", PASSWORD)
    flow = accord.flows["demo"]
    assert accord.store.claim(flow, "+33612980001", window_open=True).dest == "asked"
    accord.store.record_sent(flow, "+33612980001", "SM" + "1" * 32, flow.texts.consent_request)
    browser.delete_all_cookies()
    with serve(app) as url:
        yield url, accord


def test_the_flow_page_shows_the_cost_in_euros_readable_on_a_phone(site, browser):
    from selenium.webdriver.common.by import By

    url, accord = site
    sign_in(browser, url, PASSWORD)
    wait_for(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".signout .who"))
    browser.get(f"{url}/console/flows/demo")
    euros = wait_for(browser, lambda b: b.find_element(By.ID, "euros"))
    parts = segments(accord.flows["demo"].texts.consent_request)
    # The browser asks for English (en-GB): amounts as the British write euros.
    assert "€0.06 per segment through twilio" in euros.find_element(By.ID, "price").text
    assert f"€{Decimal('0.06') * parts:.2f}" in euros.find_element(By.CSS_SELECTOR, "tbody tr").text
    assert f"€{Decimal('0.06') * parts:.2f}" in euros.find_element(By.ID, "spent").text
    right = browser.execute_script("return document.querySelector('#euros table').getBoundingClientRect().right")
    assert right <= browser.execute_script("return window.innerWidth")  # no sideways scrolling on a phone
