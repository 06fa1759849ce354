"""Move the personal fields of archived ledger entries off Redis, each number's sealed (bot/sealing.py).

Once a stream segment is archived and sealed (bot/archive.py), its file is pending here. The upkeep
then reads it, takes each entry's personal fields from its person's hash, and writes them to a
file of the archive folder, a line per number, sealed under the number's key for the flow. Only
once that file is fsynced, read back and recorded, one script per chunk of numbers adds where its
line is to each number's seal record and deletes the fields it holds from the person's hash,
provided the record still holds the key they were sealed under, every one of those fields is still
there and the number has not objected since: a number erased meanwhile is passed over (its fields
went with the erasure), even one asked again since under a new key. Run again after a crash, the
same segment is moved again and only fields still in Redis go: a file written but never recorded
holds lines nobody is pointed to.

Passed over, their fields staying in Redis: an entry of a number the flow holds no state of (an
objection alone, a retired layout), or opted out (the objection list reads its number there).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from redis import Redis

from bot import archive, sealing
from bot.archive import ArchiveError, read_file
from bot.files import sha256_of
from bot.keys import (
    glob_of,
    person_key,
    personal_count_key,
    personal_files_key,
    personal_pending_key,
    sealed_flows_key,
    sealed_flows_listed_key,
    sealed_key,
)
from bot.ledger import commitment, pages, stored_fields
from bot.states import CODES, base36, phone_of
from bot.states import slot as state_slot

if TYPE_CHECKING:
    from bot.store import Store

log = logging.getLogger(__name__)

# A seal record for each number whose state record the flow holds, unless it objected: the one
# held, or the fresh key given. KEYS: per number its state hash and its seal hash. ARGV: per
# number its field and a fresh key. Returns per number the record, or '' for none.
ENSURE_LUA = f"""
local found = {{}}
for i = 1, #KEYS / 2 do
  local field = ARGV[2 * i - 1]
  local state = redis.call('HGET', KEYS[2 * i - 1], field)
  found[i] = ''
  if state and string.sub(state, 1, 1) ~= '{CODES["opted_out"]}' then
    found[i] = redis.call('HGET', KEYS[2 * i], field)
    if not found[i] then
      found[i] = ARGV[2 * i]
      redis.call('HSET', KEYS[2 * i], field, found[i])
    end
  end
end
return found
"""

# Point each number's seal record at the line its fields went to, with the provider ids of its
# inbound texts, and delete the moved fields from the person's hash; only where the record still
# holds the key they were sealed under, every moved field is still there (an erasure since the
# fields were read took them: a record made anew since must not point at them), and the number has
# not objected since. KEYS: per number its seal hash, its person's hash and its state hash. ARGV: per
# number: its field, its key, its line ("N.offset.length", base 36), the count of moved fields,
# those fields, the count of inbound ids, those ids. Returns how many numbers moved.
COMMIT_LUA = f"""
local a, moved = 1, 0
for i = 1, #KEYS / 3 do
  local skey, pkey, field, key = KEYS[3 * i - 2], KEYS[3 * i - 1], ARGV[a], ARGV[a + 1]
  local names, tokens = {{}}, {{'@' .. ARGV[a + 2]}}
  for j = 1, tonumber(ARGV[a + 3]) do names[j] = ARGV[a + 3 + j] end
  a = a + 4 + #names
  for j = 1, tonumber(ARGV[a]) do tokens[j + 1] = '!' .. ARGV[a + j] end
  a = a + #tokens
  local held = redis.call('HGET', skey, field)
  local state = redis.call('HGET', KEYS[3 * i], field)
  local whole = state and string.sub(state, 1, 1) ~= '{CODES["opted_out"]}'
  for _, name in ipairs(names) do
    if whole and redis.call('HEXISTS', pkey, name) == 0 then whole = false end
  end
  if whole and held and string.sub(held, 1, 16) == key then
    local present = {{}}
    for token in string.gmatch(string.sub(held, 17), '[@!][^@!]+') do present[token] = true end
    for _, token in ipairs(tokens) do
      if not present[token] then held, present[token] = held .. token, true end
    end
    redis.call('HSET', skey, field, held)
    if #names > 0 then redis.call('HDEL', pkey, unpack(names)) end
    moved = moved + 1
  end
