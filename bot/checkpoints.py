"""Signed checkpoints of the consent ledger: what someone with Redis access cannot rewrite unseen.

The ledger's own chain lives in Redis, beside the data: whoever can write there can rewrite an
entry and every hash after it. A checkpoint fixes the ledger as it stands: the number of entries,
the last one and its chain hash, and the SHA-256 root of an RFC 6962 Merkle tree over every entry
since the first. It is signed with an Ed25519 key kept in a file, never in Redis, appended to a
file of checkpoints and printed, so the campaign keeps copies elsewhere. `consent verify` checks the
ledger against the latest one, and a proof bundle proves a voter's entries against it.

Hashing inside Redis stays SHA-1 (the only hash its Lua offers: a SHA-256 in Lua costs about 260 µs
a hash, against about 1 µs), and the webhook keeps its one round trip; the SHA-256 tree is built
here, outside the path of a voter's text.
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from redis import Redis

from bot import ledger, merkle
from bot.keys import ledger_key

FORMAT = "accord-checkpoint/1"
LEAF_FIELDS = ("at", "flow", "flow_hash", "kind", "pid", "commit", "prev", "hash")


class CheckpointError(ValueError):
    """A checkpoint that cannot be made, read or trusted; the message says which and why."""


@dataclass(frozen=True)
class Checkpoint:
    """The ledger of one flow as it stood, signed."""

    flow: str
    size: int  # entries since the first, archived ones included
    last: str  # the id of the last of them ("" for none)
    head: str  # its chain hash, as the stream holds it
    root: str  # hex SHA-256 Merkle tree head over the `size` entries
    frontier: tuple[str, ...]  # the tree's subtree roots, to go on from here (see merkle.Frontier)
    at: str  # when it was made, ISO 8601 UTC
    previous: str  # hex SHA-256 of the previous checkpoint's signed body ("" for the first)
    format: str = FORMAT

    def body(self) -> bytes:
        """Return the exact bytes signed: canonical JSON."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()

    def digest(self) -> str:
        return hashlib.sha256(self.body()).hexdigest()


@dataclass(frozen=True)
class Signed:
    """A checkpoint, its signature and the public key that made it, as one line of the file."""

    checkpoint: Checkpoint
    signature: str  # base64
    key: str  # base64 raw Ed25519 public key

    def line(self) -> str:
        return json.dumps({"checkpoint": asdict(self.checkpoint), "signature": self.signature, "key": self.key},
                          sort_keys=True, separators=(",", ":"))

    def check(self, trusted: str | None = None) -> None:
        """Raise CheckpointError unless the signature holds (and is by `trusted`, a base64 key, if given)."""
        if trusted is not None and trusted != self.key:
            raise CheckpointError("the checkpoint is signed by another key than the one trusted")
        try:
            Ed25519PublicKey.from_public_bytes(base64.b64decode(self.key)).verify(
                base64.b64decode(self.signature), self.checkpoint.body())
        except (InvalidSignature, ValueError) as error:
            raise CheckpointError("the checkpoint's signature does not hold") from error


def parse(line: str) -> Signed:
    """Read one line of a checkpoints file."""
    try:
        raw = json.loads(line)
        fields = dict(raw["checkpoint"])
        fields["frontier"] = tuple(fields["frontier"])
        return Signed(Checkpoint(**fields), str(raw["signature"]), str(raw["key"]))
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"not a checkpoint line: {error}") from error


