"""The turn worker: one question in one thread, from the first reaction to the answer and the charts.

A turn is a durable row in the store. The worker shows progress at once (a reaction and a status reply that is
updated), takes the thread (one turn per thread at a time, in message order) and a global slot
(``DATASTORY_MAX_CONCURRENT_TURNS``), makes sure the thread's container exists (:mod:`bot.turns.workspace`),
streams the files it lacks from Slack into it (:mod:`bot.turns.loading`), runs the analyst, collects what the
code wrote and posts the narrative and those files (:mod:`bot.turns.collect`). A container that turns out to be
gone or expired is rebuilt once per turn, transparently. Failures become one clear line in the thread
(``bot.errors``), never silence. New and resumed turns take one path: :meth:`TurnWorker.start`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bot.analysts.base import DEFAULT_QUESTION, AnalysisRequest, Analyst
from bot.clock import Clock
from bot.costs import footer, turn_cost
from bot.errors import TurnTimeout, failure_text, is_expected, new_ref, outcome_of
from bot.files import FileRejected
from bot.formatting import names_list, seconds
from bot.logs import bind, turn_summary
from bot.metrics import Metrics, QueueWait
from bot.poster import Poster
from bot.sandbox.base import ContainerExpired, ContainerNotFound, SandboxBackend
from bot.store.base import NewTurn, Store, ThreadKey, TurnOutcomeRecord, TurnRecord
from bot.tasks import TaskTracker, TrackerClosed
from bot.turns.collect import Collector, TurnOutcome, post_answer
from bot.turns.config import ANSWER_KEPT, CODE_KEPT, HISTORY_TURNS, WorkerConfig, thread_summary
from bot.turns.feedback import DONE, FAILED, WORKING, Feedback, StatusMessage
from bot.turns.loading import FileLoader, data_file, newest_versions
from bot.turns.queue import ThreadQueue, Ticket
from bot.turns.slots import Slots
from bot.turns.workspace import Containers, Workspace

logger = logging.getLogger("bot.turns")


@dataclass(frozen=True, slots=True)
class Parts:
    """The pieces a turn is made of, shared with batch runs (:class:`bot.jobs.batch.BatchRunner`)."""

    store: Store
    sandbox: SandboxBackend
    poster: Poster
    clock: Clock
    config: WorkerConfig
    metrics: Metrics
    slots: Slots
    containers: Containers
    loader: FileLoader
    collector: Collector


class TurnWorker:
    """Runs turns: bounded concurrency, one per thread at a time, durable across restarts."""

    def __init__(
        self, *, store: Store, sandbox: SandboxBackend, analyst: Analyst, poster: Poster, clock: Clock,
        tracker: TaskTracker, config: WorkerConfig, metrics: Metrics | None = None,
    ) -> None:
        metrics = metrics or Metrics()
        self.parts = Parts(
            store=store, sandbox=sandbox, poster=poster, clock=clock, config=config, metrics=metrics,
            slots=Slots(config.max_concurrent_turns),
            containers=Containers(sandbox=sandbox, clock=clock, config=config, metrics=metrics),
            loader=FileLoader(store=store, sandbox=sandbox, poster=poster, clock=clock, config=config),
            collector=Collector(sandbox=sandbox, analyst=analyst, config=config),
        )
        self._metrics = metrics
        self._store = store
        self._sandbox = sandbox
        self._poster = poster
        self._clock = clock
        self._tracker = tracker
        self._config = config
        self._feedback = Feedback(poster)
        self._queue = ThreadQueue()

    @property
    def running(self) -> int:
        """Analyses holding a slot right now."""
        return self.parts.slots.running

    def close(self) -> None:
        """Stop the worker processes that defuse CSV outputs (at shutdown, after the turns)."""
        self.parts.collector.close()

    async def acknowledge(self, channel: str, ts: str) -> None:
        """The first visible feedback on a user's message: the "working" reaction."""
        await self._feedback.react(channel, ts, WORKING)

    async def submit(self, turn: NewTurn, *, dedupe_keys: tuple[str, ...], reacted: bool = False) -> bool:
        """Store the turn (False when it is a duplicate) and start it in the background.

        ``reacted``: the caller already put the "working" reaction on the message.
        """
        if not await self._store.submit_turn(turn, dedupe_keys=dedupe_keys):
            logger.info("duplicate dropped key=%s", dedupe_keys[0] if dedupe_keys else "")
            return False
        record = TurnRecord(id=turn.id, key=turn.key, message_ts=turn.message_ts, user=turn.user,
                            question=turn.question, file_ids=tuple(f.slack_file_id for f in turn.files),
                            status="queued", created_at=turn.created_at)
        ticket = self._queue.join(turn.key, turn.message_ts)
        self._spawn(record, [f.name for f in turn.files], ticket, reacted=reacted)
        return True

    def _spawn(self, turn: TurnRecord, files: list[str], ticket: Ticket, *, reacted: bool = False) -> None:
        try:
            self._tracker.spawn(self._run(turn, files, ticket, reacted=reacted), name=f"turn-{turn.id}",
                                group=turn.key.team)
        except TrackerClosed:
            logger.info("shutting down; turn stays queued turn=%s", turn.id)

    async def reset(self, key: ThreadKey, *, ts: str) -> bool:
        """Delete the thread's container (in line with the thread's turns: after those asked before ``ts``) and
        forget the response chain; the files stay, so the next question starts a fresh workspace. False when the
        thread is unknown."""
        ticket = self._queue.join(key, ts)
        async with self._queue.turn(key, ticket):
            thread = await self._store.get_thread(key)
            if thread is None:
                return False
            if thread.container_id and thread.backend == self._sandbox.kind:
                await self._sandbox.delete(thread.container_id)
            await self._store.clear_container(key, status="reset")
        logger.info("thread reset thread=%s", key)
        return True

    async def resume_unfinished(self) -> int:
        """Start every turn a previous process left queued or running; returns how many."""
        turns = await self._store.unfinished_turns()
        for turn in turns:
            logger.info("resuming turn=%s thread=%s", turn.id, turn.key)
            await self.start(turn.id)
        return len(turns)

    async def start(self, turn_id: str) -> bool:
        """Start one stored turn in the background (new or resumed: one path); False when it has ended."""
        turn = await self._store.get_turn(turn_id)
        if turn is None or turn.status in ("done", "failed"):
            return False
        ticket = self._queue.join(turn.key, turn.message_ts)
        files = [f.name for f in await self._store.list_files(turn.key) if f.message_ts == turn.message_ts]
        self._spawn(turn, files, ticket)
        return True

    async def run(self, turn_id: str) -> None:
        """Run one stored turn to its end (done or failed), in the caller's task."""
        turn = await self._store.get_turn(turn_id)
        if turn is None or turn.status in ("done", "failed"):
            return
        ticket = self._queue.join(turn.key, turn.message_ts)
        files = [f.name for f in await self._store.list_files(turn.key) if f.message_ts == turn.message_ts]
        await self._run(turn, files, ticket)

    async def _run(self, turn: TurnRecord, files: list[str], ticket: Ticket, *, reacted: bool = False) -> None:
        """Show feedback at once (no store read first), then wait for the thread and a slot, then work."""
        key = turn.key
        bind(team=key.team, channel=key.channel, thread_ts=key.thread_ts, turn=turn.id)
        status = StatusMessage(poster=self._poster, channel=key.channel, thread_ts=key.thread_ts, ts=turn.status_ts)
        first = (f":hourglass_flowing_sand: Reading {names_list(files)}…" if files
                 else ":hourglass_flowing_sand: Working on it…")
        if reacted:
            await status.set(first)
        else:
            await asyncio.gather(self.acknowledge(key.channel, turn.message_ts), status.set(first))
        if status.ts and status.ts != turn.status_ts:
            await self._store.set_status_ts(turn.id, status.ts)
        if ahead := self._queue.ahead(key, ticket):
            await status.set(f":hourglass: Queued behind {ahead} earlier question{'s' * (ahead > 1)} "
                             "in this thread; I'll answer in order.")
        with self._metrics.queued() as wait:
            async with self._queue.turn(key, ticket):
                await self._run_locked(turn, status, wait)

    async def _run_locked(self, turn: TurnRecord, status: StatusMessage, wait: QueueWait) -> None:
        slots = self.parts.slots
        if slots.full():
            await status.set(f":hourglass: Waiting for a free slot: {slots.running} analyses are running.")
        async with slots.hold():
            wait.started()
            await self._execute(turn, status)

    async def _execute(self, turn: TurnRecord, status: StatusMessage) -> None:
        key = turn.key
        started = self._clock.now()
        if not await self._store.start_turn(turn.id, now=started):
            logger.info("turn ended while it waited (its thread was told); not run turn=%s", turn.id)
            return
        workspace = Workspace(key=key, store=self._store, containers=self.parts.containers, clock=self._clock,
                              config=self._config, metrics=self._metrics, status=status)
        try:
            async with asyncio.timeout(self._config.turn_timeout):
                outcome = await self._answer(turn, status, workspace)
        except TimeoutError:
            await self._fail(turn, status, TurnTimeout(self._config.turn_timeout), self._clock.now() - started)
            return
        except asyncio.CancelledError:
            logger.info("turn interrupted by shutdown; it will resume turn=%s", turn.id)
            self._finished("interrupted", self._clock.now() - started)
            raise
        except Exception as exc:
            await self._fail(turn, status, exc, self._clock.now() - started)
            return
        elapsed = self._clock.now() - started
        usage = outcome.result.usage
        cost = turn_cost(model=outcome.result.model, usage=usage, prices=self._config.prices,
                         sessions=workspace.sessions.count, session_usd=self._config.session_usd)
        await post_answer(self._poster, key, outcome, footer(elapsed, cost) if self._config.cost_footer else "",
                          turn_id=turn.id)
        charts = len(outcome.uploads)
        what = f"analysed {names_list(list(outcome.loaded))}" if outcome.loaded else "answered"
        extra = f" ({charts} file{'s' * (charts != 1)} attached)" if charts else ""
        await self._feedback.swap(key.channel, turn.message_ts, DONE)
        await status.set(f":white_check_mark: Done: {what} in {seconds(elapsed)}{extra}.")
        await self._store.finish_turn(turn.id, status="done", now=self._clock.now(), outcome=TurnOutcomeRecord(
            response_id=outcome.result.response_id, input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens, answer=outcome.result.text[:ANSWER_KEPT] or None,
            code="\n\n".join(outcome.result.code)[-CODE_KEPT:] or None, model=outcome.result.model or None,
            cost_usd=cost or 0.0,
        ))
        self._finished("done", elapsed, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                       cost_usd=cost, files=charts)

    def _finished(self, outcome: str, elapsed: float, *, input_tokens: int = 0, output_tokens: int = 0,
                  cost_usd: float | None = None, files: int = 0) -> None:
        """Every turn ends here: one summary log line and the metrics."""
        self._metrics.turn_finished(outcome, seconds=elapsed, input_tokens=input_tokens, output_tokens=output_tokens,
                                    cost_usd=cost_usd)
        turn_summary(logger, outcome=outcome, seconds=elapsed, input_tokens=input_tokens,
                     output_tokens=output_tokens, cost_usd=cost_usd, files=files)

    async def _answer(self, turn: TurnRecord, status: StatusMessage, workspace: Workspace) -> TurnOutcome:
        key = turn.key
        for attempt in (1, 2):
            await workspace.refresh()
            try:
                container_id, loaded = await self.parts.loader.load_turn(
                    turn, workspace.container_id, status, create=workspace.create)
                files = await self._store.list_files(key)
                own = [f.name for f in files if f.message_ts == turn.message_ts and f.sandbox_path]
                fresh = workspace.fresh or attempt > 1
                request = AnalysisRequest(
                    question=turn.question or DEFAULT_QUESTION,
                    container_id=container_id,
                    files=tuple(data_file(f) for f in newest_versions(files)),
                    new_files=tuple(loaded),
                    previous_response_id=None if fresh else workspace.last_response_id,
                    history=await self._history(turn) if fresh else "",
                )
                await status.set(f":hourglass_flowing_sand: Analysing {names_list(own)}…" if own
                                 else ":hourglass_flowing_sand: Thinking…")
                result, outputs = await self.parts.collector.analyse(request, status)
                await self._store.set_last_response(key, result.response_id, now=self._clock.now())
                reloaded = tuple(name for name in loaded if name not in own)
                return TurnOutcome(result=result, uploads=outputs.uploads, loaded=tuple(own), reloaded=reloaded,
                                   not_attached=outputs.note(), specs=outputs.specs)
            except (ContainerNotFound, ContainerExpired) as exc:
                if attempt == 2:
                    raise
                await workspace.rebuild(type(exc).__name__)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _history(self, turn: TurnRecord) -> str:
        """A compact summary of the thread's earlier turns, for a fresh response chain (rebuilt container)."""
        earlier = [t for t in await self._store.list_turns(turn.key) if t.status == "done" and t.id != turn.id]
        return thread_summary(earlier[-HISTORY_TURNS:])

    async def _fail(self, turn: TurnRecord, status: StatusMessage, exc: BaseException, elapsed: float) -> None:
        ref = new_ref()
        expected = is_expected(exc)  # explained in the thread: no stack trace unless at DEBUG
        what = "turn refused its files" if isinstance(exc, FileRejected) else "turn failed"
        logger.log(logging.INFO if expected else logging.ERROR, "%s turn=%s thread=%s ref=%s error=%s",
                   what, turn.id, turn.key, ref, type(exc).__name__,
                   exc_info=exc if not expected or logger.isEnabledFor(logging.DEBUG) else None)
        await self._feedback.swap(turn.key.channel, turn.message_ts, FAILED)
        await status.set(failure_text(exc, ref))
        await self._store.finish_turn(turn.id, status="failed", now=self._clock.now(),
                                      outcome=TurnOutcomeRecord(error=f"{type(exc).__name__} ref={ref}"))
        self._finished(outcome_of(exc), elapsed)
