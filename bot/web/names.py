"""Human names for what the store records: a number's states, the funnel's stages, ledger events, audit actions.

The store keeps short machine names (`consented`, `in:YES`, `give_back:2`); campaign staff read
"a donné son accord", "a répondu OUI". Each table is lazily translated, so one import serves every
request in its own language. A name no table knows (one added later, a hand-edited entry) is shown
as it is: a page never fails for want of a label.
"""

from __future__ import annotations

import re

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

from bot.rights import REMOVED

# A number's state in a flow (bot/machine.py STATES).
STATES = {
    "new": _l("not contacted yet"),
    "contacted": _l("told who writes, not asked"),
    "asked": _l("awaiting an answer"),
    "clarified": _l("awaiting an answer, after a question"),
    "consented": _l("gave consent"),
    "declined": _l("said no"),
    "opted_out": _l("objected"),
    "expired": _l("never answered"),
    "unreadable": _l("unreadable record (see `states check`)"),
    REMOVED: _l("its flow file was removed"),
}

# The funnel's stages (bot/web/dashboard.py STAGES): how many numbers reached each. Short: the
# funnel chart gives a label about 14 characters.
STAGES = {
    "imported": _l("imported"),
    "asked": _l("asked"),
    "delivered": _l("delivered"),
    "answered": _l("answered"),
    "consented": _l("consented"),
    "declined": _l("declined"),
    "opted out": _l("opted out"),
    "expired": _l("unanswered"),
}

# What a voter's text meant ("in:" + the trigger, bot/store.py) ...
ANSWERS = {
    "YES": _l("answered YES"),
    "NO": _l("answered NO"),
    "STOP": _l("answered STOP"),
    "START": _l("asked to hear from us again"),
    "HELP": _l("asked who is writing"),
    "DATA": _l("asked for their data"),
    "OTHER": _l("answered something else"),
}

# ... and every other ledger event, by its kind: the part before any ":" (bot/lua/*.lua, bot/store.py).
EVENTS = {
    "ask": _l("consent request"),
    "release": _l("consent request held back"),
    "expire": _l("question expired"),
    "stop": _l("objection recorded"),
    "carrier_stop": _l("blocked by the carrier"),
    "sent": _l("text sent"),
    "send_failed": _l("sending failed"),
    "import": _l("numbers imported"),
    "export": _l("data exported"),
    "erasure": _l("data erased"),
}

# Why the sending window is shut (bot/windows.py closed_reason), those said in full.
REASONS = {
    "electoral silence": _l("electoral silence"),
    "before sending hours": _l("before sending hours"),
    "after sending hours": _l("after sending hours"),
    "Monday": _l("Monday"), "Tuesday": _l("Tuesday"), "Wednesday": _l("Wednesday"), "Thursday": _l("Thursday"),
    "Friday": _l("Friday"), "Saturday": _l("Saturday"), "Sunday": _l("Sunday"),
}

# How serious a linter finding about a flow's texts is (bot/lint.py); its message stays the linter's own.
LEVELS = {"error": _l("error"), "warning": _l("warning")}

# An operator's role (bot/operators.py ROLES).
ROLES = {"admin": _l("admin"), "viewer": _l("viewer")}

# Console and personal-data actions in the audit trail (bot/audit.py; bot/cli/local.py; bot/web/voter.py).
ACTIONS = {
    "sign-in": _l("signed in"),
    "sign-out": _l("signed out"),
    "pause": _l("paused sending"),
    "resume": _l("resumed sending"),
    "sign-ins locked": _l("sign-ins locked"),
    "operator added": _l("account added"),
    "operator role": _l("role changed"),
    "operator removed": _l("account removed"),
    "person show (voter page)": _l("voter opened their page"),
    "person erase (voter page)": _l("voter erased their data"),
}


def state(name: str) -> str:
    """Name a number's state for people: `consented` is "gave consent"."""
    return str(STATES.get(name, name))


def stage(name: str) -> str:
    """Name a funnel stage for people."""
    return str(STAGES.get(name, name))


def move(raw: str) -> str:
    """Name a state move as the ledger keeps it, `asked>consented`, with an arrow between human names."""
    if not raw or ">" not in raw:
        return raw
    source, _arrow, dest = raw.partition(">")
    return f"{state(source)} → {state(dest)}"


def event(raw: str) -> str:
    """Name a ledger event: `in:YES` is "answered YES", `content:2` is "content 2 released"."""
    kind, _colon, detail = raw.partition(":")
    if kind == "in":
        return str(ANSWERS.get(detail, raw))
    if kind == "content" and detail:
        return gettext("content %(n)s released", n=detail)
    if kind == "give_back" and detail:
        return gettext("content %(n)s given back, not sent", n=detail)
    return str(EVENTS.get(kind, raw))


def reason(raw: str) -> str:
    """Say why the window is shut: "dimanche", "jour férié : Noël" (the holiday's own name is French)."""
    kind, colon, detail = raw.partition(": ")
    if colon and kind == "public holiday":
        return gettext("public holiday: %(name)s", name=detail)
    if raw.startswith("after the flow's end date, "):
        return gettext("after the flow's end date, %(date)s", date=raw.rpartition(", ")[2])
    return str(REASONS.get(raw, raw))


# The details the console writes into the audit trail (bot/web/console.py), kept in English there as
# records are; shown in the page's language. Any other detail is shown as written.
DETAILS = (
    (re.compile(r"from (\S+)"), _l("from %(address)s"), ("address",)),
    (re.compile(r"sending stops at the next number"), _l("sending stops at the next number"), ()),
    (re.compile(r"(\d+) parked and (\d+) interrupted batch\(es\) queued again"),
     _l("%(parked)s parked and %(recovered)s interrupted batch(es) queued again"), ("parked", "recovered")),
    (re.compile(r"(\d+) failed within the hour, the last from (\S+)"),
     _l("%(failed)s failed within the hour, the last from %(address)s"), ("failed", "address")),
)


def detail(raw: str) -> str:
    """Say an audit entry's detail in the page's language, if the console wrote it; else as written."""
    for pattern, said, fields in DETAILS:
        found = pattern.fullmatch(raw)
        if found:
            return str(said) % dict(zip(fields, found.groups(), strict=True))
    return raw


def level(raw: str) -> str:
    """Name a linter finding's level for people."""
    return str(LEVELS.get(raw, raw))


def role(raw: str) -> str:
    """Name an operator's role for people."""
    return str(ROLES.get(raw, raw))


def action(raw: str) -> str:
    """Name an audit-trail action for people."""
    return str(ACTIONS.get(raw, raw))
