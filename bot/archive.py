"""Archive a flow's oldest consent-ledger entries off Redis without breaking the hash chain.

`archive` writes them as they are stored to a gzipped JSON-lines file, fsynced and read back; `seal`
then records the file as the stream's new base and trims the entries off, in one script. The chain
then starts at the base's hash instead of "", and the archive files carry it from "" to there. No
personal field goes to these files: bot/personal_archive.py moves them next, sealed, to files of their own.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import math
import os
import tempfile
import zlib
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from redis import Redis

from bot.files import sha256_of
from bot.keys import archives_key, base_key, ledger_key, personal_pending_key
from bot.ledger import base, entries, entry_order, pages, verify, walk

# Record an archive as the stream's new base and trim its entries off, in one step, only if the
# stream still starts with them. Appends since go to the end and stay; entries are never inserted
# before the last one, so a stream that starts with the first entry archived and still holds the
# last one with its hash holds, in between, what the file holds (or less, if some were deleted).
# KEYS: ledger, base, archives, pending. ARGV: the base's last id expected ('' for none), first id
# archived, last id archived, its hash, count, the id right after the last, file name, sha256, its
# JSON record, then '1' to leave the file pending for its entries' personal fields to move off Redis
# (bot/personal_archive.py).
SEAL_LUA = """
if (redis.call('HGET', KEYS[2], 'last') or '') ~= ARGV[1] then return 'another archive of this flow ran meanwhile' end
local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
local last = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3])[1]
local hash = nil
for i = 1, last and #last[2] or 0, 2 do if last[2][i] == 'hash' then hash = last[2][i + 1] end end
if not first or first[1] ~= ARGV[2] or hash ~= ARGV[4] then
  return 'the stream no longer starts with the entries archived'
end
redis.call('HSET', KEYS[2], 'last', ARGV[3], 'hash', ARGV[4], 'file', ARGV[7], 'sha256', ARGV[8])
redis.call('HINCRBY', KEYS[2], 'count', ARGV[5])
redis.call('HSET', KEYS[3], ARGV[7], ARGV[9])
if ARGV[10] == '1' then redis.call('SADD', KEYS[4], ARGV[7]) end
return redis.call('XTRIM', KEYS[1], 'MINID', ARGV[6])
"""


class ArchiveError(Exception):
    """The ledger cannot be archived now, or an archive file cannot be read."""


@dataclass(frozen=True)
class Archive:
    """One archive file: the entries it holds, the hash they chain from, and its digest."""

    file: str
    first: str
    last: str
    count: int
    after: str  # the base's last id when it was written ("" at the chain's start)
    prev: str  # the base's hash then: the first entry's prev
    hash: str  # the last entry's hash: the base once sealed
    sha256: str


def archives(redis: Redis, flow_id: str) -> list[Archive]:
    """Return the archive files recorded for the flow, oldest entries first."""
    found = [Archive(name.decode(), **json.loads(raw)) for name, raw in redis.hgetall(archives_key(flow_id)).items()]
    return sorted(found, key=lambda archive: entry_order(archive.first))


def holding(recorded: Sequence[Archive], entry_id: str) -> Archive | None:
    """Return the recorded archive an entry was moved to, or None if it was not archived."""
    at = entry_order(entry_id)
    return next((a for a in recorded if entry_order(a.first) <= at <= entry_order(a.last)), None)


def archive(redis: Redis, flow_id: str, directory: Path, *, keep: int = 0,
            before: float | None = None) -> Archive | None:
    """Write the stream's oldest entries to a file in `directory`, fsynced and read back; None if none is due.

    All but the newest `keep` entries are due, or, with `before`, those logged before that moment
    (stopping at the first one that was not). The file is named after the flow and its first and
    last ids. Nothing in Redis changes: `seal` then records it and trims the stream.
    """
    start = base(redis, flow_id)
    due = _due(entries(redis, flow_id), redis.xlen(ledger_key(flow_id)) - keep, before)
    written: Archive | None = None
    descriptor, partial = tempfile.mkstemp(prefix=f".ledger.{flow_id}.", suffix=".partial", dir=directory)
    try:
        with open(descriptor, "wb") as raw:
            # No name and no time in the gzip header: the same entries always make the same bytes.
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as out:
                head, first, last, count, content = start.hash, "", "", 0, hashlib.sha256()
                for page in pages(due):
                    broken, head, walked = walk(redis, flow_id, [page], head)
                    if broken:
                        raise ArchiveError(f"the ledger does not verify at entry {broken}: nothing archived "
                                           f"(see `consent verify {flow_id}`)")
                    lines = b"".join(_line(entry_id, fields) for entry_id, fields in page)
                    out.write(lines)
                    content.update(lines)
                    first, last, count = first or page[0][0].decode(), page[-1][0].decode(), count + walked
            raw.flush()
            os.fsync(raw.fileno())
        if count:
            path = directory / f"ledger.{flow_id}.{first}.{last}.jsonl.gz"
            os.replace(partial, path)
            _fsync_directory(directory)
            # Byte for byte what was written, ids included (the chain does not cover them): the entries
            # just walked, chain and commitments, and nothing else.
            if _content_sha256(path) != content.hexdigest():
                path.unlink()
                raise ArchiveError(f"{path}: read back, it does not hold what was written; nothing archived")
            written = Archive(path.name, first, last, count, start.last, start.hash.decode(), head.decode(),
                              sha256_of(path))
    finally:
        Path(partial).unlink(missing_ok=True)
    return written


def seal(redis: Redis, flow_id: str, written: Archive, *, personal: bool = False) -> int:
    """Record `written` as the stream's new base and trim its entries off, atomically; return how many went.

    With `personal`, the file is left pending for its entries' personal fields to move off Redis
    too (bot/personal_archive.py: the folder must be the one the workers archive to).

    Refused, changing nothing, if another archive ran since it was written or the stream no longer
    starts with its entries.
    """
    record = json.dumps({k: v for k, v in asdict(written).items() if k != "file"})
    ms, seq = written.last.split("-")
    minid = f"{ms}-{int(seq) + 1}"  # XTRIM MINID drops every entry before this id
    done = redis.register_script(SEAL_LUA)(
        keys=[ledger_key(flow_id), base_key(flow_id), archives_key(flow_id), personal_pending_key(flow_id)],
        args=[written.after, written.first, written.last, written.hash, written.count,
              minid, written.file, written.sha256, record, int(personal)])
    if not isinstance(done, int):
        raise ArchiveError(f"{done.decode()}: {written.file} is not recorded and nothing was trimmed; run again")
    return done


def check(redis: Redis, flow_id: str, path: Path, head: bytes) -> tuple[str | None, bytes, int]:
    """Walk an archive file's chain from `head` (see `walk`); a line that does not parse is named."""
    return walk(redis, flow_id, pages(read_file(path)), head)


