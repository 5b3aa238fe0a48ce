"""The sandbox port: what the core needs from a code-execution backend, and the errors it may raise.

A sandbox is a *container* that holds a thread's files and the state of the code that ran in it. Backends
(``bot.sandbox.openai`` for hosted containers, ``bot.sandbox.local`` for kernels) implement
:class:`SandboxBackend` and pass one shared contract test suite. This module imports nothing from the backends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """A container as the provider reports it."""

    id: str
    name: str
    status: str
    """``running`` or ``expired`` (provider words; other values are passed through)."""
    created_at: float
    """Unix seconds."""
    last_active_at: float | None = None


@dataclass(frozen=True, slots=True)
class SandboxFile:
    """A file inside a container."""

    id: str
    path: str
    """Absolute path inside the container, e.g. ``/mnt/data/chart.png``."""
    size: int
    source: str
    """``user`` for uploads, ``assistant`` for files the code wrote."""
    created_at: float = 0.0

    @property
    def name(self) -> str:
        """The base name of :attr:`path`."""
        return self.path.rsplit("/", 1)[-1]


class SandboxError(Exception):
    """Root of every error a sandbox backend raises."""


class ContainerNotFound(SandboxError):
    """The container does not exist (deleted, swept, or never created): rebuild it."""


class ContainerExpired(SandboxError):
    """The container expired after idling: rebuild it."""


class SandboxTimeout(SandboxError):
    """Code or a provider call took longer than allowed."""


class SandboxUnavailable(SandboxError):
    """The provider refuses work for now (rate limit, capacity, outage) after retries."""


class SandboxSetupError(SandboxError):
    """The sandbox cannot run on this machine as it is set up (a missing module or command, namespaces refused,
    an interpreter kernels cannot read, isolation ``strict`` cannot have): a local problem that waiting does not
    fix. The message names the cause and the fix."""


class SandboxBackend(Protocol):
    """A narrow async port over hosted containers or local kernels."""

    kind: str
    """``openai`` or ``local``; stored with each thread so a change of backend rebuilds."""

    async def create(self, *, name: str, idle_minutes: int) -> ContainerInfo:
        """Create a container named ``name`` that expires ``idle_minutes`` after its last activity."""
        ...

    async def delete(self, container_id: str) -> None:
        """Delete a container; deleting one that is already gone is not an error."""
        ...

    async def upload(
        self, container_id: str, *, name: str, chunks: AsyncIterator[bytes], size: int | None
    ) -> SandboxFile:
        """Stream a file into the container under its original ``name`` without holding it in memory.

        ``size`` is the exact byte count when known (lets the backend send a ``Content-Length``).
        """
        ...

    async def list_files(self, container_id: str) -> list[SandboxFile]:
        """Every file in the container (all pages)."""
        ...

    async def read_file(self, container_id: str, file_id: str) -> bytes:
        """The content of one file (charts and small outputs; never used for the uploaded data)."""
        ...

    async def delete_file(self, container_id: str, file_id: str) -> None:
        """Delete one file (an answer someone removed); one that is already gone is not an error."""
        ...

    async def list_containers(self, *, prefix: str) -> list[ContainerInfo]:
        """Every container whose name starts with ``prefix`` (all pages), expired ones included."""
        ...

    async def close(self) -> None:
        """Release clients and sessions."""
        ...


@dataclass(frozen=True, slots=True)
class ExecResult:
    """What one execution of code in a container produced."""

    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    """``"ZeroDivisionError: division by zero"`` and the traceback, when the code raised."""
    timed_out: bool = False
    """The code ran past its timeout and was interrupted."""
    restarted: bool = False
    """The interpreter had to be killed and rebuilt: variables are lost, files are kept."""

    @property
    def ok(self) -> bool:
        """True when the code ran to its end without raising."""
        return self.error is None and not self.timed_out


class CodeRunner(Protocol):
    """Backends that can run code directly (the local sandbox); the hosted one runs code only via the model."""

    async def execute(self, container_id: str, code: str, *, timeout: float) -> ExecResult:
        """Run ``code`` in the container's interpreter (state persists between calls) with its working
        directory as the current directory. Past ``timeout`` seconds the run is interrupted (state kept); a
        run that cannot be interrupted is killed and the interpreter rebuilt (``restarted``)."""
        ...
