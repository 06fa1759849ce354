"""Twilio: send texts through its REST API with the official client, and read back what it took."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.rest import Client

from bot.config import SEND_CONCURRENCY
from bot.gateways import SendError
from bot.gateways.twilio_http import PooledHttpClient, TransportError

_MAX_PAGE_SIZE = 1000  # Twilio's ceiling for PageSize


class TwilioGateway:
    """Send through Twilio's REST API with the official client."""

    name = "twilio"  # what a flow's `gateway` names it

    def __init__(
        self, account_sid: str, auth_token: str, *, api_url: str = "https://api.twilio.com",
        timeout: float = 10.0, concurrency: int = SEND_CONCURRENCY,
    ) -> None:
        # One pool of connections as large as the sends in flight, shared by the sending threads.
        http = PooledHttpClient(timeout=timeout, maxsize=concurrency)
        self.client = Client(account_sid, auth_token, http_client=http)
        # Every api.twilio.com URL (create, list, and each next_page_uri list follows) is built from this.
        self.client.api.base_url = api_url
        # The client also reads TWILIO_EDGE/TWILIO_REGION from the environment and rewrites the host
        # with them, which would mangle api_url; settings come from Config alone.
        self.client.edge = self.client.region = None

    def send(
        self, to: str, body: str, *, sender: str, validity_period: int | None = None,
        status_callback: str | None = None,
    ) -> str:
        """Send one text from `sender` (number, short code or MG... Messaging Service); return its sid."""
        service = sender.startswith("MG")
        try:
            # The client drops None values from the form, so unset options are simply not sent.
            message = self.client.messages.create(
                to=to,
                body=body,
                from_=None if service else sender,
                messaging_service_sid=sender if service else None,
                validity_period=validity_period,
                status_callback=status_callback,
            )
        except (TwilioException, TransportError) as exc:
            raise _send_error(exc) from exc
        return str(message.sid)

    def inbound_since(
        self, to: str, since: datetime, limit: int = 10000, *, page_size: int = _MAX_PAGE_SIZE
    ) -> list[dict[str, Any]]:
        """Return texts received on `to` since `since`, oldest first, at most the `limit` newest."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        try:
            # The client writes the wall time followed by "Z" without converting, so hand it UTC; and it asks
            # for PageSize=limit unless told, beyond what Twilio serves in one page.
            messages = self.client.messages.list(
                to=to, date_sent_after=since.astimezone(UTC), limit=limit, page_size=min(limit, page_size)
            )
        except (TwilioException, TransportError) as exc:
            raise _send_error(exc) from exc
        received = [
            {"sid": m.sid, "from": m.from_, "to": m.to, "body": m.body, "date_sent": m.date_sent}
            for m in messages
            if m.direction == "inbound"
        ]
        return sorted(received, key=lambda m: (m["date_sent"], m["sid"]))

    def sent_to(self, to: str, sender: str, since: datetime, *, at_most: int = 100) -> list[tuple[str, datetime, str]]:
        """Return (sid, date created, body) of each text Twilio took for `to` from `sender` (number,
        short code or MG... Messaging Service) since `since`, oldest first.

        No DateSent filter: a text still in Twilio's queue has no date_sent yet, and it is the one
        that must not be missed (the witness would send it again). A number gets a few texts from
        a sender: its newest `at_most` are all it got since.
        """
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        service = sender.startswith("MG")
        try:
            # A Messaging Service picks the number each text goes from: its texts are found by their service.
            messages = self.client.messages.list(to=to, from_=None if service else sender, limit=at_most,
                                                 page_size=at_most)
        except (TwilioException, TransportError) as exc:
            raise _send_error(exc) from exc
        taken = [(str(m.sid), m.date_created, m.body or "") for m in messages
                 if (m.direction or "").startswith("outbound") and m.date_created is not None
                 and m.date_created >= since and (m.messaging_service_sid == sender if service else m.from_ == sender)]
        return sorted(taken, key=lambda m: (m[1], m[0]))


def _send_error(exc: Exception) -> SendError:
    """Translate whatever the client raised into a SendError."""
    if isinstance(exc, TwilioRestException):
        return SendError(exc.code, exc.status, exc.msg)
    if isinstance(exc, TwilioServiceException):
        return SendError(exc.code, exc.status, exc.detail or exc.title)
    if isinstance(exc, TwilioException) and len(exc.args) > 1 and hasattr(exc.args[1], "status_code"):
        # A list page that failed comes as a bare TwilioException carrying the HTTP response.
        response = exc.args[1]
        try:
            body = json.loads(response.text)
        except ValueError:
            body = {}
        return SendError(body.get("code"), response.status_code, body.get("message", str(exc.args[0])))
    return SendError(None, None, str(exc))  # no answer (TransportError): no status, so retryable
