"""An erased or purged number is readable nowhere: keys, bitmaps, jobs, files. Only its HMAC stays.

One voter goes all the way: imported from a CSV (one of its lines rejected), asked by a worker
whose batch then fails on another number, delivered, answering OUI through the signed webhook,
exported to a file, sent content that the provider refuses. Then `person erase` (or `purge`,
the clock past the flow's end date), and every Redis key of every type is read back, RQ's
compressed job data included, and the bit at the number's offset of every string, and every
file the bot wrote, Redis's own append-only file too: none holds the number in any format.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import html
import json
import os
import re
import signal
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from unittest.mock import patch
from xml.etree import ElementTree

import pytest
import redis
from click.testing import CliRunner, Result
from rq import SimpleWorker
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from bot import Accord, compaction, create_app, sending, states, use
from bot.batches import Batches
from bot.cli import Services, main
from bot.flows import FlowError, load_flows
from bot.gateways import SendError
from bot.sending import enqueue, queue_for
from bot.web import i18n
from bot.workers import SendingWorker
from tests.conftest import PARIS, SMS, Clock, answers, forget_answer, kept_answer
from tests.flowfiles import NOTICE, TEXTS
from tests.test_console import Console

VOTER, OTHER, THIRD = "+33612980001", "+33612980002", "+33612980003"
OFFSET = 12_980_001  # the voter's bit in a flow's bitmaps: +33 6 00 00 00 00 is bit 0
FORMS = [VOTER, "0612980001", "06 12 98 00 01", "612980001", "33612980001", "06.12.98.00.01"]
CAMPAIGN = "presidentielle-2027"  # two content messages, an end date (2027-04-25), sender 38123
CONTACTS = f"""telephone;prenom;code postal
06 12 98 00 01;Camille;69007
{OTHER};Dominique;75011
06 12 98 00 01 (travail);Camille;69007
"""


def run(accord: Accord, *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), obj=Services(accord), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def work(accord: Accord) -> None:
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)


class BrokenLine:
    """A gateway whose connection to the provider breaks on one number: the job raises and fails."""

    def __init__(self, gateway, broken: str) -> None:
        self.gateway, self.broken = gateway, broken

    def send(self, to: str, *args, **kwargs) -> str:
        if to == self.broken:
            raise RuntimeError("connection to the provider lost")  # not a SendError: the job fails
        return self.gateway.send(to, *args, **kwargs)


@pytest.fixture
def redis_files(redis_client: redis.Redis) -> Iterator[Path]:
    """The test Redis's directory, its append-only file rewritten in plain commands (no RDB preamble,
    whose compression could hide a number)."""
    before = redis_client.config_get("aof-use-rdb-preamble")["aof-use-rdb-preamble"]
    redis_client.config_set("aof-use-rdb-preamble", "no")
    yield Path(redis_client.config_get("dir")["dir"])
    redis_client.config_set("aof-use-rdb-preamble", before)


def journey(accord: Accord, twilio, tmp_path: Path) -> None:
    """Take the voter through import, asking, a failed job, answering, an export and content."""
    flow = accord.flows[CAMPAIGN]
    given = tmp_path / "given"
    given.mkdir()
    (given / "contacts.csv").write_text(CONTACTS, encoding="utf-8")
    start = run(accord, "round", "start", CAMPAIGN, str(given / "contacts.csv"), "--contract", "DV-2027-001",
                "--operator", "camille", "--rate", "1000")
    assert "queued: 2" in start.output and "rejected: 1" in start.output
    gateway = accord.gateway
    accord.gateway = BrokenLine(gateway, OTHER)
    work(accord)
    accord.gateway = gateway
    assert FailedJobRegistry(queue=queue_for(accord)).count == 1  # its batch holds the voter too
    (request,) = twilio.messages
    sms = SMS(create_app(accord.config, gateway=accord.gateway, clock=accord.store.clock).test_client())
    sms.status(request["sid"], "delivered", to=VOTER)
    sms.send(VOTER, "OUI", to=flow.sender)
    assert accord.store.state(flow, VOTER) == "consented"
    (tmp_path / "out").mkdir()
    run(accord, "consent", "export", CAMPAIGN, "--phone", VOTER, "--output", str(tmp_path / "out" / "proof.jsonl"))
    twilio.fail_to(VOTER, status=400, code=21614)  # the provider refuses the next content
    assert "for 1 consented number" in run(accord, "content", "send", CAMPAIGN, "--message", "2").output
    work(accord)
    assert [f["event"] for f in accord.store.person(VOTER)[CAMPAIGN]][-2:] == ["content:2", "send_failed"]
    assert mentions(accord.store.redis, tmp_path, None)  # the scan sees the number before


def readable(value: bytes) -> Iterator[bytes]:
    """Yield a stored value as it is and as RQ may encode it: zlib-compressed, base64."""
    yield value
    for decode in (zlib.decompress, base64.b64decode, lambda raw: zlib.decompress(base64.b64decode(raw))):
        try:
            yield decode(value)
        except (zlib.error, binascii.Error, ValueError):
            continue


def key_contents(client: redis.Redis, key: bytes) -> list[bytes]:
    kind = client.type(key)
    if kind == b"string":
        return [client.get(key) or b""]
    if kind == b"hash":
        return [part for pair in client.hgetall(key).items() for part in pair]
    if kind == b"list":
        return client.lrange(key, 0, -1)
    if kind == b"set":
        return list(client.smembers(key))
    if kind == b"zset":
        return [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
    if kind == b"stream":
        return [part for entry_id, fields in client.xrange(key) for part in (entry_id, *fields, *fields.values())]
    raise AssertionError(f"{key!r}: a key of type {kind!r} this scan does not read")


def wait_for_rewrite(client: redis.Redis) -> None:
    deadline = time.monotonic() + 30
    while True:
        info = client.info("persistence")
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            break
        assert time.monotonic() < deadline, "Redis's append-only file rewrite did not end"
        time.sleep(0.05)
    assert info["aof_last_bgrewrite_status"] == "ok"


def mentions(client: redis.Redis, tmp_path: Path, redis_dir: Path | None) -> list[str]:
    """Say where the voter's number can still be read: key names and contents, bits, files."""
    found = []
    for key in client.scan_iter(count=1000):
        for value in [key, *key_contents(client, key)]:
            found += [f"{key!r}: {form}" for raw in readable(value) for form in FORMS if form.encode() in raw]
        if client.type(key) == b"string" and client.getbit(key, OFFSET):
            found.append(f"{key!r}: the bit at the number's offset")
        # A hash named by a number's last digits (its state, its seal record) holds the rest as a field.
        suffix = re.search(rb":(\d{1,6})$", key)
        if suffix and client.type(key) == b"hash":
            found += [f"{key!r}: field {field!r}, with the digits that name the hash" for field in client.hkeys(key)
                      if (field + suffix.group(1)).decode(errors="replace") == VOTER[1:]]
    given = tmp_path / "given" / "contacts.csv"  # the operator's file, not the bot's
    places = [path for path in tmp_path.rglob("*") if path.is_file() and path != given]
    if redis_dir is not None:
        wait_for_rewrite(client)
        # Redis 7 keeps its append-only file in parts, in a folder of their own (appendonlydir).
        places += [path for path in redis_dir.rglob("*") if path.is_file() and not path.is_socket()]
    for path in places:
        data = path.read_bytes()
        found += [f"{path}: {form}" for form in FORMS if form.encode() in data]
    return found


