"""A local HTTP server that answers like OVHcloud's SMS API, for tests: it checks the `ovh` client's
signature as the real API does, and calls delivery-receipt callbacks as OVHcloud would."""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

API = "/1.0"
SKEW = 180  # seconds a request's timestamp may be off the server's clock
# OVHcloud's receipt statuses (the `dlr` of a callBack): delivered, failed, pending at the operator,
# handed to the operator, failed at the operator.
DELIVERED, FAILED, BUFFERED, SUBMITTED, OPERATOR_FAILED = 1, 2, 4, 8, 16


class _Listener(ThreadingHTTPServer):
    request_queue_size = 1024  # see tests/twilio_server.py


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).replace(microsecond=0).isoformat()


class OvhServer:
    """Serve /auth/time and an SMS account's jobs, outgoing, incoming and blacklists on 127.0.0.1."""

    def __init__(self) -> None:
        self.service = "sms-ab12345-1"
        self.application_key = "appkey" + secrets.token_hex(4)
        self.application_secret = "secret" + secrets.token_hex(8)
        self.consumer_key = "consumer" + secrets.token_hex(8)
        self.jobs: list[dict[str, Any]] = []  # every job taken: its JSON body, its id, receiver, sender
        self.requests: list[dict[str, Any]] = []
        self.outgoing: dict[int, dict[str, Any]] = {}
        self.incoming: dict[int, dict[str, Any]] = {}
        self.blacklists: dict[str, str] = {}  # number -> when it texted STOP
        self.clock: Callable[[], float] = time.time
        self._ids = itertools.count(10_000_001)
        self._lock = threading.Lock()
        self._fail_next: list[tuple[int, str]] = []
        self._invalid: set[str] = set()
        self.errors: dict[str, list[tuple[int, str]]] = {}  # phone -> (status, message) for its next jobs
        self.garbled: dict[str, Any] = {}  # path ending -> a 200 answer of the wrong shape, after acting
        self._delay = 0.0
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        """Return the URL to give the client as its endpoint (OVH_ENDPOINT)."""
        assert self._httpd is not None, "OvhServer is not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{API}"

    def start(self) -> Self:
        httpd = _Listener(("127.0.0.1", 0), _Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False
        httpd.ovh = self  # type: ignore[attr-defined]
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget everything taken, received and scripted."""
        with self._lock:
            for kept in (self.jobs, self.requests, self._fail_next):
                kept.clear()
            for table in (self.outgoing, self.incoming, self.blacklists):
                table.clear()
            self._invalid.clear()
            self.errors.clear()
            self.garbled.clear()
            self._delay = 0.0
            self.clock = time.time

    # What a test scripts.
    def fail_next(self, n: int = 1, status: int = 429, message: str = "Too many requests") -> None:
        """Answer the next `n` job POSTs with this error instead of sending."""
        with self._lock:
            self._fail_next.extend([(status, message)] * n)

    def invalid(self, phone: str) -> None:
        """Refuse every job to `phone` as an invalid receiver (a landline, a wrong number)."""
        with self._lock:
            self._invalid.add(phone)

    def blacklist(self, phone: str) -> None:
        """Put `phone` on the account's STOP list, as a voter's STOP to the short code does."""
        with self._lock:
            self.blacklists[phone] = _iso(self.clock())

    def delay(self, seconds: float) -> None:
        """Wait `seconds` before every answer; a job is taken before the wait."""
        self._delay = seconds

    def add_inbound(self, sender: str, body: str, *, at: float | None = None, to: str = "") -> str:
        """Store a text a voter sent to the account (`to`: a virtual number, else the short code); return its id."""
        ovh_id = next(self._ids)
        with self._lock:
            self.incoming[ovh_id] = {"id": ovh_id, "creationDatetime": _iso(self.clock() if at is None else at),
                                     "sender": sender, "message": body, "tag": "", "credits": 0, "to": to}
        return str(ovh_id)

    def receipts(self, dlr: int = DELIVERED, description: str = "") -> list[str]:
        """Return the callBack URLs OVHcloud would call now for each job that asked for one, each
        with its GET parameters: id, receiver, dlr, description."""
        with self._lock:
            jobs = [job for job in self.jobs if job["body"].get("callBack")]
        return [job["body"]["callBack"] + "?" + urlencode({"id": job["id"], "receiver": job["receiver"],
                                                           "dlr": dlr, "description": description})
                for job in jobs]

    # How the API answers.
    def _post_job(self, base: str, body: dict[str, Any]) -> tuple[int, Any]:
        with self._lock:
            if self._fail_next:
                status, message = self._fail_next.pop(0)
                return status, {"message": message}
        receivers, message = body.get("receivers"), body.get("message")
        with self._lock:
            script = self.errors.get(receivers[0]) if isinstance(receivers, list) and len(receivers) == 1 else None
            fault = script.pop(0) if script else None
        if fault:
            return fault[0], {"message": fault[1]}
        if not isinstance(receivers, list) or not receivers or not isinstance(message, str) or not message:
            return 400, {"message": "Invalid parameters: message and receivers are required"}
        if not isinstance(body.get("noStopClause", False), bool):
            return 400, {"message": "Invalid parameter noStopClause"}
        sender = base.rpartition("/virtualNumbers/")[2] if "/virtualNumbers/" in base else "short code"
        ids, valid, invalid = [], [], []
        with self._lock:
            for receiver in receivers:
                # Numbers on the STOP list are refused like invalid ones: nothing is sent to them.
                if receiver in self._invalid or receiver in self.blacklists:
                    invalid.append(receiver)
                    continue
                ovh_id = next(self._ids)
                ids.append(ovh_id)
                valid.append(receiver)
                text = {"id": ovh_id, "creationDatetime": _iso(self.clock()), "receiver": receiver,
                        "sender": sender, "message": message, "deliveryReceipt": 0, "ptt": 0, "tag": body.get("tag")}
                self.outgoing[ovh_id] = {**text, "base": base}
                self.jobs.append({"id": ovh_id, "receiver": receiver, "sender": sender, "body": body})
        return 200, {"ids": ids, "validReceivers": valid, "invalidReceivers": invalid,
                     "totalCreditsRemoved": len(ids), "tag": body.get("tag")}

    def _list(self, table: dict[int, dict[str, Any]], base: str, query: dict[str, str]) -> tuple[int, Any]:
        since = query.get("creationDatetime.from")
        try:
            bound = datetime.fromisoformat(since) if since else None
        except ValueError:
            return 400, {"message": "Invalid creationDatetime.from"}
        with self._lock:
            rows = list(table.values())
        virtual = base.rpartition("/virtualNumbers/")[2] if "/virtualNumbers/" in base else ""
        found = [row["id"] for row in rows
                 if (bound is None or datetime.fromisoformat(row["creationDatetime"]) >= bound)
                 and ("receiver" not in query or row.get("receiver") == query["receiver"])
                 and (row.get("base", base) == base if "base" in row else row.get("to", "") == virtual)]
        return 200, found

    def _one(self, table: dict[int, dict[str, Any]], key: str) -> tuple[int, Any]:
        with self._lock:
            row = table.get(int(key)) if key.isdigit() else None
        if row is None:
            return 404, {"message": f"The requested object (id = {key}) does not exist"}
        return 200, {k: v for k, v in row.items() if k not in ("base", "to")}

    def _authorized(self, method: str, url: str, body: str, headers: Any) -> tuple[int, Any] | None:
        """Check the headers the client signs with, as the API does; None when they hold."""
        if headers.get("X-Ovh-Application") != self.application_key:
            return 403, {"errorCode": "INVALID_KEY", "message": "Invalid application key"}
        if headers.get("X-Ovh-Consumer") != self.consumer_key:
            return 403, {"errorCode": "INVALID_CREDENTIAL", "message": "This credential does not exist"}
        stamp = headers.get("X-Ovh-Timestamp", "")
        if not stamp.isdigit() or abs(int(stamp) - int(time.time())) > SKEW:
            return 400, {"errorCode": "QUERY_TIME_OUT", "message": "Query out of time"}
        expected = "$1$" + hashlib.sha1("+".join([self.application_secret, self.consumer_key, method, url, body,
                                                  stamp]).encode()).hexdigest()
        if not secrets.compare_digest(headers.get("X-Ovh-Signature", ""), expected):
            return 400, {"errorCode": "INVALID_SIGNATURE", "message": "Invalid signature"}
        return None

    def _route(self, method: str, path: str, query: dict[str, str], body: str) -> tuple[int, Any]:
        account = f"{API}/sms/{self.service}"
        if not path.startswith(account):
            return 404, {"message": f"The requested object ({path}) does not exist"}
        rest = path[len(account):]
        base = account
        if rest.startswith("/virtualNumbers/"):
            number, _, tail = rest[len("/virtualNumbers/"):].partition("/")
            base, rest = f"{account}/virtualNumbers/{number}", "/" + tail
        parts = rest.strip("/").split("/")
        if method == "POST" and parts == ["jobs"]:
            try:
                data = json.loads(body or "null")
            except ValueError:
                return 400, {"message": "Invalid JSON"}
            return self._post_job(base, data if isinstance(data, dict) else {})
        if method == "GET" and parts[0] in ("outgoing", "incoming"):
            table = self.outgoing if parts[0] == "outgoing" else self.incoming
            return self._list(table, base, query) if len(parts) == 1 else self._one(table, parts[1])
        if method == "GET" and parts[0] == "blacklists" and base == account:
            with self._lock:
                if len(parts) == 1:
                    return 200, sorted(self.blacklists)
                when = self.blacklists.get(parts[1])
            if when is None:
                return 404, {"message": f"The requested object (number = {parts[1]}) does not exist"}
            return 200, {"number": parts[1], "dateCreation": when}
        return 404, {"message": f"The requested object ({path}) does not exist"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "ovh-fake"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        server: OvhServer = self.server.ovh  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        with server._lock:
            server.requests.append({"method": method, "path": url.path, "query": query, "body": body})
        host, port = self.server.server_address[:2]
        if url.path == f"{API}/auth/time" and method == "GET":
            status, payload = 200, int(time.time())
        else:
            refused = server._authorized(method, f"http://{host}:{port}{self.path}", body, self.headers)
            status, payload = refused or server._route(method, url.path, query, body)
            garbled = next((v for k, v in server.garbled.items() if url.path.endswith(k)), None)
            if status == 200 and garbled is not None:
                payload = garbled
        if server._delay:
            time.sleep(server._delay)
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Ovh-QueryID", "EU.fake-" + secrets.token_hex(6))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: tests read .requests instead of stderr."""
