"""OVHcloud SMS: send texts through its API with the official `ovh` client, and read back what it took.

A flow's sender says which of the account's senders a text goes from: a short code (OVHcloud
sends from its short code with `senderForResponse`, so that voters can answer; each text is
tagged with the flow's sender, by which the witness finds it) or an E.164 number (one of the
account's virtual numbers). OVHcloud's answers are translated into
SendError with the shared codes (bot/gateways/__init__.py).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import ovh
from requests.adapters import HTTPAdapter

from bot.config import SEND_CONCURRENCY, OvhSettings
from bot.gateways import OPTED_OUT, SendError
from bot.segments import is_gsm7

UNDELIVERABLE, BUSY = 21614, 30001  # the shared codes OVHcloud's answers map onto, with OPTED_OUT
MAX_VALIDITY_MINUTES = 2880  # OVHcloud's default validity; ours is never longer than the window anyway
SID_PREFIX = "OVH"  # OVHcloud's ids are numbers: prefixed, they never meet another provider's sid
# Words of OVHcloud's refusals for an account out of credits or over its quota: nothing was sent,
# and the same send succeeds once the account is topped up.
NO_CREDIT = ("credit", "quota")
BLACKLISTED = ("blacklist",)


def sid_of(ovh_id: int | str) -> str:
    """Return the sid Accord records for an OVHcloud message id."""
    return f"{SID_PREFIX}{ovh_id}"


def id_of(sid: str) -> str:
    """Return the OVHcloud message id of a sid Accord recorded ("" if it is not OVHcloud's)."""
    digits = sid.removeprefix(SID_PREFIX)
    return digits if sid.startswith(SID_PREFIX) and digits.isdigit() else ""


def e164(number: str) -> str:
    """Write a number OVHcloud gives ("+336...", "00336...") in E.164."""
    return "+" + number[2:] if number.startswith("00") else number


class OvhGateway:
    """Send through OVHcloud's SMS API with the official client."""

    name = "ovh"

    def __init__(self, settings: OvhSettings, *, timeout: float = 10.0, concurrency: int = SEND_CONCURRENCY,
                 status_callback: str | None = None) -> None:
        url = settings.endpoint.startswith(("http://", "https://"))
        self.client = ovh.Client(endpoint="ovh-eu" if url else settings.endpoint,
                                 application_key=settings.application_key,
                                 application_secret=settings.application_secret,
                                 consumer_key=settings.consumer_key, timeout=timeout)
        if url:
            # The client knows only OVHcloud's regions by name; every URL it signs is built from this.
            self.client._endpoint = settings.endpoint
        # One pool of connections as large as the sends in flight (see bot/gateways/twilio.py).
        adapter = HTTPAdapter(pool_maxsize=concurrency)
        self.client._session.mount("https://", adapter)
        self.client._session.mount("http://", adapter)
        self.service = settings.service
        self.status_callback = status_callback  # OVHcloud's receipts go here when the caller names none
        self._clock_lock = threading.Lock()

    def _base(self, sender: str) -> str:
        """Return the path of the resources of `sender`: a virtual number's own, or the account's."""
        if sender.startswith("+"):
            return f"/sms/{self.service}/virtualNumbers/{sender[1:]}"
        return f"/sms/{self.service}"

    def _call(self, method: str, path: str, shape: type = dict, **fields: Any) -> Any:
        """Call the API and return its answer, a `shape`; translate whatever the client raised into a
        SendError (so is an answer of another shape: what it did cannot be known)."""
        try:
            with self._clock_lock:  # the client asks /auth/time once: threads starting together, once
                self.client.time_delta  # noqa: B018
            answer = getattr(self.client, method)(path, **fields)
        except ovh.exceptions.APIError as error:
            raise send_error(error) from error
        if not isinstance(answer, shape):
            raise SendError(None, None, f"{method.upper()} {path}: unexpected answer {str(answer)[:80]!r}")
        return answer

    def send(self, to: str, body: str, *, sender: str, validity_period: int | None = None,
             status_callback: str | None = None) -> str:
        """Send one text from `sender` (short code or virtual number); return its sid."""
        job: dict[str, Any] = {
            "message": body, "receivers": [to],
            # Accord's texts carry STOP already, and the text sent is the text linted: OVHcloud must
            # add no clause of its own (nor hold the text as marketing, past the window we chose).
            "noStopClause": True,
            "charset": "UTF-8", "coding": "7bit" if is_gsm7(body) else "8bit",
            # The tag names the flow's sender: a short code's texts are found by it (sent_to).
            "class": "phoneDisplay", "priority": "high", "tag": sender,
            # None: no limit asked, OVHcloud's own. A limit counts in whole minutes, rounded down, so that
            # OVHcloud never holds a text past the voter's window (campaign texts go with a minute left,
            # bot/answering.py); however short, it stays a limit: never 48 hours.
            "validityPeriod": MAX_VALIDITY_MINUTES if validity_period is None
            else max(1, min(MAX_VALIDITY_MINUTES, validity_period // 60)),
        }
        if not sender.startswith("+"):
            job["senderForResponse"] = True  # the account's short code: voters can answer it
        callback = status_callback or self.status_callback
        if callback:
            job["callBack"] = callback
        report = self._call("post", f"{self._base(sender)}/jobs", **job)
        ids = report.get("ids") or []
        if to in (report.get("invalidReceivers") or []) or not ids:
            raise self._refused(to, sender)
        return sid_of(ids[0])

    def _refused(self, to: str, sender: str) -> SendError:
        """Say why OVHcloud took no text for `to`: on its STOP list (the voter objected), or undeliverable."""
        if self.blacklisted(to, sender):
            return SendError(OPTED_OUT, 400, "receiver is on OVHcloud's STOP list")
        return SendError(UNDELIVERABLE, 400, "invalid receiver (not a mobile, or not a number)")

    def blacklisted(self, to: str, sender: str = "") -> bool:
        """Say whether `to` is on the account's STOP list; False if OVHcloud cannot say."""
        try:
            self._call("get", f"/sms/{self.service}/blacklists/{to}")
        except SendError:
            return False
        return True

    def blacklist(self) -> list[tuple[str, datetime | None]]:
        """Return (number, when it objected) of each number on the account's STOP list."""
        numbers = self._call("get", f"/sms/{self.service}/blacklists", list)
        listed = []
        for number in numbers:
            entry = self._call("get", f"/sms/{self.service}/blacklists/{number}")
            listed.append((e164(str(entry.get("number") or number)), _moment(entry.get("dateCreation"))))
        return listed

    def sent_to(self, to: str, sender: str, since: datetime, *, at_most: int = 100) -> list[tuple[str, datetime, str]]:
        """Return (sid, date created, body) of each text OVHcloud took for `to` from `sender` since
        `since`, oldest first: its outgoing list (filtered by OVHcloud on receiver and date), waiting
        texts included."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        base = self._base(sender)
        ids = self._call("get", f"{base}/outgoing", list, receiver=to,
                         **{"creationDatetime.from": since.astimezone(UTC).isoformat()})
        taken = []
        for ovh_id in sorted(ids)[-at_most:]:
            text = self._call("get", f"{base}/outgoing/{ovh_id}")
            created = _moment(text.get("creationDatetime"))
            if (created is not None and e164(text.get("receiver") or "") == to
                    and (sender.startswith("+") or text.get("tag") == sender)):
                taken.append((sid_of(ovh_id), created, text.get("message") or ""))
        return sorted(taken, key=lambda text: (text[1], text[0]))

    def inbound_since(self, to: str, since: datetime, limit: int = 10000) -> list[dict[str, Any]]:
        """Return texts received on `to` (short code or virtual number) since `since`, oldest first,
        at most the `limit` newest."""
        if since.tzinfo is None:
            raise ValueError("since must be timezone-aware")
        base = self._base(to)
        ids = self._call("get", f"{base}/incoming", list,
                         **{"creationDatetime.from": since.astimezone(UTC).isoformat()})
        received = []
        for ovh_id in sorted(ids)[-limit:]:
            text = self._call("get", f"{base}/incoming/{ovh_id}")
            received.append({"sid": sid_of(ovh_id), "from": e164(text.get("sender") or ""), "to": to,
                             "body": text.get("message") or "", "date_sent": _moment(text.get("creationDatetime"))})
        return sorted(received, key=lambda m: (m["date_sent"] or datetime.min.replace(tzinfo=UTC), m["sid"]))


def _moment(text: str | None) -> datetime | None:
    """Read one of OVHcloud's dates ("2026-12-01T10:00:00+01:00"); None if absent or unreadable."""
    try:
        moment = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


def send_error(error: ovh.exceptions.APIError) -> SendError:
    """Translate what the `ovh` client raised into a SendError with the shared codes."""
    response = error.response
    status = response.status_code if response is not None else None  # no answer: it may have been sent
    message = (error.args[0] if error.args else "") or type(error).__name__
    words = str(message).lower()
    if isinstance(error, ovh.exceptions.HTTPError | ovh.exceptions.InvalidResponse) or status is None:
        return SendError(None, None, str(message))  # a timeout, or an answer no one could read
    # 429 needs no code of its own: a SendError with status 429 is unprocessed (bot/gateways/__init__.py).
    if status < 500 and any(word in words for word in NO_CREDIT):
        return SendError(BUSY, status, str(message))
    if status < 500 and any(word in words for word in BLACKLISTED):
        return SendError(OPTED_OUT, status, str(message))
    return SendError(None, status, str(message))
