"""All Redis access: per-number states, the consent ledger, suppression, idempotency, outbox.

Every state change is one Lua script call: it reads the state, applies the step the
machine compiled, appends to the flow's hash-chained ledger and answers, atomically.
Only commands Redis 6.2 has are used (the embedded server is 6.2).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from redis import Redis, WatchError
from redis.client import Pipeline
from redis.commands.core import Script

from bot import ledger, machine, personal_archive, references, states
from bot.flows import Flow
from bot.gateways.ovh import id_of as ovh_id_of
from bot.keys import (
    ANSWER_BUCKETS,
    MESSAGE_PERIOD,
    OUTBOX_KEY,
    SEEN_BUCKET,
    SEEN_FIELD,
    SUBJECT_BUCKET,
    SUBJECT_FIELD,
    admitted_key,
    answered_key,
    answers_key,
    asked_key,
    batch_key,
    batches_key,
    content_key,
    costs_key,
    funnel_key,
    glob_of,
    head_key,
    held_flows_key,
    held_flows_listed_key,
    in_flight_key,
    key_for,
    ledger_key,
    legacy_out_key,
    legacy_state_key,
    legacy_subject_field,
    legacy_subject_key,
    messages_key,
    objection_lists_key,
    objection_lists_listed_key,
    pace_key,
    parked_key,
    paused_key,
    person_key,
    queued_key,
    round_key,
    sid_key,
    subject_slot,
    suppression_key,
    versions_key,
    voter_asks_key,
    voter_keys_key,
)
from bot.phones import FRENCH_MOBILE_E164, without_number
from bot.pseudonyms import Pseudonyms
from bot.segments import segments
from bot.windows import REGIONS

log = logging.getLogger(__name__)
LUA = Path(__file__).parent / "lua"
SID_TTL = 35 * 86400  # a replayed MessageSid (Twilio retry, reconcile) is recognised for 35 days at least
GLOBAL_SID = re.compile(r"[A-Z]{2}[0-9a-f]{32}")  # a Twilio message sid: "SM" or "MM", then 128 random bits
ADMITTED_PHONE = 12  # characters of a French mobile in E.164, as admit.lua cuts them
BITMAP_CHUNK = 1 << 20  # bytes of a bitmap read at once (8 million numbers)
NONZERO = re.compile(rb"[^\x00]")  # a byte of a bitmap with some bit set
ADMIT_AT_MOST = 5000  # numbers a call to admit.lua (Lua's unpack takes about 8,000 values); rounds send 500
OBJECTIONS = frozenset({"stop", "carrier_stop"})  # written before anything is read, whatever the state
EVERYWHERE = OBJECTIONS | {"start"}  # apply to every flow on the sender (START: see _plan)
STATUS_RANK = {"accepted": 1, "scheduled": 2, "queued": 3, "sending": 4, "sent": 5,
               "partially_delivered": 6, "delivered": 7, "undelivered": 7, "failed": 7,
               "canceled": 7, "read": 8}


@dataclass(frozen=True)
class Outcome:
    """What one step did: the flow it applied to, the move, and the texts to send."""

    flow: str
    source: str
    dest: str
    texts: tuple[str, ...] = ()
    refused: str = ""
    unreadable: tuple[str, ...] = ()  # flows whose record of the number could not be read
    replayed: bool = False  # a text processed before: its first answer again, or refused

    @property
    def changed(self) -> bool:
        return self.source != self.dest


@dataclass(frozen=True)
class Retired:
    """A flow whose file was removed while Redis still holds its numbers: what erasing them needs."""

    id: str
    content_hash: str  # of its latest ledger entry, for the erasure entries
    contents: int  # the highest content message with a bitmap


@dataclass
class Store:
    """The project's only door to Redis."""

    redis: Redis
    suppression_secret: bytes
    clock: Callable[[], float] = time.time
    flows: dict[str, Flow] = field(default_factory=dict)  # every flow loaded, by id
    # Where the voter's own page is served (bot/web/voter.py sets it): a rights request is answered
    # with a link under it. Empty where no page is served (a worker): no link can be given there.
    page_root: str = ""
    # The folder archived personal fields are sealed in (bot/personal_archive.py): the config's
    # archive_dir. None: none were moved there by this deployment, nothing is read there.
    personal_dir: Path | None = None
    # The OVHcloud SMS service the settings name (OVH_SMS_SERVICE), "" without: the ids of its texts are its own.
    ovh_service: str = ""
    _named: set[str] = field(default_factory=set, repr=False)  # content hashes whose texts resolve (_name)

    def __post_init__(self) -> None:
        self.digest = Pseudonyms(self.suppression_secret)  # the keyed HMAC that stands for a number
        self._step_source = lua("state", "ledger", "costs", "answers", "step")
        self._steps: dict[str, Script] = {}  # one compiled script per plan (see _plan)
        self._append = self.redis.register_script(lua("ledger", "costs", "append"))
        self._status = self.redis.register_script(lua("status"))
        self._admit = self.redis.register_script(lua("state", "admit"))
        self._release = self.redis.register_script(lua("state", "ledger", "release"))
        self._give_back = self.redis.register_script(lua("state", "ledger", "give_back"))
        self._erase = self.redis.register_script(lua("state", "ledger", "erase"))
        self._pace = self.redis.register_script(lua("pace"))
        self._unlist = self.redis.register_script(lua("unlist"))

    def ping(self) -> bool:
        """Say whether Redis answers."""
        return bool(self.redis.ping())

    def step(self, flows: Sequence[Flow], phone: str, trigger: str, *, body: str = "",
             message_sid: str = "", inbound: bool = False, window_open: bool = True,
             shut: frozenset[str] = frozenset(), check_suppressed: bool = False, first: bool = False,
             region: str | None = None, at: float | None = None, twiml: bool = True, detail: str = "",
             in_flight: str | None = None) -> Outcome:
        """Apply `trigger` to the number in the flow it is talking to, atomically, and log it.

        With `first`, the step applies to the first of `flows`, the others being only checked.
        `shut` names the calendar regions (bot/windows.py) whose window is shut: campaign texts to
        a number of such a region stay unsaid, as they do everywhere when not `window_open`.
        `region` is the number's region for the first flow, kept in its record; None keeps the
        one recorded. `at` is when the text came, if not now (one reconcile brings back). Without
        `twiml`, the texts said are not the entry's reply: the caller sends them and logs each.
        `detail` follows the event of a step no text brought ("ask:DETAIL": the import that queued it).
        With `in_flight` ("", or the entry the witness read), the first flow's consent request is in
        flight from a claim until a release (bot/witness.py; step.lua says how).
        """
        digest = self.digest(phone)
        generation, ttl = self._answers()
        # The hash of answers is used only with a sid.
        keys = [answered_key(generation, message_sid or "-"), subject_slot(digest)[0]]
        for flow in flows:
            keys += [states.slot(flow.id, phone)[0], *_step_keys(flow)]
        if in_flight is not None:
            keys.append(in_flight_key(flows[0].id))
        keys += [costs_key(flow.id) for flow in flows]  # last: see bot/lua/answers.lua
        plan = _plan(tuple(flows), trigger, inbound, window_open, shut, check_suppressed, first, twiml,
                     in_flight is not None)
        self._name(flows)
        script = self._steps.get(plan)
        if script is None:
            script = self._steps[plan] = self.redis.register_script(f"local plan = {plan}\n{self._step_source}")
        now = self._now() if at is None else f"{at:.3f}"
        seconds = float(now)  # the times below are `now` as written, to the millisecond
        raw = script(keys=keys, args=[phone, digest, now, body, message_sid, _salt(), states.base36(int(seconds)),
                                      states.base36(round(seconds * 1000)), str(math.floor(seconds / 3600)),
                                      "-" if region is None else region, detail, in_flight or "", ttl,
                                      self.seen_digest(message_sid) if inbound else "",
                                      "1" if GLOBAL_SID.fullmatch(message_sid) else "",
                                      *(_day(flow.timezone, int(seconds // 60)) for flow in flows)])
        answer = json.loads(raw)
        unreadable = tuple(answer.get("unreadable") or ())  # an empty Lua table comes back as {}
        if unreadable:
            # Never the number itself in the log: `python -m bot states check` finds the record.
            log.error("unreadable state record of number %s… in flow(s) %s; %s", self.digest(phone)[:8],
                      ", ".join(unreadable), answer.get("refused") or f"moved {answer['from']}>{answer['to']}")
        # A replayed MessageSid brings back its first answer, whose flow may not be among these,
        # or may even be retired since: then there is nothing left to say.
        flow = next((f for f in flows if f.id == answer["flow"]), None) or self.flows.get(answer["flow"])
        says = (answer.get("says") or ()) if flow else ()  # an empty Lua table comes back as {}
        return Outcome(answer["flow"], answer["from"], answer["to"],
                       tuple(flow.texts.say(key) for key in says) if flow else (), answer.get("refused", ""),
                       unreadable, bool(answer.get("replayed")))

    def seen_digest(self, message_sid: str) -> str:
        """Return the keyed digest an inbound text is known by for good, from its provider's id (keys.seen_slot);
        "" for a text whose id does not name it for good (see known_as): it is known by its entries only."""
        name = self.known_as(message_sid)
        return self.digest(f"inbound text:{name}") if name else ""

    def known_as(self, message_sid: str) -> str:
        """Name an inbound text for good from its provider's id, or return "" where that id may come again.

        Two texts sharing a name would have the second refused. Twilio's ids are unique the world
        over (GLOBAL_SID): the id itself. OVHcloud's are numbers of one SMS service's own, which
        another service (the deployment's next account) may give again: the id under the service's
        name, that of the settings (ovh_service), since a text reaches only the service it was sent to.
        """
        if GLOBAL_SID.fullmatch(message_sid):
            return message_sid
        ovh_id = ovh_id_of(message_sid)
        return f"OVH:{self.ovh_service}:{ovh_id}" if ovh_id and self.ovh_service else ""

    def claim(self, flow: Flow, phone: str, *, window_open: bool, siblings: Sequence[Flow] = (),
              region: str = "", origin: str = "") -> Outcome:
        """Move a number from new to asked before its consent request is sent (at most once).

        `siblings` are the other flows sending from the same number: while one of them waits
        for this voter's answer, the claim is refused, since a YES could not tell them apart.
        `origin` is the id of the import that queued it: the ledger's entry says "ask:ORIGIN". The
        claim is in flight until its outcome is recorded (bot/witness.py).
        """
        flows = [flow, *(other for other in siblings if other.id != flow.id)]
        return self.step(flows, phone, "ask", window_open=window_open, check_suppressed=True, first=True,
                         region=region, detail=origin, in_flight="")

    def record_sent(self, flow: Flow, phone: str, provider_sid: str, text: str, *, content: bool = False,
                    reply: bool = False, in_flight: int | None = None, found: str = "") -> bool:
        """Log a message the gateway accepted, count it in the day's costs, remember it for status callbacks;
        False if its sid was logged already.

        The funnel counts consent requests ("sent") apart from content ("sent:content") and from
        the service texts reconcile answers late ("sent:reply"). `in_flight`: the message whose
        in-flight entry this settles (0: the consent request). `found`: when the provider took a
        text the witness found there (bot/witness.py), as the entry says.
        """
        kind = "content" if content else "reply" if reply else "request"
        counter = "sent" if kind == "request" else f"sent:{kind}"
        self._name([flow])
        return self._log(flow, phone, "sent", text, provider_sid, self._messages(provider_sid)[0], cost=kind,
                         counter=f"{counter},witness:found" if found else counter,
                         stored=references.of(flow).get(text, text), in_flight=in_flight,
                         move=f"found at the provider, taken {found}" if found else "")

    def answer_late(self, message_sid: str) -> bool | None:
        """Take on answering an inbound text late (reconcile): True the first time, False once taken.

        None when the webhook processed it: its TwiML carried the answer.
        """
        key = answers_key(message_sid)
        if self.redis.exists(key):
            return False
        generation, _ = self._answers()
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.hexists(answered_key(generation, message_sid), message_sid)
            pipe.hexists(answered_key(generation - 1, message_sid), message_sid)
            pipe.exists(sid_key(message_sid))
            if any(pipe.execute()):
                return None
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "by", "reconcile")
            pipe.expire(key, SID_TTL)
            taken, _ = pipe.execute()
        return bool(taken)

    def claim_answer(self, message_sid: str, index: int) -> bool:
        """Claim the `index`th text answering an inbound text before sending it late: at most once.

        The claims last as long as the answer they claim is kept (two generations): a text called
        again later is known for good, and answered with nothing (see step.lua).
        """
        key = answers_key(message_sid)
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, str(index), "claimed")
            pipe.expire(key, 2 * MESSAGE_PERIOD)
            claimed, _ = pipe.execute()
        return bool(claimed)

    def unclaim_answer(self, message_sid: str, index: int) -> None:
        """Give back a claimed answer the provider certainly did not send, for a later reconcile."""
        self.redis.hdel(answers_key(message_sid), str(index))

    def record_import(self, flow: Flow, origin: str) -> None:
        """Log where a round's numbers came from, in the flow's ledger (A.6, C.13)."""
        self.remember_versions([flow])
        self._log(flow, "", "import", origin, "", ledger_key(flow.id))

    def record_export(self, flow: Flow, text: str) -> None:
        """Log an export of the flow's data, without any number in it (C.12)."""
        self._log(flow, "", "export", text, "", ledger_key(flow.id))

    def record_failure(self, flow: Flow, phone: str, code: int | None, message: str, *,
                       in_flight: int | None = None, settles: bool = True) -> None:
        """Log a send the provider refused; `in_flight`: the message whose in-flight entry it settles,
        or, without `settles`, leaves in flight (for the witness, or until the send is given back).

        Either way, an entry no longer in flight means the number was erased meanwhile: the failure is
        logged without it (see append.lua).
        """
        # Twilio's words for some refusals name the number: the entry outlives its erasure, the number must not.
        self._log(flow, phone, "send_failed", f"{code}: {without_number(message, phone)}", "", ledger_key(flow.id),
                  in_flight=in_flight, settles=settles)

    def give_back(self, flow: Flow, phone: str, message: int, why: str, *, in_flight: str = "") -> bool:
        """Give back content `message` released to a number the provider certainly did not send it to,
        so that a later try may release it; False if its bit was already clear (see give_back.lua).

        `in_flight`: the entry the witness read, which must still be there (bot/witness.py).
        """
        digest = self.digest(phone)
        keys = [content_key(flow.id, message), ledger_key(flow.id), head_key(flow.id), funnel_key(flow.id),
                subject_slot(digest)[0], in_flight_key(flow.id)]
        return bool(self._give_back(keys=keys, args=[phone, self._now(), flow.id, flow.content_hash, message, why,
                                                     _salt(), in_flight, digest]))

    def in_flight(self, flow: Flow) -> list[tuple[str, int, str]]:
        """Return (phone, message, entry) for each claim or release of the flow whose send is in flight
        (message 0: the consent request; the entry: see bot/keys.py's in_flight_key).

        A hash read whole: an entry lives from its claim to its outcome, so they are about as many
        as the sends running at once.
        """
        found = []
        for name, entry in self.redis.hgetall(in_flight_key(flow.id)).items():
            phone, _, message = _text(name).rpartition("|")
            found.append((phone, int(message), _text(entry)))
        return found

    def queue_in_flight(self, flow: Flow, phone: str, message: int, entry: str,
                        queue: Callable[[Pipeline], None]) -> bool:
        """Queue a number whose claim (or release) the witness gave back, once: `queue` writes its batch
        and job in the transaction that drops the entry and counts it; False if the entry moved meanwhile."""
        key, name = in_flight_key(flow.id), f"{phone}|{message}"
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    if _text(pipe.hget(key, name)) != entry:
                        return False
                    pipe.multi()
                    queue(pipe)
                    pipe.hdel(key, name)
                    pipe.hincrby(funnel_key(flow.id), "witness:again", 1)
                    pipe.execute()
                    return True
                except WatchError:  # another claim or outcome of the flow meanwhile: read the entry again
                    continue

    def _log(self, flow: Flow, phone: str, event: str, text: str, sid: str, out: str, *,
             counter: str | None = None, cost: str = "", stored: str | None = None, in_flight: int | None = None,
             move: str = "", settles: bool = True) -> bool:
        """Append an entry no state change brings; `stored` is the text as the ledger holds it, if not `text`.

        `in_flight` names the message whose in-flight entry the outcome settles (see append.lua).
        """
        digest = self.digest(phone) if phone else "-"
        keys = [ledger_key(flow.id), head_key(flow.id), out, funnel_key(flow.id), subject_slot(digest)[0],
                costs_key(flow.id), in_flight_key(flow.id)]
        now = self._now()
        # A message sent: one more in the day's cost counts (bot/lua/costs.lua).
        cost_field = f"{_day(flow.timezone, int(float(now) // 60))}|{cost}|{segments(text)}" if cost else ""
        return bool(self._append(keys=keys, args=[
            now, phone, flow.id, flow.content_hash, event, text if stored is None else stored, sid,
            self._messages(sid)[2] if sid else 0, _salt(),
            counter or event, cost_field, "" if in_flight is None else f"{'' if settles else '?'}{phone}|{in_flight}",
            move, digest, STATUS_RANK["delivered"]]))

    def record_status(self, provider_sid: str, status: str, error_code: str = "") -> tuple[str, str]:
        """Keep the furthest status a sent message reached; return its flow ("" if unknown) and, for a
        message an earlier version sent, its phone (else "": the callback names the number)."""
        rank = STATUS_RANK.get(status, 0)
        current, previous, ttl = self._messages(provider_sid)
        # A final status counts once in the flow's funnel, in the script that moves the message there.
        _, flow_id, phone = self._status(keys=[current, previous, legacy_out_key(provider_sid)],
                                         args=[provider_sid, status, rank, error_code.replace("|", "/"), ttl,
                                               STATUS_RANK["delivered"]])
        return _text(flow_id), _text(phone)

    def admit(self, flow: Flow, items: Sequence[str], siblings: Sequence[Flow] = (), *,
              dry_run: bool = False, batch_id: str | None = None) -> str:
        """Mark new numbers queued for a round; return a letter per item (see admit.lua).

        `items` are French mobiles in E.164, each alone or as 'phone/region'. Unless it is a dry
        run, the numbers queued are stored as batch `batch_id` (a fresh one if None) and the id
        goes on the flow's list of admitted batches, in the same script, until `settle` says its
        job is queued: Redis failing in between loses no number (see `unsettled`).
        """
        if any(not FRENCH_MOBILE_E164.match(item)
               or (len(item) != ADMITTED_PHONE and item[ADMITTED_PHONE:ADMITTED_PHONE + 1] != "/") for item in items):
            raise ValueError("only French mobiles in E.164 (+33 6/7 and 8 digits) are admitted to a round")
        if len(items) > ADMIT_AT_MOST:
            raise ValueError(f"at most {ADMIT_AT_MOST} numbers are admitted at once, not {len(items)}")
        batch = ",".join(items)  # as the batch is stored, so a comma within an item would split it
        if items and batch.count(",") != len(items) - 1:
            raise ValueError("a postcode admitted with a number holds no comma")
        phones = [item[:ADMITTED_PHONE] for item in items]
        others = [other for other in siblings if other.id != flow.id]
        batch_id = batch_id or new_batch_id()
        keys = [queued_key(flow.id), suppression_key(flow.controller_id), funnel_key(flow.id), admitted_key(flow.id),
                batch_key(flow.id, batch_id), batches_key(flow.id), asked_key(flow.id)]
        if others:
            keys += [states.slot(other.id, phone)[0] for phone in phones for other in others]
        # One argument for the numbers, each mobile (12 characters) then its digest (32): redis-py
        # encodes each argument apart, which cost more than the script's cutting of one string.
        digest = self.digest
        numbers = "".join([phone + digest(phone) for phone in phones])
        return _text(self._admit(keys=keys, args=[self.clock(), ",".join(str(o.expiry_seconds) for o in others),
                                                  "1" if dry_run else "0", numbers, batch, flow.sender, batch_id,
                                                  flow.id]))

    def settle(self, flow: Flow, admitted: Sequence[str]) -> None:
        """Say these admitted batches (their ids, as `unsettled` gives them) have their jobs queued."""
        with self.redis.pipeline(transaction=False) as pipe:
            for entry in admitted:
                pipe.lrem(admitted_key(flow.id), 1, entry)
            pipe.execute()

    def unsettled(self, flow: Flow) -> list[str]:
        """Return the ids of the admitted batches whose jobs were never queued."""
        return [_text(entry) for entry in self.redis.lrange(admitted_key(flow.id), 0, -1)]

    def release(self, flow: Flow, phone: str, message: int, *, region: str | None = None) -> str:
        """Claim content message `message` (1-based) for a consented number; 'ok' or why not.

        Given the voter's calendar `region`, as a worker sending it does, the release is in flight
        until its outcome is recorded (bot/witness.py).
        """
        digest = self.digest(phone)
        keys = [states.slot(flow.id, phone)[0], suppression_key(flow.controller_id), content_key(flow.id, message),
                ledger_key(flow.id), head_key(flow.id), funnel_key(flow.id), subject_slot(digest)[0],
                in_flight_key(flow.id)]
        self._name([flow])
        args = [phone, digest, self._now(), flow.id, flow.content_hash,
                references.of(flow)[flow.texts.content[message - 1]], message, _salt(), flow.sender,
                "-" if region is None else region]
        return _text(self._release(keys=keys, args=args))

    def unrelease(self, flow: Flow, phone: str, message: int) -> None:
        """Hand back content `message` of a number it was never sent to (an answer left unsent), for a
        later release: the bit the step set when it said the content."""
        if FRENCH_MOBILE_E164.fullmatch(phone):  # the only numbers with a bit (bit_of in state.lua)
            self.redis.setbit(content_key(flow.id, message), _bit_of(phone), 0)

    def count(self, flow: Flow, counts: dict[str, int]) -> None:
        """Add to the flow's funnel counters (import outcomes decided outside Redis)."""
        if counts:
            with self.redis.pipeline(transaction=True) as pipe:
                for name, amount in counts.items():
                    pipe.hincrby(funnel_key(flow.id), name, amount)
                pipe.execute()

    def funnel(self, flow: Flow) -> dict[str, int]:
        """Return the flow's counters, with open questions past expiry counted as expired.

        The step script counts moves, one field each (see count() in bot/lua/step.lua): a text's
        ("i:from>to") apart from any other's ("m:from>to", to "-" when erased), and open questions
        per hour asked ("h:HOUR"). Here they become numbers per state, and numbers that answered
        the question they were asked ("answered").
        """
        totals: dict[str, int] = {}
        expired_lately = 0
        for raw_name, raw_value in self.redis.hgetall(funnel_key(flow.id)).items():
            name, value = _text(raw_name), int(raw_value)
            kind, _, rest = name.partition(":")
            if kind == "h":
                if (int(rest) + 1) * 3600 + flow.expiry_seconds <= self.clock():
                    expired_lately += value
                continue
            if kind not in ("i", "m"):
                totals[name] = totals.get(name, 0) + value
                continue
            source, _, dest = rest.partition(">")
            if kind == "i" and source == "asked":
                totals["answered"] = totals.get("answered", 0) + value
            if source not in ("new", "?"):  # "?": a record found unreadable, in a state nobody knows
                totals[source] = totals.get(source, 0) - value
            if dest not in ("new", "-"):
                totals[dest] = totals.get(dest, 0) + value
        opened = totals.get("asked", 0) + totals.get("clarified", 0)
        totals["pending"] = opened - expired_lately
        totals["expired"] = totals.get("expired", 0) + expired_lately
        return totals

    def numbers_in(self, flow: Flow, state: str) -> Iterator[str]:
        """Yield the numbers in `state` in a flow (a scan: for broadcasts, not the hot path)."""
        for phone, found, _, _ in self.records(flow):
            if found == state:
                yield phone

    def recipients(self, flow: Flow, state: str) -> Iterator[tuple[str, str]]:
        """Yield (phone, calendar region) for the numbers in `state` in a flow (a scan, for broadcasts)."""
        for phone, record, (found, _, _) in self._readable(flow, 500):
            if found == state:
                yield phone, states.region(record)

    def set_round(self, flow: Flow, **settings: str) -> None:
        """Record a round's settings and origin (rate, broker, contract, operator ...)."""
        self.redis.hset(round_key(flow.id), mapping=settings)

    def remember_versions(self, flows: Sequence[Flow]) -> None:
        """Keep each flow's data under its content hash, so a proof names the texts a hash stands for."""
        with self.redis.pipeline(transaction=False) as pipe:
            for flow in flows:
                pipe.hsetnx(versions_key(flow.id), flow.content_hash, flow.canonical)
            references.register(flows, pipe)
            pipe.execute()
        self._named.update(flow.content_hash for flow in flows)

    def _name(self, flows: Sequence[Flow]) -> None:
        """Make sure the references the ledger is about to hold for these flows' texts resolve.

        The first time, every flow loaded is named with them: a replayed webhook, which changes
        nothing, finds its flows' texts there already.
        """
        if all(flow.content_hash in self._named for flow in flows):
            return  # every text after the first: no more than this on the webhook's path
        new = list({flow.content_hash: flow for flow in (*self.flows.values(), *flows)
                    if flow.content_hash not in self._named}.values())
        with self.redis.pipeline(transaction=False) as pipe:
            references.register(new, pipe)
            pipe.execute()
        self._named.update(flow.content_hash for flow in new)

    def versions(self, flow_id: str) -> dict[str, str]:
        """Return the flow's data by content hash, for every version this deployment ran."""
        return {_text(k): _text(v) for k, v in self.redis.hgetall(versions_key(flow_id)).items()}

    def round_settings(self, flow: Flow) -> dict[str, str]:
        """Return what was recorded when the flow's rounds were started."""
        return {_text(k): _text(v) for k, v in self.redis.hgetall(round_key(flow.id)).items()}

    def next_slot(self, flow: Flow, interval: float) -> float | None:
        """Reserve the sender's next slot; return seconds to wait for it, or None while paused."""
        micros = self._pace(keys=[pace_key(flow.sender), paused_key(flow.id)], args=[round(interval * 1e6)])
        return None if micros < 0 else micros / 1e6

    def pause(self, flow: Flow) -> None:
        """Stop every worker sending for this flow, from the next number on."""
        self.redis.set(paused_key(flow.id), self._now())

    def unpause(self, flow: Flow) -> None:
        self.redis.delete(paused_key(flow.id))

    def is_paused(self, flow: Flow) -> bool:
        return bool(self.redis.exists(paused_key(flow.id)))

    def park(self, flow: Flow, work: str, pipe: Pipeline | None = None) -> None:
        """Keep the rest of a batch a pause interrupted ("kind|message|batch id"), for `round resume`."""
        (pipe or self.redis).rpush(parked_key(flow.id), work)

    def unpark(self, flow: Flow) -> list[str]:
        """Take back every parked remainder, atomically."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrange(parked_key(flow.id), 0, -1)
            pipe.delete(parked_key(flow.id))
            parked, _ = pipe.execute()
        return [_text(item) for item in parked]

    def message_status(self, provider_sid: str) -> str | None:
        """Return the furthest status recorded for a sent message (for 35 to 70 days)."""
        current, previous, _ = self._messages(provider_sid)
        record = _text(self.redis.hget(current, provider_sid) or self.redis.hget(previous, provider_sid))
        if record:
            return record[1:].partition("|")[0] or None
        return _text(self.redis.hget(legacy_out_key(provider_sid), "status")) or None

    def _answers(self) -> tuple[int, int]:
        """Return this generation of answers to inbound texts, and its time to live in seconds: until
        35 days after it ends (bot/keys.py answered_key)."""
        now = int(self.clock())
        return now // MESSAGE_PERIOD, (now // MESSAGE_PERIOD + 2) * MESSAGE_PERIOD - now

    def _messages(self, provider_sid: str) -> tuple[str, str, int]:
        """Return the hashes of this generation and the previous one that may hold a sent message's
        record, and this generation's time to live in seconds: until 35 days after it ends."""
        generation = int(self.clock() // MESSAGE_PERIOD)
        ttl = (generation + 2) * MESSAGE_PERIOD - int(self.clock())
        return messages_key(generation, provider_sid), messages_key(generation - 1, provider_sid), ttl

    def state(self, flow: Flow, phone: str) -> str:
        """Return the number's state in a flow, with expiry evaluated (read-only)."""
        key, field = states.slot(flow.id, phone)
        record = self.redis.hget(key, field)
        if record is None:
            return "new"
        try:
            state, asked_at, _ = states.decode(record)
        except states.StateRecordError:
            return "unreadable"  # shown as it is: `states check` lists it, an objection still holds
        if state in machine.OPEN and float(self._now()) - asked_at >= flow.expiry_seconds:
            return "expired"
        return state

    def region(self, flow: Flow, phone: str) -> str:
        """Return the calendar region kept beside the number's state ("" for the national one, or none kept)."""
        record = self.redis.hget(*states.slot(flow.id, phone))
        try:
            return states.region(record) if record is not None else ""
        except states.StateRecordError:
            return ""  # an unreadable record: the national calendar, as for a number never asked

    def is_queued(self, flow: Flow, phone: str) -> bool:
        """Say whether a round queued the number for the flow's consent request (French mobiles only)."""
        if not FRENCH_MOBILE_E164.fullmatch(phone):  # the only numbers with a bit (bit_of in state.lua)
            return False
        return bool(self.redis.getbit(queued_key(flow.id), _bit_of(phone)))

    def still_ours(self, flow: Flow, phone: str, message: int = 0) -> bool:
        """Say whether a worker's claimed consent request (`message` 0), or its released content `message`,
        may still go: the number neither erased nor objecting since, and where the claim left it."""
        return self.state(flow, phone) == ("consented" if message else "asked") and not self.is_suppressed(flow, phone)

    def opened_by(self, flow: Flow, phone: str, message_sid: str) -> bool:
        """Say whether the number's open question in the flow is the one its text `message_sid` opened (a
        START's), not one asked since: the question's time is that text's step's, to the second."""
        record = self.redis.hget(*states.slot(flow.id, phone))
        try:
            asked_at = states.decode(record)[1] if record else None
        except states.StateRecordError:
            return False
        for name, (fields, at) in self.personal(phone).items():
            flow_id, _, entry_id = name.partition("|")
            inbound = str(fields.get("event", "")).startswith("in:")
            if flow_id != flow.id or fields.get("sid") != message_sid or not inbound:
                continue
            if at is None:  # in the stream: its time is the entry's
                found = self.redis.xrange(ledger_key(flow.id), min=entry_id, max=entry_id)
                at = _text(found[0][1].get(b"at")) if found else None
            try:
                return asked_at is not None and at is not None and abs(asked_at - float(at)) < 1
            except ValueError:  # a time this version did not write: not known to be this question
                return False
        return False

    def is_suppressed(self, flow: Flow, phone: str) -> bool:
        """Say whether the number's objection to this flow's controller holds on the flow's sender."""
        return objects(self.redis.hget(suppression_key(flow.controller_id), self.digest(phone)), flow.sender)

    def ledger(self, flow_id: str) -> list[tuple[str, dict[str, str]]]:
        """Return the flow's ledger entries in order, each with its personal fields if not erased."""
        return ledger.read(self.redis, flow_id)

    def recent(self, flow_id: str, count: int = 20) -> list[tuple[str, dict[str, str]]]:
        """Return the flow's latest ledger entries, newest first, without reading the rest."""
        return ledger.latest(self.redis, flow_id, count)

    def verify_ledger(self, flow_id: str) -> str | None:
        """Walk the hash chain; return the id of the first entry that does not fit, or None."""
        return ledger.verify(self.redis, flow_id)

    def pid(self, digest: str) -> bytes | None:
        """Return the random id standing for the number whose HMAC is `digest` in ledgers, if it has one."""
        return self.pids([digest])[0]

    def pids(self, digests: Sequence[str]) -> list[bytes | None]:
        """Return the random ids standing for these HMACs' numbers in ledgers (None: none), in one round trip.

        One an earlier version kept under the long field or in a key of its own is read there (the
        scripts move it when they next write).
        """
        with self.redis.pipeline(transaction=False) as pipe:
            for digest in digests:
                bucket, field = subject_slot(digest)
                pipe.hget(bucket, field)
                pipe.hget(bucket, legacy_subject_field(digest))
                pipe.get(legacy_subject_key(digest))
            found = pipe.execute()
        return [short or long or key for short, long, key in zip(found[::3], found[1::3], found[2::3], strict=True)]

    def person(self, phone: str, retired: Collection[str] = ()) -> dict[str, list[dict[str, str]]]:
        """Return every ledger entry held on a number, by flow, oldest first (GDPR art. 15).

        Only entries whose committed number is this one: the link from a number to its person id
        is no part of any chain, and pointed at another person's id it would lend their answers.
        Those archived off Redis are read for the flows loaded and the `retired` ones named.
        """
        held: dict[str, list[dict[str, str]]] = {}
        texts = references.table(self.redis)
        for name, (stored, at) in sorted(self.personal(phone, retired).items()):
            flow_id, _, entry_id = name.partition("|")
            fields = references.resolve(stored, texts)
            fields.pop("salt", None)
            if at is None:
                found = self.redis.xrange(ledger_key(flow_id), min=entry_id, max=entry_id)
                at = _text(found[0][1].get(b"at")) if found else ""
            fields["at"] = at
            held.setdefault(flow_id, []).append({"entry": entry_id, **fields})
        for entries in held.values():
            entries.sort(key=lambda entry: ledger.entry_order(entry["entry"]))
        return held

    def personal(self, phone: str, retired: Collection[str] = ()) -> dict[str, tuple[dict, str | None]]:
        """Return the personal fields, salts included, of every ledger entry held on a number, by
        "flow|entry id", with the time of those archived off Redis (None for those in Redis).

        Those archived are opened from the sealed files (bot/personal_archive.py); an entry in both,
        the move interrupted, is read from Redis. Only entries whose committed number is this one.
        """
        pid = self.pid(self.digest(phone))
        found: dict[str, tuple[dict, str | None]] = {}
        if pid is None:
            return found
        for flow_id in sorted({*self.flows, *retired}):
            for entry_id, (raw, at) in personal_archive.held(self.redis, self.personal_dir, flow_id, phone,
                                                                pid.decode()).items():
                found[f"{flow_id}|{entry_id}"] = (ledger.stored_fields(raw.encode("utf-8", "surrogateescape")), at)
        for name, raw in self.redis.hgetall(person_key(pid.decode())).items():
            if name != b"pid":
                found[name.decode()] = (ledger.stored_fields(raw), None)
        return {name: (fields, at) for name, (fields, at) in found.items() if fields.get("phone") == phone}

    def erase(self, flows: Sequence[Flow | Retired], phone: str, *, whole: bool, objection: bool,
              controllers: Sequence[str] = (), contents: Mapping[str, int] | None = None) -> dict[str, int]:
        """Delete what is held on a number in `flows`, keeping its suppression HMAC; log the erasure.

        No bit of the number stays in the flows' bitmaps. `whole` also forgets that the number
        was ever queued (an erasure request); without it (retention), each flow that asked it
        keeps its HMAC in its asked-before set, so it is never asked again. `objection` puts the
        number on the suppression list of each flow's controller and of `controllers`. `contents`:
        each loaded flow's `content_messages`, read once for many erasures (the purge's).
        """
        digest = self.digest(phone)
        held = self.personal(phone, [flow.id for flow in flows])
        sids = {fields["sid"] for fields, _ in held.values() if fields.get("sid")}
        archived: dict[str, list[str]] = {}  # by flow: the entries whose sealed fields the erasure makes unreadable
        for name, (_, at) in held.items():
            if at is not None:
                flow_id, _, entry_id = name.partition("|")
                archived.setdefault(flow_id, []).append(entry_id)
        keys = [subject_slot(digest)[0]]
        args: list[str | int] = [phone, digest, self._now(), _salt(), len(flows), int(whole), int(objection)]
        for flow in flows:
            keys += [states.slot(flow.id, phone)[0], ledger_key(flow.id), head_key(flow.id), funnel_key(flow.id),
                     queued_key(flow.id), asked_key(flow.id)]
            if isinstance(flow, Flow):
                messages = contents[flow.id] if contents is not None else self.content_messages(flow)
            else:
                messages = flow.contents
            args += [flow.id, flow.content_hash, messages, " ".join(archived.get(flow.id, []))]
        owners = [flow.controller_id for flow in flows if isinstance(flow, Flow)] + list(controllers)
        objected = [suppression_key(owner) for owner in dict.fromkeys(owners)] if objection else []
        keys += objected
        args.append(len(objected))
        for sid in sorted(sids):
            keys += [*self._messages(sid)[:2], legacy_out_key(sid)]
        # The flows not erased here: one still holding a state of the number keeps its person, whose
        # entries there may all be archived (bot/personal_archive.py), none left in the person's hash.
        # Retired flows too, those that sealed lines (erase.lua reads them): those open under the person id.
        kept = [] if whole else sorted(set(self.flows) - {flow.id for flow in flows})
        report = _text(self._erase(keys=keys, args=[*args, *sorted(sids), *kept]))
        self._forget_pages(digest)
        pairs = (item.partition("=") for item in report.split(",") if item)
        return {flow_id: int(count) for flow_id, _, count in pairs}

    def content_messages(self, flow: Flow) -> int:
        """Return how many content messages a number of the flow may hold a bit or an in-flight entry of:
        the flow's, or more where its file had more before (each counted in its funnel once released)."""
        released = [int(name[8:]) for name in map(_text, self.redis.hkeys(funnel_key(flow.id)))
                    if name.startswith("content:") and name[8:].isdigit()]
        return max([len(flow.texts.content), *released])

    def _forget_pages(self, digest: str) -> None:
        """Delete the voter-page links and sessions that name the number, and its link count (Promise 9).

        They hold the number itself, so an erasure or a purge must reach them, not wait for their expiry.
        """
        index = voter_keys_key(digest)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(index)
                    held = pipe.smembers(index)
                    pipe.multi()
                    pipe.delete(index, voter_asks_key(digest), *held)
                    pipe.execute()
                    return
                except WatchError:  # a link given meanwhile: read the index again
                    continue

    def retired(self, loaded: Collection[str]) -> list[Retired]:
        """Return the flows not in `loaded` (their file removed) whose numbers Redis still holds.

        Every flow that ever held a number is on a registry, which the scripts that write a flow's
        numbers add it to (step.lua, admit.lua): no SCAN of the keyspace, which a national campaign's
        makes long, on a voter's page or erasure. Only a flow found there goes through a SCAN or two
        of its own.
        """
        found = []
        for flow_id in self._unloaded(loaded):
            contents = sorted(int(_text(key).rpartition(":")[2])
                              for key in self.redis.scan_iter(match=key_for("content", flow_id, "*"), count=10_000))
            if not self.redis.exists(*_holding_keys(flow_id)) and not contents and not self.state_hashes(flow_id):
                continue
            last = self.redis.xrevrange(ledger_key(flow_id), count=1)
            found.append(Retired(flow_id, _text(last[0][1].get(b"flow_hash")) if last else "",
                                 contents[-1] if contents else 0))
        return found

    def objection_lists(self) -> list[str]:
        """Return every controller id with a suppression list in Redis (from a registry, as `retired`)."""
        return sorted(self._registry(objection_lists_key(), objection_lists_listed_key(), suppression_key("*")))

    def relist(self) -> None:
        """Add to the registries what the keys name (as the first reading does): what a process of an
        earlier version, still running during an upgrade, wrote without them. For the daily purge."""
        for members, pattern in ((held_flows_key(), funnel_key("*")), (objection_lists_key(), suppression_key("*"))):
            self._list_from_keys(members, pattern)

    def unlist_emptied(self, loaded: Collection[str]) -> list[str]:
        """Take the flows no longer loaded that hold no number off the registry `retired` reads, so that
        no rights request reads them again; return their ids. For the purge, once it has emptied them."""
        return [flow_id for flow_id in self._unloaded(loaded)
                if self._unlist(keys=[held_flows_key(), *_holding_keys(flow_id)],
                                args=[flow_id, states.state_key(flow_id, "")])]

    def removed_flows(self, loaded: Collection[str]) -> list[str]:
        """Return the flows that held numbers whose file is not in `loaded` (removed), from their registry.

        Read only (a layout check writes nothing): where the registry was never listed from the keys,
        they are read too, each time, until a rights request or the purge lists them.
        """
        held = {_text(member) for member in self.redis.smembers(held_flows_key())}
        if not self.redis.exists(held_flows_listed_key()):
            held |= self._ids_from_keys(funnel_key("*"))
        return sorted(flow_id for flow_id in held if flow_id not in loaded)

    def _unloaded(self, loaded: Collection[str]) -> list[str]:
        """Return the flows on the registry of those that held numbers that are not in `loaded`, in order."""
        held = self._registry(held_flows_key(), held_flows_listed_key(), funnel_key("*"))
        return sorted(flow_id for flow_id in held if flow_id not in loaded)

    def _registry(self, members: str, listed: str, pattern: str) -> set[str]:
        """Read a registry's set of ids; the first time, add those the keys under `pattern` name (an
        earlier version kept no registry): one SCAN for good."""
        if not self.redis.exists(listed):
            self._list_from_keys(members, pattern)
            self.redis.set(listed, "1")
        return {_text(member) for member in self.redis.smembers(members)}

    def _list_from_keys(self, members: str, pattern: str) -> None:
        """Add to a registry the ids the keys under `pattern` name (a SCAN)."""
        found = self._ids_from_keys(pattern)
        if found:
            self.redis.sadd(members, *found)

    def _ids_from_keys(self, pattern: str) -> set[str]:
        """Return the ids the keys under `pattern` name: what follows their last colon (a SCAN)."""
        return {_text(name).rpartition(":")[2] for name in self.redis.scan_iter(match=pattern, count=10_000)}

    def unqueue_unasked(self, flow_id: str, phones: Collection[str]) -> int:
        """Clear the queued bit of those numbers the flow never asked (no state record); return how many.

        Their batch went unsent, or their claim was refused: the bit would be all that says they
        were on a list.
        """
        mobiles = sorted({phone for phone in phones if FRENCH_MOBILE_E164.match(phone)})
        with self.redis.pipeline(transaction=False) as pipe:
            for phone in mobiles:
                pipe.hexists(*states.slot(flow_id, phone))
            held = pipe.execute()
        unasked = [phone for phone, found in zip(mobiles, held, strict=True) if not found]
        with self.redis.pipeline(transaction=False) as pipe:
            for phone in unasked:
                pipe.setbit(queued_key(flow_id), _bit_of(phone), 0)
            pipe.execute()
        return len(unasked)

    def retire(self, flow_id: str) -> int:
        """Drop the bitmaps of a flow that sends no more (ended, or its file removed); return the
        numbers marked queued, each kept as its HMAC in the asked-before set.

        No offset is left to read a number from, and still no round of the flow asks a number
        twice, should it come back. A state hash of an earlier layout goes too (its numbers erased).
        """
        queued, kept = queued_key(flow_id), 0
        size = self.redis.strlen(queued)
        for start in range(0, size, BITMAP_CHUNK):
            chunk = self.redis.getrange(queued, start, start + BITMAP_CHUNK - 1)
            digests = [self.digest(_bit_phone((start + at) * 8 + bit))
                       for at in (match.start() for match in NONZERO.finditer(chunk))
                       for bit in range(8) if chunk[at] & (0x80 >> bit)]
            for first in range(0, len(digests), 10_000):
                self.redis.sadd(asked_key(flow_id), *digests[first:first + 10_000])
            kept += len(digests)
        contents = [key for key in self.redis.scan_iter(match=key_for("content", flow_id, "*"), count=10_000)]
        self.redis.delete(queued, legacy_state_key(flow_id), *contents)
        return kept

    def records(self, flow: Flow, *, batch: int = 500) -> Iterator[tuple[str, str, int, float]]:
        """Yield (phone, state, asked at, last touched) for every number the flow holds (a scan).

        A record not in the stored layout is passed over and logged: one damaged record must not
        stop a broadcast or a purge. `unreadable` lists them.
        """
        for phone, _, decoded in self._readable(flow, batch):
            yield (phone, *decoded)

    def _readable(self, flow: Flow, batch: int) -> Iterator[tuple[str, bytes, tuple[str, int, float]]]:
        """Yield (phone, stored value, decoded) for the flow's readable records; log the others."""
        for phone, record in self._scan(flow, batch):
            try:
                yield phone, record, states.decode(record)
            except states.StateRecordError:
                log.error("flow %s: unreadable state record of number %s… passed over (see `states check`)",
                          flow.id, self.digest(phone)[:8])

    def unreadable(self, flow: Flow, *, batch: int = 500) -> Iterator[tuple[str, str]]:
        """Yield (phone, stored value) for every state record of the flow that cannot be read (a scan)."""
        for phone, record in self._scan(flow, batch):
            try:
                states.decode(record)
            except states.StateRecordError:
                yield phone, _text(record)

    def numbers_held(self, flow: Retired) -> list[str]:
        """Return every number a retired flow holds a state of, in this layout or an earlier one (a scan)."""
        phones = [phone for phone, _ in self._scan(flow, 500)]
        return phones + [_text(phone) for phone, _ in self.redis.hscan_iter(legacy_state_key(flow.id), count=1000)]

    def _scan(self, flow: Flow | Retired, batch: int) -> Iterator[tuple[str, bytes]]:
        suffixes = self.state_hashes(flow.id)
        for start in range(0, len(suffixes), batch):
            chunk = suffixes[start:start + batch]
            with self.redis.pipeline(transaction=False) as pipe:
                for suffix in chunk:
                    pipe.hgetall(states.state_key(flow.id, suffix))
                found = pipe.execute()
            for suffix, fields in zip(chunk, found, strict=True):
                for digits, record in fields.items():
                    yield states.phone_of(suffix, digits), record

    def state_hashes(self, flow_id: str, digits: int = states.SUFFIX) -> list[str]:
        """Return the suffixes of the flow's state hashes Redis holds, in order (a SCAN of the keyspace).

        A flow of a few thousand numbers fills a few thousand of its 100,000 names: the keyspace is
        walked once rather than every name asked for. `digits`: the hashes of an earlier layout.
        """
        prefix = states.state_key(flow_id, "")
        pattern = glob_of(prefix)[:-1] + "[0-9]" * digits
        return sorted({_text(name)[len(prefix):] for name in self.redis.scan_iter(match=pattern, count=10_000)})

    def forget_outbox(self, *phones: str) -> int:
        """Delete the local outbox's messages to these numbers (erasure, retention); return how many."""
        wanted = {phone.encode() for phone in phones}
        ids = [entry_id for entry_id, fields in self.redis.xrange(OUTBOX_KEY) if fields.get(b"to") in wanted]
        return self.redis.xdel(OUTBOX_KEY, *ids) if ids else 0

    def outbox_add(self, sender: str, to: str, body: str, sid: str) -> None:
        """Keep a message the local outbox gateway would have sent."""
        self.redis.xadd(OUTBOX_KEY, {"at": self._now(), "from": sender, "to": to, "body": body,
                                     "sid": sid})

    def outbox(self, phone: str | None = None) -> list[dict[str, str]]:
        """Return what the outbox holds, for one number or all."""
        messages = [{_text(k): _text(v) for k, v in fields.items()}
                    for _, fields in self.redis.xrange(OUTBOX_KEY)]
        return [m for m in messages if phone is None or m["to"] == phone]

    def outbox_thread(self, phone: str) -> list[tuple[str, dict[str, str]]]:
        """Return the outbox's messages to one number with their stream ids, oldest first (dev phone)."""
        return [(_text(entry_id), fields) for entry_id, raw in self.redis.xrange(OUTBOX_KEY)
                if (fields := {_text(k): _text(v) for k, v in raw.items()})["to"] == phone]

    def _now(self) -> str:
        return f"{self.clock():.3f}"


def _holding_keys(flow_id: str) -> list[str]:
    """Return a flow's keys that hold numbers whatever their name's end (besides its state hashes and
    content bitmaps): an earlier version's state hash, the queued bitmap, batches, admitted and parked."""
    return [legacy_state_key(flow_id), queued_key(flow_id), batches_key(flow_id), admitted_key(flow_id),
            parked_key(flow_id)]


@lru_cache(maxsize=256)
def _step_keys(flow: Flow) -> tuple[str, ...]:
    """Return a flow's keys the step script takes after the number's state hash (see step.lua)."""
    return (ledger_key(flow.id), head_key(flow.id), suppression_key(flow.controller_id), funnel_key(flow.id),
            content_key(flow.id, 1), queued_key(flow.id))


@lru_cache(maxsize=512)
def _plan(flows: tuple[Flow, ...], trigger: str, inbound: bool, window_open: bool, shut: frozenset[str],
          check_suppressed: bool, first: bool, twiml: bool = True, inflight: bool = False) -> str:
    """Write what the step script needs as a Lua table; cached, since flows and the machine are fixed.

    The table is compiled into the script itself (a script per plan, loaded once), so no call
    spends time decoding it.
    """
    rows = {"steps": _row(trigger, window_open), "steps_shut": _row(trigger, False)}
    if trigger in OBJECTIONS:
        # A record that cannot be read is no reason to keep sending: it objects like a new number would.
        for steps in rows.values():
            if steps:
                steps["unreadable"] = steps["new"]
    # The other flows on the sender: an objection stops them all; a START makes those it had
    # stopped askable by the next round, without asking them now (one open question at a time).
    others = {"opted_out": "new|"} if trigger == "start" else rows["steps"]
    said = {say for steps in rows.values() for step in steps.values() for say in step.partition("|")[2].split(",")}
    return lua_value({
        "trigger": trigger, "inbound_event": f"in:{trigger.upper()}", "event": "in" if inbound else "",
        "check_suppressed": check_suppressed, "first": first, "twiml": twiml,
        "objection": trigger in OBJECTIONS, "everywhere": trigger in EVERYWHERE, "inflight": inflight,
        "open": {state: True for state in machine.OPEN},
        **rows, "others": others, "shut": {region: True for region in sorted(shut)},
        "known": {region: True for region in REGIONS},
        "flows": [{"id": f.id, "hash": f.content_hash, "expiry": f.expiry_seconds, "sender": f.sender,
                   "controller": f.controller_id,
                   # The ledger names them (bot/references.py).
                   "texts": {key: references.of(f)[f.texts.say(key)] for key in sorted(said) if key},
                   # What each text costs, by the reference a reply holds (bot/lua/answers.lua).
                   "parts": {references.of(f)[f.texts.say(key)]: f"{_cost_kind(key)}|{segments(f.texts.say(key))}"
                             for key in sorted(said) if key}} for f in flows],
    })


def _cost_kind(say: str) -> str:
    """Name what a text the machine says is, in the cost counts: a consent request, content, or a reply."""
    return "request" if say == "consent_request" else say if say == "content" else "reply"


@lru_cache(maxsize=1024)
def _day(timezone: ZoneInfo, minute: int) -> str:
    """Return the day, in `timezone`, of a minute since 1970 (days change on a whole minute)."""
    return dt.datetime.fromtimestamp(minute * 60, timezone).date().isoformat()


def _row(trigger: str, window_open: bool) -> dict[str, str]:
    """Write what `trigger` does from each state it acts on, as "dest|say,say" (a string: fewer tables to build)."""
    return {state: f"{s.dest}|{','.join(s.says)}"
            for state, s in machine.row(trigger, window_open=window_open).items() if s.changes or s.says}


def objects(value: bytes | str | None, sender: str) -> bool:
    """Say whether an objection (a suppression hash's value) holds for `sender` (as `objects` in state.lua).

    The value is when the objection was made, then each sender a START lifted it for.
    """
    return value is not None and sender not in _text(value).split("|")[1:]


def lua_value(value: object) -> str:
    """Write a value of strings, integers, booleans, lists and string-keyed dicts as a Lua literal."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # Every byte outside printable ASCII, and the quote and backslash, as a decimal escape.
        return '"' + "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:03d}"
                             for b in value.encode()) + '"'
    if isinstance(value, list | tuple):
        return "{" + ", ".join(lua_value(item) for item in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua_value(str(k))}] = {lua_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no Lua literal for {type(value).__name__}")


def lua(*names: str) -> str:
    """Return the Lua source of the named scripts, joined (the helpers come first)."""
    return (states.lua_codes() + f"local SUBJECT_BUCKET, SUBJECT_FIELD = {SUBJECT_BUCKET}, {SUBJECT_FIELD}\n"
            + f"local ANSWER_BUCKETS, ANSWER_PERIOD = {ANSWER_BUCKETS}, {MESSAGE_PERIOD}\n"
            + f"local SEEN_BUCKET, SEEN_FIELD = {SEEN_BUCKET}, {SEEN_FIELD}\n"
            + "\n".join((LUA / f"{name}.lua").read_text() for name in names))


SALT_BYTES = 12  # 96 bits: the other fields of an entry can all be guessed, so trying salts is the only way in


def _salt() -> str:
    return secrets.token_hex(SALT_BYTES)  # fresh per script call: ledger salts (a new person id is drawn from it)


def _bit_of(phone: str) -> int:
    """Return where a French mobile sits in a flow's bitmaps (mobile_bit in state.lua; `_bit_phone` reverses it)."""
    return int(phone[3:12]) - 600_000_000


def _bit_phone(offset: int) -> str:
    """Return the French mobile at `offset` of a flow's bitmaps (see mobile_bit in state.lua)."""
    return f"+336{offset:08d}" if offset < 100_000_000 else f"+337{offset - 100_000_000:08d}"


def new_batch_id(origin: str = "") -> str:
    """Name a new batch of numbers: the import it came from, if any, then a random part.

    Nothing in it tells what the batch holds; the import's id lets each claim name its import.
    """
    return f"{origin}.{secrets.token_hex(8)}" if origin else secrets.token_hex(8)


def origin_of(batch_id: str) -> str:
    """Return the id of the import a batch came from ("" for none: a broadcast's, or an earlier version's)."""
    origin, dot, _ = batch_id.partition(".")
    return origin if dot else ""


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    # A tampered entry may hold invalid UTF-8: show it, never fail on it.
    return value.decode(errors="replace") if isinstance(value, bytes) else value
