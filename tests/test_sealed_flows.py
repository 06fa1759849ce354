"""Flows that sealed archived texts, whether loaded, retired or moved to another sender: a replayed text
is still known, and the person id their lines open under stays while one of them holds the number. Once
the flow has erased the number, its texts are still known, by a record that holds no number."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask

from bot import Accord, archivist, create_app, rights
from bot.keys import person_key, sealed_flows_key, sealed_flows_listed_key, seen_slot
from tests.conftest import SMS, answers, forget_answer, forget_seen
from tests.test_erasure import key_contents
from tests.test_personal_archive import VOTERS, YES, pid
from tests.test_shared_sender import FLOW

VOTER = VOTERS[0]
SERVICE = "MG" + "1" * 32
NUMBER = "+33700000001"


@pytest.fixture
def config(config, tmp_path: Path, redis_client):  # an empty Redis for each test
    return replace(config, archive_dir=tmp_path / "ledger-archive")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    flows = tmp_path / "flows"
    flows.mkdir()
    return flows


def write(folder: Path, flow_id: str, sender: str = "38000") -> None:
    text = FLOW.format(id=flow_id, name=flow_id.title()).replace('sender = "38000"', f'sender = "{sender}"')
    (folder / f"{flow_id}.toml").write_text(text, encoding="utf-8")


def serve(config, clock, folder: Path) -> tuple[Flask, Accord]:
    app = create_app(replace(config, flows_dir=folder), clock=clock)
    return app, app.extensions["accord"]


def alpha_answered(config, clock, folder: Path, **to: str) -> tuple[Flask, Accord]:
    """alpha asks twelve numbers; the first answers OUI (sid YES)."""
    app, accord = serve(config, clock, folder)
    for phone in VOTERS:
        accord.store.claim(accord.flows["alpha"], phone, window_open=True)
    SMS(app.test_client()).send(VOTER, "oui", sid=YES, **to)
    assert accord.store.state(accord.flows["alpha"], VOTER) == "consented"
    return app, accord


def sealed(accord: Accord) -> None:
    archivist.keep_up(accord, above=0, keep=0)
    assert not accord.store.redis.exists(person_key(pid(accord, VOTER)))  # its "oui" is in a sealed file only


def beta_asks_and_the_oui_is_replayed(app: Flask, accord: Accord, *, known_for_good: bool = False, **to: str) -> None:
    """beta asks the number, and the "oui" it sent alpha comes again once its answer is forgotten: nothing moves.

    Unless `known_for_good`, the text is known by alpha's seal record alone (as one a version before
    that record processed): what these tests are about."""
    beta = accord.flows["beta"]
    assert accord.store.claim(beta, VOTER, window_open=True, siblings=accord.flows_for(beta.sender)).dest == "asked"
    forget_answer(accord.store.redis, YES)  # as 35 to 70 days do
    if not known_for_good:
        forget_seen(accord.store, YES)
    ledger = accord.store.ledger("beta")
    assert answers(SMS(app.test_client()).send(VOTER, "oui", sid=YES, **to)) == []
    assert accord.store.state(beta, VOTER) == "asked" and accord.store.ledger("beta") == ledger


def test_a_text_sealed_by_a_retired_flow_replayed_to_its_sender_changes_nothing(config, clock, folder):
    write(folder, "alpha")
    write(folder, "beta")
    _, accord = alpha_answered(config, clock, folder)
    sealed(accord)
    (folder / "alpha.toml").unlink()  # alpha retired: no process loads it
    beta_asks_and_the_oui_is_replayed(*serve(config, clock, folder))


def test_a_text_sealed_after_its_flow_moved_to_another_sender_is_known_on_the_first(config, clock, folder):
    write(folder, "alpha")
    _, accord = alpha_answered(config, clock, folder)
    write(folder, "alpha", "38001")  # alpha's next version texts from another number; beta takes 38000
    write(folder, "beta")
    app, later = serve(config, clock, folder)
    sealed(later)  # sealed under a version whose sender is 38001
    beta_asks_and_the_oui_is_replayed(app, later)


def test_a_text_sealed_before_its_flow_moved_to_another_sender_is_known_on_the_first(config, clock, folder):
    write(folder, "alpha")
    _, accord = alpha_answered(config, clock, folder)
    sealed(accord)
    write(folder, "alpha", "38001")
    write(folder, "beta")
    beta_asks_and_the_oui_is_replayed(*serve(config, clock, folder))


def test_a_text_to_a_messaging_service_replayed_to_the_number_it_went_to_changes_nothing(config, clock, folder):
    write(folder, "alpha", SERVICE)
    write(folder, "beta", NUMBER)
    _, accord = alpha_answered(config, clock, folder, to=NUMBER, MessagingServiceSid=SERVICE)
    sealed(accord)
    (folder / "alpha.toml").unlink()
    beta_asks_and_the_oui_is_replayed(*serve(config, clock, folder), to=NUMBER, MessagingServiceSid=SERVICE)


def test_flows_sealed_before_the_set_existed_are_listed_by_the_next_upkeep(config, clock, folder, redis_client):
    write(folder, "alpha")
    write(folder, "beta")
    _, accord = alpha_answered(config, clock, folder)
    sealed(accord)
    redis_client.delete(sealed_flows_key(), sealed_flows_listed_key())  # as an earlier version left it
    (folder / "alpha.toml").unlink()
    app, later = serve(config, clock, folder)
    archivist.keep_up(later)  # beta's: nothing of its own to archive
    assert redis_client.smembers(sealed_flows_key()) == {b"alpha"}
    beta_asks_and_the_oui_is_replayed(app, later)


def both_answered_then_sealed(config, clock, folder: Path) -> Accord:
    """beta asks twelve numbers, the first answers NON; then alpha asks them, the first answers NON; all sealed."""
    write(folder, "alpha")
    write(folder, "beta")
    _, both = serve(config, clock, folder)
    for flow_id in ("beta", "alpha"):
        flow = both.flows[flow_id]
        for phone in VOTERS:
            both.store.claim(flow, phone, window_open=True, siblings=both.flows_for(flow.sender))
        both.store.step(both.flows_for("38000"), VOTER, "no", inbound=True)
    sealed(both)
    return both


def test_the_retention_of_one_flow_keeps_the_person_a_retired_flow_s_sealed_lines_open_under(config, clock, folder):
    both_answered_then_sealed(config, clock, folder)
    (folder / "beta.toml").unlink()  # beta retired
    _, later = serve(config, clock, folder)
    assert "beta" in later.store.person(VOTER, ["beta"])
    later.store.erase([later.flows["alpha"]], VOTER, whole=False, objection=False)  # alpha's retention
    assert list(later.store.person(VOTER, ["beta"])) == ["beta"]  # beta's, still readable


def test_a_flow_another_process_loads_keeps_the_person_its_sealed_lines_open_under(config, clock, tmp_path):
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    for folder in (mine, theirs):
        folder.mkdir()
        write(folder, "alpha")
    write(theirs, "gamma", "38001")
    _, old = serve(config, clock, mine)  # a process that never loaded gamma
    for phone in VOTERS:
        old.store.claim(old.flows["alpha"], phone, window_open=True)
    _, new = serve(config, clock, theirs)
    gamma = new.flows["gamma"]
    for phone in VOTERS:
        new.store.claim(gamma, phone, window_open=True, siblings=new.flows_for(gamma.sender))
    new.store.step(new.flows_for("38001"), VOTER, "yes", inbound=True)
    sealed(new)
    old.store.erase([old.flows["alpha"]], VOTER, whole=False, objection=False)  # alpha's retention, there
    assert list(new.store.person(VOTER)) == ["gamma"]


def test_once_the_retired_flow_is_purged_too_no_person_id_is_left(config, clock, folder):
    both_answered_then_sealed(config, clock, folder)
    (folder / "beta.toml").unlink()
    clock.advance(days=61)
    _, later = serve(config, clock, folder)
    rights.purge(later)  # alpha's numbers past retention; beta, retired, keeps nothing
    assert later.store.pid(later.store.digest(VOTER)) is None
    assert later.store.person(VOTER, ["beta"]) == {}


@pytest.mark.parametrize("archived", [True, False], ids=["sealed", "in Redis"])
def test_a_text_replayed_once_its_retired_flow_is_purged_changes_nothing(config, clock, folder, redis_client,
                                                                         archived):
    write(folder, "alpha")
    write(folder, "beta")
    _, accord = alpha_answered(config, clock, folder)
    if archived:
        sealed(accord)
    (folder / "alpha.toml").unlink()
    app, later = serve(config, clock, folder)
    rights.purge(later)  # a retired flow keeps nothing: the number's entries and seal record go
    assert later.store.pid(later.store.digest(VOTER)) is None
    beta_asks_and_the_oui_is_replayed(app, later, known_for_good=True)  # nothing else knows it now
    assert redis_client.hexists(*seen_slot(later.store.seen_digest(YES)))
    held = b"".join(part for key in redis_client.scan_iter(match="accord:seen:*")
                    for part in key_contents(redis_client, key))
    assert held and VOTER[1:].encode() not in held and YES.encode() not in held
