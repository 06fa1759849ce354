"""Operator accounts: argon2 hashes in Redis, a role each, made from the command line, locked after
repeated failures however many arrive at once."""

from __future__ import annotations

import threading

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner

from bot import audit
from bot.cli import Services, main
from bot.keys import failures_key, operator_key
from bot.operators import ADMIN, LOCK_SECONDS, MAX_FAILURES, VIEWER, Account, OperatorError, Operators

PASSWORD = "correct horse battery"


@pytest.fixture
def operators(accord) -> Operators:
    return Operators(accord.store.redis)


def cli(accord, *args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), obj=Services(accord), input=input)


def test_operator_add_asks_the_role_and_the_password_twice_and_keeps_only_an_argon2_hash(accord, operators):
    result = cli(accord, "operator", "add", "camille", input=f"admin\n{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "Role (admin or viewer)" in result.output
    assert "Repeat the password" in result.output and PASSWORD not in result.output
    stored = accord.store.redis.hget(operator_key("camille"), "hash").decode()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert operators.sign_in("camille", PASSWORD).ok
    assert [(e.action, e.detail) for e in audit.latest(accord.store.redis)] == [("operator added", "camille, admin")]
    assert cli(accord, "operator", "list").output.split() == ["camille", "admin"]


def test_operator_add_role_viewer_and_operator_list_shows_roles(accord, operators):
    assert cli(accord, "operator", "add", "dominique", "--role", "viewer", "--password", PASSWORD).exit_code == 0
    assert cli(accord, "operator", "add", "camille", "--role", "admin", "--password", PASSWORD).exit_code == 0
    refused = cli(accord, "operator", "add", "eve", "--role", "root", "--password", PASSWORD)
    assert refused.exit_code == 2 and "'root' is not one of 'admin', 'viewer'" in refused.output
    assert operators.account("dominique") == Account(0, VIEWER) and operators.account("eve") is None
    assert cli(accord, "operator", "list").output.splitlines() == ["camille    admin", "dominique  viewer"]


def test_operator_role_changes_a_role_and_is_audited(accord, operators):
    operators.add("dominique", PASSWORD, VIEWER)
    assert cli(accord, "operator", "role", "dominique", "admin").exit_code == 0
    assert operators.account("dominique").role == ADMIN
    assert cli(accord, "operator", "role", "nobody", "admin").exit_code == 1
    assert [(e.action, e.detail) for e in audit.latest(accord.store.redis)][0] == ("operator role", "dominique, admin")
    with pytest.raises(OperatorError, match="one of admin, viewer"):
        operators.set_role("dominique", "owner")


def test_an_operator_stored_before_roles_existed_stays_an_admin(accord, operators):
    accord.store.redis.hset(operator_key("camille"), mapping={"hash": PasswordHasher().hash(PASSWORD), "epoch": 3})
    accord.store.redis.sadd("accord:operators", "camille")
    assert operators.account("camille") == Account(3, ADMIN)
    assert operators.roles() == [("camille", ADMIN)] and operators.sign_in("camille", PASSWORD).ok


def test_operator_add_refuses_mismatched_passwords(accord, operators):
    result = cli(accord, "operator", "add", "camille", "--role", "viewer",
                 input=f"{PASSWORD}\nsomething else\n{PASSWORD}\n{PASSWORD}\n")
    assert "do not match" in result.output and result.exit_code == 0
    assert operators.names() == ["camille"]


@pytest.mark.parametrize("name, password, problem", [
    ("Camille Martin", PASSWORD, "lower-case"),
    ("camille", "short", "at least 12"),
])
def test_a_bad_name_or_short_password_is_refused(operators, name, password, problem):
    with pytest.raises(OperatorError, match=problem):
        operators.add(name, password)


def test_a_taken_name_is_refused(accord, operators):
    operators.add("camille", PASSWORD)
    result = cli(accord, "operator", "add", "camille", "--role", "admin", "--password", "another long password")
    assert result.exit_code == 1 and "already exists" in result.output
    assert operators.sign_in("camille", PASSWORD).ok


def test_max_failures_within_the_hour_lock_the_name_until_the_hour_ends(accord, operators):
    operators.add("camille", PASSWORD)
    attempts = [operators.sign_in("camille", "guess") for _ in range(MAX_FAILURES)]
    assert [a.just_locked for a in attempts] == [False] * (MAX_FAILURES - 1) + [True]
    locked = operators.sign_in("camille", PASSWORD)
    assert not locked.ok and 0 < locked.locked_for <= LOCK_SECONDS
    assert 0 < accord.store.redis.ttl(failures_key("camille")) <= LOCK_SECONDS  # refusals do not extend the lock
    assert cli(accord, "operator", "unlock", "camille").exit_code == 0
    assert operators.sign_in("camille", PASSWORD).ok


def test_a_success_forgets_earlier_failures(accord, operators):
    operators.add("camille", PASSWORD)
    for _ in range(MAX_FAILURES - 1):
        operators.sign_in("camille", "guess")
    assert operators.sign_in("camille", PASSWORD).ok
    assert not accord.store.redis.exists(failures_key("camille"))


def test_unknown_names_are_counted_and_never_sign_in(operators):
    assert not operators.sign_in("nobody", "not any operator's password").ok  # not even with the decoy's password
    for _ in range(MAX_FAILURES - 1):
        operators.sign_in("nobody", "guess")
    assert 0 < operators.sign_in("nobody", "guess").locked_for <= LOCK_SECONDS


class CountingHasher(PasswordHasher):
    """argon2 as usual, counting the passwords it checks."""

    def __init__(self) -> None:
        super().__init__()
        self.checked = 0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:  # noqa: A002 (the library's name)
        with self._lock:
            self.checked += 1
        return super().verify(hash, password)


def test_attempts_arriving_together_are_counted_before_any_is_checked(accord):
    hasher = CountingHasher()
    operators = Operators(accord.store.redis, hasher)
    operators.add("camille", PASSWORD)
    start = threading.Barrier(30)
    outcomes = []

    def guess() -> None:
        start.wait()
        outcomes.append(operators.sign_in("camille", "guess"))

    threads = [threading.Thread(target=guess) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert hasher.checked == MAX_FAILURES
    assert sum(1 for outcome in outcomes if outcome.locked_for) == 30 - MAX_FAILURES + 1
    assert sum(1 for outcome in outcomes if outcome.just_locked) == 1
    assert not operators.sign_in("camille", PASSWORD).ok and hasher.checked == MAX_FAILURES


def test_operator_remove(accord, operators):
    operators.add("camille", PASSWORD)
    assert cli(accord, "operator", "remove", "camille").exit_code == 0
    assert operators.names() == [] and not operators.sign_in("camille", PASSWORD).ok
    assert cli(accord, "operator", "remove", "camille").exit_code == 1
