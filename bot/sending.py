"""What the workers run: batches of consent requests and content, paced, inside the window only."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

import redis
from redis.client import Pipeline
from rq import Queue

from bot import Accord, current
from bot.batches import Batches
from bot.carrying import Carrier
from bot.conversation import handle_carrier_stop
from bot.flows import MIN_VALIDITY, Flow
from bot.gateways import SendError
from bot.store import origin_of
from bot.windows import REGIONS, region_of

QUEUE = "accord"
BATCH = 500  # numbers per job: one job per number would cost ~580 bytes and ~50 commands each
RETRIES = 3  # in place, for a send the provider certainly did not take (429, its queue full)
RETRY_PAUSE = 0.5  # seconds before the first of them, doubling
# Still refused after those: the claim goes back and the number goes again later in the round, as a
# batch of its own, LATER_FIRST seconds on, doubling up to LATER_LONGEST, LATER_AT_MOST times in one
# window; then, or once its window shuts, it waits for the next window as any deferred text.
LATER_FIRST = 60.0
LATER_LONGEST = 1800.0
LATER_AT_MOST = 8
BUSY = "not sent, provider busy"
SHUT = "not sent, window shut"  # while it waited for its slot or a retry: it goes at the next window
GONE = "not sent, erased or objected meanwhile"  # while its send was out or retried: it goes no more
DEFAULT_RATE = 10  # messages per second per sender, shared by all workers (an alphanumeric default)
STORE_PATIENCE = 60.0  # seconds a worker waits for Redis to record a text that already went out
log = logging.getLogger(__name__)
# Slots 1% further apart than the rate asks: a worker wakes for its slot a few milliseconds late
# now and then, and up to 10 ms of that a second still never puts rate + 1 texts in one second.
PACE_MARGIN = 1.01
RATE_REREAD = 1.0  # seconds: how soon a batch already running follows a new `--rate`


def queue_for(accord: Accord) -> Queue:
    """Return the job queue on the store's Redis."""
    return Queue(QUEUE, connection=accord.store.redis)


def enqueue(accord: Accord, kind: str, flow: Flow, items: list[str], message: int = 0) -> None:
    """Queue a batch of numbers ('phone', 'phone/postcode' or 'phone/region') for `kind` (requests or content)."""
    enqueue_many(accord, kind, flow, [items], message)


def enqueue_many(accord: Accord, kind: str, flow: Flow, batches: list[list[str]], message: int = 0,
                 rate: float | None = None) -> None:
    """Store several batches and queue a job for each, in one transaction (a job carries the batch's id)."""
    if not batches:
        return
    rate = rate or rate_of(accord, flow)
    stored = Batches(accord.store)
    with accord.store.redis.pipeline() as pipe:
        ids = [stored.keep(flow, items, pipe) for items in batches]
        _queue(accord, kind, flow, ids, message, [len(items) for items in batches], rate, pipe)
        pipe.execute()


def enqueue_stored(accord: Accord, kind: str, flow: Flow, batch_ids: list[str], message: int = 0,
                   rate: float | None = None) -> None:
    """Queue a job for each of these stored batches (admitted by an import, or parked), in one round trip."""
    if not batch_ids:
        return
    with accord.store.redis.pipeline() as pipe:
        _queue(accord, kind, flow, batch_ids, message, [BATCH] * len(batch_ids), rate or rate_of(accord, flow), pipe)
        pipe.execute()


def _queue(accord: Accord, kind: str, flow: Flow, batch_ids: list[str], message: int, sizes: list[int],
           rate: float, pipe: Pipeline) -> None:
    jobs = [Queue.prepare_data(*_job(kind, flow, batch_id, message), timeout=int(size / rate * 3) + 300,
                               result_ttl=86400, failure_ttl=30 * 86400)
            for batch_id, size in zip(batch_ids, sizes, strict=True)]
    queue_for(accord).enqueue_many(jobs, pipeline=pipe)


def _job(kind: str, flow: Flow, batch_id: str, message: int) -> tuple[Callable[..., dict[str, int]], tuple]:
    """Return the job function and arguments that send a stored batch for `kind` (requests or content)."""
    if kind == "requests":
        return send_requests, (flow.id, batch_id)
    return send_content, (flow.id, message, batch_id)


def rate_of(accord: Accord, flow: Flow) -> float:
    """Return the flow's sending rate in messages per second, as the round set it."""
    return float(accord.store.round_settings(flow).get("rate") or DEFAULT_RATE)


def send_requests(flow_id: str, batch: str, attempt: int = 0) -> dict[str, int]:
    """Job: ask each number of a stored batch for consent (claim, then send, at most once each).

    `attempt` counts the times its numbers went again later because the provider was busy.
    """
    origin = origin_of(batch)  # the import that queued the batch: each claim names it
    return _work("requests", flow_id, batch, lambda a, f, p, r: ask(a, f, p, region=r, origin=origin),
                 attempt=attempt)


