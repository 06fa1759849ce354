"""Who touched personal data and on which request, the register of rights requests, the record of
processing, and files holding numbers readable by their owner only: all through the command line."""

from __future__ import annotations

import datetime as dt
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result

from bot import Accord, audit
from bot.cli import Services, main
from bot.embedded import ensure_embedded, spawn
from bot.keys import ACCESS_KEY, AUDIT_KEY
from tests.conftest import PARIS, SMS, Clock
from tests.test_reconcile import inbound
from tests.test_rights import VOTER, ask, keys_mentioning

OTHER = "+33612980002"


def run(accord: Accord, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(main, list(args), obj=Services(accord), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


@pytest.fixture
def flow(accord: Accord):
    return accord.flows["demo"]


@pytest.fixture
def umask() -> Iterator[None]:
    """The usual umask, 022, under which a plain open() makes a file anyone on the machine can read."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def traced(accord: Accord) -> list[tuple[str, str, str, str, str]]:
    """The access trail, oldest first: (user, action, subject, flow, request)."""
    return [(a.user, a.action, a.subject, a.flow, a.request) for a in reversed(audit.accesses(accord.store.redis))]


# Who touched personal data

def test_person_show_and_erase_are_traced_with_the_os_user_and_request_never_the_number(
        accord, flow, sms: SMS, redis_client):
    ask(accord, flow, VOTER)
    sms.send(VOTER, "oui")
    digest, user = accord.store.digest(VOTER), audit.user()
    assert user
    shown = run(accord, "person", "show", VOTER, "--request", "LETTER-7")
    assert "LETTER-7 is not in the rights register" in shown.output  # recorded as given all the same
    run(accord, "person", "show", "06 12 98 00 02")
    run(accord, "person", "erase", VOTER, "--yes", "--request", "LETTER-7")
    assert traced(accord) == [(user, "person show", digest, "", "LETTER-7"),
                              (user, "person show", accord.store.digest(OTHER), "", ""),
                              (user, "person erase", digest, "", "LETTER-7")]
    assert keys_mentioning(redis_client, accord, VOTER) == []  # the trail holds the HMAC, not the number
    log = run(accord, "rights", "log").output
    assert "person erase" in log and f"number {digest[:12]}; request LETTER-7" in log and VOTER not in log


def test_export_purge_and_reconcile_are_traced(twilio_accord: Accord, twilio, clock: Clock, tmp_path: Path):
    accord, flow = twilio_accord, twilio_accord.flows["demo"]
    ask(accord, flow, VOTER)
    inbound(twilio, flow, VOTER, "OUI", dt.datetime(2026, 12, 1, 10, 5, tzinfo=PARIS))
    clock.advance(hours=1)
    run(accord, "consent", "export", "demo", "--phone", VOTER, "--output", str(tmp_path / "proof.jsonl"),
        "--request", "R-2")
    run(accord, "consent", "export", "demo", "--format", "csv")
    run(accord, "purge", "--dry-run")
    run(accord, "reconcile", "demo", "--since", "2026-12-01T09:30", "--request", "R-3")
    user, digest = audit.user(), accord.store.digest(VOTER)
    assert traced(accord) == [(user, "consent export", digest, "demo", "R-2"),
                              (user, "consent export", "", "demo", ""),
                              (user, "purge", "", "", ""),
                              (user, "reconcile", "", "demo", "R-3")]
    details = [a.detail for a in reversed(audit.accesses(accord.store.redis))]
    assert details == ["jsonl to proof.jsonl", "csv to stdout", "dry run", "since 2026-12-01T09:30:00+01:00"]


def test_failed_sign_ins_cannot_evict_who_touched_personal_data_or_what_operators_did(accord, flow, clock):
    run(accord, "person", "show", VOTER, "--request", "R-1")
    audit.record(accord.store.redis, clock(), "camille", "pause", flow="demo")
    with accord.store.redis.pipeline(transaction=False) as pipe:  # what anyone reaching the sign-in form can add
        for n in range(12_000):
            audit.failed_sign_in(pipe, clock(), f"203.0.{n >> 8}.{n & 255}", "failed")
        pipe.execute()
    assert [(a.action, a.request) for a in audit.accesses(accord.store.redis)] == [("person show", "R-1")]
    assert "person show" in run(accord, "rights", "log").output
    assert [entry.action for entry in audit.latest(accord.store.redis, 20_000)] == ["pause", "person show"]


def test_the_trail_drops_operator_actions_after_a_year_by_age_never_by_count(accord, clock, redis_client):
    seconds, _ = redis_client.time()  # entry ids are Redis's clock
    day, now = 86_400_000, seconds * 1000
    for age, action in ((audit.KEEP_DAYS + 1, "older than the rule"), (audit.KEEP_DAYS - 1, "within the rule")):
        redis_client.xadd(AUDIT_KEY, {"at": "0", "operator": "camille", "action": action}, id=f"{now - age * day}-0")
    for n in range(3):
        audit.record(redis_client, clock(), "camille", "pause", flow="demo", detail=str(n))
    assert [entry.action for entry in reversed(audit.latest(redis_client))] == [
        "within the rule", "pause", "pause", "pause"]


# The register of rights requests

def test_rights_list_shows_what_is_open_and_overdue_with_days_left(accord, clock: Clock, redis_client):
    clock.set(dt.datetime(2026, 12, 1, 10, 0, tzinfo=PARIS))
    run(accord, "rights", "add", "--ref", "R-OLD", "--channel", "post", "--identity", "ID card copy",
        "--received", "2026-10-20", "--kind", "erasure", "--phone", VOTER)
    run(accord, "rights", "add", "--ref", "R-NEW", "--channel", "email", "--identity", "answered from the address "
        "on file", "--received", "2026-11-25")
    added = run(accord, "rights", "add", "--ref", "R-FEB", "--channel", "sms", "--identity", "texted from the number",
                "--received", "2026-01-31", "--kind", "objection").output
    assert "answer by 2026-02-28" in added  # one month: the month's last day when it has no 31st
    assert "received 2026-12-01" in run(accord, "rights", "add", "--ref", "R-TODAY", "--channel", "in-person",
                                        "--identity", "seen in person").output
    run(accord, "rights", "close", "R-FEB", "--outcome", "objection recorded")

    listed = run(accord, "rights", "list").output
    assert "R-OLD" in listed and "2026-10-20  2026-11-20  open, OVERDUE by 11 day(s)" in listed
    assert "2026-11-25  2026-12-25  open, 24 day(s) left" in listed
    assert "closed 2026-12-01, 276 day(s) late by" in listed and "objection recorded" in listed
    assert "3 open, 1 overdue, 1 closed." in listed
    open_only = run(accord, "rights", "list", "--open").output
    assert "R-NEW" in open_only and "R-FEB" not in open_only
    overdue = run(accord, "rights", "list", "--overdue").output
    assert "R-OLD" in overdue and "R-NEW" not in overdue and "R-TODAY" not in overdue

    assert keys_mentioning(redis_client, accord, VOTER) == []  # the register keeps the number's HMAC only
    user = audit.user()
    assert [(a[0], a[1], a[4]) for a in traced(accord)] == [
        (user, "rights request opened (erasure)", "R-OLD"), (user, "rights request opened (access)", "R-NEW"),
        (user, "rights request opened (objection)", "R-FEB"), (user, "rights request opened (access)", "R-TODAY"),
        (user, "rights request closed", "R-FEB")]


def test_a_reference_is_filed_once_and_a_request_cannot_come_from_the_future(accord):
    run(accord, "rights", "add", "--ref", "R-1", "--channel", "email", "--identity", "email on file")
    again = run(accord, "rights", "add", "--ref", "R-1", "--channel", "post", "--identity", "x", code=1)
    assert "R-1: already in the register" in again.output
    future = run(accord, "rights", "add", "--ref", "R-2", "--channel", "post", "--identity", "x",
                 "--received", "2026-12-02", code=1)
    assert "has not come yet" in future.output
    assert "already closed" not in run(accord, "rights", "close", "R-1", "--outcome", "sent").output
    assert "already closed" in run(accord, "rights", "close", "R-1", "--outcome", "again", code=1).output
    assert "not in the register" in run(accord, "rights", "close", "R-9", "--outcome", "x", code=1).output


def test_person_commands_run_for_a_request_are_listed_on_it(accord, flow, sms: SMS, clock: Clock):
    ask(accord, flow, VOTER)
    sms.send(VOTER, "oui")
    run(accord, "rights", "add", "--ref", "R-5", "--channel", "email", "--identity", "ID card copy",
        "--phone", VOTER, "--kind", "erasure")
    clock.advance(hours=1)
    run(accord, "person", "show", VOTER, "--request", "R-5")
    wrong = run(accord, "person", "erase", OTHER, "--yes", "--request", "R-5", code=1)
    assert "request R-5 concerns another number; nothing done" in wrong.output
    run(accord, "person", "erase", VOTER, "--yes", "--request", "R-5")
    run(accord, "rights", "close", "R-5", "--outcome", "erased, answered by email")
    shown = run(accord, "rights", "show", "R-5").output
    assert "identity checked: ID card copy" in shown
    assert [line.split()[2:] for line in shown.splitlines()[3:]] == [
        ["rights", "request", "opened", "(erasure)"], ["person", "show"], ["person", "erase"],
        ["rights", "request", "closed"]]
    assert "closed 2026-12-01 by" in shown


# The record of processing

def test_report_register_writes_the_record_of_processing_from_the_flows(accord, tmp_path: Path):
    text = run(accord, "report", "register").stdout
    assert text.startswith("# Record of processing activities (GDPR art. 30)")
    for section in ("## Controller: Claire Martin, candidate", "## Controller: Liste Demo",
                    "### Processing: presidentielle-2027", "### Processing: demo",
                    "## Recipients and processors", "## Transfers outside the EU", "## Retention",
                    "## Security measures"):
        assert f"\n{section}" in text, section
    assert "art. 6(1)(a)" in text and "art. 9(2)(a)" in text and "political opinion" in text.lower()
    assert "| Source (art. 14(2)(f)) | la société DataVote (location de fichier) |" in text
    assert "postcode" in text and "texts sent and received" in text
    assert "Twilio Inc." in text and "United States" in text and "Data Privacy Framework" in text
    assert "**To confirm**" in text and "**To complete**" in text
    assert "| presidentielle-2027 | deleted 60 days after the consent request" in text
    assert "until the flow's end date, 2027-04-25, then deleted" in text
    assert "| demo |" in text and "days after the voter's last contact (`retention_days`): the flow has no" in text
    assert "HMAC" in text and "hash-chained" in text and "TLS" in text and "readable by their owner only" in text
    run(accord, "report", "register", "--output", str(tmp_path / "register.md"))
    assert (tmp_path / "register.md").read_text(encoding="utf-8") == text


# Files holding personal data: readable by their owner only

def test_a_consent_export_is_written_for_its_owner_only(accord, flow, tmp_path: Path, umask):
    ask(accord, flow, VOTER)
    fresh, older = tmp_path / "proof.jsonl", tmp_path / "older.csv"
    older.write_text("left readable by an earlier version\n")
    assert mode(older) == 0o644
    run(accord, "consent", "export", "demo", "--output", str(fresh))
    run(accord, "consent", "export", "demo", "--format", "csv", "--output", str(older))
    assert VOTER in fresh.read_text() and VOTER in older.read_text()
    assert mode(fresh) == 0o600 and mode(older) == 0o600


def test_ledger_archive_files_are_for_their_owner_only(accord, flow, tmp_path: Path, umask):
    ask(accord, flow, VOTER)
    run(accord, "ledger", "archive", "demo", "--to", str(tmp_path / "archives"), "--keep", "0")
    [written] = (tmp_path / "archives").glob("ledger.demo.*.jsonl.gz")
    assert mode(written) == 0o600


def test_the_embedded_redis_keeps_its_append_only_file_for_its_owner(tmp_path: Path, umask):
    process, url = spawn(tmp_path / "spawned")  # what the tests and benchmarks start
    try:
        redis.Redis.from_url(url).set("accord:probe", VOTER)
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert mode(tmp_path / "spawned" / "appendonly.aof") == 0o600
    assert mode(tmp_path / "spawned") == 0o700

    instance = tmp_path / "instance"  # what `make run` and an unset REDIS_URL start, as a daemon
    instance.mkdir(mode=0o755)
    (instance / "appendonly.aof").write_bytes(b"")  # left readable by an earlier version
    url = ensure_embedded(instance)
    try:
        redis.Redis.from_url(url).set("accord:probe", VOTER)
        written = sorted(path.name for path in instance.iterdir() if path.is_file() and mode(path) & 0o077)
    finally:
        redis.Redis.from_url(url).shutdown(nosave=True)
    assert mode(instance) == 0o700 and mode(instance / "appendonly.aof") == 0o600
    assert written == ["redis.lock"]  # empty: only the data files need hiding


def test_nothing_in_the_trail_names_a_number(accord, flow, redis_client):
    run(accord, "rights", "add", "--ref", "R-1", "--channel", "sms", "--identity", "texted", "--phone", VOTER)
    run(accord, "person", "show", VOTER, "--request", "R-1")
    raw = b"".join(b"".join(fields.values()) for _, fields in redis_client.xrange(ACCESS_KEY))
    assert VOTER.encode() not in raw and VOTER[1:].encode() not in raw and VOTER[3:].encode() not in raw
