"""A real worker process for the tests: the bot's services on a fixed clock and a local Twilio server.

Run as `python -m tests.worker_process`; settings come from the environment the test sets.
"""

from __future__ import annotations

import os
from pathlib import Path

from bot import build, use
from bot.config import Config
from bot.gateways.twilio import TwilioGateway
from bot.workers import PICK_UP_EVERY, run_worker


def main() -> None:
    env = os.environ
    config = Config(flows_dir=Path(env["TEST_FLOWS_DIR"]), instance_dir=Path(env["TEST_INSTANCE_DIR"]),
                    suppression_key=env["TEST_SUPPRESSION_KEY"].encode(), auth_token=env["TEST_AUTH_TOKEN"],
                    redis_url=env["TEST_REDIS_URL"])
    gateway = TwilioGateway(env["TEST_TWILIO_SID"], env["TEST_TWILIO_TOKEN"], api_url=env["TEST_TWILIO_URL"])
    now = float(env["TEST_NOW"])
    accord = build(config, gateway=gateway, clock=lambda: now)
    use(accord)
    run_worker(accord, burst=env.get("TEST_BURST") == "1",
               pick_up_every=int(env.get("TEST_PICK_UP_EVERY", PICK_UP_EVERY)))


if __name__ == "__main__":
    main()
