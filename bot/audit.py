"""The audit trail: who did what in the console, and who touched personal data, on which request.

It is two streams. The console's one (sign-ins, failed ones included, sign-outs, pause, resume) is
capped: anyone who reaches the sign-in form can add to it. Access to personal data (`person show`
and `erase`, `consent export`, `purge`, `reconcile`, the rights register) goes to a stream of its
own with no cap. Only people with a shell on the machine write there, a few lines a day, and what
they did must still be there when a voter or the CNIL asks, however many failed sign-ins came
meanwhile. It never holds a number: the keyed HMAC of the suppression list stands for it.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass

from redis import Redis
from redis.client import Pipeline

from bot.keys import ACCESS_KEY, AUDIT_KEY

KEEP = 10_000  # console entries kept (about; Redis trims whole nodes)
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


def record(redis: Redis, at: float, operator: str, action: str, *, flow: str = "", detail: str = "") -> None:
    """Append one action to the audit stream."""
    redis.xadd(AUDIT_KEY, {"at": f"{at:.3f}", "operator": operator, "action": action, "flow": flow,
                           "detail": detail}, maxlen=KEEP, approximate=True)


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
