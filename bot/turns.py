"""The turn worker: one question in one thread, from the first reaction to the answer and the charts.

A turn is a durable row in the store. The worker shows progress at once (a reaction and a status reply that is
updated), takes the thread lock (one turn per thread at a time, in arrival order) and a global slot
(``DATASTORY_MAX_CONCURRENT_TURNS``), makes sure the thread's container exists, streams the files it lacks from
Slack into it, runs the analyst, diffs the container's file list to find what the code wrote, and posts the
narrative and those files into the thread. A container that turns out to be gone or expired is rebuilt once per
turn, transparently. Failures become one clear line in the thread (``bot.errors``), never silence.

:meth:`TurnWorker.run_batch` runs the same machinery (container creation with the capacity back-off, streaming
upload with inspection, the analyst, the output diff and CSV neutralising) for a one-off question in a fresh,
short-lived container that is deleted as soon as the run ends: what a scheduled digest runs.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import itertools
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from bot.analysts.base import DEFAULT_QUESTION, AnalysisRequest, AnalysisResult, Analyst, DataFile
from bot.clock import Clock
from bot.config import Settings
from bot.costs import footer, turn_cost
from bot.errors import TurnTimeout, failure_text, is_expected, new_ref, outcome_of
from bot.files import (
    ACCESS_DENIED_REASON,
    FOREIGN_HOST_REASON,
    NOT_FOUND_REASON,
    FileProfile,
    FileRejected,
    FilesRefused,
    ReadOptions,
    inspect_stream,
    refusals_text,
)
from bot.formatting import human_size, names_list, narrative, seconds, split_message
from bot.logs import bind, turn_summary
from bot.metrics import Metrics, QueueWait
from bot.outputs import MB, OutputLimits, OutputReader, Outputs
from bot.poster import FileAccessDenied, ForeignFileHost, Poster, SlackError, Upload
from bot.sandbox.base import (
    ContainerExpired,
    ContainerInfo,
    ContainerNotFound,
    SandboxBackend,
    SandboxError,
    SandboxFile,
    SandboxUnavailable,
)
from bot.store.base import FileRecord, NewTurn, Store, ThreadKey, TurnOutcomeRecord, TurnRecord
from bot.tasks import TaskTracker, TrackerClosed

logger = logging.getLogger(__name__)

MAX_POSTED_FILES = 10
MAX_POSTED_FILE_BYTES = 50 * MB
CONTAINER_NAME_MAX = 64
UPLOAD_ATTEMPTS = 3
"""Times one file is streamed into the sandbox when the provider refuses the upload for now."""
ANSWER_KEPT = 600
"""Characters of each answer kept for the thread summary."""
CODE_KEPT = 6000
"""Characters of each turn's code kept (the end: where derived tables are built)."""
HISTORY_TURNS = 8
WORKING, DONE, FAILED = "eyes", "white_check_mark", "warning"


def container_name(prefix: str, key: ThreadKey, *, max_len: int = CONTAINER_NAME_MAX) -> str:
    """``{prefix}{team}-{channel}-{thread_ts}``; a long name is shortened with a hash, keeping the prefix."""
    name = f"{prefix}{key.team}-{key.channel}-{key.thread_ts}"
    if len(name) <= max_len:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return name[: max_len - len(digest) - 1] + "-" + digest


def thread_summary(turns: list[TurnRecord]) -> str:
    """Earlier questions, short answers and the code that ran, so a fresh chain in a rebuilt container can
    rebuild its state (derived tables, cleaned columns) instead of starting from nothing."""
    parts = []
    for n, t in enumerate(turns, 1):
        answer = " ".join((t.answer or "").split())[:300]
        part = f"Turn {n}. Question: {t.question or DEFAULT_QUESTION}\nAnswer (start): {answer or '(none kept)'}"
        if t.code:
            part += f"\nCode that ran:\n```python\n{t.code[-1500:]}\n```"
        parts.append(part)
    return "\n\n".join(parts)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """The settings the worker needs."""

    container_prefix: str
    container_idle_minutes: int
    max_concurrent_turns: int
    turn_timeout: float
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)
    session_usd: float = 0.0
    """Price of one hosted container session (0 for the local sandbox)."""
    cost_footer: bool = True
    capacity_retry_seconds: float = 5.0
    """First wait when the provider refuses a new container (doubles, with jitter, up to a minute)."""
    max_output_bytes: int = 100 * MB
    """Bytes of the files the code wrote that one answer reads and attaches (``DATASTORY_MAX_OUTPUT_MB``)."""


