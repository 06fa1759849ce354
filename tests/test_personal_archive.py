"""Archived entries' personal fields leave Redis sealed per number, and stay as readable, as provable and
as erasable as they were."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from bot import Accord, archivist, personal_archive, sealing
from bot.keys import person_key, personal_pending_key
from bot.states import base36
from tests.conftest import SMS, answers, forget_answer, forget_seen, kept_answer
from tests.test_archivist import run

ROOT = Path(__file__).resolve().parent.parent
VOTERS = [f"+336129800{n:02d}" for n in range(12)]
YES = "SM" + "a" * 32


@pytest.fixture
def config(config, tmp_path: Path):
    return replace(config, archive_dir=tmp_path / "ledger-archive")


@pytest.fixture
def talked(accord: Accord, sms: SMS) -> None:
    """Twelve numbers asked, the first answering OUI."""
    flow = accord.flows["demo"]
    for phone in VOTERS:
        accord.store.claim(flow, phone, window_open=True)
    sms.send(VOTERS[0], "oui", sid=YES)


def pid(accord: Accord, phone: str) -> str:
    return accord.store.pid(accord.store.digest(phone)).decode()


def sealed_files(config) -> list[Path]:
    return sorted(config.archive_dir.glob("personal.*"))


def test_the_upkeep_moves_archived_personal_fields_off_redis_and_they_read_back_the_same(accord, talked, config):
    held = {phone: accord.store.person(phone) for phone in VOTERS}
    archivist.keep_up(accord, above=5, keep=0)
    redis = accord.store.redis
    assert not redis.exists(*[person_key(pid(accord, phone)) for phone in VOTERS])
    assert {phone: accord.store.person(phone) for phone in VOTERS} == held  # the times read back from the files
    assert not redis.smembers(personal_pending_key("demo"))
    # The files hold no number and no word of theirs.
    data = b"".join(path.read_bytes() for path in sealed_files(config))
    # (Whole numbers and quoted or colon-bearing words: base64 has no quote nor colon, and 12 given characters.)
    assert data and not [phone for phone in VOTERS if phone.encode() in data]
    assert b'"oui"' not in data and b"in:YES" not in data and b'"ask"' not in data


def test_a_bundle_of_an_archived_number_verifies_without_accord(accord, talked, tmp_path):
    archivist.keep_up(accord, above=5, keep=0)
    bundle = tmp_path / "bundle.json"
    run(accord, "consent", "export", "demo", "--phone", VOTERS[0], "--bundle", str(bundle))
    assert {entry["personal"]["event"] for entry in json.loads(bundle.read_text())["entries"]} == {"ask", "in:YES"}
    auditor = tmp_path / "auditor"
    auditor.mkdir()
    (auditor / "verifier.py").write_bytes((ROOT / "bot" / "verifier.py").read_bytes())
    done = subprocess.run([sys.executable, "-I", str(auditor / "verifier.py"), str(bundle)], capture_output=True,
                          text=True, cwd=auditor, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_erased_number_s_archived_lines_open_for_nobody(accord, talked, config):
    voter, sent = VOTERS[0], "SM" + "c" * 32
    accord.store.record_sent(accord.flows["demo"], voter, sent, accord.flows["demo"].texts.consent_request)
    archivist.keep_up(accord, above=5, keep=0)
    redis = accord.store.redis
    record = sealing.parse(redis.hget(*sealing.slot("demo", voter)))
    person = pid(accord, voter)
    assert personal_archive.held(redis, config.archive_dir, "demo", voter, person)
    run(accord, "person", "erase", voter, "--yes")
    assert accord.store.person(voter) == {}
    assert redis.hget(*sealing.slot("demo", voter)) is None
    # The key is nowhere in Redis any more: whoever holds the files and Redis opens nothing. Nor is
    # the id of the text sent to the number, which its archived entry named.
    for key in redis.scan_iter(count=1000):
        kind = redis.type(key)
        values = (redis.hvals(key) if kind == b"hash" else [redis.get(key)] if kind == b"string" else [])
        assert not [value for value in values if value and record.key in value], key
        fields = redis.hkeys(key) if kind == b"hash" else []
        assert sent.encode() not in key and sent.encode() not in fields, key
    # Its line is still in the file, and does not open under any key Redis holds.
    lines = [json.loads(line) for path in sealed_files(config) for line in path.read_bytes().splitlines()]
    mine = [line for line in lines if line["pid"] == person]
    assert mine
    for other in VOTERS[1:]:
        key = sealing.parse(redis.hget(*sealing.slot("demo", other))).key
        with pytest.raises(sealing.SealError):
            sealing.unseal(key, "demo", person, mine[0]["sealed"])


def test_retention_of_a_flow_makes_its_archived_lines_unreadable(accord, talked, config):
    archivist.keep_up(accord, above=5, keep=0)
    voter, flow = VOTERS[1], accord.flows["demo"]
    person = pid(accord, voter)
    assert personal_archive.held(accord.store.redis, config.archive_dir, "demo", voter, person)
    accord.store.erase([flow], voter, whole=False, objection=False)  # what `purge` does when it is due
    assert accord.store.redis.hget(*sealing.slot("demo", voter)) is None
    assert personal_archive.held(accord.store.redis, config.archive_dir, "demo", voter, person) == {}
    assert accord.store.person(voter) == {}


@pytest.mark.parametrize("known_for_good", [True, False], ids=["known for good", "by its seal record alone"])
def test_a_text_replayed_after_its_entry_was_archived_changes_nothing(accord, talked, sms, redis_client,
                                                                      known_for_good):
    archivist.keep_up(accord, above=5, keep=0)
    flow, voter = accord.flows["demo"], VOTERS[0]
    assert not redis_client.exists(person_key(pid(accord, voter)))  # its "oui" is in a sealed file only
    sms.send(voter, "stop", sid="SM" + "b" * 32)
    forget_answer(redis_client, YES)  # as 35 to 70 days do
    if not known_for_good:
        forget_seen(accord.store, YES)
    ledger = accord.store.ledger(flow.id)
    assert answers(sms.send(voter, "oui", sid=YES)) == []
    assert accord.store.state(flow, voter) == "opted_out" and accord.store.ledger(flow.id) == ledger


def test_erasure_forgets_the_answer_kept_under_an_archived_text(accord, talked, redis_client):
    archivist.keep_up(accord, above=5, keep=0)
    assert b"consented" in kept_answer(redis_client, YES)[0]
    run(accord, "person", "erase", VOTERS[0], "--yes")
    kept = kept_answer(redis_client, YES)[0]
    assert b"consented" not in kept and b"asked" not in kept


def test_a_number_erased_while_its_fields_move_is_not_brought_back(accord, talked, config, monkeypatch):
    voter = VOTERS[2]
    person = pid(accord, voter)
    sealed = sealing.seal

    def erase_first(key, flow_id, pid_, entries):  # the erasure lands between the key's making and the move
        if pid_ == person and accord.store.redis.hexists(*sealing.slot(flow_id, voter)):
            accord.store.erase([accord.flows[flow_id]], voter, whole=True, objection=True)
        return sealed(key, flow_id, pid_, entries)

    monkeypatch.setattr(sealing, "seal", erase_first)
    archivist.keep_up(accord, above=5, keep=0)
    redis = accord.store.redis
    assert redis.hget(*sealing.slot("demo", voter)) is None and not redis.exists(person_key(person))
    assert accord.store.person(voter) == {}
    assert accord.store.person(VOTERS[3])  # the others moved


def test_a_move_cut_short_is_done_by_the_next_upkeep_and_nothing_is_lost(accord, talked, config, monkeypatch):
    held = {phone: accord.store.person(phone) for phone in VOTERS}

    def cut(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(personal_archive, "_line_at", cut)
    archivist.keep_up(accord, above=5, keep=0)
    redis = accord.store.redis
    assert redis.smembers(personal_pending_key("demo"))  # still to do
    assert redis.exists(person_key(pid(accord, VOTERS[0])))  # nothing left Redis
    assert not sealed_files(config)
    monkeypatch.undo()
    archivist.keep_up(accord, above=5, keep=0)
    assert not redis.smembers(personal_pending_key("demo"))
    assert not redis.exists(person_key(pid(accord, VOTERS[0])))
    assert {phone: accord.store.person(phone) for phone in VOTERS} == held


def test_an_objector_s_fields_stay_in_redis_where_the_objection_list_reads_the_number(accord, talked, sms):
    voter = VOTERS[4]
    sms.send(voter, "stop")
    archivist.keep_up(accord, above=5, keep=0)
    assert accord.store.redis.exists(person_key(pid(accord, voter)))
    assert accord.store.redis.hget(*sealing.slot("demo", voter)) is None
    assert not accord.store.redis.exists(person_key(pid(accord, VOTERS[5])))


def test_retention_in_one_flow_keeps_what_another_flow_archived_of_the_number(accord, talked, config):
    demo, campaign = accord.flows["demo"], accord.flows["presidentielle-2027"]
    voter = VOTERS[6]
    accord.store.claim(campaign, voter, window_open=True)
    archivist.keep_up(accord, above=0, keep=0)
    held = accord.store.person(voter)
    assert set(held) == {"demo", campaign.id}
    assert not accord.store.redis.exists(person_key(pid(accord, voter)))  # both flows' entries archived
    accord.store.erase([demo], voter, whole=False, objection=False)
    assert accord.store.person(voter) == {campaign.id: held[campaign.id]}


def test_a_number_erased_before_its_key_is_made_gets_none(accord, talked, monkeypatch):
    voter = VOTERS[2]
    person = pid(accord, voter)
    grouped = personal_archive._numbers

    def erase_after_reading(redis, flow_id, chunk):  # its fields read, then the erasure lands
        found = grouped(redis, flow_id, chunk)
        accord.store.erase([accord.flows[flow_id]], voter, whole=True, objection=True)
        return found

    monkeypatch.setattr(personal_archive, "_numbers", erase_after_reading)
    archivist.keep_up(accord, above=5, keep=0)
    redis = accord.store.redis
    assert redis.hget(*sealing.slot("demo", voter)) is None and not redis.exists(person_key(person))
    assert accord.store.person(voter) == {}


def test_a_removed_flow_s_archived_entries_are_still_shown_and_erased(config, clock, tmp_path, redis_client):
    from tests.test_erasure import VOTER, flows_dir, services

    before, sms = services(config, clock, flows_dir(tmp_path, "before", alpha="", beta=""))
    beta = before.flows["beta"]
    before.store.claim(beta, VOTER, window_open=True)
    sms.send(VOTER, "oui", to=beta.sender, sid=YES)
    archivist.keep_up(before, above=0, keep=0)
    assert not redis_client.exists(person_key(pid(before, VOTER)))
    after, _ = services(config, clock, flows_dir(tmp_path, "after", alpha=""))
    shown = run(after, "person", "show", VOTER).output
    assert "(its flow file was removed)" in shown and "in:YES" in shown
    archived = sorted(entry["entry"] for entry in after.store.person(VOTER, ["beta"])["beta"])
    # The ask and the OUI: their sealed fields unreadable from now on, and the erasure names them.
    assert "beta: 2 ledger entries erased" in run(after, "person", "erase", VOTER, "--yes").output
    erasure = [fields["text"] for _, fields in after.store.ledger("beta") if fields["kind"] == "erasure"]
    assert erasure == [f"2 entries erased: {' '.join(archived)}"]
    assert after.store.person(VOTER, ["beta"]) == {} and redis_client.hget(*sealing.slot("beta", VOTER)) is None


def test_fields_erased_while_they_move_stay_erased_when_the_number_is_asked_again(accord, talked, monkeypatch):
    voter, flow = VOTERS[2], accord.flows["demo"]
    accord.store.claim(accord.flows["presidentielle-2027"], voter, window_open=True)  # keeps the person id
    erased = {entry["entry"] for entry in accord.store.person(voter)["demo"]}
    grouped = personal_archive._numbers

    def erase_and_ask_again(redis, flow_id, chunk):  # read, then erased by retention, then asked anew
        found = grouped(redis, flow_id, chunk)
        if any(person.phone == voter for person in found):
            accord.store.erase([flow], voter, whole=False, objection=False)
            redis.srem(f"accord:asked:{flow.id}", accord.store.digest(voter))  # as a new import's would
            accord.store.claim(flow, voter, window_open=True)
        return found

    monkeypatch.setattr(personal_archive, "_numbers", erase_and_ask_again)
    archivist.keep_up(accord, above=5, keep=0)
    monkeypatch.undo()
    assert not erased & {entry["entry"] for entry in accord.store.person(voter).get("demo", [])}
    record = sealing.parse(accord.store.redis.hget(*sealing.slot("demo", voter)))
    assert record is None or not record.files  # its new key opens none of the lines


def test_a_number_that_objects_while_its_fields_move_keeps_them_in_redis(accord, talked, sms, monkeypatch):
    voter = VOTERS[3]
    sealed = sealing.seal

    def stop_first(key, flow_id, pid_, entries):  # the STOP lands between the key's making and the move
        if pid_ == pid(accord, voter) and accord.store.state(accord.flows[flow_id], voter) != "opted_out":
            sms.send(voter, "stop")
        return sealed(key, flow_id, pid_, entries)

    monkeypatch.setattr(sealing, "seal", stop_first)
    archivist.keep_up(accord, above=5, keep=0)
    assert accord.store.redis.hexists(person_key(pid(accord, voter)), *[
        f"demo|{entry['entry']}" for entry in accord.store.person(voter)["demo"][:1]])
    # Its line, sealed under its key, stays in the file unnamed: no hidden entry, its fields in Redis.
    assert "chain intact" in run(accord, "consent", "verify", "demo").output


def test_the_proof_of_an_archived_number_is_the_one_taken_before(accord, talked):
    before = json.loads(run(accord, "consent", "export", "demo", "--phone", VOTERS[0]).stdout)
    archivist.keep_up(accord, above=5, keep=0)
    after = json.loads(run(accord, "consent", "export", "demo", "--phone", VOTERS[0]).stdout)
    assert after == before and after["requests"][0]["flow_hash"]


def test_fields_sealed_again_changed_are_named_by_consent_verify(accord, talked, config):
    archivist.keep_up(accord, above=5, keep=0)
    assert "chain intact" in run(accord, "consent", "verify", "demo").output
    # Whoever holds Redis holds the key: they open the voter's line, turn the OUI into a NON, seal it again.
    redis, voter = accord.store.redis, VOTERS[0]
    person, slot = pid(accord, voter), sealing.slot("demo", voter)
    record = sealing.parse(redis.hget(*slot))
    number, offset, length = record.files[0]
    path = sealed_files(config)[0]
    opened = sealing.unseal(record.key, "demo", person, json.loads(path.read_bytes()[offset:offset + length])["sealed"])
    forged = {entry_id: [raw.replace('"oui"', '"non"').replace("in:YES", "in:NO"), at]
              for entry_id, (raw, at) in opened.items()}
    assert forged != opened
    line = json.dumps({"pid": person, "sealed": sealing.seal(record.key, "demo", person, forged)}).encode()
    with path.open("ab") as out:
        start = out.tell()
        out.write(line + b"\n")
    was = f"@{base36(number)}.{base36(offset)}.{base36(length)}".encode()
    redis.hset(*slot, redis.hget(*slot).replace(was, f"@{base36(number)}.{base36(start)}.{base36(len(line))}".encode()))
    assert "in:NO" in run(accord, "person", "show", voter).output  # the forgery reads back
    verified = run(accord, "consent", "verify", "demo", code=1).output
    assert "are not the ones committed to" in verified


def test_a_seal_record_damaged_by_hand_is_named_by_consent_verify(accord, talked):
    archivist.keep_up(accord, above=5, keep=0)
    accord.store.redis.hset(*sealing.slot("demo", VOTERS[1]), "not a seal record")  # its lines unreadable now
    assert "the seal record of a number ending in 80001 cannot be read" in run(accord, "consent", "verify", "demo",
                                                                                 code=1).output


def test_a_machine_without_the_archive_folder_says_what_it_cannot_read(accord, talked, caplog):
    archivist.keep_up(accord, above=5, keep=0)
    accord.store.personal_dir = None  # a web machine that does not mount the workers' folder
    assert accord.store.person(VOTERS[0]) == {}
    assert "sealed in the archive folder, which this machine has none of" in caplog.text


def test_a_damaged_person_key_leaves_the_other_flows_upkeep_whole(accord, talked, caplog):
    campaign = accord.flows["presidentielle-2027"]
    accord.store.claim(campaign, VOTERS[7], window_open=True)
    accord.store.redis.delete(person_key(pid(accord, VOTERS[1])))
    accord.store.redis.set(person_key(pid(accord, VOTERS[1])), "not a hash")  # damaged by hand
    archivist.keep_up(accord, above=0, keep=0)
    assert "WRONGTYPE" in caplog.text
    assert accord.store.redis.xlen(f"accord:ledger:{campaign.id}") == 0  # archived all the same


def test_an_entry_hidden_by_taking_its_line_out_of_the_record_is_named_by_consent_verify(accord, talked):
    archivist.keep_up(accord, above=5, keep=0)
    redis, slot = accord.store.redis, sealing.slot("demo", VOTERS[0])
    record = sealing.parse(redis.hget(*slot))
    redis.hset(*slot, record.key)  # its OUI gone from `person show`, as if erased, with no erasure recorded
    assert "in:YES" not in run(accord, "person", "show", VOTERS[0]).output
    verified = run(accord, "consent", "verify", "demo", code=1).output
    assert "open under their number's key, though its record no longer names them" in verified


def test_lines_a_move_cut_short_left_behind_are_no_hidden_entries(accord, talked, monkeypatch):
    monkeypatch.setattr(personal_archive, "COMMIT_LUA", "return redis.error_reply('cut short')")
    archivist.keep_up(accord, above=5, keep=0)  # the file written and recorded, no record pointed at it
    monkeypatch.undo()
    archivist.keep_up(accord, above=5, keep=0)  # moved again, to a second file
    assert len(accord.store.redis.hgetall("accord:personal-files:demo")) == 2
    assert "chain intact" in run(accord, "consent", "verify", "demo").output


def test_lines_retention_left_behind_are_no_hidden_entries(accord, talked, clock):
    flow, voter = accord.flows["demo"], VOTERS[5]
    accord.store.claim(accord.flows["presidentielle-2027"], voter, window_open=True)  # keeps the person id
    archivist.keep_up(accord, above=0, keep=0)
    accord.store.erase([flow], voter, whole=False, objection=False)
    accord.store.redis.srem("accord:asked:demo", accord.store.digest(voter))  # as a new import's would
    accord.store.claim(flow, voter, window_open=True)
    archivist.keep_up(accord, above=0, keep=0)  # a new key: the old line opens under none
    assert "chain intact" in run(accord, "consent", "verify", "demo").output

