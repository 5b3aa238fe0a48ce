"""A clock tests move by hand, for the code that takes :class:`bot.clock.Clock`."""

from __future__ import annotations

import asyncio


class HandClock:
    """``now()`` is the time the test sets (``t``); ``sleep(seconds)`` moves it by that much and yields to the loop
    once (nothing really waits)."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        await asyncio.sleep(0)
