"""A voter who withdraws after content is queued gets none of it: the worker checks again at sending.

Each test walks the product as a voter and an operator meet it: a round asks, the voter answers
through the provider's callback, `content send` queues a batch, the voter withdraws, and an in-process
RQ worker runs the batch through the provider's real client to its local server: Twilio's, then OVHcloud's.
NO leaves the number `declined` but not suppressed, and a STOP to another flow of the same controller
leaves it `consented` but suppressed: so each of release.lua's two checks has a test of its own.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from rq import SimpleWorker
from rq.job import Job
from rq.registry import FinishedJobRegistry

from bot import Accord, create_app, sending, use
from bot.cli import Services, main
from bot.gateways import SendError
from bot.sending import queue_for
from tests.conftest import Reply, Voter
from tests.flowfiles import NOTICE, TEXTS

WITHDRAWS = "+33612980001"
STAYS = ["+33612980002", "+33739980003"]
# Two flows of one controller, each on its own sender: an objection to one reaches the other's
# suppression list (kept per controller) but not its state (kept per flow).
FLOWS = {"tracts": "38000", "reunions": "38001"}
FLOW = """\
id = "{id}"
controller_id = "liste-essai"
controller = "Liste Essai"
purpose = "recevoir les SMS de la campagne Essai ({id})"
source = "le fichier des sympathisants"
notice_url = "https://example.org/donnees"
poll_date = 2030-06-09
sender = "{sender}"

""" + NOTICE + TEXTS + """\
content = [
    "{{controller}} : premier message ({id}). STOP pour ne plus recevoir",
    "{{controller}} : second message ({id}). STOP pour ne plus recevoir",
]
"""


@pytest.fixture
def config(config, tmp_path: Path):
    flows = tmp_path / "flows"
    flows.mkdir()
    for flow_id, sender in FLOWS.items():
        (flows / f"{flow_id}.toml").write_text(FLOW.format(id=flow_id, sender=sender), encoding="utf-8")
    return dataclasses.replace(config, flows_dir=flows)


@pytest.fixture
def app(config, clock, redis_client, provider):
    """The app sending through the provider's real client to its local server, as a worker has it."""
    config = provider.configure(config)
    app = create_app(config, gateway=provider.gateway(config), clock=clock)
    use(app.extensions["accord"])  # what a worker process does once at start
    return app


@pytest.fixture
def sms(client, provider) -> Voter:
    return Voter(provider, client)


def answers(reply: Reply) -> list[str]:
    return reply.texts


def run(accord: Accord, *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), obj=Services(accord), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def work(accord: Accord) -> dict[str, int]:
    """Run a worker in this process until the queue is empty; return what its content batches did."""
    queue = queue_for(accord)
    SimpleWorker([queue], connection=accord.store.redis).work(burst=True)
    registry = FinishedJobRegistry(queue=queue)
    totals: dict[str, int] = {}
    for job in Job.fetch_many(registry.get_job_ids(), connection=accord.store.redis):
        if job is not None and job.func_name.endswith("send_content"):
            for outcome, count in job.return_value().items():
                totals[outcome] = totals.get(outcome, 0) + count
            registry.remove(job, delete_job=True)
    return totals


def consent(accord: Accord, sms: Voter, tmp_path: Path, flow_id: str, phones: list[str]) -> None:
    """Ask `phones` in a round of `flow_id`, and have each answer OUI (content 1 comes with the thanks)."""
    flow = accord.flows[flow_id]
    contacts = tmp_path / f"{flow_id}.csv"
    contacts.write_text("telephone\n" + "\n".join(phones) + "\n", encoding="utf-8")
    run(accord, "round", "start", flow_id, str(contacts), "--contract", "DV-2027-001", "--operator", "camille",
        "--rate", "1000")
    work(accord)
    for phone in phones:
        assert answers(sms.send(phone, "OUI", to=flow.sender)) == [flow.texts.confirmation, flow.texts.content[0]]
        assert accord.store.state(flow, phone) == "consented"


def queue_second_message(accord: Accord, flow_id: str, count: int) -> None:
    output = run(accord, "content", "send", flow_id, "--message", "2").output
    assert f"content 2 queued for {count} consented number(s) in 1 batch(es)" in output


def reached(provider, phone: str) -> list[str]:
    """Return every campaign text the provider was asked to send to `phone`, refused or not.

    Answers to the voter's own texts are left out: OVHcloud sends them as it sends the rest.
    """
    return [body for body in provider.tried(phone) if "premier message" in body or "second message" in body]


def content_entries(accord: Accord, flow_id: str, phone: str) -> list[dict[str, str]]:
    """Return the ledger's content releases and content sends for one number."""
    content = accord.flows[flow_id].texts.content
    return [entry for _, entry in accord.store.ledger(flow_id) if entry.get("phone") == phone
            and (entry["event"].startswith("content:") or (entry["event"] == "sent" and entry["text"] in content))]


def skipped_one(outcomes: dict[str, int]) -> bool:
    """Say whether the batch sent to the two who stayed and skipped one number.

    An objection fails both checks (opted out, and suppressed): which one answers first is not the promise.
    """
    return outcomes == {"sent": 2, "skipped: opted_out": 1} or outcomes == {"sent": 2, "skipped: suppressed": 1}


def assert_the_others_got_it(accord: Accord, provider, flow_id: str) -> None:
    """The batch went on: each voter who stayed got content 2 once, released and sent in the ledger."""
    text = accord.flows[flow_id].texts.content[1]
    for phone in STAYS:
        assert reached(provider, phone) == [text], phone
        (sent,) = [m for m in provider.taken() if m["to"] == phone]
        entries = content_entries(accord, flow_id, phone)
        assert [(e["event"], e["sid"]) for e in entries] == [("content:2", ""), ("sent", sent["sid"])], phone
    assert accord.store.verify_ledger(flow_id) is None


