"""Keep each flow's ledger stream short: its older entries go to archive files as the workers go.

A number asked and sent leaves two stream entries of about 250 bytes each: 17 GB of Redis for 34
million numbers, for entries nobody reads again but to verify the chain. So every few minutes a
worker moves a flow's entries beyond the newest ARCHIVE_KEEP to a file in the deployment's archive
folder, as `ledger archive` does by hand: a checkpoint signed first, the file written, fsynced and
read back, then recorded as the chain's new start and the entries trimmed, in one step. Their
personal fields then go too, each number's sealed under a key its seal record keeps in Redis
(bot/personal_archive.py), where access requests read them back and erasure makes them unreadable.
`consent verify`, `consent export` and `report costs` read the folder's files by themselves.

The folder must outlive the machine and be the same for every worker that archives (shared or
backed-up storage): a file missing there is a hole in the chain `consent verify` will name.
"""

from __future__ import annotations

import glob
import logging
import time
from pathlib import Path

from redis import ResponseError

from bot import Accord, archive, checkpoints, personal_archive
from bot.keys import key_for, ledger_key, personal_pending_key

ARCHIVE_ABOVE = 20_000  # stream entries a flow keeps in Redis before the oldest go to a file
ARCHIVE_KEEP = 1_000  # the newest entries left in Redis (the console lists 20)
# Entries moved in one upkeep: about 20 s of work, well within the lock, so a stream an earlier
# version filled goes off Redis over several upkeeps, a file each, rather than in one long hold.
ARCHIVE_AT_ONCE = 200_000
LOCK_SECONDS = 600  # one worker archives a flow at a time; a dead one's lock runs out
log = logging.getLogger(__name__)


def lock_key(flow_id: str) -> str:
    return key_for("archiving", flow_id)  # present while a worker archives the flow


def keep_up(accord: Accord, *, above: int = ARCHIVE_ABOVE, keep: int = ARCHIVE_KEEP,
            at_once: int = ARCHIVE_AT_ONCE) -> dict[str, int]:
    """Archive the flows whose stream holds more than `above` entries, all but the newest `keep`,
    at most `at_once` each; return the entries trimmed off Redis, by flow. Nothing happens without
    an archive folder."""
    directory = accord.config.archive_dir
    if directory is None:
        return {}
    redis, trimmed = accord.store.redis, {}
    personal_archive.list_sealed_flows(redis)
    for flow in accord.flows.values():
        held = redis.xlen(ledger_key(flow.id))
        pending = redis.scard(personal_pending_key(flow.id))
        if held <= above and not pending:
            continue
        if not redis.set(lock_key(flow.id), "1", nx=True, ex=LOCK_SECONDS):
            continue  # another worker is at it
        try:
            sweep_partials(directory, flow.id)
            if held > above:
                trimmed[flow.id] = _archive(accord, flow.id, directory, max(keep, held - at_once))
            # What this upkeep archived, and what one interrupted left: files stay pending until moved.
            personal_archive.move_pending(redis, flow.id, directory)
        except (archive.ArchiveError, checkpoints.CheckpointError, OSError, ResponseError) as error:
            # The entries stay in Redis, whole; the next round of upkeep tries again.
            log.error("ledger of %s not archived: %s", flow.id, error)
        finally:
            redis.delete(lock_key(flow.id))
    return trimmed


def sweep_partials(directory: Path, flow_id: str, *, now: float | None = None) -> list[str]:
    """Delete the half-written files a worker killed while archiving the flow left; return their names.

    A file is written under a hidden ".partial" name, then renamed once whole: one still there was
    cut short (its entries stay in Redis, the segment pending) and is read by nothing. The personal
    ones hold sealed lines that open under keys Redis still has. Run under the flow's lock; a file
    touched within the lock's lifetime may be a live worker's, and is left.
    """
    cutoff = (time.time() if now is None else now) - LOCK_SECONDS
    swept = []
    for kind in ("ledger", "personal"):
        for path in map(Path, glob.glob(str(directory / f".{kind}.{glob.escape(flow_id)}.*.partial"))):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    swept.append(path.name)
            except FileNotFoundError:
                continue
    if swept:
        log.warning("flow %s: removed %d file(s) an interrupted archiving left: %s", flow_id, len(swept),
                    ", ".join(sorted(swept)))
    return swept


def _archive(accord: Accord, flow_id: str, directory: Path, keep: int) -> int:
    redis = accord.store.redis
    directory.mkdir(parents=True, exist_ok=True)
    keeper = checkpoints.keeper_for(redis, accord.config.instance_dir, accord.config.signing_key_path)
    keeper.make(flow_id, accord.store.clock())  # what leaves Redis is checkpointed first
    written = archive.archive(redis, flow_id, directory, keep=keep)
    if written is None:
        return 0
    done = archive.seal(redis, flow_id, written, personal=True)
    log.info("ledger of %s: %d entries archived to %s", flow_id, written.count, directory / written.file)
    return done