def test_an_erased_number_is_readable_nowhere_but_as_its_suppression_hmac(twilio_accord, twilio, tmp_path,
                                                                          redis_client, redis_files):
    accord = twilio_accord
    journey(accord, twilio, tmp_path)
    held = mentions(redis_client, tmp_path, None)
    assert any("with the digits that name the hash" in place for place in held)  # its state, seen by the search

    output = run(accord, "person", "erase", VOTER, "--yes").output
    assert f"{CAMPAIGN}: " in output and "erasure recorded" in output

    assert mentions(redis_client, tmp_path, redis_files) == []
    flow = accord.flows[CAMPAIGN]
    digest = accord.store.digest(VOTER)
    assert accord.store.is_suppressed(flow, VOTER)  # the HMAC, that keeps the objection
    assert any(digest.encode() in value for key in redis_client.scan_iter()
               for value in key_contents(redis_client, key))
    assert accord.store.admit(flow, [VOTER], dry_run=True) == "s"
    assert accord.store.verify_ledger(CAMPAIGN) is None
    assert accord.store.pid(digest) is None  # nothing ties the HMAC to the ledger's entries any more


def test_a_purged_number_is_readable_nowhere_and_never_asked_again(twilio_accord, twilio, tmp_path, clock: Clock,
                                                                  redis_client, redis_files):
    accord = twilio_accord
    journey(accord, twilio, tmp_path)

    clock.set(dt.datetime(2027, 4, 26, 10, 0, tzinfo=PARIS))  # the day after the flow's end date
    output = run(accord, "purge").output
    assert "consented: the flow's end date has passed" in output and "import rejects files" in output

    assert mentions(redis_client, tmp_path, redis_files) == []
    flow = accord.flows[CAMPAIGN]
    assert not accord.store.is_suppressed(flow, VOTER)  # retention is no objection
    assert accord.store.admit(flow, [VOTER], dry_run=True) == "a"  # the flow still knows, by the HMAC only
    assert accord.store.verify_ledger(CAMPAIGN) is None


# Where a number lives while it waits: a stored batch, named by the job.

def held_items(accord: Accord, job) -> list[str] | None:
    return Batches(accord.store).read(job.args[0], job.args[-1])


def test_jobs_carry_a_batch_id_and_a_finished_one_keeps_nothing_else(twilio_accord, twilio, tmp_path, redis_client):
    accord = twilio_accord
    path = tmp_path / "contacts.csv"
    path.write_text(f"telephone;code postal\n{VOTER};67000\n{OTHER};\n", encoding="utf-8")
    run(accord, "round", "start", "demo", str(path), "--source-type", "supporters", "--operator", "camille")
    (job,) = queue_for(accord).get_jobs()
    assert job.args[0] == "demo" and "+33" not in job.args[1] and "+33" not in job.description
    assert held_items(accord, job) == [f"{VOTER}/A", OTHER]  # the region of 67000 (Alsace)
    work(accord)
    assert sorted(m["to"] for m in twilio.messages) == [VOTER, OTHER]
    assert held_items(accord, job) is None and redis_client.zcard("accord:batches:demo") == 0
    assert Job.fetch(job.id, connection=redis_client).get_status() == "finished"


def test_a_deferred_batch_waits_by_reference_in_one_job(twilio_accord, twilio, clock: Clock):
    accord = twilio_accord
    clock.set(dt.datetime(2026, 12, 1, 23, 30, tzinfo=PARIS))  # the demo window is shut until 07:00
    enqueue(accord, "requests", accord.flows["demo"], [VOTER, OTHER, "+33612980003"])
    work(accord)
    (deferred,) = ScheduledJobRegistry(queue=queue_for(accord)).get_job_ids()
    job = Job.fetch(deferred, connection=accord.store.redis)
    assert "+33" not in job.args[1] and held_items(accord, job) == [VOTER, OTHER, "+33612980003"]
    assert accord.store.redis.zcard("accord:batches:demo") == 1  # the first batch went with its job


def test_erasure_reaches_a_batch_a_pause_parked_and_resume_sends_the_rest(twilio_accord, twilio):
    accord = twilio_accord
    flow = accord.flows["demo"]
    enqueue(accord, "requests", flow, [VOTER, OTHER])
    run(accord, "round", "pause", "demo")
    work(accord)
    (parked,) = accord.store.redis.lrange("accord:parked:demo", 0, -1)
    assert b"+33" not in parked
    run(accord, "person", "erase", VOTER, "--yes")
    assert Batches(accord.store).read("demo", parked.decode().rpartition("|")[2]) == [OTHER]
    assert "1 parked batch(es)" in run(accord, "round", "resume", "demo").output
    work(accord)
    assert [m["to"] for m in twilio.messages] == [OTHER]


def test_a_job_an_earlier_version_queued_with_its_numbers_is_migrated(twilio_accord, twilio):
    accord = twilio_accord
    legacy = queue_for(accord).enqueue(sending.send_requests, "demo", f"{VOTER},{OTHER}/75011")
    assert "1 job(s) carrying numbers" in run(accord, "migrate").output
    job = Job.fetch(legacy.id, connection=accord.store.redis)
    assert "+33" not in job.args[1] and "+33" not in job.description
    assert held_items(accord, job) == [VOTER, f"{OTHER}/75011"]
    work(accord)
    assert sorted(m["to"] for m in twilio.messages) == [VOTER, OTHER]


# Bitmaps: a purge leaves no bit, only the HMAC of who was asked.

def test_purge_moves_who_was_asked_from_the_bitmap_to_hmacs(accord, sms: SMS, clock: Clock, redis_client):
    flow = accord.flows["demo"]
    for phone in (VOTER, OTHER):
        accord.store.claim(flow, phone, window_open=True)
    sms.send(VOTER, "oui")  # content 1 goes with the thanks: its bit is set
    clock.advance(days=61)
    run(accord, "purge")
    assert accord.store.state(flow, OTHER) == "new"
    assert not redis_client.getbit("accord:queued:demo", OFFSET + 1)
    assert redis_client.smembers("accord:asked:demo") == {accord.store.digest(OTHER).encode()}
    assert accord.store.admit(flow, [OTHER, "+33612980003"], dry_run=True) == "aq"
    clock.advance(days=3 * 365)  # demo has no end date: consented numbers go 3 years after the last contact
    assert "consented: 1095 days after the last contact" in run(accord, "purge").output
    assert not redis_client.getbit("accord:queued:demo", OFFSET) and not redis_client.getbit("accord:content:demo:1",
                                                                                               OFFSET)
    assert accord.store.admit(flow, [VOTER], dry_run=True) == "a"


# Retention without an end date.

FLOW = """\
id = "{id}"
controller_id = "{id}-controller"
controller = "Liste {id}"
purpose = "recevoir les SMS de la campagne {id}"
source = "le courtier DataTest"
notice_url = "https://example.org/{id}"
poll_date = 2030-06-09
sender = "{sender}"
sending_days = "mon-sun"
{extra}
""" + NOTICE + TEXTS + """\
content = ["{{controller}} : message de campagne {id}. STOP pour ne plus recevoir"]
"""


