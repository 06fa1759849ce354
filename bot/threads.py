"""A voter's thread with one flow's sender as their phone shows it, and what a shut window holds back.

The dev phone and `python -m bot outbox` show the same thread; `reply` and the dev phone name the
same texts held back, so a newcomer testing at night learns why the bot stays quiet and until when.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from bot import machine
from bot.flows import Flow
from bot.ledger import entry_order
from bot.machine import REPLY_TRIGGERS
from bot.replies import classify
from bot.store import Store
from bot.windows import Window

# Where a round's consent request still waits for its claim (a voter who texted first heard only HELP).
NOT_ASKED_YET = ("new", "contacted")


@dataclass(frozen=True)
class Held:
    """The window shut for one voter of one flow, and the texts waiting for it to open."""

    window: Window
    texts: tuple[str, ...]


def thread(store: Store, flow: Flow, phone: str) -> list[dict[str, str]]:
    """Join what the outbox sent this number from the flow's sender with the flow's ledger of its texts."""
    items: list[tuple[tuple[int, int, int], dict[str, str]]] = []
    for entry_id, message in store.outbox_thread(phone):
        if message["from"] == flow.sender:
            items.append(((*entry_order(entry_id), 0), _message("bot", message["body"], message["at"], "sent", flow)))
    for entry in store.person(phone).get(flow.id, []):
        if not entry.get("event", "").startswith("in:"):
            continue
        order = entry_order(entry["entry"])
        items.append(((*order, 1), _message("voter", entry.get("text", ""), entry.get("at", ""), "texted", flow)))
        for n, text in enumerate(json.loads(entry["reply"]) if entry.get("reply") else ()):
            items.append(((*order, 2 + n), _message("bot", text, entry.get("at", ""), "answered", flow)))
    return [message for _, message in sorted(items, key=lambda item: item[0])]


def _message(who: str, body: str, at: str, how: str, flow: Flow) -> dict[str, str]:
    moment = dt.datetime.fromtimestamp(float(at or 0), flow.timezone)
    return {"from": who, "body": body, "time": f"{moment:%d/%m %H:%M}", "how": how}


def shut_window(store: Store, flow: Flow, phone: str) -> Window | None:
    """Return the flow's window for this voter's calendar region if it is shut now, else None."""
    window = flow.window(store.clock(), store.region(flow, phone))
    return None if window.open else window


def waiting(store: Store, flow: Flow, phone: str) -> Held | None:
    """Return the shut window and the consent request a round queued for this number, if any; None when open."""
    window = shut_window(store, flow, phone)
    if window is None:
        return None
    queued = store.state(flow, phone) in NOT_ASKED_YET and store.is_queued(flow, phone)
    return Held(window, (flow.texts.consent_request,) if queued else ())


def answered(store: Store, flow: Flow, phone: str, before: str, body: str) -> Held | None:
    """Return the shut window and the texts the answer to `body`, sent in state `before`, held back
    (and the consent request a round queued, still waiting); None when the window is open."""
    found = waiting(store, flow, phone)
    if found is None:
        return None
    return Held(found.window, tuple(dict.fromkeys((*held_back(flow, before, body), *found.texts))))


def held_back(flow: Flow, state: str, body: str) -> tuple[str, ...]:
    """Return the flow's texts that answering `body` in `state` says with the window open, not shut."""
    if state not in machine.STATES:  # "unreadable": the store refuses all but an objection
        return ()
    trigger = REPLY_TRIGGERS[classify(body, flow.language)]
    said = machine.step(state, trigger, window_open=False).says
    return tuple(flow.texts.say(key) for key in machine.step(state, trigger).says if key not in said)
