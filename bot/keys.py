"""Every Redis key the project uses, named in one place."""

from __future__ import annotations

import hashlib
import zlib

PREFIX = "accord"


def key_for(kind: str, *parts: str) -> str:
    """Name a Redis key; every key the project uses is built here."""
    return ":".join((PREFIX, kind, *parts))


def glob_of(prefix: str) -> str:
    """Return a SCAN pattern matching `prefix` as it is, then anything: its glob characters escaped."""
    return "".join("\\" + c if c in "[]?*\\" else c for c in prefix) + "*"


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


def versions_key(flow_id: str) -> str:
    return key_for("flow-versions", flow_id)  # hash: content hash -> the flow's data it hashes (proof bundles)


def archives_key(flow_id: str) -> str:
    return key_for("ledger-archives", flow_id)  # hash: archive file name -> its id range, count, sha256 (JSON)


def sealed_key(flow_id: str, suffix: str) -> str:
    # hash: numbers ending in `suffix` -> the key sealing their archived personal fields (bot/sealing.py)
    return key_for("sealed", flow_id, suffix)


def sealed_flows_key() -> str:
    # set: every flow that ever sealed archived entries (bot/personal_archive.py), loaded or not: the
    # step script's replay check and erasure read their seal records
    return key_for("sealed-flows")


def sealed_flows_listed_key() -> str:
    return key_for("sealed-flows", "listed")  # string: the flows sealed before the set existed are in it


def held_flows_key() -> str:
    # set: every flow that ever held a number, loaded or not (Store.retired reads it; step.lua and admit.lua fill it)
    return key_for("held-flows")


def held_flows_listed_key() -> str:
    return key_for("held-flows", "listed")  # string: the flows that held numbers before the set existed are in it


def objection_lists_key() -> str:
    # set: every controller with an objection list (Store.objection_lists reads it; step.lua and erase.lua fill it)
    return key_for("objection-lists")


def objection_lists_listed_key() -> str:
    return key_for("objection-lists", "listed")  # string: the lists kept before the set existed are in it


def personal_files_key(flow_id: str) -> str:
    return key_for("personal-files", flow_id)  # hash: number -> a personal archive file's name, sha256 (JSON)


def personal_count_key(flow_id: str) -> str:
    return key_for("personal-count", flow_id)  # counter: the last personal archive file's number


def personal_pending_key(flow_id: str) -> str:
    return key_for("personal-pending", flow_id)  # set: archive files whose entries' personal fields are to move


def suppression_key(controller_id: str) -> str:
    return key_for("suppressed", controller_id)  # hash: HMAC of phone -> when it objected


def sid_key(message_sid: str) -> str:
    # string of earlier versions: the answer given to a processed inbound message, 35 days (read until it expires)
    return key_for("sid", message_sid)


ANSWER_BUCKETS = 4  # hex digits of a message id's SHA-1 naming its hash: 65,536 a generation


def answered_key(generation: int, message_sid: str) -> str:
    """Name the hash of a generation holding the answer given to an inbound text: its id -> the answer (JSON).

    Small hashes of short fields, as sent-message records are (messages_key): a key a text cost
    some 290 bytes. A generation lasts MESSAGE_PERIOD and expires whole 35 days after it ends; the
    scripts name the hash too (bot/lua/step.lua, erase.lua), from the id's SHA-1 (Redis's Lua has
    no CRC-32). Erasure leaves an answer there saying nothing of the voter.
    """
    return key_for("answered", str(generation), hashlib.sha1(message_sid.encode()).hexdigest()[:ANSWER_BUCKETS])


SEEN_BUCKET = 4  # hex digits of an inbound text's keyed digest naming its hash in the seen family: 65,536
SEEN_FIELD = 16  # hex digits after those naming its field: 80 bits in all, no two texts of a campaign alike


