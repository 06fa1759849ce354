"""French first: the console and the dev phone speak French unless the operator or the browser asks for English,
with French dates and numbers, human names for states and events, and a catalogue that leaves nothing out."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from click.testing import CliRunner

from bot.cli import Services, main
from bot.operators import OperatorError, Operators
from bot.web import charts, dashboard, i18n, names
from tests.conftest import PARIS, ROOT, SMS
from tests.test_console import PASSWORD, Console

CATALOGUE = ROOT / "bot" / "web" / "translations" / "fr" / "LC_MESSAGES"
ENGLISH = {"Accept-Language": "en-GB,en;q=0.9"}
VOTER = "+33612340001"
NNBSP = "\u202f"  # what French puts between thousands


@pytest.fixture
def console(client, operators) -> Console:
    return Console(client)


def page(console: Console, path: str, **headers: str) -> str:
    return console.client.get(path, headers=headers).get_data(as_text=True)


def choose(console: Console, lang: str, next: str = "/console/") -> object:
    return console.post("/console/language", lang=lang, next=next)


# Which language

def test_without_accept_language_the_console_is_french(console):
    login = page(console, "/console/login")
    assert '<html lang="fr">' in login and "Connexion à la console" in login and "Mot de passe" in login
    console.sign_in()
    home = page(console, "/console/")
    assert '<html lang="fr">' in home and "<h1>Campagnes</h1>" in home and "Journal des actions" in home
    assert "Se déconnecter" in home and "Sign out" not in home


def test_a_browser_asking_for_english_gets_english_and_any_other_language_french(console):
    login = page(console, "/console/login", **ENGLISH)
    assert '<html lang="en">' in login and "Sign in to the console" in login
    german = page(console, "/console/login", **{"Accept-Language": "de-DE,de;q=0.9"})
    assert '<html lang="fr">' in german
    english_second = page(console, "/console/login", **{"Accept-Language": "de-DE,en;q=0.8"})
    assert '<html lang="en">' in english_second  # the browser's first language we speak


def test_the_operators_choice_beats_the_browser_and_outlasts_signing_out(console, operators):
    console.sign_in()
    answer = choose(console, "en", next="/console/flows/demo")
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/flows/demo"
    french_browser = {"Accept-Language": "fr-FR,fr;q=0.9"}
    assert "Sending window" in page(console, "/console/flows/demo", **french_browser)
    assert operators.account("camille").language == "en"
    console.post("/console/logout")
    assert '<html lang="fr">' in page(console, "/console/login", **french_browser)  # signed out: the browser's
    console.client.post("/console/login", data={"name": "camille", "password": PASSWORD,
                                                "csrf_token": console.token()}, headers=french_browser)
    assert '<html lang="en">' in page(console, "/console/", **french_browser)
    choose(console, "fr")
    assert '<html lang="fr">' in page(console, "/console/", **ENGLISH)
    assert operators.account("camille").language == "fr"


def test_an_operator_who_never_chose_follows_the_browser(console, operators):
    console.sign_in()
    assert operators.account("camille").language == ""
    assert '<html lang="en">' in page(console, "/console/", **ENGLISH)
    assert '<html lang="fr">' in page(console, "/console/")


def test_a_viewer_may_choose_the_language(console, operators):
    console.sign_in("dominique")
    assert choose(console, "en").status_code == 302
    assert operators.account("dominique").language == "en" and "Audit trail" in page(console, "/console/")


def test_the_switch_needs_the_csrf_token_and_a_language_we_speak(console, operators):
    console.sign_in()
    refused = console.client.post("/console/language", data={"lang": "en", "next": "/console/"})
    assert refused.status_code == 400
    assert choose(console, "de").status_code == 302  # nothing to change: the page as it was
    assert operators.account("camille").language == "" and '<html lang="fr">' in page(console, "/console/")


def test_an_operator_made_with_language_en_signs_in_to_english_pages(accord, client):
    made = CliRunner().invoke(main, ["operator", "add", "sam", "--role", "viewer", "--password", PASSWORD,
                                     "--language", "en"], obj=Services(accord))
    assert made.exit_code == 0, made.output
    console = Console(client)
    assert '<html lang="fr">' in page(console, "/console/login")
    console.sign_in("sam")
    assert '<html lang="en">' in page(console, "/console/") and "Audit trail" in page(console, "/console/")
    refused = CliRunner().invoke(main, ["operator", "add", "eve", "--role", "viewer", "--password", PASSWORD,
                                        "--language", "de"], obj=Services(accord))
    assert refused.exit_code == 2 and Operators(accord.store.redis).account("eve") is None


def test_an_account_keeps_only_a_language_we_speak(operators):
    with pytest.raises(OperatorError):
        operators.set_language("camille", "de")
    assert operators.set_language("nobody", "en") is False and operators.account("nobody") is None
    assert operators.set_language("camille", "en") and operators.account("camille").language == "en"


@pytest.mark.parametrize("target, lands", [
    ("/console/flows/demo?x=1", "/console/flows/demo?x=1"),
    ("/dev/phone?phone=%2B33612340001", "/dev/phone?phone=%2B33612340001"),
    ("https://evil.example/console/", "/console/"),
    ("//evil.example/console/", "/console/"),
    ("/console/\r\nSet-Cookie: x=1", "/console/"),
    ("/sms/inbound", "/console/"),
])
def test_the_switch_returns_to_the_page_it_was_on_never_elsewhere(console, target, lands):
    console.sign_in()
    assert choose(console, "en", next=target).headers["Location"] == lands


def test_the_switch_is_in_every_signed_in_page_header_and_marks_the_language_shown(console):
    console.sign_in()
    home = page(console, "/console/")
    assert 'action="/console/language"' in home and 'name="next" value="/console/"' in home
    assert re.search(r'id="lang-fr"[^>]*aria-current="true" disabled', home)
    assert not re.search(r'id="lang-en"[^>]*disabled', home)
    assert 'name="next" value="/console/flows/demo?x=1"' in page(console, "/console/flows/demo?x=1")


# Dates, numbers, names

def test_the_flow_page_writes_french_dates_and_numbers_and_english_ones_in_english(console, accord):
    accord.store.count(accord.flows["presidentielle-2027"], {"import:imported": 1_234_567})
    console.sign_in()
    french = page(console, "/console/flows/presidentielle-2027")
    assert "11 avr. 2027, 25 avr. 2027" in french and "scrutins" in french  # the flow's two polls
    assert f"1{NNBSP}234{NNBSP}567" in french and "Entonnoir" in french
    english = page(console, "/console/flows/presidentielle-2027", **ENGLISH)
    assert "Apr 11, 2027, Apr 25, 2027" in english and "1,234,567" in english and "polls" in english
    home = page(console, "/console/")
    assert f'<td class="num">1{NNBSP}234{NNBSP}567</td>' in home


def test_the_audit_trail_and_the_window_read_in_french(console, accord, clock):
    clock.set(dt.datetime(2026, 12, 6, 12, 0, tzinfo=PARIS))  # a Sunday: the window is shut
    console.sign_in()
    home = page(console, "/console/")
    assert "dim. 6 déc. 2026 12:00 CET" in home and "s&#39;est connecté" in home and "depuis 127.0.0.1" in home
    assert "dimanche" in home and "fermée" in home
    flow = page(console, "/console/flows/presidentielle-2027")
    assert "Dimanche." in flow and "Ouverture : lun. 7 déc. 2026" in flow


def test_pause_and_resume_say_so_in_french(console):
    console.sign_in()
    console.post("/console/flows/demo/pause")
    assert "demo : en pause ; l&#39;envoi s&#39;arrête au prochain numéro." in page(console, "/console/flows/demo")
    console.post("/console/flows/demo/resume")
    resumed = page(console, "/console/flows/demo")
    assert "demo : envoi repris ; 0 lot(s) en attente et 0 lot(s) interrompu(s) remis dans la file." in resumed


def test_the_ledger_and_the_funnel_name_states_and_events_for_people(console, accord, sms: SMS):
    flow = accord.flows["demo"]
    accord.store.claim(flow, VOTER, window_open=True)
    sms.send(VOTER, "oui", to=flow.sender)
    console.sign_in()
    french = page(console, "/console/flows/demo")
    ledger = french.split('id="ledger"')[1]
    assert "a répondu OUI" in ledger and "en attente de réponse → a donné son accord" in ledger
    assert "in:YES" not in ledger and "asked → consented" not in ledger and "demande d&#39;accord" in ledger
    assert ">d&#39;accord</text>" in french and 'data-stage="consented"' in french
    english = page(console, "/console/flows/demo", **ENGLISH).split('id="ledger"')[1]
    assert "answered YES" in english and "awaiting an answer → gave consent" in english


def test_the_dev_phone_speaks_french_to_its_page_and_its_script(client, accord, sms: SMS):
    flow = accord.flows["demo"]
    accord.store.claim(flow, VOTER, window_open=True)
    sms.send(VOTER, "oui", to=flow.sender)
    phone = client.get("/dev/phone").get_data(as_text=True)
    assert '<html lang="fr">' in phone and "<h1>Téléphone de test</h1>" in phone
    assert 'data-said-empty="Aucun échange entre ce numéro et {sender} pour le moment."' in phone
    assert 'placeholder="Répondez comme l\'électeur, par ex. oui"' in phone
    thread = client.get("/dev/phone/thread", query_string={"phone": VOTER, "flow": "demo"}).json
    assert (thread["state"], thread["state_name"]) == ("consented", "a donné son accord")
    assert [message["how"] for message in thread["messages"]] == ["écrit par l'électeur", "réponse du bot",
                                                                 "réponse du bot"]
    english = client.get("/dev/phone/thread", query_string={"phone": VOTER, "flow": "demo"}, headers=ENGLISH).json
    assert english["state_name"] == "gave consent" and english["messages"][0]["how"] == "texted by the voter"
    assert "Answer as the voter" in client.get("/dev/phone", headers=ENGLISH).get_data(as_text=True)


@pytest.mark.parametrize("name, raw, french", [
    (names.state, "asked", "en attente de réponse"),
    (names.state, "consented", "a donné son accord"),
    (names.state, "opted_out", "s'est opposé"),
    (names.state, "some_new_state", "some_new_state"),  # unknown: shown as it is
    (names.move, "asked>consented", "en attente de réponse → a donné son accord"),
    (names.move, "?>new", "? → pas encore contacté"),
    (names.event, "in:YES", "a répondu OUI"),
    (names.event, "in:STOP", "a répondu STOP"),
    (names.event, "in:MAYBE", "in:MAYBE"),
    (names.event, "ask:import-7f3a", "demande d'accord"),
    (names.event, "content:2", "contenu 2 envoyé"),
    (names.event, "give_back:1", "contenu 1 repris, non envoyé"),
    (names.event, "witness:found", "witness:found"),
    (names.event, "", ""),
    (names.stage, "opted out", "opposés"),
    (names.action, "pause", "a suspendu l'envoi"),
    (names.action, "person export", "person export"),
    (names.reason, "public holiday: Noël", "jour férié : Noël"),
    (names.reason, "Sunday", "dimanche"),
    (names.role, "viewer", "lecteur"),
    (names.level, "warning", "attention"),
    (names.detail, "from 192.0.2.1", "depuis 192.0.2.1"),
    (names.detail, "3 parked and 0 interrupted batch(es) queued again", "3 lot(s) en attente et 0 lot(s) "
                                                                         "interrompu(s) remis dans la file"),
    (names.detail, "20 failed within the hour, the last from 2001:db8::/64",
     "20 échecs dans l'heure, le dernier depuis 2001:db8::/64"),
    (names.detail, "camille, admin", "camille, admin"),
    (names.detail, "from", "from"),
])
def test_human_names_in_french_and_raw_names_when_unknown(app, name, raw, french):
    with app.test_request_context("/console/"):
        assert name(raw) == french


def test_names_and_numbers_outside_a_request_stay_english_and_never_fail():
    assert names.event("in:NO") == "answered NO" and names.state("expired") == "never answered"
    assert dashboard.count(1_000_000) == "1,000,000" and i18n.day(dt.date(2026, 12, 7)) == "Dec 7, 2026"


def test_french_dates_numbers_and_spans(app):
    moment = dt.datetime(2026, 12, 7, 14, 5, 3, tzinfo=PARIS)
    with app.test_request_context("/console/"):
        assert i18n.day(moment.date()) == "7 déc. 2026"
        assert i18n.number(1000) == f"1{NNBSP}000" and dashboard.count(1_234_567) == f"1{NNBSP}234{NNBSP}567"
        assert i18n.moment(moment) == "lun. 7 déc. 2026 14:05 CET"
        assert i18n.moment(moment.timestamp(), dt.UTC) == "lun. 7 déc. 2026 13:05 UTC"
        assert i18n.short_moment(moment) == "7 déc. 14:05:03"
        assert dashboard.duration(12 * 86400 + 4 * 3600) == "12 j 4 h"
        assert "Aucune réponse ces 48 dernières heures" in str(charts.hourly([(0, 0)] * 48, PARIS))
    with app.test_request_context("/console/", headers=ENGLISH):
        assert i18n.day(moment.date()) == "Dec 7, 2026" and i18n.moment(moment) == "Mon, Dec 7, 2026 14:05 CET"


# The catalogue

def extracted() -> dict[str | tuple[str, ...], set[str]]:
    """Extract every translatable string of the pages, as `make translations` does (babel.cfg)."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as config:
        method_map, options_map = parse_mapping_cfg(config)
    keywords = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
    found: dict[str | tuple[str, ...], set[str]] = {}
    for filename, _, message, _, _ in extract_from_dir(str(ROOT), method_map, options_map, keywords=keywords):
        found.setdefault(message, set()).add(filename)
    return found