@dataclass(slots=True)
class _Run:
    """What one turn accumulates while it runs."""

    sessions: int = 0
    """Containers created (each a billed session on the hosted backend)."""


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


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What a one-off run in a fresh container (:meth:`TurnWorker.run_batch`) produced, ready to post."""

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


def worker_config(settings: Settings, sandbox_kind: str, **overrides: Any) -> WorkerConfig:
    """The worker's view of the settings (hosted container sessions cost money; local kernels do not)."""
    values: dict[str, Any] = {
        "container_prefix": settings.container_prefix,
        "container_idle_minutes": settings.container_idle_minutes,
        "max_concurrent_turns": settings.max_concurrent_turns,
        "turn_timeout": settings.turn_timeout_seconds,
        "prices": dict(settings.prices),
        "session_usd": settings.container_session_usd.get(settings.container_memory, 0.0)
        if sandbox_kind == "openai" else 0.0,
        "cost_footer": settings.cost_footer,
        "capacity_retry_seconds": settings.capacity_retry_seconds,
        "max_output_bytes": settings.max_output_mb * MB,
    }
    values.update(overrides)
    return WorkerConfig(**values)


def _needs_upload(f: FileRecord, container_id: str | None, turn: TurnRecord) -> bool:
    """Not in the container yet, and not refused (a refused file is tried again only when shared again)."""
    if container_id and f.container_id == container_id and f.sandbox_path:
        return False
    if f.refused_reason is not None:
        return f.message_ts == turn.message_ts and f.refused_turn != turn.id
    return True


def _replaces(f: FileRecord, files: list[FileRecord]) -> bool:
    """Whether an earlier, readable file of the thread has the same name as ``f``."""
    return any(g.name == f.name and g.slack_file_id != f.slack_file_id and g.message_ts != f.message_ts
               and g.created_at <= f.created_at and g.refused_reason is None for g in files)


def newest_versions(files: list[FileRecord], *, loaded_only: bool = True) -> list[FileRecord]:
    """The newest readable version of each file name (``files`` oldest first, as the store lists them); with
    ``loaded_only`` only among versions in a container. A same-name upload later in a thread is the new version;
    the older one stays in the container but is not given to the analysis."""
    latest: dict[str, FileRecord] = {}
    for f in files:
        if f.refused_reason is None and (f.sandbox_path or not loaded_only):
            latest[f.name] = f
    return list(latest.values())


def _refusal_reason(exc: SlackError) -> str | None:
    """The thread's reason for a download failure that refuses the file; ``None`` when the failure is not about
    the file (a connection error...), so the turn fails instead."""
    if isinstance(exc, FileAccessDenied):
        return ACCESS_DENIED_REASON
    if isinstance(exc, ForeignFileHost):
        return FOREIGN_HOST_REASON
    if isinstance(exc, SlackError) and exc.code == "file_not_found":
        return NOT_FOUND_REASON
    return None


def _refusal_kind(exc: FileRejected) -> str:
    """What refused a file, for the log: the inspector's ``FileRejected`` or the Slack error behind it."""
    return type(exc.__cause__ or exc).__name__


