"""``datastory demo`` in-process on a random loopback port, for the browser tests and the demo's HTTP tests."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from bot import cli
from bot.config import Settings


@dataclass(slots=True)
class RunningDemo:
    """``datastory demo`` started with ``cli.amain`` and stopped at the end of the test."""

    url: str
    stop: asyncio.Event
    task: asyncio.Task[int]

    async def shutdown(self) -> int:
        """Ctrl+C equivalent; returns the exit code."""
        self.stop.set()
        return await asyncio.wait_for(self.task, 60)


async def start_demo(settings: Settings, *argv: str) -> RunningDemo:
    """Start ``datastory demo --port 0 ARGV...`` and wait until it printed its URL."""
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(cli.amain(["demo", "--port", "0", *argv], settings=settings,
                                         ready=ready.set_result, stop=stop))
    done, _ = await asyncio.wait({ready, task}, timeout=120, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        raise RuntimeError(f"datastory demo exited early with {task.result()}")
    if ready not in done:
        stop.set()
        raise RuntimeError("datastory demo did not start within 120 s")
    return RunningDemo(url=ready.result(), stop=stop, task=task)


def offline_settings(**overrides: Any) -> Settings:
    """The person's settings with no model configured (the demo picks the local sandbox itself)."""
    values: dict[str, Any] = {"openai_api_key": None, "openai_base_url": None, "local_pool_size": 1}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]
