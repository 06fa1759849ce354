"""Console flow page render time for a flow of a million numbers, against trivial templates.

    .venv/bin/python -m bench.console [--renders 200] [--ledger 2000]

The funnel's counters are set to million-scale values directly (they are kept incrementally, so
the page reads them in one HGETALL, never a scan), with two months of answers per hour and a
week of open questions per hour; the ledger gets real entries through the store's scripts.
Every render goes through the Flask test client as a signed-in operator.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis
from flask import Flask, render_template
from flask.testing import FlaskClient
from jinja2 import DictLoader

from bench.servers import redis_server
from bot import create_app
from bot.config import Config
from bot.keys import funnel_key
from bot.operators import Operators

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "console.json"
FLOW = "presidentielle-2027"
NUMBERS = 1_000_000
PASSWORD = "benchmark password"
TARGET_MS = 100


def main(argv: list[str] | None = None) -> int:
    """Fill a million-number flow, render its console page N times; print p50/p99 beside the baselines."""
    parser = argparse.ArgumentParser(prog="python -m bench.console", description=__doc__.split("\n")[0])
    parser.add_argument("--renders", type=int, default=200, help="timed renders per page")
    parser.add_argument("--ledger", type=int, default=2000, help="numbers asked through the store (ledger entries)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="accord-bench-console-") as folder, \
            redis_server(Path(folder) / "redis") as url:
        config = Config(flows_dir=ROOT / "flows", instance_dir=Path(folder) / "instance",
                        suppression_key=b"b" * 32, auth_token="bench-token", redis_url=url)
        app = create_app(config)
        fill(app, args.ledger)
        client = signed_in(app)
        page = f"/console/flows/{FLOW}"
        check(client, page)
        rows = {
            "baseline: bare Flask, trivial template": timings(bare_client(), "/", args.renders),
            "baseline: Accord's sign-in page": timings(app.test_client(), "/console/login", args.renders),
            f"console flow page, {NUMBERS:,} numbers": timings(client, page, args.renders),
        }
        commands = redis_commands(app, client, page)
    report(rows, commands, args)
    return 0 if rows[f"console flow page, {NUMBERS:,} numbers"]["p99"] < TARGET_MS else 1


def fill(app: Flask, asked: int) -> None:
    """Give the flow a million-number funnel and a real ledger."""
    accord = app.extensions["accord"]
    store, flow = accord.store, accord.flows[FLOW]
    now = store.clock()
    hour = int(now // 3600)
    for n in range(asked):  # ledger entries written by the real scripts: ask, send, answer
        phone = f"+3361{n:07d}"
        store.claim(flow, phone, window_open=True)
        store.record_sent(flow, phone, f"SM{n:032x}", flow.texts.consent_request)
        if n % 3 == 0:
            store.step([flow], phone, ("yes", "no", "stop")[n % 9 // 3], body="oui", message_sid=f"SM{n:032x}",
                       inbound=True)
    counters = {"import:imported": NUMBERS + 20_000, "import:queued": NUMBERS, "import:duplicate": 12_345,
                "import:rejected:not a mobile": 7_655, "sent": NUMBERS - 1_234, "send_failed": 1_234,
                "status:delivered": 962_101, "status:undelivered": 8_211, "content:1": 0,
                "m:new>asked": NUMBERS - 1_234, "m:asked>expired": 145_000, "i:asked>consented": 301_450,
                "i:asked>declined": 88_102, "i:asked>opted_out": 42_325, "i:asked>clarified": 21_000}
    counters |= {f"answers:{h}": 200 + (h * 37) % 900 for h in range(hour - 60 * 24, hour + 1)}
    counters |= {f"h:{h}": 2_500 for h in range(hour - 7 * 24, hour + 1)}
    store.redis.hset(funnel_key(flow.id), mapping=counters)


def signed_in(app: Flask) -> FlaskClient:
    """Return a test client signed in as an operator, through the real form."""
    Operators(app.extensions["accord"].store.redis).add("bench", PASSWORD)
    client = app.test_client()
    page = client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = client.post("/console/login", data={"name": "bench", "password": PASSWORD, "csrf_token": token})
    assert answer.status_code == 302, answer.status_code
    return client


def check(client: FlaskClient, page: str) -> None:
    """Make sure the page renders what it should before timing it."""
    answer = client.get(page)
    body = answer.get_data(as_text=True)
    assert answer.status_code == 200, answer.status_code
    assert 'data-stage="imported" data-value="1020000"' in body and 'id="ledger"' in body


def bare_client() -> FlaskClient:
    """Return a client of a bare Flask app rendering a one-line template (compiled once, like the console's)."""
    app = Flask("baseline")
    app.jinja_loader = DictLoader({"trivial.html": "<!doctype html><title>{{ title }}</title><p>{{ body }}</p>"})

    @app.get("/")
    def index() -> str:
        return render_template("trivial.html", title="baseline", body="hello")

    return app.test_client()


def timings(client: FlaskClient, path: str, renders: int) -> dict[str, float]:
    """Render `path` `renders` times after a warm-up; return p50, p99 and mean in ms."""
    for _ in range(10):
        client.get(path)
    samples = [_time(lambda: client.get(path)) for _ in range(renders)]
    samples.sort()
    return {"p50": statistics.median(samples), "p99": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
            "mean": statistics.fmean(samples)}


def redis_commands(app: Flask, client: FlaskClient, path: str, renders: int = 20) -> float:
    """Count the Redis commands one render costs, from the server's own statistics."""
    connection: redis.Redis = app.extensions["accord"].store.redis

    def total() -> int:
        stats = connection.info("commandstats")
        return sum(entry["calls"] for name, entry in stats.items() if name != "cmdstat_info")

    before = total()
    for _ in range(renders):
        client.get(path)
    return (total() - before) / renders


def report(rows: dict[str, dict[str, float]], commands: float, args: argparse.Namespace) -> None:
    command = f".venv/bin/python -m bench.console --renders {args.renders} --ledger {args.ledger}"
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    print(f"Console render time, ms ({args.renders} renders each, Flask test client; {model}, "
          f"Python {platform.python_version()})")
    print(f"{'':<44} {'p50':>8} {'p99':>8} {'mean':>8}")
    for label, figures in rows.items():
        print(f"{label:<44} {figures['p50']:>8.2f} {figures['p99']:>8.2f} {figures['mean']:>8.2f}")
    page = rows[f"console flow page, {NUMBERS:,} numbers"]
    print(f"\nflow page: {commands:.0f} Redis commands per render; p99 {page['p99']:.1f} ms "
          f"({'under' if page['p99'] < TARGET_MS else 'OVER'} the {TARGET_MS} ms aim)")
    print(f"reproduce (from {ROOT}): {command}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"command": command, "python": platform.python_version(), "cpu": model,
                                   "ms": rows, "redis_commands_per_render": commands}, indent=2) + "\n")


def _time(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


if __name__ == "__main__":
    sys.exit(main())
