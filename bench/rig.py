"""What the sending benchmark runs on: its Redis, the Twilio fake, services to queue with, and real workers.

Workers are `python -m tests.worker_process` processes (RQ, TwilioGateway, a fixed clock on a
Tuesday morning) in burst mode: they exit when the queue is empty.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import redis

from bench import provider, servers
from bench.apps import FixedClock
from bot import Accord, build
from bot.config import Config
from bot.flows import Flow
from bot.gateways.twilio import TwilioGateway
from bot.sending import enqueue_stored
from bot.store import new_batch_id

ROOT = servers.ROOT
TOKEN = "bench-auth-token-0123456789abcdef"
KEY = "k" * 32
# A Tuesday morning in Paris: inside every sending window, far from any poll.
TUESDAY_MORNING = dt.datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))
FLOW = "demo"


@dataclass
class Rig:
    """One Redis, the Twilio fake, the bench's own services on them, and worker processes to start."""

    scratch: Path
    url: str
    client: redis.Redis
    fake: provider.Provider
    problems: list[str] = field(default_factory=list)
    accord: Accord = field(init=False)
    _numbers: Iterator[int] = field(init=False)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.accord = build(self.config(), gateway=self.gateway(), clock=FixedClock(TUESDAY_MORNING.timestamp()))
        self._numbers = iter(range(10**8))

    @property
    def flow(self) -> Flow:
        return self.accord.flows[FLOW]

    def config(self) -> Config:
        return Config(flows_dir=ROOT / "flows", instance_dir=self.scratch / "instance", suppression_key=KEY.encode(),
                      auth_token=TOKEN, redis_url=self.url)

    def gateway(self) -> TwilioGateway:
        return TwilioGateway(self.fake.account_sid, self.fake.auth_token, api_url=self.fake.base_url)

    def phones(self, count: int) -> list[str]:
        """Return `count` French mobiles never used before in this run."""
        return [f"+336{next(self._numbers):08d}" for _ in range(count)]

    def fresh(self, phase: str) -> None:
        """Start a phase on an empty Redis and a provider that received nothing."""
        self.client.flushall()
        self.fake.reset()
        print(f"[{time.monotonic() - self.started:5.1f}s] {phase}", file=sys.stderr, flush=True)

    def admit(self, phones: list[str], per_batch: int, rate: float) -> list[list[str]]:
        """Set the round's rate and admit the numbers in batches, as `round start` does (each stored
        under an id, kept in `self.batch_ids`)."""
        self.accord.store.set_round(self.flow, rate=str(rate))
        batches = [phones[i:i + per_batch] for i in range(0, len(phones), per_batch)]
        self.batch_ids = [new_batch_id() for _ in batches]
        for batch, batch_id in zip(batches, self.batch_ids, strict=True):
            codes = self.accord.store.admit(self.flow, batch, self.accord.flows_for(self.flow.sender),
                                            batch_id=batch_id)
            if set(codes) != {"q"}:
                raise RuntimeError(f"admit answered {Counter(codes)} for new numbers")
        return batches

    def queue(self, phones: list[str], per_batch: int, rate: float) -> list[list[str]]:
        """Admit the numbers and queue one job per batch for the workers."""
        batches = self.admit(phones, per_batch, rate)
        enqueue_stored(self.accord, "requests", self.flow, self.batch_ids, rate=rate)
        self.accord.store.settle(self.flow, self.batch_ids)
        return batches

    def start_worker(self, name: str) -> subprocess.Popen:
        """Start `python -m tests.worker_process` in burst mode, logging to the scratch directory."""
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TEST_FLOWS_DIR": str(ROOT / "flows"),
               "TEST_INSTANCE_DIR": str(self.scratch / "instance"), "TEST_SUPPRESSION_KEY": KEY,
               "TEST_AUTH_TOKEN": TOKEN, "TEST_REDIS_URL": self.url, "TEST_TWILIO_SID": self.fake.account_sid,
               "TEST_TWILIO_TOKEN": self.fake.auth_token, "TEST_TWILIO_URL": self.fake.base_url,
               "TEST_NOW": str(TUESDAY_MORNING.timestamp()), "TEST_BURST": "1"}
        with open(self.scratch / f"{name}.log", "wb") as log:
            return subprocess.Popen([sys.executable, "-m", "tests.worker_process"], cwd=ROOT, env=env,
                                    stdout=log, stderr=subprocess.STDOUT)

    def finish(self, workers: list[subprocess.Popen], names: list[str], timeout: float) -> float:
        """Wait for the workers to exit; return when the last one did (wall time)."""
        deadline = time.monotonic() + timeout
        for worker, name in zip(workers, names, strict=True):
            try:
                code = worker.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.kill()
                code = worker.wait()
                self.problems.append(f"{name}: still running after {timeout:.0f}s, killed")
            if code:
                tail = (self.scratch / f"{name}.log").read_text(errors="replace")[-1500:]
                self.problems.append(f"{name}: exited with {code}: {tail}")
        return time.time()

    def arrived(self, phase: str, batches: list[list[str]]) -> list[tuple[float, str]]:
        """Return the phase's arrivals, checking each queued number arrived exactly once."""
        arrivals = sorted(self.fake.arrivals())
        sent = Counter(to for _, to in arrivals)
        queued = {phone for batch in batches for phone in batch}
        if set(sent) != queued or max(sent.values(), default=0) > 1:
            twice = sum(1 for n in sent.values() if n > 1)
            self.problems.append(f"{phase}: {len(sent)} numbers reached the provider ({twice} more than once, "
                                 f"{len(set(sent) - queued)} never queued) for {len(queued)} queued")
        return arrivals
