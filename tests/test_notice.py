"""The privacy and political-advertising notice: required in every flow, served at /notice/<flow>."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from decimal import Decimal
from html import unescape
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask

from bot import Accord, create_app, notice, use
from bot.config import Config
from bot.flows import FlowError, load_flow, load_flows
from bot.gateways.twilio import TwilioGateway
from bot.prices import parse_setting
from bot.rounds import Origin, start_round
from bot.segments import segments
from bot.sending import queue_for
from tests.conftest import TOKEN, Clock
from tests.flowfiles import NOTICE, TEXTS

PUBLIC = "https://sms.example.org"
# One valid flow; tests change one thing in it.
FLOW = """\
id = "essai"
controller_id = "liste-essai"
controller = "Liste Essai"
purpose = "recevoir les SMS de la campagne Essai"
source = "le courtier DataTest"
notice_url = "https://example.org/donnees"
poll_date = 2030-06-09
sender = "38000"
sending_days = "mon-sun"

""" + NOTICE + TEXTS.format() + """\
content = ["{controller} : premier message. STOP pour ne plus recevoir"]
"""
NOTICE_URL_LINE = 'notice_url = "https://example.org/donnees"\n'


def write(directory: Path, old: str = "", new: str = "", *, name: str = "essai.toml") -> Path:
    """Write FLOW with `old` replaced by `new` as a flow file."""
    assert old in FLOW, f"{old!r} is not in the flow"
    path = directory / name
    path.write_text(FLOW.replace(old, new, 1), encoding="utf-8")
    return path


def refusal(path: Path, public_url: str | None = None) -> FlowError:
    with pytest.raises(FlowError) as caught:
        load_flow(path, public_url)
    assert caught.value.path == str(path)
    return caught.value


def notice_line(key: str) -> str:
    return next(line + "\n" for line in NOTICE.splitlines() if line.startswith(f"{key} = "))


# --- the [notice] table ------------------------------------------------------------------------

def test_the_test_flow_carries_a_complete_notice(tmp_path: Path) -> None:
    flow = load_flow(write(tmp_path))
    assert flow.notice.dpo_contact == "dpo@example.org"
    assert flow.notice.period_start == dt.date(2026, 1, 1)


@pytest.mark.parametrize("key", notice.REQUIRED)
def test_every_field_the_law_needs_is_required_and_named(tmp_path: Path, key: str) -> None:
    error = refusal(write(tmp_path, notice_line(key), ""))
    assert (error.key, error.problem) == (f"notice.{key}", "missing")


def test_a_flow_without_a_notice_table_is_refused(tmp_path: Path) -> None:
    error = refusal(write(tmp_path, NOTICE, ""))
    assert error.key == "notice"
    assert "missing [notice] table" in error.problem


BROKEN = {
    "typo in a key": ("dpo_contact = ", "dpo_contacts = ", "notice.dpo_contacts", "unknown key"),
    "empty sponsor": (notice_line("sponsor"), 'sponsor = " "\n', "notice.sponsor", "non-empty string"),
    "contact email not an email": ('"droits@example.org"', '"droits chez example.org"', "notice.contact_email",
                                   "not an email address"),
    "sponsor email a web page": ('"mandataire@example.org"', '"https://example.org"', "notice.sponsor_email",
                                 "not an email address"),
    "dpo neither email nor link": ('"dpo@example.org"', '"Monsieur Dupont"', "notice.dpo_contact",
                                   "neither an email address nor an http(s) link"),
    "period as text": ("2026-01-01", '"1er janvier 2026"', "notice.period_start", "TOML date"),
    "period with a time": ("2026-01-01", "2026-01-01T08:00:00", "notice.period_start", "TOML date"),
    "period a typo for 2026": ("2026-01-01", "0026-01-01", "notice.period_start", "a typo?"),
    "period after the poll": ("2026-01-01", "2030-06-10", "notice.period_start", "after the last poll_date"),
    "funding a number": (notice_line("funding"), "funding = 12\n", "notice.funding", "non-empty string"),
    "an address of a page": (notice_line("controller_address"), f'controller_address = "{"x" * 600}"\n',
                             "notice.controller_address", "keep it under 500"),
}


@pytest.mark.parametrize(("old", "new", "key", "problem"), BROKEN.values(), ids=BROKEN.keys())
def test_an_incomplete_or_malformed_notice_is_refused_naming_the_field(
        tmp_path: Path, old: str, new: str, key: str, problem: str) -> None:
    error = refusal(write(tmp_path, old, new))
    assert error.key == key
    assert problem in error.problem


def test_a_dpo_reached_through_a_web_page_is_accepted(tmp_path: Path) -> None:
    flow = load_flow(write(tmp_path, '"dpo@example.org"', '"https://example.org/dpo"'))
    assert flow.notice.dpo_contact == "https://example.org/dpo"
    assert notice.contact_link(flow.notice.dpo_contact) == "https://example.org/dpo"
    assert notice.contact_link(flow.notice.contact_email) == "mailto:droits@example.org"


def check(*args: str, env: dict[str, str]) -> tuple[int, str]:
    from bot.cli import main

    result = CliRunner().invoke(main, ["flows", "check", *args], env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_flows_check_refuses_a_flow_whose_notice_would_be_incomplete(tmp_path: Path) -> None:
    env = {"INSTANCE_DIR": str(tmp_path / "instance"), "FLOWS_DIR": str(tmp_path), "PUBLIC_URL": ""}
    complete, incomplete = write(tmp_path, name="a.toml"), write(tmp_path, notice_line("sponsor"), "", name="b.toml")
    assert check(str(complete), env=env)[0] == 0
    code, output = check(str(incomplete), env=env)
    assert code == 1
    assert f"{incomplete}: notice.sponsor: missing" in output


# --- notice_url and PUBLIC_URL -----------------------------------------------------------------

def test_without_public_url_a_flow_must_link_its_notice(tmp_path: Path) -> None:
    error = refusal(write(tmp_path, NOTICE_URL_LINE, ""))
    assert error.key == "notice_url"
    assert "PUBLIC_URL" in error.problem


def test_with_public_url_a_flow_without_notice_url_links_to_the_page_the_bot_serves(tmp_path: Path) -> None:
    flow = load_flow(write(tmp_path, NOTICE_URL_LINE, ""), PUBLIC + "/")
    assert flow.notice_url == f"{PUBLIC}/notice/essai"
    assert f"{PUBLIC}/notice/essai" in flow.texts.consent_request
    assert f"{PUBLIC}/notice/essai" in flow.texts.help
    # The version the ledger records names the link the texts carried.
    moved = load_flow(write(tmp_path, NOTICE_URL_LINE, ""), "https://autre.example.org")
    assert moved.content_hash != flow.content_hash
    assert f'"{PUBLIC}/notice/essai"' in flow.canonical


def test_a_flow_linking_its_own_notice_keeps_it_under_public_url(tmp_path: Path) -> None:
    assert load_flow(write(tmp_path), PUBLIC).notice_url == "https://example.org/donnees"


def test_flows_check_follows_public_url(tmp_path: Path) -> None:
    path = write(tmp_path, NOTICE_URL_LINE, "")
    env = {"INSTANCE_DIR": str(tmp_path / "instance"), "FLOWS_DIR": str(tmp_path)}
    code, output = check(str(path), env={**env, "PUBLIC_URL": ""})
    assert code == 1 and "notice_url: missing" in output
    assert check(str(path), env={**env, "PUBLIC_URL": PUBLIC})[0] == 0


def test_the_app_under_public_url_sends_the_link_to_its_own_notice(config: Config, clock: Clock, redis_client,
                                                                    tmp_path: Path) -> None:
    write(tmp_path, NOTICE_URL_LINE, "")
    app = create_app(dataclasses.replace(config, flows_dir=tmp_path, public_url=PUBLIC), clock=clock)
    flow = app.extensions["accord"].flows["essai"]
    link = re.search(rf"{re.escape(PUBLIC)}(/notice/\S+)", flow.texts.consent_request)
    assert link, flow.texts.consent_request
    page = app.test_client().get(link.group(1))
    assert page.status_code == 200
    assert "Liste Essai" in page.get_data(as_text=True)


# --- the page ----------------------------------------------------------------------------------

def text_of(html: str) -> str:
    """The page's words, tags dropped and spaces joined, as a reader sees them."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_the_page_states_every_item_the_law_asks(client) -> None:
    response = client.get("/notice/presidentielle-2027")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    page = text_of(html)
    assert '<html lang="fr">' in html
    for item in (
        "Claire Martin, candidate", "12 rue des Lilas, 69003 Lyon",  # the controller
        "donnees@example.org", "Délégué à la protection des données dpo@example.org",  # contact, DPO
        "recevoir par SMS des informations sur sa campagne présidentielle",  # purpose
        "votre consentement (RGPD, art. 6.1.a)", "art. 9.2.a",  # legal basis
        "Source : la société DataVote (location de fichier).",  # where the number came from
        "votre numéro de mobile", "révèlent une opinion politique",  # categories
        "l'équipe de campagne habilitée", "l'hébergeur du service",  # recipients
        "Transferts hors de l'Union européenne",
        "effacé 60 jours après la demande", "le 25 avril 2027", "1095 jours",  # retention
        "répondez STOP", "AIDE", "écrivez à donnees@example.org",  # rights: by SMS, by email
        "saisir la CNIL", "cnil.fr/fr/plaintes",  # complaint
        "Association de financement de la campagne de Claire Martin", "mandataire@example.org",  # sponsor
        "Élection présidentielle 2027", "11 avril 2027, 25 avril 2027",  # the election
        "du 15 janvier 2027 au 25 avril 2027",  # the period
        "Montant dépensé à ce jour", "Origine des fonds", "apport personnel de la candidate",
        "Aucune technique de ciblage", "aucune donnée sensible",  # targeting
    ):
        assert item in page, item


