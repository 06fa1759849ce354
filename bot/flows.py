"""Load campaign flows from `flows/*.toml` and refuse any that would break the rules."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import string
import tomllib
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.notice import Notice, NoticeError
from bot.notice import parse as parse_notice
from bot.phones import E164
from bot.prices import Price, PriceError, checked, price
from bot.windows import SendingHours, Window, closes_at, sending_window

LANGUAGES = frozenset({"fr", "en"})
PLACEHOLDERS = frozenset({"controller", "purpose", "source", "notice_url"})
TEXT_KEYS = ("consent_request", "confirmation", "declined", "stopped", "help", "clarification")
REQUIRED_KEYS = ("id", "controller_id", "controller", "purpose", "source", "poll_date", "sender", "notice")
# notice_url may be left out when PUBLIC_URL is set: the bot serves the notice itself (NOTICE_PATH).
OPTIONAL_KEYS = ("notice_url", "language", "timezone", "expiry_days", "end_date", "retention_days", "sending_hours",
                 "sending_days", "texts", "gateway", "prices")
PRICE_KEYS = ("gateway", "destination", "euros", "set_on")  # of each [[prices]] entry (bot/prices.py)
NOTICE_PATH = "/notice/"
# The providers a flow may name; without one, it sends through the one the settings configure.
GATEWAYS = ("twilio", "ovh")
# The longest a number is kept after the voter's last contact: the CNIL's three years for
# prospection data (référentiel "gestion commerciale", 2021). `retention_days` may only shorten it.
MAX_RETENTION_DAYS = 3 * 365
MAX_VALIDITY = 36000  # seconds a provider may hold a text: Twilio's ceiling
# Less than this left before the voter's window shuts, and a campaign text waits for the next one:
# the workers' before each send, an answer before it goes (bot/answering.py), the webhook's choice.
MIN_VALIDITY = 60
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FLOW_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}\Z")
MAX_TEXT = 1600  # Twilio refuses longer bodies (21617)
MAX_FILE = 100_000  # bytes of a flow file
YEARS = range(2000, 2200)  # of a date in a flow: 0024 for 2024 is a typo, and year 1 breaks date arithmetic
# A reply-capable sender: E.164 long code, a national short code, or a Messaging Service.
# Alphanumeric senders are one-way (COMPLIANCE.md B.10), so they are refused.
SENDER = re.compile(rf"{E164.pattern}|[0-9]{{4,6}}|MG[0-9a-fA-F]{{32}}")
STOP_WORD = re.compile(r"\bSTOP\b")


class FlowError(ValueError):
    """A flow file that cannot be used; the message names file, key and problem."""

    def __init__(self, path: Path | str, key: str, problem: str) -> None:
        super().__init__(f"{path}: {key}: {problem}")
        self.path, self.key, self.problem = str(path), key, problem


@dataclass(frozen=True)
class Texts:
    """The rendered texts of a flow, placeholders already filled in."""

    consent_request: str
    confirmation: str
    declined: str
    stopped: str
    help: str
    clarification: str
    content: tuple[str, ...]

    def say(self, key: str) -> str:
        """Return the text a machine step names; "content" is the first campaign message."""
        return self.content[0] if key == "content" else getattr(self, key)


@dataclass(frozen=True, eq=False)  # identity: hashing every field on each message costs
class Flow:
    """One campaign purpose of one controller."""

    id: str
    controller_id: str  # stable: the suppression list is kept per controller_id
    controller: str
    purpose: str
    source: str
    notice_url: str
    language: str
    poll_dates: tuple[dt.date, ...]  # every round of the election: each has its silence
    timezone: ZoneInfo
    sender: str
    expiry_days: int
    end_date: dt.date | None
    sending_hours: SendingHours
    texts: Texts
    content_hash: str
    path: str
    notice: Notice  # what the notice page says beyond the fields above (bot/notice.py)
    canonical: str = ""  # the flow's data as its content_hash hashes it (a proof bundle carries it)
    retention_days: int = MAX_RETENTION_DAYS  # kept at most this long after the last contact (rights.due)
    gateway: str = ""  # one of GATEWAYS, or "" for the settings' own provider
    prices: tuple[Price, ...] = ()  # euros per segment, overriding the settings' for what they name

    @property
    def expiry_seconds(self) -> int:
        """Return how long a consent question stays open."""
        return self.expiry_days * 86400

    def window(self, epoch: float, region: str = "") -> Window:
        """Say whether campaign texts may go at `epoch` to a voter of `region` (and when they next may).

        `region` is a key of `windows.REGIONS`; an unknown one raises ValueError.
        """
        now = dt.datetime.fromtimestamp(epoch, self.timezone)
        return sending_window(now, tz=self.timezone, poll_date=self.poll_dates, hours=self.sending_hours,
                              region=region, end_date=self.end_date)

    def is_open(self, epoch: float, region: str = "") -> bool:
        """Say whether campaign texts may go at `epoch` to a voter of `region`.

        Every limit of a window falls on a whole local minute, and every time zone a voter may be
        in is a whole number of minutes from UTC, so the answer holds for the whole minute: it is
        worked out once a minute and region, not once a text.
        """
        return _open_in_minute(self, int(epoch // 60), region)

    def closes_at(self, epoch: float, region: str = "") -> dt.datetime:
        """Return when the window open at `epoch` for a voter of `region` shuts (`epoch` if it is shut)."""
        now = dt.datetime.fromtimestamp(epoch, self.timezone)
        return closes_at(now, tz=self.timezone, poll_date=self.poll_dates, hours=self.sending_hours,
                         region=region, end_date=self.end_date)

    def open_until(self, epoch: float, region: str = "") -> float | None:
        """Return when the window open at `epoch` for a voter of `region` shuts, as a timestamp; None if shut.

        The instant `closes_at` names, worked out once a minute and region as `is_open` is: within
        a minute the window is open throughout, and its next limit is the same, or shut throughout.
        """
        return _open_until_in_minute(self, int(epoch // 60), region)

    def validity(self, epoch: float, region: str = "") -> int:
        """Return how long a provider may hold a campaign text: until the voter's window shuts (0 if shut).

        Counted in elapsed seconds, not wall-clock ones: on a DST day they differ by an hour.
        """
        until = self.open_until(epoch, region)
        return 0 if until is None else max(0, min(MAX_VALIDITY, int(until - epoch)))

    def has_ended(self, epoch: float) -> bool:
        """Say whether `epoch` is past the flow's end date (the last day it may send), in its zone."""
        return self.end_date is not None and dt.datetime.fromtimestamp(epoch, self.timezone).date() > self.end_date


