"""The providers Accord sends through, each behind the same protocol.

A gateway sends one text and says which texts it took for a number (bot/witness.py). Whatever a
provider answers is translated into a SendError with Twilio's codes, the vocabulary the sending
code, the witness and reconcile share: each provider maps its own answers onto them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

OPTED_OUT = 21610  # the recipient objected to the provider itself (Twilio's "unsubscribed recipient")
_OPTED_OUT = frozenset({OPTED_OUT})
_UNDELIVERABLE = frozenset({21614, 21211})
_RETRYABLE = frozenset({20429, 21611, 30001})


class SendError(Exception):
    """A send the provider refused; `code` is the provider's error code."""

    def __init__(self, code: int | None, status: int | None, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.code = code
        self.status = status
        self.message = message

    @property
    def opted_out(self) -> bool:
        """Tell whether the recipient replied STOP to the provider itself."""
        return self.code in _OPTED_OUT

    @property
    def undeliverable(self) -> bool:
        """Tell whether the number cannot take texts (landline, invalid): never retry it."""
        return self.code in _UNDELIVERABLE

    @property
    def unprocessed(self) -> bool:
        """Tell whether the provider certainly did not send it (throttled, queue full): safe to retry."""
        return self.status == 429 or self.code in _RETRYABLE

    @property
    def retryable(self) -> bool:
        """Tell whether the same send may succeed later (throttled, provider down, no answer)."""
        if self.code in _RETRYABLE or self.status is None:
            return True
        return self.status == 429 or self.status >= 500


class Gateway(Protocol):
    """Anything that sends one text and returns the provider's message sid, and says which texts it took."""

    name: str  # "twilio", "ovh", "outbox": what a flow's `gateway` names it

    def send(
        self, to: str, body: str, *, sender: str, validity_period: int | None = None,
        status_callback: str | None = None,
    ) -> str: ...

    def sent_to(self, to: str, sender: str, since: datetime) -> list[tuple[str, datetime, str]]:
        """Return (sid, when taken, body) of each text the provider took for `to` from `sender` since
        `since`, sent or still queued, oldest first; SendError if it cannot say (bot/witness.py)."""
        ...
