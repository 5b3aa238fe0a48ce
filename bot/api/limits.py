"""The API's limits per key: a sliding-window rate of requests that start work, and the daily budget the Slack
bot applies to people (``DATASTORY_DAILY_BUDGET_USD``, UTC days), both answered with 429 and ``Retry-After``."""

from __future__ import annotations

import math
from collections import deque

from bot.api.problems import BUDGET_EXHAUSTED, RATE_LIMITED, ApiProblem
from bot.clock import Clock
from bot.store.base import Store

WINDOW = 60.0
DAY = 86400.0


class RateLimiter:
    """At most ``per_minute`` calls per key in any 60 s window."""

    def __init__(self, *, per_minute: int, clock: Clock) -> None:
        self._per_minute = per_minute
        self._clock = clock
        self._calls: dict[str, deque[float]] = {}

    def check(self, key_id: str) -> None:
        """Count one call of ``key_id``, or 429 with the seconds until a call is free again."""
        now = self._clock.now()
        calls = self._calls.setdefault(key_id, deque())
        while calls and calls[0] <= now - WINDOW:
            calls.popleft()
        if len(calls) >= self._per_minute:
            wait = math.ceil(calls[0] + WINDOW - now)
            raise ApiProblem(429, RATE_LIMITED, f"This API key made {self._per_minute} requests that start work in "
                             "the last minute (`DATASTORY_API_RATE_PER_MINUTE`); try again shortly.", retry_after=wait)
        calls.append(now)


async def check_budget(store: Store, *, channel: str, budget_usd: float | None, now: float) -> None:
    """429 until the next UTC day when the key's spending today reached the daily budget."""
    if budget_usd is None:
        return
    day_start = now - now % DAY
    spent = await store.spent_since(day_start, channel=channel)
    if spent >= budget_usd:
        raise ApiProblem(429, BUDGET_EXHAUSTED, f"This API key spent ${spent:.2f} today, the daily budget of "
                         f"${budget_usd:.2f} (`DATASTORY_DAILY_BUDGET_USD`); it resets at 00:00 UTC.",
                         retry_after=math.ceil(day_start + DAY - now))
