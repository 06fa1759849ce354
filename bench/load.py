"""Send a fixed list of signed requests at a fixed concurrency, once each, and time them.

wrk (apt install wrk) is preferred: one C thread costs a few microseconds a request, so the
servers, not the generator, set the pace. Without it, processes of http.client stand in.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

WRK_SCRIPT = Path(__file__).with_name("wrk.lua")
PATH = "/sms/inbound"
CONTENT_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Signed:
    """One inbound text as Twilio would post it: the form body and its X-Twilio-Signature."""

    body: str
    signature: str


@dataclass(frozen=True)
class Result:
    """What one bounded run measured."""

    sent: int
    answered: int
    non200: int
    errors: int
    seconds: float  # first request sent to last answer received
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    generator_cpu_s: float

    @property
    def rps(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0


def generator() -> str:
    """Name the load generator this machine will use."""
    return "wrk" if shutil.which("wrk") else "python"


def run(port: int, requests: Sequence[Signed], *, concurrency: int, threads: int = 1,
        timeout: float = 60.0, using: str | None = None) -> Result:
    """Send every request once to 127.0.0.1:`port` with `concurrency` connections; stop by itself."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    if (using or generator()) == "wrk":
        result = _run_wrk(port, requests, concurrency, threads, timeout)
    else:
        result = _run_python(port, requests, concurrency, timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Result(**{**result, "generator_cpu_s": cpu})


def _run_wrk(port: int, requests: Sequence[Signed], concurrency: int, threads: int,
             timeout: float) -> dict:
    threads = max(1, min(threads, concurrency, len(requests)))
    with tempfile.TemporaryDirectory(prefix="accord-wrk-") as scratch:
        work = Path(scratch)
        lines = work / "requests.tsv"
        lines.write_text("".join(f"{r.signature}\t{r.body}\n" for r in requests))
        marker, output = work / "done", work / "result.json"
        command = ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{int(timeout)}s",
                   "--timeout", "10s", "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}{PATH}",
                   "--", str(lines), str(marker), str(output), str(threads)]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        markers = [Path(f"{marker}.{n}") for n in range(threads)]
        deadline = time.monotonic() + timeout + 15
        # wrk sleeps for its whole -d; once every thread has its answers, SIGINT ends the sleep.
        while process.poll() is None and time.monotonic() < deadline:
            if all(m.exists() for m in markers):
                process.send_signal(signal.SIGINT)  # repeated: a worker thread may catch the first
            time.sleep(0.02)
        if process.poll() is None:
            process.kill()
        log = process.communicate()[0].decode(errors="replace")
        if not output.exists():
            raise RuntimeError(f"wrk wrote no result:\n{log}")
        raw = json.loads(output.read_text())
    latency = raw["latency_us"]
    return {"sent": raw["sent"], "answered": raw["answered"], "non200": raw["non200"],
            "errors": sum(raw["errors"].values()) - raw["errors"]["status"],
            "seconds": max(raw["last"] - raw["first"], 0.0),
            "p50_ms": latency["p50"] / 1000, "p90_ms": latency["p90"] / 1000,
            "p99_ms": latency["p99"] / 1000, "max_ms": latency["max"] / 1000}


def _run_python(port: int, requests: Sequence[Signed], concurrency: int, timeout: float) -> dict:
    context = multiprocessing.get_context("fork")
    start = context.Barrier(concurrency)
    results = context.Queue()
    workers = [context.Process(target=_client, args=(port, requests[n::concurrency], start, results, timeout))
               for n in range(concurrency)]
    for worker in workers:
        worker.start()
    parts = [results.get(timeout=timeout + 15) for _ in workers]
    for worker in workers:
        worker.join(timeout=5)
    latencies = sorted(latency for part in parts for latency in part["latencies"])
    return {"sent": sum(p["sent"] for p in parts), "answered": len(latencies),
            "non200": sum(p["non200"] for p in parts), "errors": sum(p["errors"] for p in parts),
            "seconds": max(p["last"] for p in parts) - min(p["first"] for p in parts),
            "p50_ms": _percentile(latencies, 50), "p90_ms": _percentile(latencies, 90),
            "p99_ms": _percentile(latencies, 99), "max_ms": latencies[-1] if latencies else 0.0}


def _client(port: int, requests: Sequence[Signed], start, results, timeout: float) -> None:
    """Send a share of the requests one after another on one (re-opened when closed) connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    latencies, non200, errors, sent = [], 0, 0, 0
    start.wait()
    first = time.monotonic()
    deadline = first + timeout
    for item in requests:
        if time.monotonic() > deadline:
            break
        began = time.monotonic()
        sent += 1
        try:
            connection.request("POST", PATH, item.body.encode(),
                               {"Content-Type": CONTENT_TYPE, "X-Twilio-Signature": item.signature})
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):  # counted; the connection re-opens on the next request
            errors += 1
            connection.close()
            continue
        latencies.append((time.monotonic() - began) * 1000)
        non200 += response.status != 200
    results.put({"latencies": latencies, "non200": non200, "errors": errors, "sent": sent,
                 "first": first, "last": time.monotonic()})


def _percentile(ordered: list[float], percent: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(percent / 100 * len(ordered)) - 1))]
