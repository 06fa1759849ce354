"""An answer's campaign texts held to the voter's window when they go, not only when they were chosen.

The step chooses what a voter's text is answered with inside the voter's window, with a minute of it
left (bot/conversation.py shut_regions). An answer can go later than that: an OVHcloud callback
called again hours on, for an answer the provider was too busy to take then; a slow send before
it; Twilio asking again for a TwiML answer it never got. Then a consent request or a content
message goes only with MIN_VALIDITY of the voter's window left, and for that long; a service text
(help, a confirmation, the voter's link) goes whatever the hour.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.flows import MIN_VALIDITY, Flow
from bot.store import Store
from bot.windows import REGIONS


def campaign(flow: Flow, text: str) -> bool:
    """Say whether a text of the flow is a campaign text: its consent request or a content message."""
    return text == flow.texts.consent_request or text in flow.texts.content


def time_left(store: Store, flow: Flow, phone: str, text: str) -> int | None:
    """Return how long a provider may hold `text` for the voter: until their window shuts (0 if shut, or
    if their calendar is one this version does not know); None for a service text."""
    if not campaign(flow, text):
        return None
    region = store.region(flow, phone)
    return flow.validity(store.clock(), region) if region in REGIONS else 0


def fits(seconds: int | None) -> bool:
    """Say whether a text with `seconds` left (time_left) may go now."""
    return seconds is None or seconds >= MIN_VALIDITY


def still_fitting(store: Store, flow: Flow, phone: str, texts: Iterable[str]) -> tuple[str, ...]:
    """Return those of `texts` that may go now: service texts, and campaign texts the window still fits."""
    return tuple(text for text in texts if fits(time_left(store, flow, phone, text)))