def seen_slot(digest: str) -> tuple[str, str]:
    """Return the hash and field that say an inbound text was processed, for good, from its id's keyed digest.

    The answers kept under a text's id (answered_key) go after 35 to 70 days, and the entries and
    seal records that hold it go with the number's retention: a signed request replayed after that
    would be a fresh answer, to whichever flow asks the number then. This record stays: a keyed
    digest of the provider's id (bot/pseudonyms.py), no number, nothing the provider's own records
    could be matched against without the key. bot/lua/step.lua names it the same way.
    """
    return key_for("seen", digest[:SEEN_BUCKET]), digest[SEEN_BUCKET:SEEN_BUCKET + SEEN_FIELD]


def funnel_key(flow_id: str) -> str:
    # hash: counts per state, per event, open questions per hour; bot/lua/status.lua names it the same way
    return key_for("funnel", flow_id)


def content_key(flow_id: str, message: int) -> str:
    return key_for("content", flow_id, str(message))  # bitmap: French mobiles that got message N


def queued_key(flow_id: str) -> str:
    return key_for("queued", flow_id)  # bitmap: French mobiles a round has queued for asking, until purged


def asked_key(flow_id: str) -> str:
    return key_for("asked", flow_id)  # set: HMACs of numbers the flow asked, whose bit a purge cleared


def batch_key(flow_id: str, batch_id: str) -> str:
    return key_for("batch", flow_id, batch_id)  # string: a batch's items, comma-separated, until its job ends


def batches_key(flow_id: str) -> str:
    return key_for("batches", flow_id)  # sorted set: the flow's stored batch ids, scored by when stored


def in_flight_key(flow_id: str) -> str:
    # hash: "phone|message" (0: the consent request) -> "claimed at|region|import" while its send is in
    # flight (bot/witness.py); it names numbers, so erase.lua builds this name too and empties it
    return key_for("in-flight", flow_id)


def round_key(flow_id: str) -> str:
    return key_for("round", flow_id)  # hash: rate and import origin of the flow's rounds


def pace_key(sender: str) -> str:
    return key_for("pace", sender)  # the sender's next free sending slot, in microseconds (all workers)


def paused_key(flow_id: str) -> str:
    return key_for("paused", flow_id)  # present while the flow's sending is paused


def admitted_key(flow_id: str) -> str:
    return key_for("admitted", flow_id)  # list: ids of batches admitted to a round, until their job is queued


def parked_key(flow_id: str) -> str:
    return key_for("parked", flow_id)  # list: "kind|message|batch id" of what a pause interrupted


def carried_key(job_id: str) -> str:
    return key_for("carried", job_id)  # list: ids of the queued jobs a running job took on (bot/carrying.py)


SUBJECT_BUCKET = 4  # hex digits of a number's HMAC naming the hash its person id sits in: 65,536 hashes
SUBJECT_FIELD = 20  # hex digits of the HMAC after those, naming the person id's field in that hash


def subject_slot(digest: str) -> tuple[str, str]:
    """Return the hash and the field holding the random person id that stands for a number in ledgers.

    Small hashes of short fields, as states are (bot/states.py): one key a number cost about 160
    bytes with Redis's own tables; a field in a packed hash, about 70 (bench.national) while its
    name was the whole rest of the HMAC (28 digits of bot/pseudonyms.py's 32). The name is the
    HMAC's next 20 digits, 8 bytes less a number: with the 4 naming the hash, 96 bits tell numbers
    apart, and two of 34 million numbers share them with a chance of about n^2/2^97, 1e-14 (the
    HMAC is keyed: nobody without the key can pick numbers that do). Two numbers that did would
    share one person id: each one's ledger entries shown to the other's access request, and erased
    with the other's erasure.
    """
    return key_for("subjects", digest[:SUBJECT_BUCKET]), digest[SUBJECT_BUCKET:SUBJECT_BUCKET + SUBJECT_FIELD]


def legacy_subject_field(digest: str) -> str:
    return digest[SUBJECT_BUCKET:]  # field of earlier versions: the whole rest (moved when a script reads it)


def legacy_subject_key(digest: str) -> str:
    return key_for("subject", digest)  # string of earlier versions: the person id (moved when next read)


def person_key(pid: str) -> str:
    return key_for("person", pid)  # hash: "flow|entry id" -> the entry's personal fields (a JSON list: ledger.STORED)


