"""The thread's workspace: the sandbox container a thread's turns run in.

:class:`Containers` creates containers while the provider refuses for now (capacity, rate limits: growing,
jittered waits, the thread told its place in line). :class:`Workspace` is one turn's view of its thread's
container: it knows the container id the store holds, creates the container when there is none (and records it),
and after the container turned out to be gone or expired forgets it so the next attempt rebuilds.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from bot.clock import Clock
from bot.metrics import Metrics
from bot.sandbox.base import ContainerInfo, SandboxBackend, SandboxUnavailable
from bot.store.base import Store, ThreadKey
from bot.turns.config import WorkerConfig, container_name
from bot.turns.feedback import StatusMessage

logger = logging.getLogger("bot.turns")


@dataclass(slots=True)
class Sessions:
    """Containers one run created (each a billed session on the hosted backend)."""

    count: int = 0


class Containers:
    """Container creation with the capacity back-off, shared by every turn and batch run of a process."""

    def __init__(self, *, sandbox: SandboxBackend, clock: Clock, config: WorkerConfig, metrics: Metrics) -> None:
        self.sandbox = sandbox
        self._clock = clock
        self._config = config
        self._metrics = metrics
        self._waiting: list[object] = []
        """Runs waiting for the provider to accept a new container, in order."""

    async def create(
        self, name: str, status: StatusMessage, sessions: Sessions, *, idle_minutes: int | None = None
    ) -> ContainerInfo:
        """Create the container (idle TTL ``idle_minutes``, default the thread TTL); while the provider refuses
        (rate limit, capacity), wait with growing, jittered delays and tell the thread its place in line. The
        question is never dropped (the turn timeout bounds it)."""
        minutes = self._config.container_idle_minutes if idle_minutes is None else idle_minutes
        delay = self._config.capacity_retry_seconds
        ticket = object()
        try:
            while True:
                try:
                    info = await self.sandbox.create(name=name, idle_minutes=minutes)
                    break
                except SandboxUnavailable:
                    if ticket not in self._waiting:
                        self._waiting.append(ticket)
                    place = self._waiting.index(ticket) + 1
                    wait = delay * random.uniform(0.8, 1.2)
                    await status.set(f":hourglass: The code sandbox provider is at capacity. Your question is "
                                     f"number {place} in line; I'll try again in {wait:.0f} s.")
                    logger.info("container create refused, retrying in %.1f s place=%d", wait, place)
                    await self._clock.sleep(wait)
                    delay = min(delay * 2, 60.0)
        finally:
            if ticket in self._waiting:
                self._waiting.remove(ticket)
        sessions.count += 1 if self._config.session_usd else 0
        self._metrics.container_created(self.sandbox.kind)
        return info


class Workspace:
    """One turn's view of its thread's container: what the store holds, created when missing, rebuilt when gone."""

    def __init__(self, *, key: ThreadKey, store: Store, containers: Containers, clock: Clock,
                 config: WorkerConfig, metrics: Metrics, status: StatusMessage) -> None:
        self.key = key
        self._store = store
        self._containers = containers
        self._clock = clock
        self._config = config
        self._metrics = metrics
        self._status = status
        self.sessions = Sessions()
        self.container_id: str | None = None
        """The container the store holds for the thread (``None``: none yet, or one of another backend)."""
        self.last_response_id: str | None = None
        self.fresh = True
        """The thread has no usable container: the analysis starts a fresh chain."""

    async def refresh(self) -> None:
        """Read the thread's container and response chain from the store."""
        thread = await self._store.get_thread(self.key)
        self.fresh = thread is None or not thread.container_id or thread.backend != self._containers.sandbox.kind
        self.container_id = None if self.fresh or thread is None else thread.container_id
        self.last_response_id = None if self.fresh or thread is None else thread.last_response_id

    async def create(self) -> str:
        """Create the thread's container now and record it (the thread is active, its chain forgotten)."""
        name = container_name(self._config.container_prefix, self.key)
        info = await self._containers.create(name, self._status, self.sessions)
        await self._store.set_container(self.key, container_id=info.id, name=name,
                                        backend=self._containers.sandbox.kind, now=self._clock.now())
        logger.info("container created container=%s thread=%s", info.id, self.key)
        self.container_id = info.id
        return info.id

    async def rebuild(self, reason: str) -> None:
        """The container is gone or expired: forget it, so the next attempt creates one and reloads the files."""
        logger.info("container gone, rebuilding thread=%s reason=%s", self.key, reason)
        self._metrics.container_rebuilt()
        await self._store.clear_container(self.key, status="swept")
        self.container_id = None
        self.fresh = True
        await self._status.set(":recycle: The workspace had expired; rebuilding it and reloading the files…")
