"""What the webhook benchmark reads from Redis: command counts, script time, round trips, the ledger."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TypeVar

import redis

from bot import Accord

T = TypeVar("T")
MONITOR_END = "bench-monitor-end"
OWN_COMMANDS = ("cmdstat_config", "cmdstat_info")  # what the benchmark itself sends between snapshots


def commandstats(client: redis.Redis) -> dict[str, tuple[int, int]]:
    """Return calls and microseconds so far per command (commands run by scripts included)."""
    return {name.removeprefix("cmdstat_"): (stats["calls"], stats["usec"])
            for name, stats in client.info("commandstats").items() if name not in OWN_COMMANDS}


def cpu_seconds(client: redis.Redis) -> float:
    """Return the CPU time the Redis server used so far."""
    cpu = client.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def round_trips(url: str, send: Callable[[], T]) -> tuple[Counter[str], Counter[str], T]:
    """Run `send` under MONITOR; count commands clients sent apart from the ones scripts ran."""
    client, watcher = redis.Redis.from_url(url), redis.Redis.from_url(url)
    client.ping()  # connected before watching, so only the servers' commands are counted
    sent: Counter[str] = Counter()
    inside: Counter[str] = Counter()
    ready = threading.Event()

    def watch() -> None:
        with watcher.monitor() as monitor:
            ready.set()
            while True:
                entry = monitor.next_command()
                name, _, rest = entry["command"].partition(" ")
                if name.lower() == "echo" and rest == MONITOR_END:
                    return
                (inside if entry["client_type"] == "lua" else sent)[name.lower()] += 1

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    ready.wait(timeout=5)
    result = send()
    client.echo(MONITOR_END)
    thread.join(timeout=10)
    client.close()
    watcher.close()
    if thread.is_alive():
        raise RuntimeError("MONITOR never saw the end marker; the round-trip count would be partial")
    return sent, inside, result


def ledger_problems(accord: Accord, sids: Sequence[str]) -> list[str]:
    """Say what is wrong unless the flows' ledgers hold exactly one `in:` entry per text sent."""
    logged = Counter(fields["sid"] for flow_id in accord.flows for _, fields in accord.store.ledger(flow_id)
                     if fields["event"].startswith("in:"))
    problems = []
    if sum(logged.values()) != len(sids):
        problems.append(f"accord: ledgers hold {sum(logged.values())} in: entries for {len(sids)} texts sent")
    missing = [sid for sid in sids if logged[sid] != 1]
    if missing:
        problems.append(f"accord: {len(missing)} texts without exactly one in: entry, e.g. {missing[0]}")
    return problems