def _content_sha256(path: Path) -> str:
    """Return the SHA-256 of an archive file's lines as gzip gives them back ("" if it cannot)."""
    try:
        with gzip.open(path, "rb") as lines:
            return hashlib.file_digest(lines, "sha256").hexdigest()
    except (OSError, EOFError, zlib.error):
        return ""


def read_file(path: Path) -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
    """Yield an archive file's entries as the stream held them."""
    try:
        with gzip.open(path, "rb") as lines:
            for number, line in enumerate(lines, 1):
                try:
                    fields = json.loads(line)
                    entry_id = fields.pop("id").encode()
                    yield entry_id, {k.encode(): v.encode("utf-8", "surrogateescape") for k, v in fields.items()}
                except (ValueError, KeyError, AttributeError, UnicodeError) as error:  # a hand-edited line
                    raise ArchiveError(f"{path.name}, line {number}: not an archived entry ({error})") from error
    except (OSError, EOFError, zlib.error) as error:  # truncated, not gzip: the file is named, not crashed on
        raise ArchiveError(f"{path.name}: unreadable ({error})") from error


def archive_files(flow_id: str, paths: Iterable[Path]) -> dict[str, Path]:
    """Return the flow's archive files among `paths` (files, or folders holding them), by name."""
    found = {}
    for path in paths:
        for file in sorted(path.glob(f"ledger.{flow_id}.*.jsonl.gz")) if path.is_dir() else [path]:
            found[file.name] = file
    return found


def verify_archived(redis: Redis, flow_id: str, paths: Iterable[Path]) -> str | None:
    """Walk the chain from "" through every recorded archive file, then the stream; say where it breaks."""
    given = archive_files(flow_id, paths)
    head = b""
    for recorded in archives(redis, flow_id):
        try:
            path = _given(recorded, given)
            broken, head, count = check(redis, flow_id, path, head)
        except ArchiveError as error:
            return str(error)
        if broken:
            return f"broken at entry {broken} (in {recorded.file})"
        if count != recorded.count or sha256_of(path) != recorded.sha256:
            return f"archive {recorded.file} is not the file archived (its entries or sha256 differ)"
    if head != base(redis, flow_id).hash:
        return "broken at the base: the archives do not end at the hash recorded in Redis"
    broken = verify(redis, flow_id)
    return f"broken at entry {broken}" if broken else None


