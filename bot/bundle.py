"""One voter's proof of consent, checkable by a third party without Accord (docs/PROOF.md).

A bundle holds the voter's ledger entries, each with what recomputes its commitment, its chain
link and its Merkle leaf; the inclusion proof of each leaf in the tree a signed checkpoint fixes;
the checkpoint, its signature and public key; and the flow's data for each version hash named.
It proves these entries without showing anyone else's: the proofs hold only hashes.
`bot/verifier.py` checks it with the standard library and `cryptography`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict

from bot import Accord, archive, merkle, references
from bot.checkpoints import Keeper, Signed, leaf_data
from bot.flows import Flow
from bot.ledger import PERSONAL, base, entries

FORMAT = "accord-proof-bundle/1"


class BundleError(ValueError):
    """A bundle that cannot be made; the message says why and what to give."""


def build(accord: Accord, flow: Flow, phone: str, keeper: Keeper, signed: Signed,
          archives: Iterable[tuple[bytes, dict[bytes, bytes]]] = ()) -> dict:
    """Return the bundle of `phone`'s entries in `flow`, proven against the checkpoint `signed`.

    The tree is rebuilt from the flow's first entry: `archives` are the entries archived off
    Redis (archive.read_file of each recorded file, in order), needed once the ledger has a base.
    """
    redis = accord.store.redis
    checkpoint = signed.checkpoint
    archived = list(archives)
    if len(archived) != base(redis, flow.id).count:
        raise BundleError(f"{flow.id}: {base(redis, flow.id).count} entries are archived off Redis; give their "
                          "files with --archive to prove against the whole tree")
    ledger_entries = [*archived, *entries(redis, flow.id)][:checkpoint.size]
    leaves = [merkle.leaf_hash(leaf_data(entry_id, fields)) for entry_id, fields in ledger_entries]
    if merkle.root(leaves).hex() != checkpoint.root:
        raise BundleError(f"{flow.id}: the ledger no longer hashes to the checkpoint's root: it was changed "
                          "(run `consent verify`)")
    held = _personal(accord, phone, flow.id)
    proven = []
    for index, (entry_id, fields) in enumerate(ledger_entries):
        fields_of = held.get(entry_id.decode())
        if fields_of is None:
            continue
        proven.append({
            "index": index, "id": entry_id.decode(),
            "stream": {k.decode(): v.decode("utf-8", "surrogateescape") for k, v in fields.items()},
            "personal": fields_of,
            "proof": [node.hex() for node in merkle.inclusion_proof(leaves, index)],
        })
    if not proven:
        raise BundleError(f"{phone}: no entry of {flow.id} holds this number up to the checkpoint")
    versions = accord.store.versions(flow.id) | {flow.content_hash: flow.canonical}  # the version loaded now
    named = sorted({entry["stream"].get("flow_hash", "") for entry in proven} - {""})
    texts = references.table(redis)
    said = sorted(set().union(*(references.named(entry["personal"]) for entry in proven)))
    return {
        "format": FORMAT, "flow": flow.id, "controller": flow.controller, "phone": phone,
        "entries": proven,
        "flow_versions": {flow_hash: versions.get(flow_hash) for flow_hash in named},
        "texts": {ref: texts.get(ref) for ref in said},  # the words each reference stands for
        "checkpoint": asdict(checkpoint), "signature": signed.signature, "key": signed.key,
    }


def _personal(accord: Accord, phone: str, flow_id: str) -> dict[str, dict]:
    """Return the number's personal fields per entry id of the flow, salts included (archived ones too)."""
    found = {}
    for name, (fields, _) in accord.store.personal(phone).items():
        flow, _, entry_id = name.partition("|")
        if flow == flow_id:
            found[entry_id] = {key: fields.get(key, "") for key in (*PERSONAL, "salt")}
    return found


def archived_entries(accord: Accord, flow: Flow, paths: Iterable) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Read the flow's recorded archive files among `paths`, in order (ArchiveError if one is missing)."""
    given = archive.archive_files(flow.id, paths)
    found: list[tuple[bytes, dict[bytes, bytes]]] = []
    for recorded in archive.archives(accord.store.redis, flow.id):
        if recorded.file not in given:
            raise archive.ArchiveError(f"{recorded.file}: an archive of {flow.id} the bundle needs; give it "
                                       "with --archive")
        found += archive.read_file(given[recorded.file])
    return found
