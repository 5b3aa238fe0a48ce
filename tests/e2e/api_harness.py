"""Helpers of the API's end-to-end tests: ``datastory api`` (or ``run --http`` with the API) in-process on a random
loopback port, keys made with ``datastory api-key create``, and a small aiohttp client."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bot import cli
from bot.config import Settings

SALES_CSV = (b"region,month,revenue,units\n" + b"".join(
    f"{r},2025-{m:02d},{100 + 7 * m + 13 * i},{10 + m + i}\n".encode()
    for m in range(1, 13) for i, r in enumerate(("North", "South", "East"))))


def local_settings(tmp: Path, **overrides: Any) -> Settings:
    """The API on the local sandbox and the offline analyst: no keys, no Slack."""
    values: dict[str, Any] = {"sandbox": "local", "local_isolation": "relaxed", "local_pool_size": 0,
                              "database_url": f"sqlite:///{tmp / 'api.db'}", "api_data_dir": str(tmp / "api-files"),
                              "local_dir": str(tmp / "kernels"), "shutdown_grace_seconds": 5.0}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def create_key(settings: Settings, name: str = "tests") -> str:
    """``datastory api-key create NAME``; the printed key."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = await cli.amain(["api-key", "create", name], settings=settings)
    assert code == 0
    return out.getvalue().strip()


@dataclass(slots=True)
class RunningApi:
    """A server started in-process; stopped by :meth:`shutdown`."""

    url: str
    settings: Settings
    stop: asyncio.Event
    task: asyncio.Task[int]
    http: aiohttp.ClientSession = field(default_factory=aiohttp.ClientSession)

    async def shutdown(self) -> None:
        self.stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.task, 30)
        await self.http.close()

    def auth(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    async def upload(self, key: str, *files: tuple[str, bytes]) -> tuple[int, dict[str, Any]]:
        form = aiohttp.FormData()
        for name, content in files:
            form.add_field("file", content, filename=name, content_type="text/csv")
        async with self.http.post(f"{self.url}/v1/sessions", data=form, headers=self.auth(key)) as r:
            return r.status, await r.json(content_type=None)

    async def call(self, method: str, path: str, key: str, **options: Any) -> tuple[int, Any, dict[str, str]]:
        headers = {**self.auth(key), **options.pop("headers", {})}
        async with self.http.request(method, f"{self.url}{path}", headers=headers, **options) as r:
            body = await r.read()
            kind = r.headers.get("Content-Type", "")
            value: Any = body
            if "json" in kind:
                import json

                value = json.loads(body)
            return r.status, value, dict(r.headers)


async def start_api(settings: Settings, argv: list[str] | None = None) -> RunningApi:
    """``datastory api --port 0`` (or ``argv``) until :meth:`RunningApi.shutdown`."""
    stop = asyncio.Event()
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    argv = argv or ["api", "--host", "127.0.0.1", "--port", "0"]
    task = asyncio.create_task(cli.amain(argv, settings=settings, ready=ready.set_result, stop=stop))
    done, _ = await asyncio.wait({ready, task}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        raise RuntimeError(f"datastory {argv[0]} exited early with {task.result()}")
    return RunningApi(url=ready.result(), settings=settings, stop=stop, task=task)


@contextlib.asynccontextmanager
async def running(settings: Settings, argv: list[str] | None = None) -> AsyncIterator[RunningApi]:
    api = await start_api(settings, argv)
    try:
        yield api
    finally:
        await api.shutdown()
