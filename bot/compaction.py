"""Redis's files after an erasure: rewritten, so that the erased number leaves the disk too, at a bounded cost.

Redis's append-only file logs every write since its last rewrite, an erased number's included,
and a snapshot holds what Redis held when it was taken; only a rewrite drops the number. A rewrite
copies the whole dataset: about 4 s a GB on this project's machine (bench/erasure.py), so half a
minute or more at a national campaign's size. Each erasure or purge counts itself (`want`), and a
rewrite that begins after it covers it:

- an operator's command (`person erase`, `purge`) waits out a rewrite already running, which began
  before the erasure, then starts one (`rewrite(wait=True)`): the number is on its way off the disk
  when the command returns;
- the voter's page never waits (a web worker held that long would hold up the webhook, STOPs
  included): it starts a rewrite only if none runs and none began in the last EVERY seconds, and
  otherwise leaves it to the workers' upkeep (`keep_up`), which starts one, under the same bound,
  whenever an erasure is not covered yet or the last rewrite failed. Within minutes, not at once;
  and a wave of erasures costs Redis one rewrite every few minutes, not one each.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis import Redis
from redis.exceptions import ResponseError

from bot.keys import COMPACTION_COVERED_KEY as COVERED
from bot.keys import COMPACTION_WANTED_KEY as WANTED

PATIENCE = 60.0  # seconds an operator's command waits out a rewrite that began before its erasure
EVERY = 120.0  # seconds at least between two rewrites nobody waits for
log = logging.getLogger(__name__)


def want(redis: Redis) -> None:
    """Count an erasure or a purge that Redis's files still hold until their next rewrite."""
    redis.incr(WANTED)


def pending(redis: Redis) -> bool:
    """Say whether an erasure is not yet covered by a rewrite that began after it."""
    return _wanted(redis) > _covered(redis)[0]


def rewrite(redis: Redis, clock: Callable[[], float], *, wait: bool) -> bool:
    """Start a rewrite of Redis's files covering every erasure so far; say whether one was started.

    With `wait`, a rewrite running (which began before) is waited out first, up to PATIENCE. Without,
    none starts while one runs or within EVERY seconds of the last: the erasure stays pending, for
    the workers' upkeep.
    """
    info = redis.info("persistence")
    deadline = time.monotonic() + PATIENCE
    while wait and _running(info) and time.monotonic() < deadline:
        time.sleep(0.1)
        info = redis.info("persistence")
    count = _wanted(redis)  # read before the rewrite forks: it covers those
    if not wait:
        _, began = _covered(redis)
        if _running(info) or clock() - began < EVERY:
            return False
    aof = bool(info.get("aof_enabled"))
    try:
        snapshots = any(value for value in redis.config_get("save").values())
    except ResponseError as error:  # CONFIG refused, as managed services may: their snapshots are theirs
        log.warning("Redis's snapshots may hold an erased number until it takes the next: %s", error)
        snapshots = False
    rewritten = aof and _asked(redis.bgrewriteaof)
    saved = snapshots and _asked(lambda: redis.bgsave(schedule=True))
    if rewritten == aof and saved == snapshots:  # every file Redis keeps is on its way to being rewritten
        redis.set(COVERED, f"{count}|{clock():.3f}")
    return rewritten or saved


def _asked(command: Callable[[], object]) -> bool:
    """Ask Redis for a rewrite or a snapshot; say whether it took the order."""
    try:
        command()
    except ResponseError as error:  # refused, or one still running after the wait: the erasure stays pending
        log.warning("Redis's files may hold an erased number until it rewrites them: %s", error)
        return False
    return True


def keep_up(redis: Redis, clock: Callable[[], float]) -> bool:
    """The workers' upkeep: start a rewrite if an erasure is not covered yet, or the last one failed."""
    info = redis.info("persistence")
    failed = info.get("aof_last_bgrewrite_status") == "err" or info.get("rdb_last_bgsave_status") == "err"
    if not (pending(redis) or failed):
        return False
    started = rewrite(redis, clock, wait=False)
    if failed and started:
        log.warning("Redis's last rewrite of its files failed: it rewrites them again, an erased number may be in them")
    return started


def _running(info: dict) -> bool:
    return bool(info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled")
                or info.get("rdb_bgsave_in_progress"))


def _wanted(redis: Redis) -> int:
    return int(redis.get(WANTED) or 0)


def _covered(redis: Redis) -> tuple[int, float]:
    count, _, when = (redis.get(COVERED) or b"0|0").decode().partition("|")
    return int(count), float(when or 0)
