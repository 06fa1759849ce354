"""The audit trail: who did what in the console, and who touched personal data, on which request.

Only people who proved who they are write to the trail: operators signed in to the console
(sign-in, sign-out, pause, resume) and people with a shell on the machine (operator accounts).
Its entries are dropped after KEEP_DAYS, by age, never by how many came since. Failed sign-ins,
which anyone reaching the form can cause, stay out of it: they are counted per client address
and hour, with a cap on the addresses kept per hour, so no flood can push out what operators did.
Access to personal data (`person show` and `erase`, `consent export`, `purge`, `reconcile`, the
rights register) goes to a stream of its own that nothing trims: it must still be there when a
voter or the CNIL asks. It never holds a number: the keyed HMAC of the suppression list stands for it.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass

from redis import Redis
from redis.client import Pipeline

from bot.keys import ACCESS_KEY, AUDIT_KEY, sign_in_failures_key

# A year, the top of the six months to a year the CNIL recommends for access logs (recommendation
# on logging, 2021): long enough to answer for any action taken during a campaign.
KEEP_DAYS = 365
FAILED_KEEP_DAYS = 90  # counts of failed sign-ins per address: long enough to see and report an attack
ADDRESSES_PER_HOUR = 1_000  # addresses counted apart in one hour; the rest share OTHERS' count
OTHERS = "(other addresses)"
FAILED_KINDS = ("failed", "locked", "throttled")  # wrong password or name; name locked; address over its limit
# Append an action, then drop what is older than ARGV[1] ms by the stream's own clock (its ids).
APPEND = """
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 2))
local oldest = tonumber(string.match(id, '^%d+')) - tonumber(ARGV[1])
redis.call('XTRIM', KEYS[1], 'MINID', string.format('%.0f', oldest))
return id
"""
# Count one failed sign-in; a new address past the hour's cap is counted under OTHERS instead.
COUNT_FAILURE = """
local field = ARGV[1] .. ' ' .. ARGV[2]
if redis.call('HEXISTS', KEYS[1], field) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  field = ARGV[4] .. ' ' .. ARGV[2]
end
redis.call('HINCRBY', KEYS[1], field, 1)
redis.call('EXPIRE', KEYS[1], ARGV[5])
"""
SHOWN_DIGEST = 12  # hex digits of a number's HMAC shown: enough to tell numbers apart, and to search


@dataclass(frozen=True)
class Entry:
    """One console action."""

    id: str
    at: float
    operator: str
    action: str
    flow: str
    detail: str


def record(redis: Redis | Pipeline, at: float, operator: str, action: str, *, flow: str = "",
           detail: str = "") -> None:
    """Append one operator's action to the trail, dropping entries older than KEEP_DAYS."""
    # Entry ids are Redis's clock in milliseconds, so trimming by id is trimming by age, exactly.
    redis.eval(APPEND, 1, AUDIT_KEY, KEEP_DAYS * 86_400_000, "at", f"{at:.3f}", "operator", operator,
               "action", action, "flow", flow, "detail", detail)


@dataclass(frozen=True)
class FailedSignIns:
    """Failed sign-ins from one client address over some hours."""

    address: str
    failed: int  # wrong name or password
    locked: int  # refused unchecked: the name had used up its tries
    throttled: int  # refused unchecked: the address had used up its tries

    @property
    def total(self) -> int:
        return self.failed + self.locked + self.throttled


def failed_sign_in(redis: Redis, at: float, address: str, kind: str) -> None:
    """Count one failed sign-in from a client address, in the hour it came."""
    assert kind in FAILED_KINDS, kind
    redis.eval(COUNT_FAILURE, 1, sign_in_failures_key(int(at // 3600)), address, kind, ADDRESSES_PER_HOUR,
               OTHERS, FAILED_KEEP_DAYS * 86_400)


def failed_sign_ins(redis: Redis, now: float, hours: int = 24) -> list[FailedSignIns]:
    """Return the failed sign-ins per address over the last `hours` hours, most first."""
    hour = int(now // 3600)
    with redis.pipeline(transaction=False) as pipe:
        for past in range(hour - hours + 1, hour + 1):
            pipe.hgetall(sign_in_failures_key(past))
        counts: dict[str, dict[str, int]] = {}
        for fields in pipe.execute():
            for field, value in fields.items():
                address, _, kind = field.decode().rpartition(" ")
                per_kind = counts.setdefault(address, dict.fromkeys(FAILED_KINDS, 0))
                per_kind[kind] = per_kind.get(kind, 0) + int(value)
    found = [FailedSignIns(address, kinds["failed"], kinds["locked"], kinds["throttled"])
             for address, kinds in counts.items()]
    return sorted(found, key=lambda item: (-item.total, item.address))


@dataclass(frozen=True)
class Access:
    """One access to personal data: who, what, on whose number (its HMAC) and on which request."""

    id: str
    at: float
    user: str
    action: str
    subject: str  # the number's HMAC, "" when the action reaches many numbers
    flow: str
    request: str
    detail: str

    def describe(self) -> str:
        """Say on whom and on which request, for a one-line listing."""
        parts = [f"number {self.subject[:SHOWN_DIGEST]}" if self.subject else "",
                 f"request {self.request}" if self.request else "", self.detail]
        return "; ".join(part for part in parts if part)


def user() -> str:
    """Name the operating-system user running this process (its uid where no name can be found)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no LOGNAME/USER and no passwd entry (a bare container): the uid still says who
        return f"uid {os.getuid()}"


def access(redis: Redis | Pipeline, at: float, user: str, action: str, *, subject: str = "", flow: str = "",
           request: str = "", detail: str = "") -> None:
    """Append one access to personal data to its own stream, which nothing trims."""
    redis.xadd(ACCESS_KEY, {"at": f"{at:.3f}", "user": user, "action": action, "subject": subject,
                            "flow": flow, "request": request, "detail": detail})


def accesses(redis: Redis, *, count: int | None = None) -> list[Access]:
    """Return the latest accesses to personal data (all of them by default), newest first."""
    return [Access(entry_id.decode(), float(fields.get(b"at", 0)), _text(fields, b"user"), _text(fields, b"action"),
                   _text(fields, b"subject"), _text(fields, b"flow"), _text(fields, b"request"),
                   _text(fields, b"detail"))
            for entry_id, fields in redis.xrevrange(ACCESS_KEY, count=count)]


def latest(redis: Redis, count: int = 50) -> list[Entry]:
    """Return the latest actions, console and personal-data access together, newest first."""
    console = [Entry(entry_id.decode(), float(fields.get(b"at", 0)), _text(fields, b"operator"),
                     _text(fields, b"action"), _text(fields, b"flow"), _text(fields, b"detail"))
               for entry_id, fields in redis.xrevrange(AUDIT_KEY, count=count)]
    touched = [Entry(item.id, item.at, item.user, item.action, item.flow, item.describe())
               for item in accesses(redis, count=count)]
    # Both streams' ids are Redis's own clock in milliseconds, so they interleave by id.
    return sorted(console + touched, key=lambda entry: _order(entry.id), reverse=True)[:count]


def _order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


def _text(fields: dict[bytes, bytes], name: bytes) -> str:
    return fields.get(name, b"").decode(errors="replace")
