"""Console operators: accounts hashed with argon2, a role each, sign-in with a lock-out on repeated failures.

The lock-out is per name and counts every attempt before its password is checked, so however many
attempts arrive at once, at most MAX_FAILURES of them reach the hash. It is the slow-guessing
guard: fast guessing from one address meets the console's per-address throttle first, which
allows fewer attempts per window than the lock needs, so one address cannot lock an operator out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis import Redis

from bot.keys import OPERATORS_KEY, failures_key, operator_key

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,39}\Z")
MIN_PASSWORD = 12
MAX_FAILURES = 20  # failed sign-ins on one name within LOCK_SECONDS of the first lock the name ...
LOCK_SECONDS = 60 * 60  # ... until that window ends: at most 20 guesses an hour, from any number of addresses
ADMIN, VIEWER = "admin", "viewer"
ROLES = (ADMIN, VIEWER)  # admin: every console action; viewer: reads the console, changes nothing
LANGUAGES = ("fr", "en")  # the console's, French first (bot/web/i18n.py)
# Count the attempt, starting the window on the first; a key left without expiry would lock for ever.
COUNT_ATTEMPT = """
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if n == 1 or ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"""
HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters


class OperatorError(ValueError):
    """An operator name or password that cannot be used; the message says why."""


@dataclass(frozen=True)
class SignIn:
    """The outcome of one sign-in attempt."""

    ok: bool
    locked_for: int = 0  # seconds until the account may try again, when locked
    just_locked: bool = False  # this failure is the one that locked the account


@dataclass(frozen=True)
class Account:
    """What a signed-in session checks on every request."""

    epoch: int  # sessions begun in another epoch are over
    role: str
    language: str = ""  # the console's language the operator chose; "" lets the browser decide


@cache
def _decoy(hasher: PasswordHasher) -> str:
    """Return a hash to verify unknown names against, so they take as long as known ones (once per hasher)."""
    return hasher.hash("not any operator's password")


@dataclass
class Operators:
    """The console's accounts, in Redis next to the data they guard."""

    redis: Redis
    hasher: PasswordHasher = HASHER

    def add(self, name: str, password: str, role: str = ADMIN) -> None:
        """Create an operator; refuse a taken name, a malformed name, a short password or an unknown role."""
        name, role = check_name(name), check_role(role)
        if len(password) < MIN_PASSWORD:
            raise OperatorError(f"the password must have at least {MIN_PASSWORD} characters")
        if not self.redis.hsetnx(operator_key(name), "hash", self.hasher.hash(password)):
            raise OperatorError(f"operator {name!r} already exists")
        self.redis.hset(operator_key(name), mapping={"epoch": 0, "role": role})
        self.redis.sadd(OPERATORS_KEY, name)

    def set_role(self, name: str, role: str) -> bool:
        """Give an existing operator another role, from their next request on; False if there is no such operator."""
        role = check_role(role)
        if not self.redis.hexists(operator_key(name), "hash"):
            return False
        self.redis.hset(operator_key(name), "role", role)
        return True

    def remove(self, name: str) -> bool:
        """Delete an operator; their open sessions end at their next request."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(operator_key(name), failures_key(name))
            pipe.srem(OPERATORS_KEY, name)
            _, removed = pipe.execute()
        return bool(removed)

    def names(self) -> list[str]:
        """Return every operator's name, sorted."""
        return sorted(name.decode() for name in self.redis.smembers(OPERATORS_KEY))

    def roles(self) -> list[tuple[str, str]]:
        """Return every operator's name and role, sorted by name."""
        names = self.names()
        with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hget(operator_key(name), "role")
            stored = pipe.execute()
        return [(name, role.decode() if role else ADMIN) for name, role in zip(names, stored, strict=True)]

    def account(self, name: str) -> Account | None:
        """Return the operator's session epoch, role and language in one read, or None if there is no such operator."""
        epoch, role, language = self.redis.hmget(operator_key(name), "epoch", "role", "language")
        if epoch is None:
            return None
        # Accounts made before roles existed had every right the console offered: they stay admins.
        return Account(int(epoch), role.decode() if role else ADMIN, language.decode() if language else "")

    def set_language(self, name: str, language: str) -> bool:
        """Keep the console language an operator chose, for their next sign-ins; False if there is no such operator."""
        if language not in LANGUAGES:
            raise OperatorError(f"{language!r}: the language is one of {', '.join(LANGUAGES)}")
        if not self.redis.hexists(operator_key(name), "hash"):
            return False
        self.redis.hset(operator_key(name), "language", language)
        return True

    def epoch(self, name: str) -> int | None:
        """Return the operator's session epoch (a session from another epoch is over), or None if unknown."""
        raw = self.redis.hget(operator_key(name), "epoch")
        return None if raw is None else int(raw)

    def end_sessions(self, name: str) -> None:
        """End every session of the operator (signed cookies cannot be revoked one by one)."""
        if self.redis.exists(operator_key(name)):
            self.redis.hincrby(operator_key(name), "epoch", 1)

    def unlock(self, name: str) -> None:
        """Forget an operator's failed sign-ins, lifting a lock-out."""
        self.redis.delete(failures_key(name))

    def sign_in(self, name: str, password: str) -> SignIn:
        """Check a password, unless MAX_FAILURES attempts on the name have failed since its window began."""
        if not NAME.match(name):
            return SignIn(False)
        failures = failures_key(name)
        # Counted before the check, in one step: of attempts arriving together, only the first
        # MAX_FAILURES are checked. Unknown names are counted too, so answers tell no name apart.
        count, ttl = self.redis.eval(COUNT_ATTEMPT, 1, failures, LOCK_SECONDS)
        if count > MAX_FAILURES:
            return SignIn(False, locked_for=max(1, int(ttl)))
        stored = self.redis.hget(operator_key(name), "hash")
        try:
            self.hasher.verify(stored.decode() if stored else _decoy(self.hasher), password)
        except (VerificationError, InvalidHashError):  # a wrong password, or a hash we cannot read
            return _failed(count, ttl)
        if stored is None:  # the decoy matched: still nobody to sign in as
            return _failed(count, ttl)
        self.redis.delete(failures)
        if self.hasher.check_needs_rehash(stored.decode()):
            self.redis.hset(operator_key(name), "hash", self.hasher.hash(password))
        return SignIn(True)


def _failed(count: int, ttl: int) -> SignIn:
    if count == MAX_FAILURES:  # the attempt that used up the window's last try
        return SignIn(False, locked_for=max(1, int(ttl)), just_locked=True)
    return SignIn(False)


def check_role(role: str) -> str:
    """Return the role if it is one of ROLES, else raise OperatorError."""
    if role not in ROLES:
        raise OperatorError(f"{role!r}: the role is one of {', '.join(ROLES)}")
    return role


def check_name(name: str) -> str:
    """Return the name if an operator may have it, else raise OperatorError."""
    if not NAME.match(name):
        raise OperatorError(f"{name!r}: use 1-40 lower-case letters, digits, '.', '-' or '_'")
    return name
