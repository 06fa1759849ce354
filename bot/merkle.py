"""The ledger's Merkle tree, as RFC 6962 (Certificate Transparency) defines it, with SHA-256.

Pure: a signed checkpoint holds the root of the tree over every ledger entry so far; an inclusion
proof shows one entry is in it without showing any other. `bot/verifier.py` checks the same
proofs with its own copy of the two functions it needs, so that it stands alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def leaf_hash(data: bytes) -> bytes:
    """Hash one entry as a leaf (RFC 6962 2.1: a 0x00 byte first, so no leaf passes for a node)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root(leaves: Sequence[bytes]) -> bytes:
    """Return the tree head over leaf hashes (MTH in RFC 6962; the hash of nothing for none)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


class Frontier:
    """The roots of the perfect subtrees a tree of `size` leaves is made of, largest first.

    Enough to extend the tree with new leaves and give its root, without the old leaves: a
    checkpoint keeps it, and the next one goes on from there.
    """

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if len(hashes) != bin(size).count("1"):
            raise ValueError(f"a tree of {size} leaves has {bin(size).count('1')} subtrees, not {len(hashes)}")
        self.size, self.hashes = size, list(hashes)

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash: merge equal subtrees, as a binary counter carries."""
        self.hashes.append(leaf)
        carried = self.size
        while carried & 1:
            right = self.hashes.pop()
            self.hashes[-1] = node_hash(self.hashes[-1], right)
            carried >>= 1
        self.size += 1

    def root(self) -> bytes:
        """Return the tree head: the subtrees folded from the smallest up."""
        if not self.hashes:
            return hashlib.sha256(b"").digest()
        head = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            head = node_hash(left, head)
        return head


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Return the audit path of leaf `index` in the tree over `leaves` (PATH in RFC 6962 2.1.1)."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} is not in a tree of {len(leaves)}")
    if len(leaves) == 1:
        return []
    split = _split(len(leaves))
    if index < split:
        return [*inclusion_proof(leaves[:split], index), root(leaves[split:])]
    return [*inclusion_proof(leaves[split:], index - split), root(leaves[:split])]


def included(leaf: bytes, index: int, size: int, path: Sequence[bytes], head: bytes) -> bool:
    """Say whether `path` proves leaf `index` is in the tree of `size` leaves with root `head` (RFC 9162 2.1.3.2)."""
    if not 0 <= index < size:
        return False
    node, last, found = index, size - 1, leaf
    for sibling in path:
        if last == 0:
            return False
        if node & 1 or node == last:
            found = node_hash(sibling, found)
            while not node & 1 and node:
                node, last = node >> 1, last >> 1
        else:
            found = node_hash(found, sibling)
        node, last = node >> 1, last >> 1
    return last == 0 and found == head


def _split(size: int) -> int:
    """The largest power of two smaller than `size` (size > 1)."""
    return 1 << ((size - 1).bit_length() - 1)