def test_the_provider_a_flow_sends_through_is_the_processor_and_the_transfer(
        client, config: Config, clock: Clock, tmp_path: Path) -> None:
    write(tmp_path, "sending_days", 'gateway = "twilio"\nsending_days')
    twilio_gateway = TwilioGateway("AC" + "0" * 32, TOKEN, api_url="http://127.0.0.1:9")  # never called
    app = create_app(dataclasses.replace(config, flows_dir=tmp_path), gateways={"twilio": twilio_gateway},
                     clock=clock)
    twilio = text_of(app.test_client().get("/notice/essai").get_data(as_text=True))
    assert "Twilio Inc. (États-Unis)" in twilio and "clauses contractuelles types" in twilio
    local = text_of(client.get("/notice/demo").get_data(as_text=True))  # no provider: the local outbox
    assert "Twilio" not in local and "aucun prestataire d'envoi n'est configuré" in local
    assert "Aucun : vos données restent dans l'Union européenne." in local


def test_the_page_lists_the_imports_and_counts_what_was_sent_at_the_local_outboxs_nothing(
        client, accord: Accord, clock: Clock, tmp_path: Path) -> None:
    from rq import SimpleWorker

    flow = accord.flows["demo"]
    before = text_of(client.get("/notice/demo").get_data(as_text=True))
    assert "Aucun numéro n'a encore été importé" in before and "0,00 €, pour 0 SMS" in before
    contacts = tmp_path / "contacts.csv"
    contacts.write_text("telephone\n06 12 34 00 01\n07 12 34 00 02\n", encoding="utf-8")
    origin = Origin(source_type="broker", broker="DataVote", contract="DV-2026-117", operator="camille",
                    file="liste-secrete.csv", imported_at="2026-11-30T09:00:00+00:00")
    use(accord)  # what a worker process does at start
    start_round(accord, flow, contacts, origin, rate=1000)
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)

    # The figures are read once every five minutes, whoever reloads the page.
    assert text_of(client.get("/notice/demo").get_data(as_text=True)) == before
    clock.advance(minutes=5)
    page = text_of(client.get("/notice/demo").get_data(as_text=True))
    assert ("Import du 30 novembre 2026 : location ou achat auprès d'un courtier en données, DataVote, "
            "contrat DV-2026-117") in page
    assert "camille" not in page and "liste-secrete" not in page  # who imported, and the file, stay internal
    parts = 2 * segments(flow.texts.consent_request)
    assert f"0,00 €, pour 2 SMS ({parts} segments facturés), au 1er décembre 2026" in page
    assert "multipliés par le prix unitaire du prestataire : aucun, les SMS ne sortant pas du service." in page


