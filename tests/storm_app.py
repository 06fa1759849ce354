"""The WSGI app the reply-storm test serves under gunicorn: the real app, on the test's Redis and clock.

gunicorn imports it in each worker (`tests.storm_app:app`, in place of the Procfile's `wsgi:app`);
its settings come from STORM_* environment variables set by tests/test_storm.py.
"""

from __future__ import annotations

import os
from pathlib import Path

from bot import create_server_app
from bot.config import Config

ROOT = Path(__file__).resolve().parent.parent


def storm_config() -> Config:
    """Return the settings the served app runs with, from the environment the test set."""
    env = os.environ
    return Config(flows_dir=ROOT / "flows", instance_dir=Path(env["STORM_INSTANCE_DIR"]),
                  suppression_key=env["STORM_SUPPRESSION_KEY"].encode(), auth_token=env["STORM_AUTH_TOKEN"],
                  redis_url=env["STORM_REDIS_URL"], public_url=env["STORM_PUBLIC_URL"])


_NOW = float(os.environ["STORM_NOW"])  # one instant for every worker: the same sending window throughout
app = create_server_app(storm_config(), clock=lambda: _NOW)
