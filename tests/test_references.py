"""The ledger names the flow's texts by reference, reads them back in full, and a bundle proves the words."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot import Accord, references
from bot.cli import Services, main
from bot.keys import person_key
from bot.ledger import stored_fields
from tests.conftest import SMS

VOTER = "+33612980001"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def flow(accord: Accord):
    return accord.flows["demo"]


def stored(accord: Accord, phone: str) -> list[dict]:
    """Return the personal fields Redis holds for a number, as stored."""
    redis = accord.store.redis
    key = person_key(accord.store.pid(accord.store.digest(phone)).decode())
    return [stored_fields(raw) for name, raw in redis.hgetall(key).items() if name != b"pid"]


def test_a_request_is_held_once_per_flow_not_once_per_number(accord, flow, sms: SMS):
    accord.store.claim(flow, VOTER, window_open=True)
    accord.store.record_sent(flow, VOTER, "SM" + "1" * 32, flow.texts.consent_request)
    sms.send(VOTER, "oui")
    held = {entry["event"]: entry for entry in stored(accord, VOTER)}
    ref = references.reference(flow.texts.consent_request)
    assert held["ask"]["text"] == held["sent"]["text"] == ref
    assert json.loads(held["in:YES"]["reply"]) == [references.reference(flow.texts.confirmation),
                                                  references.reference(flow.texts.content[0])]
    raw = json.dumps(stored(accord, VOTER), ensure_ascii=False)
    assert flow.texts.consent_request not in raw and flow.texts.content[0] not in raw
    # Read back, every text is in full, and the chain holds over the references.
    read = {entry["event"]: entry for entry in accord.store.person(VOTER)["demo"]}
    assert read["ask"]["text"] == read["sent"]["text"] == flow.texts.consent_request
    assert json.loads(read["in:YES"]["reply"]) == [flow.texts.confirmation, flow.texts.content[0]]
    assert [e["text"] for _, e in accord.store.ledger("demo") if e.get("event") == "sent"] == [
        flow.texts.consent_request]
    assert accord.store.verify_ledger("demo") is None


def test_a_voter_s_words_stay_as_they_came_even_in_the_shape_of_a_reference(accord, flow, sms: SMS):
    accord.store.claim(flow, VOTER, window_open=True)
    lookalike = references.reference(flow.texts.consent_request)
    sms.send(VOTER, lookalike)
    said = [entry for entry in accord.store.person(VOTER)["demo"] if entry["event"].startswith("in:")]
    assert [entry["text"] for entry in said] == [lookalike]


def test_content_released_is_named_and_costs_count_its_words(accord, flow, sms: SMS):
    accord.store.claim(flow, VOTER, window_open=True)
    sms.send(VOTER, "oui")
    accord.store.record_sent(flow, VOTER, "SM" + "2" * 32, flow.texts.content[0], content=True)
    texts = [entry["text"] for entry in stored(accord, VOTER) if entry["event"] == "sent"]
    assert texts == [references.reference(flow.texts.content[0])]


@pytest.fixture
def bundle(accord: Accord, flow, sms: SMS, tmp_path: Path) -> Path:
    accord.store.claim(flow, VOTER, window_open=True)
    accord.store.record_sent(flow, VOTER, "SM" + "3" * 32, flow.texts.consent_request)
    sms.send(VOTER, "oui")
    path = tmp_path / "bundle.json"
    result = CliRunner().invoke(main, ["consent", "export", flow.id, "--phone", VOTER, "--bundle", str(path)],
                                obj=Services(accord), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return path


def verify(tmp_path: Path, bundle: Path) -> subprocess.CompletedProcess:
    """Run the verifier copied alone, as a third party holds it."""
    folder = tmp_path / "auditor"
    folder.mkdir(exist_ok=True)
    verifier = shutil.copy(ROOT / "bot" / "verifier.py", folder / "verifier.py")
    return subprocess.run([sys.executable, "-I", str(verifier), str(bundle)], capture_output=True, text=True,
                          cwd=folder, timeout=60)


def test_a_bundle_carries_the_words_its_references_stand_for(accord, flow, bundle, tmp_path):
    made = json.loads(bundle.read_text())
    ref = references.reference(flow.texts.consent_request)
    assert made["texts"][ref] == flow.texts.consent_request
    done = verify(tmp_path, bundle)
    assert done.returncode == 0, done.stdout + done.stderr
    assert repr(flow.texts.consent_request) in done.stdout  # the auditor reads the words, not the hash


def test_the_verifier_refuses_words_that_are_not_the_referenced_ones(flow, bundle, tmp_path):
    made = json.loads(bundle.read_text())
    ref = references.reference(flow.texts.consent_request)
    made["texts"][ref] = "Acceptez-vous de recevoir nos messages ? Répondez OUI."  # another question
    bundle.write_text(json.dumps(made))
    done = verify(tmp_path, bundle)
    assert done.returncode == 1
    assert f"text {ref}: its words do not hash to it" in done.stdout


def test_a_flow_version_is_named_by_its_whole_sha256_and_one_named_by_its_first_16_digits_still_checks(
        flow, bundle, tmp_path):
    # 16 hex digits are 64 bits: two flow files sharing them (a purpose swapped in a bundle) take 2^32 tries.
    made = json.loads(bundle.read_text())
    assert flow.content_hash in made["flow_versions"] and len(flow.content_hash) == 64
    # A version an earlier version logged, by its first 16 digits, checks; one whose data is not it, not.
    made["flow_versions"][flow.content_hash[:16]] = flow.canonical
    made["flow_versions"]["0" * 16] = flow.canonical
    bundle.write_text(json.dumps(made))
    done = verify(tmp_path, bundle)
    assert done.returncode == 1 and done.stdout.count("its data does not hash to it") == 1
    assert f"flow version {'0' * 16}: its data does not hash to it" in done.stdout


def test_a_person_s_ledger_fields_stay_a_compact_hash(accord, flow, sms: SMS):
    """Two entries of about 180 bytes each: packed, as the embedded Redis and the README's settings keep them."""
    accord.store.claim(flow, VOTER, window_open=True)
    accord.store.record_sent(flow, VOTER, "SM" + "4" * 32, flow.texts.consent_request)
    sms.send(VOTER, "oui")
    redis = accord.store.redis
    key = person_key(accord.store.pid(accord.store.digest(VOTER)).decode())
    assert max(len(raw) for raw in redis.hvals(key)) > 64  # past Redis's default for a packed value
    assert redis.object("encoding", key) in (b"ziplist", b"listpack")
