"""The flow's texts in the ledger by reference: "=" and the first 32 hex digits of their SHA-256.

A consent request goes to every number of a flow in the same words, so the ledger's personal
fields name it instead of holding it twice per number (the `ask` and the `sent` entries): about
140 bytes less for each. The entry's commitment covers the reference, and the reference fixes
the text: `accord:texts` maps each reference back to the words (no number is in them, so neither
erasure nor the retention purge touches it), and a proof bundle carries the texts its entries
name, each checkable against its reference with nothing but SHA-256 (bot/verifier.py).

Only what Accord says is referenced; a voter's own words stay as they came. Entries written
before this hold their texts in full, and read the same.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache

from redis import Redis
from redis.client import Pipeline

from bot.flows import Flow
from bot.keys import TEXTS_KEY

REFERENCE = re.compile(r"=[0-9a-f]{32}")  # 128 bits of SHA-256: no two texts share one


def reference(text: str) -> str:
    """Return the reference that stands for `text` in the ledger."""
    return "=" + hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


@lru_cache(maxsize=256)  # a flow is immutable and compared by identity: each is hashed once
def of(flow: Flow) -> dict[str, str]:
    """Return every text the flow may send, each with its reference."""
    texts = flow.texts
    said = [texts.consent_request, texts.confirmation, texts.declined, texts.stopped, texts.help,
            texts.clarification, *texts.content]
    return {text: reference(text) for text in said}


def register(flows: Iterable[Flow], pipe: Pipeline) -> None:
    """Add the flows' texts to the table references resolve through (in `pipe`)."""
    table = {ref: text for flow in flows for text, ref in of(flow).items()}
    if table:
        pipe.hset(TEXTS_KEY, mapping=table)


def table(redis: Redis) -> dict[str, str]:
    """Return every text a reference in the ledger may stand for, by reference.

    Only words that hash to their reference: the commitments cover the reference alone, so words
    changed in Redis would change what every proof says was sent, unseen. See `changed`.
    """
    stored = ((ref.decode(), text.decode("utf-8", "surrogateescape")) for ref, text in redis.hgetall(TEXTS_KEY).items())
    return {ref: text for ref, text in stored if reference(text) == ref}


def changed(redis: Redis) -> set[str]:
    """Return the references whose words in the table no longer hash to them (edited in Redis)."""
    return {ref.decode() for ref, text in redis.hgetall(TEXTS_KEY).items()
            if reference(text.decode("utf-8", "surrogateescape")) != ref.decode()}


def named(fields: Mapping[str, object]) -> set[str]:
    """Return the references an entry's personal fields hold."""
    found = {str(fields.get("text", ""))} if _ours(fields) else set()
    found.update(_reply(fields))
    return {ref for ref in found if REFERENCE.fullmatch(ref)}


def resolve(fields: dict, texts: Mapping[str, str]) -> dict:
    """Return an entry's personal fields with its references replaced by the words they stand for."""
    text = str(fields.get("text", ""))
    if _ours(fields) and text in texts:
        fields = {**fields, "text": texts[text]}
    said = _reply(fields)
    if any(ref in texts for ref in said):
        fields = {**fields, "reply": json.dumps([texts.get(ref, ref) for ref in said], ensure_ascii=False)}
    return fields


def _ours(fields: Mapping[str, object]) -> bool:
    """Tell whether an entry's text is one Accord sent, not one a voter wrote ("in:..." events)."""
    return not str(fields.get("event", "")).startswith("in:")


def _reply(fields: Mapping[str, object]) -> list[str]:
    reply = str(fields.get("reply", "") or "")
    if not reply.startswith("["):
        return []
    try:
        said = json.loads(reply)
    except ValueError:
        return []
    return [str(item) for item in said] if isinstance(said, list) else []