def legacy_out_key(message_sid: str) -> str:
    return key_for("out", message_sid)  # hash of earlier versions: a sent message's flow, phone, status (35 days)


MESSAGE_PERIOD = 35 * 86400  # a generation of sent-message records: each is found 35 to 70 days
MESSAGE_BUCKETS = 4  # hex digits of a message id's CRC-32 naming its hash: 65,536 a generation


def messages_key(generation: int, message_sid: str) -> str:
    """Name the hash of a generation holding a sent message's record: its id -> "RANKstatus|error|flow".

    No number in it: a status callback carries the number itself. Small hashes of short fields,
    as states are (bot/states.py); a generation expires whole, the one before it at the latest
    35 days after it ends.
    """
    bucket = f"{zlib.crc32(message_sid.encode()):08x}"[-MESSAGE_BUCKETS:]
    return key_for("messages", str(generation), bucket)


def costs_key(flow_id: str) -> str:
    return key_for("costs", flow_id)  # hash: "day|kind|segments" -> messages sent; no number; purge keeps it


def answers_key(message_sid: str) -> str:
    return key_for("answers", message_sid)  # hash: the answers reconcile sends late to an inbound text, claimed


OUTBOX_KEY = key_for("outbox")


def operator_key(name: str) -> str:
    return key_for("operator", name)  # hash: the console operator's argon2 hash, when added


def failures_key(name: str) -> str:
    return key_for("operator-failures", name)  # sign-in attempts failed (or being checked) in the lock's window


def sign_in_failures_key(hour: int) -> str:
    return key_for("sign-in-failures", str(hour))  # hash: "address kind" -> failed sign-ins that hour


TEXTS_KEY = key_for("texts")  # hash: reference -> a flow's text the ledger names by it (bot/references.py)
EXPORTS_KEY = key_for("exports")  # hash: path of a file an export wrote -> when, and its sha256 (JSON)
OPERATORS_KEY = key_for("operators")  # set: every console operator's name
AUDIT_KEY = key_for("audit")  # stream: what operators did in the console, kept a year (bot/audit.py)
LIMITS_KEY = key_for("limits")  # prefix of the sign-in throttle's keys, one per client address (the `limits` library)
ACCESS_KEY = key_for("access")  # stream, uncapped: who touched personal data, and on which request (bot/audit.py)
COMPACTION_WANTED_KEY = key_for("compaction", "wanted")  # counter: erasures and purges so far (bot/compaction.py)
COMPACTION_COVERED_KEY = key_for("compaction", "covered")  # "count|when": those a rewrite since went through for
# "count|run id|when|Redis's second|kinds": the rewrite asked for last, until Redis is seen to have finished it
COMPACTION_STARTED_KEY = key_for("compaction", "started")
COMPACTION_TRIED_KEY = key_for("compaction", "tried")  # when a rewrite was last asked for, whatever came of it
RIGHTS_KEY = key_for("rights-requests")  # sorted set: rights request refs, by the day received (ordinal)


def rights_key(ref: str) -> str:
    return key_for("rights-request", ref)  # hash: one rights request (bot/rights_requests.py)


def rights_actions_key(ref: str) -> str:
    return key_for("rights-actions", ref)  # list: what was done on a rights request, as JSON, oldest first


def voter_link_key(token_hash: str) -> str:
    return key_for("voter-link", token_hash)  # string, 15 min: a one-time link's holder (JSON, the number in it)


def voter_page_key(session_hash: str) -> str:
    return key_for("voter-page", session_hash)  # string, minutes: the page session a used link opened (JSON)


def voter_keys_key(digest: str) -> str:
    return key_for("voter-keys", digest)  # set: the link and page keys naming a number, for erasure to find


def voter_asks_key(digest: str) -> str:
    return key_for("voter-asks", digest)  # counter, 1 h: links a number asked for (rate limit)


def voter_client_key(address: str) -> str:
    return key_for("voter-client", address)  # counter, minutes: voter-page requests from one address


def voter_sid_key(message_sid: str) -> str:
    return key_for("voter-sid", message_sid)  # the rights request an inbound text opened (a retried text finds it)
