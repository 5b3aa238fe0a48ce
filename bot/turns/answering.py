"""The analysis step of a turn: the thread's container gets the files it lacks, the analyst answers the question,
and what its code wrote is collected (:class:`bot.turns.collect.TurnOutcome`); an expired or vanished container
is rebuilt once, transparently, with the thread's earlier turns summarised for the new response chain.
"""

from __future__ import annotations

from bot.analysts.base import DEFAULT_QUESTION, AnalysisRequest
from bot.clock import Clock
from bot.formatting import names_list
from bot.sandbox.base import ContainerExpired, ContainerNotFound
from bot.store.base import Store, TurnRecord
from bot.turns.collect import Collector, TurnOutcome
from bot.turns.config import HISTORY_TURNS, thread_summary
from bot.turns.feedback import StatusMessage
from bot.turns.ledger import AnswerLedger
from bot.turns.loading import FileLoader, data_file, newest_versions
from bot.turns.streaming import AnswerStream
from bot.turns.workspace import Workspace


async def answer_turn(turn: TurnRecord, *, status: StatusMessage, workspace: Workspace, ledger: AnswerLedger,
                      stream: AnswerStream | None, store: Store, clock: Clock, loader: FileLoader,
                      collector: Collector) -> TurnOutcome:
    """Load the files the container lacks, run the analyst and collect what its code wrote; a container that
    expired or vanished meanwhile is rebuilt once (its files loaded again, the thread's history summarised)."""
    key = turn.key
    if stream is not None:
        await stream.open("Analysing your data" if turn.file_ids else "Answering your question")
    for attempt in (1, 2):
        await workspace.refresh()
        try:
            if stream is not None:
                stream.step("load", "in_progress")
            container_id, loaded, files = await loader.load_turn(
                turn, workspace.container_id, status, create=workspace.create,
                say=lambda text: ledger.post("refusals", text))
            own = [f.name for f in files if f.message_ts == turn.message_ts and f.sandbox_path]
            fresh = workspace.fresh or attempt > 1
            request = AnalysisRequest(
                question=turn.question or DEFAULT_QUESTION,
                container_id=container_id,
                files=tuple(data_file(f) for f in newest_versions(files)),
                new_files=tuple(loaded),
                previous_response_id=None if fresh else workspace.last_response_id,
                history=await _history(store, turn) if fresh else "",
            )
            await status.set(f":hourglass_flowing_sand: Analysing {names_list(own)}…" if own
                             else ":hourglass_flowing_sand: Thinking…")
            result, outputs = await collector.analyse(
                request, status, progress=stream.follow(status.progress) if stream else None,
                on_text=stream.text if stream else None)
            await store.set_last_response(key, result.response_id, now=clock.now())
            reloaded = tuple(name for name in loaded if name not in own)
            return TurnOutcome(result=result, uploads=outputs.uploads, loaded=tuple(own), reloaded=reloaded,
                               not_attached=outputs.note(), container_id=container_id,
                               attached=outputs.attached, specs=outputs.specs)
        except (ContainerNotFound, ContainerExpired) as exc:
            if attempt == 2:
                raise
            await workspace.rebuild(type(exc).__name__)
    raise AssertionError("unreachable")  # pragma: no cover

async def _history(store: Store, turn: TurnRecord) -> str:
    """A compact summary of the thread's earlier turns, for a fresh response chain (rebuilt container)."""
    earlier = [t for t in await store.list_turns(turn.key) if t.status == "done" and t.id != turn.id]
    return thread_summary(earlier[-HISTORY_TURNS:])
