"""Where the round pipeline's time goes: each stage timed alone, then start_round under cProfile.

On a generated file (bench/contacts.py) and a fresh Redis, the stages of start_round are run one
after the other on the same data, unprofiled, so their times add up against start_round's own:
reading the header (which decodes the whole file once), reading rows, normalizing and deduping,
the HMAC per number, the admit script, the RQ enqueue. start_round runs the admission stages in
a forked process beside the reading, so its whole time is less than their sum ("the rest" comes
out negative by what ran side by side). Then start_round runs under cProfile, whose self times
are grouped by module and listed by function (cProfile inflates Python calls); the profile covers
the reading process, not the forked admission.

    .venv/bin/python -m bench.hotspots [--rows 200000] [--repeat 3] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench import counters, servers
from bench.contacts import write_contacts
from bench.pipeline import FLOW, ROOT, accord_for, machine_line, origin_for
from bot import Accord
from bot.contacts import Row, read_header, read_rows
from bot.phones import FRENCH_MOBILE_PREFIXES, MobileBits, PhoneError, normalize
from bot.rounds import start_round
from bot.sending import BATCH, enqueue_stored, rate_of
from bot.store import new_batch_id
from bot.windows import read_postcode

WHOLE = "start_round, whole"


def main(argv: list[str] | None = None) -> int:
    """Print the stage table and the profile."""
    parser = argparse.ArgumentParser(prog="python -m bench.hotspots", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="data lines in the generated file")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated file")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the stages; the best time of each counts")
    parser.add_argument("--top", type=int, default=25, help="functions listed by self time")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="accord-bench-") as scratch, \
            servers.redis_server(Path(scratch) / "redis") as url:
        path = Path(scratch) / f"contacts-{args.rows}.csv"
        write_contacts(path, args.rows, seed=args.seed)
        accord = accord_for(url, Path(scratch))
        print(f"start_round on {args.rows:,} generated rows (seed {args.seed}); machine: {machine_line()}\n")
        plain = _stages(accord, path, args.rows, args.repeat)
        _profile(accord, path, plain, args.top)
    print(f"reproduce (from {ROOT}): .venv/bin/python -m bench.hotspots --rows {args.rows} --seed {args.seed} "
          f"--repeat {args.repeat} --top {args.top}")
    return 0


def _stages(accord: Accord, path: Path, rows: int, repeat: int) -> float:
    """Time start_round, then its stages one by one on the same data, `repeat` times; print the best of each."""
    passes = [_stage_times(accord, path) for _ in range(repeat)]
    times = {label: min(one[label] for one in passes) for label in passes[0]}
    whole = times.pop(WHOLE)
    staged = sum(seconds for label, seconds in times.items() if not label.startswith("  "))
    print(f"{f'stage (unprofiled, each alone on the same data; best of {repeat})':<62} {'seconds':>8} {'share':>7} "
          f"{'µs/row':>7}")
    print(f"{WHOLE:<62} {whole:>8.2f} {1:>7.1%} {whole / rows * 1e6:>7.2f}")
    for label, seconds in times.items():
        print(f"{label:<62} {seconds:>8.2f} {seconds / whole:>7.1%} {seconds / rows * 1e6:>7.2f}")
    rest = whole - staged
    print(f"{'the rest: loop, counters, rejects file, minus work side by side':<62} {rest:>8.2f} {rest / whole:>7.1%} "
          f"{rest / rows * 1e6:>7.2f}\n")
    return whole


def _stage_times(accord: Accord, path: Path) -> dict[str, float]:
    """Time start_round on a flushed Redis, then each of its stages on a flushed Redis again."""
    flow, store, client = accord.flows[FLOW], accord.store, accord.store.redis
    siblings = accord.flows_for(flow.sender)
    client.flushall()
    started = time.perf_counter()
    start_round(accord, flow, path, origin_for(accord, path))
    times = {WHOLE: time.perf_counter() - started}
    client.flushall()
    store.set_round(flow, rate="30")

    def timed(label: str, started: float) -> None:
        times[label] = time.perf_counter() - started

    started = time.perf_counter()
    header = read_header(path)
    timed("read_header (sniff_encoding decodes the whole file first)", started)
    started = time.perf_counter()
    parsed = list(read_rows(path, header))
    timed("read_rows: csv + a frozen Row per line + blank-line check", started)
    started = time.perf_counter()
    mobiles = []
    for row in parsed:
        if not isinstance(row, Row):
            continue
        try:
            phone = normalize(row.phone)
        except PhoneError:
            continue
        if len(phone) == 12 and phone.startswith(FRENCH_MOBILE_PREFIXES):  # as start_round tests it
            mobiles.append((phone, row.postcode))
    timed("normalize + French-mobile check", started)
    started = time.perf_counter()
    mobiles = [(phone, read_postcode(postcode) if postcode else None) for phone, postcode in mobiles]
    timed("read_postcode (its 5 digits, for the holidays)", started)
    started = time.perf_counter()
    seen = MobileBits()
    kept = [(phone, postcode) for phone, postcode in mobiles if seen.add(phone)]  # as admission drops repeats
    timed("dedupe bitmap (where batches are admitted)", started)
    batches = [kept[n:n + BATCH] for n in range(0, len(kept), BATCH)]
    started = time.perf_counter()
    for batch in batches:
        for phone, _ in batch:
            store.digest(phone)
    timed("  Store.digest: HMAC-SHA256 per number (inside admit)", started)
    before = counters.commandstats(client)
    started = time.perf_counter()
    ids = [new_batch_id() for _ in batches]
    codes = [store.admit(flow, [f"{phone}/{postcode}" if postcode else phone for phone, postcode in batch], siblings,
                         batch_id=batch_id) for batch, batch_id in zip(batches, ids, strict=True)]
    timed("Store.admit: digests, args, EVALSHA round trip", started)
    script = (counters.commandstats(client)["evalsha"][1] - before.get("evalsha", (0, 0))[1]) / 1e6
    times["  the admit script running in Redis (INFO commandstats)"] = script
    started = time.perf_counter()
    for _ in batches:
        rate_of(accord, flow)
    timed("  rate_of: HGETALL of the round per batch (inside enqueue)", started)
    started = time.perf_counter()
    for batch_id, letters in zip(ids, codes, strict=True):
        if "q" in letters:  # the admit script stored the numbers queued; the job names the batch
            enqueue_stored(accord, "requests", flow, [batch_id])
    timed("enqueue: RQ job naming the stored batch (pickle, zlib, MULTI)", started)
    client.flushall()
    return times


def _profile(accord: Accord, path: Path, plain: float, top: int) -> None:
    """Run start_round under cProfile; print self time by module and by function."""
    flow = accord.flows[FLOW]
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.runcall(start_round, accord, flow, path, origin_for(accord, path))
    profiled = time.perf_counter() - started
    accord.store.redis.flushall()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    total = max(entry[3] for entry in stats.values())  # start_round's cumulative time: the whole call
    by_module: Counter[str] = Counter()
    for (filename, _, name), (_, _, self_time, _, _) in stats.items():
        by_module[_module(filename, name)] += self_time
    print(f"cProfile: {profiled:.2f} s profiled for {plain:.2f} s plain; shares of the profiled call")
    print("self time by module:")
    for module, seconds in by_module.most_common(14):
        print(f"  {seconds / total:6.1%}  {module}")
    print("functions by self time (calls; share of self time, then cumulative):")
    for (filename, line, name), (calls, _, self_time, cumulative, _) in sorted(
            stats.items(), key=lambda item: -item[1][2])[:top]:
        where = f"{_short(filename)}:{line}" if filename != "~" else "builtin"
        print(f"  {self_time / total:6.1%} {cumulative / total:7.1%} {calls:>9,}  {name}  ({where})")
    print("bot/ functions by cumulative time:")
    for (filename, line, name), (calls, _, _, cumulative, _) in sorted(stats.items(), key=lambda item: -item[1][3]):
        if "/bot/" in filename and cumulative / total >= 0.005:
            print(f"         {cumulative / total:7.1%} {calls:>9,}  {name}  ({_short(filename)}:{line})")


def _module(filename: str, name: str) -> str:
    """Group a profiled function: bot modules by file, libraries by package, C builtins by type."""
    if filename == "~":
        found = re.match(r"<(?:method|built-in method) '?([\w.]+)'?(?: of '?([\w.]+)'? objects)?", name)
        return f"builtin: {found.group(2) or found.group(1)}" if found else f"builtin: {name}"
    if "/bot/" in filename:
        return "bot/" + filename.rsplit("/bot/", 1)[1]
    found = re.search(r"site-packages/([^/]+)", filename) or re.search(r"python3\.\d+/([^/]+)", filename)
    return found.group(1).removesuffix(".py") if found else filename


def _short(filename: str) -> str:
    return re.sub(r".*/(site-packages|python3\.\d+|main)/", "", filename)


if __name__ == "__main__":
    sys.exit(main())
