"""How a number's state in a flow is laid out in Redis: small hashes of short values.

A flow's numbers are spread over 100,000 hashes by their last five digits (the key's suffix);
within one, the field is the number's other digits. Both stay small enough for Redis to keep
each hash as one compact list of integers and short strings, instead of a table entry per
number: about 20 bytes a number rather than about 90. A national list of 34 million numbers puts
340 in a hash, well within hash-max-listpack-entries (1,024); the 10,000 hashes of four digits
earlier versions used held 3,400 each, past it (bot/migrate.py moves them).

A value is one letter for the state, then when the question was asked (whole seconds) and when
the number was last touched (milliseconds: it decides which flow a text answers), written in
base 36, then the voter's calendar region (bot/windows.py), one upper-case letter or none for
the national calendar: "a" + asked + "." + touched + region.
bot/lua/state.lua reads and writes the same layout inside the scripts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from bot.keys import state_key
from bot.machine import STATES

CODES = {"new": "n", "contacted": "c", "asked": "a", "clarified": "l", "consented": "y",
         "declined": "d", "opted_out": "o", "expired": "e"}
NAMES = {code: name for name, code in CODES.items()}
SUFFIX = 5  # digits naming the hash; 100,000 hashes a flow
EARLIER_SUFFIX = 4  # those of the layout before (bot/migrate.py)
VALUE = re.compile(r"^([a-z])([0-9a-z]+)\.([0-9a-z]+)([A-Z]?)\Z")
assert set(CODES) == set(STATES), "every state needs a letter"


class StateRecordError(ValueError):
    """A stored state value is not in the layout above."""


def slot(flow_id: str, phone: str) -> tuple[str, str]:
    """Return the hash and the field holding `phone`'s state in a flow (phone in E.164)."""
    return state_key(flow_id, phone[-SUFFIX:]), phone[1:-SUFFIX]


def phone_of(suffix: str, field: bytes | str) -> str:
    """Rebuild the number from its hash's suffix and its field."""
    return f"+{field.decode() if isinstance(field, bytes) else field}{suffix}"


def suffixes(digits: int = SUFFIX) -> Iterator[str]:
    """Every hash suffix, in order (of the earlier layout, with EARLIER_SUFFIX)."""
    return (f"{n:0{digits}d}" for n in range(10 ** digits))


def encode(state: str, asked_at: float, touched: float, region: str = "") -> str:
    """Write a state record; times in seconds (asked at is kept whole, touched to the millisecond)."""
    return f"{CODES[state]}{base36(int(asked_at))}.{base36(round(touched * 1000))}{region}"


def decode(value: bytes | str) -> tuple[str, int, float]:
    """Return (state, asked at, touched) in seconds from a stored value; StateRecordError if malformed."""
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    found = VALUE.match(text)
    if not found or found[1] not in NAMES:
        raise StateRecordError(f"not a state record: {text!r}")
    return NAMES[found[1]], int(found[2], 36), int(found[3], 36) / 1000


def region(value: bytes | str) -> str:
    """Return the calendar region kept in a stored value ('' for the national calendar)."""
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    found = VALUE.match(text)
    if not found or found[1] not in NAMES:
        raise StateRecordError(f"not a state record: {text!r}")
    return found[4]


def lua_codes() -> str:
    """The state letters as Lua tables both ways, prefixed to bot/lua/state.lua (one list for both sides)."""
    return (f"local SUFFIX = {SUFFIX}\n"
            "local CODES = {" + ", ".join(f"{name} = '{code}'" for name, code in CODES.items()) + "}\n"
            "local NAMES = {" + ", ".join(f"{code} = '{name}'" for name, code in CODES.items()) + "}\n")


def base36(number: int) -> str:
    """Write a whole number of seconds or milliseconds as state records keep it."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out
