"""The local gateway: keeps what would have been sent, so the bot runs without a provider."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from bot.store import Store


class OutboxGateway:
    """Store every message in Redis instead of sending it; `python -m bot outbox` reads them."""

    name = "outbox"  # what a flow's `gateway` names it

    def __init__(self, store: Store) -> None:
        self.store = store

    def send(self, to: str, body: str, *, sender: str, validity_period: int | None = None,
             status_callback: str | None = None) -> str:
        """Keep the message and return a Twilio-shaped sid for it."""
        sid = "SM" + secrets.token_hex(16)
        self.store.outbox_add(sender, to, body, sid)
        return sid

    def sent_to(self, to: str, sender: str, since: datetime) -> list[tuple[str, datetime, str]]:
        """Return (sid, when kept, body) of each message kept for `to` from `sender` since `since`, oldest first."""
        kept = [(message["sid"], datetime.fromtimestamp(float(message["at"]), UTC), message["body"])
                for message in self.store.outbox(to) if message["from"] == sender]
        return [message for message in kept if message[1] >= since]
