"""gunicorn's settings for the web app: the Procfile's `web:` line loads them with `-c python:bot.web_settings`.

A sync worker serves one text at a time and waits, idle, while Redis runs the step script. With
as many workers as cores, a core sits idle whenever its worker waits; gunicorn's rule of thumb,
twice the cores plus one, keeps them busy. At most 12, the top of the range gunicorn's docs
give for thousands of requests a second: each worker holds its own copy of the app (about
56 MB). WEB_CONCURRENCY (from the environment, or `.env` like every setting), which hosts such
as Heroku set for their machines, overrides it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bot import address
from bot.config import ROOT, Config, ConfigError, read_dotenv

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter

MOST_WORKERS = 12
MOST_WORKERS_SET = 256  # by WEB_CONCURRENCY: more is a typo, and would fork as many copies of the app


def default_workers() -> int:
    """Return gunicorn's suggested worker count for the cores this process may run on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(2 * cores + 1, MOST_WORKERS)


def worker_count(environ: Mapping[str, str]) -> int:
    """Return WEB_CONCURRENCY when set, else the default."""
    value = (environ.get("WEB_CONCURRENCY") or "").strip()
    if not value:
        return default_workers()
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value.lstrip("0")[:4] or "0") <= MOST_WORKERS_SET:
        raise ConfigError("WEB_CONCURRENCY", f"must be a number of web workers from 1 to {MOST_WORKERS_SET}, "
                          f"not {value[:20]!r}")
    return int(value)


workers = worker_count({**read_dotenv(ROOT / ".env"), **os.environ})


def when_ready(server: Arbiter) -> None:
    """Write where this server answers under instance/, once bound, so `reply` finds any PORT (bot/address.py)."""
    instance_dir = _instance_dir()
    if instance_dir is not None:
        address.announce(instance_dir, [listener.sock for listener in server.LISTENERS], server.pid)


def on_exit(server: Arbiter) -> None:
    """Remove the address this server wrote: nothing answers there any more."""
    instance_dir = _instance_dir()
    if instance_dir is not None:
        address.forget(instance_dir, server.pid)


def _instance_dir() -> Path | None:
    try:
        return Config.from_env().instance_dir
    except ConfigError:  # the workers, loading the app, stop on it and name the variable
        return None
