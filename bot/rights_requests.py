"""The register of rights requests: when each came, how, who the requester proved to be, and the answer.

GDPR art. 12(3) gives the controller one month from receipt to answer. Each request is a hash
(`accord:rights-request:REF`) in an index by the day received; it never holds the number, only
its keyed HMAC. Opening and closing one, and every `person` command run for it, are written to
the audit trail in the same transaction as the register changes.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
import re
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

from redis import Redis, WatchError
from redis.client import Pipeline

from bot import audit
from bot.keys import RIGHTS_KEY, rights_actions_key, rights_key

TZ = ZoneInfo("Europe/Paris")  # the register's days are French days
CHANNELS = ("sms", "email", "post", "in-person", "page")  # "page": the voter's own page (bot/web/voter.py)
KINDS = ("access", "erasure", "objection", "rectification")
REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,39}\Z")  # no ':' nor spaces: it goes into key names


class RequestError(ValueError):
    """A rights request that cannot be added, closed or acted on; the message says why."""


@dataclass(frozen=True)
class Request:
    """One rights request, as the register holds it."""

    ref: str
    kind: str
    channel: str
    identity: str  # how the requester's identity was checked
    received: dt.date
    subject: str  # the number's HMAC, "" if the request named none
    opened_by: str
    opened_at: float
    outcome: str = ""
    closed_by: str = ""
    closed_at: float = 0.0

    @property
    def deadline(self) -> dt.date:
        """Return the last day to answer (art. 12(3))."""
        return deadline(self.received)

    @property
    def is_open(self) -> bool:
        return not self.closed_at

    def days_left(self, today: dt.date) -> int:
        """Return the days left to answer; negative once overdue."""
        return (self.deadline - today).days


@dataclass(frozen=True)
class Action:
    """Something done for a request: a register change, or a `person` command run for it."""

    at: float
    user: str
    action: str
    flow: str = ""


def deadline(received: dt.date) -> dt.date:
    """Return the day one month after `received`: the same day next month, or that month's last day.

    Periods of months end on the day with the same date (Regulation 1182/71, art. 3(2)(c)), or
    on the month's last day when it has none (31 January -> 28 or 29 February).
    """
    year, month = (received.year + 1, 1) if received.month == 12 else (received.year, received.month + 1)
    return dt.date(year, month, min(received.day, calendar.monthrange(year, month)[1]))


def today(now: float) -> dt.date:
    """Return the register's day at `now`."""
    return dt.datetime.fromtimestamp(now, TZ).date()


def check_ref(ref: str) -> str:
    """Return `ref` if a register can hold it, else raise RequestError."""
    if not REF.match(ref):
        raise RequestError(f"{ref!r}: a reference is 1 to 40 letters, digits, '.', '_', '-' or '/', "
                           "starting with a letter or digit")
    return ref


def add(redis: Redis, request: Request) -> None:
    """Add a request to the register, and its opening to the audit trail; refuse a reference in use."""
    key = rights_key(check_ref(request.ref))
    if request.kind not in KINDS or request.channel not in CHANNELS:
        raise RequestError(f"kind must be one of {', '.join(KINDS)}; channel one of {', '.join(CHANNELS)}")
    if request.received > today(request.opened_at):
        raise RequestError(f"received {request.received}: that day has not come yet")
    fields = {"kind": request.kind, "channel": request.channel, "identity": request.identity,
              "received": request.received.isoformat(), "subject": request.subject,
              "opened_by": request.opened_by, "opened_at": f"{request.opened_at:.3f}"}
    with redis.pipeline() as pipe:
        try:
            pipe.watch(key)
            if pipe.exists(key):
                raise RequestError(f"{request.ref}: already in the register (`rights list` shows it)")
            pipe.multi()
            pipe.hset(key, mapping=fields)
            pipe.zadd(RIGHTS_KEY, {request.ref: request.received.toordinal()})
            _act(pipe, request.ref, request.opened_at, request.opened_by, f"rights request opened ({request.kind})",
                 subject=request.subject, detail=f"received {request.received} by {request.channel}")
            pipe.execute()
        except WatchError as error:  # another `rights add` took the reference between our check and write
            raise RequestError(f"{request.ref}: already in the register (`rights list` shows it)") from error