def test_every_string_of_the_pages_has_a_french_translation():
    with open(CATALOGUE / "messages.po", "rb") as po:
        catalogue = read_po(po)
    messages = extracted()
    assert len(messages) > 100  # the extraction itself works: the console's strings are there
    missing = []
    for msgid, files in sorted(messages.items(), key=str):
        entry = catalogue.get(msgid)
        strings = entry.string if entry and isinstance(entry.string, tuple) else (entry.string if entry else "",)
        if entry is None or entry.fuzzy or not all(strings):
            missing.append(f"{msgid!r} ({', '.join(sorted(files))})")
    assert not missing, "untranslated (add them to messages.po, then `make translations`):\n" + "\n".join(missing)


def test_every_translation_keeps_its_placeholders():
    with open(CATALOGUE / "messages.po", "rb") as po:
        catalogue = read_po(po)
    for message in catalogue:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(re.findall(r"%\(\w+\)[sr]|\{\w+\}", ids[-1]))
        for string in strings:
            assert set(re.findall(r"%\(\w+\)[sr]|\{\w+\}", string)) == wanted, message.id


def test_the_committed_mo_is_the_po_compiled():
    with open(CATALOGUE / "messages.po", "rb") as po, open(CATALOGUE / "messages.mo", "rb") as mo:
        source, compiled = read_po(po), read_mo(mo)
    expected = {_key(message.id): _key(message.string) for message in source if message.id and not message.fuzzy}
    shown = {_key(message.id): _key(message.string) for message in compiled if message.id}
    assert shown == expected, "run `make translations` (or pybabel compile) and commit the .mo"


def _key(value: str | tuple[str, ...] | list[str]) -> str | tuple[str, ...]:
    return value if isinstance(value, str) else tuple(value)  # a plural: a list in a .mo, a tuple in a .po


def test_no_page_string_is_left_outside_the_catalogue_by_a_missing_babel_cfg_section():
    covered = {Path(name).parts[0] for files in extracted().values() for name in files}
    assert {"bot"} == covered
    files = {name for found in extracted().values() for name in found}
    for wanted in ("bot/web/console.py", "bot/web/names.py", "bot/web/templates/base.html",
                   "bot/web/templates/console/flow.html", "bot/web/templates/dev/phone.html"):
        assert wanted in files
    assert not any("templates/notice/" in name or "templates/voter/" in name for name in files)
