"""The proof holds against someone with Redis access, and a third party checks it without Accord."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from bot import Accord, checkpoints, merkle, references, states
from bot.cli import Services, main
from bot.config import Config, ConfigError
from bot.flows import Flow
from bot.keys import TEXTS_KEY, base_key, head_key, ledger_key, person_key, subject_slot, suppression_key
from bot.ledger import lp, sha1, stored_fields
from tests.conftest import SMS, as_stored

VOTER = "+33612980001"
NEIGHBOUR = "+33612980002"
ROOT = Path(__file__).resolve().parent.parent


def run(accord: Accord, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), obj=Services(accord), catch_exceptions=False)


@pytest.fixture
def flow(accord: Accord):
    return accord.flows["demo"]


@pytest.fixture
def talked(accord: Accord, flow, sms: SMS) -> None:
    """Two voters asked; ours says NON then OUI then STOP, the other OUI."""
    for phone in (VOTER, NEIGHBOUR):
        accord.store.claim(flow, phone, window_open=True)
    sms.send(VOTER, "non")
    sms.send(NEIGHBOUR, "oui")
    sms.send(VOTER, "oui")
    sms.send(VOTER, "stop")


def personal(accord: Accord, redis_client: redis.Redis, phone: str = VOTER) -> tuple[str, dict[str, dict]]:
    """Return the voter's person key and their personal fields by "flow|entry"."""
    key = person_key(accord.store.pid(accord.store.digest(phone)).decode())
    return key, {name.decode(): stored_fields(raw) for name, raw in redis_client.hgetall(key).items()
                 if name != b"pid"}


def entry_with(fields: dict[str, dict], event: str) -> str:
    return next(name for name, value in fields.items() if value["event"] == event)


def forge(redis_client: redis.Redis, flow_id: str, person: str, target: str, change) -> None:
    """Change one entry's personal fields and recompute its commitment and every hash after it,
    entry ids kept: what an operator with Redis access can do to the chain alone."""
    entries = redis_client.xrange(ledger_key(flow_id))
    redis_client.delete(ledger_key(flow_id))
    head = b""
    for entry_id, fields in entries:
        name = f"{flow_id}|{entry_id.decode()}"
        if name == target:
            values = change(stored_fields(redis_client.hget(person, name)))
            redis_client.hset(person, name, as_stored(values))
            committed = [str(values[k]).encode() for k in ("phone", "event", "state", "text", "sid", "reply")]
            fields[b"commit"] = sha1(values["salt"].encode() + lp(committed))
        fields[b"prev"] = head
        fields[b"hash"] = head = sha1(lp([fields[k] for k in (b"at", b"flow", b"flow_hash", b"kind", b"pid",
                                                                 b"commit", b"prev")]))
        redis_client.xadd(ledger_key(flow_id), fields, id=entry_id)
    redis_client.set(head_key(flow_id), head)


# The tree itself (RFC 6962), against its definition.

