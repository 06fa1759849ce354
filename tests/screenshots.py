"""Take the README's screenshots: a round, a day of answers, then the dev phone and the console, in French, in Chromium.

    .venv/bin/python -m tests.screenshots [--out docs]

Everything runs locally: its own Redis in a temporary folder, the outbox gateway, a settable clock
(a Tuesday in December 2026), answers posted through the signed webhook. Not part of the suite.
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
from twilio.request_validator import RequestValidator

from bot import create_app, use
from bot.config import Config
from bot.embedded import ensure_embedded
from bot.operators import Operators
from bot.rounds import Origin, start_round
from bot.sending import queue_for
from tests.browser import MISSING, available, chromium, serve
from tests.conftest import PARIS, Clock

ROOT = Path(__file__).resolve().parent.parent
FLOW = "presidentielle-2027"
VOTERS = 60
PASSWORD = "correct horse battery"
# What the voters answer, in turn (None: no answer); the first voter is the one the dev phone shows.
ANSWERS = ("Qui êtes-vous ?", "oui", "OUI", None, "non merci", "Oui !", "STOP", None, "ok", "d'accord", "euh ?",
           "Non", None, "oui")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.screenshots", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where the PNG files go")
    args = parser.parse_args(argv)
    if not available():
        print(f"cannot take screenshots: {MISSING}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="accord-screenshots-") as folder:
        work = Path(folder)
        url = ensure_embedded(work / "redis")
        try:
            shoot(work, url, args.out)
        finally:
            redis.Redis.from_url(url).shutdown(nosave=True)
    return 0


def shoot(work: Path, redis_url: str, out: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    clock = Clock(dt.datetime(2026, 12, 1, 8, 45, tzinfo=PARIS))
    config = Config(flows_dir=ROOT / "flows", instance_dir=work / "instance", suppression_key=b"s" * 32,
                    auth_token=secrets.token_hex(16), redis_url=redis_url)
    app = create_app(config, clock=clock)
    accord = app.extensions["accord"]
    use(accord)
    flow = accord.flows[FLOW]
    phones = [f"+336123{n:05d}" for n in range(1, VOTERS + 1)]
    contacts = work / "datavote-2026-12.csv"
    contacts.write_text("telephone;commune\n" + "".join(f"0{p[3:]};Lyon\n" for p in phones), encoding="utf-8")
    origin = Origin(source_type="broker", broker=flow.source, contract="DV-2027-001", operator="camille",
                    file=contacts.name, imported_at="2026-12-01T07:45:00+00:00")
    start_round(accord, flow, contacts, origin, rate=1000)
    SimpleWorker([queue_for(accord)], connection=accord.store.redis).work(burst=True)

    client, validator = app.test_client(), RequestValidator(config.auth_token)
    for index, phone in enumerate(phones[1:], start=1):  # a day of answers, spread over the hours
        clock.advance(minutes=11)
        body = ANSWERS[index % len(ANSWERS)]
        if body is not None:
            text(client, validator, phone, flow.sender, body)
    Operators(accord.store.redis).add("camille", PASSWORD)

    out.mkdir(parents=True, exist_ok=True)
    with serve(app) as site, chromium(work / "chromium", width=1200, height=1000) as browser:
        in_french(browser)
        browser.get(f"{site}/dev/phone?phone=%2B{phones[0][1:]}&flow={FLOW}")
        say(browser, "Qui êtes-vous ?", 2)
        say(browser, "oui", 5)
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(out / "dev-phone.png"))

        browser.get(f"{site}/console/login")
        browser.find_element(By.NAME, "name").send_keys("camille")
        browser.find_element(By.NAME, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        WebDriverWait(browser, 10).until(lambda b: b.current_url.endswith("/console/"))
        browser.get(f"{site}/console/flows/{FLOW}")
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1200, height + 140)
        browser.save_screenshot(str(out / "console.png"))
    print(f"wrote {out / 'dev-phone.png'} and {out / 'console.png'}")


def text(client, validator: RequestValidator, phone: str, to: str, body: str) -> None:
    """Post a signed inbound text, as Twilio would."""
    params = {"MessageSid": "SM" + secrets.token_hex(16), "AccountSid": "AC" + "0" * 32, "From": phone, "To": to,
              "Body": body, "NumMedia": "0"}
    signature = validator.compute_signature("http://localhost/sms/inbound", params)
    answer = client.post("/sms/inbound", data=params, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200, answer.status_code


def in_french(browser) -> None:
    """Have the browser ask for French, the language of the campaign's staff and of the pages shown."""
    agent = browser.execute_script("return navigator.userAgent")
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setUserAgentOverride", {"userAgent": agent, "acceptLanguage": "fr-FR,fr"})


def say(browser, body: str, bubbles: int) -> None:
    """Type an answer in the dev phone and wait until the thread holds `bubbles` messages."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.find_element(By.ID, "body").send_keys(body)
    browser.find_element(By.ID, "send").click()
    WebDriverWait(browser, 10).until(
        lambda b: b.execute_script("return document.querySelectorAll('#thread .bubble').length") >= bubbles)


if __name__ == "__main__":
    sys.exit(main())
