"""The turn worker: one question in one thread, from the first reaction to the answer and the charts.

A turn is a durable row in the store. The worker shows progress at once (a reaction and a status reply that is
updated), takes the thread lock (one turn per thread at a time, in arrival order) and a global slot
(``DATASTORY_MAX_CONCURRENT_TURNS``), makes sure the thread's container exists, streams the files it lacks from
Slack into it, runs the analyst, diffs the container's file list to find what the code wrote, and posts the
narrative and those files into the thread. A container that turns out to be gone or expired is rebuilt once per
turn, transparently. Failures become one clear line in the thread (``bot.errors``), never silence.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bot.analysts.base import AnalysisRequest, AnalysisResult, Analyst, DataFile
from bot.clock import Clock
from bot.errors import TurnTimeout, failure_text, new_ref
from bot.formatting import human_size, names_list, seconds, split_message, to_mrkdwn
from bot.poster import Poster, SlackError, Upload
from bot.sandbox.base import ContainerExpired, ContainerNotFound, SandboxBackend, SandboxFile
from bot.store.base import FileRecord, NewTurn, Store, ThreadKey, TurnRecord
from bot.tasks import TaskTracker, TrackerClosed

logger = logging.getLogger(__name__)

DEFAULT_QUESTION = (
    "Give me a first look at this data: what it contains, the main patterns, trends and anything unusual, "
    "with the charts that show them best."
)
MAX_POSTED_FILES = 10
MAX_POSTED_FILE_BYTES = 50 * 1024 * 1024
CONTAINER_NAME_MAX = 64
WORKING, DONE, FAILED = "eyes", "white_check_mark", "warning"


def container_name(prefix: str, key: ThreadKey, *, max_len: int = CONTAINER_NAME_MAX) -> str:
    """``{prefix}{team}-{channel}-{thread_ts}``; a long name is shortened with a hash, keeping the prefix."""
    name = f"{prefix}{key.team}-{key.channel}-{key.thread_ts}"
    if len(name) <= max_len:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return name[: max_len - len(digest) - 1] + "-" + digest


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """The settings the worker needs."""

    container_prefix: str
    container_idle_minutes: int
    max_concurrent_turns: int
    turn_timeout: float


@dataclass(frozen=True, slots=True)
class TurnOutcome:
    """What a turn produced, ready to post."""

    result: AnalysisResult
    uploads: tuple[Upload, ...]
    loaded: tuple[str, ...]
    """Names of the files that came with this turn's message."""
    reloaded: tuple[str, ...]
    """Names of earlier files loaded again into a rebuilt container (the thread is told)."""


class StatusMessage:
    """The bot's status reply in a thread: posted once, then updated (throttled, identical text skipped)."""

    def __init__(self, *, poster: Poster, channel: str, thread_ts: str, ts: str | None, min_interval: float = 1.0):
        self._poster = poster
        self._channel = channel
        self._thread_ts = thread_ts
        self.ts = ts
        self._text = ""
        self._last = 0.0
        self._min_interval = min_interval

    async def set(self, text: str, *, force: bool = True) -> None:
        """Show ``text``; with ``force=False`` an update within ``min_interval`` of the last one is skipped."""
        if text == self._text or (not force and time.monotonic() - self._last < self._min_interval):
            return
        self._text, self._last = text, time.monotonic()
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


class KeyedLocks:
    """One FIFO asyncio lock per thread, forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[ThreadKey, tuple[asyncio.Lock, int]] = {}

    def waiting(self, key: ThreadKey) -> int:
        """How many turns hold or wait for the thread's lock."""
        return self._locks.get(key, (None, 0))[1]

    @contextmanager
    def _ref(self, key: ThreadKey) -> Iterator[asyncio.Lock]:
        lock, count = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, count + 1)
        try:
            yield lock
        finally:
            lock, count = self._locks[key]
            if count <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, count - 1)

    @contextmanager
    def hold(self, key: ThreadKey) -> Iterator[asyncio.Lock]:
        """Register interest in the thread's lock; acquire the yielded lock with ``async with``."""
        with self._ref(key) as lock:
            yield lock


