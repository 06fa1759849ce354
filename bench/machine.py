"""Transition cost: the compiled table against the transitions Machine it was compiled from.

    .venv/bin/python -m bench.machine [--repeat 5]

Every figure is the best of `repeat` timings of a loop over a fixed mix, divided by the mix's
length; the loop's own cost is in every row (printed as "empty loop"), so ratios against the
dict lookup understate the gap for the cheap rows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import timeit
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

from bot import machine
from bot.replies import classify, classify_fresh

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "machine.json"
# Every (state, trigger) pair the table holds, so no row favours one branch.
PAIRS = list(itertools.product(machine.STATES, machine.TRIGGERS))
REPLIES = ("oui", "OUI !", "non merci", "STOP", "qui êtes-vous ?", "euh", "Ok 👍", "Oui merci beaucoup",
           "d'accord", "Non", "stop svp", "C'est qui ?", "NON MERCI", "ok", "Arrêtez de m'écrire",
           "oui oui", "Je ne suis pas intéressé", "START", "aide", "Bonjour, oui bien sûr")


def main(argv: list[str] | None = None) -> int:
    """Time each way of taking a transition; print µs per call and ratios to the dict lookup."""
    parser = argparse.ArgumentParser(prog="python -m bench.machine", description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="timings per row; the best one counts")
    args = parser.parse_args(argv)

    table, step, shared, build = machine.TABLE, machine.step, machine.MACHINE, machine.build_machine

    def empty_loop() -> None:
        for _state, _trigger in PAIRS:
            pass

    def dict_lookup() -> None:
        for state, trigger in PAIRS:
            table[state, trigger]

    def compiled_step() -> None:
        for state, trigger in PAIRS:
            step(state, trigger)

    def shared_machine() -> None:
        for state, trigger in PAIRS:
            shared.set_state(state)
            getattr(shared, trigger)()

    def machine_per_message() -> None:
        for state, trigger in PAIRS:
            fresh = build()
            fresh.set_state(state)
            getattr(fresh, trigger)()

    def classify_replies() -> None:
        for body in REPLIES:
            classify_fresh(body, "fr")

    def classify_seen() -> None:
        for body in REPLIES:
            classify(body, "fr")

    rows = {
        "empty loop (in every row)": _time(empty_loop, len(PAIRS), args.repeat),
        "(b) dict lookup TABLE[(state, trigger)]": _time(dict_lookup, len(PAIRS), args.repeat),
        "(a) bot.machine.step(state, trigger)": _time(compiled_step, len(PAIRS), args.repeat),
        "(c) shared Machine: set_state + trigger": _time(shared_machine, len(PAIRS), args.repeat),
        "(d) build_machine() per message + trigger": _time(machine_per_message, len(PAIRS), args.repeat),
        f"(e) classify, {len(REPLIES)} replies, first sight": _time(classify_replies, len(REPLIES), args.repeat),
        f"(f) classify, {len(REPLIES)} replies seen before": _time(classify_seen, len(REPLIES), args.repeat),
    }
    shared.set_state("new")
    floor = rows["(b) dict lookup TABLE[(state, trigger)]"]
    per_message = rows["(d) build_machine() per message + trigger"] / rows["(c) shared Machine: set_state + trigger"]
    command = f".venv/bin/python -m bench.machine --repeat {args.repeat}"
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")

    print(f"Transition cost, µs per call (best of {args.repeat}; {len(PAIRS)} (state, trigger) pairs, "
          f"{len(REPLIES)} replies)")
    print(f"machine: {len(os.sched_getaffinity(0))} CPU ({model}), Python {platform.python_version()}, "
          f"transitions {version('transitions')}")
    print()
    print(f"{'':<45} {'µs/call':>9} {'x dict lookup':>14}")
    for label, micros in rows.items():
        print(f"{label:<45} {micros:>9.3f} {micros / floor:>14.1f}")
    print()
    print(f"build per message / shared trigger: {per_message:.0f}x")
    print(f"reproduce (from {ROOT}): {command}")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"command": command, "python": platform.python_version(), "cpu": model,
                                   "us_per_call": rows, "build_per_message_over_shared": per_message},
                                  indent=2, ensure_ascii=False) + "\n")
    return 0


def _time(loop: Callable[[], None], calls: int, repeat: int) -> float:
    """Return the best µs per call of `loop`, run enough times for each timing to last ~0.2 s."""
    timer = timeit.Timer(loop)
    number, _ = timer.autorange()
    best = min(timer.repeat(repeat=repeat, number=number))
    return best / number / calls * 1e6


if __name__ == "__main__":
    sys.exit(main())
