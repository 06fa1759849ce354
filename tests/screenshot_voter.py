"""Take the README's picture of the voter's page, as a 360-px phone shows it.

    .venv/bin/python -m tests.screenshot_voter [--out docs]

A voter imported from a broker's file is asked by a worker, asks who is writing, answers OUI,
then texts MES DONNEES; the link opens in headless Chromium. Everything runs locally: its own
Redis in a temporary folder, the outbox gateway, a settable clock, texts through the signed
webhook. Not part of the suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import secrets
import sys
import tempfile
from pathlib import Path

import redis
from rq import SimpleWorker

from bot import create_app, use
from bot.config import Config
from bot.embedded import ensure_embedded
from bot.rounds import Origin, start_round
from bot.sending import queue_for
from tests.browser import MISSING, available, chromium, serve
from tests.conftest import PARIS, SMS, Clock, answers
from tests.test_browser_voter import as_phone

ROOT = Path(__file__).resolve().parent.parent
FLOW = "presidentielle-2027"
VOTER = "+33612345678"
NAME = "voter-page.png"
SCALE = 1.5  # a phone's sharper pixels, and a file of reasonable size


def take(out_dir: Path) -> Path:
    """Write the voter's page as a phone shows it to out_dir/voter-page.png; return its path."""
    if not available():
        raise RuntimeError(f"cannot take the screenshot: {MISSING}")
    with tempfile.TemporaryDirectory(prefix="accord-voter-screenshot-") as folder:
        work = Path(folder)
        url = ensure_embedded(work / "redis")
        try:
            return _shoot(work, url, out_dir)
        finally:
            redis.Redis.from_url(url).shutdown(nosave=True)


def _shoot(work: Path, redis_url: str, out_dir: Path) -> Path:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    clock = Clock(dt.datetime(2026, 12, 1, 9, 30, tzinfo=PARIS))
    token = secrets.token_hex(16)
    config = Config(flows_dir=ROOT / "flows", instance_dir=work / "instance", suppression_key=b"s" * 32,
                    auth_token=token, redis_url=redis_url)
    app = create_app(config, clock=clock)
    accord = app.extensions["accord"]
    use(accord)
    flow = accord.flows[FLOW]
    contacts = work / "datavote-2026-12.csv"
    contacts.write_text(f"telephone;commune\n0{VOTER[3:]};Lyon\n", encoding="utf-8")
    origin = Origin(source_type="broker", broker=flow.source, contract="DV-2027-001", operator="camille",
                    file=contacts.name, imported_at="2026-12-01T08:15:00+00:00")
    start_round(accord, flow, contacts, origin, rate=1000)
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)
    sms = SMS(app.test_client(), token)
    for minutes, body in ((12, "Qui êtes-vous ?"), (3, "oui")):
        clock.advance(minutes=minutes)
        sms.send(VOTER, body, to=flow.sender)
    clock.advance(days=2, hours=4)
    (text,) = answers(sms.send(VOTER, "MES DONNEES", to=flow.sender))
    path = re.search(r"(/v/[A-Za-z0-9_-]{43}) ", text).group(1)

    out_dir.mkdir(parents=True, exist_ok=True)
    picture = out_dir / NAME
    with serve(app) as site, chromium(work / "chromium") as browser:
        as_phone(browser, scale=SCALE)
        browser.get(site + path)
        browser.find_element(By.ID, "open").click()
        WebDriverWait(browser, 10).until(lambda b: b.current_url.endswith("/v/page"))
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                {"width": 360, "height": height, "deviceScaleFactor": SCALE, "mobile": True})
        browser.save_screenshot(str(picture))
    return picture


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.screenshot_voter", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where the PNG goes")
    args = parser.parse_args(argv)
    try:
        print(f"wrote {take(args.out)}")
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
