"""The Twilio fake in a process of its own, noting the wall time each message arrived.

Apart from the benchmark, its HTTP parsing has its own interpreter and GIL, and its CPU time can
be read to check it is not what caps a run. `python -m bench.provider` prints its account and
URL as one JSON line, then answers each `arrivals` line on stdin with the arrivals so far, each
`sent` line with the sid and recipient of each message accepted (and forgets them on `reset`),
until stdin closes. After a `latency SECONDS` line, it answers each request that long after it
arrived, until the next `reset`: each connection has a thread of its own, so requests on
different connections wait together, as at a provider.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench import servers
from tests.twilio_server import TwilioServer, _Handler


class _NoDelayHandler(_Handler):
    # The stock handler writes the headers, then the body, with Nagle on: the body waits for the
    # client's delayed ACK of the headers, ~40 ms a request on Linux loopback (1.2 ms without).
    disable_nagle_algorithm = True


class TimedTwilioServer(TwilioServer):
    """A TwilioServer that notes when each message it accepted arrived (its body read, before answering)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[float, str]] = []

    handler = _NoDelayHandler  # answering without Nagle's delay

    def _create(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        arrived = time.time()
        status, payload = super()._create(form)
        if status == 201:
            with self._lock:
                self.arrivals.append((arrived, form.get("To", "")))
        return status, payload


@dataclass
class Provider:
    """The running fake: its account, its URL, and what reached it."""

    process: subprocess.Popen
    account_sid: str
    auth_token: str
    base_url: str

    def arrivals(self) -> list[tuple[float, str]]:
        """Return (wall time, To) of every accepted message, in arrival order."""
        return [(t, to) for t, to in self._ask("arrivals")]

    def reset(self) -> None:
        """Forget every message so far."""
        self._ask("reset")

    def sent(self) -> list[tuple[str, str]]:
        """Return (sid, To) of every accepted message, in the order accepted: what status callbacks name."""
        return [(sid, to) for sid, to in self._ask("sent")]

    def latency(self, seconds: float) -> None:
        """Answer each request `seconds` after it arrived (its arrival noted at once), until the next reset."""
        self._ask(f"latency {seconds!r}")

    def cpu_seconds(self) -> float:
        """Return the CPU time the server process used so far."""
        return servers.cpu_seconds([self.process.pid])

    def _ask(self, command: str) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())


@contextmanager
def provider() -> Iterator[Provider]:
    """Run `python -m bench.provider` until the block ends."""
    process = subprocess.Popen([sys.executable, "-m", "bench.provider"], cwd=servers.ROOT, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"bench.provider exited with {process.wait()} before answering")
        hello = json.loads(line)
        yield Provider(process, hello["account_sid"], hello["auth_token"], hello["base_url"])
    finally:
        if process.stdin is not None:
            process.stdin.close()  # the server's signal to stop
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    with TimedTwilioServer() as server:
        print(json.dumps({"account_sid": server.account_sid, "auth_token": server.auth_token,
                          "base_url": server.base_url}), flush=True)
        for line in sys.stdin:
            if line.strip() == "reset":
                with server._lock:
                    server.arrivals.clear()
                server.reset()
                print("null", flush=True)
            elif line.strip() == "arrivals":
                with server._lock:
                    arrivals = list(server.arrivals)
                print(json.dumps(arrivals), flush=True)
            elif line.startswith("latency "):
                server.delay(float(line.split()[1]))
                print("null", flush=True)
            elif line.strip() == "sent":
                with server._lock:
                    sent = [(message["sid"], message["to"]) for message in server.messages]
                print(json.dumps(sent), flush=True)


if __name__ == "__main__":
    main()
