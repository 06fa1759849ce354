"""A voter's own access to their data: one-time links, the short page sessions they open, rate limits.

Holding the phone is the identity check: a link goes only to the number that texted the rights
keyword, works once, and for 15 minutes. Redis keeps the SHA-256 of the link's token, never the
token, so its keys and files give no working link; a token is looked up by that hash, so its
time to answer says nothing about how close a guess was, and an unknown, used or expired link all
come back as the same None. Using a link starts a page session of a few minutes bound to the
number on the server: the browser holds a random session id, never the number. Every key that
names the number is listed in its index, so erasure and the retention purge delete them
(Store._forget_pages).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

from redis import Redis

from bot import audit, rights_requests
from bot.keys import (
    voter_asks_key,
    voter_client_key,
    voter_keys_key,
    voter_link_key,
    voter_page_key,
    voter_sid_key,
)

if TYPE_CHECKING:  # the store imports nothing of this module, but this one would import the store's
    from bot.flows import Flow
    from bot.store import Store

LINK_TTL = 15 * 60  # seconds a link works, if unused
PAGE_TTL = 10 * 60  # seconds the page's buttons work once the link is used
LINKS_AN_HOUR = 3  # links one number gets an hour; the next ask is told to wait, later ones get silence
# Voter-page requests one address may make per CLIENT_WINDOW: a voter's visit takes three or four.
# Behind a proxy with PUBLIC_URL set, every client has the proxy's address and shares this count.
CLIENT_REQUESTS = 60
CLIENT_WINDOW = 10 * 60
VOTER = "voter"  # who acted, in the register and the access log: the number's holder
IDENTITY = "possession of the phone: one-time link"

TEXTS = {  # one per language a flow may have (bot/flows.py LANGUAGES)
    "fr": {"link": "{controllers} : vos données sur ce numéro, lien valable 15 min et une seule fois : {url} "
                   "STOP pour vous opposer.",
           "wait": "{controllers} : vous avez déjà demandé 3 liens cette heure-ci, réessayez plus tard. "
                   "STOP pour vous opposer."},
    "en": {"link": "{controllers}: the data held on this number, link valid 15 min, once: {url} STOP to object.",
           "wait": "{controllers}: you asked for 3 links this hour already, try again later. STOP to object."},
}


@dataclass(frozen=True)
class Holder:
    """Whom a link or page session belongs to, and the rights request it answers."""

    phone: str
    digest: str  # the number's keyed HMAC: what the register and the access log name
    ref: str
    language: str
    until: float  # by the store's clock: Redis's own expiry is only the backstop


def answer(store: Store, flows: Sequence[Flow], *, phone: str, message_sid: str) -> str | None:
    """Answer a rights keyword texted from `phone`: a one-time link, once a text to wait, else nothing.

    The answer names the controllers and offers STOP, as every text does. It is no campaign
    text: like the answer to HELP, it goes in electoral silence and outside sending hours.
    """
    if not store.page_root:
        return None
    redis, now, digest = store.redis, store.clock(), store.digest(phone)
    language = flows[0].language
    controllers = " / ".join(dict.fromkeys(flow.controller for flow in flows))
    asked = _count(redis, voter_asks_key(digest), 3600)
    if asked > LINKS_AN_HOUR:
        if asked > LINKS_AN_HOUR + 1:
            return None  # a number that keeps asking gets silence, not a text each time
        audit.access(redis, now, VOTER, "voter link refused: too many this hour", subject=digest)
        return TEXTS[language]["wait"].format(controllers=controllers)
    ref = _request(redis, digest, now, message_sid)
    token = issue(redis, Holder(phone, digest, ref, language, now + LINK_TTL))
    return TEXTS[language]["link"].format(controllers=controllers, url=f"{store.page_root}/v/{token}")


def _request(redis: Redis, digest: str, now: float, message_sid: str) -> str:
    """Open the rights request a text makes, once per text: a retried text finds the one it opened."""
    ref = f"sms-{rights_requests.today(now):%Y%m%d}-{secrets.token_hex(5)}"
    if message_sid and not redis.set(voter_sid_key(message_sid), ref, ex=LINK_TTL, nx=True):
        return (redis.get(voter_sid_key(message_sid)) or b"").decode() or ref
    rights_requests.add(redis, rights_requests.Request(
        ref, "access", "sms", IDENTITY, rights_requests.today(now), digest, VOTER, now))
    return ref


def issue(redis: Redis, holder: Holder) -> str:
    """Make a one-time link token for `holder`; Redis keeps only its hash."""
    token = secrets.token_urlsafe(32)
    _keep(redis, voter_link_key(_hash(token)), holder, LINK_TTL)
    return token


def peek(redis: Redis, token: str, now: float) -> Holder | None:
    """Return whom a live link belongs to, without using it (a link preview must not use it up)."""
    return _read(redis.get(voter_link_key(_hash(token))), now)


def use(redis: Redis, token: str, now: float) -> tuple[str, Holder] | None:
    """Use a link up and start its page session; return (session id, holder), or None for any dead link."""
    holder = _read(redis.getdel(voter_link_key(_hash(token))), now)
    if holder is None:
        return None
    session = secrets.token_urlsafe(32)
    _keep(redis, voter_page_key(_hash(session)), replace(holder, until=now + PAGE_TTL), PAGE_TTL)
    return session, holder


def page(redis: Redis, session: str, now: float) -> Holder | None:
    """Return whom a page session belongs to, or None once it is over, unknown or erased."""
    return _read(redis.get(voter_page_key(_hash(session))), now)


def allow_client(redis: Redis, address: str) -> bool:
    """Count a voter-page request from `address`; say whether it is within the limit."""
    return _count(redis, voter_client_key(address or "-"), CLIENT_WINDOW) <= CLIENT_REQUESTS


def _count(redis: Redis, key: str, window: int) -> int:
    """Add one to a counter that starts a `window` of seconds when it is first counted; return it."""
    with redis.pipeline(transaction=True) as pipe:
        pipe.set(key, 0, ex=window, nx=True)
        pipe.incr(key)
        _, count = pipe.execute()
    return int(count)


def _keep(redis: Redis, key: str, holder: Holder, ttl: int) -> None:
    """Store a holder under `key`, listed in the number's index so erasure finds it."""
    index = voter_keys_key(holder.digest)
    with redis.pipeline(transaction=True) as pipe:
        pipe.set(key, json.dumps(asdict(holder)), ex=ttl)
        pipe.sadd(index, key)
        pipe.expire(index, LINK_TTL + PAGE_TTL)  # outlives every key it lists
        pipe.execute()


def _read(raw: bytes | None, now: float) -> Holder | None:
    if raw is None:
        return None
    holder = Holder(**json.loads(raw))
    return holder if now < holder.until else None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