@lru_cache(maxsize=4096)
def _open_in_minute(flow: Flow, minute: int, region: str) -> bool:
    return flow.window(minute * 60, region).open


@lru_cache(maxsize=4096)
def _open_until_in_minute(flow: Flow, minute: int, region: str) -> float | None:
    epoch = minute * 60
    return flow.closes_at(epoch, region).timestamp() if flow.is_open(epoch, region) else None


def load_flows(directory: Path | str, public_url: str | None = None) -> dict[str, Flow]:
    """Load every `*.toml` flow in `directory`, keyed by id; refuse duplicates.

    With `public_url` (PUBLIC_URL), a flow without `notice_url` links to the notice the bot serves.
    """
    flows: dict[str, Flow] = {}
    paths = flow_paths(directory)
    if not paths:
        raise FlowError(directory, "*.toml", "no flow files found")
    for path in paths:
        flow = load_flow(path, public_url)
        if flow.id in flows:
            raise FlowError(path, "id", f"{flow.id!r} is already defined in {flows[flow.id].path}")
        flows[flow.id] = flow
    return flows


def flow_paths(directory: Path | str) -> list[Path]:
    """The flow files in `directory`, by name; names starting with a dot are editors' lock and
    backup files (emacs's .#demo.toml)."""
    return sorted(path for path in Path(directory).glob("*.toml") if not path.name.startswith("."))