def priced_app(config: Config, clock: Clock, tmp_path: Path, prices: str = "", flow_prices: str = "") -> Flask:
    """The essai flow sending through Twilio (never called), with SEGMENT_PRICES and its own [[prices]]."""
    write(tmp_path, "sending_days", 'gateway = "twilio"\nsending_days', name="essai.toml")
    if flow_prices:
        path = tmp_path / "essai.toml"
        path.write_text(path.read_text(encoding="utf-8") + flow_prices, encoding="utf-8")
    twilio_gateway = TwilioGateway("AC" + "0" * 32, TOKEN, api_url="http://127.0.0.1:9")
    return create_app(dataclasses.replace(config, flows_dir=tmp_path, prices=parse_setting(prices)),
                      gateways={"twilio": twilio_gateway}, clock=clock)


def sent(app: Flask, *phones: str) -> None:
    """Log a consent request the provider took to each of `phones` (2 segments each)."""
    accord: Accord = app.extensions["accord"]
    flow = accord.flows["essai"]
    for phone in phones:
        assert accord.store.claim(flow, phone, window_open=True).dest == "asked"
        accord.store.record_sent(flow, phone, "SM" + phone[-8:] * 4, flow.texts.consent_request)


def test_the_amount_spent_is_the_segments_at_the_price_set_with_its_date(
        config: Config, clock: Clock, redis_client, tmp_path: Path) -> None:
    app = priced_app(config, clock, tmp_path, "twilio fr-mobile 0.0798 2026-11-01; ovh fr-mobile 0.045 2026-10-15")
    parts = segments(app.extensions["accord"].flows["essai"].texts.consent_request)
    sent(app, "+33612980001", "+33612980002", "+33612980003")
    page = text_of(app.test_client().get("/notice/essai").get_data(as_text=True))
    amount = f"{Decimal('0.0798') * 3 * parts:.2f}".replace(".", ",")
    assert f"{amount} €, pour 3 SMS ({3 * parts} segments facturés), au 1er décembre 2026" in page
    assert "prix unitaire du prestataire : 0,0798 € par segment, tarif du 1er novembre 2026." in page
    english = text_of(app.test_client().get("/notice/essai?lang=en").get_data(as_text=True))
    assert f"€{amount.replace(',', '.')}, for 3 texts" in english and "€0.0798 a segment" in english


