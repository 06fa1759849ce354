"""Archiving the ledger off Redis: files that carry the hash chain, a base in Redis, nothing lost if cut short."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result

from bot import Accord, archive, ledger
from bot.cli import Services, main
from bot.keys import base_key, costs_key, ledger_key
from bot.ledger import stored_fields
from bot.rounds import Origin
from tests.conftest import SMS, Clock, as_stored
from tests.test_proof import ORIGIN, start

VOTERS = [f"+3361298000{n}" for n in range(1, 5)]
LATE = "+33612980009"
LATER = Origin(source_type="broker", broker="ListeElec", contract="LE-2027-042", operator="dominique",
               file="second.csv", imported_at="2026-12-01T10:00:00+00:00")


def run(accord: Accord, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(main, list(args), obj=Services(accord), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def config(config, tmp_path_factory: pytest.TempPathFactory):
    """The instance (secrets, checkpoints) apart from tmp_path, where these tests write archives."""
    return dataclasses.replace(config, instance_dir=tmp_path_factory.mktemp("instance"))


@pytest.fixture
def flow(accord: Accord):
    return accord.flows["demo"]


def talk(accord: Accord, flow, sms: SMS, phone: str) -> None:
    """Ask a number, log the request's sending, and let the voter answer OUI."""
    assert accord.store.claim(flow, phone, window_open=True).dest == "asked"
    accord.store.record_sent(flow, phone, "SM" + phone[-8:] * 4, flow.texts.consent_request)
    sms.send(phone, "oui")


@pytest.fixture
def talked(accord: Accord, flow, sms: SMS) -> None:
    for phone in VOTERS:
        talk(accord, flow, sms, phone)


def export(accord: Accord, *args: str) -> list[dict]:
    return [json.loads(line) for line in run(accord, "consent", "export", "demo", *args).stdout.splitlines()]


def stream(redis_client: redis.Redis) -> list[tuple[bytes, dict[bytes, bytes]]]:
    return redis_client.xrange(ledger_key("demo"))


def lines(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", encoding="utf-8") as file:
        return [json.loads(line) for line in file]


def rewrite(path: Path, change) -> None:
    """Rewrite an archive file's lines, as someone tampering with it would."""
    changed = [line for entry in lines(path) if (line := change(entry)) is not None]
    with gzip.open(path, "wt", encoding="utf-8") as file:
        file.writelines(json.dumps(entry) + "\n" for entry in changed)


def test_archived_entries_leave_redis_as_stored_and_the_chain_verifies_from_the_files(
        accord, flow, talked, redis_client, tmp_path):
    before = stream(redis_client)
    output = run(accord, "ledger", "archive", "demo", "--to", str(tmp_path), "--keep", "2").output
    (path,) = tmp_path.glob("*.jsonl.gz")
    assert path.name == f"ledger.demo.{before[0][0].decode()}.{before[-3][0].decode()}.jsonl.gz"
    assert f"{len(before) - 2} entries" in output and path.name in output
    assert lines(path) == [{"id": entry_id.decode()} | {k.decode(): v.decode() for k, v in fields.items()}
                           for entry_id, fields in before[:-2]]
    assert stream(redis_client) == before[-2:]
    base = ledger.base(redis_client, "demo")
    assert (base.last, base.hash, base.count, base.file) == (
        before[-3][0].decode(), before[-3][1][b"hash"], len(before) - 2, path.name)
    assert stream(redis_client)[0][1][b"prev"] == base.hash
    plain = run(accord, "consent", "verify", "demo").output
    assert "2 entries, chain intact" in plain and f"{len(before) - 2} archived entries" in plain
    full = run(accord, "consent", "verify", "demo", "--archive", str(tmp_path)).output
    assert "chain intact" in full and "from its start" in full


def test_an_edited_line_in_an_archive_file_is_named(accord, flow, talked, redis_client, tmp_path):
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path), "--keep", "0")
    (path,) = tmp_path.glob("*.jsonl.gz")
    third = lines(path)[2]["id"]
    rewrite(path, lambda entry: {**entry, "at": "1"} if entry["id"] == third else entry)
    output = run(accord, "consent", "verify", "demo", "--archive", str(path), code=1).output
    assert f"broken at entry {third} (in {path.name})" in output