end
return moved
"""


@dataclass
class _Number:
    """One number's entries of a chunk, and where they go."""

    pid: str
    phone: str
    entries: dict[str, list] = field(default_factory=dict)  # entry id -> [stored fields (JSON), at]
    names: list[str] = field(default_factory=list)  # their fields in the person's hash
    sids: list[str] = field(default_factory=list)  # the provider's ids of its inbound texts


def list_sealed_flows(redis: Redis) -> None:
    """Name in one set every flow holding sealed lines, those sealed by earlier versions included.

    A text a voter sent, once archived, is known by its provider id in the number's seal record of
    its flow only. The replay check (bot/lua/step.lua) and erasure (bot/lua/erase.lua) must reach
    the records of flows no process loads any more (retired), or that moved to another sender: they
    read the set. `move` adds its flow before any record names a text; this adds those sealed before
    the set existed, once for all (one SCAN).
    """
    if redis.exists(sealed_flows_listed_key()):
        return
    held = [name.decode().rpartition(":")[2]
            for name in redis.scan_iter(match=personal_files_key("*"), count=10_000)]
    if held:
        redis.sadd(sealed_flows_key(), *held)
    redis.set(sealed_flows_listed_key(), "1")


def move_pending(redis: Redis, flow_id: str, directory: Path | None) -> int:
    """Move the personal fields of every archive file pending for the flow; return the numbers moved.

    Nothing happens without an archive folder: the fields stay in Redis. A file that cannot be
    read stays pending, logged.
    """
    if directory is None:
        return 0
    moved = 0
    for name in sorted(member.decode() for member in redis.smembers(personal_pending_key(flow_id))):
        try:
            moved += move(redis, flow_id, directory, directory / name)
        except (ArchiveError, OSError) as error:
            log.error("personal fields of %s not moved off Redis: %s", name, error)
            continue
        redis.srem(personal_pending_key(flow_id), name)
    return moved


def move(redis: Redis, flow_id: str, directory: Path, archived: Path) -> int:
    """Move the personal fields of the entries of one archive file to a sealed file; return the numbers moved.

    The file is plain JSON lines (a sealed line hardly compresses): each number's seal record
    names where its line starts and how long it is, so that reading it back is one seek.
    """
    number = redis.incr(personal_count_key(flow_id))
    name = f"personal.{flow_id}.{number}.jsonl"
    ensure, commit = redis.register_script(ENSURE_LUA), redis.register_script(COMMIT_LUA)
    sealed: list[tuple[_Number, bytes, str]] = []
    offset = 0
    descriptor, partial = tempfile.mkstemp(prefix=f".personal.{flow_id}.", suffix=".partial", dir=directory)
    try:
        with open(descriptor, "wb") as out:
            for chunk in pages(read_file(archived)):
                for person, key in _keyed(redis, ensure, flow_id, _numbers(redis, flow_id, chunk)):
                    line = json.dumps({"pid": person.pid,
                                       "sealed": sealing.seal(key, flow_id, person.pid, person.entries)}).encode()
                    out.write(line + b"\n")
                    person.entries = {}  # sealed: only what the commit needs is kept
                    sealed.append((person, key, f"{base36(number)}.{base36(offset)}.{base36(len(line))}"))
                    offset += len(line) + 1
            out.flush()
            os.fsync(out.fileno())
        if not sealed:
            return 0
        path = directory / name
        os.replace(partial, path)
        try:
            read_back = [_line_at(path, *where.split(".")[1:]) for _, _, where in (sealed[0], sealed[-1])]
        except (OSError, ValueError) as error:
            path.unlink()
            raise ArchiveError(f"{name}: unreadable once written ({error}); nothing moved") from error
        if [line["pid"] for line in read_back] != [sealed[0][0].pid, sealed[-1][0].pid]:
            path.unlink()
            raise ArchiveError(f"{name}: read back, it does not hold what was written; nothing moved")
        redis.hset(personal_files_key(flow_id), str(number),
                   json.dumps({"file": name, "sha256": sha256_of(path), "lines": len(sealed), "from": archived.name}))
    finally:
        Path(partial).unlink(missing_ok=True)
    redis.sadd(sealed_flows_key(), flow_id)  # before any seal record names a line or a text (list_sealed_flows)
    moved = 0
    for start in range(0, len(sealed), 500):
        keys: list[str] = []
        args: list[str | bytes] = []
        for person, key, where in sealed[start:start + 500]:
            seal_hash, seal_field = sealing.slot(flow_id, person.phone)
            keys += [seal_hash, person_key(person.pid), state_slot(flow_id, person.phone)[0]]
            args += [seal_field, key, where, str(len(person.names)), *person.names, str(len(person.sids)),
                     *person.sids]
        moved += commit(keys=keys, args=args)
    return moved


