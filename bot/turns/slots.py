"""The global cap on analyses running at once (``DATASTORY_MAX_CONCURRENT_TURNS``), shared by turns and batch
runs of one process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Slots:
    """A semaphore that also counts who holds it (the ``turns running`` gauge, the "waiting for a slot" line)."""

    def __init__(self, size: int) -> None:
        self._semaphore = asyncio.Semaphore(size)
        self.running = 0
        """Analyses holding a slot right now."""

    def full(self) -> bool:
        """True when a new analysis would wait."""
        return self._semaphore.locked()

    @asynccontextmanager
    async def hold(self) -> AsyncIterator[None]:
        """Wait for a free slot and hold it until the block ends."""
        async with self._semaphore:
            self.running += 1
            try:
                yield
            finally:
                self.running -= 1
