"""Running a job every N seconds: a drift-free loop that logs a failing tick and goes on.

Jobs expose ``run_once(now)``; this loop only decides when. Cancellation (shutdown) is never swallowed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.clock import Clock

logger = logging.getLogger(__name__)


async def run_periodically(
    tick: Callable[[float], Awaitable[object]], *, interval: float, clock: Clock, name: str
) -> None:
    """Call ``tick(now)`` every ``interval`` seconds (the next run is planned from the previous start)."""
    next_run = clock.now()
    while True:
        try:
            await tick(clock.now())
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("periodic job failed job=%s", name)
        next_run += interval
        now = clock.now()
        if next_run < now:  # the tick took longer than the interval: skip the missed slots
            next_run = now + interval
        await clock.sleep(next_run - now)