def send_content(flow_id: str, message: int, batch: str, attempt: int = 0) -> dict[str, int]:
    """Job: send content message `message` to each consented number of a stored batch."""
    return _work("content", flow_id, batch, lambda a, f, p, r: deliver(a, f, p, message, region=r), message,
                 attempt=attempt)


def _work(kind: str, flow_id: str, batch: str, send_one: Callable[[Accord, Flow, str, str], str],
          message: int = 0, *, attempt: int = 0) -> dict[str, int]:
    accord = current()
    flow = accord.flows[flow_id]
    stored = Batches(accord.store)
    if batch.startswith("+"):  # a job an earlier version queued carries its numbers (`python -m bot migrate`)
        log.warning("flow %s: a job carries its numbers, as before this version; run `python -m bot migrate`",
                    flow.id)
        items: list[str] | None = batch.split(",")
    else:
        items = stored.read(flow.id, batch)
    if items is None:
        return {}  # done by an earlier run of this job, or emptied by erasure or retention
    interval, rate_read = PACE_MARGIN / rate_of(accord, flow), time.monotonic()
    counts: Counter[str] = Counter()
    # (when, attempt) -> the numbers to send then: when a window opens (None: after the backoff of
    # `attempt`, from the end of this job); keyed by moment, not by wait, so each makes one batch.
    later: dict[tuple[float | None, int], list[str]] = defaultdict(list)
    parked: list[str] = []

    def settle(outcome: str, item: str, region: str) -> None:  # in this thread only: `later`, `counts`
        if outcome in (BUSY, SHUT):
            outcome = _again(flow, item, region, attempt, accord.store.clock(), later, why=outcome)
        counts[outcome] += 1

    # The sends wait for the provider's answers on threads of their own, so that one worker keeps
    # the pace; this thread alone takes their slots, and settles them.
    # Out of numbers while the last sends are out, the job carries on with the round's next queued batch.
    carrier, began, index = Carrier(queue_for(accord), stored, flow, batch), time.monotonic(), 0
    with _Sends(accord, flow, settle) as sends:
        while index < len(items) or carrier.carry(items, time.monotonic() - began, interval):
            item, index = items[index], index + 1
            if not sends.room():  # a send raised: no more, as its exception would have stopped the batch
                break
            if time.monotonic() - rate_read >= RATE_REREAD:  # the round's rate may have changed meanwhile
                interval, rate_read = PACE_MARGIN / rate_of(accord, flow), time.monotonic()
            phone, _, where = item.partition("/")
            # After the number: the postcode an import read, or the region a broadcast found beside the state.
            region = region_of(where) if where.isdigit() else where
            if region not in REGIONS:  # a damaged record: the voter's hours are unknown, so nothing goes
                counts["unknown region"] += 1
                continue
            epoch = accord.store.clock()
            opens = _opens_at(flow, epoch, region)
            if opens is None:
                counts["no window left"] += 1
                continue
            if opens > epoch:  # a later window: its count of attempts starts afresh
                later[(opens, 0)].append(item)
                counts["deferred"] += 1
                continue
            slot = accord.store.next_slot(flow, interval)  # the sender's shared pace, and the pause flag
            if slot is None:  # paused: those started end, the rest waits for `round resume`
                parked = items[index - 1:]
                counts["parked"] += len(parked)
                break
            time.sleep(slot)
            sends.start(item, region, send_one, accord, flow, phone, region)  # its claim, then its send
    if sends.failure is not None:  # the job fails, as it did when one send at a time raised
        raise sends.failure
    # What waits goes on as new batches, each with its job (deferred) or on the parked list, in one
    # transaction; then this batch goes. Dying in between, this job runs again: claims and
    # releases send nothing twice.
    queue, rate, epoch = queue_for(accord), rate_of(accord, flow), accord.store.clock()
    with accord.store.redis.pipeline() as pipe:
        for (when, tries), waiting in later.items():
            delay = _backoff(attempt) if when is None else max(1.0, when - epoch)
            function, args = _job(kind, flow, stored.keep(flow, waiting, pipe, origin_of(batch)), message)
            queue.enqueue_in(dt.timedelta(seconds=delay), function, *args, **({"attempt": tries} if tries else {}),
                             job_timeout=int(len(waiting) / rate * 3) + 300, result_ttl=86400,
                             failure_ttl=30 * 86400, pipeline=pipe)
        if parked:
            accord.store.park(flow, f"{kind}|{message}|{stored.keep(flow, parked, pipe, origin_of(batch))}", pipe)
        pipe.execute()
    carrier.end()
    if not batch.startswith("+"):
        stored.done(flow.id, batch)
    return dict(counts)


