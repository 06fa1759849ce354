"""Console operators: accounts hashed with argon2, sign-in with a lock-out after repeated failures."""

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
MAX_FAILURES = 5  # failed sign-ins in a row before the account is locked ...
LOCK_SECONDS = 15 * 60  # ... for this long after the last of them
HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters


class OperatorError(ValueError):
    """An operator name or password that cannot be used; the message says why."""


@dataclass(frozen=True)
class SignIn:
    """The outcome of one sign-in attempt."""

    ok: bool
    locked_for: int = 0  # seconds until the account may try again, when locked
    just_locked: bool = False  # this failure is the one that locked the account


@cache
def _decoy(hasher: PasswordHasher) -> str:
    """Return a hash to verify unknown names against, so they take as long as known ones (once per hasher)."""
    return hasher.hash("not any operator's password")


@dataclass
class Operators:
    """The console's accounts, in Redis next to the data they guard."""

    redis: Redis
    hasher: PasswordHasher = HASHER

    def add(self, name: str, password: str) -> None:
        """Create an operator; refuse a taken name, a malformed name or a short password."""
        name = check_name(name)
        if len(password) < MIN_PASSWORD:
            raise OperatorError(f"the password must have at least {MIN_PASSWORD} characters")
        if not self.redis.hsetnx(operator_key(name), "hash", self.hasher.hash(password)):
            raise OperatorError(f"operator {name!r} already exists")
        self.redis.hset(operator_key(name), "epoch", 0)
        self.redis.sadd(OPERATORS_KEY, name)

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
        """Check a password; after MAX_FAILURES failures in a row, refuse every attempt for LOCK_SECONDS."""
        if not NAME.match(name):
            return SignIn(False)
        failures = failures_key(name)
        if int(self.redis.get(failures) or 0) >= MAX_FAILURES:
            return SignIn(False, locked_for=max(1, int(self.redis.ttl(failures))))
        stored = self.redis.hget(operator_key(name), "hash")
        try:
            self.hasher.verify(stored.decode() if stored else _decoy(self.hasher), password)
        except (VerificationError, InvalidHashError):  # a wrong password, or a hash we cannot read
            return self._failed(failures)
        if stored is None:  # the decoy matched: still nobody to sign in as
            return self._failed(failures)
        self.redis.delete(failures)
        if self.hasher.check_needs_rehash(stored.decode()):
            self.redis.hset(operator_key(name), "hash", self.hasher.hash(password))
        return SignIn(True)

    def _failed(self, failures: str) -> SignIn:
        # Counted for unknown names too, so the answers do not tell which names exist.
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(failures)
            pipe.expire(failures, LOCK_SECONDS)
            count, _ = pipe.execute()
        if count >= MAX_FAILURES:
            return SignIn(False, locked_for=LOCK_SECONDS, just_locked=count == MAX_FAILURES)
        return SignIn(False)


def check_name(name: str) -> str:
    """Return the name if an operator may have it, else raise OperatorError."""
    if not NAME.match(name):
        raise OperatorError(f"{name!r}: use 1-40 lower-case letters, digits, '.', '-' or '_'")
    return name