class TurnWorker:
    """Runs turns: bounded concurrency, one per thread at a time, durable across restarts."""

    def __init__(
        self, *, store: Store, sandbox: SandboxBackend, analyst: Analyst, poster: Poster, clock: Clock,
        tracker: TaskTracker, config: WorkerConfig,
    ) -> None:
        self._store = store
        self._sandbox = sandbox
        self._analyst = analyst
        self._poster = poster
        self._clock = clock
        self._tracker = tracker
        self._config = config
        self._locks = KeyedLocks()
        self._slots = asyncio.Semaphore(config.max_concurrent_turns)
        self._running = 0

    @property
    def running(self) -> int:
        """Turns holding a slot right now."""
        return self._running

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
        self._start(self._run(record, [f.name for f in turn.files], reacted=reacted), turn.id)
        return True

    def _start(self, work: Coroutine[Any, Any, None], turn_id: str) -> None:
        try:
            self._tracker.spawn(work, name=f"turn-{turn_id}")
        except TrackerClosed:
            logger.info("shutting down; turn stays queued turn=%s", turn_id)

    async def resume_unfinished(self) -> int:
        """Start every turn a previous process left queued or running; returns how many."""
        turns = await self._store.unfinished_turns()
        for turn in turns:
            logger.info("resuming turn=%s thread=%s", turn.id, turn.key)
            self._start(self.run(turn.id), turn.id)
        return len(turns)

    async def run(self, turn_id: str) -> None:
        """Run one stored turn to its end (done or failed)."""
        turn = await self._store.get_turn(turn_id)
        if turn is None or turn.status in ("done", "failed"):
            return
        files = [f.name for f in await self._store.list_files(turn.key) if f.message_ts == turn.message_ts]
        await self._run(turn, files)

    async def _run(self, turn: TurnRecord, files: list[str], *, reacted: bool = False) -> None:
        """Show feedback at once (no store read first), then wait for the thread and a slot, then work."""
        key = turn.key
        status = StatusMessage(poster=self._poster, channel=key.channel, thread_ts=key.thread_ts, ts=turn.status_ts)
        first = (f":hourglass_flowing_sand: Reading {names_list(files)}…" if files
                 else ":hourglass_flowing_sand: Working on it…")
        if reacted:
            await status.set(first)
        else:
            await asyncio.gather(self.acknowledge(key.channel, turn.message_ts), status.set(first))
        if status.ts and status.ts != turn.status_ts:
            await self._store.set_status_ts(turn.id, status.ts)
        with self._locks.hold(key) as lock:
            if lock.locked():
                ahead = self._locks.waiting(key) - 1
                await status.set(f":hourglass: Queued behind {ahead} earlier question{'s' * (ahead > 1)} "
                                 "in this thread; I'll answer in order.")
            async with lock:
                await self._run_locked(turn, status)

    async def _run_locked(self, turn: TurnRecord, status: StatusMessage) -> None:
        if self._slots.locked():
            await status.set(f":hourglass: Waiting for a free slot: {self._running} analyses are running.")
        async with self._slots:
            self._running += 1
            try:
                await self._execute(turn, status)
            finally:
                self._running -= 1

    async def _execute(self, turn: TurnRecord, status: StatusMessage) -> None:
        key = turn.key
        started = self._clock.now()
        await self._store.start_turn(turn.id, now=started)
        try:
            async with asyncio.timeout(self._config.turn_timeout):
                outcome = await self._answer(turn, status)
        except TimeoutError:
            await self._fail(turn, status, TurnTimeout(self._config.turn_timeout))
            return
        except asyncio.CancelledError:
            logger.info("turn interrupted by shutdown; it will resume turn=%s", turn.id)
            raise
        except Exception as exc:
            await self._fail(turn, status, exc)
            return
        await self._post_answer(turn, outcome)
        elapsed = self._clock.now() - started
        charts = len(outcome.uploads)
        what = f"analysed {names_list(list(outcome.loaded))}" if outcome.loaded else "answered"
        extra = f" ({charts} file{'s' * (charts != 1)} attached)" if charts else ""
        await self._swap_reaction(key.channel, turn.message_ts, DONE)
        await status.set(f":white_check_mark: Done: {what} in {seconds(elapsed)}{extra}.")
        usage = outcome.result.usage
        await self._store.finish_turn(
            turn.id, status="done", now=self._clock.now(), response_id=outcome.result.response_id,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
        )
        logger.info("turn done turn=%s thread=%s seconds=%.1f files=%d in_tokens=%d out_tokens=%d",
                    turn.id, key, elapsed, charts, usage.input_tokens, usage.output_tokens)

    async def _answer(self, turn: TurnRecord, status: StatusMessage) -> TurnOutcome:
        key = turn.key
        for attempt in (1, 2):
            thread = await self._store.get_thread(key)
            fresh = thread is None or not thread.container_id or thread.backend != self._sandbox.kind
            try:
                container_id = await self._ensure_container(key, None if fresh or thread is None
                                                            else thread.container_id)
                loaded = await self._load_files(key, container_id, status)
                files = await self._store.list_files(key)
                own = [f.name for f in files if f.message_ts == turn.message_ts]
                request = AnalysisRequest(
                    question=turn.question or DEFAULT_QUESTION,
                    container_id=container_id,
                    files=tuple(self._data_file(f) for f in files if f.sandbox_path),
                    new_files=tuple(loaded),
                    previous_response_id=None if fresh or attempt > 1 or thread is None else thread.last_response_id,
                )
                await status.set(f":hourglass_flowing_sand: Analysing {names_list(own)}…" if own
                                 else ":hourglass_flowing_sand: Thinking…")
                before = {f.id for f in await self._sandbox.list_files(container_id)}
                result = await self._analyst.run(request, progress=status.progress)
                created = [f for f in await self._sandbox.list_files(container_id)
                           if f.id not in before and f.source != "user"]
                uploads = await self._read_outputs(container_id, created, result.cited_file_ids)
                await self._store.set_last_response(key, result.response_id, now=self._clock.now())
                reloaded = tuple(name for name in loaded if name not in own)
                return TurnOutcome(result=result, uploads=uploads, loaded=tuple(own), reloaded=reloaded)
            except (ContainerNotFound, ContainerExpired) as exc:
                if attempt == 2:
                    raise
                logger.info("container gone, rebuilding thread=%s reason=%s", key, type(exc).__name__)
                await self._store.clear_container(key, status="swept")
                await status.set(":recycle: The workspace had expired; rebuilding it and reloading the files…")
        raise AssertionError("unreachable")  # pragma: no cover

    async def _ensure_container(self, key: ThreadKey, container_id: str | None) -> str:
        if container_id:
            return container_id
        name = container_name(self._config.container_prefix, key)
        info = await self._sandbox.create(name=name, idle_minutes=self._config.container_idle_minutes)
        await self._store.set_container(key, container_id=info.id, name=name, backend=self._sandbox.kind,
                                        now=self._clock.now())
        logger.info("container created container=%s thread=%s", info.id, key)
        return info.id

    async def _load_files(self, key: ThreadKey, container_id: str, status: StatusMessage) -> list[str]:
        loaded: list[str] = []
        for f in await self._store.list_files(key):
            if f.container_id == container_id and f.sandbox_path:
                continue
            await status.set(f":inbox_tray: Loading `{f.name}` ({human_size(f.size)}) into the sandbox…")
            stored = await self._sandbox.upload(
                container_id, name=f.name, chunks=self._poster.download(f.download_url), size=f.size or None,
            )
            await self._store.mark_uploaded(key, f.slack_file_id, container_id=container_id,
                                            sandbox_path=stored.path, sandbox_file_id=stored.id, facts=f.facts)
            loaded.append(f.name)
        return loaded

    @staticmethod
    def _data_file(f: FileRecord) -> DataFile:
        return DataFile(name=f.name, path=f.sandbox_path or "", size=f.size, facts=f.facts)

    async def _read_outputs(
        self, container_id: str, created: list[SandboxFile], cited: tuple[str, ...]
    ) -> tuple[Upload, ...]:
        """Read the files the code wrote (cited ones first, then by creation), within count and size limits."""
        order = {file_id: i for i, file_id in enumerate(cited)}
        created.sort(key=lambda f: (order.get(f.id, len(order)), f.created_at, f.path))
        uploads: list[Upload] = []
        for f in created[:MAX_POSTED_FILES]:
            if f.size > MAX_POSTED_FILE_BYTES:
                logger.info("output too large to post file=%s bytes=%d", f.name, f.size)
                continue
            data = await self._sandbox.read_file(container_id, f.id)
            uploads.append(Upload(filename=f.name, data=data, title=f.name))
        return tuple(uploads)

    async def _post_answer(self, turn: TurnRecord, outcome: TurnOutcome) -> None:
        key = turn.key
        text = to_mrkdwn(outcome.result.text) or "_The analysis produced no narrative._"
        if outcome.reloaded:
            text = f"_The workspace had expired; I reloaded {names_list(list(outcome.reloaded))}._\n\n" + text
        for part in split_message(text):
            await self._poster.post(channel=key.channel, thread_ts=key.thread_ts, text=part)
        if outcome.uploads:
            await self._poster.upload_files(channel=key.channel, thread_ts=key.thread_ts, files=outcome.uploads)

    async def _fail(self, turn: TurnRecord, status: StatusMessage, exc: BaseException) -> None:
        ref = new_ref()
        logger.error("turn failed turn=%s thread=%s ref=%s error=%s", turn.id, turn.key, ref, type(exc).__name__,
                     exc_info=exc)
        await self._swap_reaction(turn.key.channel, turn.message_ts, FAILED)
        await status.set(failure_text(exc, ref))
        await self._store.finish_turn(turn.id, status="failed", now=self._clock.now(),
                                      error=f"{type(exc).__name__} ref={ref}")

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