def test_a_line_removed_from_an_archive_file_is_named_by_the_entry_after_it(
        accord, flow, talked, redis_client, tmp_path):
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path), "--keep", "0")
    (path,) = tmp_path.glob("*.jsonl.gz")
    ids = [entry["id"] for entry in lines(path)]
    rewrite(path, lambda entry: None if entry["id"] == ids[1] else entry)
    assert f"broken at entry {ids[2]}" in run(accord, "consent", "verify", "demo", "--archive", str(path),
                                               code=1).output


def test_an_edited_answer_of_an_archived_entry_is_still_detected(accord, flow, talked, redis_client, tmp_path):
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path), "--keep", "0")
    (path,) = tmp_path.glob("*.jsonl.gz")
    assert stream(redis_client) == []
    answer = next(entry for entry in lines(path) if entry["kind"] == "in")
    person = f"accord:person:{answer['pid']}"
    field = f"demo|{answer['id']}"
    fields = stored_fields(redis_client.hget(person, field))
    redis_client.hset(person, field, as_stored({**fields, "text": "non", "event": "in:NO"}))
    output = run(accord, "consent", "verify", "demo", "--archive", str(tmp_path), code=1).output
    assert f"broken at entry {answer['id']}" in output


def test_a_missing_or_replaced_archive_file_is_named(accord, flow, sms, talked, redis_client, tmp_path):
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path / "one"), "--keep", "0")
    talk(accord, flow, sms, "+33612980009")
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path / "two"), "--keep", "0")
    (first,) = (tmp_path / "one").glob("*.jsonl.gz")
    output = run(accord, "consent", "verify", "demo", "--archive", str(tmp_path / "two"), code=1).output
    assert f"archive {first.name}" in output and "not among the files given" in output
    # The same entries, compressed otherwise: the chain holds, but it is not the file recorded.
    rewrite(first, lambda entry: entry)
    output = run(accord, "consent", "verify", "demo", "--archive", str(tmp_path / "one"), "--archive",
                 str(tmp_path / "two"), code=1).output
    assert f"archive {first.name} is not the file archived" in output


def test_archiving_again_changes_nothing(accord, flow, talked, redis_client, tmp_path):
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path), "--keep", "3")
    (path,) = tmp_path.glob("*")
    written, left, base = path.read_bytes(), stream(redis_client), redis_client.hgetall(base_key("demo"))
    assert "nothing to archive" in run(accord, "ledger", "archive", "demo", "--to", str(tmp_path),
                                       "--keep", "3").output
    assert list(tmp_path.glob("*")) == [path] and path.read_bytes() == written
    assert stream(redis_client) == left and redis_client.hgetall(base_key("demo")) == base
    run(accord, "consent", "verify", "demo", "--archive", str(tmp_path))


def test_entries_appended_after_archiving_verify_and_archive_in_turn(accord, flow, sms, talked, redis_client,
                                                                     tmp_path):
    archived = len(stream(redis_client))
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path), "--keep", "0")
    assert stream(redis_client) == []
    run(accord, "consent", "verify", "demo")
    talk(accord, flow, sms, "+33612980009")
    appended = len(stream(redis_client))
    assert appended == 3
    assert f"{appended} entries, chain intact" in run(accord, "consent", "verify", "demo").output
    run(accord, "consent", "verify", "demo", "--archive", str(tmp_path))
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path), "--keep", "1")
    assert len(list(tmp_path.glob("*.jsonl.gz"))) == 2
    assert ledger.base(redis_client, "demo").count == archived + appended - 1
    assert "1 entries, chain intact" in run(accord, "consent", "verify", "demo", "--archive", str(tmp_path)).output


def test_before_a_day_archives_only_what_was_logged_earlier(accord, flow, sms, redis_client, tmp_path,
                                                           clock: Clock):
    talk(accord, flow, sms, VOTERS[0])  # Tuesday 1 December
    clock.advance(days=2)
    talk(accord, flow, sms, VOTERS[1])  # Thursday 3 December
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path), "--before", "2026-12-02", "--keep", "0")
    (path,) = tmp_path.glob("*.jsonl.gz")
    assert len(lines(path)) == 3 and len(stream(redis_client)) == 3
    assert max(float(entry["at"]) for entry in lines(path)) < min(
        float(fields[b"at"]) for _, fields in stream(redis_client))


