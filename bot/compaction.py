"""Redis's files after an erasure: rewritten, so that the erased number leaves the disk too, at a bounded cost.

Redis's append-only file logs every write since its last rewrite, an erased number's included,
and a snapshot holds what Redis held when it was taken; only a rewrite drops the number. A rewrite
copies the whole dataset: 1 to 4 s a GB on this project's machine (bench/erasure.py), so half a
minute or more at a national campaign's size. Each erasure or purge counts itself (`want`). A
rewrite asked for after it covers it once Redis is seen to have finished it, without restarting
in between (`settle`): one that failed, or that a restart cut short, is asked for again.

- An operator's command (`person erase`, `purge`) waits out a rewrite already running, which began
  before the erasure, then has Redis start one (`rewrite(wait=True)`).
- The voter's page never waits: a web worker held that long would hold up the webhook, STOPs
  included. It has Redis start a rewrite only if none runs and none began in the last EVERY seconds.
- The workers' upkeep (`keep_up`, every few minutes) starts one, under the same bound, for any
  erasure not covered yet. A deployment that runs no worker has it done by the next erasure after
  EVERY seconds, or by the daily `purge`.

So a wave of erasures costs Redis one rewrite every few minutes, not one each. A Redis that keeps
no files has nothing to rewrite; files that a persistence turned off since left behind are not its
own any more, and are the operator's to delete.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis import Redis, WatchError
from redis.exceptions import RedisError

from bot.keys import COMPACTION_COVERED_KEY as COVERED
from bot.keys import COMPACTION_STARTED_KEY as STARTED
from bot.keys import COMPACTION_TRIED_KEY as TRIED
from bot.keys import COMPACTION_WANTED_KEY as WANTED

PATIENCE = 60.0  # seconds an operator's command waits out a rewrite that began before its erasure
EVERY = 120.0  # seconds at least between two rewrites nobody waits for
NO_FILES = "no files"  # what the record of the erasures covered says when Redis kept no files to rewrite
log = logging.getLogger(__name__)


def want(redis: Redis) -> None:
    """Count an erasure or a purge that Redis's files still hold until their next rewrite."""
    redis.incr(WANTED)


@dataclass(frozen=True)
class Backlog:
    """How the erasures so far stand against Redis's files (`purge`, `person erase` and the console say
    it). A purge counts as one erasure, whatever it removed."""

    erasures: int  # erasures and purges counted so far
    rewriting: int  # of those, the ones the rewrite running covers, once Redis is seen to have finished it
    waiting: int  # the others not yet covered: for the next rewrite (the workers' upkeep's, a purge's)
    rewriting_since: float | None  # when the rewrite running was asked for
    asked_at: float | None  # when a rewrite was last asked for, whatever came of it
    covered_at: float | None  # when the last rewrite known to have gone through was asked for
    files: bool  # False: Redis was last seen keeping no files, so an erasure left nothing in them

    @property
    def held(self) -> int:
        """The erasures Redis's files may still hold."""
        return self.rewriting + self.waiting


def backlog(redis: Redis) -> Backlog:
    """Read where the erasures stand, once the rewrite last asked for is settled."""
    settle(redis)
    wanted, covered, started, tried = redis.mget(WANTED, COVERED, STARTED, TRIED)
    erasures, done = _count(wanted), _count(covered)
    covered_at, _, kept = (covered or b"").decode().partition("|")[2].partition("|")
    running = started.decode().split("|") if started else None  # "count|run_id|when|second|kinds"
    asked = max(done, int(running[0])) if running else done
    return Backlog(erasures, asked - done, max(0, erasures - asked), float(running[2]) if running else None,
                   float(tried) if tried else None, float(covered_at) if covered_at else None, kept != NO_FILES)


def pending(redis: Redis) -> bool:
    """Say whether an erasure is not yet covered by a rewrite known to have gone through after it."""
    return backlog(redis).held > 0


