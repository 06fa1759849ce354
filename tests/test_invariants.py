"""The bot's promises, held under any interleaving of texts, rounds, broadcasts, statuses, replays and time.

A hypothesis state machine drives the real app and a real Redis: four voters text the demo flow
through the signed webhook, rounds ask them (an import, or a batch run again as a crashed worker
would), broadcasts send content, Twilio reports statuses (21610 included) and replays texts, and
the clock jumps hours and days, across nights, holidays and the 7-day expiry. A small model, written
from the README's table, follows each voter. After every step, whatever reached a voter (in a TwiML
answer or through the outbox gateway) is checked against it:

(a) content only to a number consented at that moment;
(b) after a STOP (or 21610), nothing but the one confirmation, and help answers, until START;
(c) a number asked at most once per flow by rounds (TwiML re-asks after START apart);
(d) one `in:*` ledger entry per distinct processed text, none per replay;
(e) the ledger's hash chain holds;
and campaign texts (consent requests, content) only inside the sending window, and no content sent
twice by `content send`.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from rq import SimpleWorker
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from bot import create_app, use
from bot.keys import key_for
from bot.replies import Reply, classify
from bot.rounds import Origin, start_round
from bot.sending import enqueue, queue_for
from bot.workers import broadcast
from tests.conftest import PARIS, SMS, TUESDAY_MORNING, Clock, answers, new_sid
from tests.test_webhook import everything

VOTERS = ("+33612980001", "+33612980002", "+33739980003", "+33612980004")
SENDER = "38000"  # flows/demo.toml: the only flow on it
RETIRED = "38999"  # a number no flow sends from
OPEN = ("asked", "clarified")
EXPIRY = 7 * 86400  # flows/demo.toml keeps the default expiry_days
# Replies by meaning, so that each kind comes up about as often as noise does.
REPLIES = (
    ["oui", "OUI !", "ok 👍", "Ok", "d'accord", "O", "Oui merci"],
    ["non", "Non merci", "N", "pas intéressé"],
    ["STOP", "stop svp", "arrêtez", "Arrêtez !", "oui stop", "je ne veux plus recevoir vos messages"],
    ["START", "unstop", "Start"],
    ["aide", "qui êtes-vous ?", "Comment avez-vous eu mon numéro ?", "INFO"],
    ["oui mais qui êtes-vous ?", "peut-être", "👍", "🗳️", "", "euh...", "Bonjour, c'est pour quoi ?"],
)
texts = st.one_of(*(st.sampled_from(kind) for kind in REPLIES), st.text(max_size=40))
voters = st.sampled_from(VOTERS)


@dataclass
class Voter:
    """What the model knows of one number in the demo flow."""

    state: str = "new"
    asked_at: float = 0.0
    silenced: bool = False  # after STOP or 21610, until START
    confirmations: int = 0  # STOP confirmations still allowed in this silence
    round_asks: int = 0  # consent requests the outbox sent
    got_content: bool = False  # the flow's content message, by either way
    allowed_asks: int = 1  # one per flow, and one more after each START the window held back


def model_step(state: str, reply: Reply, window_open: bool) -> tuple[str, list[str]]:
    """The README's table: where a reply moves a number, and what the bot answers."""
    if reply is Reply.STOP:
        return ("opted_out", ["stopped"]) if state != "opted_out" else (state, [])
    if reply is Reply.HELP:
        return ("contacted" if state == "new" else state), ["help"]
    if state == "new":
        return "contacted", ["help"]
    if reply is Reply.YES and state in (*OPEN, "declined", "expired"):
        return "consented", ["confirmation", *(["content"] if window_open else [])]
    if reply is Reply.NO and state in (*OPEN, "consented", "expired"):
        return "declined", ["declined"]
    if reply is Reply.START and state == "opted_out":
        return ("asked", ["consent_request"]) if window_open else ("new", [])
    if reply is Reply.OTHER and state == "asked":
        return "clarified", ["clarification"]
    return state, []


class InProcessWorker(SimpleWorker):
    """rq's in-process worker, without the command channel whose thread may take a second to stop."""

    def subscribe(self) -> None:
        pass  # nothing sends commands to a test's worker; unsubscribe() then has nothing to join


def accord_keys(redis) -> dict:
    """Snapshot the bot's keys, less those that change by themselves: rq's, and the sender's pace (which
    expires by the real clock)."""
    return {key: value for key, value in everything(redis).items()
            if not key.startswith((b"rq:", key_for("pace").encode()))}