def flows_dir(tmp_path: Path, name: str, **flows: str) -> Path:
    """Write flows (id -> extra TOML lines) in tmp_path/name, each on its own sender."""
    directory = tmp_path / name
    directory.mkdir()
    for n, (flow_id, extra) in enumerate(flows.items()):
        (directory / f"{flow_id}.toml").write_text(FLOW.format(id=flow_id, sender=f"3800{n}", extra=extra),
                                                   encoding="utf-8")
    return directory


def services(config, clock: Clock, directory: Path) -> tuple[Accord, SMS]:
    app = create_app(dataclasses.replace(config, flows_dir=directory), clock=clock)
    return app.extensions["accord"], SMS(app.test_client())


def with_messages(tmp_path: Path, name: str, count: int) -> Path:
    """Write flow alpha with `count` content messages in tmp_path/name."""
    directory = flows_dir(tmp_path, name, alpha="")
    path = directory / "alpha.toml"
    messages = ", ".join(f'"{{controller}} : message {n} alpha. STOP pour ne plus recevoir"'
                         for n in range(1, count + 1))
    path.write_text(re.sub(r"(?m)^content = .*$", lambda _: f"content = [{messages}]", path.read_text()),
                    encoding="utf-8")
    return directory


@pytest.mark.parametrize("how", ["person erase", "purge"])
def test_a_content_message_dropped_from_the_flow_file_keeps_nothing_of_an_erased_number(
        config, clock: Clock, redis_client, tmp_path, how):
    """Guard: the funnel's released messages in bot/store.py content_messages (erase.lua's bound)."""
    before, sms = services(config, clock, with_messages(tmp_path, "before", 2))
    alpha = before.flows["alpha"]
    before.store.claim(alpha, VOTER, window_open=True)
    sms.send(VOTER, "oui", to=alpha.sender)  # content 1 with the thanks
    assert before.store.release(alpha, VOTER, 2, region="") == "ok"  # content 2, in flight from a worker
    after, _ = services(config, clock, with_messages(tmp_path, "after", 1))  # the campaign dropped message 2
    assert len(after.flows["alpha"].texts.content) == 1
    if how == "purge":
        clock.advance(days=3 * 365 + 1)  # past any retention
    run(after, *(["person", "erase", VOTER, "--yes"] if how == "person erase" else ["purge"]))
    assert mentions(redis_client, tmp_path, None) == []


def test_a_batch_a_worker_stores_for_a_flow_the_purge_took_off_the_registry_is_erased_all_the_same(
        config, clock: Clock, redis_client, tmp_path):
    """Guard: the SADD to accord:held-flows in bot/lua/batch.lua."""
    before, _ = services(config, clock, flows_dir(tmp_path, "before", alpha="", beta=""))
    beta = before.flows["beta"]
    before.store.claim(beta, OTHER, window_open=True)
    after, _ = services(config, clock, flows_dir(tmp_path, "after", alpha=""))  # beta's file removed
    run(after, "purge")  # beta emptied, and taken off the registry rights requests read
    assert not redis_client.sismember("accord:held-flows", "beta")
    Batches(before.store).keep(beta, [VOTER])  # a worker started before still runs beta: it defers a number
    run(after, "person", "erase", VOTER, "--yes")
    assert mentions(redis_client, tmp_path, None) == []


def test_a_flow_removed_before_an_upgrade_keeps_nothing_the_erasure_misses_once_migrate_has_run(
        config, clock: Clock, redis_client, tmp_path):
    """Guard: the removed flows in bot/migrate.py held_flows (check_layout's and migrate's)."""
    now = clock()
    # As earlier versions left them: beta's states in hashes named by four digits, gamma's in one hash.
    redis_client.hset(states.state_key("beta", VOTER[-4:]), VOTER[1:-4], states.encode("consented", now, now))
    redis_client.hset("accord:state:gamma", VOTER, f"asked|{now}|{now}")
    for flow_id in ("beta", "gamma"):
        redis_client.hincrby(f"accord:funnel:{flow_id}", "m:new>asked", 1)
    after, _ = services(config, clock, flows_dir(tmp_path, "after", alpha=""))  # their files removed since
    refused = CliRunner().invoke(main, ["person", "erase", VOTER, "--yes"], obj=Services(after))
    assert refused.exit_code != 0 and "beta, gamma" in refused.output and "python -m bot migrate" in refused.output
    assert "beta: 1 number state(s) moved" in run(after, "migrate").output
    run(after, "person", "erase", VOTER, "--yes")
    assert mentions(redis_client, tmp_path, None) == []


@pytest.mark.parametrize("extra, problem", [
    ("retention_days = 1096", "retention_days: must be a whole number of days from expiry_days (7) to 1095"),
    ("retention_days = 6", "retention_days: must be a whole number of days from expiry_days (7)"),
    ('retention_days = "30"', "retention_days: must be a whole number"),
])
def test_a_retention_beyond_three_years_or_shorter_than_a_question_is_refused(tmp_path, extra, problem):
    with pytest.raises(FlowError, match=re.escape(problem)):
        load_flows(flows_dir(tmp_path, "flows", alpha=extra))


def test_retention_days_bounds_every_state_of_a_flow_without_end_date(config, clock: Clock, redis_client, tmp_path):
    accord, sms = services(config, clock, flows_dir(tmp_path, "flows", alpha="retention_days = 30"))
    flow = accord.flows["alpha"]
    assert flow.end_date is None and flow.retention_days == 30
    for phone in (VOTER, OTHER):
        accord.store.claim(flow, phone, window_open=True)
    sms.send(VOTER, "oui", to=flow.sender)
    clock.advance(days=29)
    assert "nothing is due" in run(accord, "purge").output
    clock.advance(days=1)
    output = run(accord, "purge").output
    assert "removed 1: alpha: consented: 30 days after the last contact (retention_days)" in output
    assert "removed 1: alpha: no answer: 30 days after the request" in output
    assert accord.store.person(VOTER) == {} and accord.store.person(OTHER) == {}


# A flow whose file was removed.

def test_a_removed_flows_numbers_are_shown_erased_and_purged(config, clock: Clock, redis_client, tmp_path):
    before, sms = services(config, clock, flows_dir(tmp_path, "before", alpha="", beta=""))
    beta = before.flows["beta"]
    for phone in (VOTER, OTHER):
        before.store.admit(beta, [phone])
        before.store.claim(beta, phone, window_open=True)
        before.store.record_sent(beta, phone, "SM" + phone[-8:] * 4, beta.texts.consent_request)
    sms.send(VOTER, "oui", to=beta.sender)
    stranded = ["+33612980003", "+33739980004"]  # queued, never asked: only their bits say so
    assert before.store.admit(beta, stranded) == "qq"
    after, _ = services(config, clock, flows_dir(tmp_path, "after", alpha=""))
    assert "beta" not in after.flows

    assert f"{VOTER} in beta: (its flow file was removed)" in run(after, "person", "show", VOTER).output
    output = run(after, "person", "erase", VOTER, "--yes").output
    assert "nothing held" not in output and "beta: 3 ledger entries erased" in output  # ask, sent, OUI
    assert mentions(redis_client, tmp_path, None) == []  # the other number is +33612980002

    dry = run(after, "purge", "--dry-run").output
    assert "would remove 1: beta: (its flow file was removed)" in dry
    run(after, "purge")
    assert after.store.retired(after.flows) == []
    assert not [key for key in redis_client.scan_iter("accord:state:beta:*")]
    assert not redis_client.exists("accord:queued:beta", "accord:content:beta:1")
    assert after.store.pid(after.store.digest(OTHER)) is None
    # Who was asked stays as HMACs; numbers queued but never asked leave nothing at all.
    assert redis_client.smembers("accord:asked:beta") == {after.store.digest(OTHER).encode()}
    assert after.store.verify_ledger("beta") is None  # the chain stays, tied to no one
    assert "nothing is due" in run(after, "purge").output
    # Emptied, it is off the registry: no rights request reads it again, nor walks the keyspace for it.
    assert not redis_client.sismember("accord:held-flows", "beta")
    redis_client.config_resetstat()
    run(after, "person", "show", VOTER)
    assert "cmdstat_scan" not in redis_client.info("commandstats")