def settle(redis: Redis) -> None:
    """Once Redis has finished the rewrite last asked for, count the erasures it covers, or forget it
    if it failed or Redis restarted meanwhile (its erasures are pending again)."""
    with redis.pipeline() as pipe:
        try:
            pipe.watch(STARTED)
            raw = pipe.get(STARTED)
            if raw is None:
                return
            count, run_id, when, second, kinds = raw.decode().split("|")
            info, server = pipe.info("persistence"), pipe.info("server")
            if _running(info):
                return
            done = server.get("run_id") == run_id and ("a" not in kinds or info["aof_last_bgrewrite_status"] == "ok") \
                and ("s" not in kinds or (info["rdb_last_bgsave_status"] == "ok"
                                          and int(info["rdb_last_save_time"]) >= int(second)))
            covered = _count(pipe.get(COVERED))
            pipe.multi()
            if done and int(count) > covered:
                pipe.set(COVERED, f"{count}|{when}")
            pipe.delete(STARTED)
            pipe.execute()
        except WatchError:  # another process started or settled one meanwhile: seen next time
            return
    if not done:
        log.warning("Redis's rewrite of its files asked for after an erasure failed, or Redis restarted "
                    "meanwhile: it is asked for again, and the files may hold an erased number until then")


def rewrite(redis: Redis, clock: Callable[[], float], *, wait: bool) -> bool:
    """Have Redis start rewriting its files for every erasure so far; say whether it took the order.

    With `wait`, a rewrite running (which began before) is waited out first, up to PATIENCE. Without,
    none starts while one runs or within EVERY seconds of the last: the erasures stay pending, for
    the workers' upkeep.
    """
    info = redis.info("persistence")
    deadline = time.monotonic() + PATIENCE
    while wait and _running(info) and time.monotonic() < deadline:
        time.sleep(0.1)
        info = redis.info("persistence")
    settle(redis)
    count = _count(redis.get(WANTED))  # read before the rewrite forks: it covers those
    if not wait and (_running(info) or clock() - _last_began(redis) < EVERY):
        return False
    try:
        snapshots: bool | None = any(value for value in redis.config_get("save").values())
    except RedisError:  # CONFIG refused, as managed services may: a snapshot is asked for all the same
        snapshots = None
    kinds = ("a" if info.get("aof_enabled") else "") + ("s" if snapshots is not False else "")
    if not kinds:  # a Redis that keeps no files: nothing to rewrite
        redis.set(COVERED, f"{count}|{clock():.3f}|{NO_FILES}")
        return False
    second = redis.time()[0]  # Redis's own clock: a snapshot finished from then on covers the erasures
    run_id = redis.info("server")["run_id"]  # before asking: a server restarted since is another one
    redis.set(TRIED, f"{clock():.3f}")  # whatever comes of it: EVERY holds after a failure too
    asked = ("a" not in kinds or _asked(redis.bgrewriteaof)) \
        and ("s" not in kinds or _asked(lambda: redis.bgsave(schedule=True)))
    if asked:
        redis.set(STARTED, f"{count}|{run_id}|{clock():.3f}|{second}|{kinds}")
    return asked


def keep_up(redis: Redis, clock: Callable[[], float]) -> bool:
    """The workers' upkeep: have Redis rewrite its files if an erasure is not covered yet. Never raises:
    a worker's upkeep that did would stop the worker."""
    try:
        return pending(redis) and rewrite(redis, clock, wait=False)
    except Exception:  # noqa: BLE001  (whatever it is, the worker goes on; the next upkeep tries again)
        log.exception("Redis's files not rewritten after the erasures this time")
        return False


def _asked(command: Callable[[], Any]) -> bool:
    """Ask Redis for a rewrite or a snapshot; say whether it took the order."""
    try:
        command()
    except RedisError as error:  # refused, one still running after the wait, or no answer in time
        log.warning("Redis's files may hold an erased number until it rewrites them: %s", error)
        return False
    return True


def _running(info: dict) -> bool:
    return bool(info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled")
                or info.get("rdb_bgsave_in_progress"))


def _last_began(redis: Redis) -> float:
    """When a rewrite was last asked for (by the clock given to `rewrite`), 0 if never."""
    return float(redis.get(TRIED) or 0)


def _count(raw: bytes | None) -> int:
    return int((raw or b"0").decode().partition("|")[0])