class Invariants(RuleBasedStateMachine):
    """The demo flow, four voters, and everything that may happen to them in any order."""

    inbound = Bundle("inbound")  # (params, answer) of each text posted, for replays
    sent = Bundle("sent")  # (phone, provider sid) of each message the outbox gateway sent, for statuses

    def __init__(self, app: Flask, clock: Clock, workdir: Path) -> None:
        super().__init__()
        self.accord = app.extensions["accord"]
        self.flow = self.accord.flows["demo"]
        self.store = self.accord.store
        self.sms = SMS(app.test_client())
        self.clock, self.workdir, self.csv = clock, workdir, itertools.count()

    @initialize(target=sent, asked=st.lists(voters, unique=True), evening=st.booleans())
    def start(self, asked: list[str], evening: bool):
        """An empty Redis, a first round on Tuesday at 10:00 asking some voters, and now 10:00 or 23:30."""
        self.store.redis.flushall()
        self.clock.set(TUESDAY_MORNING)
        use(self.accord)
        self.store.set_round(self.flow, rate="1000")  # no pacing: the sender's real-time rate is not under test
        self.voters = {phone: Voter() for phone in VOTERS}
        self.processed = 0
        self.outbox_seen = 0
        if asked:
            self.round_queued(asked, from_a_file=True)
        sent = multiple(*self.run_queue())
        if evening:  # answers then come while the window is shut: a YES gets no content until a broadcast
            self.clock.set(TUESDAY_MORNING.replace(hour=23, minute=30))
        return sent

    # -- the model --------------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def window_open(self, epoch: float | None = None) -> bool:
        return self.flow.window(self.now() if epoch is None else epoch).open

    def current(self, phone: str) -> Voter:
        """Return the voter, with expiry applied as the store applies it: lazily, on the next look.

        The clock runs from the request: a question back (HELP, START) does not restart it.
        """
        voter = self.voters[phone]
        if voter.state in OPEN and self.now() - voter.asked_at >= EXPIRY:
            voter.state = "expired"
        return voter

    def move(self, phone: str, dest: str) -> None:
        voter = self.current(phone)
        if dest == "opted_out" and voter.state != "opted_out":
            voter.silenced, voter.confirmations = True, 1
        if voter.state == "opted_out" and dest != "opted_out":
            voter.silenced = False
        if dest == "asked" and voter.state != "asked":
            voter.asked_at = self.now()
        voter.state = dest

    def receive(self, phone: str, text: str, *, channel: str, reply: Reply | None = None,
                at: float | None = None) -> None:
        """Check one text that reached a voter, against what the voter allowed at that moment."""
        voter, texts = self.voters[phone], self.flow.texts
        at = self.now() if at is None else at
        if text in texts.content:  # (a)
            assert voter.state == "consented", f"content reached {phone} in state {voter.state} via {channel}"
            # "Nobody gets the same message twice", by a broadcast or in answer to a YES.
            assert not voter.got_content, f"content sent twice to {phone}"
            voter.got_content = True
        if voter.silenced:  # (b)
            if text == texts.stopped and channel == "twiml" and voter.confirmations:
                voter.confirmations -= 1
            else:
                assert text == texts.help and reply is Reply.HELP and channel == "twiml", \
                    f"{phone} objected, yet got {text!r} via {channel}"
        if text == texts.consent_request and channel == "outbox":  # (c)
            voter.round_asks += 1
            assert voter.round_asks <= voter.allowed_asks, f"{phone} asked {voter.round_asks} times by rounds"
        if text in (texts.consent_request, *texts.content):
            assert self.window_open(at), f"campaign text to {phone} outside the sending window"

    def drain_outbox(self) -> list[dict[str, str]]:
        """Return what the outbox gateway sent since the last look."""
        fresh = self.store.outbox()[self.outbox_seen:]
        self.outbox_seen += len(fresh)
        return fresh

    def work(self) -> list[dict[str, str]]:
        """Run the queue in this process, then check every message it sent; return them."""
        queue = queue_for(self.accord)
        InProcessWorker([queue], connection=self.store.redis).work(burst=True)
        failed = FailedJobRegistry(queue=queue).get_job_ids()
        assert not failed, [Job.fetch(job_id, connection=self.store.redis).exc_info for job_id in failed]
        fresh = self.drain_outbox()
        for message in fresh:
            phone, text = message["to"], message["body"]
            voter = self.current(phone)
            if text == self.flow.texts.consent_request:
                assert voter.state in ("new", "contacted") and not voter.silenced, \
                    f"{phone} asked in state {voter.state}"
                self.move(phone, "asked")
            self.receive(phone, text, channel="outbox", at=float(message["at"]))
        return fresh

    # -- the voters -------------------------------------------------------------------------------

    @rule(target=inbound, data=st.data(), bodies=st.lists(texts, min_size=1, max_size=3),
          to=st.sampled_from([SENDER] * 4 + [RETIRED]))
    def text(self, data: st.DataObject, bodies: list[str], to: str):
        """A voter sends a text or a few in a row: half the time one the flow awaits an answer from, and now
        and then to a retired number."""
        awaited = sorted(phone for phone in VOTERS if self.current(phone).state in OPEN)
        phone = data.draw(st.one_of(voters, st.sampled_from(awaited)) if awaited else voters, label="phone")
        return multiple(*(self.one_text(phone, body, to) for body in bodies))

    def flow_texts(self) -> set[str]:
        return {self.flow.texts.say(key) for key in ("stopped", "help", "confirmation", "content", "declined",
                                                      "consent_request", "clarification")}

    def talking(self) -> list[str]:
        """The voters the flow awaits an answer from, or may send content to."""
        return [phone for phone in VOTERS if self.current(phone).state in (*OPEN, "consented")]

    @precondition(lambda self: self.talking())
    @rule(target=inbound, data=st.data(), body=st.one_of(*(st.sampled_from(kind) for kind in REPLIES[:5])))
    def answer(self, data: st.DataObject, body: str):
        """A voter the flow is talking with answers (YES, NO, STOP, START, a question back), or withdraws."""
        return self.one_text(data.draw(st.sampled_from(self.talking()), label="phone"), body, SENDER)

    def one_text(self, phone: str, body: str, to: str) -> tuple[dict[str, str], bytes]:
        params = {"MessageSid": new_sid(), "AccountSid": "AC" + "0" * 32, "From": phone, "To": to,
                  "Body": body, "NumMedia": "0"}
        voter, reply = self.current(phone), classify(body, self.flow.language)
        if to == RETIRED:  # silence; but an objection still counts for every flow, unanswered
            dest, says = ("opted_out", []) if reply is Reply.STOP else (voter.state, [])
        else:
            dest, says = model_step(voter.state, reply, self.window_open())
            if voter.got_content:  # a YES after a NO (or a STOP and START) is confirmed, without content again
                says = [say for say in says if say != "content"]
        response = self.sms.post("/sms/inbound", params)
        assert response.status_code == 200
        if to == SENDER or reply is Reply.STOP:  # a text the store took in
            self.processed += 1
            if reply is Reply.START and voter.state == "opted_out" and dest == "new":
                voter.allowed_asks += 1  # "A START then leaves the number for the next round"
            self.move(phone, dest)
            if to == RETIRED:
                voter.confirmations = 0  # nobody answered it
        said = answers(response)
        if reply is Reply.DATA and to != RETIRED:
            # A rights request, answered apart from the flow's texts: a one-time link to the voter's
            # page, or, past the links an hour, a text to wait (bot/voter_access.py).
            rights = [text for text in said if text not in self.flow_texts()]
            assert len(rights) <= 1 and all("/v/" in text or "réessayez" in text for text in rights), said
            said = [text for text in said if text not in rights]
        assert said == [self.flow.texts.say(key) for key in says], (body, reply)
        for text in said:
            self.receive(phone, text, channel="twiml", reply=reply)
        return params, response.data

    @rule(past=inbound)
    def replay(self, past) -> None:
        """Twilio retries a text: the same MessageSid gets the same answer and changes nothing."""
        params, data = past
        before = accord_keys(self.store.redis)
        response = self.sms.post("/sms/inbound", params)
        assert (response.status_code, response.data) == (200, data)
        assert accord_keys(self.store.redis) == before

    # -- the campaign -----------------------------------------------------------------------------

    @rule(phones=st.lists(voters, min_size=1, max_size=6), from_a_file=st.booleans())
    def round_queued(self, phones: list[str], from_a_file: bool) -> None:
        """A round queues its requests; the workers send later. Either an import (duplicates, a landline), or
        a batch queued again as `round resume` requeues what a dead worker left: claims send nothing twice."""
        if not from_a_file:
            enqueue(self.accord, "requests", self.flow, list(dict.fromkeys(phones)))
            return
        path = self.workdir / f"round-{next(self.csv)}.csv"
        path.write_text("".join(["telephone;prenom\n", *(f"0{phone[3:]};Voter\n" for phone in phones),
                                 "01 45 67 89 10;Fixe\n"]), encoding="utf-8")
        origin = Origin("supporters", "", "", "tests", str(path), "2026-12-01T09:00:00+00:00")
        counts = start_round(self.accord, self.flow, path, origin, rate=1000).counts
        assert counts["imported"] == len(phones) + 1 == sum(
            counts[name] for name in ("queued", "rejected", "duplicate", "suppressed", "already asked",
                                      "waiting for another flow's answer"))

    @precondition(lambda self: any(self.current(phone).state == "consented" for phone in VOTERS))
    @rule()
    def content_send(self) -> None:
        """`content send demo --message 1`: it queues who consented now; each send checks again."""
        broadcast(self.accord, self.flow, 1)

    @precondition(lambda self: queue_for(self.accord).count or ScheduledJobRegistry(queue=queue_for(self.accord)).count)
    @rule(target=sent, held_back_too=st.booleans())
    def workers_run(self, held_back_too: bool):
        """The workers empty the queue, whatever the voters said since it was filled; sometimes the scheduler
        also starts the batches held back for the window early (a skewed clock): each send checks again."""
        return multiple(*(self.start_held_back() if held_back_too else self.run_queue()))

    def start_held_back(self) -> list[tuple[str, str]]:
        """Put the batches held back for the window on the queue, run it; return (phone, sid) of what went."""
        registry = ScheduledJobRegistry(queue=queue_for(self.accord))
        # In the order they were held back: rq scores them by the second, and breaks ties by random job id.
        jobs = Job.fetch_many(registry.get_job_ids(), connection=self.store.redis)
        for job in sorted((job for job in jobs if job), key=lambda job: job.created_at):
            registry.requeue(job)
        return self.run_queue()

    def run_queue(self) -> list[tuple[str, str]]:
        # Sorted, so that hypothesis draws from the bundle the same way when it replays an example.
        return sorted(((m["to"], m["sid"]) for m in self.work()), key=lambda message: message[0])

    def scheduler(self) -> list[tuple[str, str]]:
        """What the workers' scheduler does as time passes: start the held-back batches once the window is open."""
        return self.start_held_back() if self.window_open() else []

    # -- the provider and time --------------------------------------------------------------------

    @rule(message=sent, outcome=st.sampled_from([("delivered", ""), ("sent", ""), ("undelivered", "30003"),
                                                 ("undelivered", "21610")]))
    def status(self, message: tuple[str, str], outcome: tuple[str, str]) -> None:
        phone, sid = message
        status, code = outcome
        response = self.sms.status(sid, status, to=phone, error_code=code)
        assert response.status_code == 204
        if code == "21610":  # the carrier's STOP: an objection, with no confirmation
            self.move(phone, "opted_out")
            self.voters[phone].confirmations = 0

    @rule(target=sent, step=st.sampled_from([1, 3, 9, 24, 3 * 24, 7 * 24, "night", "morning"]))
    def time_passes(self, step: int | str):
        """Hours or days pass, or the clock goes to the next 23:30 (window shut) or 08:30 (open), Paris time;
        expiries and holidays may come on the way. Then the scheduler starts what the window held back."""
        if isinstance(step, int):
            self.clock.advance(hours=step)
        else:
            now = dt.datetime.fromtimestamp(self.now(), PARIS)
            then = now.replace(hour=23 if step == "night" else 8, minute=30, second=0, microsecond=0)
            self.clock.set(then if then > now else then + dt.timedelta(days=1))
        return multiple(*self.scheduler())

    # -- after every step -------------------------------------------------------------------------

    @invariant()
    def store_agrees_with_the_model(self) -> None:
        for phone in VOTERS:
            voter = self.current(phone)
            assert self.store.state(self.flow, phone) == voter.state, phone
            assert self.store.is_suppressed(self.flow, phone) == (voter.state == "opted_out"), phone

    @invariant()
    def ledger_counts_each_text_once_and_holds(self) -> None:
        for flow_id in self.accord.flows:
            assert self.store.verify_ledger(flow_id) is None, flow_id  # (e)
        inbound = sum(1 for flow_id in self.accord.flows for _, entry in self.store.ledger(flow_id)
                      if entry.get("event", "").startswith("in:"))
        assert inbound == self.processed  # (d)


@pytest.mark.slow
def test_promises_hold_whatever_happens_in_whatever_order(config, redis_client, tmp_path):
    clock = Clock(TUESDAY_MORNING)
    app = create_app(config, clock=clock)  # one app for every example: @initialize empties Redis
    run = settings(max_examples=30, stateful_step_count=25, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    run_state_machine_as_test(lambda: Invariants(app, clock, tmp_path), settings=run)
