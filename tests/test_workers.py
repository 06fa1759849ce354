"""Real worker processes: killed in the middle of a batch, restarted, each number asked at most once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bot.rounds import Origin, start_round
from tests.conftest import ROOT, TOKEN, Clock
from tests.test_rounds import accord, run  # noqa: F401  (shared fixtures)

NUMBERS = [f"+3361298{n:04d}" for n in range(40)]


def worker(env: dict[str, str], *, burst: bool) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.worker_process"], cwd=ROOT,
                            env={**env, "TEST_BURST": "1" if burst else "0"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def worker_env(accord, config, clock: Clock, twilio) -> dict[str, str]:  # noqa: F811
    return {**os.environ, "PYTHONPATH": str(ROOT), "TEST_FLOWS_DIR": str(config.flows_dir),
            "TEST_INSTANCE_DIR": str(config.instance_dir), "TEST_SUPPRESSION_KEY": config.suppression_key.decode(),
            "TEST_AUTH_TOKEN": TOKEN, "TEST_REDIS_URL": config.redis_url, "TEST_TWILIO_SID": twilio.account_sid,
            "TEST_TWILIO_TOKEN": twilio.auth_token, "TEST_TWILIO_URL": twilio.base_url, "TEST_NOW": str(clock())}


def resume(accord) -> None:  # noqa: F811
    """Resume the round a killed worker left: one batch interrupted, queued again."""
    assert "1 interrupted batch(es)" in run(accord, "round", "resume", "demo").output


def finish(twilio, worker_env: dict[str, str]) -> Counter[str]:
    """Run a worker until the queue is empty, check that nobody was asked twice, and return the sends
    each number got."""
    twilio.delay(0)
    second = worker(worker_env, burst=True)
    assert second.wait(timeout=60) == 0
    sends = Counter(m["to"] for m in twilio.messages)
    assert max(sends.values()) == 1  # nobody asked twice
    return sends


def test_a_worker_killed_mid_batch_then_restarted_asks_each_number_at_most_once(
        accord, twilio, worker_env, tmp_path: Path):  # noqa: F811
    path = tmp_path / "contacts.csv"
    path.write_text("phone\n" + "\n".join(NUMBERS) + "\n")
    origin = Origin("supporters", "", "", "test", path.name, "2026-12-01T09:00:00+00:00")
    start_round(accord, accord.flows["demo"], path, origin, rate=1000)
    twilio.delay(0.05)  # each send takes a while: the kill lands in the middle of the batch
    first = worker(worker_env, burst=False)
    deadline = time.monotonic() + 30
    while len(twilio.messages) < 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    # The provider answers nothing meanwhile: the batch the dead worker held is still running when
    # the round is resumed (its horse, left alive, would otherwise end it within a tenth of a second).
    with twilio.stalled():
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert 10 <= len(twilio.messages) < len(NUMBERS)
        resume(accord)

    sends = finish(twilio, worker_env)
    # Killed alone, a worker leaves the work horse running its job (RQ puts it in a process group of its
    # own) to go on with the batch: the text in flight at the kill reached the provider, its claim
    # stands, and nothing is resent. tests/test_carrying.py kills both, as a machine going down would.
    assert sorted(sends) == NUMBERS
    flow = accord.flows["demo"]
    assert all(accord.store.state(flow, phone) == "asked" for phone in NUMBERS)
    assert accord.store.verify_ledger(flow.id) is None
