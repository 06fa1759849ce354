"""The cost report for the campaign's financial agent (COMPLIANCE.md E.18): segments sent, per day.

Outbound messages are those the gateway accepted (consent requests, content, and the answers
reconcile sends late) and those answered through TwiML. Each is counted in the flow's day counts
in the call that logs it (bot/lua/costs.lua): messages per day, kind and segments, with no number,
which neither the retention purge nor an erasure touches, so the accounts due after the poll
(Code électoral L52-12) count what the purge removed. Messages logged before the counts began (by
an earlier version) are read from the ledger, a page at a time: consent requests and content from
"sent" entries, and each text of an answer's "reply". Entries archived off Redis are counted when
their archive files are read along (their personal fields stayed in Redis).

Euros come from the prices per segment of the gateway the flow sends through (bot/prices.py), each
day at the price set on or before it. The counts hold no number, so every message is priced as
sent to a French mobile: rounds ask French mobiles only.
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

from bot import Accord, ledger, references
from bot.flows import Flow
from bot.keys import costs_key
from bot.ledger import entry_order
from bot.prices import DESTINATION, FREE, FROM_FLOW, OVERRIDE, Price, Tariff, cents, tariff
from bot.segments import segments

COLUMNS = ("day", "messages", "segments", "unit_price", "price_set_on", "total_eur", "requests", "content",
           "replies")
KINDS = ("request", "content", "reply")  # as the day counts name them (bot/lua/costs.lua)


@dataclass
class Day:
    """What one day cost: messages and the segments they were billed as."""

    messages: int = 0
    segments: int = 0
    kinds: dict[str, int] = field(default_factory=dict)  # messages per kind


@dataclass
class CostReport:
    """Per-day totals, and what had to be estimated or could not be counted."""

    days: dict[dt.date, Day] = field(default_factory=dict)
    counted: bool = False  # the day counts gave the messages since they began
    from_ledger: int = 0  # messages logged before the day counts began, read from the ledger
    estimated: int = 0  # erased "sent" entries of those, counted at the consent request's segments
    unknown_replies: int = 0  # erased answers of those: whether and what TwiML answered is gone

    def add(self, day: dt.date, parts: int, kind: str, messages: int = 1) -> None:
        totals = self.days.setdefault(day, Day())
        totals.messages += messages
        totals.segments += parts * messages
        totals.kinds[kind] = totals.kinds.get(kind, 0) + messages


def costs(accord: Accord, flow: Flow, archived: Iterable[tuple[bytes, dict[bytes, bytes]]] = ()) -> CostReport:
    """Sum the flow's outbound messages and segments per day, in the flow's timezone.

    The day counts give every message since they began; the ledger, those logged before.
    `archived` are the entries archived off Redis (see archive.recorded_entries), read first.
    """
    report = CostReport()
    redis = accord.store.redis
    since = ""
    for raw_name, raw_count in redis.hgetall(costs_key(flow.id)).items():
        name = raw_name.decode()
        if name == "since":
            since = raw_count.decode()
            continue
        day, kind, parts = name.split("|")
        report.add(dt.date.fromisoformat(day), int(parts), kind, int(raw_count))
        report.counted = True
    stream = itertools.chain(archived, ledger.entries(redis, flow.id))
    if since:  # entry ids grow with time, from the archives to the stream
        stream = itertools.takewhile(lambda entry: entry_order(entry[0].decode()) < entry_order(since), stream)
    for fields, personal in _joined(redis, flow.id, stream):
        _count_logged(report, flow, fields, personal)
    return report


def _count_logged(report: CostReport, flow: Flow, fields: dict[bytes, bytes], personal: dict | None) -> None:
    """Count the messages one ledger entry logged (an entry from before the day counts)."""
    day = dt.datetime.fromtimestamp(float(fields.get(b"at", b"0")), flow.timezone).date()
    kind = fields.get(b"kind", b"").decode()
    if personal is None:
        if kind == "sent":
            report.add(day, segments(flow.texts.consent_request), "request")
            report.estimated += 1
            report.from_ledger += 1
        elif kind == "in":
            report.unknown_replies += 1
        return
    if personal.get("event") == "sent":
        text = str(personal.get("text", ""))
        report.add(day, segments(text), "content" if text in flow.texts.content else "request")
        report.from_ledger += 1
    elif str(personal.get("event", "")).startswith("in:") and personal.get("reply"):
        for text in json.loads(personal["reply"]):
            report.add(day, segments(text), _kind(flow, text))
            report.from_ledger += 1


def _kind(flow: Flow, text: str) -> str:
    """Name what a text answering a voter was, as the day counts do (the flow's current texts)."""
    return "content" if text in flow.texts.content else "request" if text == flow.texts.consent_request else "reply"


def parse_price(text: str) -> Decimal:
    """Read a unit price in euros ("0.05"), exactly; refuse what is not a number of zero or more."""
    try:
        price = Decimal(text.strip().replace(",", "."))  # "0,05" as French operators write it
    except ArithmeticError as error:  # decimal.InvalidOperation
        raise ValueError(f"{text!r} is not a price") from error
    if not price.is_finite() or price < 0:
        raise ValueError(f"{text!r}: give a price of zero or more")
    return price


def tariff_of(accord: Accord, flow: Flow) -> Tariff:
    """Return what a segment of `flow` costs: its gateway's prices, the flow's own before the settings'."""
    return tariff(accord.provider_of(flow), accord.config.prices, flow.prices)


@dataclass(frozen=True)
class Spent:
    """What the messages counted cost in euros (None: no price is set), and at which prices."""

    messages: int
    segments: int
    euros: Decimal | None
    prices: tuple[Price, ...]  # the prices the days were billed at, oldest first
    early: int  # segments sent before the first price was set, billed at it


def spent(report: CostReport, prices: Tariff) -> Spent:
    """Price every day's segments at the price set on or before that day."""
    messages = sum(day.messages for day in report.days.values())
    total = sum(day.segments for day in report.days.values())
    if not prices.known:
        return Spent(messages, total, None, (), 0)
    euros, used, early = Decimal(0), [], 0
    for day, row in sorted(report.days.items()):
        price = prices.on(day)
        assert price is not None  # a known tariff prices every day
        euros += row.segments * price.euros
        early += row.segments if prices.before(day) else 0
        if price not in used:
            used.append(price)
    return Spent(messages, total, euros, tuple(used), early)


@dataclass(frozen=True)
class TextCost:
    """What one text costs a voter's number: its segments at the latest price."""

    key: str
    segments: int
    euros: Decimal | None


@dataclass(frozen=True)
class Priced:
    """What the console shows of a flow's euros: each text, a thousand numbers asked, and spent so far."""

    gateway: str
    price: Price | None  # the latest set; None: no price is set
    from_flow: bool  # set in the flow's [[prices]], not in SEGMENT_PRICES
    texts: tuple[TextCost, ...]
    per_thousand: Decimal | None  # asking 1,000 numbers (the consent request's segments)
    spent: Spent


def priced(accord: Accord, flow: Flow, rows: Iterable[tuple[str, int]]) -> Priced:
    """Price `rows` (each text's key and segments, the first the consent request) and what the flow spent."""
    prices = tariff_of(accord, flow)
    price = prices.current
    texts = tuple(TextCost(key, parts, None if price is None else parts * price.euros) for key, parts in rows)
    per_thousand = None if price is None or not texts else texts[0].segments * 1000 * price.euros
    return Priced(prices.gateway, price, prices.source == FROM_FLOW, texts, per_thousand,
                  spent(costs(accord, flow), prices))


def rest_of_round(flow: Flow, funnel: dict[str, int], prices: Tariff) -> tuple[int, Decimal | None]:
    """Return how many queued numbers are not asked yet, and the most asking them would cost.

    Queued less sent is an upper bound: an objection, an erasure or a refused send before a
    number's turn means one text fewer. None: no price is set.
    """
    left = max(0, funnel.get("import:queued", 0) - funnel.get("sent", 0))
    price = prices.current
    return left, None if price is None else left * segments(flow.texts.consent_request) * price.euros


def write_csv(report: CostReport, out: IO[str], prices: Tariff) -> None:
    """Write one row per day with outbound messages, a TOTAL row, then notes on where the counts and prices come from.

    Each day is priced at the price set on or before it; without any price the euro columns stay empty.
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    total = Day()
    for day in sorted(report.days):
        row = report.days[day]
        price = prices.on(day)
        writer.writerow([day.isoformat(), row.messages, row.segments, *_price_columns(price, row.segments),
                         *(row.kinds.get(kind, 0) for kind in KINDS)])
        total.messages += row.messages
        total.segments += row.segments
        for kind, count in row.kinds.items():
            total.kinds[kind] = total.kinds.get(kind, 0) + count
    bill = spent(report, prices)
    single = bill.prices[0] if len(bill.prices) == 1 else None if bill.prices else prices.current
    writer.writerow(["TOTAL", total.messages, total.segments, single.euros if single else "",
                     _set_on(single), "" if bill.euros is None else bill.euros,
                     *(total.kinds.get(kind, 0) for kind in KINDS)])
    _price_notes(out, prices, bill)
    if report.counted:
        out.write("# counted as each message was sent, in day counts that hold no number: the retention purge "
                  "and erasures leave them whole\n")
    if report.from_ledger:
        out.write(f"# {report.from_ledger} message(s) logged before the day counts began: read from the ledger\n")
    if report.estimated:
        out.write(f"# {report.estimated} message(s) erased since: segments estimated from the consent request\n")
    if report.unknown_replies:
        out.write(f"# {report.unknown_replies} answer(s) erased since: their TwiML replies are not counted\n")


def _price_columns(price: Price | None, parts: int) -> list[object]:
    if price is None:
        return ["", "", ""]
    return [price.euros, _set_on(price), parts * price.euros]


def _set_on(price: Price | None) -> str:
    return price.set_on.isoformat() if price is not None and price.set_on is not None else ""


def _price_notes(out: IO[str], prices: Tariff, bill: Spent) -> None:
    """Say which prices the euros come from, or why there are none."""
    if not prices.known:
        out.write(f"# no price per segment is set for {prices.gateway} {prices.destination}: set SEGMENT_PRICES or "
                  "the flow's [[prices]], or give --unit-price; the euro columns are left empty\n")
        return
    dated = prices.gateway not in (FREE, OVERRIDE)
    for price in bill.prices or prices.prices[-1:]:
        out.write(f"# priced at {price.describe()}{f' ({prices.source})' if dated else ''}\n")
    if bill.early:
        first = prices.prices[0]
        out.write(f"# {bill.early} segment(s) sent before {_set_on(first)}, when the first price was set, "
                  f"are priced at it\n")
    if bill.euros is not None:
        out.write(f"# total: {cents(bill.euros)} EUR\n")
    if dated:
        out.write(f"# every message is priced as sent to {DESTINATION} (French mobiles): the day counts hold no "
                  "number, and rounds ask French mobiles only\n")


def _joined(redis: Redis, flow_id: str, stream: Iterable[tuple[bytes, dict[bytes, bytes]]]
            ) -> Iterator[tuple[dict[bytes, bytes], dict | None]]:
    """Yield each entry with its personal fields (None where erased, texts in full), a page at a time."""
    texts = references.table(redis)
    for page in ledger.pages(stream):
        for fields, personal in zip((f for _, f in page), ledger.personal(redis, flow_id, page), strict=True):
            yield fields, personal and references.resolve(personal, texts)