def load_flow(path: Path | str, public_url: str | None = None) -> Flow:
    """Read and validate one flow file (`public_url`: see load_flows)."""
    path = Path(path)
    if not path.exists():
        raise FlowError(path, "(file)", "no such file (or a link to none)")
    if not path.is_file():  # a FIFO would block the read, a device would never end
        raise FlowError(path, "(file)", "is not a regular file")
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE + 1)
        if len(raw) > MAX_FILE:
            raise FlowError(path, "(file)", f"is larger than {MAX_FILE // 1000} kB: a flow is a page of text")
        data = tomllib.loads(raw.decode("utf-8-sig"), parse_float=Decimal)  # a price of 0.045 stays exact
    # tomllib lets through ValueError for an integer of over 4,300 digits, RecursionError for deep nesting
    except (OSError, ValueError, RecursionError) as error:
        raise FlowError(path, "(file)", f"cannot be read as UTF-8 TOML: {str(error)[:200]}") from error
    return parse_flow(data, path, public_url)


def parse_flow(data: dict, path: Path | str, public_url: str | None = None) -> Flow:
    """Validate parsed TOML data into a Flow (`public_url`: see load_flows)."""
    unknown = set(data) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS)
    if unknown:
        raise FlowError(path, ", ".join(sorted(unknown)), "unknown key")
    fields = {key: _text(data, key, path) for key in REQUIRED_KEYS if key not in ("poll_date", "notice")}
    for key in ("id", "controller_id"):
        if not FLOW_ID.match(fields[key]):
            raise FlowError(path, key, "use 1-40 lower-case letters, digits, '-' or '_'")
    if "notice_url" in data:
        fields["notice_url"] = _text(data, "notice_url", path)
    elif public_url:
        fields["notice_url"] = f"{public_url.rstrip('/')}{NOTICE_PATH}{fields['id']}"
        data = {**data, "notice_url": fields["notice_url"]}  # the hash covers the link the texts carry
    else:
        raise FlowError(path, "notice_url", "missing: link the full privacy notice, or set PUBLIC_URL "
                        f"for the bot to serve it at {NOTICE_PATH}<id>")
    if not fields["notice_url"].startswith(("https://", "http://")):
        raise FlowError(path, "notice_url", "must be an http(s) link to the full privacy notice")
    if not SENDER.fullmatch(fields["sender"]):
        raise FlowError(path, "sender", "must accept replies: an E.164 number, a short code or a"
                        " Messaging Service SID (alphanumeric senders are one-way)")
    language = data.get("language", "fr")
    if not isinstance(language, str) or language not in LANGUAGES:
        raise FlowError(path, "language", f"{language!r} is not one of {sorted(LANGUAGES)}")
    poll_dates = _poll_dates(data.get("poll_date"), path)
    end_date = _date(data, "end_date", path) if "end_date" in data else None
    if end_date is not None and end_date < poll_dates[-1]:
        raise FlowError(path, "end_date", "must not be before the last poll_date: consent is kept until then")
    try:
        timezone = ZoneInfo(str(data.get("timezone", "Europe/Paris")))
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:  # "Europe" is a directory
        raise FlowError(path, "timezone", f"unknown time zone {data.get('timezone')!r}") from error
    expiry_days = data.get("expiry_days", 7)
    if type(expiry_days) is not int or not 1 <= expiry_days <= 90:
        raise FlowError(path, "expiry_days", "must be a whole number of days between 1 and 90")
    retention_days = data.get("retention_days", MAX_RETENTION_DAYS)
    if type(retention_days) is not int or not expiry_days <= retention_days <= MAX_RETENTION_DAYS:
        raise FlowError(path, "retention_days", f"must be a whole number of days from expiry_days ({expiry_days}) "
                        f"to {MAX_RETENTION_DAYS}, three years from the last contact (COMPLIANCE.md D.14)")
    try:
        hours = SendingHours.parse(str(data.get("sending_hours", "08:30-20:00")))
    except ValueError as error:
        raise FlowError(path, "sending_hours", str(error)) from error
    hours = replace(hours, weekdays=_days(str(data.get("sending_days", "mon-sat")), path))
    gateway = data.get("gateway", "")
    if "gateway" in data and gateway not in GATEWAYS:
        raise FlowError(path, "gateway", f"{gateway!r} is not one of {list(GATEWAYS)}"[:200])
    try:
        notice = parse_notice(data.get("notice"), last_poll=poll_dates[-1])
    except NoticeError as error:
        raise FlowError(path, error.key, error.problem) from error
    texts = _texts(data.get("texts"), fields, path)
    prices = _prices(data.get("prices", []), path)
    # Prices are accounting, not what voters are told: changing one makes no new version of the flow.
    canonical = json.dumps({key: value for key, value in data.items() if key != "prices"}, sort_keys=True,
                           default=str, ensure_ascii=False)
    return Flow(
        **fields, language=language, poll_dates=poll_dates, timezone=timezone,
        expiry_days=expiry_days, end_date=end_date, sending_hours=hours, texts=texts,
        content_hash=hashlib.sha256(canonical.encode()).hexdigest(), path=str(path), notice=notice,
        canonical=canonical, retention_days=retention_days, gateway=gateway, prices=prices,
    )


