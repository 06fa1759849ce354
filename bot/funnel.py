"""A flow's history from its move counters: how often numbers ever consented, withdrew, objected.

The funnel's current states say where numbers are now: two voters who said YES then STOP count
in "opted out" and nowhere in "consented". The step script also counts every move, one field
per move (bot/lua/step.lua count()): "i:from>to" for a text's, "m:from>to" for any other
(a claim, an objection made elsewhere, expiry, an erasure, to "-"). Summing them by destination
gives what happened, not where things stand.

What it counts is moves, not distinct numbers: a voter who says YES, then NO, then YES again
counts two consents and one withdrawal. Telling numbers apart would need a set per flow holding
every number's key; the counters hold none, and that is the point of them. A record found
unreadable moved from "?" and counts like any other. Pure: it reads the counters it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

CONSENTED, OPTED_OUT = "consented", "opted_out"
GONE = "-"  # erased or purged: no state any more (bot/lua/erase.lua)


@dataclass(frozen=True)
class History:
    """Moves counted in a flow since its counters began."""

    consented: int  # moves into consented: each YES that gave consent
    withdrew: int  # moves out of consented into another state: a NO or a STOP after a YES (not an erasure)
    objected: int  # moves into opted out: each STOP, from whatever state, the voter's or the carrier's
    erased: int  # numbers erased or purged (moves to "-"), from any state


def history(counters: Mapping[bytes | str, bytes | str | int]) -> History:
    """Add up a flow's move counters (its funnel hash, as HGETALL returns it) by where the moves led."""
    consented = withdrew = objected = erased = 0
    for raw_name, raw_value in counters.items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
        kind, _, move = name.partition(":")
        if kind not in ("i", "m") or ">" not in move:
            continue  # per-state counts of other kinds, answers per hour, open questions per hour
        source, _, dest = move.partition(">")
        value = int(raw_value)
        if dest == CONSENTED and source != CONSENTED:
            consented += value
        if source == CONSENTED and dest not in (CONSENTED, GONE):
            withdrew += value
        if dest == OPTED_OUT and source != OPTED_OUT:
            objected += value
        if dest == GONE:
            erased += value
    return History(consented, withdrew, objected, erased)
