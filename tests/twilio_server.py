"""A local HTTP server that answers like Twilio's Messages REST API, for tests and benchmarks."""

from __future__ import annotations

import base64
import json
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

API_VERSION = "2010-04-01"
MAX_PAGE_SIZE = 1000  # Twilio never answers more than 1,000 records a page.

# Short messages in the words Twilio uses for these codes.
ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    21211: "Invalid 'To' Phone Number",
    21602: "Message body is required.",
    21603: "A 'From' or 'MessagingServiceSid' parameter is required to send a message.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21611: "This 'From' number has exceeded the maximum number of queued messages",
    21612: "The 'To' phone number is not currently reachable via SMS",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit",
    30001: "Queue overflow",
}

# GSM 03.38: the basic set costs one septet a character, the extension set two (escape + char).
GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("\f^{}\\[~]|€")


def num_segments(body: str) -> int:
    """Count the SMS parts Twilio bills for `body` (GSM-7 160/153, else UCS-2 70/67)."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in body):
        units, single, part = sum(2 if c in GSM7_EXTENSION else 1 for c in body), 160, 153
    else:
        units, single, part = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else math.ceil(units / part)


class _Listener(ThreadingHTTPServer):
    """socketserver listens with a backlog of 5: a worker's sending threads connecting at once would
    overflow it, and a connection dropped there waits a second to try again."""

    request_queue_size = 1024


def new_sid(prefix: str) -> str:
    """Return a fresh Twilio-shaped sid such as SM + 32 hex digits."""
    return prefix + secrets.token_hex(16)


def rfc2822(moment: datetime) -> str:
    """Format `moment` the way Twilio writes dates: 'Fri, 24 May 2019 17:44:46 +0000'."""
    return format_datetime(moment.astimezone(UTC))


def parse_date_filter(value: str) -> datetime:
    """Read a DateSent filter value: 'YYYY-MM-DD' or 'YYYY-MM-DDTHH:MM:SSZ', as UTC."""
    if len(value) == 10:
        return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class TwilioServer:
    """Serve Twilio's Messages endpoints on 127.0.0.1, recording what arrives and failing on cue."""

    handler: type[BaseHTTPRequestHandler] | None = None  # a subclass of _Handler, for a server that serves otherwise

    def __init__(self, account_sid: str | None = None, auth_token: str | None = None) -> None:
        self.account_sid = account_sid or new_sid("AC")
        self.auth_token = auth_token or secrets.token_hex(16)
        self.messages: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self._store: list[dict[str, Any]] = []  # listable resources, outbound and inbound
        self._lock = threading.Lock()
        self._fail_next: list[tuple[int, int, str | None]] = []
        self._fail_to: dict[str, tuple[int, int, str | None]] = {}
        self._held: set[str] = set()  # numbers whose texts stay in the queue: no date_sent
        self.clock: Callable[[], float] = time.time  # when a text is taken; a test may give its own
        self._delay = 0.0
        self._answering = threading.Event()  # cleared: requests are taken and recorded, answered once set
        self._answering.set()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """Return the URL to give a Twilio client as its api base."""
        if self._httpd is None:
            raise RuntimeError("TwilioServer is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def messages_path(self) -> str:
        """Return the Messages.json path for this server's account."""
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"

    def start(self) -> Self:
        """Listen on a free loopback port in a daemon thread."""
        httpd = _Listener(("127.0.0.1", 0), self.handler or _Handler)
        httpd.daemon_threads = True
        # Keep-alive handler threads wait on idle sockets: do not join them on close.
        httpd.block_on_close = False
        httpd.twilio = self  # type: ignore[attr-defined]
        self._httpd = httpd
        # A short poll keeps stop() quick; the default half second adds up across test modules.
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="twilio-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and release the port."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget recorded messages, requests, scripted faults and delay."""
        with self._lock:
            self.messages.clear()
            self.requests.clear()
            self._store.clear()
            self._fail_next.clear()
            self._fail_to.clear()
            self._held.clear()
            self._delay = 0.0
            self.clock = time.time
        self._answering.set()

    def fail_next(self, n: int = 1, status: int = 429, code: int = 20429, message: str | None = None) -> None:
        """Answer the next `n` POSTs with this Twilio error instead of sending."""
        with self._lock:
            self._fail_next.extend([(status, code, message)] * n)

    def fail_to(self, phone: str, status: int = 400, code: int = 21610, message: str | None = None) -> None:
        """Answer every POST to `phone` with this Twilio error (21610, 21614, 21211 ...)."""
        with self._lock:
            self._fail_to[phone] = (status, code, message)

    def hold(self, phone: str) -> None:
        """Keep the texts taken for `phone` queued, never sent: listed with no date_sent, as Twilio lists
        what waits in a sender's queue."""
        with self._lock:
            self._held.add(phone)

    def delay(self, seconds: float) -> None:
        """Wait `seconds` before every answer; a POST's message is recorded before the wait."""
        with self._lock:
            self._delay = seconds

    @contextmanager
    def stalled(self) -> Iterator[None]:
        """Take and record every request, but answer none until the block ends: what is in flight stays so."""
        self._answering.clear()
        try:
            yield
        finally:
            self._answering.set()

    def add_inbound(
        self, from_: str, to: str, body: str, date_sent: datetime | None = None
    ) -> dict[str, Any]:
        """Store a received text, as Twilio would have logged it, and return its resource."""
        moment = (date_sent or datetime.now(UTC)).replace(microsecond=0)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        resource = self._resource(
            to=to, from_=from_, body=body, service=None, status="received", direction="inbound",
            created=moment,
        )
        resource["date_sent"] = rfc2822(moment)
        with self._lock:
            self._store.append(resource)
        return resource

    def _resource(
        self, *, to: str, from_: str | None, body: str, service: str | None, status: str, direction: str,
        created: datetime,
    ) -> dict[str, Any]:
        sid = new_sid("SM")
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": rfc2822(created),
            "date_sent": None,
            "date_updated": rfc2822(created),
            "direction": direction,
            "error_code": None,
            "error_message": None,
            "from": from_,
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": str(num_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": status,
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "to": to,
            "uri": f"{uri}.json",
        }

    def _create(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Decide a POST's answer the way Twilio checks it: throttle, parameters, recipient."""
        with self._lock:
            if self._fail_next:
                return _error(*self._fail_next.pop(0))
        to, body = form.get("To", ""), form.get("Body", "")
        from_, service = form.get("From") or None, form.get("MessagingServiceSid") or None
        if not to:
            return _error(400, 21604)
        if not from_ and not service:
            return _error(400, 21603)
        if not body:
            return _error(400, 21602)
        if len(body) > 1600:
            return _error(400, 21617)
        with self._lock:
            fault = self._fail_to.get(to)
        if fault:
            return _error(*fault)
        # A Messaging Service picks the sender after accepting: no 'from' yet, status 'accepted'.
        status = "queued" if from_ else "accepted"
        resource = self._resource(
            to=to, from_=from_, body=body, service=service, status=status, direction="outbound-api",
            created=datetime.fromtimestamp(self.clock(), UTC).replace(microsecond=0),
        )
        with self._lock:
            # The answer says queued; the list shows it sent at once, dated then (DateSent filters find
            # it), unless held in the queue.
            held = to in self._held
            self._store.append(resource if held else {**resource, "status": "sent",
                                                      "date_sent": resource["date_created"]})
            self.messages.append({**resource, "params": dict(form)})
        return 201, resource

    def _list(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Answer a Messages list page, newest first, with Twilio's paging fields."""
        filters = {k: query[k] for k in ("To", "From", "DateSent>", "DateSent<", "DateSent") if query.get(k)}
        try:
            page_size = min(max(int(query.get("PageSize", 50)), 1), MAX_PAGE_SIZE)
            page = max(int(query.get("Page", 0)), 0)
            bounds = {k: parse_date_filter(v) for k, v in filters.items() if k.startswith("DateSent")}
        except ValueError:
            return _error(400, 20001, "Invalid parameter")
        with self._lock:
            rows = [r for r in self._store if _matches(r, filters, bounds)]
        rows.sort(key=_newest_first)
        start = page * page_size
        token = query.get("PageToken", "")
        if token.startswith("PA"):
            # Twilio's token names the last record already seen, so paging survives new arrivals.
            after = [i for i, r in enumerate(rows) if r["sid"] == token[2:]]
            start = after[0] + 1 if after else start
        chunk = rows[start:start + page_size]

        def page_uri(**extra: object) -> str:
            return f"{self.messages_path}?{urlencode({**filters, 'PageSize': page_size, **extra})}"

        more = start + page_size < len(rows)
        return 200, {
            "messages": chunk,
            "end": start + max(len(chunk) - 1, 0),
            "first_page_uri": page_uri(Page=0),
            "next_page_uri": page_uri(Page=page + 1, PageToken="PA" + chunk[-1]["sid"]) if more else None,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": page_uri(Page=page - 1) if page > 0 else None,
            "start": start,
            "uri": page_uri(Page=page, **({"PageToken": token} if token else {})),
        }

    def _authorized(self, header: str | None) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return secrets.compare_digest(header or "", f"Basic {expected}")


def _error(status: int, code: int, message: str | None = None) -> tuple[int, dict[str, Any]]:
    """Build Twilio's error body for `code`."""
    return status, {
        "code": code,
        "message": message or ERROR_MESSAGES.get(code, "Error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _sent_at(resource: dict[str, Any]) -> datetime | None:
    value = resource["date_sent"]
    return datetime.strptime(value, "%a, %d %b %Y %H:%M:%S %z") if value else None


def _matches(resource: dict[str, Any], filters: dict[str, str], bounds: dict[str, datetime]) -> bool:
    """Apply To/From/DateSent filters; Twilio's 'DateSent>' means on or after."""
    if "To" in filters and resource["to"] != filters["To"]:
        return False
    if "From" in filters and resource["from"] != filters["From"]:
        return False
    if not bounds:
        return True
    sent = _sent_at(resource)
    if sent is None:  # queued messages have no date_sent and never match a date filter
        return False
    if "DateSent>" in bounds and sent < bounds["DateSent>"]:
        return False
    if "DateSent<" in bounds and sent > bounds["DateSent<"]:
        return False
    return "DateSent" not in bounds or sent.date() == bounds["DateSent"].date()


def _newest_first(resource: dict[str, Any]) -> tuple[float, str]:
    moment = _sent_at(resource) or datetime.strptime(resource["date_created"], "%a, %d %b %Y %H:%M:%S %z")
    return -moment.timestamp(), resource["sid"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the twilio client's requests session expects
    disable_nagle_algorithm = True  # headers and body go in two writes: don't wait for the client's ACK
    server_version = "twilio-fake"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        twilio: TwilioServer = self.server.twilio  # type: ignore[attr-defined]
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        record: dict[str, Any] = {
            "method": method, "path": url.path, "query": query, "form": form, "status": None,
        }
        with twilio._lock:
            twilio.requests.append(record)
            delay = twilio._delay

        if not url.path.startswith(f"/{API_VERSION}/Accounts/"):
            status, payload = _error(404, 20404, f"The requested resource {url.path} was not found")
        elif not twilio._authorized(self.headers.get("Authorization")) or not url.path.startswith(
            f"/{API_VERSION}/Accounts/{twilio.account_sid}/"
        ):
            # Twilio answers 20003 for a wrong token and for another account's SID in the path alike.
            status, payload = _error(401, 20003)
        elif url.path == twilio.messages_path and method == "POST":
            status, payload = twilio._create(form)
        elif url.path == twilio.messages_path and method == "GET":
            status, payload = twilio._list(query)
        else:
            status, payload = _error(404, 20404, f"The requested resource {url.path} was not found")
        record["status"] = status

        if delay:
            time.sleep(delay)
        twilio._answering.wait()
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Twilio-Request-Id", new_sid("RQ"))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="Twilio API"')
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (its timeout is shorter than our delay): nothing to answer.
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: tests read .requests instead of stderr."""