def _prices(section: object, path: Path | str) -> tuple[Price, ...]:
    """Read the `[[prices]]` entries: gateway, destination, euros per segment and the day it was set."""
    if not isinstance(section, list):
        raise FlowError(path, "prices", "must be [[prices]] entries, each with " + ", ".join(PRICE_KEYS))
    found = []
    for n, entry in enumerate(section):
        key = f"prices[{n}]"
        if not isinstance(entry, dict):
            raise FlowError(path, key, "must be a table with " + ", ".join(PRICE_KEYS))
        unknown = sorted(set(entry) - set(PRICE_KEYS))
        if unknown:
            raise FlowError(path, f"{key}.{unknown[0]}"[:80], f"unknown key; use {', '.join(PRICE_KEYS)}")
        missing = [name for name in PRICE_KEYS if name not in entry]
        if missing:
            raise FlowError(path, f"{key}.{missing[0]}", "missing" + (": the day this price was set, like "
                                                                      "2026-10-15" if missing[0] == "set_on" else ""))
        try:
            found.append(price(*(entry[name] for name in PRICE_KEYS), key=key))
        except PriceError as error:
            raise FlowError(path, error.key, error.problem) from error
    try:
        return checked(found)
    except PriceError as error:
        raise FlowError(path, "prices", str(error)) from error


def _text(data: dict, key: str, path: Path | str) -> str:
    value = data.get(key)
    if value is None:
        raise FlowError(path, key, "missing")
    if not isinstance(value, str) or not value.strip():
        raise FlowError(path, key, "must be a non-empty string")
    return value.strip()


def _date(data: dict, key: str, path: Path | str) -> dt.date:
    value = data.get(key)
    if value is None:
        raise FlowError(path, key, "missing")
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise FlowError(path, key, f"must be a TOML date like 2027-04-11, not {value!r}"[:200])
    if value.year not in YEARS:
        raise FlowError(path, key, f"{value} is not in the years {YEARS[0]} to {YEARS[-1]}")
    return value


def _poll_dates(value: object, path: Path | str) -> tuple[dt.date, ...]:
    """Read one poll date or the list of an election's rounds, in order."""
    values = value if isinstance(value, list) else [value]
    if not values:
        raise FlowError(path, "poll_date", "must be a TOML date like 2027-04-11, or a list of them")
    dates = sorted(_date({"poll_date": item}, "poll_date", path) for item in values)
    return tuple(dates)


def _days(text: str, path: Path | str) -> frozenset[int]:
    """Parse a day range like "mon-sat" into weekday numbers (Monday=0)."""
    first, dash, last = text.strip().lower().partition("-")
    if first not in DAYS or (last if dash else first) not in DAYS:
        raise FlowError(path, "sending_days", f"{text!r} is not a range like 'mon-sat'")
    start, end = DAYS.index(first), DAYS.index(last or first)
    if end < start:
        raise FlowError(path, "sending_days", f"{text!r} must run forwards, like 'mon-sat'")
    return frozenset(range(start, end + 1))


