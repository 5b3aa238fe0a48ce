"""A thread's local container: its pod (working directory and processes), the kernel running in it and the
bookkeeping the backend keeps for it (activity, lock, files the user uploaded)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from bot.sandbox.base import ContainerInfo
from bot.sandbox.local import kernel as kern
from bot.sandbox.local.pod import Pod


@dataclass(slots=True)
class Container:
    """One thread's pod, kernel and bookkeeping."""

    id: str
    name: str
    pod: Pod
    created_at: float
    last_active_at: float
    kernel: asyncio.Task[kern.Kernel] | None = None
    """The kernel (started, or starting); ``None`` after it was stopped to make room."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    user_files: set[str] = field(default_factory=set)
    deleted: bool = False

    def info(self) -> ContainerInfo:
        return ContainerInfo(id=self.id, name=self.name, status="running", created_at=self.created_at,
                             last_active_at=self.last_active_at)

    def live_kernel(self) -> kern.Kernel | None:
        """The kernel when it started and is alive."""
        task = self.kernel
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return None
        kernel = task.result()
        return kernel if kernel.alive() else None


async def let_go(task: asyncio.Task[kern.Kernel] | None) -> None:
    """Cancel a kernel's start or close its client (its processes are its pod's business)."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(BaseException):
            (await task).release()
