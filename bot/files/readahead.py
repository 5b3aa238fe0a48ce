"""A bounded read-ahead: the download goes on while the upload sends what came before.

Pulling a download chunk by chunk from the upload alternates the two (the download waits while a chunk is sent,
the upload waits while the next one is fetched). :class:`ReadAhead` pulls its source in a task of its own, from
the very first request (so the download's HTTP request, its timeouts and its cleanup all belong to that task),
and holds at most ``limit`` bytes that the consumer has not taken yet: memory stays bounded whatever the file's
size, and on a link both directions stay busy.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

READ_AHEAD_BYTES = 1024 * 1024
"""Bytes downloaded ahead of the upload at most (plus the chunk being received). Small enough that a chunk is
still in the core's cache when it is checked and sent: with 4 MB (more than this machine's 2 MB L2 per core) the
bot's path of ``bench/transfer.py`` took about a tenth more CPU per GB, and the link's rate is kept as well with
1 MB (the sockets' own buffers add to it on a slow link)."""


class ReadAhead:
    """An async iterator over ``source``'s chunks, fetched ahead by a task; closes ``source`` at the end or on
    :meth:`aclose`. An error of the source is raised to the consumer when it reaches that point of the stream."""

    def __init__(self, source: AsyncIterator[bytes], *, limit: int = READ_AHEAD_BYTES) -> None:
        self._source = source
        self._limit = limit
        self._chunks: deque[bytes] = deque()
        self._held = 0
        self._error: BaseException | None = None
        self._finished = False
        self._arrived = asyncio.Event()
        self._taken = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._pump(), name="read-ahead")

    def __aiter__(self) -> ReadAhead:
        return self

    @property
    def held(self) -> int:
        """Bytes fetched and not yet taken."""
        return self._held

    async def _pump(self) -> None:
        try:
            async for chunk in self._source:
                if not chunk:
                    continue
                self._chunks.append(chunk)
                self._held += len(chunk)
                self._arrived.set()
                while self._held >= self._limit:
                    self._taken.clear()
                    await self._taken.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the consumer, in stream order
            self._error = exc
        finally:
            self._finished = True
            self._arrived.set()

    async def __anext__(self) -> bytes:
        while not self._chunks:
            if self._finished:
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                raise StopAsyncIteration
            self._arrived.clear()
            await self._arrived.wait()
        chunk = self._chunks.popleft()
        self._held -= len(chunk)
        self._taken.set()
        return chunk

    async def aclose(self) -> None:
        """Stop fetching, drop what is held, close the source (idempotent)."""
        if not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task})  # our own cancellation, if any, still reaches us
        self._chunks.clear()
        self._held = 0
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()