def _texts(section: object, fields: dict[str, str], path: Path | str) -> Texts:
    if not isinstance(section, dict):
        raise FlowError(path, "texts", "missing [texts] table")
    unknown = set(section) - set(TEXT_KEYS) - {"content"}
    if unknown:
        raise FlowError(path, "texts." + ", texts.".join(sorted(unknown)), "unknown key")
    values = {key: _render(section, key, fields, path) for key in TEXT_KEYS}
    content = section.get("content")
    if isinstance(content, str):
        content = [content]
    if not isinstance(content, list) or not content:
        raise FlowError(path, "texts.content", "must be a list of one or more messages")
    rendered = tuple(_render({"content": item}, "content", fields, path, f"texts.content[{n}]")
                     for n, item in enumerate(content))
    _require_mentions(values["consent_request"], section["consent_request"], fields, path)
    # Every later message carries the sender's identity and a way to object (A.5); the answers
    # to NO and STOP end the conversation, so they need no STOP of their own.
    later = [(f"texts.{key}", values[key], section[key], key not in ("declined", "stopped"))
             for key in TEXT_KEYS[1:]]
    later += [(f"texts.content[{n}]", message, content[n], True) for n, message in enumerate(rendered)]
    for label, message, template, needs_stop in later:
        if fields["controller"] not in message:
            raise FlowError(path, label, "must name the controller ({controller})")
        if needs_stop and not _offers_stop(message, template):
            raise FlowError(path, label, "must offer STOP")
    return Texts(**values, content=rendered)


def _render(section: dict, key: str, fields: dict[str, str], path: Path | str,
            label: str | None = None) -> str:
    label = label or f"texts.{key}"
    template = section.get(key)
    if not isinstance(template, str) or not template.strip():
        raise FlowError(path, label, "missing or empty")
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as error:
        raise FlowError(path, label, f"malformed placeholder: {error}") from error
    names = {name for _, name, _, _ in parts if name is not None}
    # A format spec or a conversion could pad a text to gigabytes or reach into attributes.
    shaped = next((f"{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
                   for _, name, spec, conversion in parts if spec or conversion), None)
    if shaped:
        raise FlowError(path, label, f"malformed placeholder {shaped}: a placeholder is only a name in braces")
    unknown = names - PLACEHOLDERS
    if unknown:
        raise FlowError(path, label, f"unknown placeholder {{{sorted(unknown)[0]}}}; "
                        f"use {', '.join('{' + p + '}' for p in sorted(PLACEHOLDERS))}")
    try:
        text = template.strip().format(**fields)
    except (ValueError, KeyError, IndexError) as error:  # "{0}", "{}"
        raise FlowError(path, label, f"malformed placeholder: {error}") from error
    if len(text) > MAX_TEXT:
        raise FlowError(path, label, f"{len(text)} characters once filled in; an SMS carries at most {MAX_TEXT}")
    return text


def _offers_stop(message: str, template: str) -> bool:
    """Say whether STOP is a word of the text as sent, and of its own words: a controller named
    "Liste STOP" offers no STOP, nor does "{controller}STOP" (a letter stands for each placeholder)."""
    own_words = "".join(literal + ("x" if name is not None else "")
                        for literal, name, _, _ in string.Formatter().parse(template))
    return bool(STOP_WORD.search(message) and STOP_WORD.search(own_words))


def _require_mentions(request: str, template: str, fields: dict[str, str], path: Path | str) -> None:
    """Refuse a consent request missing who, why, where the number came from, or how to refuse (A.4)."""
    for key in ("controller", "purpose", "source", "notice_url"):
        if fields[key] not in request:
            raise FlowError(path, "texts.consent_request", f"must state the {key} ({{{key}}})")
    if not _offers_stop(request, template):
        raise FlowError(path, "texts.consent_request", "must include the STOP instruction")
