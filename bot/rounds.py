"""Send a flow's consent request to a list of numbers: claim first, then send, at most once each."""

from __future__ import annotations

import csv
import datetime as dt
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bot import Accord
from bot.conversation import handle_carrier_stop
from bot.flows import Flow
from bot.gateway import SendError
from bot.phones import PhoneError, normalize
from bot.windows import Window, sending_window

PHONE_COLUMNS = ("phone", "telephone", "téléphone", "tel", "mobile", "portable", "numero",
                 "numéro", "msisdn")
RETRIES = 3
MAX_VALIDITY = 36000  # Twilio's ceiling, in seconds


class ContactsError(ValueError):
    """A contacts file that cannot be read; the message names the file and the problem."""


@dataclass
class RoundReport:
    """What a round did with every row: nothing is dropped without a count."""

    counts: Counter[str] = field(default_factory=Counter)
    rejects: list[tuple[int, str, str]] = field(default_factory=list)  # line, raw value, reason
    window: Window | None = None


def read_phones(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, raw phone) from a CSV with a header naming the phone column."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_bytes().decode("latin-1")
    except OSError as error:
        raise ContactsError(f"{path}: cannot be read ({error.strerror})") from error
    lines = text.splitlines()
    if not lines:
        raise ContactsError(f"{path}: empty file; a header line naming the phone column is required")
    delimiter = "," if lines[0].count(",") >= lines[0].count(";") else ";"
    reader = csv.reader(lines, delimiter=delimiter)
    header = [name.strip().lower() for name in next(reader)]
    column = next((header.index(name) for name in PHONE_COLUMNS if name in header), None)
    if column is None:
        raise ContactsError(f"{path}: no phone column; name one of {', '.join(PHONE_COLUMNS)}")
    for line, row in enumerate(reader, start=2):
        yield line, row[column] if column < len(row) else ""


def start_round(accord: Accord, flow: Flow, rows: Iterable[tuple[int, str]], *,
                dry_run: bool = False, sleep: Callable[[float], None] = time.sleep) -> RoundReport:
    """Ask consent of every new number in `rows`, inside the sending window only."""
    report = RoundReport()
    now = dt.datetime.fromtimestamp(accord.store.clock(), dt.UTC)
    report.window = sending_window(now, tz=flow.timezone, poll_date=flow.poll_date,
                                   hours=flow.sending_hours)
    seen: set[str] = set()
    for line, raw in rows:
        report.counts["read"] += 1
        try:
            phone = normalize(raw)
        except PhoneError as error:
            report.counts["rejected"] += 1
            report.rejects.append((line, raw, str(error)))
            continue
        if phone in seen:
            report.counts["duplicate"] += 1
            continue
        seen.add(phone)
        if dry_run:
            report.counts["would ask"] += 1
        elif not report.window.open:
            report.counts["waiting for the window"] += 1
        else:
            report.counts[ask(accord, flow, phone, sleep=sleep)] += 1
    return report


def ask(accord: Accord, flow: Flow, phone: str, *,
        sleep: Callable[[float], None] = time.sleep) -> str:
    """Claim the number, then send its consent request; return what happened."""
    outcome = accord.store.claim(flow, phone, window_open=True)
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
            # Only a throttled request is known never to have been processed; a timeout or a
            # 5xx may have sent the text, and sending twice is worse than reporting it.
            if error.status == 429 and attempt < RETRIES:
                sleep(0.5 * 2 ** attempt)
                attempt += 1
                continue
            accord.store.record_failure(flow, phone, error.code, error.message)
            if error.opted_out:
                handle_carrier_stop(accord.store, flow, phone, str(error.code))
                return "opted out at the provider"
            return "undeliverable" if error.undeliverable else "claimed, not sent"
        accord.store.record_sent(flow, phone, sid, text)
        return "asked"


def validity(flow: Flow, epoch: float) -> int:
    """Return how long the provider may hold the message: until today's window closes."""
    now = dt.datetime.fromtimestamp(epoch, flow.timezone)
    closes = dt.datetime.combine(now.date(), flow.sending_hours.end, tzinfo=flow.timezone)
    return max(1, min(MAX_VALIDITY, int((closes - now).total_seconds())))


def _status_url(accord: Accord) -> str | None:
    base = accord.config.public_url
    return f"{base}/sms/status" if base else None
