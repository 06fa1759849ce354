"""The three WSGI apps the webhook benchmark serves under the same gunicorn settings.

gunicorn builds them in each worker with `bench.apps:ceiling()` and the like; their settings
come from BENCH_* environment variables set by bench/webhook.py.
"""

from __future__ import annotations

import os
from pathlib import Path
from xml.sax.saxutils import escape

from flask import Flask, Response, abort, request
from redis import Redis
from twilio.request_validator import RequestValidator

from bot import create_server_app
from bot.config import Config

ROOT = Path(__file__).resolve().parent.parent
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'
# A text of the length the bot answers with.
REFERENCE_TEXT = "Merci ! Accord enregistre. STOP pour l'annuler a tout moment. Liste Demo"
REFERENCE_STATE_KEY = "bench:reference:state"
REFERENCE_LEDGER_KEY = "bench:reference:ledger"
# The least a consent step must do: read and write the number's state and log the text, atomically.
REFERENCE_LUA = """
local previous = redis.call('HGET', KEYS[1], ARGV[1]) or 'new'
redis.call('HSET', KEYS[1], ARGV[1], 'replied')
redis.call('XADD', KEYS[2], '*', 'phone', ARGV[1], 'sid', ARGV[2], 'from', previous, 'body', ARGV[3])
return previous
"""


class FixedClock:
    """A clock that always reads the same instant, so every run meets the same sending window."""

    def __init__(self, epoch: float) -> None:
        self.epoch = epoch

    def __call__(self) -> float:
        return self.epoch


def ceiling() -> Flask:
    """Answer every inbound text with empty TwiML: the cost of Flask under gunicorn alone."""
    app = Flask(__name__)

    @app.post("/sms/inbound")
    def inbound() -> Response:
        return Response(EMPTY_TWIML, mimetype="application/xml")

    return app


def reference() -> Flask:
    """Do the unavoidable work once: check the signature, one Redis script, TwiML with one message."""
    app = Flask(__name__)
    validator = RequestValidator(os.environ["BENCH_AUTH_TOKEN"])
    client = Redis.from_url(os.environ["BENCH_REDIS_URL"], socket_timeout=2, socket_connect_timeout=1)
    step = client.register_script(REFERENCE_LUA)
    answer = (f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{escape(REFERENCE_TEXT)}'
              "</Message></Response>")

    @app.post("/sms/inbound")
    def inbound() -> Response:
        form = request.form
        url = request.host_url.rstrip("/") + request.path
        if not validator.validate(url, form, request.headers.get("X-Twilio-Signature", "")):
            abort(403)
        step(keys=[REFERENCE_STATE_KEY, REFERENCE_LEDGER_KEY],
             args=[form.get("From", ""), form.get("MessageSid", ""), form.get("Body", "")])
        return Response(answer, mimetype="application/xml")

    return app


def accord() -> Flask:
    """Build the real app: the repository's flows, the outbox gateway, a fixed clock."""
    config = accord_config()
    return create_server_app(config, clock=FixedClock(float(os.environ["BENCH_NOW"])))


def accord_config() -> Config:
    """Return the settings the benchmarked app runs with (also used to pre-claim voters)."""
    return Config(flows_dir=ROOT / "flows", instance_dir=Path(os.environ["BENCH_DIR"]) / "instance",
                  suppression_key=os.environ["BENCH_SUPPRESSION_KEY"].encode(),
                  auth_token=os.environ["BENCH_AUTH_TOKEN"], redis_url=os.environ["BENCH_REDIS_URL"])