class _Sends:
    """Sends on threads of their own, at most SEND_CONCURRENCY at once, settled by the thread that
    started them, in the order it started them.

    In that order, the numbers the provider was too busy for wait in batch order, as they did one
    send at a time. A send that raised is logged, and the first exception kept in `failure`.
    """

    def __init__(self, accord: Accord, flow: Flow, settle: Callable[[str, str, str], None]) -> None:
        self.accord, self.flow, self.settle = accord, flow, settle
        self.most = accord.config.send_concurrency
        self.pool = ThreadPoolExecutor(self.most, thread_name_prefix=f"send-{flow.id}")
        self.started: deque[tuple[Future[str], str, str]] = deque()  # (outcome, item, region), oldest first
        self.failure: BaseException | None = None

    def __enter__(self) -> _Sends:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Wait for every send started and settle it, even when the batch stops on an exception."""
        try:
            self._settle(running=0)
        finally:
            self.pool.shutdown()

    def room(self) -> bool:
        """Wait until another send may start, settling those ended; say whether none raised."""
        self._settle(running=self.most - 1)
        return self.failure is None

    def start(self, item: str, region: str, send: Callable[..., str], *args: object) -> None:
        """Start `send(*args)` on a free thread, for `item` of the batch (in `region`)."""
        self.started.append((self.pool.submit(send, *args), item, region))

    def _settle(self, *, running: int) -> None:
        """Wait until at most `running` sends still run; settle those ended, oldest first, up to the first running."""
        while len(busy := [future for future, _, _ in self.started if not future.done()]) > running:
            wait(busy, return_when=FIRST_COMPLETED)
        while self.started and self.started[0][0].done():
            future, item, region = self.started.popleft()
            error = future.exception()
            if error is None:
                self.settle(future.result(), item, region)
                continue
            # Never the number itself in the log. A claim it made stands: the number is never sent twice.
            log.error("flow %s: the send to number %s… raised %s; the batch stops", self.flow.id,
                      self.accord.store.digest(item.partition("/")[0])[:8], type(error).__name__, exc_info=error)
            if self.failure is None:
                self.failure = error


def _opens_at(flow: Flow, epoch: float, region: str) -> float | None:
    """Return when, from `epoch` on, a campaign text may go to a voter of `region` (`epoch` itself if
    at once; None if never). A window closing within MIN_VALIDITY counts as shut."""
    if validity(flow, epoch, region) >= MIN_VALIDITY:  # open, for long enough: the usual case, once a minute
        return epoch
    window = flow.window(epoch, region)
    if window.open:
        window = flow.window(epoch + MIN_VALIDITY, region)  # shut by then: when next open?
    if window.open:
        return epoch
    return None if window.opens_at is None else window.opens_at.timestamp()


def _backoff(attempt: int) -> float:
    """Return how long a number the provider was busy for waits before its attempt `attempt` + 1."""
    return min(LATER_LONGEST, LATER_FIRST * 2 ** attempt)


def _again(flow: Flow, item: str, region: str, attempt: int, epoch: float,
           later: dict[tuple[float | None, int], list[str]], why: str = BUSY) -> str:
    """Send again later a number not sent, its claim given back (`why`: BUSY or SHUT); say when.

    Later in this window, after a wait that doubles with each attempt; after LATER_AT_MOST of them,
    or if the window shuts before then, at the next window's opening, where attempts count afresh.
    """
    if attempt < LATER_AT_MOST:
        opens = _opens_at(flow, epoch + _backoff(attempt), region)
        if opens == epoch + _backoff(attempt):
            later[(None, attempt + 1)].append(item)
            return why + ", sent again later"
    else:
        opens = _opens_at(flow, flow.closes_at(epoch, region).timestamp(), region)
    if opens is None:
        return why + ", no window left"
    later[(opens, 0)].append(item)
    return why + ", deferred"


def ask(accord: Accord, flow: Flow, phone: str, *, region: str = "", origin: str = "",
        sleep: Callable[[float], None] = time.sleep) -> str:
    """Claim the number of a voter of `region`, queued by import `origin`, then send its consent request;
    return what happened."""
    outcome = accord.store.claim(flow, phone, window_open=True, siblings=accord.flows_for(flow.sender),
                                 region=region, origin=origin)
    if outcome.refused:
        return outcome.refused
    if not outcome.changed:
        return "already asked" if outcome.source != "opted_out" else "opted out"
    return _send(accord, flow, phone, outcome.texts[0], region=region, sleep=sleep)


def deliver(accord: Accord, flow: Flow, phone: str, message: int, *, region: str = "",
            sleep: Callable[[float], None] = time.sleep) -> str:
    """Send content message `message` if, at this very moment, the number consented and did not object."""
    verdict = accord.store.release(flow, phone, message, region=region)
    if verdict != "ok":
        return "skipped: " + verdict
    return _send(accord, flow, phone, flow.texts.content[message - 1], region=region, sleep=sleep,
                 message=message)


def _send(accord: Accord, flow: Flow, phone: str, text: str, *, region: str, sleep: Callable[[float], None],
          message: int = 0) -> str:
    """Send a claimed consent request (or released content `message`); return what happened.

    BUSY: the provider certainly did not take it, and the claim (or release) is given back, so
    that sending it again later goes through the same at-most-once claim; SHUT likewise, when the
    voter's window shut (or would within MIN_VALIDITY) before it could go. GONE: the number was
    erased, or objected, before it could go: nothing goes, now or later. The claim is in flight
    until its outcome is recorded here; what cannot be known here (a timeout, a 5xx, the process
    killed meanwhile), the witness asks the provider later (bot/witness.py).
    """
    attempt = 0
    while True:
        if attempt and not accord.store.still_ours(flow, phone, message):
            # A STOP, an answer, or an erasure during the retry's pause: sending now would outlive it.
            why = "not sent: the number objected, answered, or was erased while its send was retried"
            if message:  # its bit goes back too, for a release should the voter consent again
                accord.store.give_back(flow, phone, message, why)
            else:
                accord.store.record_failure(flow, phone, None, why, in_flight=0)
            return GONE
        seconds = validity(flow, accord.store.clock(), region)
        if seconds < MIN_VALIDITY:
            # The window shut, or nearly, while the text waited (for its slot, a slow claim, a retry):
            # a provider must not hold it past the window, nor may it be lost. Given back, it goes again.
            why = "not sent: the voter's sending window shut before it could go"
            return SHUT if _give_back(accord, flow, phone, message, why) else GONE
        try:
            sid = accord.gateway_for(flow).send(phone, text, sender=flow.sender, validity_period=seconds,
                                                status_callback=accord.status_url(flow))
        except SendError as error:
            if error.unprocessed and attempt < RETRIES:
                sleep(RETRY_PAUSE * 2 ** attempt)
                attempt += 1
                continue
            # A timeout or a 5xx may have sent the text: sending twice is worse than reporting it, so
            # it stays in flight for the witness; a send given back stays so until it is given back.
            unknown = error.status is None or error.status >= 500
            accord.store.record_failure(flow, phone, error.code, error.message, in_flight=message,
                                        settles=not (unknown or error.unprocessed))
            if error.opted_out:
                handle_carrier_stop(accord.store, flow, phone, str(error.code), accord.flows_for(flow.sender))
                return "opted out at the provider"
            if error.unprocessed:
                # Given back, it goes again later; not, when an erasure or a STOP came meanwhile.
                return BUSY if _give_back(accord, flow, phone, message, f"{error.code}: {error.message}") else GONE
            if unknown:
                return "claimed, outcome unknown"
            return "undeliverable" if error.undeliverable else "refused by the provider"
        _record_sent(accord, flow, phone, sid, text, message=message, sleep=sleep)
        return "sent"


def _give_back(accord: Accord, flow: Flow, phone: str, message: int, why: str) -> bool:
    """Give back the claim on a consent request (`message` 0) or the release of content `message`, certainly
    not sent, so that sending it again goes through the same at-most-once claim; say whether there was one
    to give back (not once the number was erased, or objected, meanwhile)."""
    if message:
        return accord.store.give_back(flow, phone, message, why)
    return accord.store.step([flow], phone, "release", body=why, in_flight="").changed


def _record_sent(accord: Accord, flow: Flow, phone: str, sid: str, text: str, *, message: int,
                 sleep: Callable[[float], None]) -> None:
    """Record a text the provider took (content `message`, or 0: the consent request), waiting out a
    Redis restart: it went out, so it must be on file."""
    waited, pause = 0.0, 0.1
    while True:
        try:
            # Idempotent per sid; it settles the claim's in-flight entry in the same step.
            accord.store.record_sent(flow, phone, sid, text, content=bool(message), in_flight=message)
            return
        except (redis.ConnectionError, redis.TimeoutError):
            if waited >= STORE_PATIENCE:
                # The claim stands, so it is never sent again; it is still in flight, and the witness
                # finds the text at the provider and records it (bot/witness.py).
                log.error("flow %s: message %s went out but Redis is away; it is not in the ledger", flow.id, sid)
                raise
            sleep(pause)
            waited, pause = waited + pause, min(pause * 2, 5.0)


def validity(flow: Flow, epoch: float, region: str = "") -> int:
    """Return how long the provider may hold the message: until the voter's window closes (0 if shut)."""
    return flow.validity(epoch, region)
