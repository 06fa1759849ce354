"""The pacer alone: Store.next_slot in N processes sharing one sender's rate, nothing sent.

Each process notes, for every slot, the time the slot falls due (the reply's wait added to the
time the reservation returned) and the time its sleep ended.
"""

from __future__ import annotations

import multiprocessing
import time

from bot import build
from bot.config import Config
from bot.sending import rate_of


def admissions(config: Config, flow_id: str, workers: int, seconds: float) -> tuple[list[float], list[float], int]:
    """Run `workers` processes for `seconds`; return the stamped and returned times, and how many started late."""
    start_at = time.time() + 3.0  # after every process has imported and connected
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        results = pool.starmap(_hammer, [(config, flow_id, start_at, seconds)] * workers)
    stamped = sorted(before for _, admitted in results for before, _ in admitted)
    returned = sorted(after for _, admitted in results for _, after in admitted)
    return stamped, returned, sum(1 for ready, _ in results if ready > start_at)


def _hammer(config: Config, flow_id: str, start_at: float, seconds: float) -> tuple[float, list[tuple[float, float]]]:
    """From `start_at`, reserve slots for `seconds` as a worker does, noting when each falls due."""
    accord = build(config)
    flow = accord.flows[flow_id]
    interval = 1 / rate_of(accord, flow)
    accord.store.ping()
    ready = time.time()
    time.sleep(max(0.0, start_at - ready))
    admitted = []
    while time.time() < start_at + seconds:
        wait = accord.store.next_slot(flow, interval) or 0.0
        due = time.time() + wait
        time.sleep(wait)
        admitted.append((due, time.time()))
    return ready, admitted
