"""The lock SQLite's writers take in one process, where an urgent writer goes before the others waiting.

SQLite has one writer at a time; ``SqlStore`` serialises its own write transactions with this lock rather than
letting them spin in SQLite's busy handler. Writers wait in arrival order, except urgent ones (the inbox's write
that Slack's acknowledgement waits for), which wait only for the transaction in progress and the urgent writers
before them. The lock is handed from the holder to the next waiter directly, so nobody can barge in between.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class WriteLock:
    """A FIFO asyncio lock with a second, urgent queue served first."""

    def __init__(self) -> None:
        self._locked = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()

    @property
    def locked(self) -> bool:
        return self._locked

    async def acquire(self, *, urgent: bool = False) -> None:
        """Wait for the lock (before every writer that is not urgent, when ``urgent``)."""
        if not self._locked:
            self._locked = True
            return
        handed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._urgent if urgent else self._normal
        queue.append(handed)
        try:
            await handed
        except asyncio.CancelledError:
            if handed.done() and not handed.cancelled():
                self.release()  # it was handed the lock as it was cancelled: hand it on
            elif handed in queue:
                queue.remove(handed)
            raise

    def release(self) -> None:
        """Hand the lock to the next waiter (urgent first), or free it."""
        for queue in (self._urgent, self._normal):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    return
        self._locked = False

    @asynccontextmanager
    async def held(self, *, urgent: bool = False) -> AsyncIterator[None]:
        """``async with lock.held():`` the lock for the block."""
        await self.acquire(urgent=urgent)
        try:
            yield
        finally:
            self.release()