def test_a_removed_flow_holding_only_states_is_still_found_and_purged(config, clock: Clock, redis_client, tmp_path):
    before, _ = services(config, clock, flows_dir(tmp_path, "before", alpha="", beta=""))
    beta = before.flows["beta"]
    before.store.admit(beta, [VOTER])
    before.store.claim(beta, VOTER, window_open=True)
    before.store.retire(beta.id)  # it ended: its bitmaps went, its states stay until due
    redis_client.delete("accord:admitted:beta", "accord:batches:beta")  # and its rounds are long done
    after, _ = services(config, clock, flows_dir(tmp_path, "after", alpha=""))
    assert [flow.id for flow in after.store.retired(after.flows)] == ["beta"]
    assert after.store.unlist_emptied(after.flows) == []  # it still holds a state: it stays listed
    run(after, "purge")
    assert after.store.retired(after.flows) == [] and after.store.person(VOTER) == {}


def test_flows_and_objection_lists_are_found_by_their_registries_once_listed(config, clock: Clock, redis_client,
                                                                             tmp_path):
    before, sms = services(config, clock, flows_dir(tmp_path, "before", alpha="", beta="", gamma=""))
    # Read once on an empty Redis: listed for good, no SCAN of the keyspace will fill them again.
    assert before.store.retired([]) == [] and before.store.objection_lists() == []
    before.store.admit(before.flows["beta"], [VOTER])  # an import alone
    sms.send(OTHER, "STOP", to=before.flows["gamma"].sender)  # a text alone: an objection on gamma's list
    after, _ = services(config, clock, flows_dir(tmp_path, "after", alpha=""))

    assert [flow.id for flow in after.store.retired(after.flows)] == ["beta", "gamma"]
    assert after.store.unlist_emptied(after.flows) == []  # beta holds a batch and a bit, gamma a state
    assert after.store.objection_lists() == ["gamma-controller"]
    run(after, "person", "erase", VOTER, "--yes")
    assert mentions(redis_client, tmp_path, None) == []  # beta's batch and bit went with the rest
    assert redis_client.hexists("accord:suppressed:gamma-controller", after.store.digest(VOTER))


def test_an_erasure_s_objection_on_a_flow_never_run_reaches_its_list_once_the_flow_is_removed(
        config, clock: Clock, redis_client, tmp_path):
    before, _ = services(config, clock, flows_dir(tmp_path, "before", alpha="", beta=""))
    assert before.store.objection_lists() == []  # listed for good
    run(before, "person", "erase", VOTER, "--yes")  # beta never ran: its controller's list begins here
    after, _ = services(config, clock, flows_dir(tmp_path, "after", alpha=""))
    run(after, "person", "erase", OTHER, "--yes")
    assert redis_client.hexists("accord:suppressed:beta-controller", after.store.digest(OTHER))


def test_a_redis_from_before_the_registries_is_listed_from_its_keys(config, clock: Clock, redis_client, tmp_path):
    before, sms = services(config, clock, flows_dir(tmp_path, "before", alpha="", beta=""))
    before.store.admit(before.flows["beta"], [VOTER])
    sms.send(OTHER, "STOP", to=before.flows["beta"].sender)
    redis_client.delete("accord:held-flows", "accord:held-flows:listed", "accord:objection-lists",
                        "accord:objection-lists:listed")  # as an earlier version left Redis
    after, _ = services(config, clock, flows_dir(tmp_path, "after", alpha=""))

    assert [flow.id for flow in after.store.retired(after.flows)] == ["beta"]
    assert after.store.objection_lists() == ["beta-controller"]
    redis_client.delete("accord:funnel:beta")  # listed now: the registry, not the keys, names them
    assert [flow.id for flow in after.store.retired(after.flows)] == ["beta"]
    assert after.store.objection_lists() == ["beta-controller"]


def test_the_daily_purge_lists_what_a_process_of_an_earlier_version_wrote_meanwhile(config, clock: Clock,
                                                                                   redis_client, tmp_path):
    before, _ = services(config, clock, flows_dir(tmp_path, "before", alpha="", beta=""))
    assert before.store.retired([]) == []  # listed for good
    before.store.admit(before.flows["beta"], [VOTER])
    redis_client.srem("accord:held-flows", "beta")  # written by an earlier version's worker, which lists nothing
    after, _ = services(config, clock, flows_dir(tmp_path, "after", alpha=""))
    assert after.store.retired(after.flows) == []
    assert "beta: batches not sent (its flow file was removed)" in run(after, "purge").output
    assert mentions(redis_client, tmp_path, None) == []


def test_showing_and_erasing_a_number_walk_no_keyspace_when_every_flow_is_loaded(accord, sms: SMS, redis_client):
    accord.store.claim(accord.flows["demo"], VOTER, window_open=True)
    sms.send(VOTER, "oui")
    accord.store.retired(accord.flows)  # listed once, as the first rights request after an upgrade does
    accord.store.objection_lists()
    redis_client.config_resetstat()
    run(accord, "person", "show", VOTER)
    run(accord, "person", "erase", VOTER, "--yes")
    assert "cmdstat_scan" not in redis_client.info("commandstats")


# Files: an import's rejected lines and exports, 30 days.

def test_rejects_and_exports_on_disk_go_after_30_days(accord, sms: SMS, clock: Clock, tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_text(f"telephone\n{VOTER}\n01 45 67 89 10\n", encoding="utf-8")
    run(accord, "round", "start", "demo", str(path), "--source-type", "supporters", "--operator", "camille")
    rejects = accord.config.instance_dir / "rejects" / "contacts.csv.rejects.csv"
    accord.store.claim(accord.flows["demo"], VOTER, window_open=True)
    exports = [tmp_path / "proof.jsonl", tmp_path / "edited.jsonl"]
    for export in exports:
        run(accord, "consent", "export", "demo", "--output", str(export))
    exports[1].write_text("the operator's own notes\n", encoding="utf-8")  # no longer the bot's file
    clock.advance(days=29, hours=23)
    assert "files, 30 days after" not in run(accord, "purge").output
    clock.advance(hours=1)
    output = run(accord, "purge").output
    assert "removed 1: import rejects files, 30 days after the import" in output
    assert "removed 1: export files, 30 days after the export" in output
    assert not rejects.exists() and not exports[0].exists() and exports[1].exists()


def test_no_bit_is_left_for_a_number_never_asked(accord, clock, redis_client):
    """A batch dropped unsent leaves no queued bit spelling the number."""
    demo = accord.flows["demo"]
    assert accord.store.admit(demo, ["+33612980001"]) == "q"
    clock.advance(days=61)
    assert CliRunner().invoke(main, ["purge"], obj=Services(accord)).exit_code == 0
    assert not redis_client.getbit(f"accord:queued:{demo.id}", 12_980_001)


# The voter's own page: its links and sessions hold the number, and go with it.

def voter_link(sms: SMS, phone: str = VOTER) -> str:
    """Text MES DONNEES; return the path of the one-time link the answer carries."""
    (text,) = [m.text or "" for m in ElementTree.fromstring(sms.send(phone, "MES DONNEES").data).iter("Message")]
    return re.search(r"(/v/[A-Za-z0-9_-]{43}) ", text).group(1)


def open_voter_page(client, path: str) -> None:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)
    assert client.post(path, data={"csrf_token": token}).status_code == 303


