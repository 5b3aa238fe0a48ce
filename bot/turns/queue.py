"""The order turns of one thread run in: one at a time, in the order of the messages that asked."""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.store.base import ThreadKey

Ticket = tuple[tuple[int, int], int]
"""A place in a thread's line: the asking message's ``ts`` as (seconds, microseconds), then arrival order."""


def ts_order(ts: str) -> tuple[int, int]:
    """``"1700000000.000100"`` → ``(1700000000, 100)``: Slack ts compared exactly (floats lose microseconds)."""
    seconds, _, micros = ts.partition(".")
    try:
        return int(seconds), int(micros.ljust(6, "0")[:6])
    except ValueError:
        return 0, 0


class ThreadQueue:
    """One turn per thread at a time, in the order of the messages that asked (their ``ts``), whatever order
    their background tasks reach the queue in. A turn joins the line synchronously, waits until it is first and
    the thread is free, and holds the thread until it ends."""

    def __init__(self) -> None:
        self._pending: dict[ThreadKey, list[Ticket]] = {}
        self._busy: set[ThreadKey] = set()
        self._changed = asyncio.Condition()
        self._arrivals = itertools.count()

    def join(self, key: ThreadKey, ts: str) -> Ticket:
        """Take a place in the thread's line (no await: call it before anything else can run)."""
        ticket = (ts_order(ts), next(self._arrivals))
        bisect.insort(self._pending.setdefault(key, []), ticket)
        return ticket

    def ahead(self, key: ThreadKey, ticket: Ticket) -> int:
        """How many turns go before ``ticket``, the one running included."""
        pending = self._pending.get(key, [])
        return (pending.index(ticket) if ticket in pending else 0) + (key in self._busy)

    @asynccontextmanager
    async def turn(self, key: ThreadKey, ticket: Ticket) -> AsyncIterator[None]:
        """Wait for ``ticket``'s turn, then hold the thread until the block ends (or is cancelled)."""
        taken = False
        try:
            async with self._changed:
                await self._changed.wait_for(lambda: key not in self._busy and self._pending[key][0] == ticket)
                self._pending[key].pop(0)
                self._busy.add(key)
                taken = True
            yield
        finally:
            async with self._changed:
                if taken:
                    self._busy.discard(key)
                elif ticket in self._pending.get(key, []):
                    self._pending[key].remove(ticket)
                if not self._pending.get(key):
                    self._pending.pop(key, None)
                self._changed.notify_all()
