"""Choosing and building the sandbox backend and the analyst from the settings (shared by ``run`` and ``try``).

| sandbox  | model configured (``OPENAI_API_KEY``)        | no model                          |
|----------|-----------------------------------------------|-----------------------------------|
| openai   | hosted containers + Responses code_interpreter | refused: the hosted sandbox needs a key |
| local    | kernels + ``chat_tools`` on ``DATASTORY_MODEL`` | kernels + the ``offline`` analyst |
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from openai import AsyncOpenAI
from sqlalchemy.engine import make_url

from bot.analysts.base import Analyst
from bot.analysts.responses import ResponsesAnalyst
from bot.config import Settings
from bot.sandbox.base import SandboxBackend, SandboxSetupError
from bot.sandbox.openai import OpenAISandbox

if TYPE_CHECKING:
    from bot.metrics import Metrics
    from bot.sandbox.local import LocalSandbox


class ConfigurationError(Exception):
    """The settings cannot run the bot as asked; the message names the variable to set."""


@dataclass(slots=True)
class Backends:
    """The sandbox, the analyst, and the OpenAI client they share (closed by the owner)."""

    sandbox: SandboxBackend
    analyst: Analyst
    openai: AsyncOpenAI | None
    warm_up: Callable[[], Awaitable[None]] | None = None
    """Starts the local kernel pool; hosted containers need nothing."""

    async def start(self) -> None:
        """Warm what needs warming before the first turn; a sandbox that cannot run here (a local setup problem,
        ``strict`` isolation out of reach) is a :class:`ConfigurationError` naming the cause and the fix."""
        if self.warm_up is not None:
            try:
                await self.warm_up()
            except SandboxSetupError as exc:
                raise ConfigurationError(str(exc)) from exc

    async def close(self) -> None:
        """Close the sandbox and the OpenAI client."""
        await self.sandbox.close()
        if self.openai is not None:
            await self.openai.close()


def openai_client(settings: Settings, *, metrics: Metrics | None = None) -> AsyncOpenAI | None:
    """The OpenAI (or compatible) client, or None when no key is configured; with ``metrics``, every failed HTTP
    request is counted by kind (:class:`bot.openai_http.CountingHttpClient`)."""
    if settings.openai_api_key is None:
        return None
    http = None
    if metrics is not None:
        from bot.openai_http import CountingHttpClient

        http = CountingHttpClient(on_error=metrics.openai_error)
    return AsyncOpenAI(api_key=settings.openai_api_key.get_secret_value(), base_url=settings.openai_base_url,
                       http_client=http)


def protected_paths(settings: Settings) -> tuple[Path, ...]:
    """What kernels must never see besides the working directory: the SQLite database wherever
    ``DATASTORY_DATABASE_URL`` points (with its journal files) and ``.env``."""
    paths = [Path(".env").absolute()]
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        db = Path(url.database).absolute()
        paths += [db, *(db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]
    return tuple(paths)


def local_sandbox(settings: Settings, *, pool_size: int | None = None,
                  isolation: Literal["strict", "relaxed"] | None = None) -> LocalSandbox:
    """Kernels in working directories under ``DATASTORY_LOCAL_DIR`` (by default ``datastory-sandboxes-<uid>`` in
    the temp dir: one per user, stable, so a crashed bot's files are removed when the next one starts), isolated
    as ``DATASTORY_LOCAL_ISOLATION`` asks (``isolation`` overrides it). A thread's files, /tmp and /dev/shm share a
    quota of twice the larger file limit.

    Imported here, not at the top: a bot on hosted containers never loads jupyter, pandas or matplotlib.
    """
    from bot.sandbox.local import LocalSandbox

    base = (Path(settings.local_dir) if settings.local_dir
            else Path(tempfile.gettempdir()) / f"datastory-sandboxes-{os.geteuid()}")
    return LocalSandbox(
        base_dir=base, pool_size=settings.local_pool_size if pool_size is None else pool_size,
        memory_mb=settings.local_memory_mb, cpu_seconds=settings.local_cpu_seconds,
        max_file_mb=settings.local_max_file_mb, max_processes=settings.local_max_processes,
        disk_mb=2 * max(settings.max_file_mb, settings.local_max_file_mb),
        isolation=isolation or settings.local_isolation, max_kernels=settings.local_max_kernels,
        protect=protected_paths(settings),
    )


def build_backends(
    settings: Settings, *, sandbox: Literal["openai", "local"] | None = None, pool_size: int | None = None,
    metrics: Metrics | None = None,
    isolation: Literal["strict", "relaxed"] | None = None,
) -> Backends:
    """The sandbox and analyst the settings ask for (``sandbox`` overrides ``DATASTORY_SANDBOX``, ``isolation``
    ``DATASTORY_LOCAL_ISOLATION``)."""
    client = openai_client(settings, metrics=metrics)
    match sandbox or settings.sandbox:
        case "openai":
            if client is None:
                raise ConfigurationError(
                    "OPENAI_API_KEY is not set: the hosted sandbox (DATASTORY_SANDBOX=openai) needs it. "
                    "Set it, or use DATASTORY_SANDBOX=local to run code on this machine."
                )
            hosted = OpenAISandbox(client=client, memory_limit=settings.container_memory)
            return Backends(sandbox=hosted, analyst=ResponsesAnalyst(client=client, model=settings.model),
                            openai=client)
        case "local":
            from bot.analysts.chat_tools import ChatToolsAnalyst
            from bot.analysts.offline import OfflineAnalyst

            kernels = local_sandbox(settings, pool_size=pool_size, isolation=isolation)
            analyst: Analyst
            if client is None:
                analyst = OfflineAnalyst(runner=kernels, timeout=settings.exec_timeout_seconds)
            else:
                analyst = ChatToolsAnalyst(client=client, model=settings.model, runner=kernels,
                                           exec_timeout=settings.exec_timeout_seconds,
                                           max_tool_calls=settings.max_tool_calls)
            return Backends(sandbox=kernels, analyst=analyst, openai=client, warm_up=kernels.start)
