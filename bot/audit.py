"""The console's audit trail: who signed in, out, or failed to, and who paused or resumed what."""

from __future__ import annotations

from dataclasses import dataclass

from redis import Redis

from bot.keys import AUDIT_KEY

KEEP = 10_000  # entries kept (about; Redis trims whole nodes)


@dataclass(frozen=True)
class Entry:
    """One console action."""

    id: str
    at: float
    operator: str
    action: str
    flow: str
    detail: str


def record(redis: Redis, at: float, operator: str, action: str, *, flow: str = "", detail: str = "") -> None:
    """Append one action to the audit stream."""
    redis.xadd(AUDIT_KEY, {"at": f"{at:.3f}", "operator": operator, "action": action, "flow": flow,
                           "detail": detail}, maxlen=KEEP, approximate=True)


def latest(redis: Redis, count: int = 50) -> list[Entry]:
    """Return the latest actions, newest first."""
    return [Entry(entry_id.decode(), float(fields.get(b"at", 0)), _text(fields, b"operator"),
                  _text(fields, b"action"), _text(fields, b"flow"), _text(fields, b"detail"))
            for entry_id, fields in redis.xrevrange(AUDIT_KEY, count=count)]


def _text(fields: dict[bytes, bytes], name: bytes) -> str:
    return fields.get(name, b"").decode(errors="replace")