def test_a_file_written_but_not_recorded_changes_nothing_and_the_next_run_completes(
        accord, flow, talked, redis_client, tmp_path):
    """An archive cut short between its file and its base: Redis as before, and a rerun finishes the job."""
    before = stream(redis_client)
    written = archive.archive(redis_client, "demo", tmp_path, keep=1)  # the file is written, fsynced, read back
    assert written is not None and (tmp_path / written.file).exists()
    assert stream(redis_client) == before and ledger.base(redis_client, "demo") == ledger.Base()
    run(accord, "consent", "verify", "demo")
    output = run(accord, "consent", "verify", "demo", "--archive", str(tmp_path)).output
    assert f"{written.file}: not recorded" in output
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path), "--keep", "1")
    assert [p.name for p in tmp_path.iterdir()] == [written.file]
    assert ledger.base(redis_client, "demo").sha256 == written.sha256 and stream(redis_client) == before[-1:]
    assert "not recorded" not in run(accord, "consent", "verify", "demo", "--archive", str(tmp_path)).output


@pytest.mark.parametrize("damage", ["nothing", "a line changed", "a line lost", "an id changed",
                                    "one person's ids swapped"])
def test_a_file_that_reads_back_otherwise_than_written_is_removed_and_nothing_archived(
        talked, redis_client, tmp_path, monkeypatch, damage):
    """The disk gives back other bytes than were written. Ids are not in the chain: two of one person's
    entries with their ids swapped still chain, but each names the other's personal fields."""
    def damaged(directory: Path) -> None:  # right after the rename, before the file is read back
        (path,) = directory.glob("*.jsonl.gz")
        entries = [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]
        if damage == "nothing":
            pass  # the same entries written again: the same bytes
        elif damage == "a line lost":
            entries.pop()
        elif damage == "a line changed":
            entries[1]["kind"] += "x"
        elif damage == "an id changed":
            ms, seq = entries[1]["id"].split("-")
            entries[1]["id"] = f"{ms}-{int(seq) + 7}"
        else:
            first, second = [n for n, entry in enumerate(entries) if entry["pid"] == entries[0]["pid"]][:2]
            entries[first]["id"], entries[second]["id"] = entries[second]["id"], entries[first]["id"]
        path.write_bytes(gzip.compress(b"".join(json.dumps(entry).encode() + b"\n" for entry in entries)))

    monkeypatch.setattr(archive, "_fsync_directory", damaged)
    before = stream(redis_client)
    if damage == "nothing":
        assert archive.archive(redis_client, "demo", tmp_path, keep=1).count == len(before) - 1
        return
    with pytest.raises(archive.ArchiveError, match="read back, it does not hold what was written"):
        archive.archive(redis_client, "demo", tmp_path, keep=1)
    assert list(tmp_path.iterdir()) == [] and stream(redis_client) == before
    assert ledger.base(redis_client, "demo") == ledger.Base()


def test_a_file_written_before_another_archive_ran_is_refused_and_changes_nothing(
        accord, flow, talked, redis_client, tmp_path):
    (tmp_path / "stale").mkdir()
    stale = archive.archive(redis_client, "demo", tmp_path / "stale", keep=2)
    assert stale is not None
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path / "done"), "--keep", "2")
    left, base = stream(redis_client), redis_client.hgetall(base_key("demo"))
    with pytest.raises(archive.ArchiveError, match="another archive"):
        archive.seal(redis_client, "demo", stale)
    assert stream(redis_client) == left and redis_client.hgetall(base_key("demo")) == base


def test_a_stream_no_longer_starting_with_the_file_is_not_trimmed(accord, flow, talked, redis_client, tmp_path):
    written = archive.archive(redis_client, "demo", tmp_path, keep=0)
    redis_client.xdel(ledger_key("demo"), written.first)
    left = stream(redis_client)
    with pytest.raises(archive.ArchiveError, match="no longer starts"):
        archive.seal(redis_client, "demo", written)
    assert stream(redis_client) == left and not redis_client.exists(base_key("demo"))


