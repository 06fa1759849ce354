"""Read Redis by key families: every key's size summed per family, growth split per number or fixed, 34M hashes.

A family is a key's name up to its first variable part (`accord:out:SM…` -> `accord:out:*`). A
family that grew with the numbers is counted per number; one that did not grow over a phase's
second half (bitmaps, counters, heads) is a fixed cost, reported apart. A family of hashes whose
key count stays fixed while their fields grow (the state hashes) is re-measured with as many
fields a hash as 34 million numbers would put there.
"""

from __future__ import annotations

import math
import secrets
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field

import redis

from bench import footprint

NATIONAL = 34_000_000
FIXED_BELOW = 0.5  # a family growing less than half as fast as the numbers is a fixed cost


@dataclass
class Family:
    """What one family of keys holds at one moment."""

    keys: int = 0
    bytes: int = 0
    hashes: int = 0  # keys of type hash, and their fields
    fields: int = 0
    expiring: int = 0  # keys with a time to live, and the longest left (ms)
    ttl_ms: int = 0


@dataclass
class Snapshot:
    used_memory: int
    families: dict[str, Family]
    tables: dict[str, int] = field(default_factory=dict)  # MEMORY STATS: the keyspace's and the expiry table's

    def size(self, name: str) -> int:
        return self.families[name].bytes if name in self.families else 0

    def keys(self, name: str) -> int:
        return self.families[name].keys if name in self.families else 0

    @property
    def in_keys(self) -> int:
        return sum(f.bytes for f in self.families.values())


def family_of(key: str) -> str:
    """Name a key's family: its name up to its first variable part (`accord:state:demo:0042` -> `accord:state:*`)."""
    parts = key.split(":", 2)
    return ":".join(parts[:2]) + (":*" if len(parts) > 2 else "")


# Per key: its bytes (MEMORY USAGE ... SAMPLES 0, -1 once gone), time to live (ms), type, fields if a hash.
# In a script, so that reading a million keys costs a few round trips, not four commands a key.
READ_KEYS = """
local out = {}
for _, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  out[#out + 1] = redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0') or -1
  out[#out + 1] = redis.call('PTTL', key)
  out[#out + 1] = kind
  out[#out + 1] = kind == 'hash' and redis.call('HLEN', key) or 0
end
return out
"""


def snapshot(client: redis.Redis) -> Snapshot:
    """Read every key's size, type and time to live, summed per family (the keyspace must be still)."""
    read = client.register_script(READ_KEYS)
    client.script_load(READ_KEYS)  # cached before used_memory is read: the cache counts in it
    footprint.wait_for_aof_rewrite(client)  # its buffer would count in used_memory
    used = client.info("memory")["used_memory"]
    stats = client.memory_stats()
    tables = {name: sum(db.get(f"overhead.hashtable.{name}", 0) for key, db in stats.items()
                        if key.startswith("db.") and isinstance(db, dict)) for name in ("main", "expires")}
    families: dict[str, Family] = defaultdict(Family)
    seen: set[bytes] = set()  # SCAN may return a key twice while the keyspace is being rehashed
    for keys in _chunks((k for k in client.scan_iter(count=1000) if not (k in seen or seen.add(k))), 1000):
        answers = read(keys=keys)
        for key, size, ttl, kind, fields in zip(keys, *(answers[n::4] for n in range(4)), strict=True):
            if size < 0:  # gone since SCAN (it expired)
                continue
            found = families[family_of(key.decode(errors="replace"))]
            found.keys += 1
            found.bytes += size
            if ttl > 0:
                found.expiring += 1
                found.ttl_ms = max(found.ttl_ms, ttl)
            if kind == b"hash":
                found.hashes += 1
                found.fields += fields
    return Snapshot(used, dict(families), tables)


