"""What one SMS segment costs, per gateway and destination, each price with the day it was set.

Prices come from the SEGMENT_PRICES setting, and a flow's `[[prices]]` table overrides them for
the gateway and destination it names. A price without its date, a negative or non-numeric price,
an unknown gateway or destination is refused, naming what is wrong. Money is Decimal throughout:
a binary float cannot hold 0.045 EUR. Pure: no Flask, Redis or files.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

GATEWAYS = ("twilio", "ovh")  # the providers that bill; the local outbox costs nothing
FREE = "outbox"
OVERRIDE = "--unit-price"  # a price given on the command line, for every day
FROM_FLOW, FROM_SETTINGS = "the flow's [[prices]]", "SEGMENT_PRICES"  # where a tariff's prices were set
# Where a text goes, as a price names it. Rounds admit French mobiles only (+33 6 and 7, bot/phones.py);
# another destination would be named the same way, its ISO 3166 country code then "-mobile" ("be-mobile").
DESTINATIONS = {"fr-mobile": "French mobiles, +33 6 and +33 7"}
DESTINATION = "fr-mobile"  # what every counted message is priced as: the day counts hold no number
CENT = Decimal("0.01")
YEARS = range(2000, 2200)


class PriceError(ValueError):
    """A price that cannot be used; `key` names the entry or field at fault."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key, self.problem = key, problem


@dataclass(frozen=True)
class Price:
    """Euros per segment through one gateway to one destination, from the day it was set."""

    gateway: str
    destination: str
    euros: Decimal
    set_on: dt.date | None  # None only for the outbox's nothing, which nobody sets

    def describe(self) -> str:
        """Say the price in the command line's words: "ovh fr-mobile 0.045 EUR, set on 2026-10-15"."""
        if self.gateway == FREE:
            return "nothing: the local outbox sends nothing out"
        if self.set_on is None:
            return f"{self.euros} EUR, given with --unit-price"
        return f"{self.gateway} {self.destination} {self.euros} EUR, set on {self.set_on.isoformat()}"


@dataclass(frozen=True)
class Tariff:
    """Every price set for one gateway and destination, oldest first (none: not known)."""

    gateway: str
    destination: str
    prices: tuple[Price, ...]
    source: str = ""  # where they were set: SEGMENT_PRICES, the flow's [[prices]], --unit-price

    @property
    def known(self) -> bool:
        return bool(self.prices)

    @property
    def current(self) -> Price | None:
        """Return the latest price set, which asking more numbers would cost."""
        return self.prices[-1] if self.prices else None

    def on(self, day: dt.date) -> Price | None:
        """Return the price a segment sent on `day` cost: the latest set on or before it.

        A day before the first price was set is priced at that first price (`before` says so).
        """
        chosen = self.prices[0] if self.prices else None
        for price in self.prices:
            if price.set_on is None or price.set_on <= day:
                chosen = price
        return chosen

    def before(self, day: dt.date) -> bool:
        """Say whether `day` comes before the first price was set (so is priced at a later one)."""
        first = self.prices[0].set_on if self.prices else None
        return first is not None and day < first


def price(gateway: object, destination: object, euros: object, set_on: object, *, key: str) -> Price:
    """Validate one price; raise PriceError naming `key` and the part at fault."""
    if gateway not in GATEWAYS:
        problem = "the local outbox costs nothing: set no price for it" if gateway == FREE else \
            f"unknown gateway {str(gateway)[:40]!r}; use one of {', '.join(GATEWAYS)}"
        raise PriceError(key, problem)
    if destination not in DESTINATIONS:
        raise PriceError(key, f"unknown destination {str(destination)[:40]!r}; use "
                         + ", ".join(f"{name} ({what})" for name, what in DESTINATIONS.items()))
    amount = parse_euros(euros, key=key)
    if set_on is None or set_on == "":
        raise PriceError(key, f"the price {amount} has no date: give the day it was set (YYYY-MM-DD)")
    return Price(str(gateway), str(destination), amount, _day(set_on, key))


def parse_euros(value: object, *, key: str) -> Decimal:
    """Read euros exactly ("0.045", "0,045", or a number TOML read as Decimal); refuse a negative or a non-number."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise PriceError(key, f"{str(value)[:40]!r} is not a price in euros, like 0.045")
    try:
        amount = Decimal(value.strip().replace(",", ".") if isinstance(value, str) else value)
    except InvalidOperation as error:
        raise PriceError(key, f"{str(value)[:40]!r} is not a price in euros, like 0.045") from error
    if not amount.is_finite():
        raise PriceError(key, f"{str(value)[:40]!r} is not a price in euros, like 0.045")
    if amount < 0:
        raise PriceError(key, f"{amount} is negative: a price is zero or more")
    return amount


def _day(value: object, key: str) -> dt.date:
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value.strip())
        except ValueError as error:
            raise PriceError(key, f"{value[:40]!r} is not a date like 2026-10-15") from error
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise PriceError(key, f"{str(value)[:40]!r} is not a date like 2026-10-15")
    if value.year not in YEARS:
        raise PriceError(key, f"{value} is not in the years {YEARS[0]} to {YEARS[-1]}")
    return value


def parse_setting(text: str) -> tuple[Price, ...]:
    """Read SEGMENT_PRICES: entries "GATEWAY DESTINATION EUROS YYYY-MM-DD", separated by ';'."""
    prices = []
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        words = entry.split()
        if len(words) != 4:
            problem = ("give the date the price was set after it (YYYY-MM-DD)" if len(words) == 3 else
                       "give four words: gateway, destination, euros per segment, the date it was set")
            raise PriceError(repr(entry[:60]), f"{problem}, like 'ovh fr-mobile 0.045 2026-10-15'")
        prices.append(price(*words, key=repr(entry[:60])))
    return checked(prices)


def checked(prices: Iterable[Price]) -> tuple[Price, ...]:
    """Refuse two different prices for the same gateway, destination and day; order by date."""
    seen: dict[tuple[str, str, dt.date | None], Price] = {}
    for each in prices:
        same = seen.setdefault((each.gateway, each.destination, each.set_on), each)
        if same.euros != each.euros:
            raise PriceError(f"{each.gateway} {each.destination}", f"two prices set on {each.set_on}: "
                             f"{same.euros} and {each.euros}")
    return tuple(sorted(seen.values(), key=lambda each: (each.gateway, each.destination, each.set_on or dt.date.min)))


def tariff(gateway: str, settings: Iterable[Price], flow: Iterable[Price] = (), destination: str = DESTINATION
           ) -> Tariff:
    """Return the prices of `gateway` to `destination`: the flow's own when it sets any, else the settings'."""
    if gateway == FREE:
        return Tariff(gateway, destination, (Price(gateway, destination, Decimal(0), None),), "the local outbox")
    for source, name in ((flow, FROM_FLOW), (settings, FROM_SETTINGS)):
        found = tuple(each for each in source if (each.gateway, each.destination) == (gateway, destination))
        if found:
            return Tariff(gateway, destination, found, name)
    return Tariff(gateway, destination, ())


def override(euros: Decimal) -> Tariff:
    """Return a tariff of one price given on the command line, for every day."""
    return Tariff(OVERRIDE, DESTINATION, (Price(OVERRIDE, DESTINATION, euros, None),), OVERRIDE)


def cents(amount: Decimal) -> Decimal:
    """Round an amount in euros to the cent, halves up, as an invoice does."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)
