"""What a round leaves in Redis: bytes per kind of key, and the numbers its RQ jobs hold."""

from __future__ import annotations

import time
from collections import Counter

import redis
from rq.job import Job

from bot.keys import batch_key, batches_key
from bot.sending import QUEUE
from bot.store import funnel_key, head_key, ledger_key, queued_key, round_key, suppression_key


def memory_split(client: redis.Redis, flow_id: str, controller_id: str) -> tuple[dict[str, int], list[str]]:
    """Return MEMORY USAGE summed per kind of key, and the RQ job ids (the suppression list, there before, apart)."""
    names = {queued_key(flow_id): "queued bitmap", f"rq:queue:{QUEUE}": "rq queue list"}
    ledger = (funnel_key(flow_id), ledger_key(flow_id), head_key(flow_id), round_key(flow_id))
    names |= dict.fromkeys(ledger, "funnel, ledger")
    split: Counter[str] = Counter()
    jobs = []
    for raw in client.scan_iter(count=1000):
        key = raw.decode()
        if key == suppression_key(controller_id):
            continue
        kind = "rq jobs" if key.startswith("rq:job:") else names.get(key, f"other: {key}")
        if key.startswith((batch_key(flow_id, ""), batches_key(flow_id))):
            kind = "stored batches (the numbers the jobs name)"
        if key.startswith("accord:person:"):  # the ledger's personal fields (the import entry has none)
            kind = "funnel, ledger"
        if kind == "rq jobs":
            jobs.append(key.removeprefix("rq:job:"))
        split[kind] += client.memory_usage(key, samples=0) or 0
    return dict(split), jobs


def job_numbers(client: redis.Redis, flow_id: str, job_ids: list[str]) -> tuple[int, int, int]:
    """Return the numbers the jobs' batches hold, how many are distinct, and jobs of another kind."""
    numbers, seen, other = 0, set(), 0
    for start in range(0, len(job_ids), 500):
        for job in Job.fetch_many(job_ids[start:start + 500], connection=client):
            if job is None or job.func_name != "bot.sending.send_requests" or job.args[0] != flow_id:
                other += 1
                continue
            items = (client.get(batch_key(flow_id, job.args[1])) or b"").decode().split(",")
            numbers += len(items)
            seen.update(item.partition("/")[0] for item in items)
    return numbers, len(seen), other


def wait_for_aof_rewrite(client: redis.Redis, timeout: float = 60.0) -> None:
    """Wait out an automatic AOF rewrite, whose buffer would count in used_memory."""
    deadline = time.monotonic() + timeout
    while client.info("persistence")["aof_rewrite_in_progress"] and time.monotonic() < deadline:
        time.sleep(0.1)


def used(run: dict) -> int:
    """Return the bytes Redis gained over the run."""
    return run["redis"]["used_memory_after"] - run["redis"]["used_memory_before"]


def report_lines(run: dict) -> list[str]:
    """Say what Redis holds after the run, per queued number and per job."""
    queued, jobs, split = run["counts"].get("queued", 0), run["redis"]["jobs"], run["redis"]["split"]
    grown = used(run)
    rq = split.get("rq jobs", 0) + split.get("rq queue list", 0)
    lines = [f"Redis memory after {run['rows']:,} rows ({queued:,} numbers queued in {jobs:,} jobs):",
             f"  used_memory delta              {grown / 1e6:9.2f} MB  {grown / queued:7.1f} B/queued number"
             f"  (aim: under 100: {'met' if grown / queued < 100 else 'MISSED'})",
             f"  RQ jobs + queue list           {rq / 1e6:9.2f} MB  {rq / queued:7.1f} B/queued number"
             f"  {rq / max(jobs, 1):,.0f} B/job"]
    for kind in sorted(split, key=lambda k: -split[k]):
        if kind not in ("rq jobs", "rq queue list"):
            lines.append(f"  {kind:<30} {split[kind] / 1e6:9.3f} MB  {split[kind] / queued:7.1f} B/queued number")
    rest = grown - sum(split.values())
    lines += [f"  {'not in any key (dicts, ...)':<30} {rest / 1e6:9.3f} MB  {rest / queued:7.1f} B/queued number",
              "  (MEMORY USAGE ... SAMPLES 0 per key; the bitmap's size is set by the highest number queued,",
              "  not by how many: a fixed cost per flow, so bytes per number fall as lists grow)", ""]
    return lines
