"""The warm pool: pods whose kernel already imported pandas, numpy and matplotlib, waiting for a new thread.

A new thread's first execute then costs a couple of message round trips instead of a process start. The pool
refills a moment after a pod is taken (a process start must not compete with the thread's first execute), backs
off while starts keep failing, and never grows past the cap on live kernels (``DATASTORY_LOCAL_MAX_KERNELS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bot.sandbox.helper import kernel_loader
from bot.sandbox.local.kernel import Kernel
from bot.sandbox.local.pod import Pod

logger = logging.getLogger(__name__)

WARMUP_CODE = (
    "import pandas as pd\n"
    "import numpy as np\n"
    "import matplotlib\n"
    "matplotlib.use('Agg')\n"
    "import matplotlib.pyplot as plt\n"
) + kernel_loader()
"""Run in every kernel before it serves a thread (the charting helper ``datastory_charts`` included)."""

POOL_WARMUP_CODE = (
    "_ds_w = pd.read_csv(__import__('io').StringIO('a,b\\n1,x\\n2,y\\n'))\n"
    "_ds_w.describe(); _ds_w.groupby('b').a.sum(); int(pd.DataFrame({'a': [1, 2]}).a.sum()); _ds_w.plot(y='a')\n"
    "plt.gcf().savefig(__import__('io').BytesIO(), format='png'); plt.close('all'); del _ds_w\n"
)
"""Also run in pool kernels (nobody is waiting for them): one tiny read/aggregate/plot, so the thread's first real
request does not pay for pandas' and matplotlib's lazy initialisation."""

REFILL_DELAY_S = 0.2


@dataclass(slots=True)
class Warm:
    """A pod and its kernel (starting or started)."""

    pod: Pod
    kernel: asyncio.Task[Kernel]

    def ready(self) -> bool:
        """The kernel started, warmed up and is alive."""
        task = self.kernel
        return task.done() and not task.cancelled() and task.exception() is None and task.result().alive()

    def failed(self) -> bool:
        """The kernel did not start, or died waiting."""
        task = self.kernel
        return task.done() and (task.cancelled() or task.exception() is not None or not task.result().alive())


class Pool:
    """Up to ``size`` warm pods."""

    def __init__(self, *, size: int, make: Callable[[], Awaitable[Warm]], room: Callable[[], bool],
                 discard: Callable[[Warm], Awaitable[None]]) -> None:
        self.size = size
        self._make = make
        self._room = room
        self._discard = discard
        self._entries: deque[asyncio.Task[Warm]] = deque()
        self._background: set[asyncio.Task[Any]] = set()
        self._failures = 0
        self._closed = False

    def __len__(self) -> int:
        return len(self._entries)

    def warm(self) -> list[Warm]:
        """Entries whose pod is up (kernel ready or not)."""
        return [t.result() for t in self._entries if t.done() and not t.cancelled() and t.exception() is None]

    def refill(self) -> None:
        """Start pods until the pool is full (or the cap on live kernels is reached)."""
        while not self._closed and len(self._entries) < self.size and self._room():
            task = asyncio.ensure_future(self._make())
            task.add_done_callback(self._entry_done)
            self._entries.append(task)

    def refill_later(self) -> None:
        """Refill a moment from now (not while a thread's first execute runs)."""
        if not self._closed:
            asyncio.get_running_loop().call_later(REFILL_DELAY_S, self.refill)

    def _entry_done(self, task: asyncio.Task[Warm]) -> None:
        if task.cancelled():
            return
        if task.exception() is not None:
            self._failed(task)
            return
        task.result().kernel.add_done_callback(lambda kernel: self._kernel_done(task, kernel))

    def _kernel_done(self, entry: asyncio.Task[Warm], kernel: asyncio.Task[Kernel]) -> None:
        if kernel.cancelled():
            return
        if kernel.exception() is None:
            self._failures = 0
        elif entry in self._entries:
            self._failed(entry)

    def _failed(self, entry: asyncio.Task[Warm]) -> None:
        """Drop a start that failed and retry later, backing off while starts keep failing."""
        if entry in self._entries:
            self._entries.remove(entry)
        if not entry.cancelled() and entry.exception() is None:
            self.spawn(self._discard(entry.result()))
        self._failures += 1
        if not self._closed:
            delay = min(60.0, 0.5 * 2 ** self._failures)
            logger.warning("pool kernel failed to start, retrying in %.1f s failures=%d", delay, self._failures)
            asyncio.get_running_loop().call_later(delay, self.refill)

    async def wait(self) -> None:
        """Until every pooled kernel started (or failed to)."""
        for warm in await asyncio.gather(*list(self._entries), return_exceptions=True):
            if isinstance(warm, Warm):
                await asyncio.gather(warm.kernel, return_exceptions=True)

    async def take(self) -> Warm | None:
        """A warm pod: one whose kernel is ready, else the one that started first (waiting for its pod, never
        for its kernel), else ``None``."""
        for task in list(self._entries):
            if task.done() and not task.cancelled() and task.exception() is None and task.result().ready():
                self._entries.remove(task)
                return task.result()
        while self._entries:
            task = self._entries.popleft()
            try:
                warm = await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.done():
                    self._entries.appendleft(task)
                raise
            except Exception:  # a failed pod start: take the next one
                continue
            if not warm.failed():
                return warm
            self.spawn(self._discard(warm))
        return None

    async def evict_one(self) -> bool:
        """Stop one pooled pod to make room for a thread's kernel; False when the pool is empty."""
        if not self._entries:
            return False
        task = self._entries.pop()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await self._discard(await asyncio.shield(task))
        return True

    def spawn(self, coro: Awaitable[Any]) -> None:
        """Run ``coro`` in the background (kept until done, awaited at close)."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Stop refilling; discard every pooled pod."""
        self._closed = True
        entries = list(self._entries)
        self._entries.clear()
        results = await asyncio.gather(*entries, return_exceptions=True)
        await asyncio.gather(*(self._discard(r) for r in results if isinstance(r, Warm)), return_exceptions=True)
        await asyncio.gather(*list(self._background), return_exceptions=True)