def test_the_flows_own_price_comes_before_the_settings(config: Config, clock: Clock, redis_client,
                                                       tmp_path: Path) -> None:
    own = '\n[[prices]]\ngateway = "twilio"\ndestination = "fr-mobile"\neuros = 0.05\nset_on = 2026-11-20\n'
    app = priced_app(config, clock, tmp_path, "twilio fr-mobile 0.0798 2026-11-01", own)
    page = text_of(app.test_client().get("/notice/essai").get_data(as_text=True))
    assert "0,00 €, pour 0 SMS" in page and "0,05 € par segment, tarif du 20 novembre 2026" in page


def test_without_a_price_for_the_provider_the_amount_is_not_available(config: Config, clock: Clock, redis_client,
                                                                      tmp_path: Path) -> None:
    app = priced_app(config, clock, tmp_path, "ovh fr-mobile 0.045 2026-10-15")  # none for Twilio
    sent(app, "+33612980001")
    page = text_of(app.test_client().get("/notice/essai").get_data(as_text=True))
    assert "Non disponible : le prix unitaire du prestataire n'est pas renseigné" in page
    assert "1 SMS envoyés" in page and "€" not in page


def test_an_amount_is_written_as_its_readers_write_it() -> None:
    assert notice.euros(Decimal("1234.5"), "fr") == "1\u202f234,50\u00a0€"
    assert notice.euros(Decimal("1234.5"), "en") == "€1,234.50"
    assert notice.euros(Decimal("0.0798"), "fr", unit=True) == "0,0798\u00a0€"


