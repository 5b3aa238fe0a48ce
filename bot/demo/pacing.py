"""A link-rate pacer for the emulators: holds a byte stream to a given rate, like a network link would.

The transfer benchmark uses it to compare the bot's relay with a plain download when the link, not the CPU, is the
limit (as it is between a bot and Slack or OpenAI): with both links paced, a relay that overlaps its download and
upload keeps the link's rate, and one that stores then forwards (or alternates) gets half of it.
"""

from __future__ import annotations

import asyncio
import time


class LinkPacer:
    """After ``take(n)`` has been told of every byte so far, waits until the link could have carried them."""

    def __init__(self, bytes_per_second: float) -> None:
        self._rate = bytes_per_second
        self._started = time.perf_counter()
        self._carried = 0

    async def take(self, size: int) -> None:
        """Account for ``size`` more bytes; sleep while the stream is ahead of the link."""
        self._carried += size
        ahead = self._carried / self._rate - (time.perf_counter() - self._started)
        if ahead > 0:
            await asyncio.sleep(ahead)
