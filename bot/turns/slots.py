"""The cap on analyses one process runs at once (``DATASTORY_MAX_CONCURRENT_TURNS``), shared by turns and batch
runs: a replica claims a turn from the queue only while it has a free slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Slots:
    """A counted cap: taken at once (:meth:`take_now`, the queue's claims) or waited for (:meth:`hold`)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.running = 0
        """Analyses holding a slot right now."""
        self._changed = asyncio.Event()

    def full(self) -> bool:
        """True when a new analysis would wait."""
        return self.running >= self.size

    def take_now(self) -> bool:
        """Take a slot without waiting; False when none is free. Give it back with :meth:`give`."""
        if self.full():
            return False
        self.running += 1
        return True

    def give(self) -> None:
        """Give back a slot taken with :meth:`take_now` (wakes those waiting in :meth:`hold`)."""
        self.running -= 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Wait for a free slot and hold it until the block ends."""
        while not self.take_now():
            await self._changed.wait()
        try:
            yield
        finally:
            self.give()
