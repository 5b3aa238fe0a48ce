"""The turn worker: one question in one thread, from the first reaction to the answer and the charts.

A turn is a durable row in the store, and the accepted turns are the queue (:mod:`bot.turns.queue`). The replica
that accepts a message shows progress at once (a reaction and a status reply, the turn held meanwhile so nobody
runs it before the reply exists), then gives the turn to the queue. Whichever replica claims it (the same one when
it has a free slot) runs it under a lease: one turn per thread at a time, in message order. A run makes sure the
thread's container exists (:mod:`bot.turns.workspace`), streams the files it lacks from Slack into it
(:mod:`bot.turns.loading`), runs the analyst and collects what the code wrote (:mod:`bot.turns.answering`), records
the answer as a plan (:func:`bot.turns.collect.plan_of`) and delivers it part by part through the ledger
(:mod:`bot.turns.ledger`); with ``DATASTORY_STREAM_ANSWERS`` the narrative is streamed while the model writes it
(:mod:`bot.turns.streaming`) and the plan records the streamed messages instead. So a turn resumed
after a crash continues where it stopped and never posts a part twice. After ``DATASTORY_MAX_ATTEMPTS`` runs that
did not end, a turn gets one failure note instead. New and resumed turns take one path: :meth:`TurnWorker.start`.
A turn analysing can be stopped from any replica (:mod:`bot.turns.stopping`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bot.agent_sessions import AgentSessions
from bot.analysts.base import Analyst
from bot.clock import Clock
from bot.errors import AttemptsExhausted, TurnStopped, TurnTimeout, failure_text, is_expected, new_ref, outcome_of
from bot.files import FileRejected
from bot.logs import bind, turn_summary
from bot.metrics import Metrics
from bot.poster import Poster, SlackError, StreamTarget, Upload
from bot.sandbox.base import SandboxBackend, SandboxError
from bot.store.base import NewTurn, Store, ThreadKey, TurnOutcomeRecord, TurnRecord
from bot.store.queue import STATUS_PART
from bot.tasks import TaskTracker, TrackerClosed
from bot.turns.answering import answer_turn
from bot.turns.collect import Collector, TurnOutcome, plan_of
from bot.turns.config import WorkerConfig
from bot.turns.feedback import DONE, FAILED, WORKING, Feedback, StatusMessage
from bot.turns.greeting import greet
from bot.turns.ledger import AnswerLedger, Plan
from bot.turns.loading import FileLoader
from bot.turns.native import native_messages, post_last_part, post_native
from bot.turns.queue import POLL_SECONDS, Dispatcher, Lease, replica_id
from bot.turns.slots import Slots
from bot.turns.stopping import Stopper
from bot.turns.stream_parts import first_ts
from bot.turns.streaming import AnswerStream
from bot.turns.waiting import tell_waiting
from bot.turns.workspace import Containers, Workspace

logger = logging.getLogger("bot.turns")

ResultHook = Callable[[TurnRecord, TurnOutcome, float | None], Awaitable[None]]
"""What :class:`TurnWorker` calls with each answered turn, its outcome and its cost, before posting it."""


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
    """Runs turns: bounded concurrency, one per thread at a time across replicas, durable across crashes."""

    def __init__(
        self, *, store: Store, sandbox: SandboxBackend, analyst: Analyst, poster: Poster, clock: Clock,
        tracker: TaskTracker, config: WorkerConfig, metrics: Metrics | None = None, owner: str | None = None,
        results: ResultHook | None = None,
    ) -> None:
        metrics = metrics or Metrics()
        self._results = results
        """Given every answered turn's outcome before it is posted (the HTTP API keeps the raw narrative, code
        and files of its sessions' turns: :meth:`bot.api.runs.TurnResults.on_result`)."""
        slots = Slots(config.max_concurrent_turns)
        self.parts = Parts(
            store=store, sandbox=sandbox, poster=poster, clock=clock, config=config, metrics=metrics, slots=slots,
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
        self.agent_sessions = AgentSessions(poster, enabled=config.agent_sessions)
        """The threads' Slack agent session statuses (:mod:`bot.agent_sessions`)."""
        self.stopping = Stopper(store=store, clock=clock, lease_seconds=config.lease_seconds)
        """The turns analysing here, and the stops asked for them (:mod:`bot.turns.stopping`)."""
        self._streams: dict[str, AnswerStream] = {}
        """Turn id → its streamed reply, while the turn runs on this replica."""
        self.owner = owner or replica_id()
        self._greeter = f"{self.owner}/greeting"
        self.queue = Dispatcher(store=store, clock=clock, slots=slots, tracker=tracker, metrics=metrics,
                                owner=self.owner, lease_seconds=config.lease_seconds, work=self._work)

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

    async def submit(self, turn: NewTurn, *, dedupe_keys: tuple[str, ...], reacted: bool = False,
                     inbox_event: str | None = None, alone: bool = False) -> bool:
        """Store the turn (False when it is a duplicate), show feedback and give it to the queue, in the background.

        ``reacted``: the caller already put the "working" reaction on the message. ``inbox_event``: the inbox event
        the turn comes from, marked done with the turn's storing. ``alone``: only when the thread has no
        unfinished turn (else :class:`bot.store.base.ThreadBusy`, nothing stored).
        """
        held_until = self._clock.now() + self._config.lease_seconds
        if not await self._store.submit_turn(turn, dedupe_keys=dedupe_keys, holder=self._greeter,
                                             hold_until=held_until, inbox_event=inbox_event, alone=alone):
            logger.info("duplicate dropped key=%s", dedupe_keys[0] if dedupe_keys else "")
            return False
        record = TurnRecord(id=turn.id, key=turn.key, message_ts=turn.message_ts, user=turn.user,
                            question=turn.question, file_ids=tuple(f.slack_file_id for f in turn.files),
                            status="queued", created_at=turn.created_at, lease_owner=self._greeter,
                            lease_expires_at=held_until)
        try:
            self._tracker.spawn(self._accept(record, [f.name for f in turn.files], reacted=reacted),
                                name=f"turn-{turn.id}", group=turn.key.team)
        except TrackerClosed:
            await self._store.release_turn(turn.id, owner=self._greeter)
            logger.info("shutting down; turn stays queued turn=%s", turn.id)
        return True

    async def _accept(self, turn: TurnRecord, files: list[str], *, reacted: bool) -> None:
        """Show feedback at once (no store read first), then hand the turn from the greeting's hold straight to a
        run here when a slot is free (one claim, nothing to release); otherwise say why it waits, give it to the
        queue and pump it."""
        key = turn.key
        bind(team=key.team, channel=key.channel, thread_ts=key.thread_ts, turn=turn.id)
        hold = Lease(store=self._store, clock=self._clock, turn_id=turn.id, owner=self._greeter,
                     seconds=self._config.lease_seconds, metrics=self._metrics, expires_at=turn.lease_expires_at)
        hold.keep()  # renewed while the feedback is posted: nobody runs the turn before its status reply exists
        handed = False
        try:
            reply = await greet(turn, files, poster=self._poster, feedback=self._feedback, reacted=reacted, hold=hold)
            if reply is not None and reply.ts is not None:
                await hold.stop()  # not renewed past this point: the claim below may take the hold over
                # the claim records the status reply in the ledger, and the run starts from that ledger: nobody
                # else wrote to it while the hold was held
                handed = await self.queue.take(turn.id, holder=self._greeter, status_ts=reply.ts)
                if not handed:
                    hold.keep()
                    await self._store.record_part(turn.id, STATUS_PART, reply.ts, now=self._clock.now())
                    await self._waiting(turn, reply)
        except asyncio.CancelledError:
            if not hold.lost:
                raise
            return  # another replica holds the turn now (it finds the status reply in the thread)
        finally:
            await hold.stop()
            if not hold.lost and not handed:
                await asyncio.shield(self._store.release_turn(turn.id, owner=self._greeter))
        if not handed:
            await self.start(turn.id)

    async def _waiting(self, turn: TurnRecord, reply: StatusMessage) -> None:
        """Why a turn that could not start at once waits (:mod:`bot.turns.waiting`)."""
        await tell_waiting(store=self._store, poster=self._poster, clock=self._clock, slots=self.parts.slots,
                           turn=turn, reply=reply, owner=f"{self.owner}/places",
                           lease_seconds=self._config.lease_seconds)

    async def start(self, turn_id: str | None = None) -> int:
        """Claim ``turn_id`` (when it is runnable) and any other runnable turn while slots are free, and run them:
        the one path of new and resumed turns. Returns how many turns started."""
        return await self.queue.pump(first=turn_id)

    async def resume_unfinished(self) -> int:
        """Start what the queue holds (turns a previous process left, turns other replicas gave back); returns
        how many unfinished turns the store has."""
        unfinished = await self._store.unfinished_turns()
        await self.start()
        return len(unfinished)

    async def poll_forever(self) -> None:
        """Look for runnable turns every second (work other replicas gave back or left behind)."""
        await self.queue.poll_forever(POLL_SECONDS)

    async def reset(self, key: ThreadKey, *, ts: str) -> bool:
        """Delete the thread's container (in line with the thread's turns: after those asked before ``ts`` and
        the one running) and forget the response chain; the files stay, so the next question starts a fresh
        workspace. False when the thread is unknown."""
        while await self._store.thread_busy(key, before_ts=ts, now=self._clock.now()):
            await asyncio.sleep(POLL_SECONDS / 4)
        thread = await self._store.get_thread(key)
        if thread is None:
            return False
        if thread.container_id and thread.backend == self._sandbox.kind:
            await self._sandbox.delete(thread.container_id)
        await self._store.clear_container(key, status="reset")
        await self.agent_sessions.set(key, "closed")
        logger.info("thread reset thread=%s", key)
        return True

    async def stop(self, key: ThreadKey, *, by: str) -> bool:
        """Interrupt the thread's analysing turn, on this replica or the one running it (the running code is
        interrupted, the container and its variables kept); the thread is told who stopped it. False when
        nothing runs in the thread."""
        return await self.stopping.stop(key, by=by)

    async def stop_in_channel(self, team: str, channel: str, *, by: str, everyone: bool) -> int:
        """``/datastory stop``: stop the turns running in the channel (``by``'s own, or all for an admin)."""
        return await self.stopping.stop_in_channel(team, channel, by=by, everyone=everyone)

    async def _work(self, turn: TurnRecord, lease: Lease) -> None:
        """Run one claimed turn to its end (done or failed), or give it back when interrupted."""
        key = turn.key
        bind(team=key.team, channel=key.channel, thread_ts=key.thread_ts, turn=turn.id)
        started = self._clock.now()
        if turn.attempts > 1:
            self._metrics.turn_resumed()
            logger.info("resuming turn=%s thread=%s attempt=%d", turn.id, key, turn.attempts)
        else:
            self._metrics.queue_waited(started - turn.created_at)
        try:
            # a turn without its status reply may have posted it before the ledger knew (the replica that
            # accepted it died): it reads the thread back before posting anything
            resumed = turn.attempts > 1 or not turn.status_ts
            ledger = (AnswerLedger(store=self._store, poster=self._poster, clock=self._clock, turn=turn,
                                   posted=dict(lease.handed), resumed=resumed, lease=lease)
                      if lease.handed is not None else
                      await AnswerLedger.open(store=self._store, poster=self._poster, clock=self._clock, turn=turn,
                                              resumed=resumed, lease=lease))
            status = await self._status(turn, ledger)
            if turn.attempts > self._config.max_attempts:
                self._metrics.attempts_exhausted()
                await self._fail(turn, status, ledger, AttemptsExhausted(turn.attempts - 1), 0.0)
            else:
                await self._execute(turn, status, ledger, started)
            await self.agent_sessions.set(key, "active")
        except asyncio.CancelledError:
            by = self.stopping.stopped_by(turn.id)
            task = asyncio.current_task()
            if by is not None and not lease.lost and task is not None and task.uncancel() == 0:
                await self._fail(turn, status, ledger, TurnStopped(by), self._clock.now() - started)
                await self.agent_sessions.set(key, "active")
                return
            if (stream := self._streams.pop(turn.id, None)) is not None:
                stream.abandon()  # the stream stays as it is: the turn's next run takes it over
            if lease.lost:
                self._finished("lease_lost", self._clock.now() - started)
            else:
                logger.info("turn interrupted by shutdown; it will resume turn=%s", turn.id)
                self._finished("interrupted", self._clock.now() - started)
                await asyncio.shield(self._store.release_turn(turn.id, owner=self.owner, refund=True))
            raise
        except Exception:  # posting the answer failed (Slack is away...): the next run continues it, attempts bound it
            logger.exception("turn run broke off; it goes back to the queue turn=%s", turn.id)
            await self._store.release_turn(turn.id, owner=self.owner)

    async def _status(self, turn: TurnRecord, ledger: AnswerLedger) -> StatusMessage:
        """The turn's status reply: the one its greeting posted (found in the thread when the ledger lacks it)."""
        key = turn.key
        ts = turn.status_ts or ledger.posted.get("status")
        if ts is None:
            try:
                ts = await ledger.post("status", ":hourglass_flowing_sand: Working on it…")
            except SlackError as exc:
                logger.warning("status update failed channel=%s error=%s", key.channel, exc.code)
        return StatusMessage(poster=self._poster, channel=key.channel, thread_ts=key.thread_ts, ts=ts)

    async def _execute(self, turn: TurnRecord, status: StatusMessage, ledger: AnswerLedger, started: float) -> None:
        # running since its claim (``started_at``): a turn ended meanwhile loses its lease and stops
        await self.agent_sessions.set(turn.key, "processing")  # Slack's own Stop button, while the turn runs
        plan = ledger.plan()
        if plan is None:
            workspace = Workspace(key=turn.key, store=self._store, containers=self.parts.containers,
                                  clock=self._clock, config=self._config, metrics=self._metrics, status=status)
            status.stop_turn = turn.id  # the status reply's Stop button, while the turn analyses
            streams = self._config.stream_answers and turn.user and self._poster.streams(turn.key.channel)
            stream = self._stream(turn, ledger) if streams else None  # not where the poster cannot stream
            try:
                async with self.stopping.analysing(turn), asyncio.timeout(self._config.turn_timeout):
                    outcome = await answer_turn(turn, status=status, workspace=workspace, ledger=ledger,
                                                stream=stream, store=self._store, clock=self._clock,
                                                loader=self.parts.loader, collector=self.parts.collector)
                    streamed = await stream.drain(outcome.result.text) if stream is not None else []
            except TimeoutError:
                await self._fail(turn, status, ledger, TurnTimeout(self._config.turn_timeout),
                                 self._clock.now() - started)
                return
            except Exception as exc:
                await self._fail(turn, status, ledger, exc, self._clock.now() - started)
                return
            finally:
                status.stop_turn = None
            plan = await plan_of(outcome, config=self._config, sessions=workspace.sessions.count,
                                 elapsed=self._clock.now() - started, streamed=streamed)
            if self._results is not None:
                cost = plan.outcome.get("cost_usd")
                await self._results(turn, outcome, cost if isinstance(cost, float) else None)
            await ledger.keep_plan(plan)
            uploads = outcome.uploads
        else:
            logger.info("delivering what an earlier run answered turn=%s posted=%s", turn.id,
                        ",".join(sorted(p for p in ledger.posted if p != "plan")) or "nothing")
            try:
                uploads = await self.parts.collector.reread(plan.container_id, plan.files)
            except SandboxError as exc:
                logger.warning("outputs of the earlier run are gone turn=%s error=%s", turn.id, type(exc).__name__)
                uploads = ()
        await self._deliver(turn, status, ledger, plan, uploads)

    async def _deliver(self, turn: TurnRecord, status: StatusMessage, ledger: AnswerLedger, plan: Plan,
                       uploads: Sequence[Upload]) -> None:
        """Post what the ledger has not seen posted: the narrative's messages, the files, the reaction, the
        final status; then finish the turn (while this replica still holds it)."""
        key = turn.key
        specs = [(name, text.encode()) for name, text in plan.specs]
        natives = native_messages(specs, pngs=[name for _, name in plan.files])
        if plan.streamed:
            stream = self._streams.pop(turn.id, None) or self._stream(turn, ledger, texts=plan.streamed)
            await stream.finish(plan.tail, has_code=plan.has_code, natives=natives)
        else:
            last = len(plan.texts) - 1
            for i, text in enumerate(plan.texts[:-1]):
                await ledger.post(f"answer:{i}", text)
            await post_last_part(ledger.post, f"answer:{last}", plan.texts[-1], turn_id=turn.id,
                                 has_code=plan.has_code)
        for j, message in enumerate(natives):
            await post_native(ledger.post, f"native:{j}", message)
        await ledger.upload("files", uploads, after=ledger.posted.get("answer:0") or first_ts(ledger.posted))
        await ledger.once("reaction", lambda: self._feedback.swap(key.channel, turn.message_ts, DONE))
        await status.set(plan.done_line)
        record = plan.outcome_record()
        now = self._clock.now()
        if await self._store.finish_turn(turn.id, status="done", now=now, outcome=record, owner=self.owner):
            self.queue.ended(turn, "done", now, record)
        else:
            logger.warning("turn finished after its lease was lost turn=%s", turn.id)
        self._finished("done", plan.elapsed, input_tokens=record.input_tokens, output_tokens=record.output_tokens,
                       cost_usd=record.cost_usd, files=len(plan.files))

    def _finished(self, outcome: str, elapsed: float, *, input_tokens: int = 0, output_tokens: int = 0,
                  cost_usd: float | None = None, files: int = 0) -> None:
        """Every run ends here: one summary log line and the metrics."""
        self._metrics.turn_finished(outcome, seconds=elapsed, input_tokens=input_tokens, output_tokens=output_tokens,
                                    cost_usd=cost_usd)
        turn_summary(logger, outcome=outcome, seconds=elapsed, input_tokens=input_tokens,
                     output_tokens=output_tokens, cost_usd=cost_usd, files=files)

    def _stream(self, turn: TurnRecord, ledger: AnswerLedger, texts: list[str] | None = None) -> AnswerStream:
        """The turn's streamed reply, to the asker (:mod:`bot.turns.streaming`)."""
        key = turn.key
        stream = AnswerStream(poster=self._poster, ledger=ledger, turn_id=turn.id, texts=texts,
                              target=StreamTarget(channel=key.channel, thread_ts=key.thread_ts,
                                                  recipient_user=turn.user, recipient_team=key.team))
        self._streams[turn.id] = stream
        return stream

    async def _fail(self, turn: TurnRecord, status: StatusMessage, ledger: AnswerLedger, exc: BaseException,
                    elapsed: float) -> None:
        if (stream := self._streams.pop(turn.id, None)) is not None:
            await stream.close()
        ref = new_ref()
        expected = is_expected(exc)  # explained in the thread: no stack trace unless at DEBUG
        what = "turn refused its files" if isinstance(exc, FileRejected) else "turn failed"
        logger.log(logging.INFO if expected else logging.ERROR, "%s turn=%s thread=%s ref=%s error=%s",
                   what, turn.id, turn.key, ref, type(exc).__name__,
                   exc_info=exc if not expected or logger.isEnabledFor(logging.DEBUG) else None)
        await ledger.once("reaction", lambda: self._feedback.swap(turn.key.channel, turn.message_ts, FAILED))
        await status.set(failure_text(exc, ref))
        now, record = self._clock.now(), TurnOutcomeRecord(error=f"{type(exc).__name__} ref={ref}")
        if await self._store.finish_turn(turn.id, status="failed", now=now, owner=self.owner, outcome=record):
            self.queue.ended(turn, "failed", now, record)
        self._finished(outcome_of(exc), elapsed)
