"""The cost report for the campaign's financial agent (COMPLIANCE.md E.18): segments sent, per day.

Outbound messages are those the gateway accepted ("sent" entries: consent requests and content)
and those answered through TwiML (each text of an answer's "reply"). The ledger is read a page at
a time, so a flow of millions of entries is summed in flat memory. Entries archived off Redis are
counted when their archive files are read along (their personal fields stayed in Redis).
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO

from redis import Redis

from bot import Accord, ledger
from bot.flows import Flow
from bot.segments import segments

COLUMNS = ("day", "messages", "segments", "unit_price", "total_eur")


@dataclass
class Day:
    """What one day cost: messages and the segments they were billed as."""

    messages: int = 0
    segments: int = 0


@dataclass
class CostReport:
    """Per-day totals, and what had to be estimated or could not be counted."""

    days: dict[dt.date, Day] = field(default_factory=dict)
    estimated: int = 0  # erased "sent" entries, counted at the consent request's segments
    unknown_replies: int = 0  # erased answers: whether and what TwiML answered is gone

    def add(self, day: dt.date, parts: int) -> None:
        totals = self.days.setdefault(day, Day())
        totals.messages += 1
        totals.segments += parts


def costs(accord: Accord, flow: Flow, archived: Iterable[tuple[bytes, dict[bytes, bytes]]] = ()) -> CostReport:
    """Sum the flow's outbound messages and segments per day, in the flow's timezone.

    `archived` are the entries archived off Redis (see archive.recorded_entries), counted first.
    """
    report = CostReport()
    estimate = segments(flow.texts.consent_request)
    redis = accord.store.redis
    for fields, personal in _joined(redis, flow.id, itertools.chain(archived, ledger.entries(redis, flow.id))):
        day = dt.datetime.fromtimestamp(float(fields.get(b"at", b"0")), flow.timezone).date()
        kind = fields.get(b"kind", b"").decode()
        if personal is None:
            if kind == "sent":
                report.add(day, estimate)
                report.estimated += 1
            elif kind == "in":
                report.unknown_replies += 1
            continue
        if personal.get("event") == "sent":
            report.add(day, segments(str(personal.get("text", ""))))
        elif str(personal.get("event", "")).startswith("in:") and personal.get("reply"):
            for text in json.loads(personal["reply"]):
                report.add(day, segments(text))
    return report


def parse_price(text: str) -> Decimal:
    """Read a unit price in euros ("0.05"), exactly; refuse what is not a number of zero or more."""
    try:
        price = Decimal(text.strip().replace(",", "."))  # "0,05" as French operators write it
    except ArithmeticError as error:  # decimal.InvalidOperation
        raise ValueError(f"{text!r} is not a price") from error
    if not price.is_finite() or price < 0:
        raise ValueError(f"{text!r}: give a price of zero or more")
    return price


def write_csv(report: CostReport, out: IO[str], unit_price: Decimal) -> None:
    """Write one row per day with outbound messages, a TOTAL row, then notes on what was estimated."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    total = Day()
    for day in sorted(report.days):
        row = report.days[day]
        writer.writerow([day.isoformat(), row.messages, row.segments, unit_price, row.segments * unit_price])
        total.messages += row.messages
        total.segments += row.segments
    writer.writerow(["TOTAL", total.messages, total.segments, unit_price, total.segments * unit_price])
    if report.estimated:
        out.write(f"# {report.estimated} message(s) erased since: segments estimated from the consent request\n")
    if report.unknown_replies:
        out.write(f"# {report.unknown_replies} answer(s) erased since: their TwiML replies are not counted\n")


def _joined(redis: Redis, flow_id: str, stream: Iterable[tuple[bytes, dict[bytes, bytes]]]
            ) -> Iterator[tuple[dict[bytes, bytes], dict | None]]:
    """Yield each entry with its personal fields (None where erased), a page at a time."""
    for page in ledger.pages(stream):
        yield from zip((f for _, f in page), ledger.personal(redis, flow_id, page), strict=True)
