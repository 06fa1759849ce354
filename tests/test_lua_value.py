"""Plans are compiled into the step script as Lua literals: any text must come through unchanged."""

from __future__ import annotations

import json

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.store import lua_value

texts = st.text(st.characters(codec="utf-8"), max_size=200)  # every plane, controls, quotes, backslashes


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(texts, st.lists(texts | st.integers(-2**40, 2**40) | st.booleans(), min_size=1),
                       min_size=1, max_size=5))
def test_a_literal_reads_back_in_redis_as_the_value_written(redis_client: redis.Redis, value: dict) -> None:
    # The script reads nothing from the database, so one empty database serves every example.
    read = redis_client.eval(f"return cjson.encode({lua_value(value)})", 0)
    assert json.loads(read) == value