def _chunks(items: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class Split:
    """One phase's growth: per family, bytes counted per number and fixed bytes; and used memory in no key."""

    numbers: int
    per_number: dict[str, dict[str, float]]
    fixed: dict[str, int]
    unkeyed: int
    tables: dict[str, int]  # growth of the keyspace's and the expiry table's bytes (MEMORY STATS)


def split(base: Snapshot, one: Snapshot, two: Snapshot, n1: int, n2: int, *, resumed: Snapshot | None = None,
          per_number_already: Sequence[str] = ()) -> Split:
    """Sort each family's growth over a phase's two halves into per-number or fixed, by how the second half grew.

    The first half grows from `base` to `one` (n1 numbers), the second from `resumed` (what was
    left between the halves, `one` by default) to `two` (n2 numbers in all).
    """
    resumed = resumed or one
    per_number, fixed = {}, {}
    for name in sorted(set(base.families) | set(one.families) | set(resumed.families) | set(two.families)):
        first = one.size(name) - base.size(name)
        total = first + two.size(name) - resumed.size(name)
        if first == total == 0:
            continue
        scaling = (total - first) / first / ((n2 - n1) / n1) if first > 0 and n1 else 1.0
        if scaling < FIXED_BELOW and name not in per_number_already:
            fixed[name] = total
        else:
            keys = one.keys(name) - base.keys(name) + two.keys(name) - resumed.keys(name)
            per_number[name] = {"bytes": total, "keys": keys, "per_number": total / n2,
                                "second_half": (total - first) / (n2 - n1), "scaling": scaling}
    unkeyed = sum((end.used_memory - start.used_memory) - (end.in_keys - start.in_keys)
                  for start, end in ((base, one), (resumed, two)))
    tables = {name: one.tables.get(name, 0) - base.tables.get(name, 0)
              + two.tables.get(name, 0) - resumed.tables.get(name, 0) for name in two.tables}
    return Split(n2, per_number, fixed, unkeyed, tables)


def projections(client: redis.Redis, start: Snapshot, one: Snapshot, two: Snapshot, n1: int,
                n2: int, national: int = NATIONAL, bucketed: Collection[str] = ()) -> dict[str, dict[str, float]]:
    """Re-measure the hash families whose key count stays put while their fields grow, at 34M numbers' fields a hash.

    Two things change with the fields a hash holds. Redis keeps a small hash as one compact list,
    and turns it into a hash table past hash-max-ziplist-entries fields: the state hashes do that
    long before 34 million numbers. And each key's own cost (its name, its entry in the keyspace)
    is shared by more fields: the 65,536 hashes of person ids, or of a generation's message
    records, hold 3 fields each at 200,000 numbers and some 500 at 34 million. `national`: the
    numbers that grow the family there (those that answered, for the answers' hashes). `bucketed`:
    families known to spread over a fixed set of names (bot/keys.py), measured even while their key
    count still follows the numbers (20,000 answers over 65,536 names a generation).
    """
    limits = client.config_get("hash-max-*-entries")
    limit = int(limits.get("hash-max-listpack-entries") or limits.get("hash-max-ziplist-entries") or 128)
    found = {}
    expected = FIXED_BELOW * (n2 - n1) / n1  # the second half's growth over the first's, at least
    for name, now in two.families.items():
        keys_first, keys_total = one.keys(name) - start.keys(name), now.keys - start.keys(name)
        fields_first = one.families[name].fields - _fields(start, name) if name in one.families else 0
        if (not now.hashes or now.hashes != now.keys or keys_first <= 0
                or (name not in bucketed and (keys_total - keys_first) / keys_first >= expected)):
            continue  # not hashes, or their count follows the numbers: each hash stays the size it is
        if fields_first <= 0 or (now.fields - _fields(start, name) - fields_first) / fields_first < expected:
            continue  # fields that do not grow with the numbers (what the upkeep leaves of a family it empties)
        per_hash = now.fields / now.hashes
        # The fields at 34M spread over as many hashes as the names allow (65,536 of person ids; 100,000
        # of states a flow), read from how many of them the fields written so far already reached.
        target = round(now.fields / n2 * national / buckets(now.fields, now.hashes))
        if target <= per_hash or per_hash > limit:
            continue  # as full at 34M as now, or already a hash table
        sample = _sample_hash(client, name, min(target, 50_000))
        if sample is None:
            continue
        size, fields, encoding = sample
        found[name] = {"fields_a_hash_now": per_hash, "fields_a_hash_at_34m": target, "limit": limit,
                       "keys_now": now.keys, "keys_at_34m": round(national * now.fields / n2 / target),
                       "bytes_a_field_now": now.bytes / now.fields, "bytes_a_field_at_34m": size / fields,
                       "encoding_at_34m": encoding}
    return found


def _fields(snapshot: Snapshot, name: str) -> int:
    return snapshot.families[name].fields if name in snapshot.families else 0


def buckets(fields: int, keys: int) -> float:
    """Return how many hashes `fields` spread at random over names must have had to fill `keys` of them.

    n fields over B names fill B (1 - e^(-n/B)) of them on average; solved for B. When nearly every
    field has a hash of its own, the names could be as many as the fields: the hashes stay that full.
    """
    if keys >= fields * 0.99:
        return float(fields)
    low, high = float(keys), float(keys) * 1e6
    for _ in range(200):
        middle = (low + high) / 2
        if middle * -math.expm1(-fields / middle) < keys:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _sample_hash(client: redis.Redis, family: str, count: int) -> tuple[int, int, str] | None:
    """Build one hash of `count` distinct fields taken from the family's hashes; return its size, fields, encoding."""
    pattern = "".join("\\" + c if c in "[]?\\" else c for c in family[:-1]) + "*" if family.endswith("*") else family
    fields: dict[bytes, bytes] = {}
    for key in client.scan_iter(match=pattern, count=1000):
        fields.update(client.hgetall(key))
        if len(fields) >= count:
            break
    if len(fields) < count:
        return None
    key = f"bench:national:sample:{secrets.token_hex(4)}"
    items = list(fields.items())[:count]
    for start in range(0, count, 1000):
        client.hset(key, mapping=dict(items[start:start + 1000]))
    size, encoding = client.memory_usage(key, samples=0) or 0, client.object("encoding", key)
    client.delete(key)
    return size, count, encoding.decode() if isinstance(encoding, bytes) else str(encoding)
