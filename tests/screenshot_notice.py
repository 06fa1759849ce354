"""Take docs/notice.png: the notice of flows/presidentielle-2027.toml on a 360-px phone, whole page.

    .venv/bin/python -m tests.screenshot_notice [--out docs]

Everything runs locally: its own Redis in a temporary folder, the real Twilio client against the
local Twilio-shaped server, a settable clock (a Tuesday in December 2026), one import from a
broker whose consent requests the worker sends, so the page shows an import, a count of messages
and Twilio as the processor. Not part of the suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import sys
import tempfile
from pathlib import Path

import redis
from rq import SimpleWorker

from bot import create_app, use
from bot.config import Config
from bot.embedded import ensure_embedded
from bot.gateways.twilio import TwilioGateway
from bot.rounds import Origin, start_round
from bot.sending import queue_for
from tests.browser import MISSING, available, chromium, serve
from tests.conftest import PARIS, Clock
from tests.twilio_server import TwilioServer

ROOT = Path(__file__).resolve().parent.parent
FLOW = "presidentielle-2027"
WIDTH = 360  # CSS pixels: the narrowest phone screen in common use
VOTERS = 40


def take(out_dir: Path) -> Path:
    """Write `out_dir`/notice.png and return its path."""
    with tempfile.TemporaryDirectory(prefix="accord-notice-") as folder:
        work = Path(folder)
        url = ensure_embedded(work / "redis")
        try:
            with TwilioServer() as twilio:
                gateway = TwilioGateway(twilio.account_sid, twilio.auth_token, api_url=twilio.base_url, timeout=2)
                return _shoot(work, url, gateway, out_dir)
        finally:
            redis.Redis.from_url(url).shutdown(nosave=True)


def _shoot(work: Path, redis_url: str, gateway: TwilioGateway, out_dir: Path) -> Path:
    clock = Clock(dt.datetime(2026, 12, 1, 8, 45, tzinfo=PARIS))
    config = Config(flows_dir=ROOT / "flows", instance_dir=work / "instance", suppression_key=b"s" * 32,
                    auth_token=secrets.token_hex(16), redis_url=redis_url)
    app = create_app(config, gateway=gateway, clock=clock)
    accord = app.extensions["accord"]
    use(accord)
    flow = accord.flows[FLOW]
    contacts = work / "datavote-2026-12.csv"
    contacts.write_text("telephone\n" + "".join(f"06123{n:05d}\n" for n in range(1, VOTERS + 1)), encoding="utf-8")
    origin = Origin(source_type="broker", broker="DataVote", contract="DV-2027-001", operator="camille",
                    file=contacts.name, imported_at="2026-12-01T07:45:00+00:00")
    start_round(accord, flow, contacts, origin, rate=1000)
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "notice.png"
    with serve(app) as site, chromium(work / "chromium") as browser:
        phone_screen(browser)
        browser.get(f"{site}/notice/{FLOW}")
        phone_screen(browser, browser.execute_script("return document.documentElement.scrollHeight"))
        browser.save_screenshot(str(path))
    return path


def phone_screen(browser, height: int = 800) -> None:
    """Make the page's viewport a phone's, WIDTH CSS pixels wide (a window is at least 500 wide)."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": True})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.screenshot_notice", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where notice.png goes")
    args = parser.parse_args(argv)
    if not available():
        print(f"cannot take the screenshot: {MISSING}", file=sys.stderr)
        return 1
    print(f"wrote {take(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
