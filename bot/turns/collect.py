"""Output collection and posting: what the code wrote, read within limits, and the answer put in the thread
(:func:`plan_of`: the parts to post and what the store keeps of the turn).

The files an analysis wrote are what the container's file list gained (not the uploads), read within limits and
with CSV formulas defused (:class:`bot.outputs.OutputReader`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from bot.analysts.base import AnalysisRequest, AnalysisResult, Analyst, Progress, TextSink
from bot.costs import footer, turn_cost
from bot.formatting import names_list, narrative, seconds, split_message
from bot.outputs import OutputLimits, OutputReader, Outputs
from bot.poster import Upload
from bot.sandbox.base import SandboxBackend
from bot.store.base import TurnOutcomeRecord
from bot.turns.config import ANSWER_KEPT, CODE_KEPT, MAX_POSTED_FILE_BYTES, MAX_POSTED_FILES, WorkerConfig
from bot.turns.feedback import StatusMessage
from bot.turns.ledger import Plan


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
    container_id: str = ""
    attached: tuple[str, ...] = ()
    """The sandbox file id of each upload (a resumed turn reads them again)."""


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

    async def reread(self, container_id: str, files: list[tuple[str, str]]) -> tuple[Upload, ...]:
        """The uploads of an earlier run, read again from the container (a resumed turn delivering its plan)."""
        return await self._outputs.reread(container_id, files)

    async def analyse(self, request: AnalysisRequest, status: StatusMessage, *, progress: Progress | None = None,
                      on_text: TextSink | None = None) -> tuple[AnalysisResult, Outputs]:
        """Run the analyst in the request's container (its progress to ``progress``, else the status reply; its
        text as it comes to ``on_text``); returns its result and the outputs it wrote."""
        container_id = request.container_id
        before = {f.id for f in await self._sandbox.list_files(container_id)}
        result = await self._analyst.run(request, progress=progress or status.progress, on_text=on_text)
        created = [f for f in await self._sandbox.list_files(container_id) if f.id not in before and f.source != "user"]
        return result, await self._outputs.read(container_id, created, result.cited_file_ids)


def answer_tail(outcome: TurnOutcome, footer: str) -> str:
    """What follows a streamed narrative: the note on files not attached, the reload note, the footer."""
    reloaded = f"_The workspace had expired; I reloaded {names_list(list(outcome.reloaded))}._" \
        if outcome.reloaded else ""
    return "\n\n".join(p for p in (outcome.not_attached, reloaded, footer) if p)


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


async def plan_of(outcome: TurnOutcome, *, config: WorkerConfig, sessions: int, elapsed: float,
                  streamed: list[str]) -> Plan:
    """The answer, ready to post (or, ``streamed``, the Markdown of its streamed messages), and what the store
    keeps of the turn."""
    usage = outcome.result.usage
    cost = turn_cost(model=outcome.result.model, usage=usage, prices=config.prices, sessions=sessions,
                     session_usd=config.session_usd)
    tail = footer(elapsed, cost) if config.cost_footer else ""
    texts = [] if streamed else await answer_parts(outcome, tail)
    charts = len(outcome.uploads)
    what = f"analysed {names_list(list(outcome.loaded))}" if outcome.loaded else "answered"
    extra = f" ({charts} file{'s' * (charts != 1)} attached)" if charts else ""
    record = TurnOutcomeRecord(
        response_id=outcome.result.response_id, input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens, answer=outcome.result.text[:ANSWER_KEPT] or None,
        code="\n\n".join(outcome.result.code)[-CODE_KEPT:] or None, model=outcome.result.model or None,
        cost_usd=cost or 0.0,
    )
    return Plan(texts=texts, container_id=outcome.container_id,
                files=[(fid, u.filename) for fid, u in zip(outcome.attached, outcome.uploads, strict=True)],
                done_line=f":white_check_mark: Done: {what} in {seconds(elapsed)}{extra}.",
                outcome={k: getattr(record, k) for k in record.__dataclass_fields__}, elapsed=elapsed,
                specs=[(name, data.decode("utf-8", "replace")) for name, data in outcome.specs],
                has_code=bool(outcome.result.code), streamed=streamed,
                tail=answer_tail(outcome, tail) if streamed else "")
