"""Data written by an earlier version: refused until migrated, then read as it was."""

from __future__ import annotations

import pytest
import redis
from click.testing import CliRunner

from bot import Accord, create_server_app, states
from bot.cli import Services, main
from bot.migrate import LegacyLayoutError
from tests.conftest import SMS, Clock

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
