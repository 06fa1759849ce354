"""Every Redis key the project uses, named in one place."""

from __future__ import annotations

PREFIX = "accord"


def key_for(kind: str, *parts: str) -> str:
    """Name a Redis key; every key the project uses is built here."""
    return ":".join((PREFIX, kind, *parts))


def state_key(flow_id: str, suffix: str) -> str:
    return key_for("state", flow_id, suffix)  # hash: numbers ending in `suffix` -> state (bot/states.py)


def legacy_state_key(flow_id: str) -> str:
    return key_for("state", flow_id)  # hash of earlier versions: phone -> "state|asked|touched" (bot/migrate.py)


def ledger_key(flow_id: str) -> str:
    return key_for("ledger", flow_id)  # stream, append-only, hash-chained


def head_key(flow_id: str) -> str:
    return key_for("ledger-head", flow_id)  # hash of the latest ledger entry


def base_key(flow_id: str) -> str:
    return key_for("ledger-base", flow_id)  # hash: last entry archived off the stream, its hash, count, file


def archives_key(flow_id: str) -> str:
    return key_for("ledger-archives", flow_id)  # hash: archive file name -> its id range, count, sha256 (JSON)


def suppression_key(controller_id: str) -> str:
    return key_for("suppressed", controller_id)  # hash: HMAC of phone -> when it objected


def sid_key(message_sid: str) -> str:
    return key_for("sid", message_sid)  # the answer given to a processed inbound message


def funnel_key(flow_id: str) -> str:
    return key_for("funnel", flow_id)  # hash: counts per state, per event, open questions per hour


def content_key(flow_id: str, message: int) -> str:
    return key_for("content", flow_id, str(message))  # bitmap: French mobiles that got message N


def queued_key(flow_id: str) -> str:
    return key_for("queued", flow_id)  # bitmap: French mobiles a round has queued for asking


def round_key(flow_id: str) -> str:
    return key_for("round", flow_id)  # hash: rate and import origin of the flow's rounds


def pace_key(sender: str) -> str:
    return key_for("pace", sender)  # the sender's next free sending slot, in microseconds (all workers)


def paused_key(flow_id: str) -> str:
    return key_for("paused", flow_id)  # present while the flow's sending is paused


def admitted_key(flow_id: str) -> str:
    return key_for("admitted", flow_id)  # list: "letters|batch" admitted to a round, until their job is queued


def parked_key(flow_id: str) -> str:
    return key_for("parked", flow_id)  # list: remainders of batches a pause interrupted


def subject_key(digest: str) -> str:
    return key_for("subject", digest)  # the random person id standing for a number in ledgers


def person_key(pid: str) -> str:
    return key_for("person", pid)  # hash: "flow|entry id" -> the entry's personal fields (JSON)


def out_key(message_sid: str) -> str:
    return key_for("out", message_sid)  # flow, phone and furthest status of a sent message


OUTBOX_KEY = key_for("outbox")


def operator_key(name: str) -> str:
    return key_for("operator", name)  # hash: the console operator's argon2 hash, when added


def failures_key(name: str) -> str:
    return key_for("operator-failures", name)  # failed sign-ins in a row; expires with the lock-out


OPERATORS_KEY = key_for("operators")  # set: every console operator's name
AUDIT_KEY = key_for("audit")  # stream, capped: who did what in the console
