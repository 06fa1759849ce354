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
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gunicorn.glogging import Logger

from bot import address
from bot.config import ROOT, Config, ConfigError, read_dotenv

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter

MOST_WORKERS = 12
MOST_WORKERS_SET = 256  # by WEB_CONCURRENCY: more is a typo, and would fork as many copies of the app
# What a path may hold that proves its holder: OVHcloud's callback secret, a voter's one-time link.
HELD_IN_PATH = re.compile(r"(?<=^/sms/ovh/)[^/]+|(?<=^/v/)(?!page(?:/|$))[^/]+")


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


def logged_path(path: str) -> str:
    """Return a request's path as the access log writes it: no query, and no secret or link token in it."""
    return HELD_IN_PATH.sub("…", path.partition("?")[0])


class AccessLog(Logger):
    """gunicorn's logger, writing each request without what the log must not keep.

    OVHcloud calls its callbacks with GET queries holding the voter's number and text, beside the
    secret that proves them (in the path); a voter's link is a path too, and the pages it opens
    send it on as their Referer. A log is read by more people than Redis and outlives any erasure.
    """

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        path = logged_path(environ.get("RAW_URI") or environ.get("PATH_INFO") or "")
        referer = urlsplit(environ.get("HTTP_REFERER", ""))
        atoms.update(r=f"{atoms['m']} {path} {atoms['H']}", U=logged_path(atoms["U"] or ""), q="",
                     f=f"{referer.scheme}://{referer.netloc}{logged_path(referer.path)}" if referer.netloc else "-")
        for name in ("{raw_uri}e", "{path_info}e", "{query_string}e", "{http_referer}e", "{referer}i"):
            atoms.pop(name, None)  # the same again, for a format that names them
        return atoms


logger_class = AccessLog


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
