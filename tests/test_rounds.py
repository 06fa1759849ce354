"""Consent rounds from the command line: import, queue, and workers sending through the real Twilio client."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner, Result
from rq import SimpleWorker
from rq.registry import ScheduledJobRegistry

from bot import Accord, build, create_app, rounds, sending
from bot.batches import Batches
from bot.cli import Services, main
from bot.rounds import Origin
from bot.sending import ask, queue_for
from bot.workers import resume
from tests.conftest import PARIS, SMS, Clock, answers

CONTACTS = """telephone;prenom;commune
06 12 98 00 01;Camille;Lyon
+33 7 39 98 00 02;Dominique;Lille
0033612980003;Sacha;Metz
6.12.98.00.04;Alix;Paris
06 12 98 00 01;Camille;Lyon
01 45 67 89 10;Fixe;Paris
n/a;Personne;Nulle part
"""
ASKABLE = ["+33612980001", "+33612980003", "+33612980004", "+33739980002"]
ORIGIN = ["--contract", "DV-2027-001", "--operator", "camille"]


@pytest.fixture
def accord(twilio_accord: Accord) -> Accord:
    return twilio_accord  # sending through the real Twilio client to the local server


@pytest.fixture
def contacts(tmp_path: Path) -> Path:
    path = tmp_path / "contacts.csv"
    path.write_text(CONTACTS, encoding="utf-8")
    return path


def run(accord: Accord, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), obj=Services(accord), catch_exceptions=False)


def start(accord: Accord, flow_id: str, path: Path, *extra: str) -> Result:
    result = run(accord, "round", "start", flow_id, str(path), *ORIGIN, "--rate", "1000", *extra)
    assert result.exit_code == 0, result.output
    return result


def work(accord: Accord) -> None:
    """Run a worker in this process until the queue is empty."""
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)


def scheduled(accord: Accord) -> list[tuple[str, dt.datetime]]:
    registry = ScheduledJobRegistry(queue=queue_for(accord))
    return [(job_id, registry.get_scheduled_time(job_id)) for job_id in registry.get_job_ids()]


def test_round_asks_every_mobile_once_through_twilio(accord, contacts, twilio, clock):
    clock.set(dt.datetime(2026, 12, 1, 15, 0, tzinfo=PARIS))
    result = start(accord, "demo", contacts)
    assert twilio.messages == []  # the command queues; workers send
    assert "queued: 4" in result.output and "duplicate: 1" in result.output
    assert "line 7: '01 45 67 89 10': not a mobile" in result.output
    work(accord)
    flow = accord.flows["demo"]
    assert sorted(m["to"] for m in twilio.messages) == ASKABLE
    assert {m["body"] for m in twilio.messages} == {flow.texts.consent_request}
    assert {m["from"] for m in twilio.messages} == {flow.sender}
    # 15:00: the provider may hold each message until the window closes at 23:00, no later.
    assert {m["params"]["ValidityPeriod"] for m in twilio.messages} == {str(8 * 3600)}
    assert all(accord.store.state(flow, phone) == "asked" for phone in ASKABLE)
    sent = [f for _, f in accord.store.ledger(flow.id) if f["event"] == "sent"]
    assert sorted(f["sid"] for f in sent) == sorted(m["sid"] for m in twilio.messages)


def test_every_line_is_accounted_for(accord, contacts):
    result = start(accord, "demo", contacts)
    counts = {line.split(":")[0].strip(): int(line.rsplit(":", 1)[1]) for line in result.output.splitlines()
              if line.count(":") == 1 and line.rsplit(":", 1)[1].strip().isdigit()}
    parts = ("queued", "rejected", "duplicate", "suppressed", "already asked", "waiting for another flow's answer")
    assert counts["imported"] == 7 == sum(counts[part] for part in parts)


def test_rerunning_a_round_sends_nothing_new(accord, contacts, twilio):
    start(accord, "demo", contacts)
    again = start(accord, "demo", contacts)  # before any worker ran: queued numbers count as asked
    assert "already asked: 4" in again.output and "queued: 0" in again.output
    work(accord)
    assert len(twilio.messages) == 4
    twilio.reset()
    start(accord, "demo", contacts)
    work(accord)
    assert twilio.messages == []


def test_dry_run_stores_and_sends_nothing(accord, contacts, twilio, redis_client):
    accord.store.step([accord.flows["demo"]], "+33612980003", "stop")
    before = sorted(redis_client.scan_iter())
    result = start(accord, "demo", contacts, "--dry-run")
    assert "queued: 3" in result.output and "suppressed: 1" in result.output
    assert sorted(redis_client.scan_iter()) == before and twilio.messages == []


@pytest.mark.parametrize("flow_id, moment, opens", [
    ("presidentielle-2027", dt.datetime(2026, 12, 1, 20, 1, tzinfo=PARIS),
     dt.datetime(2026, 12, 2, 8, 30, tzinfo=PARIS)),
    ("presidentielle-2027", dt.datetime(2026, 12, 6, 12, 0, tzinfo=PARIS),  # a Sunday
     dt.datetime(2026, 12, 7, 8, 30, tzinfo=PARIS)),
    ("presidentielle-2027", dt.datetime(2026, 7, 14, 12, 0, tzinfo=PARIS),  # Fête nationale (before the end date)
     dt.datetime(2026, 7, 15, 8, 30, tzinfo=PARIS)),
    ("presidentielle-2027", dt.datetime(2027, 4, 10, 12, 0, tzinfo=PARIS),  # eve of the first round
     dt.datetime(2027, 4, 12, 8, 30, tzinfo=PARIS)),
    ("demo", dt.datetime(2026, 12, 1, 23, 1, tzinfo=PARIS), dt.datetime(2026, 12, 2, 7, 0, tzinfo=PARIS)),
])
def test_sends_outside_the_window_are_deferred_to_its_opening(accord, contacts, twilio, clock, flow_id, moment,
                                                              opens):
    clock.set(moment)
    start(accord, flow_id, contacts)
    before = dt.datetime.now(dt.UTC)
    work(accord)
    assert twilio.messages == []
    ((_, when),) = scheduled(accord)  # one deferred batch, due when the window opens
    wait = (opens - moment).total_seconds()
    assert abs((when.replace(tzinfo=dt.UTC) - before).total_seconds() - wait) < 5
    assert accord.store.state(accord.flows[flow_id], ASKABLE[0]) == "new"


def test_provider_unsubscribed_makes_the_number_opted_out(accord, contacts, twilio):
    twilio.fail_to("+33739980002", code=21610)
    twilio.fail_to("+33612980003", code=21614)
    start(accord, "demo", contacts)
    work(accord)
    flow = accord.flows["demo"]
    assert accord.store.state(flow, "+33739980002") == "opted_out"
    assert accord.store.is_suppressed(flow, "+33739980002")
    funnel = accord.store.funnel(flow)
    assert funnel["sent"] == 2 and funnel["send_failed"] == 2 and funnel["opted_out"] == 1


def test_throttled_sends_are_retried_with_backoff(accord, twilio):
    twilio.fail_next(2, status=429, code=20429)
    waits: list[float] = []
    assert ask(accord, accord.flows["demo"], "+33612980001", sleep=waits.append) == "sent"
    assert waits == [0.5, 1.0]
    assert [m["to"] for m in twilio.messages] == ["+33612980001"]


def test_a_send_that_may_have_gone_is_reported_not_retried(accord, twilio):
    twilio.fail_next(10, status=500, code=20500)
    assert ask(accord, accord.flows["demo"], "+33612980001", sleep=lambda _: None) == "claimed, outcome unknown"
    assert twilio.messages == []
    assert accord.store.state(accord.flows["demo"], "+33612980001") == "asked"


def test_a_request_the_provider_never_processed_gives_the_number_back(accord, twilio):
    twilio.fail_to("+33612980001", status=400, code=21611)  # sender queue full
    flow = accord.flows["demo"]
    assert ask(accord, flow, "+33612980001", sleep=lambda _: None) == "not sent, provider busy"
    assert accord.store.state(flow, "+33612980001") == "new"
    twilio.reset()
    assert ask(accord, flow, "+33612980001") == "sent"


class SlowGateway:
    """A gateway whose every send takes a minute of the injected clock."""

    def __init__(self, gateway, clock: Clock) -> None:
        self.gateway, self.clock = gateway, clock

    def send(self, *args, **kwargs) -> str:
        self.clock.advance(minutes=1)
        return self.gateway.send(*args, **kwargs)


def test_a_batch_stops_sending_when_the_window_closes_under_it(accord, twilio, clock, tmp_path):
    clock.set(dt.datetime(2026, 12, 1, 22, 56, tzinfo=PARIS))  # the demo window closes at 23:00
    accord.gateway = SlowGateway(accord.gateway, clock)
    # One send at a time: each moves the clock as it starts, and the next looks at the clock after it.
    accord.config = dataclasses.replace(accord.config, send_concurrency=1)
    path = tmp_path / "ten.csv"
    path.write_text("phone\n" + "".join(f"06129800{n:02d}\n" for n in range(10)))
    start(accord, "demo", path)
    work(accord)
    assert len(twilio.messages) == 4  # 22:56 to 22:59; at 23:00 the window is shut
    assert all(int(m["params"]["ValidityPeriod"]) >= 60 for m in twilio.messages)
    assert len(scheduled(accord)) == 1


def test_regional_holidays_follow_the_postcode(accord, twilio, clock, tmp_path):
    clock.set(dt.datetime(2027, 3, 26, 10, 0, tzinfo=PARIS))  # Good Friday: a holiday in Alsace-Moselle
    path = tmp_path / "regions.csv"
    path.write_text("telephone;code postal\n0612980001;67000\n0612980002;57000\n0612980003;75001\n")
    start(accord, "presidentielle-2027", path)
    work(accord)
    assert [m["to"] for m in twilio.messages] == ["+33612980003"]
    assert len(scheduled(accord)) == 1


def test_a_waiting_number_keeps_its_calendar_region_not_its_postcode(accord, clock, tmp_path):
    """What a round stores per waiting number is the number and a region letter: at most 16 bytes a number."""
    path = tmp_path / "regions.csv"
    path.write_text("telephone;code postal\n0612980001;67000\n0612980002;97100\n0612980003;75001\n"
                    "0612980004;\n")
    start(accord, "presidentielle-2027", path)
    stored = Batches(accord.store)
    batches = [stored.read("presidentielle-2027", raw.decode())
               for raw in accord.store.redis.zrange("accord:batches:presidentielle-2027", 0, -1)]
    assert sorted(item for items in batches for item in items) == [
        "+33612980001/A", "+33612980002/G", "+33612980003", "+33612980004"]


def test_a_postcode_is_read_from_what_the_column_holds_and_never_splits_a_batch(accord, twilio, clock, tmp_path):
    clock.set(dt.datetime(2027, 3, 26, 10, 0, tzinfo=PARIS))  # Good Friday: a holiday in Alsace-Moselle
    path = tmp_path / "towns.csv"
    path.write_text('telephone;code postal\n0612980001;67000 Strasbourg\n0612980002;"57000, Metz"\n'
                    '0612980003;"Paris, 11e"\n0612980004;"75 011"\n')
    result = start(accord, "presidentielle-2027", path)
    assert "queued: 4" in result.output
    assert "1 postcode value(s) held no French postcode" in result.output
    work(accord)
    assert sorted(m["to"] for m in twilio.messages) == ["+33612980003", "+33612980004"]
    assert len(scheduled(accord)) == 1


def test_numbers_outside_metropolitan_france_are_rejected_with_the_reason(accord, twilio, tmp_path):
    path = tmp_path / "far.csv"
    path.write_text("phone\n+689 87 12 34 56\n")
    result = start(accord, "demo", path)
    assert "its time zone may differ" in result.output and "queued: 0" in result.output


def test_rejected_lines_are_written_to_the_instance_directory_for_its_owner_only(accord, contacts):
    result = start(accord, "demo", contacts)
    path = accord.config.instance_dir / "rejects" / "contacts.csv.rejects.csv"
    assert f"2 rejected line(s) written to {path}" in result.output
    assert path.stat().st_mode & 0o777 == 0o600 and not contacts.with_name("contacts.csv.rejects.csv").exists()
    rejects = path.read_text(encoding="utf-8").splitlines()
    assert rejects[0] == "line,value,reason"
    assert rejects[1].startswith("7,01 45 67 89 10,not a mobile")
    assert rejects[2].startswith("8,n/a,")


@pytest.mark.parametrize("options, message", [
    (["--source-type", "hr"], "HR file"),
    (["--source-type", "patient"], "patient file"),
    (["--source-type", "public-registry"], "public registry"),
    (["--source-type", "lottery"], "use one of"),
    (["--contract", ""], "--contract"),
])
def test_an_import_of_refused_origin_stores_nothing(accord, contacts, redis_client, options, message):
    result = run(accord, "round", "start", "demo", str(contacts), *ORIGIN, *options)
    assert result.exit_code == 1 and message in result.output
    assert list(redis_client.scan_iter()) == []


def test_a_sensitive_column_refuses_the_file_before_anything_is_stored(accord, tmp_path, redis_client):
    path = tmp_path / "religion.csv"
    path.write_text("telephone;religion\n0612980001;x\n")
    result = run(accord, "round", "start", "demo", str(path), *ORIGIN)
    assert result.exit_code == 1 and "'religion'" in result.output and "C.11" in result.output
    assert list(redis_client.scan_iter()) == []


def test_the_import_origin_is_recorded_in_the_ledger(accord, contacts):
    start(accord, "demo", contacts)
    (entry,) = [f for _, f in accord.store.ledger("demo") if f["event"] == "import"]
    origin = json.loads(entry["text"])
    assert origin["contract"] == "DV-2027-001" and origin["operator"] == "camille"
    assert origin["source_type"] == "broker" and origin["file"] == "contacts.csv"


def test_pause_parks_the_batch_and_resume_sends_each_number_once(accord, contacts, twilio):
    start(accord, "demo", contacts)
    assert "paused" in run(accord, "round", "pause", "demo").output
    work(accord)
    assert twilio.messages == []
    assert "1 parked batch(es)" in run(accord, "round", "resume", "demo").output
    work(accord)
    assert sorted(m["to"] for m in twilio.messages) == ASKABLE


def consent(accord: Accord, phones: list[str]) -> None:
    flow = accord.flows["demo"]
    sms = SMS(create_app(accord.config, gateway=accord.gateway, clock=accord.store.clock).test_client())
    for phone in phones:
        accord.store.claim(flow, phone, window_open=True)
        sms.send(phone, "oui")


def test_content_goes_to_consented_numbers_only_and_once(accord, twilio):
    flow = accord.flows["demo"]
    consent(accord, ["+33612980001", "+33612980002"])
    accord.store.claim(flow, "+33612980003", window_open=True)  # asked, never answered
    assert "queued for 2 consented" in run(accord, "content", "send", "demo").output
    work(accord)
    # Content 1 already went with their confirmation: nobody gets it twice.
    assert twilio.messages == []
    assert "demo has 1 content message(s)" in run(accord, "content", "send", "demo", "--message", "2").output


def test_stop_arriving_while_a_broadcast_is_queued_wins(accord, twilio, clock):
    clock.set(dt.datetime(2026, 12, 1, 23, 30, tzinfo=PARIS))  # YES after hours: confirmation only
    consent(accord, ["+33612980001", "+33612980002", "+33612980003"])
    clock.set(dt.datetime(2026, 12, 2, 10, 0, tzinfo=PARIS))
    run(accord, "content", "send", "demo")
    sms = SMS(create_app(accord.config, gateway=accord.gateway, clock=accord.store.clock).test_client())
    assert answers(sms.send("+33612980002", "STOP")) == [accord.flows["demo"].texts.stopped]
    work(accord)
    assert sorted(m["to"] for m in twilio.messages) == ["+33612980001", "+33612980003"]
    assert {m["body"] for m in twilio.messages} == {accord.flows["demo"].texts.content[0]}
    run(accord, "content", "send", "demo")
    work(accord)
    assert len(twilio.messages) == 2  # nobody gets the same content twice


def test_round_status_shows_the_funnel(accord, contacts, twilio):
    start(accord, "demo", contacts)
    work(accord)
    consent(accord, [])
    sms = SMS(create_app(accord.config, gateway=accord.gateway, clock=accord.store.clock).test_client())
    sms.send("+33612980001", "oui")
    sms.send("+33612980003", "non")
    sms.send("+33612980004", "stop")
    for message in twilio.messages[:3]:
        sms.status(message["sid"], "delivered", to=message["to"])
    sms.status(twilio.messages[0]["sid"], "delivered", to=twilio.messages[0]["to"])  # a repeated callback
    sms.status(twilio.messages[3]["sid"], "undelivered", to=twilio.messages[3]["to"], error_code="30003")
    output = run(accord, "round", "status", "demo").output
    for line in ("imported: 7", "rejected: not a mobile: 1", "duplicates: 1", "queued: 4", "asked (sent): 4",
                 "delivered: 3", "undelivered: 1", "pending answer: 1", "consented: 1", "declined: 1",
                 "opted out: 1", "segments (estimate): 8"):
        assert line in output, line


def test_round_status_says_why_nothing_goes_at_night_and_when_it_will(accord, clock) -> None:
    clock.set(dt.datetime(2026, 12, 1, 23, 30, tzinfo=PARIS))  # the demo window shuts at 23:00
    output = run(accord, "round", "status", "demo").output
    assert "The sending window is closed now (after sending hours); it opens Wednesday 02 December 2026 07:00" in output
    clock.set(dt.datetime(2026, 12, 1, 10, 0, tzinfo=PARIS))
    assert "The sending window is open now; it closes Tuesday 01 December 2026 23:00" in run(
        accord, "round", "status", "demo").output


def long_list(tmp_path: Path, count: int) -> Path:
    """Write a file of `count` distinct mobiles, then every tenth again."""
    lines = ["telephone;code_postal"] + [f"06 12 {n // 10000:02d} {n // 100 % 100:02d} {n % 100:02d};67000"
                                         for n in range(count)]
    path = tmp_path / "long.csv"
    path.write_text("\n".join(lines + lines[1::10]) + "\n", encoding="utf-8")
    return path


def queued_numbers(accord: Accord) -> list[str]:
    """Every number queued, from the batches the jobs name (a job carries no number)."""
    batches = Batches(accord.store)
    return [item for job in queue_for(accord).get_jobs() for item in batches.read(*job.args) or ()]


@pytest.mark.parametrize("parallel_after", [0, 3])
def test_a_long_list_admitted_beside_the_reading_counts_and_queues_the_same(
        accord, tmp_path, monkeypatch, redis_client, parallel_after):
    monkeypatch.setattr(rounds, "BATCH", 7)  # many batches from a short file
    monkeypatch.setattr(rounds._Admission, "PARALLEL_AFTER", parallel_after)
    admit = accord.store.admit

    def admit_where(*args, **kwargs):
        redis_client.rpush("test:admitted-by", os.getpid())
        return admit(*args, **kwargs)

    monkeypatch.setattr(accord.store, "admit", admit_where)
    flow = accord.flows["demo"]
    accord.store.step([flow], "+33612000003", "stop")  # objected: never queued
    accord.store.claim(flow, "+33612000004", window_open=True)  # asked before: not again
    path = long_list(tmp_path, 200)
    report = rounds.start_round(accord, flow, path, Origin("supporters", "", "", "camille", path.name, ""))
    assert dict(report.counts) == {"imported": 220, "queued": 198, "duplicate": 20, "suppressed": 1,
                                   "already asked": 1, "waiting for another flow's answer": 0}
    expected = [f"+33612{n // 10000:02d}{n // 100 % 100:02d}{n % 100:02d}/A" for n in range(200)
                if n not in (3, 4)]
    assert sorted(queued_numbers(accord)) == expected
    assert report.batches == len(queue_for(accord).get_jobs())
    admitted_by = [int(pid) for pid in redis_client.lrange("test:admitted-by", 0, -1)]
    assert len(admitted_by) == 29  # 200 numbers, 7 a batch: the three batches of repeats alone are not admitted
    assert admitted_by[:parallel_after] == [os.getpid()] * parallel_after
    assert os.getpid() not in admitted_by[parallel_after:]


def test_an_admission_failure_stops_the_import(accord, tmp_path, monkeypatch):
    monkeypatch.setattr(rounds, "BATCH", 7)
    monkeypatch.setattr(rounds._Admission, "PARALLEL_AFTER", 2)
    admit = accord.store.admit
    calls = []

    def admit_until_redis_goes(*args, **kwargs):
        calls.append(1)
        if len(calls) > 4:  # the third batch in the forked process, or the fifth here
            raise redis.ConnectionError("Redis went away")
        return admit(*args, **kwargs)

    monkeypatch.setattr(accord.store, "admit", admit_until_redis_goes)
    path = long_list(tmp_path, 200)
    with pytest.raises(redis.ConnectionError, match="Redis went away"):
        rounds.start_round(accord, accord.flows["demo"], path, Origin("supporters", "", "", "camille", path.name, ""))


@pytest.mark.parametrize("parallel_after", [0, 1000])
@pytest.mark.parametrize("then", ["start again", "resume"])
def test_an_import_cut_short_between_admitting_and_queueing_loses_no_number(
        accord, tmp_path, monkeypatch, parallel_after, then):
    monkeypatch.setattr(rounds, "BATCH", 7)
    monkeypatch.setattr(rounds._Admission, "PARALLEL_AFTER", parallel_after)
    enqueue_stored, calls = rounds.enqueue_stored, []

    def enqueue_until_redis_goes(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # admitted, marked queued in Redis, but its job never made it
            raise redis.ConnectionError("Redis went away")
        return enqueue_stored(*args, **kwargs)

    monkeypatch.setattr(rounds, "enqueue_stored", enqueue_until_redis_goes)
    flow, path = accord.flows["demo"], long_list(tmp_path, 200)
    origin = Origin("supporters", "", "", "camille", path.name, "")
    with pytest.raises(redis.ConnectionError):
        rounds.start_round(accord, flow, path, origin)
    assert accord.store.unsettled(flow)  # the batch admitted but not queued is still on file
    monkeypatch.setattr(rounds, "enqueue_stored", enqueue_stored)
    if then == "resume":
        assert resume(accord, flow)[1] >= 1
    report = rounds.start_round(accord, flow, path, origin)  # the rest of the file, if the first run stopped early
    assert report.recovered == 0 if then == "resume" else report.recovered >= 1
    assert report.counts["queued"] + report.counts["already asked"] == 200
    assert accord.store.unsettled(flow) == []
    numbers = queued_numbers(accord)
    assert sorted(numbers) == [f"+33612{n // 10000:02d}{n // 100 % 100:02d}{n % 100:02d}/A" for n in range(200)]


def test_a_dry_run_leaves_no_admitted_batch(accord, contacts):
    start(accord, "demo", contacts, "--dry-run")
    assert accord.store.unsettled(accord.flows["demo"]) == []


def test_a_command_meeting_no_redis_says_so_in_one_line(config, tmp_path):
    away = build(dataclasses.replace(config, redis_url=f"unix://{tmp_path}/no-redis.sock"))
    result = CliRunner().invoke(main, ["round", "status", "demo"], obj=Services(away))
    assert result.exit_code == 1
    assert result.output.startswith("Error: Redis did not answer (") and "REDIS_URL" in result.output
    assert "Traceback" not in result.output


def test_a_batch_already_sending_follows_a_new_rate(accord, twilio, monkeypatch):
    flow = accord.flows["demo"]
    accord.store.set_round(flow, rate="20")
    monkeypatch.setattr(sending, "RATE_REREAD", 0)  # read the rate again before every number
    intervals: list[float] = []

    def next_slot(_flow, interval):
        intervals.append(interval)
        if len(intervals) == 3:
            accord.store.set_round(flow, rate="10")  # as a second `round start --rate 10` does
        return 0.0

    monkeypatch.setattr(accord.store, "next_slot", next_slot)
    sending.enqueue(accord, "requests", flow, ASKABLE)
    work(accord)
    assert intervals == pytest.approx([sending.PACE_MARGIN / 20] * 3 + [sending.PACE_MARGIN / 10])
    assert len(twilio.messages) == 4