class StatusMessage:
    """The bot's status reply in a thread: posted once, then updated (throttled, identical text skipped)."""

    def __init__(self, *, poster: Poster, channel: str, thread_ts: str, ts: str | None, min_interval: float = 1.0,
                 quiet: bool = False):
        self._poster = poster
        self._quiet = quiet
        """Nobody is watching (a batch run): the text is kept and logged, never posted."""
        self._channel = channel
        self._thread_ts = thread_ts
        self.ts = ts
        self._text = ""
        self._last = 0.0
        self._min_interval = min_interval
        self.details: list[str] = []
        """Lines kept under every status line from now on (the preview of the files loaded this turn)."""

    async def set(self, text: str, *, force: bool = True) -> None:
        """Show ``text``; with ``force=False`` an update within ``min_interval`` of the last one is skipped."""
        if self.details:
            text = "\n".join([text, *self.details])
        if text == self._text or (not force and time.monotonic() - self._last < self._min_interval):
            return
        self._text, self._last = text, time.monotonic()
        if self._quiet:
            logger.debug("batch status: %s", text.splitlines()[0][:200])
            return
        try:
            if self.ts is None:
                self.ts = await self._poster.post(channel=self._channel, thread_ts=self._thread_ts, text=text)
            else:
                await self._poster.update(channel=self._channel, ts=self.ts, text=text)
        except SlackError as exc:
            logger.warning("status update failed channel=%s error=%s", self._channel, exc.code)

    async def progress(self, line: str) -> None:
        """A progress line from the analyst (throttled)."""
        await self.set(f":hourglass_flowing_sand: {line[:1].upper()}{line[1:]}", force=False)


Ticket = tuple[tuple[int, int], int]
"""A place in a thread's line: the asking message's ``ts`` as (seconds, microseconds), then arrival order."""


def ts_order(ts: str) -> tuple[int, int]:
    """``"1700000000.000100"`` → ``(1700000000, 100)``: Slack ts compared exactly (floats lose microseconds)."""
    seconds, _, micros = ts.partition(".")
    try:
        return int(seconds), int(micros.ljust(6, "0")[:6])
    except ValueError:
        return 0, 0


class ThreadQueue:
    """One turn per thread at a time, in the order of the messages that asked (their ``ts``), whatever order
    their background tasks reach the queue in. A turn joins the line synchronously, waits until it is first and
    the thread is free, and holds the thread until it ends."""

    def __init__(self) -> None:
        self._pending: dict[ThreadKey, list[Ticket]] = {}
        self._busy: set[ThreadKey] = set()
        self._changed = asyncio.Condition()
        self._arrivals = itertools.count()

    def join(self, key: ThreadKey, ts: str) -> Ticket:
        """Take a place in the thread's line (no await: call it before anything else can run)."""
        ticket = (ts_order(ts), next(self._arrivals))
        bisect.insort(self._pending.setdefault(key, []), ticket)
        return ticket

    def ahead(self, key: ThreadKey, ticket: Ticket) -> int:
        """How many turns go before ``ticket``, the one running included."""
        pending = self._pending.get(key, [])
        return (pending.index(ticket) if ticket in pending else 0) + (key in self._busy)

    @asynccontextmanager
    async def turn(self, key: ThreadKey, ticket: Ticket) -> AsyncIterator[None]:
        """Wait for ``ticket``'s turn, then hold the thread until the block ends (or is cancelled)."""
        taken = False
        try:
            async with self._changed:
                await self._changed.wait_for(lambda: key not in self._busy and self._pending[key][0] == ticket)
                self._pending[key].pop(0)
                self._busy.add(key)
                taken = True
            yield
        finally:
            async with self._changed:
                if taken:
                    self._busy.discard(key)
                elif ticket in self._pending.get(key, []):
                    self._pending[key].remove(ticket)
                if not self._pending.get(key):
                    self._pending.pop(key, None)
                self._changed.notify_all()


