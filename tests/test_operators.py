"""Operator accounts: argon2 hashes in Redis, made from the command line, locked after repeated failures."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bot import audit
from bot.cli import Services, main
from bot.keys import failures_key, operator_key
from bot.operators import LOCK_SECONDS, MAX_FAILURES, OperatorError, Operators

PASSWORD = "correct horse battery"


@pytest.fixture
def operators(accord) -> Operators:
    return Operators(accord.store.redis)


def cli(accord, *args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), obj=Services(accord), input=input)


def test_operator_add_asks_the_password_twice_and_keeps_only_an_argon2_hash(accord, operators):
    result = cli(accord, "operator", "add", "camille", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert "Repeat the password" in result.output and PASSWORD not in result.output
    stored = accord.store.redis.hget(operator_key("camille"), "hash").decode()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert operators.sign_in("camille", PASSWORD).ok
    assert [(e.action, e.detail) for e in audit.latest(accord.store.redis)] == [("operator added", "camille")]
    assert cli(accord, "operator", "list").output.split() == ["camille"]


def test_operator_add_refuses_mismatched_passwords(accord, operators):
    result = cli(accord, "operator", "add", "camille",
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
    result = cli(accord, "operator", "add", "camille", "--password", "another long password")
    assert result.exit_code == 1 and "already exists" in result.output
    assert operators.sign_in("camille", PASSWORD).ok


def test_five_failures_lock_the_account_for_fifteen_minutes(accord, operators):
    operators.add("camille", PASSWORD)
    attempts = [operators.sign_in("camille", "guess") for _ in range(MAX_FAILURES)]
    assert [a.just_locked for a in attempts] == [False] * (MAX_FAILURES - 1) + [True]
    locked = operators.sign_in("camille", PASSWORD)
    assert not locked.ok and 0 < locked.locked_for <= LOCK_SECONDS
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
    assert operators.sign_in("nobody", "guess").locked_for == LOCK_SECONDS


def test_operator_remove(accord, operators):
    operators.add("camille", PASSWORD)
    assert cli(accord, "operator", "remove", "camille").exit_code == 0
    assert operators.names() == [] and not operators.sign_in("camille", PASSWORD).ok
    assert cli(accord, "operator", "remove", "camille").exit_code == 1