def test_entries_appended_between_file_and_seal_stay_in_redis(accord, flow, sms, talked, redis_client, tmp_path):
    written = archive.archive(redis_client, "demo", tmp_path, keep=0)
    talk(accord, flow, sms, "+33612980009")
    assert archive.seal(redis_client, "demo", written) == written.count
    assert len(stream(redis_client)) == 3
    run(accord, "consent", "verify", "demo", "--archive", str(tmp_path))


def test_a_ledger_that_does_not_verify_is_not_archived(accord, flow, talked, redis_client, tmp_path):
    key = ledger_key("demo")
    before = stream(redis_client)
    second = before[1][0]
    redis_client.delete(key)
    for entry_id, fields in before:
        redis_client.xadd(key, {**fields, b"at": b"1"} if entry_id == second else fields, id=entry_id)
    output = run(accord, "ledger", "archive", "demo", "--to", str(tmp_path), "--keep", "0", code=1).output
    assert f"does not verify at entry {second.decode()}" in output
    assert list(tmp_path.iterdir()) == [] and len(stream(redis_client)) == len(before)
    assert not redis_client.exists(base_key("demo"))


def test_a_base_edited_in_redis_breaks_the_chain_at_the_first_entry_left(accord, flow, talked, redis_client,
                                                                       tmp_path):
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path), "--keep", "2")
    redis_client.hset(base_key("demo"), "hash", "0" * 40)
    first_left = stream(redis_client)[0][0].decode()
    assert f"broken at entry {first_left}" in run(accord, "consent", "verify", "demo", code=1).output
    output = run(accord, "consent", "verify", "demo", "--archive", str(tmp_path), code=1).output
    assert "broken at the base" in output


def test_person_show_says_an_entry_is_archived_and_where(accord, flow, talked, redis_client, tmp_path):
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path), "--keep", "1")
    (path,) = tmp_path.glob("*.jsonl.gz")
    shown = run(accord, "person", "show", VOTERS[0]).output
    rows = [line for line in shown.splitlines() if "in:YES" in line or "ask" in line]
    assert len(rows) == 2 and all(row.strip().startswith("archived") and path.name in row for row in rows)
    assert "1970" not in shown
    last = run(accord, "person", "show", VOTERS[-1]).output
    assert "2026-12-01T09:00:00+00:00  in:YES" in last  # the entry left in Redis keeps its time


def test_exports_and_cost_reports_say_what_the_archive_holds(accord, flow, talked, redis_client, tmp_path):
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path), "--keep", "1")
    exported = run(accord, "consent", "export", "demo")
    assert "are archived off Redis" in exported.stderr and "archived" not in exported.stdout
    assert len(exported.stdout.splitlines()) == len(VOTERS)
    # The day counts hold every message since they began: nothing archived is left out of the report.
    assert "archived" not in run(accord, "report", "costs", "demo").stderr


@pytest.fixture
def campaign(accord: Accord, sms: SMS, clock: Clock, tmp_path: Path) -> None:
    """Two rounds from two brokers, and every kind of answer: yes, stop then start and yes, unclear, late."""
    start(accord, tmp_path, VOTERS[:3])
    clock.advance(minutes=5)
    for text in ("oui", "stop", "start", "oui"):  # START brings the request back as its answer
        sms.send(VOTERS[0], text)
        clock.advance(minutes=1)
    sms.send(VOTERS[1], "je ne sais pas")
    clock.advance(days=8)  # past expiry: the late YES first logs the question's expiry
    sms.send(VOTERS[2], "oui")
    start(accord, tmp_path, [VOTERS[3]], LATER)
    sms.send(VOTERS[3], "oui")


