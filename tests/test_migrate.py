"""Data written by an earlier version: refused until migrated, then read as it was."""

from __future__ import annotations

from dataclasses import replace

import pytest
import redis
from click.testing import CliRunner

from bot import Accord, archivist, create_server_app, states
from bot.cli import Services, main
from bot.keys import seen_slot
from bot.migrate import LegacyLayoutError
from tests.conftest import SMS, Clock, answers, forget_answer, kept_answer

ASKED, CONSENTED = "+33612345678", "+33698765432"


@pytest.fixture
def legacy(accord: Accord, redis_client: redis.Redis, clock: Clock) -> None:
    """What the earlier version left: one hash of 'state|asked|touched' per flow."""
    now = clock() - 3600
    redis_client.hset("accord:state:demo", mapping={ASKED: f"asked|{now:.3f}|{now:.3f}",
                                                    CONSENTED: f"consented|{now - 60:.3f}|{now:.3f}"})
    redis_client.hset("accord:funnel:demo", mapping={"asked": 1, "consented": 1, "answered": 1})


def cli(accord: Accord, *args: str):
    return CliRunner().invoke(main, list(args), obj=Services(accord))


def test_commands_and_servers_refuse_old_data_and_name_the_migration(accord, legacy, config, clock):
    refused = cli(accord, "round", "status", "demo")
    assert refused.exit_code != 0 and "python -m bot migrate" in refused.output and "demo" in refused.output
    with pytest.raises(LegacyLayoutError, match="python -m bot migrate"):
        create_server_app(config, clock=clock)


def test_migrated_states_answer_as_before_and_the_old_hash_is_gone(accord, legacy, redis_client, sms: SMS):
    flow = accord.flows["demo"]
    done = cli(accord, "migrate")
    assert done.exit_code == 0 and "demo: 2 number state(s) moved" in done.output
    assert not redis_client.exists("accord:state:demo")
    assert (accord.store.state(flow, ASKED), accord.store.state(flow, CONSENTED)) == ("asked", "consented")
    sms.send(ASKED, "oui")
    funnel = accord.store.funnel(flow)
    assert (funnel["asked"], funnel["consented"], funnel["answered"]) == (0, 2, 2)
    assert accord.store.release(flow, CONSENTED, 1) == "ok"
    again = cli(accord, "migrate")
    assert again.exit_code == 0 and "Nothing to migrate" in again.output
    assert cli(accord, "round", "status", "demo").exit_code == 0


def test_an_embedded_redis_started_by_an_earlier_version_gets_the_newer_settings(tmp_path):
    """`make run` finds its daemon already running: the compact-hash setting still applies to it."""
    from bot.embedded import ensure_embedded, spawn

    process, url = spawn(tmp_path)
    try:
        with redis.Redis.from_url(url) as client:
            client.config_set("hash-max-ziplist-entries", 128)  # as a daemon started before the setting
            assert ensure_embedded(tmp_path) == url
            assert client.config_get("hash-max-ziplist-entries") == {"hash-max-ziplist-entries": "1024"}
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def four_digits(accord: Accord, redis_client: redis.Redis, clock: Clock) -> None:
    """What the version before left: 10,000 hashes a flow, named by the numbers' last four digits."""
    now = clock() - 3600
    redis_client.hset("accord:state:demo:5678", "3361234", states.encode("asked", now, now))
    redis_client.hset("accord:state:demo:5432", "3369876", states.encode("consented", now - 60, now))
    redis_client.hset("accord:funnel:demo", mapping={"asked": 1, "consented": 1, "answered": 1})


def test_hashes_of_four_digits_are_refused_then_moved_to_those_of_five(accord, four_digits, redis_client, sms: SMS,
                                                                        config, clock):
    refused = cli(accord, "round", "status", "demo")
    assert refused.exit_code != 0 and "python -m bot migrate" in refused.output
    with pytest.raises(LegacyLayoutError, match="python -m bot migrate"):
        create_server_app(config, clock=clock)
    done = cli(accord, "migrate")
    assert done.exit_code == 0 and "demo: 2 number state(s) moved" in done.output
    assert not redis_client.exists("accord:state:demo:5678", "accord:state:demo:5432")
    flow = accord.flows["demo"]
    assert (accord.store.state(flow, ASKED), accord.store.state(flow, CONSENTED)) == ("asked", "consented")
    assert redis_client.hexists("accord:state:demo:45678", "336123")
    sms.send(ASKED, "oui")
    assert accord.store.state(flow, ASKED) == "consented"
    assert cli(accord, "migrate").output.strip().endswith("Nothing to migrate: the data is already in this "
                                                          "version's layout.")


def test_texts_an_earlier_version_processed_become_known_for_good(accord, redis_client, sms: SMS, tmp_path):
    flow = accord.flows["demo"]
    archived, held, erased, older = "+33612340001", "+33612340002", "+33612340003", "+33612340004"
    sids = {phone: "SM" + digit * 32 for phone, digit in ((archived, "1"), (erased, "3"), (older, "4"), (held, "2"))}
    for phone, sid in sids.items():
        accord.store.claim(flow, phone, window_open=True)
        sms.send(phone, "oui", sid=sid)
    accord.config = replace(accord.config, archive_dir=tmp_path / "archive")
    archivist.keep_up(accord, above=0, keep=2)  # all sealed but the last one's ask and "oui", still in Redis
    accord.store.claim(flow, "+33612340005", window_open=True)
    accord.store.step([flow], "+33612340005", "yes", inbound=True, message_sid="OVH1234567")  # an account's own id
    for phone in (erased, older):  # known by their kept answers alone, as an erasure leaves them
        accord.store.erase([flow], phone, whole=True, objection=True)
    # As an earlier version left them: no record; the answers gone with time, but two, one in a key of its own.
    kept = kept_answer(redis_client, sids[older])[0]
    for sid in sids.values():
        redis_client.hdel(*seen_slot(accord.store.seen_digest(sid)))
        if sid != sids[erased]:
            forget_answer(redis_client, sid)
    redis_client.set(f"accord:sid:{sids[older]}", kept, ex=3600)
    done = cli(accord, "migrate")
    assert done.exit_code == 0 and "4 inbound text(s) an earlier version processed" in done.output
    for sid in sids.values():
        assert redis_client.hexists(*seen_slot(accord.store.seen_digest(sid)))
    assert not redis_client.hexists(*seen_slot(accord.store.seen_digest("OVH1234567")))
    for phone in (archived, held):
        accord.store.erase([flow], phone, whole=False, objection=False)  # the flow's retention
        assert accord.store.claim(flow, phone, window_open=True).dest == "asked"  # a round asks it anew, say
        assert answers(sms.send(phone, "oui", sid=sids[phone])) == []  # the old "oui", replayed: nothing
        assert accord.store.state(flow, phone) == "asked"
