"""A voter's rights hold the same on every provider: a round, a conversation, a STOP, `person show`
and `person erase`, end to end through the provider's real client and callbacks (Twilio's, OVHcloud's)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from rq import SimpleWorker

from bot import Accord, create_app, use
from bot.cli import Services, main
from bot.sending import queue_for
from tests.conftest import Voter

VOTER, OTHER = "+33612980001", "+33612980002"


@pytest.fixture
def app(config, clock, redis_client, provider) -> Flask:
    config = provider.configure(config)
    app = create_app(config, gateway=provider.gateway(config), clock=clock)
    use(app.extensions["accord"])
    return app


@pytest.fixture
def voter(client, provider) -> Voter:
    return Voter(provider, client)


def run(accord: Accord, *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), obj=Services(accord), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def round_of(accord: Accord, tmp_path: Path, *phones: str) -> None:
    """Start a round of the demo flow for `phones` and let a worker send it."""
    path = tmp_path / "contacts.csv"
    path.write_text("telephone\n" + "".join(f"{phone}\n" for phone in phones), encoding="utf-8")
    run(accord, "round", "start", "demo", str(path), "--contract", "DV-2027-001", "--operator", "camille",
        "--rate", "1000")
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)


def test_a_round_a_conversation_and_a_stop_hold_their_promises(accord: Accord, voter: Voter, provider, tmp_path):
    flow = accord.flows["demo"]
    round_of(accord, tmp_path, VOTER, OTHER)
    assert sorted(text["to"] for text in provider.taken()) == [VOTER, OTHER]
    assert voter.send(VOTER, "OUI").texts == [flow.texts.confirmation, flow.texts.content[0]]
    assert voter.send(OTHER, "STOP").texts == [flow.texts.stopped]
    provider.forget()
    round_of(accord, tmp_path, VOTER, OTHER)  # asked once, ever: nothing goes again
    assert "queued for 1 consented" in run(accord, "content", "send", "demo", "--message", "1").output
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)
    assert provider.taken() == []  # content 1 went with the thanks; the objector gets nothing
    assert accord.store.is_suppressed(flow, OTHER) and accord.store.verify_ledger("demo") is None


def test_person_show_and_erase_work_on_the_provider_s_texts(accord: Accord, voter: Voter, provider, tmp_path):
    flow = accord.flows["demo"]
    round_of(accord, tmp_path, VOTER)
    (request,) = provider.taken()
    voter.send(VOTER, "OUI")

    shown = run(accord, "person", "show", VOTER).output
    assert f"{VOTER} in demo: consented" in shown
    assert f"[{request['sid']}]" in shown  # the consent request, by the provider's own id
    assert "'OUI'" in shown

    assert "erasure recorded" in run(accord, "person", "erase", VOTER, "--yes").output
    shown = run(accord, "person", "show", VOTER).output
    assert "(objected)" in shown and request["sid"] not in shown and "'OUI'" not in shown
    assert accord.store.is_suppressed(flow, VOTER)  # only the HMAC is left, and the objection works
    provider.forget()
    round_of(accord, tmp_path, VOTER)
    assert provider.taken() == []
    # The voter texts again after the erasure: an objection is still honoured, and recorded.
    assert voter.send(VOTER, "STOP").status_code == 200
    assert accord.store.is_suppressed(flow, VOTER) and accord.store.verify_ledger("demo") is None
