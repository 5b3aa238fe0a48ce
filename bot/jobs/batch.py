"""One-off runs in a fresh, short-lived container: what a scheduled digest runs.

:class:`BatchRunner` runs the turn machinery (container creation with the capacity back-off, streaming upload
with inspection, the analyst, the output diff and CSV neutralising) for a question about some files, in a
container that is deleted as soon as the run ends. It takes a worker slot and is bounded by the turn timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bot.analysts.base import AnalysisRequest, AnalysisResult
from bot.costs import footer, turn_cost
from bot.errors import TurnTimeout
from bot.poster import Upload
from bot.sandbox.base import SandboxError
from bot.store.base import FileRecord
from bot.turns.feedback import StatusMessage
from bot.turns.worker import Parts
from bot.turns.workspace import Sessions

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What a one-off run in a fresh container produced, ready to post."""

    result: AnalysisResult
    uploads: tuple[Upload, ...]
    loaded: tuple[str, ...]
    """Names of the files the analysis had."""
    refused: tuple[tuple[str, str], ...]
    """``(name, reason)`` of files the inspection refused (the others were analysed)."""
    container_id: str
    """The batch container (already deleted when the outcome is returned)."""
    elapsed: float
    cost_usd: float | None
    """Tokens plus the container session; None when the model's price is unknown."""
    footer: str
    """``_⏱ time · ≈ $cost_``, or empty when the cost footer is off."""
    not_attached: str = ""
    """The line naming the files the code wrote that were not attached, and why."""


class BatchRunner:
    """Runs one-off questions with the turn worker's pieces (:attr:`bot.turns.TurnWorker.parts`)."""

    def __init__(self, parts: Parts) -> None:
        self._parts = parts

    async def run(self, files: Sequence[FileRecord], question: str, *, name: str, idle_minutes: int) -> BatchOutcome:
        """Answer ``question`` about ``files`` in a fresh container named ``name`` (``expires_after`` anchored on
        ``last_active_at`` with ``idle_minutes``), deleted as soon as the run ends, whatever the outcome.

        The files are streamed from Slack with inspection, as a turn does, but nothing is written to the store
        (the thread's own container and file records are left alone). Raises what a turn would fail with
        (:class:`bot.files.FilesRefused` when no file could be read, :class:`bot.errors.TurnTimeout`, sandbox and
        analyst errors).
        """
        p = self._parts
        status = StatusMessage(poster=p.poster, channel="", thread_ts="", ts=None, quiet=True)
        sessions = Sessions()
        created: list[str] = []

        async def create() -> str:
            info = await p.containers.create(name, status, sessions, idle_minutes=idle_minutes)
            created.append(info.id)
            logger.info("batch container created container=%s name=%s", info.id, name)
            return info.id

        started = p.clock.now()
        async with p.slots.hold():
            try:
                async with asyncio.timeout(p.config.turn_timeout):
                    container_id, data, refused = await p.loader.load_batch(files, create, status)
                    request = AnalysisRequest(question=question, container_id=container_id, files=tuple(data),
                                              new_files=tuple(d.name for d in data))
                    result, outputs = await p.collector.analyse(request, status)
            except TimeoutError:
                raise TurnTimeout(p.config.turn_timeout) from None
            finally:
                for cid in created:
                    await self._delete_now(cid)
        elapsed = p.clock.now() - started
        cost = turn_cost(model=result.model, usage=result.usage, prices=p.config.prices, sessions=sessions.count,
                         session_usd=p.config.session_usd)
        p.metrics.spent("digest", input_tokens=result.usage.input_tokens,
                        output_tokens=result.usage.output_tokens, cost_usd=cost)
        return BatchOutcome(result=result, uploads=outputs.uploads, loaded=tuple(d.name for d in data),
                            refused=tuple(refused), container_id=container_id, elapsed=elapsed, cost_usd=cost,
                            footer=footer(elapsed, cost) if p.config.cost_footer else "",
                            not_attached=outputs.note())

    async def _delete_now(self, container_id: str) -> None:
        """Delete a batch container; a failure is logged and left to the sweeper (the name carries the prefix)."""
        try:
            await self._parts.sandbox.delete(container_id)
        except SandboxError as exc:
            logger.warning("batch container not deleted, the sweeper will container=%s error=%s", container_id,
                           type(exc).__name__)