def reference_root(leaves: list[bytes]) -> bytes:
    """MTH as RFC 6962 2.1 writes it, recursively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + reference_root(leaves[:split]) + reference_root(leaves[split:])).digest()


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=70, unique=True), st.data())
def test_every_leaf_is_proven_in_the_tree_and_no_other(data_items, data):
    leaves = [merkle.leaf_hash(item) for item in data_items]
    head = merkle.root(leaves)
    assert head == reference_root(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    path = merkle.inclusion_proof(leaves, index)
    assert merkle.included(leaves[index], index, len(leaves), path, head)
    assert not merkle.included(merkle.leaf_hash(b"forged"), index, len(leaves), path, head)
    if len(leaves) > 1:
        other = data.draw(st.integers(0, len(leaves) - 1).filter(lambda i: i != index))
        assert not merkle.included(leaves[index], other, len(leaves), path, head)


# Tamper evidence through `consent verify`.

def test_deleting_one_entry_s_personal_fields_is_caught(accord, flow, talked, redis_client):
    person, fields = personal(accord, redis_client)
    stop = entry_with(fields, "in:STOP")
    redis_client.hdel(person, stop)  # the STOP gone, the YES left to show
    result = run(accord, "consent", "verify", flow.id)
    assert result.exit_code == 1
    assert f"broken at entry {stop.partition('|')[2]}" in result.output


def append_entry(redis_client: redis.Redis, flow: Flow, values: dict[str, str]) -> str:
    """Append an entry with no number to the flow's ledger, chained as the scripts chain it, as someone
    with Redis access (and Accord's source) can; return its id."""
    salt = "forged.1"
    committed = [values.get(k, "").encode() for k in ("phone", "event", "state", "text", "sid", "reply")]
    prev = redis_client.get(head_key(flow.id)) or b""
    fields = {b"at": b"%.3f" % time.time(), b"flow": flow.id.encode(),
              b"flow_hash": flow.content_hash.encode(), b"kind": values["event"].partition(":")[0].encode(),
              b"pid": b"-", b"commit": sha1(salt.encode() + lp(committed)), b"prev": prev}
    fields[b"hash"] = sha1(lp([fields[k] for k in (b"at", b"flow", b"flow_hash", b"kind", b"pid", b"commit",
                                                    b"prev")]))
    entry_id = redis_client.xadd(ledger_key(flow.id), fields).decode()
    redis_client.hset(person_key("-"), f"{flow.id}|{entry_id}",
                      as_stored({"phone": "", "state": "", "sid": "", "reply": "", **values, "salt": salt}))
    redis_client.set(head_key(flow.id), fields[b"hash"])
    return entry_id


@pytest.mark.parametrize("record", [
    "1 entries erased: {id}",
    "1 entries erased",  # as erasures were recorded before they named entries
])
def test_an_objection_deleted_under_a_forged_erasure_is_caught(accord, flow, talked, redis_client, record):
    # The STOP's personal fields deleted and an erasure of that one entry appended: the YES still
    # shows, as if the voter never objected. Accord's erasure empties all a person's entries in a flow.
    person, fields = personal(accord, redis_client)
    stop = entry_with(fields, "in:STOP")
    redis_client.hdel(person, stop)
    forged = append_entry(redis_client, flow, {"event": "erasure",
                                               "text": record.format(id=stop.partition("|")[2])})
    assert any(value["event"] == "in:YES" for value in personal(accord, redis_client)[1].values())
    result = run(accord, "consent", "verify", flow.id)
    assert result.exit_code == 1
    assert f"broken at entry {forged}" in result.output


def test_an_erasure_the_ledger_records_still_verifies(accord, flow, talked):
    assert run(accord, "person", "erase", VOTER, "--yes").exit_code == 0
    result = run(accord, "consent", "verify", flow.id)
    assert result.exit_code == 0, result.output


def test_no_turned_into_yes_with_every_hash_recomputed_is_caught_by_the_checkpoint(accord, flow, talked,
                                                                                   redis_client):
    assert run(accord, "ledger", "checkpoint", flow.id).exit_code == 0
    person, fields = personal(accord, redis_client)
    refusal = entry_with(fields, "in:NO")
    forge(redis_client, flow.id, person, refusal,
          lambda v: {**v, "event": "in:YES", "state": "asked>consented", "text": "oui"})
    assert accord.store.verify_ledger(flow.id) is None  # the chain alone is fooled
    result = run(accord, "consent", "verify", flow.id)
    assert result.exit_code == 1
    assert "do not hash to the checkpointed root" in result.output
    # Nor will a new checkpoint cover it up.
    result = run(accord, "ledger", "checkpoint", flow.id)
    assert result.exit_code == 1 and "the ledger was rewritten" in result.output


def test_a_checkpoint_signed_by_another_key_or_edited_is_refused(accord, flow, talked, tmp_path):
    assert run(accord, "ledger", "checkpoint", flow.id).exit_code == 0
    filed = accord.config.instance_dir / "checkpoints" / f"{flow.id}.jsonl"
    line = json.loads(filed.read_text())
    line["checkpoint"]["size"] -= 1  # an edit: the signature no longer holds
    edited = tmp_path / "edited.jsonl"
    edited.write_text(json.dumps(line) + "\n")
    result = run(accord, "consent", "verify", flow.id, "--checkpoints", str(edited))
    assert result.exit_code == 1 and "signature does not hold" in result.output
    result = run(accord, "consent", "verify", flow.id, "--key", "A" * 43 + "=")
    assert result.exit_code == 1 and "another key" in result.output


def test_verify_reports_what_the_latest_checkpoint_covers(accord, flow, talked, sms: SMS):
    assert run(accord, "ledger", "checkpoint", flow.id).exit_code == 0
    sms.send(NEIGHBOUR, "stop")
    result = run(accord, "consent", "verify", flow.id)
    assert result.exit_code == 0, result.output
    assert "Merkle root rebuilt from the first entry" in result.output
    assert "1 entry since, not yet checkpointed" in result.output  # the neighbour's STOP


# The bundle, checked by the standalone verifier in a folder of its own.

@pytest.fixture
def verifier(tmp_path: Path) -> Path:
    """The verifier copied alone, as a third party would hold it."""
    folder = tmp_path / "auditor"
    folder.mkdir()
    return Path(shutil.copy(ROOT / "bot" / "verifier.py", folder / "verifier.py"))


def check(verifier: Path, bundle: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-I", str(verifier), str(bundle), *extra], capture_output=True, text=True,
                          cwd=verifier.parent, timeout=60)


@pytest.fixture
def bundle(accord, flow, talked, tmp_path) -> Path:
    path = tmp_path / "bundle.json"
    result = run(accord, "consent", "export", flow.id, "--phone", VOTER, "--bundle", str(path))
    assert result.exit_code == 0, result.output
    return path


def test_a_real_bundle_passes_the_standalone_verifier(bundle, verifier, accord):
    done = check(verifier, bundle)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK: every check passed" in done.stdout
    made = json.loads(bundle.read_text())
    events = [entry["personal"]["event"] for entry in made["entries"]]
    assert events[-1] == "in:STOP" and "in:NO" in events and "in:YES" in events
    assert all(entry["personal"]["phone"] == VOTER for entry in made["entries"])
    assert NEIGHBOUR not in bundle.read_text()  # nobody else's data
    assert list(made["flow_versions"].values()) == [accord.flows["demo"].canonical]
    key = made["key"]
    assert check(verifier, bundle, "--key", key).returncode == 0
    assert bundle.stat().st_mode & 0o077 == 0


def tampered(bundle: Path, change) -> Path:
    made = json.loads(bundle.read_text())
    change(made)
    path = bundle.with_name("tampered.json")
    path.write_text(json.dumps(made))
    return path


def entry(made: dict, event: str) -> dict:
    return next(e for e in made["entries"] if e["personal"]["event"] == event)


def recompute(found: dict) -> None:
    """Recompute an entry's commitment and chain hash after its fields were changed."""
    personal, stream = found["personal"], found["stream"]
    values = [str(personal[k]).encode() for k in ("phone", "event", "state", "text", "sid", "reply")]
    stream["commit"] = sha1(personal["salt"].encode() + lp(values)).decode()
    stream["hash"] = sha1(lp([stream[k].encode() for k in ("at", "flow", "flow_hash", "kind", "pid", "commit",
                                                           "prev")])).decode()


def no_into_yes(made: dict) -> None:
    found = entry(made, "in:NO")
    found["personal"].update(event="in:YES", state="asked>consented", text="oui")
    recompute(found)


@pytest.mark.parametrize(("tampering", "failure"), [
    (lambda m: entry(m, "in:STOP")["personal"].update(text="oui"), "not the ones committed to"),
    (lambda m: entry(m, "in:STOP")["personal"].pop("text"), "not the ones committed to"),
    (no_into_yes, "not in the tree the checkpoint signs"),
    (lambda m: m["checkpoint"].update(size=m["checkpoint"]["size"] + 1), "signature does not hold"),
    (lambda m: m.update(flow="presidentielle-2027"), "not 'presidentielle-2027'"),
], ids=["field changed", "field deleted", "NO into YES, hashes recomputed", "checkpoint edited",
        "another flow's bundle"])
def test_the_verifier_refuses_each_tampering(bundle, verifier, tampering, failure):
    done = check(verifier, tampered(bundle, tampering))
    assert done.returncode == 1
    assert failure in done.stdout


def test_the_verifier_refuses_a_checkpoint_swapped_for_an_earlier_one(accord, flow, sms: SMS, tmp_path, verifier):
    accord.store.claim(flow, VOTER, window_open=True)
    sms.send(VOTER, "oui")
    assert run(accord, "ledger", "checkpoint", flow.id).exit_code == 0
    earlier = json.loads((accord.config.instance_dir / "checkpoints" / f"{flow.id}.jsonl").read_text())
    sms.send(VOTER, "stop")  # after it: the earlier checkpoint never saw the STOP
    path = tmp_path / "bundle.json"
    assert run(accord, "consent", "export", flow.id, "--phone", VOTER, "--bundle", str(path)).exit_code == 0

    def swap(m):
        m["checkpoint"], m["signature"] = earlier["checkpoint"], earlier["signature"]

    done = check(verifier, tampered(path, swap))
    assert done.returncode == 1 and "not in the tree the checkpoint signs" in done.stdout


def test_a_ledger_with_an_entry_dropped_gives_no_bundle(accord, flow, talked, redis_client, tmp_path):
    assert run(accord, "ledger", "checkpoint", flow.id).exit_code == 0
    person, fields = personal(accord, redis_client)
    stop = entry_with(fields, "in:STOP")
    redis_client.xdel(ledger_key(flow.id), stop.partition("|")[2])
    redis_client.hdel(person, stop)
    forge(redis_client, flow.id, person, "", lambda v: v)  # every hash recomputed around the gap
    result = run(accord, "consent", "export", flow.id, "--phone", VOTER, "--bundle", str(tmp_path / "b.json"))
    assert result.exit_code == 1 and "the ledger was rewritten" in result.output
    assert not (tmp_path / "b.json").exists()


def test_the_signing_key_is_made_once_readable_by_its_owner_only(accord, flow, talked):
    assert run(accord, "ledger", "checkpoint").exit_code == 0
    key = accord.config.signing_key_path
    made = key.read_text()
    assert key.stat().st_mode & 0o077 == 0
    assert run(accord, "ledger", "checkpoint").exit_code == 0
    assert key.read_text() == made


def test_a_signing_key_setting_that_is_no_file_is_named(tmp_path):
    environ = {"LEDGER_KEY_FILE": str(tmp_path), "INSTANCE_DIR": str(tmp_path / "instance"),
               "FLOWS_DIR": str(ROOT / "flows")}
    with pytest.raises(ConfigError, match="LEDGER_KEY_FILE"):
        Config.from_env(environ, dotenv=tmp_path / "absent.env")


def test_a_forged_archive_count_does_not_hide_a_rewrite(accord, flow, talked, redis_client):
    assert run(accord, "ledger", "checkpoint", flow.id).exit_code == 0
    person, fields = personal(accord, redis_client)
    forge(redis_client, flow.id, person, entry_with(fields, "in:NO"),
          lambda v: {**v, "event": "in:YES", "state": "asked>consented", "text": "oui"})
    redis_client.hset(base_key(flow.id), mapping={"last": "0-1", "hash": "", "count": 10_000, "file": "x.gz"})
    result = run(accord, "consent", "verify", flow.id)
    assert result.exit_code == 1
    assert "more than the" in result.output or "broken" in result.output


def test_checkpoints_made_at_once_keep_one_history(accord, flow, talked):
    from concurrent.futures import ThreadPoolExecutor

    keeper = checkpoints.keeper_for(accord.store.redis, accord.config.instance_dir, accord.config.signing_key_path)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: keeper.make(flow.id, accord.store.clock()), range(8)))
    assert len(list(keeper.history(flow.id))) == 8  # each follows the one before it
    assert run(accord, "consent", "verify", flow.id).exit_code == 0