def test_imports_are_shown_once_each_and_a_bad_time_keeps_its_broker() -> None:
    origins = [{"source_type": "broker", "broker": "B", "contract": "C", "imported_at": "2026-11-30T09:00:00+00:00"},
               {"source_type": "broker", "broker": "B", "contract": "C", "imported_at": "2026-11-30T17:00:00+00:00"},
               {"source_type": "broker", "broker": "B2", "contract": "C2", "imported_at": "hier"}]
    assert notice.imports(origins) == [notice.Import("broker", "B", "C", dt.date(2026, 11, 30)),
                                       notice.Import("broker", "B2", "C2", None)]


def test_an_unknown_flow_is_not_found(client) -> None:
    assert client.get("/notice/inconnu").status_code == 404
    assert client.get("/notice/").status_code == 404


def test_what_the_flow_says_is_escaped(config: Config, clock: Clock, redis_client, tmp_path: Path) -> None:
    write(tmp_path, '"Association de financement de la Liste Essai"', '"<script>alert(1)</script> & Cie"')
    html = create_app(dataclasses.replace(config, flows_dir=tmp_path), clock=clock).test_client().get(
        "/notice/essai").get_data(as_text=True)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Cie" in html


@pytest.mark.parametrize(("query", "lang"), [("", "fr"), ("?lang=en", "en"), ("?lang=de", "fr"), ("?lang=fr", "fr")])
def test_the_page_is_in_the_flows_language_unless_english_is_asked(client, query: str, lang: str) -> None:
    response = client.get(f"/notice/demo{query}")
    assert f'<html lang="{lang}">' in response.get_data(as_text=True)
    assert response.headers["Content-Language"] == lang


def test_an_english_flow_gets_its_notice_in_english(config: Config, clock: Clock, redis_client,
                                                   tmp_path: Path) -> None:
    write(tmp_path, "sending_days", 'language = "en"\nsending_days')
    client = create_app(dataclasses.replace(config, flows_dir=tmp_path), clock=clock).test_client()
    page = client.get("/notice/essai").get_data(as_text=True)
    assert '<html lang="en">' in page and "Political advertising transparency" in text_of(page)
    assert '<html lang="fr">' in client.get("/notice/essai?lang=fr").get_data(as_text=True)


def test_the_page_is_public_briefly_cacheable_and_sets_no_cookie(client) -> None:
    client.set_cookie("accord_session", "anything")
    response = client.get("/notice/demo")
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src" not in policy and "default-src 'none'" in policy and "style-src 'self'" in policy


def test_the_notice_holds_when_redis_is_away(config: Config, clock: Clock) -> None:
    app: Flask = create_app(dataclasses.replace(config, redis_url="redis://127.0.0.1:9"), clock=clock)
    response = app.test_client().get("/notice/presidentielle-2027")
    assert response.status_code == 200
    page = text_of(response.get_data(as_text=True))
    assert "Le détail des imports est momentanément indisponible" in page
    assert "Non disponible pour le moment" in page
    assert "dpo@example.org" in page


def test_the_shipped_flows_carry_a_notice() -> None:
    for flow in load_flows(Path(__file__).resolve().parent.parent / "flows").values():
        assert flow.notice.dpo_contact.endswith("@example.org")
        assert flow.notice.period_start <= flow.poll_dates[0]
