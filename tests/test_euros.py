"""Costs in euros: each text, the round so far and to come, and the report, at the prices set with their dates."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from html import unescape
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from rq import SimpleWorker

from bot import Accord, create_app, use
from bot.cli import main
from bot.config import Config
from bot.gateways.twilio import TwilioGateway
from bot.operators import Operators
from bot.prices import parse_setting
from bot.segments import segments
from bot.sending import queue_for
from tests.conftest import PARIS, ROOT, Clock
from tests.flowfiles import PRICES as FLOW_PRICES
from tests.test_console import PASSWORD, Console
from tests.test_costs import ask, rows, run
from tests.twilio_server import TwilioServer

A, B, C = "+33612980001", "+33612980002", "+33612980003"
PRICES = "twilio fr-mobile 0.05 2026-12-01; twilio fr-mobile 0.06 2026-12-02; ovh fr-mobile 0.04 2026-10-01"


@pytest.fixture
def config(config: Config, tmp_path: Path) -> Config:
    """The shipped demo flow in a folder of its own, Twilio's and OVHcloud's prices set."""
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "demo.toml").write_text((ROOT / "flows" / "demo.toml").read_text(encoding="utf-8"), encoding="utf-8")
    return dataclasses.replace(config, flows_dir=flows, prices=parse_setting(PRICES))


@pytest.fixture
def accord(config: Config, clock: Clock, redis_client: redis.Redis, twilio: TwilioServer) -> Accord:
    """The services sending through the real Twilio client to the local Twilio server."""
    twilio.reset()
    gateway = TwilioGateway(twilio.account_sid, twilio.auth_token, api_url=twilio.base_url, timeout=2)
    accord = create_app(config, gateway=gateway, clock=clock).extensions["accord"]
    use(accord)
    return accord


@pytest.fixture
def two_days(accord: Accord, clock: Clock) -> int:
    """Two consent requests on 1 December, one on the 2nd; return the request's segments."""
    clock.set(dt.datetime(2026, 12, 1, 10, 0, tzinfo=PARIS))
    ask(accord, A)
    ask(accord, B)
    clock.set(dt.datetime(2026, 12, 2, 10, 0, tzinfo=PARIS))
    ask(accord, C)
    return segments(accord.flows["demo"].texts.consent_request)


def test_the_report_prices_each_day_at_the_price_set_on_or_before_it(accord, two_days):
    parts = two_days
    result = run(accord, "report", "costs", "demo")
    assert rows(result)[1:] == [
        ["2026-12-01", "2", str(2 * parts), "0.05", "2026-12-01", str(Decimal("0.05") * 2 * parts), str(2), "0", "0"],
        ["2026-12-02", "1", str(parts), "0.06", "2026-12-02", str(Decimal("0.06") * parts), "1", "0", "0"],
        ["TOTAL", "3", str(3 * parts), "", "", str(Decimal("0.16") * parts), "3", "0", "0"],
    ]
    assert "# priced at twilio fr-mobile 0.05 EUR, set on 2026-12-01 (SEGMENT_PRICES)" in result.stdout
    assert "# priced at twilio fr-mobile 0.06 EUR, set on 2026-12-02 (SEGMENT_PRICES)" in result.stdout
    assert f"# total: {Decimal('0.16') * parts:.2f} EUR" in result.stdout
    assert "priced as sent to fr-mobile (French mobiles)" in result.stdout


def test_days_before_the_first_price_are_priced_at_it_and_said_so(accord, config, clock):
    clock.set(dt.datetime(2026, 11, 30, 10, 0, tzinfo=PARIS))
    ask(accord, A)
    result = run(accord, "report", "costs", "demo")
    parts = segments(accord.flows["demo"].texts.consent_request)
    assert rows(result)[1][3:5] == ["0.05", "2026-12-01"]
    assert f"# {parts} segment(s) sent before 2026-12-01, when the first price was set, are priced at it" in (
        result.stdout)