def test_person_erase_deletes_the_voters_links_and_page_sessions(app, accord, sms: SMS, redis_client, tmp_path):
    unused, used = voter_link(sms), voter_link(sms)
    voter = app.test_client()
    open_voter_page(voter, used)
    assert mentions(redis_client, tmp_path, None)
    run(accord, "person", "erase", VOTER, "--yes")
    assert mentions(redis_client, tmp_path, None) == []
    assert voter.get("/v/page").status_code == 404 and app.test_client().get(unused).status_code == 404


# Redis's files after an erasure (bot/compaction.py): the voter's page never waits for their rewrite.

def erase_on_the_page(voter) -> int:
    token = re.search(r'name="csrf_token" value="([^"]+)"', voter.get("/v/page").get_data(as_text=True)).group(1)
    return voter.post("/v/page/erase", data={"csrf_token": token, "confirm": "yes"}).status_code


def upkeep(accord: Accord) -> None:
    SendingWorker(accord).run_maintenance_tasks()


def test_the_voters_own_erasure_never_waits_for_redis_s_files_and_the_workers_rewrite_them(
        app, accord, sms: SMS, clock: Clock, redis_client, redis_files, tmp_path, caplog):
    voter = app.test_client()
    open_voter_page(voter, voter_link(sms))
    run(accord, "person", "erase", OTHER, "--yes")  # an operator's erasure: Redis rewrites its files at once
    wait_for_rewrite(redis_client)
    assert not compaction.pending(redis_client)

    # A moment later, the voter's own: within EVERY of the last rewrite, none starts.
    assert erase_on_the_page(voter) == 200
    assert compaction.pending(redis_client)
    held = mentions(redis_client, tmp_path, redis_files)
    assert held and all("appendonly" in place for place in held)  # Redis's own file alone, until its rewrite

    clock.advance(seconds=compaction.EVERY - 1)
    upkeep(accord)  # too soon after the last rewrite: none
    assert compaction.pending(redis_client)
    clock.advance(seconds=1)
    upkeep(accord)
    assert mentions(redis_client, tmp_path, redis_files) == []
    assert not compaction.pending(redis_client)
    clock.advance(seconds=compaction.EVERY)
    assert not compaction.keep_up(redis_client, clock)  # nothing pending: no rewrite of the whole dataset
    assert "may hold an erased number" not in caplog.text


