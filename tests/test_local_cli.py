"""`python -m bot outbox` and `reply` as a newcomer runs them: the voter's thread, and at night why nothing goes."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bot import Accord, address
from bot.cli import Services, main
from tests.browser import serve
from tests.conftest import PARIS, ROOT

VOTER = "+33612980001"
NIGHT = dt.datetime(2026, 12, 2, 3, 0, tzinfo=PARIS)  # the demo flow sends 07:00-23:00
OPENS = "Wednesday 02 December 2026 07:00 CET"


def run(accord: Accord, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), obj=Services(accord), catch_exceptions=False)


@pytest.fixture
def flow(accord):
    return accord.flows["demo"]


@pytest.fixture
def site(app) -> Iterator[str]:
    with serve(app) as url:
        yield url


def start_round(accord: Accord, tmp_path: Path) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(f"telephone\n{VOTER}\n", encoding="utf-8")
    result = run(accord, "round", "start", "demo", str(contacts), "--source-type", "supporters")
    assert result.exit_code == 0, result.output


def ask(accord: Accord, flow) -> None:
    """Do what a worker does for one number in the window: claim it, send the request through the outbox."""
    outcome = accord.store.claim(flow, VOTER, window_open=True)
    sid = accord.gateway.send(VOTER, outcome.texts[0], sender=flow.sender)
    accord.store.record_sent(flow, VOTER, sid, outcome.texts[0])


def test_at_night_outbox_says_the_window_is_shut_when_it_opens_and_that_the_request_waits(
        accord, flow, clock, tmp_path):
    clock.set(NIGHT)
    start_round(accord, tmp_path)
    shown = run(accord, "outbox", VOTER).output
    assert f"{VOTER} ↔ {flow.sender} (demo, new)" in shown
    assert f"The sending window is closed now (before sending hours); it opens {OPENS}." in shown
    assert f"held back: {flow.texts.consent_request}" in shown
    everyone = run(accord, "outbox").output
    assert "The outbox has texted nobody yet." in everyone
    assert f"demo: The sending window is closed now (before sending hours); it opens {OPENS}." in everyone


def test_in_the_window_outbox_shows_no_window_note(accord, flow, tmp_path):
    start_round(accord, tmp_path)
    shown = run(accord, "outbox", VOTER).output
    assert "window" not in shown and f"held back: {flow.texts.consent_request}" not in shown


def test_outbox_shows_the_thread_as_the_dev_phone_does_requests_answers_and_the_voters_texts(
        accord, flow, sms):
    ask(accord, flow)
    sms.send(VOTER, "Qui êtes-vous ?")
    sms.send(VOTER, "oui")
    lines = run(accord, "outbox", VOTER).output.splitlines()
    assert lines[0] == f"{VOTER} ↔ {flow.sender} (demo, consented)"
    assert [line.split(None, 3)[2:] for line in lines[1:]] == [
        ["bot", flow.texts.consent_request], ["voter", "Qui êtes-vous ?"], ["bot", flow.texts.help],
        ["voter", "oui"], ["bot", flow.texts.confirmation], ["bot", flow.texts.content[0]]]
    assert lines[1].startswith("  01/12 10:00  bot  ")


def test_at_night_reply_oui_says_the_window_is_shut_and_names_the_content_held_back(
        accord, flow, clock, site):
    ask(accord, flow)
    clock.set(NIGHT)
    shown = run(accord, "reply", "--url", site, VOTER, "oui").output
    assert f"bot → {VOTER}: {flow.texts.confirmation}" in shown
    assert flow.texts.content[0] not in shown.split("held back: ")[0]  # not sent: named as held back
    assert f"The sending window is closed now (before sending hours); it opens {OPENS}." in shown
    assert f"held back: {flow.texts.content[0]}" in shown
    assert "python -m bot content send demo" in shown


def test_reply_judges_the_window_in_the_voters_own_calendar_region(accord, flow, clock, site):
    outcome = accord.store.claim(flow, VOTER, window_open=True, region="G")  # Guadeloupe: 22:00 at Paris's 03:00
    accord.store.record_sent(flow, VOTER, accord.gateway.send(VOTER, outcome.texts[0], sender=flow.sender),
                             outcome.texts[0])
    clock.set(NIGHT)
    shown = run(accord, "reply", "--url", site, VOTER, "oui").output
    assert f"bot → {VOTER}: {flow.texts.content[0]}" in shown
    assert "window" not in shown and "held back" not in shown


def test_in_the_window_reply_oui_brings_the_content_and_no_window_note(accord, flow, site):
    ask(accord, flow)
    shown = run(accord, "reply", "--url", site, VOTER, "oui").output
    assert f"bot → {VOTER}: {flow.texts.content[0]}" in shown
    assert "window" not in shown and "held back" not in shown


@pytest.mark.parametrize(("bind", "url"), [("127.0.0.1", "http://127.0.0.1"), ("0.0.0.0", "http://127.0.0.1"),
                                         ("::", "http://[::1]")])
def test_the_address_written_is_where_a_client_on_this_machine_reaches_the_socket(config, bind, url):
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.create_server((bind, 0), family=family) as listener:
        port = listener.getsockname()[1]
        assert address.announce(config.instance_dir, [listener], os.getpid()) == f"{url}:{port}"
    assert address.running(config.instance_dir) == f"{url}:{port}"
    address.forget(config.instance_dir, os.getpid() + 1)  # another server's exit leaves it
    assert address.running(config.instance_dir) == f"{url}:{port}"
    address.forget(config.instance_dir, os.getpid())
    assert not (config.instance_dir / address.FILE).exists()


def test_a_folder_that_cannot_be_written_costs_the_address_not_the_server(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("", encoding="utf-8")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        assert address.announce(blocked / "instance", [listener], os.getpid()) is None
    assert address.running(blocked / "instance") is None


def test_reply_posts_where_the_running_bot_wrote_its_address(accord, flow, config, site):
    ask(accord, flow)
    config.instance_dir.mkdir(parents=True, exist_ok=True)
    (config.instance_dir / address.FILE).write_text(f"{site} {os.getpid()}\n", encoding="utf-8")
    shown = run(accord, "reply", VOTER, "oui").output
    assert f"bot → {VOTER}: {flow.texts.confirmation}" in shown


def test_an_address_whose_server_is_gone_is_ignored(accord, config, site):
    gone = os.fork()
    if gone == 0:
        os._exit(0)
    os.waitpid(gone, 0)
    config.instance_dir.mkdir(parents=True, exist_ok=True)
    (config.instance_dir / address.FILE).write_text(f"{site} {gone}\n", encoding="utf-8")
    assert address.running(config.instance_dir) is None
    result = CliRunner().invoke(main, ["reply", VOTER, "oui"], obj=Services(accord))
    # Back to PORT, where nothing of this test answers (or someone else's bot refuses the signature).
    assert result.exit_code == 1 and f"http://127.0.0.1:{config.port}/sms/inbound" in result.output


def test_make_runs_printed_reply_reaches_the_bot_whatever_its_port(redis_url, redis_client, tmp_path):
    """Serve as the Procfile does on another PORT; `reply`, typed in a terminal without that PORT, finds it."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    instance = tmp_path / "instance"
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("TWILIO_", "OVH_", "PORT", "BIND", "PUBLIC_URL", "SUPPRESSION_KEY", "SECRET_KEY"))}
    env.update(INSTANCE_DIR=str(instance), REDIS_URL=redis_url, WEB_CONCURRENCY="1",
               PATH=f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}")
    web = next(line[4:] for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    server = subprocess.Popen(["sh", "-c", f"exec {web}"], cwd=ROOT, env={**env, "PORT": str(port)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while address.running(instance) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert address.running(instance) == f"http://127.0.0.1:{port}"  # the Procfile binds 0.0.0.0
        typed = subprocess.run([sys.executable, "-m", "bot", "reply", VOTER, "Qui êtes-vous ?"], cwd=ROOT,
                               env=env, capture_output=True, text=True, timeout=60)
        assert typed.returncode == 0, typed.stderr
        assert typed.stdout.startswith(f"bot → {VOTER}: Liste Demo.")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert not (instance / address.FILE).exists()