def recorded_entries(redis: Redis, flow_id: str, paths: Iterable[Path],
                     wanted: Collection[str] | None = None) -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
    """Return the entries of the flow's recorded archive files among `paths`, oldest first, as stored.

    Every file recorded is needed, or only those named in `wanted`. Before anything is read, each
    needed file must be among those given and be the very file archived (its recorded sha256), or
    ArchiveError names it.
    """
    given = archive_files(flow_id, paths)
    needed = []
    for recorded in archives(redis, flow_id):
        if wanted is None or recorded.file in wanted:
            path = _given(recorded, given)
            if sha256_of(path) != recorded.sha256:
                raise ArchiveError(f"archive {recorded.file} is not the file archived (its sha256 differs)")
            needed.append(path)
    return itertools.chain.from_iterable(map(read_file, needed))


class Sealed:
    """The time and flow version hash sealed in archived entries, looked up by entry id.

    Kept in arrays, some 30 bytes an entry against over 200 in a dict of strings: a flow's archives
    may hold millions of entries. Entries are added in id order, as the files hold them.
    """

    def __init__(self) -> None:
        self._ms, self._seq, self._at, self._version = array("q"), array("q"), array("d"), array("I")
        self._versions: dict[bytes, int] = {}  # a flow has few versions: each hash is kept once
        self._hashes: list[str] = []

    def __len__(self) -> int:
        return len(self._ms)

    def add(self, entry_id: bytes, fields: dict[bytes, bytes]) -> None:
        """Keep an entry's time and flow hash; ArchiveError if it comes before the last one added."""
        ms, seq = entry_order(entry_id.decode())
        if self._ms and (ms, seq) <= (self._ms[-1], self._seq[-1]):
            raise ArchiveError(f"archived entry {entry_id.decode()} is out of order")
        flow_hash = fields.get(b"flow_hash", b"")
        if flow_hash not in self._versions:
            self._versions[flow_hash] = len(self._hashes)
            self._hashes.append(flow_hash.decode("utf-8", "replace"))
        try:
            at = float(fields.get(b"at", b""))
        except ValueError:  # a time that does not parse (the chain still seals it): shown blank
            at = math.nan
        self._ms.append(ms)
        self._seq.append(seq)
        self._at.append(at)
        self._version.append(self._versions[flow_hash])

    def get(self, entry_id: str) -> tuple[str, str] | None:
        """Return an archived entry's time (epoch seconds, as logged) and flow hash; None if not held."""
        ms, seq = entry_order(entry_id)
        start, end = bisect_left(self._ms, ms), bisect_right(self._ms, ms)
        index = bisect_left(self._seq, seq, start, end)  # within one millisecond, ids go by sequence
        if index == end or self._seq[index] != seq:
            return None
        at = self._at[index]
        return "" if math.isnan(at) else f"{at:.3f}", self._hashes[self._version[index]]


def _given(recorded: Archive, given: dict[str, Path]) -> Path:
    """Return the file given for a recorded archive; ArchiveError if it is not among them."""
    path = given.get(recorded.file)
    if path is None:
        raise ArchiveError(f"archive {recorded.file} (entries {recorded.first} to {recorded.last}) "
                           "is not among the files given")
    return path


def _due(stream: Iterable[tuple[bytes, dict[bytes, bytes]]], limit: int,
         before: float | None) -> Iterator[tuple[bytes, dict[bytes, bytes]]]:
    """Yield the first `limit` entries, stopping at the first logged at or after `before`."""
    for taken, (entry_id, fields) in enumerate(stream):
        if taken >= limit:
            return
        if before is not None:
            try:
                if float(fields.get(b"at", b"")) >= before:
                    return
            except ValueError:  # a time that does not parse: stop here, the walk will name the entry
                return
        yield entry_id, fields


def _line(entry_id: bytes, fields: dict[bytes, bytes]) -> bytes:
    """One archived entry as a JSON line: its id, then its fields exactly as stored."""
    entry = {"id": entry_id.decode()} | {k.decode(): v.decode("utf-8", "surrogateescape") for k, v in fields.items()}
    return json.dumps(entry).encode() + b"\n"


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)

