"""A storm of replies: 10,000 signed texts from 2,000 voters over 100 connections, served as in production.

gunicorn runs the Procfile's `web:` line (sync workers, as many as its settings say) on a loopback port;
every text must be answered, and be in a ledger exactly once.
"""

from __future__ import annotations

import http.client
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pytest
import redis
from twilio.request_validator import RequestValidator

from bot import Accord, create_app, ledger
from bot.config import Config
from tests.conftest import ROOT, TOKEN, TUESDAY_MORNING, Clock

pytestmark = pytest.mark.slow
VOTERS = 2_000
TEXTS = 10_000
CONNECTIONS = 100
RETRIED = 1_000  # texts Twilio delivers a second time
BUDGET = 60.0  # seconds for the whole storm; the generator stops by itself after that
PUBLIC_URL = "https://accord.test"
BODIES = ("oui", "Non merci", "STOP", "aide", "OUI !", "c'est qui ?", "Arrêtez de m'écrire", "help",
          "ok d'accord", "👍", "Quoi ?", "non", "Stop svp", "INFO", "bonjour", "")


def web_command() -> str:
    """Return the Procfile's web line, serving the test's app instead of wsgi:app."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    command = line.removeprefix("web:").strip()
    assert command.endswith(" wsgi:app"), command
    return command.removesuffix("wsgi:app") + "tests.storm_app:app"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def procfile_web(env: dict[str, str], log: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    """Serve the test's app under gunicorn exactly as the Procfile says; yield its port and master."""
    port = free_port()
    env = {**env, "PATH": f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}", "BIND": f"127.0.0.1:{port}"}
    with open(log, "wb") as output:
        process = subprocess.Popen(["sh", "-c", "exec " + web_command()], cwd=ROOT, env=env,
                                   stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not answers(port):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"gunicorn did not answer: {log.read_text()[-3000:]}"
            time.sleep(0.05)
        yield port, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def storm_env(config: Config, redis_url: str, redis_client: redis.Redis) -> dict[str, str]:
    """The environment tests.storm_app reads, without WEB_CONCURRENCY: the Procfile's default (Redis emptied first)."""
    env = {key: value for key, value in os.environ.items() if key != "WEB_CONCURRENCY"}
    env.update(STORM_INSTANCE_DIR=str(config.instance_dir), STORM_SUPPRESSION_KEY=config.suppression_key.decode(),
               STORM_AUTH_TOKEN=TOKEN, STORM_REDIS_URL=redis_url, STORM_PUBLIC_URL=PUBLIC_URL,
               STORM_NOW=str(TUESDAY_MORNING.timestamp()))
    return env


@pytest.fixture
def web(storm_env: dict[str, str], tmp_path: Path) -> Iterator[int]:
    with procfile_web(storm_env, tmp_path / "gunicorn.log") as (port, _):
        yield port


def workers_of(master: int) -> set[int]:
    """Return the pids of a process's children (a gunicorn master's workers)."""
    children = set()
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(entry.read_text().rsplit(")", 1)[1].split()[1]) == master:
                children.add(int(entry.parent.name))
        except (OSError, ValueError, IndexError):  # the process ended while we looked
            continue
    return children


@pytest.mark.parametrize("concurrency", ["", "3"])
def test_the_procfile_serves_with_as_many_workers_as_its_settings_say(
        storm_env: dict[str, str], tmp_path: Path, concurrency: str) -> None:
    expected = int(concurrency) if concurrency else min(2 * len(os.sched_getaffinity(0)) + 1, 12)
    env = {**storm_env, "WEB_CONCURRENCY": concurrency} if concurrency else storm_env
    with procfile_web(env, tmp_path / "gunicorn.log") as (_, master):
        deadline = time.monotonic() + 20
        while len(workers_of(master.pid)) < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # time enough for a worker too many to show up
        assert len(workers_of(master.pid)) == expected


def answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@dataclass
class Storm:
    """What the load generator saw."""

    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def storm(port: int, texts: list[tuple[bytes, str]], connections: int, budget: float) -> tuple[Storm, float]:
    """Post each signed text once, over `connections` concurrent connections; stop when done or out of time."""
    seen = Storm()
    start = threading.Barrier(connections + 1)
    deadline = time.monotonic() + budget

    def client(share: list[tuple[bytes, str]]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)  # Twilio's own patience
        statuses: Counter[int] = Counter()
        errors: Counter[str] = Counter()
        latencies = []
        start.wait()
        for body, signature in share:
            if time.monotonic() > deadline:
                errors["not sent: out of time"] += 1
                continue
            began = time.monotonic()
            try:
                connection.request("POST", "/sms/inbound", body, {
                    "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as error:  # counted: the test wants none
                errors[type(error).__name__] += 1
                connection.close()
                continue
            latencies.append(time.monotonic() - began)
            statuses[response.status] += 1
        connection.close()
        with seen.lock:
            seen.statuses.update(statuses)
            seen.errors.update(errors)
            seen.latencies.extend(latencies)

    threads = [threading.Thread(target=client, args=(texts[n::connections],), daemon=True)
               for n in range(connections)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()) + 20)
    return seen, time.monotonic() - began


def signed_texts(voters: list[str], sender: str) -> tuple[list[tuple[bytes, str]], list[str]]:
    """Return TEXTS inbound texts as Twilio posts them (form body, signature), and their MessageSids."""
    validator = RequestValidator(TOKEN)
    url = PUBLIC_URL + "/sms/inbound"
    texts, sids = [], []
    for n in range(TEXTS):
        sid = "SM" + secrets.token_hex(16)
        params = {"MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid, "AccountSid": "AC" + "0" * 32,
                  "From": voters[n % len(voters)], "To": sender, "Body": BODIES[n % len(BODIES)],
                  "NumMedia": "0", "NumSegments": "1", "FromCountry": "FR", "ApiVersion": "2010-04-01"}
        texts.append((urlencode(params).encode(), validator.compute_signature(url, params)))
        sids.append(sid)
    return texts, sids


def test_a_storm_of_10000_replies_is_answered_without_error_and_ledgered_once_each(
        web: int, config: Config, redis_client: redis.Redis):
    accord: Accord = create_app(config, clock=Clock(TUESDAY_MORNING)).extensions["accord"]
    flow = accord.flows["demo"]
    voters = [f"+3361400{n:04d}" for n in range(VOTERS)]
    for phone in voters:  # each was asked for consent, as by a round
        assert accord.store.claim(flow, phone, window_open=True).dest == "asked"
    texts, sids = signed_texts(voters, flow.sender)

    seen, seconds = storm(web, texts, CONNECTIONS, BUDGET)
    latencies = sorted(seen.latencies)
    rate = len(latencies) / seconds
    print(f"\nreply storm: {len(latencies)} texts in {seconds:.1f} s over {CONNECTIONS} connections = {rate:.0f}/s; "
          f"p50 {1000 * latencies[len(latencies) // 2]:.0f} ms, p99 {1000 * latencies[int(len(latencies) * 0.99)]:.0f}"
          f" ms, max {1000 * latencies[-1]:.0f} ms; statuses {dict(seen.statuses)}")
    assert not seen.errors, seen.errors
    assert seen.statuses == {200: TEXTS}
    assert latencies[-1] < 15  # inside Twilio's timeout, so no text is given up on
    # Twilio retries some (same MessageSid, as with `#rp=5xx,rt`): each is answered and changes nothing.
    again, _ = storm(web, texts[:RETRIED], CONNECTIONS, BUDGET)
    assert not again.errors and again.statuses == {200: RETRIED}

    # Every text is in a ledger exactly once (a text from a voter lands in the flow it answers).
    inbound: Counter[str] = Counter()
    for flow_id in accord.flows:
        inbound.update(fields["sid"] for _, fields in ledger.read(redis_client, flow_id) if fields["kind"] == "in")
        assert ledger.verify(redis_client, flow_id) is None
    assert sum(inbound.values()) == TEXTS
    assert inbound == Counter(sids)
    # The funnel's per-state counters still match the states, after 10,000 concurrent moves.
    states = Counter(state for _, state, _, _ in accord.store.records(flow))
    funnel = accord.store.funnel(flow)
    assert sum(states.values()) == VOTERS
    assert all(funnel.get(state, 0) == count for state, count in states.items() if state != "new"), (funnel, states)
