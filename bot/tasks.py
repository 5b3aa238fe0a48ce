"""Tracked background work: every task started after an ack is known, logged when it fails, drained on shutdown.

Bolt starts listeners fire-and-forget; the bot's own work (turns, resumed turns) goes through a
:class:`TaskTracker` instead, so shutdown can stop taking work, wait for running tasks within a grace period,
and leave the rest in the store to be resumed at the next start.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger(__name__)


class TrackerClosed(RuntimeError):
    """The tracker no longer takes work (the bot is shutting down)."""


class TaskTracker:
    """A set of live asyncio tasks with a failure hook and a graceful close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._groups: dict[asyncio.Task[Any], str] = {}
        self._closing = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def closing(self) -> bool:
        """True once :meth:`close` started; new work is refused."""
        return self._closing

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str, group: str = "") -> asyncio.Task[Any]:
        """Start ``coro`` as a tracked task (of ``group``, e.g. a Slack team, so it can be stopped with it)."""
        if self._closing:
            coro.close()
            raise TrackerClosed(name)
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        if group:
            self._groups[task] = group
        self._idle.clear()
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._groups.pop(task, None)
        if not self._tasks:
            self._idle.set()
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            logger.error("background task failed task=%s", task.get_name(), exc_info=exc)

    async def cancel_group(self, group: str) -> int:
        """Cancel every task of ``group`` and wait until they ended; returns how many were cancelled."""
        doomed = [task for task, g in self._groups.items() if g == group and not task.done()]
        for task in doomed:
            task.cancel()
        await asyncio.gather(*doomed, return_exceptions=True)
        return len(doomed)

    async def join(self, timeout: float | None = None) -> bool:
        """Wait until no task runs; True when idle, False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close(self, *, grace: float, settle: str = "", settle_grace: float = 0.0) -> int:
        """Refuse new work, let running tasks finish within ``grace`` seconds, cancel the rest.

        ``settle``: tasks named with this prefix (the intake's: messages Slack was told were received) first get
        up to ``settle_grace`` seconds to end, so a message acknowledged before the stop is stored, not dropped.
        Returns how many tasks had to be cancelled.
        """
        self._closing = True
        settling = [t for t in self._tasks if settle and t.get_name().startswith(settle)]
        if settling:
            await asyncio.wait(settling, timeout=settle_grace)
        if await self.join(grace):
            return 0
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return len(pending)