def test_an_export_after_archiving_with_the_files_is_the_export_before(accord, campaign, redis_client, tmp_path):
    before = {fmt: run(accord, "consent", "export", "demo", "--format", fmt).stdout for fmt in ("jsonl", "csv")}
    proofs = [json.loads(line) for line in before["jsonl"].splitlines()]
    times = [r[key] for p in proofs for r in p["requests"] for key in ("asked_at", "sent_at", "flow_hash")]
    times += [item["at"] for p in proofs for item in p["answers"] + p["events"]]
    assert len(proofs) == 4 and all(times) and any(p["events"] for p in proofs)
    assert any("in_reply_to" in r for p in proofs for r in p["requests"])
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path / "archives"), "--keep", "3")
    assert [fields[b"kind"] for _, fields in stream(redis_client)].count(b"import") == 0
    blank = run(accord, "consent", "export", "demo")
    assert blank.stdout != before["jsonl"] and '"asked_at": ""' in blank.stdout and '"flow_hash": ""' in blank.stdout
    assert "show blank here" in blank.stderr and "--archive DIR" in blank.stderr
    for fmt in ("jsonl", "csv"):
        after = run(accord, "consent", "export", "demo", "--format", fmt, "--archive", str(tmp_path / "archives"))
        assert after.stdout == before[fmt]
        assert "archived off Redis" not in after.stderr
    one = export(accord, "--phone", VOTERS[0], "--archive", str(tmp_path / "archives"))
    assert one == [p for p in proofs if p["phone"] == VOTERS[0]]


def test_without_the_files_each_number_keeps_the_origin_of_its_round(accord, redis_client, clock, tmp_path):
    start(accord, tmp_path, [VOTERS[0]])
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path / "archives"), "--keep", "0")
    clock.advance(hours=1)
    start(accord, tmp_path, [VOTERS[1]], LATER)
    assert [fields[b"kind"] for _, fields in stream(redis_client)].count(b"import") == 1  # the first is archived
    origins = {p["phone"]: (p["origin"], p["operator"]) for p in export(accord)}
    assert origins == {VOTERS[0]: (dataclasses.asdict(ORIGIN), "camille"),
                       VOTERS[1]: (dataclasses.asdict(LATER), "dominique")}


def test_an_export_names_the_archive_file_it_needs_that_is_missing_or_not_the_one_archived(
        accord, flow, sms, talked, tmp_path):
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path / "one"), "--keep", "0")
    talk(accord, flow, sms, LATE)
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path / "two"), "--keep", "0")
    (first,) = (tmp_path / "one").glob("*.jsonl.gz")
    written = tmp_path / "proof.jsonl"
    output = run(accord, "consent", "export", "demo", "--archive", str(tmp_path / "two"), "--output", str(written),
                 code=1).output
    assert f"archive {first.name}" in output and "not among the files given" in output
    assert not written.exists()
    # A number whose entries all went to the second file needs only that one.
    (late,) = export(accord, "--phone", LATE, "--archive", str(tmp_path / "two"))
    assert late["requests"][0]["sent_at"] == "2026-12-01T09:00:00+00:00"
    assert late["requests"][0]["flow_hash"] == flow.content_hash
    output = run(accord, "consent", "export", "demo", "--phone", VOTERS[0], "--archive", str(tmp_path / "two"),
                 code=1).output
    assert f"archive {first.name}" in output
    rewrite(first, lambda entry: entry)  # the same entries, compressed otherwise: not the file recorded
    output = run(accord, "consent", "export", "demo", "--archive", str(tmp_path / "one"), "--archive",
                 str(tmp_path / "two"), code=1).output
    assert f"archive {first.name} is not the file archived" in output


def test_the_cost_report_counts_what_was_archived_from_its_day_counts(accord, flow, talked, tmp_path):
    before = run(accord, "report", "costs", "demo").stdout
    assert f"TOTAL,{len(VOTERS) * 3}," in before
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path), "--keep", "1")
    assert run(accord, "report", "costs", "demo").stdout == before


def test_the_cost_report_with_the_files_counts_what_was_archived_before_the_day_counts(accord, flow, talked,
                                                                                       redis_client, tmp_path):
    redis_client.delete(costs_key("demo"))  # as a version without the day counts left the flow
    before = run(accord, "report", "costs", "demo").stdout
    assert f"TOTAL,{len(VOTERS) * 3}," in before  # per voter: the request, then the confirmation and content
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path), "--keep", "1")
    without = run(accord, "report", "costs", "demo")
    assert without.stdout != before and "--archive DIR" in without.stderr
    with_files = run(accord, "report", "costs", "demo", "--archive", str(tmp_path))
    assert with_files.stdout == before and "archived off Redis" not in with_files.stderr
    rewrite(next(tmp_path.glob("*.jsonl.gz")), lambda entry: entry)
    assert "is not the file archived" in run(accord, "report", "costs", "demo", "--archive", str(tmp_path),
                                             code=1).output