def test_a_flows_own_prices_come_before_the_settings(accord, config, two_days):
    path = config.flows_dir / "demo.toml"
    path.write_text(path.read_text(encoding="utf-8") + FLOW_PRICES, encoding="utf-8")
    accord = create_app(config, gateway=accord.gateway, clock=accord.store.clock).extensions["accord"]
    result = run(accord, "report", "costs", "demo")
    assert rows(result)[-1][3:6] == ["0.1", "2026-11-01", str(Decimal("0.1") * 3 * two_days)]
    assert "(the flow's [[prices]])" in result.stdout


def test_the_unit_price_given_on_the_command_line_overrides_the_prices_set(accord, two_days):
    result = run(accord, "report", "costs", "demo", "--unit-price", "0,10")
    assert rows(result)[-1][3:6] == ["0.10", "", str(Decimal("0.10") * 3 * two_days)]
    assert "# priced at 0.10 EUR, given with --unit-price\n" in result.stdout
    assert "fr-mobile" not in result.stdout


def test_without_a_price_for_the_provider_the_euro_columns_stay_empty_and_it_is_said(accord, config, two_days):
    config = dataclasses.replace(config, prices=parse_setting("ovh fr-mobile 0.04 2026-10-01"))
    accord = create_app(config, gateway=accord.gateway, clock=accord.store.clock).extensions["accord"]
    result = run(accord, "report", "costs", "demo")
    assert rows(result)[-1] == ["TOTAL", "3", str(3 * two_days), "", "", "", "3", "0", "0"]
    assert "No price per segment is set for twilio fr-mobile" in result.stderr
    assert "# no price per segment is set for twilio fr-mobile" in result.stdout


def test_round_status_says_what_was_spent_and_the_most_the_rest_would_cost(accord, clock, tmp_path):
    clock.set(dt.datetime(2026, 12, 2, 10, 0, tzinfo=PARIS))
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("telephone\n06 12 98 00 01\n06 12 98 00 02\n07 12 98 00 03\n", encoding="utf-8")
    assert run(accord, "round", "start", "demo", str(contacts), "--source-type", "supporters", "--rate",
               "1000").exit_code == 0
    parts = segments(accord.flows["demo"].texts.consent_request)
    before = run(accord, "round", "status", "demo").output
    assert (f"euros: 0.00 EUR spent so far (0 segments); asking the 3 queued number(s) not sent yet: at most "
            f"{Decimal('0.06') * 3 * parts:.2f} EUR more (price: twilio fr-mobile 0.06 EUR, set on 2026-12-02)"
            ) in before
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)
    after = run(accord, "round", "status", "demo").output
    assert (f"euros: {Decimal('0.06') * 3 * parts:.2f} EUR spent so far ({3 * parts} segments); asking the 0 "
            "queued number(s) not sent yet: at most 0.00 EUR more") in after


def test_round_status_without_a_price_says_none_is_set(accord, config):
    accord = create_app(dataclasses.replace(config, prices=()), gateway=accord.gateway,
                        clock=accord.store.clock).extensions["accord"]
    assert ("euros: no price per segment set for twilio fr-mobile (SEGMENT_PRICES or the flow's [[prices]])"
            in run(accord, "round", "status", "demo").output)


def signed_in(accord: Accord) -> Console:
    Operators(accord.store.redis).add("camille", PASSWORD)
    app = create_app(accord.config, gateway=accord.gateway, clock=accord.store.clock)
    console = Console(app.test_client())
    assert console.sign_in().status_code == 302
    return console