class TurnWorker:
    """Runs turns: bounded concurrency, one per thread at a time, durable across restarts."""

    def __init__(
        self, *, store: Store, sandbox: SandboxBackend, analyst: Analyst, poster: Poster, clock: Clock,
        tracker: TaskTracker, config: WorkerConfig, metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics or Metrics()
        self._store = store
        self._sandbox = sandbox
        self._analyst = analyst
        self._poster = poster
        self._clock = clock
        self._tracker = tracker
        self._config = config
        self._queue = ThreadQueue()
        self._outputs = OutputReader(sandbox=sandbox, limits=OutputLimits(
            files=MAX_POSTED_FILES, file_bytes=MAX_POSTED_FILE_BYTES, turn_bytes=config.max_output_bytes))
        self._slots = asyncio.Semaphore(config.max_concurrent_turns)
        self._running = 0
        self._waiting: list[object] = []
        """Turns waiting for the provider to accept a new container, in order."""

    @property
    def running(self) -> int:
        """Turns holding a slot right now."""
        return self._running

    def close(self) -> None:
        """Stop the worker processes that defuse CSV outputs (at shutdown, after the turns)."""
        self._outputs.close()

    async def acknowledge(self, channel: str, ts: str) -> None:
        """The first visible feedback on a user's message: the "working" reaction."""
        await self._react(channel, ts, WORKING)

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
        self._start(self._run(record, [f.name for f in turn.files], reacted=reacted), turn.id, turn.key.team)
        return True

    def _start(self, work: Coroutine[Any, Any, None], turn_id: str, team: str) -> None:
        try:
            self._tracker.spawn(work, name=f"turn-{turn_id}", group=team)
        except TrackerClosed:
            logger.info("shutting down; turn stays queued turn=%s", turn_id)

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
            self._start(self.run(turn.id), turn.id, turn.key.team)
        return len(turns)

    async def run(self, turn_id: str) -> None:
        """Run one stored turn to its end (done or failed)."""
        turn = await self._store.get_turn(turn_id)
        if turn is None or turn.status in ("done", "failed"):
            return
        ticket = self._queue.join(turn.key, turn.message_ts)
        files = [f.name for f in await self._store.list_files(turn.key) if f.message_ts == turn.message_ts]
        await self._run(turn, files, ticket=ticket)

    async def _run(
        self, turn: TurnRecord, files: list[str], *, reacted: bool = False, ticket: Ticket | None = None
    ) -> None:
        """Show feedback at once (no store read first), then wait for the thread and a slot, then work."""
        key = turn.key
        bind(team=key.team, channel=key.channel, thread_ts=key.thread_ts, turn=turn.id)
        ticket = ticket or self._queue.join(key, turn.message_ts)
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
        if self._slots.locked():
            await status.set(f":hourglass: Waiting for a free slot: {self._running} analyses are running.")
        async with self._slots:
            wait.started()
            self._running += 1
            try:
                await self._execute(turn, status)
            finally:
                self._running -= 1

    async def _execute(self, turn: TurnRecord, status: StatusMessage) -> None:
        key = turn.key
        started = self._clock.now()
        if not await self._store.start_turn(turn.id, now=started):
            logger.info("turn ended while it waited (its thread was told); not run turn=%s", turn.id)
            return
        run = _Run()
        try:
            async with asyncio.timeout(self._config.turn_timeout):
                outcome = await self._answer(turn, status, run)
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
                         sessions=run.sessions, session_usd=self._config.session_usd)
        await self._post_answer(turn, outcome, footer(elapsed, cost) if self._config.cost_footer else "")
        charts = len(outcome.uploads)
        what = f"analysed {names_list(list(outcome.loaded))}" if outcome.loaded else "answered"
        extra = f" ({charts} file{'s' * (charts != 1)} attached)" if charts else ""
        await self._swap_reaction(key.channel, turn.message_ts, DONE)
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

    async def _answer(self, turn: TurnRecord, status: StatusMessage, run: _Run) -> TurnOutcome:
        key = turn.key
        for attempt in (1, 2):
            thread = await self._store.get_thread(key)
            fresh = thread is None or not thread.container_id or thread.backend != self._sandbox.kind
            try:
                container_id, loaded = await self._load_files(
                    turn, None if fresh or thread is None else thread.container_id, status,
                    create=lambda: self._ensure_container(key, None, run, status),
                )
                files = await self._store.list_files(key)
                own = [f.name for f in files if f.message_ts == turn.message_ts and f.sandbox_path]
                request = AnalysisRequest(
                    question=turn.question or DEFAULT_QUESTION,
                    container_id=container_id,
                    files=tuple(self._data_file(f) for f in newest_versions(files)),
                    new_files=tuple(loaded),
                    previous_response_id=None if fresh or attempt > 1 or thread is None else thread.last_response_id,
                    history=await self._history(turn) if fresh or attempt > 1 else "",
                )
                await status.set(f":hourglass_flowing_sand: Analysing {names_list(own)}…" if own
                                 else ":hourglass_flowing_sand: Thinking…")
                result, outputs = await self._analyse(request, status)
                await self._store.set_last_response(key, result.response_id, now=self._clock.now())
                reloaded = tuple(name for name in loaded if name not in own)
                return TurnOutcome(result=result, uploads=outputs.uploads, loaded=tuple(own), reloaded=reloaded,
                                   not_attached=outputs.note())
            except (ContainerNotFound, ContainerExpired) as exc:
                if attempt == 2:
                    raise
                logger.info("container gone, rebuilding thread=%s reason=%s", key, type(exc).__name__)
                self._metrics.container_rebuilt()
                await self._store.clear_container(key, status="swept")
                await status.set(":recycle: The workspace had expired; rebuilding it and reloading the files…")
        raise AssertionError("unreachable")  # pragma: no cover

    async def _analyse(
        self, request: AnalysisRequest, status: StatusMessage
    ) -> tuple[AnalysisResult, Outputs]:
        """Run the analyst in the request's container; the files it wrote are what the container's file list gained
        (not the uploads), read within limits and with CSV formulas defused (:class:`bot.outputs.OutputReader`)."""
        container_id = request.container_id
        before = {f.id for f in await self._sandbox.list_files(container_id)}
        result = await self._analyst.run(request, progress=status.progress)
        created = [f for f in await self._sandbox.list_files(container_id) if f.id not in before and f.source != "user"]
        return result, await self._outputs.read(container_id, created, result.cited_file_ids)

    async def run_batch(
        self, files: Sequence[FileRecord], question: str, *, name: str, idle_minutes: int
    ) -> BatchOutcome:
        """Answer ``question`` about ``files`` in a fresh container named ``name`` (``expires_after`` anchored on
        ``last_active_at`` with ``idle_minutes``), deleted as soon as the run ends, whatever the outcome.

        The files are streamed from Slack with inspection, as a turn does, but nothing is written to the store
        (the thread's own container and file records are left alone). The run takes a worker slot and is bounded
        by the turn timeout. Raises what a turn would fail with (:class:`bot.files.FilesRefused` when no file
        could be read, :class:`bot.errors.TurnTimeout`, sandbox and analyst errors).
        """
        status = StatusMessage(poster=self._poster, channel="", thread_ts="", ts=None, quiet=True)
        run = _Run()
        created: list[str] = []

        async def create() -> str:
            info = await self._create_when_possible(name, status, idle_minutes=idle_minutes)
            created.append(info.id)
            self._metrics.container_created(self._sandbox.kind)
            run.sessions += 1 if self._config.session_usd else 0
            logger.info("batch container created container=%s name=%s", info.id, name)
            return info.id

        started = self._clock.now()
        async with self._slots:
            self._running += 1
            try:
                async with asyncio.timeout(self._config.turn_timeout):
                    container_id, data, refused = await self._load_batch(files, create, status)
                    request = AnalysisRequest(question=question, container_id=container_id, files=tuple(data),
                                              new_files=tuple(d.name for d in data))
                    result, outputs = await self._analyse(request, status)
            except TimeoutError:
                raise TurnTimeout(self._config.turn_timeout) from None
            finally:
                self._running -= 1
                for cid in created:
                    await self._delete_now(cid)
        elapsed = self._clock.now() - started
        cost = turn_cost(model=result.model, usage=result.usage, prices=self._config.prices, sessions=run.sessions,
                         session_usd=self._config.session_usd)
        self._metrics.spent("digest", input_tokens=result.usage.input_tokens,
                            output_tokens=result.usage.output_tokens, cost_usd=cost)
        return BatchOutcome(result=result, uploads=outputs.uploads, loaded=tuple(d.name for d in data),
                            refused=tuple(refused), container_id=container_id, elapsed=elapsed, cost_usd=cost,
                            footer=footer(elapsed, cost) if self._config.cost_footer else "",
                            not_attached=outputs.note())

    async def _load_batch(
        self, files: Sequence[FileRecord], create: Callable[[], Awaitable[str]], status: StatusMessage
    ) -> tuple[str, list[DataFile], list[tuple[str, str]]]:
        """Stream ``files`` into a container created once the first one passed inspection."""
        container_id: str | None = None
        data: list[DataFile] = []
        refused: list[tuple[str, str]] = []
        for f in files:
            await status.set(f":inbox_tray: Loading `{f.name}` ({human_size(f.size)}) into the sandbox…")
            try:
                container_id, stored, profile = await self._stream_file(f, container_id, create, status)
            except FileRejected as exc:
                logger.info("batch file refused file=%s reason=%s", f.slack_file_id, _refusal_kind(exc))
                refused.append((f.name, exc.reason))
                continue
            data.append(DataFile(name=f.name, path=stored.path, size=f.size, facts=profile.facts(stored.path),
                                 read_options=profile.options))
        if container_id is None:
            raise FilesRefused(refused)
        return container_id, data, refused

    async def _delete_now(self, container_id: str) -> None:
        """Delete a batch container; a failure is logged and left to the sweeper (the name carries the prefix)."""
        try:
            await self._sandbox.delete(container_id)
        except SandboxError as exc:
            logger.warning("batch container not deleted, the sweeper will container=%s error=%s", container_id,
                           type(exc).__name__)

    async def _history(self, turn: TurnRecord) -> str:
        """A compact summary of the thread's earlier turns, for a fresh response chain (rebuilt container)."""
        earlier = [t for t in await self._store.list_turns(turn.key) if t.status == "done" and t.id != turn.id]
        return thread_summary(earlier[-HISTORY_TURNS:])

    async def _ensure_container(
        self, key: ThreadKey, container_id: str | None, run: _Run, status: StatusMessage
    ) -> str:
        if container_id:
            return container_id
        name = container_name(self._config.container_prefix, key)
        info = await self._create_when_possible(name, status)
        run.sessions += 1 if self._config.session_usd else 0
        await self._store.set_container(key, container_id=info.id, name=name, backend=self._sandbox.kind,
                                        now=self._clock.now())
        self._metrics.container_created(self._sandbox.kind)
        logger.info("container created container=%s thread=%s", info.id, key)
        return info.id

    async def _create_when_possible(
        self, name: str, status: StatusMessage, *, idle_minutes: int | None = None
    ) -> ContainerInfo:
        """Create the container (idle TTL ``idle_minutes``, default the thread TTL); while the provider refuses
        (rate limit, capacity), wait with growing, jittered delays and tell the thread its place in line. The
        question is never dropped (the turn timeout bounds it)."""
        minutes = self._config.container_idle_minutes if idle_minutes is None else idle_minutes
        delay = self._config.capacity_retry_seconds
        ticket = object()
        try:
            while True:
                try:
                    return await self._sandbox.create(name=name, idle_minutes=minutes)
                except SandboxUnavailable:
                    if ticket not in self._waiting:
                        self._waiting.append(ticket)
                    place = self._waiting.index(ticket) + 1
                    wait = delay * random.uniform(0.8, 1.2)
                    await status.set(f":hourglass: The code sandbox provider is at capacity. Your question is "
                                     f"number {place} in line; I'll try again in {wait:.0f} s.")
                    logger.info("container create refused, retrying in %.1f s place=%d", wait, place)
                    await self._clock.sleep(wait)
                    delay = min(delay * 2, 60.0)
        finally:
            if ticket in self._waiting:
                self._waiting.remove(ticket)

    async def _load_files(
        self, turn: TurnRecord, container_id: str | None, status: StatusMessage,
        *, create: Callable[[], Awaitable[str]],
    ) -> tuple[str, list[str]]:
        """Stream the files the container lacks from Slack into it; returns the container and the names loaded.

        This turn's own files come first. Each download is inspected before its upload starts
        (:func:`bot.files.inspect_stream`): a refused file (sign-in page, binary, empty...) is recorded and named
        in the thread while the others are analysed; the container is created (``create``) only when the first
        file has passed. When every file of the turn is refused, or the thread has nothing readable at all, the
        turn ends with :class:`bot.files.FilesRefused` and no container is created for it. Earlier files are
        reloaded (a rebuilt container) in their newest version per name only.
        """
        key = turn.key
        loaded: list[str] = []
        refused: list[tuple[str, str]] = []
        files = await self._store.list_files(key)
        for f in files:
            if f.message_ts == turn.message_ts and _needs_upload(f, container_id, turn):
                container_id, refusal = await self._load_one(turn, f, container_id, status, create,
                                                             replaces=_replaces(f, files))
                if refusal:
                    refused.append((f.name, refusal))
                else:
                    loaded.append(f.name)
        files = await self._store.list_files(key)
        own = [f for f in files if f.message_ts == turn.message_ts]
        if own and not any(f.sandbox_path for f in own):
            raise FilesRefused(refused or [(f.name, f.refused_reason) for f in own if f.refused_reason])
        for f in newest_versions(files, loaded_only=False):
            if f.message_ts != turn.message_ts and _needs_upload(f, container_id, turn):
                container_id, refusal = await self._load_one(turn, f, container_id, status, create)
                if refusal:
                    refused.append((f.name, refusal))
                else:
                    loaded.append(f.name)
        if refused:
            await self._say(key, refusals_text(refused))
        if container_id is None:
            raise FilesRefused([(f.name, f.refused_reason) for f in files if f.refused_reason])
        return container_id, loaded

    async def _load_one(
        self, turn: TurnRecord, f: FileRecord, container_id: str | None, status: StatusMessage,
        create: Callable[[], Awaitable[str]], *, replaces: bool = False,
    ) -> tuple[str | None, str | None]:
        """Inspect one file's download and stream it into the container (created now if needed); returns the
        container and, for a refused file, the reason (recorded in the store so later turns skip the file)."""
        key = turn.key
        await status.set(f":inbox_tray: Loading `{f.name}` ({human_size(f.size)}) into the sandbox…")
        try:
            container_id, stored, profile = await self._stream_file(f, container_id, create, status)
        except FileRejected as exc:
            logger.info("file refused thread=%s file=%s reason=%s", key, f.slack_file_id, _refusal_kind(exc))
            await self._store.mark_refused(key, f.slack_file_id, turn_id=turn.id, reason=exc.reason)
            return container_id, exc.reason
        await self._store.mark_uploaded(key, f.slack_file_id, container_id=container_id, sandbox_path=stored.path,
                                        sandbox_file_id=stored.id, facts=profile.facts(stored.path),
                                        read_options=profile.options.to_json())
        if f.message_ts == turn.message_ts:
            lines = [":page_facing_up: " + profile.preview(f.name, f.size)]
            if replaces:
                lines.append(f":arrows_counterclockwise: `{f.name}` replaces the version shared earlier.")
            status.details.extend(line for line in lines if line not in status.details)  # a rebuild loads again
            await status.set(f":inbox_tray: Loaded `{f.name}`.")
        return container_id, None

    async def _stream_file(
        self, f: FileRecord, container_id: str | None, create: Callable[[], Awaitable[str]], status: StatusMessage,
    ) -> tuple[str, SandboxFile, FileProfile]:
        """Stream one file from Slack through inspection into the container (created first when there is none
        yet); returns the container, the stored file and the profile of the whole file.

        An upload the provider refuses for now (a 5xx or 429, a dropped connection) is sent again, streamed anew
        from Slack, up to :data:`UPLOAD_ATTEMPTS` times in all with growing, jittered delays. A file refused before
        any container exists, by the inspector or by Slack (sign-in page, foreign host, file gone), raises
        :class:`bot.files.FileRejected` with the reason for the thread; other Slack errors propagate.
        """
        delay = self._config.capacity_retry_seconds
        attempt = 1
        while True:
            try:
                stream = await inspect_stream(self._poster.download(f.download_url), name=f.name, size=f.size)
            except SlackError as exc:
                reason = _refusal_reason(exc)
                if reason is None:
                    raise
                raise FileRejected(reason) from exc
            try:
                if container_id is None:
                    container_id = await create()
                stored = await self._sandbox.upload(container_id, name=f.name, chunks=stream, size=f.size or None)
                return container_id, stored, stream.profile
            except SandboxUnavailable:
                if attempt >= UPLOAD_ATTEMPTS:
                    raise
            finally:
                await stream.aclose()  # the download too: nothing stays open while waiting
            wait = delay * random.uniform(0.8, 1.2)
            logger.info("upload refused for now, again in %.1f s file=%s attempt=%d", wait, f.slack_file_id, attempt)
            await status.set(f":hourglass: The sandbox did not take `{f.name}` this time; sending it again in "
                             f"{wait:.0f} s…")
            await self._clock.sleep(wait)
            delay, attempt = delay * 2, attempt + 1

    async def _say(self, key: ThreadKey, text: str) -> None:
        try:
            await self._poster.post(channel=key.channel, thread_ts=key.thread_ts, text=text)
        except SlackError as exc:
            logger.warning("reply failed channel=%s error=%s", key.channel, exc.code)

    @staticmethod
    def _data_file(f: FileRecord) -> DataFile:
        return DataFile(name=f.name, path=f.sandbox_path or "", size=f.size, facts=f.facts,
                        read_options=ReadOptions.from_json(f.read_options))

    async def _post_answer(self, turn: TurnRecord, outcome: TurnOutcome, tail: str) -> None:
        key = turn.key
        text = await asyncio.to_thread(narrative, outcome.result.text)
        if outcome.not_attached:
            text += "\n\n" + outcome.not_attached
        if tail:
            text += "\n\n" + tail
        if outcome.reloaded:
            text = f"_The workspace had expired; I reloaded {names_list(list(outcome.reloaded))}._\n\n" + text
        for part in split_message(text):
            await self._poster.post(channel=key.channel, thread_ts=key.thread_ts, text=part)
        if outcome.uploads:
            await self._poster.upload_files(channel=key.channel, thread_ts=key.thread_ts, files=outcome.uploads)

    async def _fail(self, turn: TurnRecord, status: StatusMessage, exc: BaseException, elapsed: float) -> None:
        ref = new_ref()
        expected = is_expected(exc)  # explained in the thread: no stack trace unless at DEBUG
        what = "turn refused its files" if isinstance(exc, FileRejected) else "turn failed"
        logger.log(logging.INFO if expected else logging.ERROR, "%s turn=%s thread=%s ref=%s error=%s",
                   what, turn.id, turn.key, ref, type(exc).__name__,
                   exc_info=exc if not expected or logger.isEnabledFor(logging.DEBUG) else None)
        await self._swap_reaction(turn.key.channel, turn.message_ts, FAILED)
        await status.set(failure_text(exc, ref))
        await self._store.finish_turn(turn.id, status="failed", now=self._clock.now(),
                                      outcome=TurnOutcomeRecord(error=f"{type(exc).__name__} ref={ref}"))
        self._finished(outcome_of(exc), elapsed)

    async def _react(self, channel: str, ts: str, name: str) -> None:
        try:
            await self._poster.react(channel=channel, ts=ts, name=name)
        except SlackError as exc:
            logger.warning("reaction failed channel=%s error=%s", channel, exc.code)

    async def _swap_reaction(self, channel: str, ts: str, name: str) -> None:
        try:
            await self._poster.unreact(channel=channel, ts=ts, name=WORKING)
        except SlackError as exc:
            logger.warning("reaction removal failed channel=%s error=%s", channel, exc.code)
        await self._react(channel, ts, name)