def test_a_voter_who_says_no_after_content_is_queued_gets_none(accord, sms: Voter, provider, tmp_path):
    consent(accord, sms, tmp_path, "tracts", [WITHDRAWS, *STAYS])
    provider.forget()
    queue_second_message(accord, "tracts", 3)
    flow = accord.flows["tracts"]
    assert answers(sms.send(WITHDRAWS, "NON")) == [flow.texts.declined]
    # Declined is not an objection: only the consent check stands between this number and the text.
    assert accord.store.state(flow, WITHDRAWS) == "declined"
    assert not accord.store.is_suppressed(flow, WITHDRAWS)

    outcomes = work(accord)
    assert reached(provider, WITHDRAWS) == [], "content reached a voter who said NO after it was queued"
    assert content_entries(accord, "tracts", WITHDRAWS) == []
    assert outcomes == {"sent": 2, "skipped: declined": 1}
    assert_the_others_got_it(accord, provider, "tracts")


@pytest.mark.parametrize("objection", ["STOP", "arrêtez svp"])
def test_a_voter_who_objects_after_content_is_queued_gets_none(accord, sms: Voter, provider, tmp_path, objection):
    consent(accord, sms, tmp_path, "tracts", [WITHDRAWS, *STAYS])
    provider.forget()
    queue_second_message(accord, "tracts", 3)
    flow = accord.flows["tracts"]
    assert answers(sms.send(WITHDRAWS, objection)) == [flow.texts.stopped]
    assert accord.store.state(flow, WITHDRAWS) == "opted_out"

    outcomes = work(accord)
    assert reached(provider, WITHDRAWS) == [], f"content reached a voter who texted {objection!r} after it was queued"
    assert content_entries(accord, "tracts", WITHDRAWS) == []
    assert skipped_one(outcomes)
    assert_the_others_got_it(accord, provider, "tracts")


def test_a_stop_to_another_flow_of_the_controller_stops_queued_content(accord, sms: Voter, provider, tmp_path):
    consent(accord, sms, tmp_path, "reunions", [WITHDRAWS, *STAYS])
    provider.forget()
    queue_second_message(accord, "reunions", 3)
    tracts, reunions = accord.flows["tracts"], accord.flows["reunions"]
    # To the other flow's sender: that flow hears the objection, and the controller's list keeps it.
    assert answers(sms.send(WITHDRAWS, "STOP", to=tracts.sender)) == [tracts.texts.stopped]
    # This flow's state still says consented: only the suppression check stands in the way.
    assert accord.store.state(reunions, WITHDRAWS) == "consented"
    assert accord.store.is_suppressed(reunions, WITHDRAWS)

    outcomes = work(accord)
    assert reached(provider, WITHDRAWS) == [], "content reached a voter on the controller's suppression list"
    assert content_entries(accord, "reunions", WITHDRAWS) == []
    assert outcomes == {"sent": 2, "skipped: suppressed": 1}
    assert_the_others_got_it(accord, provider, "reunions")


def test_a_stop_to_another_flow_of_the_controller_while_content_waits_for_a_retry_stops_it(
        accord, sms: Voter, provider, tmp_path, monkeypatch):
    """Guard: `is_suppressed` in bot/store.py still_ours, before a send's retry (bot/sending.py _send)."""
    consent(accord, sms, tmp_path, "reunions", [WITHDRAWS, *STAYS])
    provider.forget()
    queue_second_message(accord, "reunions", 3)
    tracts, reunions = accord.flows["tracts"], accord.flows["reunions"]
    gateway = accord.gateway_for(reunions)
    send, first = gateway.send, [True]

    def busy_while_the_voter_objects(to: str, *args, **kwargs) -> str:
        if to == WITHDRAWS and first:
            first.clear()
            assert answers(sms.send(WITHDRAWS, "STOP", to=tracts.sender)) == [tracts.texts.stopped]
            raise SendError(20429, 429, "Too Many Requests")
        return send(to, *args, **kwargs)

    monkeypatch.setattr(gateway, "send", busy_while_the_voter_objects)
    monkeypatch.setattr(sending, "RETRY_PAUSE", 0.0)
    work(accord)
    assert reached(provider, WITHDRAWS) == [], "content went to a voter who objected while its send waited"
    assert accord.store.state(reunions, WITHDRAWS) == "consented" and accord.store.is_suppressed(reunions, WITHDRAWS)
    assert_the_others_got_it(accord, provider, "reunions")


def test_a_number_the_provider_reports_unsubscribed_gets_no_queued_content(accord, sms: Voter, provider, tmp_path):
    consent(accord, sms, tmp_path, "tracts", [WITHDRAWS, *STAYS])
    request = next(m for m in provider.taken() if m["to"] == WITHDRAWS)  # the consent request
    provider.forget()
    queue_second_message(accord, "tracts", 3)
    # The provider's late word on the consent request: the recipient unsubscribed (21610), or is on
    # OVHcloud's STOP list.
    assert provider.objected(sms.client, request["sid"], WITHDRAWS) == 204
    assert accord.store.state(accord.flows["tracts"], WITHDRAWS) == "opted_out"

    outcomes = work(accord)
    assert reached(provider, WITHDRAWS) == [], "content reached a number the provider reported unsubscribed"
    assert content_entries(accord, "tracts", WITHDRAWS) == []
    assert skipped_one(outcomes)
    assert_the_others_got_it(accord, provider, "tracts")
