"""Post what Twilio posts: status callbacks and inbound texts, signed, from several processes.

Each form is signed with X-Twilio-Signature as Twilio signs it, then either POSTed over HTTP/1.1 to
the served app ("http"), or handed to an app built in the posting process through its WSGI
interface ("app": the signature check and the view alike, without gunicorn and the sockets).
"""

from __future__ import annotations

import io
import multiprocessing
import os
import queue
import secrets
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from bench import apps
from bench.rig import TOKEN

NOT_SENT = "not sent: --timeout reached"  # the outcome of the forms left when the deadline passed


class NoAnswer(RuntimeError):
    """A posting process did not report its outcomes before the deadline."""


def inbound(account: str, sender: str, phone: str) -> dict[str, str]:
    """Return an inbound text as Twilio posts it: a voter answering OUI."""
    sid = "SM" + secrets.token_hex(16)
    return {"ToCountry": "FR", "SmsMessageSid": sid, "NumMedia": "0", "SmsSid": sid, "SmsStatus": "received",
            "Body": "Oui", "FromCountry": "FR", "To": sender, "NumSegments": "1", "MessageSid": sid,
            "AccountSid": account, "From": phone, "ApiVersion": "2010-04-01"}


def status(account: str, sender: str, sid: str, to: str, status: str) -> dict[str, str]:
    """Return a status callback as Twilio posts it."""
    return {"SmsSid": sid, "SmsStatus": status, "MessageStatus": status, "To": to, "MessageSid": sid,
            "AccountSid": account, "From": sender, "ApiVersion": "2010-04-01"}


def post(transport: str, port: int, path: str, forms: list[dict[str, str]], judge: Callable[[int, str], str],
         deadline: float, processes: int) -> Counter[str]:
    """POST the forms, signed, from `processes` processes; count what `judge` made of each answer."""
    context = multiprocessing.get_context("fork")  # the forms go to the children unpickled
    results = context.Queue()
    # A process per core and one more (for its waits on Redis) keeps the in-process app busy.
    share = processes
    if transport == "app":
        share = min(share, len(os.sched_getaffinity(0)) + 1)
    children = [context.Process(target=_poster, daemon=True,
                                args=(transport, port, path, forms[n::share], judge, deadline, results))
                for n in range(share)]
    for child in children:
        child.start()
    outcomes: Counter[str] = Counter()
    try:
        for _ in children:
            outcomes.update(results.get(timeout=max(1.0, deadline - time.monotonic() + 10)))
    except queue.Empty:
        raise NoAnswer(f"POST {path}: no answer from the posting processes") from None
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
            child.join()
    return outcomes


def _poster(transport: str, port: int, path: str, forms: Sequence[dict[str, str]], judge: Callable[[int, str], str],
            deadline: float, results: Any) -> None:
    """POST forms one after another, signed with X-Twilio-Signature; put the outcomes on `results`."""
    url = f"http://127.0.0.1:{port}{path}"  # what the app rebuilds from the Host header, and checks
    validator = RequestValidator(TOKEN)
    exchange = _Connection(port) if transport == "http" else _InProcess(apps.accord(), port)
    outcomes: Counter[str] = Counter()
    for done, form in enumerate(forms):
        if time.monotonic() > deadline:
            outcomes[NOT_SENT] += len(forms) - done
            break
        try:
            code, answer = exchange.post(path, urlencode(form).encode(), validator.compute_signature(url, form))
        except OSError as error:  # counted; the next form opens a new connection
            outcomes[f"connection error: {type(error).__name__}"] += 1
        else:
            outcomes[judge(code, answer)] += 1
    exchange.close()
    results.put(outcomes)


class _Connection:
    """One HTTP/1.1 connection to the served app, opened again whenever the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.socket: socket.socket | None = None
        self.reader: Any = None

    def post(self, path: str, body: bytes, signature: str) -> tuple[int, str]:
        request = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                   f"Content-Type: application/x-www-form-urlencoded\r\nX-Twilio-Signature: {signature}\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n").encode() + body
        if self.socket is None:
            self.socket = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            self.reader = self.socket.makefile("rb")
        try:
            self.socket.sendall(request)
            code, answer, close = _answer(self.reader)
        except OSError:
            self.close()
            raise
        if close:
            self.close()
        return code, answer

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
            self.socket = None


class _InProcess:
    """The app itself, called through WSGI with the request gunicorn would have handed it."""

    def __init__(self, app: Any, port: int) -> None:
        self.app, self.port = app, port

    def post(self, path: str, body: bytes, signature: str) -> tuple[int, str]:
        environ = {"REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
                   "SERVER_NAME": "127.0.0.1", "SERVER_PORT": str(self.port), "SERVER_PROTOCOL": "HTTP/1.1",
                   "HTTP_HOST": f"127.0.0.1:{self.port}", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
                   "wsgi.errors": sys.stderr, "CONTENT_TYPE": "application/x-www-form-urlencoded",
                   "CONTENT_LENGTH": str(len(body)), "HTTP_X_TWILIO_SIGNATURE": signature,
                   "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False}
        codes: list[int] = []
        chunks = self.app(environ, lambda line, headers, exc_info=None: codes.append(int(line[:3])))
        try:
            answer = b"".join(chunks)
        finally:
            getattr(chunks, "close", lambda: None)()  # what a WSGI server does once the answer is written
        return codes[0], answer.decode(errors="replace")

    def close(self) -> None:
        """Nothing to close."""


def _answer(reader: Any) -> tuple[int, str, bool]:
    """Read one HTTP answer; return its status, its body and whether the server closes the connection."""
    line = reader.readline()
    if not line:
        raise ConnectionResetError("closed before answering")
    code = int(line.split()[1])
    headers = {}
    while (header := reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    close = headers.get("connection", "").lower() == "close"
    if "content-length" in headers:
        body = reader.read(int(headers["content-length"]))
    elif code in (204, 304):
        body = b""
    else:
        body, close = reader.read(), True
    return code, body.decode(errors="replace"), close
