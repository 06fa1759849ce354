"""Send a flow's consent request to a list of numbers: claim first, then send, at most once each."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bot import Accord
from bot.contacts import Row
from bot.conversation import handle_carrier_stop
from bot.flows import Flow
from bot.gateway import SendError
from bot.machine import OPEN
from bot.phones import PhoneError, normalize
from bot.windows import Window

RETRIES = 3
MAX_VALIDITY = 36000  # Twilio's ceiling, in seconds
MIN_VALIDITY = 60  # less than this before the window closes: wait for the next one instead
HOME = "+33"  # the flows' time zone is metropolitan France's; overseas numbers live in others


@dataclass
class RoundReport:
    """What a round did with every row: nothing is dropped without a count."""

    counts: Counter[str] = field(default_factory=Counter)
    rejects: list[tuple[int, str, str]] = field(default_factory=list)  # line, raw value, reason
    window: Window | None = None  # the window that closed on the round, if one did


def start_round(accord: Accord, flow: Flow, rows: Iterable[Row | tuple[int, str]], *,
                dry_run: bool = False, sleep: Callable[[float], None] = time.sleep) -> RoundReport:
    """Ask consent of every new number in `rows`, each inside its sending window only."""
    report = RoundReport()
    seen: set[str] = set()
    for row in rows:
        report.counts["read"] += 1
        if not isinstance(row, Row):
            report.counts["rejected"] += 1
            report.rejects.append((row[0], "", row[1]))
            continue
        try:
            phone = normalize(row.phone)
            if not phone.startswith(HOME):
                raise PhoneError(f"not a {HOME} mobile: its local time may differ from the flow's")
        except PhoneError as error:
            report.counts["rejected"] += 1
            report.rejects.append((row.line, row.phone, str(error)))
            continue
        if phone in seen:
            report.counts["duplicate"] += 1
            continue
        seen.add(phone)
        if dry_run:
            report.counts[preview(accord, flow, phone)] += 1
            continue
        epoch = accord.store.clock()
        window = flow.window(epoch, row.postcode)
        if not window.open or validity(flow, epoch) < MIN_VALIDITY:
            report.window = window
            report.counts["waiting for the window"] += 1
            continue
        report.counts[ask(accord, flow, phone, sleep=sleep)] += 1
    return report


def preview(accord: Accord, flow: Flow, phone: str) -> str:
    """Say what a round would do with a number, changing nothing."""
    if accord.store.is_suppressed(flow, phone):
        return "suppressed"
    for other in accord.flows_for(flow.sender):
        if other.id != flow.id and accord.store.state(other, phone) in OPEN:
            return f"waiting: open question from {other.id}"
    return "would ask" if accord.store.state(flow, phone) in ("new", "contacted") else "already asked"


def ask(accord: Accord, flow: Flow, phone: str, *,
        sleep: Callable[[float], None] = time.sleep) -> str:
    """Claim the number, then send its consent request; return what happened."""
    outcome = accord.store.claim(flow, phone, window_open=True, siblings=accord.flows_for(flow.sender))
    if outcome.refused:
        return outcome.refused
    if not outcome.changed:
        return "already asked" if outcome.source != "opted_out" else "opted out"
    text, attempt = outcome.texts[0], 0
    while True:
        try:
            sid = accord.gateway.send(phone, text, sender=flow.sender,
                                      validity_period=validity(flow, accord.store.clock()),
                                      status_callback=_status_url(accord))
        except SendError as error:
            if error.unprocessed and attempt < RETRIES:
                sleep(0.5 * 2 ** attempt)
                attempt += 1
                continue
            accord.store.record_failure(flow, phone, error.code, error.message)
            if error.opted_out:
                handle_carrier_stop(accord.store, flow, phone, str(error.code), accord.flows_for(flow.sender))
                return "opted out at the provider"
            if error.unprocessed:
                # Certainly not sent: give the number back so a later round asks it.
                accord.store.step([flow], phone, "release", body=f"{error.code}: {error.message}")
                return "not sent, provider busy"
            # A timeout or a 5xx may have sent the text: sending twice is worse than reporting it.
            return "undeliverable" if error.undeliverable else "claimed, outcome unknown"
        accord.store.record_sent(flow, phone, sid, text)
        return "asked"


def validity(flow: Flow, epoch: float) -> int:
    """Return how long the provider may hold the message: until today's window closes."""
    window = flow.window(epoch)
    if not window.open:
        return 0
    now = window.opens_at
    assert now is not None  # an open window opens now
    closes = now.replace(hour=flow.sending_hours.end.hour, minute=flow.sending_hours.end.minute,
                         second=0, microsecond=0)
    return max(0, min(MAX_VALIDITY, int((closes - now).total_seconds())))


def _status_url(accord: Accord) -> str | None:
    base = accord.config.public_url
    return f"{base}/sms/status" if base else None
