"""Workers keep the ledger's stream short by themselves, and the proof tools read the archive folder unasked."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot import Accord, archivist
from bot.cli import Services, main
from bot.keys import ledger_key
from bot.workers import SendingWorker
from tests.conftest import SMS

VOTERS = [f"+336129800{n:02d}" for n in range(12)]


def run(accord: Accord, *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(main, list(args), obj=Services(accord), catch_exceptions=False)
    assert result.exit_code == code, result.output + result.stderr
    return result


@pytest.fixture
def config(config, tmp_path: Path):
    return dataclasses.replace(config, archive_dir=tmp_path / "ledger-archive")


@pytest.fixture
def talked(accord: Accord, sms: SMS) -> None:
    """Twelve numbers asked (twelve entries), the first answering OUI (one more)."""
    flow = accord.flows["demo"]
    for phone in VOTERS:
        accord.store.claim(flow, phone, window_open=True)
    sms.send(VOTERS[0], "oui")


def test_upkeep_moves_all_but_the_newest_entries_to_the_folder(accord, talked, config):
    trimmed = archivist.keep_up(accord, above=5, keep=3)
    assert trimmed == {"demo": 10}
    assert accord.store.redis.xlen(ledger_key("demo")) == 3
    files = sorted(path.name for path in config.archive_dir.iterdir())
    assert len(files) == 2 and files[0].startswith("ledger.demo.") and files[1] == "personal.demo.1.jsonl"
    # Under the threshold, nothing more goes.
    assert archivist.keep_up(accord, above=5, keep=3) == {}


def test_a_long_stream_goes_off_redis_a_file_at_a_time(accord, talked, config):
    assert archivist.keep_up(accord, above=5, keep=3, at_once=4) == {"demo": 4}  # the oldest 4
    assert archivist.keep_up(accord, above=5, keep=3, at_once=4) == {"demo": 4}
    assert archivist.keep_up(accord, above=4, keep=3, at_once=4) == {"demo": 2}  # down to the newest 3
    assert accord.store.redis.xlen(ledger_key("demo")) == 3
    assert len(list(config.archive_dir.glob("ledger.*"))) == 3
    assert run(accord, "consent", "verify", "demo").exit_code == 0


def test_the_proof_tools_read_the_archive_folder_by_themselves(accord, talked, tmp_path):
    archivist.keep_up(accord, above=5, keep=3)
    verified = run(accord, "consent", "verify", "demo").output
    assert "chain intact" in verified and "from its start: 10 archived entries, checked in their files" in verified
    exported = run(accord, "consent", "export", "demo", "--phone", VOTERS[0])
    record = json.loads(exported.stdout)
    assert record["requests"][0]["asked_at"]  # its time, read back from the archive file
    path = tmp_path / "bundle.json"
    run(accord, "consent", "export", "demo", "--phone", VOTERS[0], "--bundle", str(path))
    assert {entry["personal"]["event"] for entry in json.loads(path.read_text())["entries"]} == {"ask", "in:YES"}


def test_without_an_archive_folder_nothing_is_archived(accord, talked, config):
    accord.config = dataclasses.replace(config, archive_dir=None)
    assert archivist.keep_up(accord, above=5, keep=3) == {}
    assert accord.store.redis.xlen(ledger_key("demo")) == 13


def test_a_flow_another_worker_is_archiving_is_left_to_it(accord, talked):
    accord.store.redis.set(archivist.lock_key("demo"), "1")
    assert archivist.keep_up(accord, above=5, keep=3) == {}
    assert accord.store.redis.xlen(ledger_key("demo")) == 13


def test_a_worker_s_upkeep_archives(accord, talked, config):
    SendingWorker(accord, archive_above=5, archive_keep=3).run_maintenance_tasks()
    assert accord.store.redis.xlen(ledger_key("demo")) == 3
    assert len(list(config.archive_dir.glob("ledger.*"))) == 1


def test_an_access_request_shows_the_times_of_archived_entries(accord, talked):
    archivist.keep_up(accord, above=5, keep=3)
    shown = run(accord, "person", "show", VOTERS[0]).output
    assert "archived" not in shown
    assert "2026-12-01T" in shown and "in:YES" in shown and "ask" in shown


def test_files_a_killed_archiving_left_half_written_are_removed_by_the_next_upkeep(accord, talked, config):
    folder = config.archive_dir
    folder.mkdir(parents=True)
    old = time.time() - archivist.LOCK_SECONDS - 60
    left = {name: folder / name for name in (".ledger.demo.k1ll3d00.partial", ".personal.demo.k1ll3d01.partial",
                                              ".personal.demo.wr1t1ng0.partial", ".personal.demo-2.k1ll3d02.partial")}
    for name, path in left.items():
        path.write_bytes(b'{"pid": "0123456789abcdef", "sealed": "..."}\n')
        if "wr1t1ng" not in name:
            os.utime(path, (old, old))  # a worker killed more than a lock's lifetime ago
    archivist.keep_up(accord, above=5, keep=3)
    assert not left[".ledger.demo.k1ll3d00.partial"].exists()
    assert not left[".personal.demo.k1ll3d01.partial"].exists()
    assert left[".personal.demo.wr1t1ng0.partial"].exists()  # touched lately: maybe a live worker's
    assert left[".personal.demo-2.k1ll3d02.partial"].exists()  # another flow's: its own upkeep sweeps it
