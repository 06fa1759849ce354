"""Where one consent request's time goes: the send_requests job in this process, store and gateway timed.

The store and gateway are injected (a Store subclass, a Gateway wrapper), the job is the real
bot.sending.send_requests; the pace reservation (Store.next_slot) is timed apart on the same key.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot import Accord, use
from bot.batches import Batches
from bot.flows import Flow
from bot.gateways import Gateway
from bot.sending import rate_of, send_requests
from bot.store import Store


@dataclass
class TimedStore(Store):
    """The store, adding up the wall time of the calls a consent request makes."""

    spent: Counter[str] = field(default_factory=Counter)

    def is_paused(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("pause check (EXISTS)", super().is_paused, args, kwargs)

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("claim (step.lua)", super().claim, args, kwargs)

    def record_sent(self, *args: Any, **kwargs: Any) -> Any:
        return self._timed("record_sent (append.lua)", super().record_sent, args, kwargs)

    def _timed(self, name: str, call: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> Any:
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            self.spent[name] += time.perf_counter() - started


@dataclass
class TimedGateway:
    """A gateway adding up the wall time of its sends."""

    inner: Gateway
    spent: Counter[str]

    def send(self, to: str, body: str, *, sender: str, validity_period: int | None = None,
             status_callback: str | None = None) -> str:
        started = time.perf_counter()
        try:
            return self.inner.send(to, body, sender=sender, validity_period=validity_period,
                                   status_callback=status_callback)
        finally:
            self.spent["HTTP send (twilio client + fake)"] += time.perf_counter() - started


def breakdown(accord: Accord, gateway: Gateway, flow: Flow, phones: list[str]) -> dict[str, Any]:
    """Ask `phones` (admitted, not queued) through send_requests here; return µs per message by part."""
    spent: Counter[str] = Counter()
    store = TimedStore(accord.store.redis, accord.store.suppression_secret, clock=accord.store.clock, spent=spent)
    use(Accord(accord.config, store, accord.flows, TimedGateway(gateway, spent)))
    batch = Batches(accord.store).keep(flow, phones)  # what a job names (its reading is timed with the job)
    started = time.perf_counter()
    try:
        counts = send_requests(flow.id, batch)
    finally:
        total = time.perf_counter() - started
        use(accord)  # the job's services are this process's again
    interval = 1 / rate_of(accord, flow)
    started = time.perf_counter()
    for _ in phones:
        accord.store.next_slot(flow, interval)  # the reservation alone: the waits are the rate's
    spent["Store.next_slot (pace.lua)"] = time.perf_counter() - started
    parts = {name: seconds / len(phones) * 1e6 for name, seconds in spent.items()}
    parts["the rest (window, validity, loop)"] = total / len(phones) * 1e6 - sum(parts.values())
    return {"messages": len(phones), "answers": counts, "per_second": len(phones) / total,
            "us_per_message": total / len(phones) * 1e6, "parts_us": parts}