def test_the_words_of_a_text_changed_in_redis_are_caught_and_shown_nowhere(accord, flow, talked, redis_client):
    # The ledger names the consent request by a reference to its words, kept in one table: changing
    # the words there changes what every proof says the voter was asked, and commits nothing.
    ref = references.reference(flow.texts.consent_request)
    assert redis_client.hexists(TEXTS_KEY, ref)
    forged = "Demo : recevez nos offres commerciales ? Repondez OUI. STOP au 38000"
    redis_client.hset(TEXTS_KEY, ref, forged)
    result = run(accord, "consent", "verify", flow.id)
    assert result.exit_code == 1 and "broken at entry" in result.output
    assert forged not in run(accord, "consent", "export", flow.id, "--phone", VOTER).output
    assert forged not in run(accord, "person", "show", VOTER).output


def test_a_number_pointed_at_another_voters_entries_gets_none_of_their_consent(accord, flow, talked, sms: SMS,
                                                                                redis_client):
    # Which random id stands for a number is no part of any chain: pointing a voter who said NON at
    # the id of one who said OUI changes no entry, and `consent verify` has nothing to find.
    refuser = "+33612980003"
    accord.store.claim(flow, refuser, window_open=True)
    sms.send(refuser, "non")
    neighbour = accord.store.pid(accord.store.digest(NEIGHBOUR))
    bucket, field = subject_slot(accord.store.digest(refuser))
    redis_client.hset(bucket, field, neighbour)
    assert run(accord, "consent", "verify", flow.id).exit_code == 0
    exported = run(accord, "consent", "export", flow.id, "--phone", refuser).output
    (record,) = [json.loads(line) for line in exported.splitlines() if line.startswith("{")]
    assert record["phone"] == refuser and "YES" not in [answer["event"] for answer in record["answers"]]
    assert NEIGHBOUR not in run(accord, "person", "show", refuser).output


def test_a_state_edited_in_redis_is_not_the_proofs_outcome(accord, flow, talked, redis_client):
    # A number's state is no part of any chain: made "consented" in Redis after the voter's STOP,
    # it must not become what the proof of consent says came of it.
    redis_client.hset(*states.slot(flow.id, VOTER), states.encode("consented", accord.store.clock(),
                                                                 accord.store.clock()))
    redis_client.hdel(suppression_key(flow.controller_id), accord.store.digest(VOTER))
    assert accord.store.state(flow, VOTER) == "consented"
    exported = run(accord, "consent", "export", flow.id, "--phone", VOTER).output
    assert json.loads(exported.splitlines()[0])["outcome"] == "opted_out"
    exported = run(accord, "consent", "export", flow.id, "--phone", VOTER, "--format", "csv").output
    assert next(csv.DictReader(io.StringIO(exported)))["outcome"] == "opted_out"