def close(redis: Redis, ref: str, outcome: str, at: float, user: str) -> Request:
    """Record the answer to an open request, and its closing in the audit trail; return it closed."""
    key = rights_key(check_ref(ref))
    with redis.pipeline() as pipe:
        try:
            pipe.watch(key)
            found = _read(ref, pipe.hgetall(key))
            if found is None:
                raise RequestError(f"{ref}: not in the register")
            if not found.is_open:
                raise RequestError(f"{ref}: already closed on {today(found.closed_at)}: {found.outcome}")
            pipe.multi()
            pipe.hset(key, mapping={"outcome": outcome, "closed_by": user, "closed_at": f"{at:.3f}"})
            late = max(0, -found.days_left(today(at)))
            _act(pipe, ref, at, user, "rights request closed", subject=found.subject,
                 detail=outcome + (f" ({late} day(s) after the deadline)" if late else ""))
            pipe.execute()
        except WatchError as error:  # closed by someone else meanwhile
            raise RequestError(f"{ref}: changed while closing it; run again") from error
    return replace(found, outcome=outcome, closed_by=user, closed_at=at)


def get(redis: Redis, ref: str) -> Request | None:
    """Return the request filed under `ref`, or None."""
    return _read(ref, redis.hgetall(rights_key(ref))) if REF.match(ref) else None


def all_requests(redis: Redis) -> list[Request]:
    """Return every request in the register, the earliest received first."""
    refs = [ref.decode() for ref in redis.zrange(RIGHTS_KEY, 0, -1)]
    with redis.pipeline(transaction=False) as pipe:
        for ref in refs:
            pipe.hgetall(rights_key(ref))
        found = [_read(ref, fields) for ref, fields in zip(refs, pipe.execute(), strict=True)]
    return [request for request in found if request is not None]


def actions(redis: Redis, ref: str) -> list[Action]:
    """Return what was done for a request, oldest first."""
    return [Action(**json.loads(raw)) for raw in redis.lrange(rights_actions_key(ref), 0, -1)]


def record_access(redis: Redis, at: float, user: str, action: str, *, subject: str = "", flow: str = "",
                  request: str = "", detail: str = "") -> Request | None:
    """Write an access to personal data to the audit trail; if `request` is in the register, link it there.

    Return the request linked, or None. A request about another number is refused, nothing written:
    the command was given the wrong number or the wrong reference.
    """
    found = get(redis, request) if request else None
    if found and subject and found.subject and found.subject != subject:
        raise RequestError(f"request {request} concerns another number; nothing done")
    with redis.pipeline() as pipe:
        if found:
            _act(pipe, request, at, user, action, subject=subject, flow=flow, detail=detail)
        else:
            audit.access(pipe, at, user, action, subject=subject, flow=flow, request=request, detail=detail)
        pipe.execute()
    return found


def _act(pipe: Pipeline, ref: str, at: float, user: str, action: str, *, subject: str = "", flow: str = "",
         detail: str = "") -> None:
    """Queue an action on a request: in the audit trail, and in the request's own list."""
    audit.access(pipe, at, user, action, subject=subject, flow=flow, request=ref, detail=detail)
    pipe.rpush(rights_actions_key(ref), json.dumps({"at": at, "user": user, "action": action, "flow": flow}))


def _read(ref: str, fields: dict[bytes, bytes]) -> Request | None:
    if not fields:
        return None
    text = {name.decode(): value.decode() for name, value in fields.items()}
    return Request(ref, text["kind"], text["channel"], text["identity"], dt.date.fromisoformat(text["received"]),
                   text.get("subject", ""), text.get("opened_by", ""), float(text.get("opened_at", 0)),
                   text.get("outcome", ""), text.get("closed_by", ""), float(text.get("closed_at", 0) or 0))
