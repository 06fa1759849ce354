"""The national benchmark's phases: import, send, call back, answer, keep up; each timed, each measured after."""

from __future__ import annotations

import argparse
import dataclasses
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from bench import posting
from bench.apps import FixedClock
from bench.families import Snapshot, snapshot
from bench.rig import TUESDAY_MORNING, Rig
from bot import Accord, archive, archivist, build
from bot.flows import Flow
from bot.rounds import Origin, now_iso, start_round
from bot.workers import broadcast

STATUSES = ("queued", "sent", "delivered")
UPKEEP = "workers' upkeep (archivist.keep_up)"
KEPT_UP = ", kept up"  # ends the name of a snapshot taken after the workers' upkeep


class PhaseError(RuntimeError):
    """A phase took longer than --timeout, or went wrong in a way that makes its figures meaningless."""


@dataclass
class Phase:
    name: str
    seconds: float
    items: int
    used_memory: int


@dataclass
class National:
    """The run: the rig (Redis, fake, workers), the served app, and what each step left."""

    args: argparse.Namespace
    rig: Rig
    port: int
    phases: list[Phase] = field(default_factory=list)
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    numbers: dict[str, int] = field(default_factory=dict)  # numbers asked so far, at each snapshot
    asked: list[str] = field(default_factory=list)
    imports: list[dict[str, int]] = field(default_factory=list)
    messages: int = 0  # sent, and called back
    delivered: int = 0  # as the flow's funnel counts them at the end
    tally: Counter[str] = field(default_factory=Counter)  # what the checks counted
    problems: list[str] = field(default_factory=list)
    trimmed: dict[str, int] = field(default_factory=dict)  # ledger entries the upkeep took off Redis, by snapshot
    archived: dict[str, tuple[int, int]] = field(default_factory=dict)  # archive files and their bytes, by snapshot
    started: float = field(default_factory=time.monotonic)
    workers: Accord = field(init=False)

    def __post_init__(self) -> None:
        # The services a worker's upkeep runs with, built as the rig builds its own, archiving to the scratch folder.
        config = dataclasses.replace(self.rig.config(), archive_dir=self.rig.scratch / "ledger-archive")
        self.workers = build(config, gateway=self.rig.gateway(), clock=FixedClock(TUESDAY_MORNING.timestamp()))

    @property
    def flow(self) -> Flow:
        return self.rig.accord.flows[self.args.flow]

    @property
    def archive_dir(self) -> Path:
        assert self.workers.config.archive_dir is not None
        return self.workers.config.archive_dir

    @contextmanager
    def phase(self, name: str) -> Iterator[list[int]]:
        """Time a phase; the block puts in the list how many items it handled."""
        print(f"[{time.monotonic() - self.started:6.1f}s] {name}", file=sys.stderr, flush=True)
        items = [0]
        began = time.perf_counter()
        yield items
        self.phases.append(Phase(name, time.perf_counter() - began, items[0],
                                 self.rig.client.info("memory")["used_memory"]))

    def measure(self, name: str) -> None:
        """Snapshot every key, once the phase before it has ended (workers gone, callbacks answered)."""
        with self.phase(f"measure {name} (SCAN, MEMORY USAGE)") as items:
            self.snapshots[name] = snapshot(self.rig.client)
            self.numbers[name] = len(self.asked)
            items[0] = sum(f.keys for f in self.snapshots[name].families.values())

    def keep_up(self, name: str) -> None:
        """Do the upkeep a worker does every 5 minutes (longer than a phase here), then measure again."""
        with self.phase(UPKEEP) as items:
            trimmed = archivist.keep_up(self.workers, above=archivist.ARCHIVE_ABOVE, keep=archivist.ARCHIVE_KEEP)
            items[0] = sum(trimmed.values())
            # Closed, as a worker's is when it exits: its buffers would count in used_memory, in no key.
            self.workers.store.redis.connection_pool.disconnect()
        files = [path for path in self.archive_dir.glob("*") if path.is_file()] if self.archive_dir.is_dir() else []
        self.trimmed[name + KEPT_UP] = items[0]
        self.archived[name + KEPT_UP] = (len(files), sum(path.stat().st_size for path in files))
        self.measure(name + KEPT_UP)

    def ask(self, step: int, path: Path) -> None:
        """Import a file, send every consent request it queued, and post each one's status callbacks."""
        flow, accord = self.flow, self.rig.accord
        with self.phase(f"import {step} (start_round)") as items:
            origin = Origin(source_type="broker", broker=flow.source, contract="B-national", operator="bench",
                            file=path.name, imported_at=now_iso(accord))
            report = start_round(accord, flow, path, origin, rate=self.args.rate)
            items[0] = report.counts["imported"]
            self.imports.append(dict(report.counts))
        with self.phase(f"consent requests {step} ({self.args.workers} workers)") as items:
            sent = self.send(f"ask-{step}")
            items[0] = len(sent)
        tos = Counter(to for _, to in sent)
        if len(tos) != report.counts["queued"] or max(tos.values(), default=1) > 1:
            self.problems.append(f"import {step}: {report.counts['queued']} numbers queued, {len(tos)} reached the "
                                 f"provider ({sum(n > 1 for n in tos.values())} more than once)")
        self.asked += list(tos)
        self.tally.update({"queued": report.counts["queued"], "requests": len(tos)})
        self.callbacks(f"status callbacks {step}", sent)

    def answer(self, step: int, phones: list[str]) -> None:
        """Let the numbers answer OUI, send them content 2 as `content send` does, and post its callbacks."""
        flow = self.flow
        content = escape(flow.texts.content[0])
        with self.phase(f"OUI {step} (signed, to /sms/inbound)") as items:
            outcomes = self.post("/sms/inbound", [posting.inbound(self.rig.fake.account_sid, flow.sender, phone)
                                                  for phone in phones],
                                 lambda status, body: "ok" if status == 200 and content in body
                                 else f"{status} without content 1" if status == 200 else str(status))
            items[0] = len(phones)
        self.check(f"OUI {step}", outcomes, len(phones))
        self.tally["OUI"] += outcomes["ok"]
        with self.phase(f"content send {step} (broadcast, message 2)") as items:
            queued, _ = broadcast(self.rig.accord, flow, 2)
            items[0] = queued
        with self.phase(f"content 2, {step} ({self.args.workers} workers)") as items:
            sent = self.send(f"content-{step}")
            items[0] = len(sent)
        if sorted(to for _, to in sent) != sorted(phones):
            self.problems.append(f"content {step}: {len(sent)} sent to {len({to for _, to in sent})} numbers, "
                                 f"for {len(phones)} that answered OUI")
        self.tally["content"] += len({to for _, to in sent})
        self.callbacks(f"content callbacks {step}", sent)

    def send(self, name: str) -> list[tuple[str, str]]:
        """Run the workers until the queue is empty; return (sid, To) of what reached the provider."""
        names = [f"{name}-{n}" for n in range(self.args.workers)]
        workers = [self.rig.start_worker(worker) for worker in names]
        before = len(self.rig.problems)
        try:
            self.rig.finish(workers, names, timeout=self.args.timeout)
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
        if len(self.rig.problems) > before:
            raise PhaseError(f"{name}: " + "; ".join(self.rig.problems[before:]))
        sent = self.rig.fake.sent()
        self.rig.fake.reset()  # the fake keeps every message: bound what it holds
        return sent

    def callbacks(self, name: str, sent: list[tuple[str, str]]) -> None:
        """POST queued, then sent, then delivered for every message, as Twilio would, each signed."""
        sender, account = self.flow.sender, self.rig.fake.account_sid
        self.messages += len(sent)
        deadline = time.monotonic() + self.args.timeout  # for the three together
        with self.phase(f"{name} ({', '.join(STATUSES)})") as items:
            for status in STATUSES:
                outcomes = self.post("/sms/status", [posting.status(account, sender, sid, to, status)
                                                     for sid, to in sent],
                                     lambda code, body: "ok" if code == 204 else str(code), deadline)
                self.check(f"{name}, {status}", outcomes, len(sent))
                self.tally["callbacks"] += outcomes["ok"]
            items[0] = len(sent) * len(STATUSES)

    def post(self, path: str, forms: list[dict[str, str]], judge: Callable[[int, str], str],
             deadline: float | None = None) -> Counter[str]:
        """POST the forms, signed, from --concurrency processes; count what `judge` made of each answer."""
        deadline = deadline or time.monotonic() + self.args.timeout
        transport = self.args.callbacks if path == "/sms/status" else "http"
        try:
            return posting.post(transport, self.port, path, forms, judge, deadline, self.args.concurrency)
        except posting.NoAnswer as error:
            raise PhaseError(f"{error} within --timeout {self.args.timeout:.0f}s") from None

    def check(self, name: str, outcomes: Counter[str], expected: int) -> None:
        if outcomes[posting.NOT_SENT]:
            raise PhaseError(f"{name}: --timeout {self.args.timeout:.0f}s reached; {dict(outcomes)}")
        if outcomes["ok"] != expected:
            self.problems.append(f"{name}: {outcomes['ok']} of {expected} answered as expected: {dict(outcomes)}")

    def baseline(self) -> int:
        """Return the bytes of one Redis set holding the numbers asked (then dropped)."""
        key = f"bench:national:set:{secrets.token_hex(4)}"
        for start in range(0, len(self.asked), 10_000):
            self.rig.client.sadd(key, *self.asked[start:start + 10_000])
        size = self.rig.client.memory_usage(key, samples=0) or 0
        self.rig.client.delete(key)
        return size

    def verify_ledger(self) -> None:
        """Walk the flow's chain from its archive files through the stream, as `consent verify` does."""
        broken = archive.verify_archived(self.rig.client, self.flow.id, [self.archive_dir])
        self.tally["ledger verified"] = broken is None
        if broken:
            self.problems.append(f"the ledger does not verify through its archive files and the stream: {broken}")