def test_the_flow_page_shows_each_texts_cost_and_what_was_spent_in_euros(accord, two_days):
    console = signed_in(accord)
    euros = section(console.client.get("/console/flows/demo").get_data(as_text=True))
    price = euros[euros.index('<p id="price">'):euros.index("</p>", euros.index('<p id="price">'))]
    assert "0,06\u00a0€" in price and "2 déc. 2026" in price and "twilio" in price  # French by default
    flow = accord.flows["demo"]
    for key, text in (("texts.consent_request", flow.texts.consent_request), ("texts.help", flow.texts.help)):
        cost = f"{Decimal('0.06') * segments(text):.2f}".replace(".", ",")
        assert f'<td>{key}</td><td class="num">{segments(text)}</td><td class="num">{cost}\u00a0€</td>' in euros
    thousand = f"{Decimal('0.06') * 1000 * two_days:,.2f}".replace(",", "\u202f").replace(".", ",")
    assert f"{thousand}\u00a0€" in euros
    spent = f"{Decimal('0.16') * two_days:.2f}".replace(".", ",")  # 2 requests at 0.05, 1 at 0.06
    said = euros[euros.index('<span id="spent">'):]
    assert f"{spent}\u00a0€" in said and f"{3 * two_days} segments" in said
    english = section(console.client.get("/console/flows/demo", headers={"Accept-Language": "en"}
                                         ).get_data(as_text=True))
    assert "€0.06 per segment" in english and "Dec 2, 2026" in english


def test_the_flow_page_says_where_its_price_was_set(accord, config):
    path = config.flows_dir / "demo.toml"
    page = signed_in(accord).client.get("/console/flows/demo").get_data(as_text=True)
    assert "(dans SEGMENT_PRICES)" in section(page)
    path.write_text(path.read_text(encoding="utf-8") + FLOW_PRICES, encoding="utf-8")
    accord = create_app(config, gateway=accord.gateway, clock=accord.store.clock).extensions["accord"]
    Operators(accord.store.redis).remove("camille")
    euros = section(signed_in(accord).client.get("/console/flows/demo").get_data(as_text=True))
    assert "0,10\u00a0€" in euros and "(dans la table [[prices]] de la campagne)" in unescape(euros)


def test_the_flow_page_says_when_no_price_is_set(accord, config):
    accord = create_app(dataclasses.replace(config, prices=()), gateway=accord.gateway,
                        clock=accord.store.clock).extensions["accord"]
    euros = section(signed_in(accord).client.get("/console/flows/demo").get_data(as_text=True))
    assert 'id="no-price"' in euros and "twilio" in euros and "€" not in euros


def test_the_local_outbox_costs_nothing_on_the_flow_page(config, clock, redis_client):
    accord = create_app(config, clock=clock).extensions["accord"]
    euros = section(signed_in(accord).client.get("/console/flows/demo").get_data(as_text=True))
    assert 'id="price"' in euros and "0,00\u00a0€" in euros


def section(page: str) -> str:
    """Return the euros part of the flow page's texts section."""
    start = page.index('<div id="euros">')
    return page[start:page.index("</div>", start)]



def test_flows_check_names_a_price_that_cannot_be_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSTANCE_DIR", str(tmp_path / "instance"))
    path = tmp_path / "demo.toml"
    path.write_text((ROOT / "flows" / "demo.toml").read_text(encoding="utf-8")
                    + FLOW_PRICES.replace("set_on = 2026-11-01\n", ""), encoding="utf-8")
    result = CliRunner().invoke(main, ["flows", "check", str(path)], catch_exceptions=False)
    assert result.exit_code == 1
    assert f"error: {path}: prices[0].set_on: missing: the day this price was set" in result.output


def test_flows_check_lists_the_flows_own_prices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSTANCE_DIR", str(tmp_path / "instance"))
    path = tmp_path / "demo.toml"
    path.write_text((ROOT / "flows" / "demo.toml").read_text(encoding="utf-8") + FLOW_PRICES, encoding="utf-8")
    result = CliRunner().invoke(main, ["flows", "check", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "  price per segment: twilio fr-mobile 0.1 EUR, set on 2026-11-01" in result.output