@pytest.fixture
def slow_rewrites(redis_client: redis.Redis) -> Iterator[Callable[[], None]]:
    """Make Redis's rewrites of its files take a second or so from now on (a delay for each key written)."""
    before = redis_client.config_get("aof-use-rdb-preamble")["aof-use-rdb-preamble"]

    def slow() -> None:
        keys = redis_client.dbsize()
        assert keys, "a rewrite of nothing is quick however slow each key"
        redis_client.config_set("aof-use-rdb-preamble", "yes")  # the delay applies to the snapshot format
        redis_client.config_set("rdb-key-save-delay", str(1_000_000 // keys))

    yield slow
    redis_client.config_set("rdb-key-save-delay", "0")
    wait_for_rewrite(redis_client)
    redis_client.config_set("aof-use-rdb-preamble", before)


def rewriting(client: redis.Redis) -> bool:
    info = client.info("persistence")
    return bool(info["aof_rewrite_in_progress"] or info["aof_rewrite_scheduled"] or info["rdb_bgsave_in_progress"])


def kill_the_rewrite(client: redis.Redis) -> None:
    """Kill the process Redis forked to rewrite its files, as the system might: Redis records a failure."""
    server = client.info("server")["process_id"]
    for child in Path(f"/proc/{server}/task/{server}/children").read_text().split():
        os.kill(int(child), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while rewriting(client) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_rewrite_running_is_waited_out_on_the_command_line_and_not_on_the_voters_page(
        app, accord, sms: SMS, redis_client, slow_rewrites, caplog):
    voter = app.test_client()
    open_voter_page(voter, voter_link(sms))
    slow_rewrites()
    redis_client.bgrewriteaof()
    assert erase_on_the_page(voter) == 200
    assert compaction.pending(redis_client) and rewriting(redis_client)  # it did not wait for the one running
    assert "may hold an erased number" not in caplog.text  # nor asked Redis for one it would refuse

    run(accord, "person", "erase", OTHER, "--yes")  # waits the running one out, then has Redis start its own
    redis_client.config_set("rdb-key-save-delay", "0")
    wait_for_rewrite(redis_client)
    assert not compaction.pending(redis_client)
    assert "may hold an erased number" not in caplog.text


def test_an_erasure_stays_pending_while_redis_refuses_a_rewrite_or_answers_too_late(
        app, accord, sms: SMS, clock: Clock, redis_client, slow_rewrites, caplog, monkeypatch):
    voter = app.test_client()
    open_voter_page(voter, voter_link(sms))
    slow_rewrites()
    redis_client.bgrewriteaof()
    monkeypatch.setattr(compaction, "PATIENCE", 0.0)  # an operator's command that waited its longest
    run(accord, "person", "erase", OTHER, "--yes")
    assert compaction.pending(redis_client) and "may hold an erased number" in caplog.text
    redis_client.config_set("rdb-key-save-delay", "0")
    wait_for_rewrite(redis_client)

    calls = []

    def late() -> None:
        calls.append("asked")
        raise redis.exceptions.TimeoutError("Timeout reading from socket")  # a fork of a large dataset

    monkeypatch.setattr(accord.store.redis, "bgrewriteaof", late)
    clock.advance(seconds=compaction.EVERY)  # past the one refused
    assert erase_on_the_page(voter) == 200 and calls  # erased all the same, and the request closed
    assert compaction.pending(redis_client)

    def gone(*args, **kwargs):
        raise redis.exceptions.ConnectionError("Connection closed by server")

    monkeypatch.setattr(accord.store.redis, "time", gone)  # Redis gone between an erasure and its files
    run(accord, "person", "erase", VOTER, "--yes")  # ends as it should: the erasure is done
    assert "files not rewritten after an erasure" in caplog.text

    def unreadable(client) -> None:
        raise KeyError("run_id")  # a server answering INFO with less than Redis does

    monkeypatch.setattr(compaction, "settle", unreadable)
    upkeep(accord)  # and a worker's upkeep goes on
    assert "not rewritten after the erasures this time" in caplog.text
    monkeypatch.undo()
    assert "nothing is due" in run(accord, "purge").output  # where no worker runs, the daily purge has it done
    wait_for_rewrite(redis_client)
    assert not compaction.pending(redis_client)


def test_the_workers_ask_again_for_a_rewrite_that_failed_or_that_a_restart_cut_short(
        accord, clock: Clock, redis_client, slow_rewrites, caplog):
    accord.store.claim(accord.flows["demo"], VOTER, window_open=True)
    slow_rewrites()
    run(accord, "person", "erase", VOTER, "--yes")
    assert compaction.pending(redis_client) and rewriting(redis_client)  # not covered before Redis has finished
    kill_the_rewrite(redis_client)
    assert redis_client.info("persistence")["aof_last_bgrewrite_status"] == "err"
    redis_client.config_set("rdb-key-save-delay", "0")
    assert compaction.pending(redis_client) and "failed, or Redis restarted" in caplog.text
    assert not compaction.keep_up(redis_client, clock)  # within EVERY of the one that failed: not yet
    clock.advance(seconds=compaction.EVERY)
    upkeep(accord)
    wait_for_rewrite(redis_client)  # this one went through
    assert not compaction.pending(redis_client)

    caplog.clear()
    run(accord, "person", "erase", OTHER, "--yes")
    wait_for_rewrite(redis_client)
    started = redis_client.get("accord:compaction:started").decode()
    run_id = redis_client.info("server")["run_id"]
    redis_client.set("accord:compaction:started", started.replace(run_id, "0" * len(run_id)))  # restarted since
    assert compaction.pending(redis_client) and "failed, or Redis restarted" in caplog.text
    clock.advance(seconds=compaction.EVERY)
    upkeep(accord)
    wait_for_rewrite(redis_client)
    assert not compaction.pending(redis_client)


def french(app, epoch: float) -> str:
    """A moment as the console writes it for a reader of French (its default)."""
    with app.test_request_context():
        return i18n.moment(epoch, PARIS)


def files_card(console: Console) -> str:
    """The console's card on Redis's files, as its reader sees it (French by default)."""
    page = console.client.get("/console/").get_data(as_text=True)
    card = re.search(r'<section class="card" id="redis-files">(.*?)</section>', page, re.S).group(1)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", card)).split())


def test_the_command_line_and_the_console_say_whether_redis_s_files_still_hold_an_erasure(
        app, client, operators, accord, sms: SMS, clock: Clock, redis_client, slow_rewrites, monkeypatch, caplog):
    console = Console(client)
    console.sign_in()
    assert "Aucun effacement pour l'instant." in files_card(console)
    voter = app.test_client()
    open_voter_page(voter, voter_link(sms))
    for phone in (OTHER, THIRD):
        accord.store.claim(accord.flows["demo"], phone, window_open=True)
    slow_rewrites()
    output = run(accord, "person", "erase", OTHER, "--yes").output
    assert "Redis's files: being rewritten; 1 erasure leaves them once Redis has finished." in output
    asked = clock()

    # While that rewrite runs: the voter's own erasure, which asks for none, and an operator's that
    # Redis refuses (one still running once the command has waited its longest). Neither is covered.
    assert erase_on_the_page(voter) == 200
    monkeypatch.setattr(compaction, "PATIENCE", 0.0)
    clock.advance(seconds=90)  # the page writes the minute: a later one
    output = run(accord, "person", "erase", THIRD, "--yes").output
    assert "may hold an erased number" in caplog.text  # refused: the rewrite running says so
    assert "being rewritten; 1 erasure leaves them" in output
    assert "Redis's files still hold 2 erasures until their next rewrite, which the workers' upkeep asks for " \
           "every 2 minutes at most" in output
    card = files_card(console)
    assert "réécriture en cours 1 effacement quittera les fichiers de Redis" in card
    assert f"(demandée le {french(app, asked)})" in card  # the rewrite running, not the one refused since
    assert "en attente 2 effacements sont encore dans les fichiers de Redis" in card
    assert f"Dernière demande le {french(app, clock())}." in card

    kill_the_rewrite(redis_client)  # it failed: all three wait for the next
    redis_client.config_set("rdb-key-save-delay", "0")
    card = files_card(console)
    assert "réécriture en cours" not in card and "3 effacements sont encore dans les fichiers de Redis" in card
    output = run(accord, "purge", "--dry-run").output
    assert "being rewritten" not in output and "Redis's files still hold 3 erasures until their next" in output
    clock.advance(seconds=compaction.EVERY)
    upkeep(accord)
    wait_for_rewrite(redis_client)
    assert "Redis's files: no erased number left in them." in run(accord, "purge", "--dry-run").output
    card = files_card(console)
    assert "tous sortis Tous les numéros effacés sont sortis des fichiers de Redis" in card
    assert f"(réécriture demandée le {french(app, clock())})" in card
    console.client.post("/console/language", data={"lang": "en", "csrf_token": console.session_token()})
    assert "Every erased number is out of Redis's files" in files_card(console)

    def away(*keys):
        raise redis.exceptions.ConnectionError("Connection closed by server")

    monkeypatch.setattr(accord.store.redis, "mget", away)  # Redis gone once the command's work is done
    assert "Redis's files: not known whether they still hold erased numbers" in run(accord, "purge", "--dry-run").output
    assert "Not known: Redis did not answer." in files_card(console)  # and the rest of the page still shows


def test_a_redis_taking_snapshots_takes_one_after_an_erasure_and_one_keeping_no_files_rewrites_nothing(
        accord, redis_client, monkeypatch):
    kept = redis_client.config_get("appendonly")["appendonly"], redis_client.config_get("save")["save"]
    try:
        redis_client.config_set("appendonly", "no")
        wait_for_rewrite(redis_client)
        redis_client.config_set("save", "3600 1")  # snapshots only, as some deployments have
        accord.store.claim(accord.flows["demo"], VOTER, window_open=True)
        original = accord.store.redis.config_get

        def refused(*args, **kwargs):  # a managed service that refuses CONFIG: a snapshot is asked all the same
            raise redis.exceptions.ResponseError("unknown command 'CONFIG'")

        monkeypatch.setattr(accord.store.redis, "config_get", refused)
        run(accord, "person", "erase", VOTER, "--yes")
        monkeypatch.setattr(accord.store.redis, "config_get", original)
        deadline = time.monotonic() + 30
        while rewriting(redis_client) and time.monotonic() < deadline:
            time.sleep(0.05)
        # The snapshot came after the erasure: since, only the record that it was asked for.
        assert redis_client.info("persistence")["rdb_changes_since_last_save"] == 1
        assert not compaction.pending(redis_client)

        # One asked for, but not taken yet (Redis runs it after a rewrite of its other file): the last
        # snapshot Redis took, before the order, does not count.
        run(accord, "person", "erase", VOTER, "--yes")
        deadline = time.monotonic() + 30
        while rewriting(redis_client) and time.monotonic() < deadline:
            time.sleep(0.05)
        count, run_id, when, second, kinds = redis_client.get("accord:compaction:started").decode().split("|")
        redis_client.set("accord:compaction:started", f"{count}|{run_id}|{when}|{int(second) + 60}|{kinds}")
        assert compaction.pending(redis_client)

        redis_client.config_set("save", "")
        output = run(accord, "person", "erase", OTHER, "--yes").output  # nothing on disk: nothing to rewrite
        assert not compaction.pending(redis_client) and not rewriting(redis_client)
        assert "Redis's files: Redis keeps none, so an erasure leaves nothing in them." in output
    finally:
        redis_client.config_set("appendonly", kept[0])
        redis_client.config_set("save", kept[1])
        wait_for_rewrite(redis_client)


def test_purge_deletes_the_voters_links_and_page_sessions(app, accord, sms: SMS, clock: Clock, redis_client,
                                                          tmp_path):
    voter_link(sms)  # a link never used
    open_voter_page(app.test_client(), voter_link(sms))
    clock.advance(days=61)  # a number that only wrote: its record is due 60 days after its last text
    assert "demo: no answer: 60 days after the request" in run(accord, "purge").output
    assert mentions(redis_client, tmp_path, None) == []


# What the ledger and the access log keep of an export outlives the file: not the number in its name.

@pytest.mark.parametrize("option", ["--output", "--bundle"])
def test_an_export_named_after_the_number_leaves_nothing_of_it_once_erased(accord, sms: SMS, redis_client,
                                                                          tmp_path, option):
    accord.store.claim(accord.flows["demo"], VOTER, window_open=True)
    sms.send(VOTER, "oui")
    (tmp_path / "out").mkdir()
    named = tmp_path / "out" / "camille-06.12.98.00.01.json"  # how one answers one voter's request
    run(accord, "consent", "export", "demo", "--phone", VOTER, option, str(named))
    run(accord, "person", "erase", VOTER, "--yes")
    assert mentions(redis_client, tmp_path, None) == []


def test_purge_reaches_the_local_outbox(accord, clock: Clock, redis_client, tmp_path):
    given = tmp_path / "given"
    given.mkdir()
    (given / "contacts.csv").write_text(f"telephone\n{VOTER}\n", encoding="utf-8")
    run(accord, "round", "start", "demo", str(given / "contacts.csv"), "--source-type", "supporters",
        "--operator", "camille")
    use(accord)
    work(accord)
    assert [message["to"] for message in accord.store.outbox()] == [VOTER]
    clock.advance(days=61)  # never answered: due 60 days after the request
    assert "demo: no answer: 60 days after the request" in run(accord, "purge").output
    assert mentions(redis_client, tmp_path, None) == []


class ErasedWhileSending:
    """A gateway whose send to one number is still out when that number's erasure lands."""

    def __init__(self, accord: Accord, phone: str) -> None:
        self.accord, self.gateway, self.phone = accord, accord.gateway, phone

    def send(self, to: str, *args, **kwargs) -> str:
        sid = self.gateway.send(to, *args, **kwargs)
        if to == self.phone:
            run(self.accord, "person", "erase", to, "--yes")
        return sid


def start_voters_round(accord: Accord, tmp_path: Path) -> None:
    """Start a round of the campaign for the voter alone, from the operator's own file."""
    given = tmp_path / "given"
    given.mkdir()
    (given / "contacts.csv").write_text(f"telephone\n{VOTER}\n", encoding="utf-8")
    run(accord, "round", "start", CAMPAIGN, str(given / "contacts.csv"), "--contract", "DV-2027-001",
        "--operator", "camille")


def test_a_number_erased_while_its_request_is_out_is_not_stored_again_when_it_went(twilio_accord, twilio,
                                                                                   tmp_path, redis_client):
    accord = twilio_accord
    start_voters_round(accord, tmp_path)
    accord.gateway = ErasedWhileSending(accord, VOTER)
    work(accord)
    assert [message["to"] for message in twilio.messages] == [VOTER]  # it went, and the ledger says so
    assert [fields["kind"] for _, fields in accord.store.ledger(CAMPAIGN)][-2:] == ["erasure", "sent"]
    assert mentions(redis_client, tmp_path, None) == []
    assert accord.store.verify_ledger(CAMPAIGN) is None


def test_a_carrier_stop_coming_after_the_erasure_does_not_bring_the_number_back(accord, sms: SMS, redis_client,
                                                                                tmp_path):
    flow = accord.flows["demo"]
    accord.store.claim(flow, VOTER, window_open=True)
    sid = "SM" + "e" * 32
    accord.store.record_sent(flow, VOTER, sid, flow.texts.consent_request, in_flight=0)
    run(accord, "person", "erase", VOTER, "--yes")
    # The provider's late receipt: the voter had blocked the sender at the carrier (21610).
    assert sms.status(sid, "undelivered", to=VOTER, error_code="21610").status_code == 204
    assert accord.store.is_suppressed(flow, VOTER)  # the objection the erasure recorded holds
    assert mentions(redis_client, tmp_path, None) == []


class ErasedThenRefused(ErasedWhileSending):
    """A gateway that, while the send to one number is out, sees that number erased, then answers with `status`."""

    def __init__(self, accord: Accord, phone: str, status: int) -> None:
        super().__init__(accord, phone)
        self.status = status

    def send(self, to: str, *args, **kwargs) -> str:
        if to == self.phone:
            run(self.accord, "person", "erase", to, "--yes")
            # In Twilio's words for some refusals, which name the number (21612, 21211, 21408).
            raise SendError(20429 if self.status == 429 else 21612 if self.status == 400 else None, self.status,
                            f"The 'To' phone number: {to}, is not currently reachable using the 'From' phone number")
        return self.gateway.send(to, *args, **kwargs)


# The outcome unknown (left to the witness); certainly not sent; refused, in words naming the number.
@pytest.mark.parametrize("status", [500, 429, 400])
def test_a_number_erased_while_its_request_is_out_is_not_stored_again_when_it_failed(twilio_accord, tmp_path,
                                                                                     redis_client, status):
    """Guard: `without_number` in bot/store.py record_failure."""
    accord = twilio_accord
    start_voters_round(accord, tmp_path)
    accord.gateway = ErasedThenRefused(accord, VOTER, status)
    with patch("bot.sending.RETRY_PAUSE", 0):
        work(accord)
    assert "send_failed" in [fields["kind"] for _, fields in accord.store.ledger(CAMPAIGN)]  # the ledger says so
    assert mentions(redis_client, tmp_path, None) == []
    assert accord.store.verify_ledger(CAMPAIGN) is None


class BusyWhileItHappens(ErasedWhileSending):
    """A gateway too busy (429) for the first `times` sends to one number, while `meanwhile` happens to that
    number during the last of them."""

    def __init__(self, accord: Accord, phone: str, meanwhile: Callable[[], object], times: int = 1) -> None:
        super().__init__(accord, phone)
        self.meanwhile, self.left = meanwhile, times

    def send(self, to: str, *args, **kwargs) -> str:
        if to == self.phone and self.left:
            self.left -= 1
            if not self.left:
                self.meanwhile()
            raise SendError(20429, 429, "Too Many Requests")
        return self.gateway.send(to, *args, **kwargs)


@pytest.mark.parametrize("meanwhile", ["person erase", "STOP"])
def test_a_number_erased_or_objecting_while_its_send_waits_to_be_retried_gets_nothing(twilio_accord, twilio, tmp_path,
                                                                                    redis_client, meanwhile):
    """Guard: `still_ours` before each retry in bot/sending.py _send."""
    accord = twilio_accord
    flow = accord.flows[CAMPAIGN]
    start_voters_round(accord, tmp_path)
    if meanwhile == "STOP":
        happens = lambda: accord.store.step([flow], VOTER, "stop", body="STOP", inbound=True)  # noqa: E731
    else:
        happens = lambda: run(accord, "person", "erase", VOTER, "--yes")  # noqa: E731
    accord.gateway = BusyWhileItHappens(accord, VOTER, happens)
    with patch("bot.sending.RETRY_PAUSE", 0):
        work(accord)
    assert twilio.messages == []  # the retry did not go
    assert ScheduledJobRegistry(queue=queue_for(accord)).get_job_ids() == []  # nor waits to go later
    if meanwhile == "STOP":
        assert accord.store.state(flow, VOTER) == "opted_out"
    else:
        assert mentions(redis_client, tmp_path, None) == []


def test_content_a_voter_declined_while_it_waited_for_a_retry_goes_once_they_consent_again(
        twilio_accord, twilio, clock: Clock):
    """Guard: the give-back of `still_ours`'s content in bot/sending.py _send: its bit, for a later release."""
    accord, sms = twilio_accord, SMS(create_app(twilio_accord.config, gateway=twilio_accord.gateway,
                                                clock=clock).test_client())
    flow = accord.flows[CAMPAIGN]
    accord.store.claim(flow, VOTER, window_open=True)
    accord.store.step([flow], VOTER, "yes", inbound=True, body="oui")  # consented, content 1 as its answer
    accord.gateway = BusyWhileItHappens(accord, VOTER, lambda: sms.send(VOTER, "non", to=flow.sender))
    with patch("bot.sending.RETRY_PAUSE", 0):
        enqueue(accord, "content", flow, [VOTER], message=2)
        work(accord)
    assert twilio.messages == [] and accord.store.state(flow, VOTER) == "declined"
    assert answers(sms.send(VOTER, "oui", to=flow.sender)) == [flow.texts.confirmation]  # content 1 went before
    assert accord.store.release(flow, VOTER, 2) == "ok"  # content 2 never did: it may go now


def test_a_number_the_purge_takes_while_its_content_is_out_is_not_stored_again_when_the_provider_was_busy(
        config, clock: Clock, redis_client, twilio_accord, tmp_path):
    """Guard: the give-back's answer in bot/sending.py _send (a purge records no objection for batch.lua)."""
    accord, _ = services(config, clock, with_messages(tmp_path, "flows", 2))
    accord.gateway = twilio_accord.gateway
    use(accord)
    flow = accord.flows["alpha"]
    accord.store.claim(flow, VOTER, window_open=True)
    accord.store.step([flow], VOTER, "yes", inbound=True, body="oui")
    clock.advance(days=3 * 365)  # a consented number goes three years after its last contact
    # Busy for every try in place, the purge during the last: the content goes back, or would.
    accord.gateway = BusyWhileItHappens(accord, VOTER, lambda: run(accord, "purge"), times=sending.RETRIES + 1)
    with patch("bot.sending.RETRY_PAUSE", 0):
        enqueue(accord, "content", flow, [VOTER], message=2)
        work(accord)
    assert mentions(redis_client, tmp_path, None) == []


def answered_oui(accord: Accord, sid: str) -> SMS:
    """The voter asked in the campaign, then answering OUI in a text of that id; the webhook's client."""
    flow = accord.flows[CAMPAIGN]
    sms = SMS(create_app(accord.config, gateway=accord.gateway, clock=accord.store.clock).test_client())
    accord.store.claim(flow, VOTER, window_open=True)
    sms.send(VOTER, "OUI", to=flow.sender, sid=sid)
    return sms


def test_what_is_kept_under_an_erased_voters_text_says_nothing_of_them_and_its_replay_nothing(twilio_accord,
                                                                                            redis_client):
    accord, flow, sid = twilio_accord, twilio_accord.flows[CAMPAIGN], "SM" + "e" * 32
    sms = answered_oui(accord, sid)
    kept, ttl = kept_answer(redis_client, sid)
    assert b"consented" in kept  # how their state moved, kept 35 to 70 days for a replay
    run(accord, "person", "erase", VOTER, "--yes")
    kept, left = kept_answer(redis_client, sid)
    assert b"consented" not in kept and b"asked" not in kept
    assert 0 < left <= ttl  # still there, for as long
    entries = len(accord.store.ledger(CAMPAIGN))
    assert answers(sms.send(VOTER, "OUI", to=flow.sender, sid=sid)) == []  # the same text again: nothing
    assert len(accord.store.ledger(CAMPAIGN)) == entries and accord.store.state(flow, VOTER) == "new"


def test_an_answer_an_earlier_version_kept_under_an_erased_voters_text_says_nothing_of_them(twilio_accord,
                                                                                            redis_client):
    accord, sid = twilio_accord, "SM" + "f" * 32
    answered_oui(accord, sid)
    forget_answer(redis_client, sid)
    kept = json.dumps({"flow": CAMPAIGN, "from": "asked", "to": "consented", "says": ["confirmation", "content"]})
    redis_client.set(f"accord:sid:{sid}", kept, ex=3600)  # where an earlier version kept it, as JSON
    run(accord, "person", "erase", VOTER, "--yes")
    left = redis_client.get(f"accord:sid:{sid}")
    assert b"consented" not in left and b"asked" not in left and 0 < redis_client.ttl(f"accord:sid:{sid}") <= 3600


def test_an_import_named_after_the_number_leaves_nothing_of_it_once_erased(twilio_accord, tmp_path,
                                                                                     redis_client):
    accord = twilio_accord
    given = tmp_path / "operator"
    given.mkdir()
    contacts = given / "camille-06.12.98.00.01.csv"  # one supporter added by hand, the file named after them
    contacts.write_text(f"telephone\n{VOTER}\n01 45 67 89 10\n", encoding="utf-8")  # and a landline, rejected
    run(accord, "round", "start", CAMPAIGN, str(contacts), "--contract", "DV-2027-001", "--operator", "camille")
    work(accord)
    run(accord, "person", "erase", VOTER, "--yes")
    elsewhere = tmp_path / "nothing-written-here"
    elsewhere.mkdir()
    assert mentions(redis_client, elsewhere, None) == []  # the ledger's import entry, the round's origin
    imports = [fields["text"] for _, fields in accord.store.ledger(CAMPAIGN) if fields["kind"] == "import"]
    assert imports and all("camille-##.##.##.##.##.csv" in text for text in imports)
    # Nor in the name of the file its rejected lines went to.
    written = [path.name for path in accord.config.instance_dir.rglob("*")]
    assert "camille-##.##.##.##.##.csv.rejects.csv" in written
    assert not [name for name in written if any(form in name for form in FORMS)]


def test_a_record_nobody_can_read_goes_with_the_purge_once_its_flow_has_ended(accord, clock: Clock, redis_client,
                                                                            tmp_path):
    flow = accord.flows[CAMPAIGN]
    accord.store.step([flow], VOTER, "stop")  # an objection, kept as the HMAC whatever happens to the record
    redis_client.hset(*states.slot(flow.id, VOTER), "not a state record")  # damaged: its dates unreadable
    assert "unreadable" not in run(accord, "purge").output  # before the end date: `states check` shows it
    assert accord.store.state(flow, VOTER) == "unreadable"
    clock.set(dt.datetime(2027, 4, 26, 12, 0, tzinfo=PARIS))  # the day after the flow's end date
    assert f"{CAMPAIGN}: an unreadable record, after its end date" in run(accord, "purge").output
    assert mentions(redis_client, tmp_path, None) == []
    assert accord.store.is_suppressed(flow, VOTER)