class Keeper:
    """Makes, signs, files and reads the checkpoints of a deployment."""

    def __init__(self, redis: Redis, key_file: Path, directory: Path) -> None:
        self.redis, self.key_file, self.directory = redis, key_file, directory

    def path(self, flow_id: str) -> Path:
        return self.directory / f"{flow_id}.jsonl"

    def latest(self, flow_id: str, path: Path | None = None) -> Signed | None:
        """Return the last checkpoint filed for the flow (or in `path`), or None."""
        found = None
        for signed in self.history(flow_id, path):
            found = signed
        return found

    def history(self, flow_id: str, path: Path | None = None) -> Iterator[Signed]:
        """Yield the flow's checkpoints in order, each checked against the one before it."""
        source = path or self.path(flow_id)
        if not source.exists():
            return
        previous = ""
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            signed = parse(line)
            if signed.checkpoint.flow != flow_id:
                raise CheckpointError(f"{source}, line {number}: a checkpoint of {signed.checkpoint.flow}, "
                                      f"not {flow_id}")
            if signed.checkpoint.previous != previous:
                raise CheckpointError(f"{source}, line {number}: does not follow the checkpoint before it")
            previous = signed.checkpoint.digest()
            yield signed

    def public_key(self) -> str:
        """Return the signing key's public half, base64 (made with the key on first use)."""
        return base64.b64encode(self._key().public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()

    def make(self, flow_id: str, now: float) -> Signed:
        """Extend the flow's last checkpoint with the entries since, sign it and file it.

        Refuses, naming it, if the ledger no longer holds what the last checkpoint fixed: that is
        what a checkpoint is for. One at a time per flow (a lock beside the file): two made at once
        would both follow the same one, and the file would no longer read as one history.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / f".{flow_id}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._make(flow_id, now)

    def _make(self, flow_id: str, now: float) -> Signed:
        last = self.latest(flow_id)
        if last is not None:
            last.check(self.public_key())
        before = last.checkpoint if last else None
        frontier = merkle.Frontier(before.size, [bytes.fromhex(h) for h in before.frontier]) if before else \
            merkle.Frontier()
        base = ledger.base(self.redis, flow_id)
        if before is None and base.count:
            raise CheckpointError(f"{flow_id}: {base.count} entries were archived before any checkpoint; "
                                  "the first checkpoint needs the whole ledger in Redis")
        if before and base.count > before.size:
            raise CheckpointError(f"{flow_id}: entries after the last checkpoint ({before.size}) were archived "
                                  f"(up to {base.count}); checkpoint before archiving")
        stream = ledger.entries(self.redis, flow_id)
        last_id, head = (before.last, before.head) if before else ("", "")
        if before and before.size > base.count:
            found = self.redis.xrange(ledger_key(flow_id), min=before.last, max=before.last)
            if not found or found[0][1].get(b"hash", b"").decode() != before.head:
                raise CheckpointError(f"{flow_id}: entry {before.last}, the last checkpointed, is no longer as "
                                      "signed: the ledger was rewritten")
            stream = ledger.entries(self.redis, flow_id, after=before.last)
        chained = head.encode() if before else base.hash
        for entry_id, fields in stream:
            # Only a chain that holds is signed: a checkpoint must never vouch for a break.
            link = ledger.sha1(ledger.lp([fields.get(name.encode(), b"") for name in ledger.SEALED[:-1]] + [chained]))
            if fields.get(b"prev") != chained or fields.get(b"hash") != link:
                raise CheckpointError(f"{flow_id}: the ledger does not verify at entry {entry_id.decode()}: nothing "
                                      f"signed or archived (see `consent verify {flow_id}`)")
            chained = link
            frontier.append(merkle.leaf_hash(leaf_data(entry_id, fields)))
            last_id, head = entry_id.decode(), fields.get(b"hash", b"").decode()
        checkpoint = Checkpoint(flow_id, frontier.size, last_id, head, frontier.root().hex(),
                                tuple(h.hex() for h in frontier.hashes),
                                dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="seconds"),
                                before.digest() if before else "")
        signed = Signed(checkpoint, base64.b64encode(self._key().sign(checkpoint.body())).decode(),
                        self.public_key())
        self.directory.mkdir(parents=True, exist_ok=True)
        with self.path(flow_id).open("a", encoding="utf-8") as file:
            file.write(signed.line() + "\n")
            file.flush()
            os.fsync(file.fileno())
        return signed

    def _key(self) -> Ed25519PrivateKey:
        """Load the signing key, making it on first use (0600, beside the instance's other secrets)."""
        try:
            if not self.key_file.exists():
                self.key_file.parent.mkdir(parents=True, exist_ok=True)
                seed = Ed25519PrivateKey.generate().private_bytes(
                    serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
                draft = self.key_file.with_name(f".{self.key_file.name}.{os.getpid()}")
                fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as file:
                    file.write(base64.b64encode(seed).decode() + "\n")
                try:
                    os.link(draft, self.key_file)  # two processes making it at once keep one key
                except FileExistsError:
                    pass
                finally:
                    draft.unlink()
            return Ed25519PrivateKey.from_private_bytes(base64.b64decode(self.key_file.read_text().strip()))
        except (OSError, ValueError) as error:
            raise CheckpointError(f"{self.key_file}: the ledger signing key cannot be read or made ({error})") \
                from error


def leaf_data(entry_id: bytes | str, fields: dict[bytes, bytes]) -> bytes:
    """Return the bytes an entry's leaf hashes: its id, then its stream fields, length-prefixed."""
    raw_id = entry_id.encode() if isinstance(entry_id, str) else entry_id
    return ledger.lp([raw_id, *(fields.get(name.encode(), b"") for name in LEAF_FIELDS)])


def leaves(entries: Iterable[tuple[bytes, dict[bytes, bytes]]]) -> list[bytes]:
    """Return the leaf hashes of entries, in order."""
    return [merkle.leaf_hash(leaf_data(entry_id, fields)) for entry_id, fields in entries]


def check(signed: Signed, entries: Iterable[tuple[bytes, dict[bytes, bytes]]], *, first: int,
          base: ledger.Base | None = None) -> str | None:
    """Check the ledger against a checkpoint; return what does not fit, or None.

    `entries` are the flow's entries from number `first` on (0 when they start at the first entry:
    then the tree is rebuilt and its root compared; else the chain hash of the last entry
    checkpointed is, the chain up to it being walked by `ledger.verify`). `base`, the recorded
    start of the stream in Redis, is held to what the checkpoint fixed: archiving checkpoints
    first, so the stream never legitimately starts after the last checkpointed entry.
    """
    checkpoint = signed.checkpoint
    if base is not None and base.count > checkpoint.size:
        return (f"Redis says {base.count} entries were archived, more than the {checkpoint.size} checkpointed: "
                "give the archive files (--archive) to check them")
    if base is not None and base.count == checkpoint.size and checkpoint.size and \
            (base.last, base.hash.decode()) != (checkpoint.last, checkpoint.head):
        return f"the archived part ends at {base.last}, not at the entry checkpointed ({checkpoint.last})"
    frontier, seen, last = merkle.Frontier(), first, ("", "")
    for entry_id, fields in entries:
        if seen >= checkpoint.size:
            break
        if first == 0:
            frontier.append(merkle.leaf_hash(leaf_data(entry_id, fields)))
        seen += 1
        last = (entry_id.decode(), fields.get(b"hash", b"").decode())
    if seen < checkpoint.size:
        return f"the ledger holds {seen} entries, fewer than the {checkpoint.size} checkpointed"
    if first == 0 and frontier.root().hex() != checkpoint.root:
        return "the entries do not hash to the checkpointed root"
    if seen > first and last != (checkpoint.last, checkpoint.head):
        return f"entry {checkpoint.size} is not the one checkpointed ({checkpoint.last})"
    return None


def keeper_for(redis: Redis, instance_dir: Path, key_file: Path) -> Keeper:
    """Return the deployment's keeper: checkpoints under instance_dir/checkpoints, signed with `key_file`."""
    return Keeper(redis, key_file, instance_dir / "checkpoints")
