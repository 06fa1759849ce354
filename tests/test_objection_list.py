"""The objection list from the console: HMACs or numbers, an admin's choice, for admins only, each export logged."""

from __future__ import annotations

import csv
import io
import json

import pytest

from bot import audit, rights
from bot.keys import subject_slot
from bot.web import objection_list
from tests.conftest import SMS
from tests.test_console import Console

STOPPED, ERASED, CAME_BACK = "+33612340001", "+33612340002", "+33612340003"
ELSEWHERE = "+33612340004"  # objected to another controller
ENGLISH = {"Accept-Language": "en"}


@pytest.fixture
def console(client, operators) -> Console:
    console = Console(client)
    console.sign_in()
    return console


@pytest.fixture
def objected(accord, client, clock) -> None:
    """Three voters texted STOP to the demo flow: one erased since, one texted START after; one objected elsewhere."""
    sms = SMS(client)
    demo, other = accord.flows["demo"], accord.flows["presidentielle-2027"]
    for phone in (STOPPED, ERASED, CAME_BACK):
        assert accord.store.claim(demo, phone, window_open=True).dest == "asked"
        sms.send(phone, "STOP", to=demo.sender)
        clock.advance(seconds=1)
    sms.send(CAME_BACK, "START", to=demo.sender)
    rights.erase(accord, ERASED)
    assert accord.store.claim(other, ELSEWHERE, window_open=True).dest == "asked"
    sms.send(ELSEWHERE, "STOP", to=other.sender)


def download(console: Console, controller: str = "liste-demo", kind: str = "hmac"):
    return console.client.post("/console/objections", headers=ENGLISH,
                               data={"controller": controller, "kind": kind, "csrf_token": console.session_token()})


def rows(answer) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))


def exports(accord) -> list[tuple[str, str, str]]:
    return [(item.user, item.action, item.detail) for item in reversed(audit.accesses(accord.store.redis))
            if item.action == objection_list.ACTION]


def test_the_hmac_list_holds_every_objection_and_no_number(console, accord, objected):
    answer = download(console)
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert answer.headers["Content-Disposition"] == 'attachment; filename="objections-liste-demo-hmac-20261201.csv"'
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.get_data(as_text=True)
    assert body.splitlines()[0] == "hmac,objected_at,lifted_for"
    digest = accord.store.digest
    assert [(row["hmac"], row["lifted_for"]) for row in rows(answer)] == [
        (digest(STOPPED), ""), (digest(CAME_BACK), "38000"), (digest(ERASED), "")]  # erasure objects anew
    assert rows(answer)[0]["objected_at"] == "2026-12-01T09:00:00+00:00"
    assert "+336" not in body and digest(ELSEWHERE) not in body


def test_the_number_list_gives_numbers_only_where_accord_still_holds_them(console, accord, objected):
    answer = download(console, kind="numbers")
    assert answer.headers["Content-Disposition"].endswith('-numbers-20261201.csv"')
    digest = accord.store.digest
    assert [(row["phone"], row["hmac"]) for row in rows(answer)] == [
        (STOPPED, digest(STOPPED)), (CAME_BACK, digest(CAME_BACK)), ("", digest(ERASED))]


def test_a_number_is_given_only_if_it_hashes_to_the_listed_hmac(console, accord, objected):
    redis = accord.store.redis
    redis.hset(*subject_slot(accord.store.digest(ERASED)), accord.store.pid(accord.store.digest(STOPPED)))
    phones = [row["phone"] for row in rows(download(console, kind="numbers"))]
    assert phones == [STOPPED, CAME_BACK, ""]  # a damaged link names no one else


def test_each_export_is_logged_with_the_operator_the_controller_and_the_choice(console, accord, objected):
    download(console)
    download(console, kind="numbers")
    assert exports(accord) == [("camille", objection_list.ACTION, "liste-demo: hmac, 3 line(s)"),
                               ("camille", objection_list.ACTION, "liste-demo: numbers, 3 line(s), 2 with a number")]
    logged = [json.loads(entry["text"]) for _, entry in accord.store.ledger("demo") if entry.get("event") == "export"]
    said = {"operator": "camille", "scope": "objection list", "count": 3, "output": "console download"}
    assert logged == [{**said, "format": "csv, hmac"}, {**said, "format": "csv, numbers"}]
    home = console.client.get("/console/", headers=ENGLISH).get_data(as_text=True)
    assert "liste-demo: numbers, 3 line(s), 2 with a number" in home


def test_every_controller_gets_its_own_list(console, accord, objected):
    listed = {row["hmac"] for row in rows(download(console, "afc-claire-martin"))}
    assert listed == {accord.store.digest(ELSEWHERE), accord.store.digest(ERASED)}  # an erasure objects to all


def test_the_page_shows_each_lists_size_and_says_what_an_hmac_is_for(console, objected):
    page = console.client.get("/console/objections", headers=ENGLISH).get_data(as_text=True)
    assert ('<tr data-controller="liste-demo"><td>Liste Demo <span class="muted">liste-demo</span></td>'
            '<td class="num">3</td>') in page
    assert "HMAC-SHA256 of the number" in page and 'id="download"' in page


@pytest.mark.parametrize("controller, kind", [("", "hmac"), ("liste-demo", ""), ("nobody", "hmac"),
                                              ("liste-demo", "phones")])
def test_an_export_needs_a_known_controller_and_kind(console, accord, objected, controller, kind):
    answer = download(console, controller, kind)
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/objections"
    assert exports(accord) == []


def test_a_viewer_sees_the_sizes_but_cannot_export(app, operators, accord, objected):
    viewer = Console(app.test_client())
    viewer.sign_in("dominique")
    page = viewer.client.get("/console/objections", headers=ENGLISH).get_data(as_text=True)
    assert 'id="admins-only"' in page and 'id="download"' not in page and 'data-controller="liste-demo"' in page
    for kind in objection_list.KINDS:
        answer = download(viewer, kind=kind)
        assert answer.status_code == 403 and "text/csv" not in answer.content_type
    assert exports(accord) == []


def test_an_export_without_the_sessions_csrf_token_is_refused(console, accord, objected):
    answer = console.client.post("/console/objections", data={"controller": "liste-demo", "kind": "numbers"})
    assert answer.status_code == 400 and exports(accord) == []


def test_an_empty_list_downloads_as_its_header_alone(console, accord):
    assert download(console).get_data(as_text=True) == "hmac,objected_at,lifted_for\n"