def held(redis: Redis, directory: Path | None, flow_id: str, phone: str, pid: str) -> dict[str, list]:
    """Return a number's archived entries in a flow, opened: entry id -> [stored fields (JSON), at].

    Empty where it has none, or no key any more (erased). A line its record names in a file missing
    from the folder, or that does not open, is logged and passed over.
    """
    record = sealing.parse(redis.hget(*sealing.slot(flow_id, phone)))
    if record is None or not record.files:
        return {}
    if directory is None:  # a machine that does not mount the workers' archive folder
        log.error("archived entries of %s are sealed in the archive folder, which this machine has none of", flow_id)
        return {}
    found: dict[str, list] = {}
    infos = redis.hmget(personal_files_key(flow_id), [str(number) for number, _, _ in record.files])
    for (number, offset, length), info in zip(record.files, infos, strict=True):
        if info is None:
            log.error("personal archive %d of %s is not recorded", number, flow_id)
            continue
        path = directory / json.loads(info)["file"]
        try:
            # Sealed for this flow and person id: another's line there does not open.
            found.update(sealing.unseal(record.key, flow_id, pid, _line_at(path, offset, length)["sealed"]))
        except (OSError, ValueError, KeyError, sealing.SealError) as error:
            log.error("personal archive %s: %s", path.name, error)
    return found


def verify(store: Store, flow_id: str, paths: Iterable[Path]) -> str | None:
    """Open every number's sealed lines in the flow and check each entry against the commitment its
    archived stream entry holds; say where one does not fit, or None.

    Whoever holds Redis holds the keys, and could seal changed fields again: the commitments in the
    archive files (`paths`, their chain walked by archive.verify_archived) are what tell. They could
    also take a line out of a number's record, to hide an entry (a STOP) as an erasure would: so
    every line of the flow's files whose person still has a record is tried under its key, and one
    that opens though its record does not name it is named. (A line an erasure or retention left
    behind was sealed under a key deleted since, and opens under no record's.) The commitments are
    kept in memory meanwhile, about 60 bytes an archived entry, and the records' keys, about 100
    bytes a number.
    """
    redis, directory = store.redis, store.personal_dir
    commits = {entry_id.decode(): fields.get(b"commit", b"")
               for entry_id, fields in archive.recorded_entries(redis, flow_id, paths)}
    files = {int(number): json.loads(info)["file"]
             for number, info in redis.hgetall(personal_files_key(flow_id)).items()}
    prefix = sealed_key(flow_id, "")
    named: dict[str, sealing.Seal] = {}  # person id -> their record
    readable: dict[str, set[str]] = {}  # person id -> the entries their record's lines hold
    for name in redis.scan_iter(match=glob_of(prefix), count=10_000):
        suffix = name.decode()[len(prefix):]
        records = [(phone_of(suffix, field), sealing.parse(raw)) for field, raw in redis.hgetall(name).items()]
        pids = store.pids([store.digest(phone) for phone, _ in records])
        for (_, record), pid in zip(records, pids, strict=True):
            if record is None or pid is None:
                return f"the seal record of a number ending in {suffix} cannot be read"
            named[pid.decode()] = record
            seen = readable.setdefault(pid.decode(), set())
            for number, offset, length in record.files:
                try:
                    line = _line_at((directory or Path()) / files[number], offset, length)
                    opened = sealing.unseal(record.key, flow_id, pid.decode(), line["sealed"])
                except (KeyError, OSError, ValueError, sealing.SealError) as error:
                    return f"a sealed line of a number ending in {suffix} cannot be read ({error})"
                seen.update(opened)
                for entry_id, (raw, _) in opened.items():
                    fields = stored_fields(raw.encode("utf-8", "surrogateescape"))
                    if commits.get(entry_id) != commitment(fields):  # the number is among what it commits to
                        return f"sealed fields of entry {entry_id} are not the ones committed to"
    return _unnamed(redis, flow_id, directory or Path(), files, named, readable)


