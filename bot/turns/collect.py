"""Output collection and posting: what the code wrote, read within limits, and the answer put in the thread.

The files an analysis wrote are what the container's file list gained (not the uploads), read within limits and
with CSV formulas defused (:class:`bot.outputs.OutputReader`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot.analysts.base import AnalysisRequest, AnalysisResult, Analyst
from bot.formatting import names_list, narrative, split_message
from bot.outputs import OutputLimits, OutputReader, Outputs
from bot.poster import Poster, Upload
from bot.sandbox.base import SandboxBackend
from bot.store.base import ThreadKey
from bot.turns.config import MAX_POSTED_FILE_BYTES, MAX_POSTED_FILES, WorkerConfig
from bot.turns.feedback import StatusMessage
from bot.turns.native import direct, native_messages, post_last_part, post_native


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """What a turn produced, ready to post."""

    result: AnalysisResult
    uploads: tuple[Upload, ...]
    loaded: tuple[str, ...]
    """Names of the files that came with this turn's message."""
    reloaded: tuple[str, ...]
    """Names of earlier files loaded again into a rebuilt container (the thread is told)."""
    not_attached: str = ""
    """The line naming the files the code wrote that were not attached, and why (:meth:`Outputs.note`)."""
    specs: tuple[tuple[str, bytes], ...] = ()
    """The chart and table specs the charting helper wrote (:mod:`bot.turns.native`)."""


class Collector:
    """Runs the analyst in a container and collects the files it wrote."""

    def __init__(self, *, sandbox: SandboxBackend, analyst: Analyst, config: WorkerConfig) -> None:
        self._sandbox = sandbox
        self._analyst = analyst
        self._outputs = OutputReader(sandbox=sandbox, limits=OutputLimits(
            files=MAX_POSTED_FILES, file_bytes=MAX_POSTED_FILE_BYTES, turn_bytes=config.max_output_bytes))

    def close(self) -> None:
        """Stop the worker processes that defuse CSV outputs (at shutdown, after the turns)."""
        self._outputs.close()

    async def analyse(self, request: AnalysisRequest, status: StatusMessage) -> tuple[AnalysisResult, Outputs]:
        """Run the analyst in the request's container; returns its result and the outputs it wrote."""
        container_id = request.container_id
        before = {f.id for f in await self._sandbox.list_files(container_id)}
        result = await self._analyst.run(request, progress=status.progress)
        created = [f for f in await self._sandbox.list_files(container_id) if f.id not in before and f.source != "user"]
        return result, await self._outputs.read(container_id, created, result.cited_file_ids)


async def answer_parts(outcome: TurnOutcome, tail: str) -> list[str]:
    """The narrative as the messages that carry it (split at Slack's length limit), notes and footer included."""
    text = await asyncio.to_thread(narrative, outcome.result.text)
    if outcome.not_attached:
        text += "\n\n" + outcome.not_attached
    if tail:
        text += "\n\n" + tail
    if outcome.reloaded:
        text = f"_The workspace had expired; I reloaded {names_list(list(outcome.reloaded))}._\n\n" + text
    return split_message(text)


async def post_answer(poster: Poster, key: ThreadKey, outcome: TurnOutcome, tail: str, *, turn_id: str) -> None:
    """Post the narrative messages (the last with the answer's buttons), Slack's own charts and tables, then the
    files, in the thread (:mod:`bot.turns.native`)."""
    parts = await answer_parts(outcome, tail)
    post = direct(poster, key)
    for i, part in enumerate(parts[:-1]):
        await post(f"answer:{i}", part, None)
    await post_last_part(post, f"answer:{len(parts) - 1}", parts[-1], turn_id=turn_id,
                         has_code=bool(outcome.result.code))
    for j, message in enumerate(native_messages(outcome.specs, pngs=[u.filename for u in outcome.uploads])):
        await post_native(post, f"native:{j}", message)
    if outcome.uploads:
        await poster.upload_files(channel=key.channel, thread_ts=key.thread_ts, files=outcome.uploads)
