"""Read a send rate off arrival times: the mean over whole cycles, and the fullest sliding windows.

A moving-window limiter of N per second lets N messages go at once, then none until the oldest
is a second old: arrivals come in bursts of N, one burst per second. A count over a fixed span
then depends on where the span cuts a burst (up to ±N), so the mean is taken over a whole number
of N-message cycles instead: from one arrival to the arrival k·N later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def steady(times: Sequence[float], margin: float = 1.0) -> list[float]:
    """Drop the arrivals of the first and last `margin` seconds (start-up and the tail)."""
    if not times:
        return []
    return [t for t in times if times[0] + margin <= t <= times[-1] - margin]


def mean_rate(times: Sequence[float], cycle: int) -> float:
    """Return arrivals per second over the most whole `cycle`-arrival cycles the times hold."""
    cycles = (len(times) - 1) // cycle
    if cycles == 0:
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
    n = cycles * cycle
    return n / (times[n] - times[0])


def fullest(times: Sequence[float], width: float = 1.0) -> int:
    """Return the most arrivals in any half-open window [t, t + width) (sorted times)."""
    best = end = 0
    for start, t in enumerate(times):
        while end < len(times) and times[end] < t + width:
            end += 1
        best = max(best, end - start)
    return best


def tightest(times: Sequence[float], count: int) -> float | None:
    """Return the shortest span holding `count` consecutive arrivals (sorted times), None if fewer."""
    if count < 1 or len(times) < count:
        return None
    return min(times[i + count - 1] - times[i] for i in range(len(times) - count + 1))


def per_second(times: Sequence[float]) -> list[int]:
    """Count arrivals in consecutive whole seconds from the first one."""
    if not times:
        return []
    seconds = int(times[-1] - times[0])
    counts = [0] * seconds
    for t in times:
        index = int(t - times[0])
        if index < seconds:
            counts[index] += 1
    return counts


def summary(times: Sequence[float], rate: float) -> dict[str, Any]:
    """Read the achieved rate, its deviation and the fullest windows off sorted times, for a configured rate."""
    limit = max(1, round(rate))  # messages a whole second may hold
    middle = steady(times)
    achieved = mean_rate(middle, limit)
    return {"messages": len(times), "steady_messages": len(middle), "achieved": achieved,
            "deviation_pct": (achieved - rate) / rate * 100, "max_1s_window": fullest(times),
            "max_1s_window_steady": fullest(middle), "max_100ms_window": fullest(times, 0.1),
            "tightest_over_limit_s": tightest(times, limit + 1), "per_second_steady": per_second(middle)}