def _unnamed(redis: Redis, flow_id: str, directory: Path, files: dict[int, str], named: dict[str, sealing.Seal],
             readable: dict[str, set[str]]) -> str | None:
    """Name an entry of a sealed line that opens under its person's key though their record does not name
    the line, and that no line it names holds, nor Redis; or None.

    A move cut short and run again leaves such lines whose entries went to the next file, or stayed
    in Redis: those are no hidden entries.
    """
    for number, file in sorted(files.items()):
        offset = 0
        with open(directory / file, "rb") as lines:
            for raw in lines:
                line, start, offset = json.loads(raw), offset, offset + len(raw)
                record = named.get(line.get("pid", ""))
                if record is None or (number, start, len(raw.rstrip(b"\n"))) in record.files:
                    continue
                try:
                    opened = sealing.unseal(record.key, flow_id, line["pid"], line["sealed"])
                except sealing.SealError:
                    continue  # sealed under a key an erasure or retention deleted since
                left = sorted(set(opened) - readable.get(line["pid"], set()))
                with redis.pipeline(transaction=False) as pipe:
                    for entry_id in left:
                        pipe.hexists(person_key(line["pid"]), f"{flow_id}|{entry_id}")
                    in_redis = pipe.execute()
                hidden = [entry_id for entry_id, found in zip(left, in_redis, strict=True) if not found]
                if hidden:
                    return f"sealed fields of entry {hidden[0]} open under their number's key, though its record no " \
                           "longer names them"
    return None


def _line_at(path: Path, offset: int | str, length: int | str) -> dict:
    """Read the JSON line of `length` bytes at `offset` (base 36 when given as text)."""
    start, size = (int(value, 36) if isinstance(value, str) else value for value in (offset, length))
    with open(path, "rb") as lines:
        lines.seek(start)
        return json.loads(lines.read(size))


def _numbers(redis: Redis, flow_id: str, chunk: list[tuple[bytes, dict[bytes, bytes]]]) -> list[_Number]:
    """Group a chunk's entries whose personal fields Redis holds by number."""
    named = [(entry_id.decode(), fields) for entry_id, fields in chunk if fields.get(b"pid", b"-") not in (b"-", b"")]
    with redis.pipeline(transaction=False) as pipe:
        for entry_id, fields in named:
            pipe.hget(person_key(fields[b"pid"].decode()), f"{flow_id}|{entry_id}")
        stored = pipe.execute()
    numbers: dict[str, _Number] = {}
    for (entry_id, fields), raw in zip(named, stored, strict=True):
        if raw is None:
            continue  # erased, or moved already
        try:
            personal = stored_fields(raw)
        except ValueError:
            continue  # the chain check names it; it stays where it is
        phone, sid = str(personal.get("phone", "")), str(personal.get("sid", ""))
        inbound = str(personal.get("event", "")).startswith("in:") and sid != ""
        if not phone.startswith("+") or len(phone) < 8 or (inbound and not sealing.SID.fullmatch(sid)):
            continue
        pid = fields[b"pid"].decode()
        person = numbers.setdefault(phone, _Number(pid, phone))
        if person.pid != pid:
            continue  # one number, two ids: left for a person to look at
        person.entries[entry_id] = [raw.decode("utf-8", "surrogateescape"), fields.get(b"at", b"").decode()]
        person.names.append(f"{flow_id}|{entry_id}")
        if inbound:
            person.sids.append(sid)
    return list(numbers.values())


def _keyed(redis: Redis, ensure, flow_id: str, numbers: list[_Number]) -> Iterator[tuple[_Number, bytes]]:
    """Yield each number with its seal key, made where it has none; those with no record are passed over."""
    for start in range(0, len(numbers), 500):
        part = numbers[start:start + 500]
        keys: list[str] = []
        args: list[str | bytes] = []
        for person in part:
            state_hash, state_field = state_slot(flow_id, person.phone)
            keys += [state_hash, sealing.slot(flow_id, person.phone)[0]]
            args += [state_field, sealing.new_key()]
        for person, raw in zip(part, ensure(keys=keys, args=args), strict=True):
            record = sealing.parse(raw)
            if record is not None:
                yield person, record.key


