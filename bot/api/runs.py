"""Turns of API sessions: started on the same :class:`~bot.turns.TurnWorker` path as a Slack thread's question
(stored turn, thread queue, global slots, container ensured or rebuilt, files loaded, analyst, outputs collected,
cost recorded), awaited or left running for ``Prefer: respond-async``, cancellable.

One turn per session at a time: a second ``analyze`` or ``refine`` while one is queued or running gets 409
``session_busy`` (a client retries or polls the running turn's status URL). The worker's result hook
(:meth:`Runs.on_result`) keeps each turn's raw narrative, code and written files under the session's directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import asdict
from pathlib import PurePosixPath
from typing import Any

from bot.analysts.angles import is_angles_request, parse_angles
from bot.api.poster import API_CHANNEL_PREFIX, ApiPoster
from bot.api.problems import SESSION_BUSY, SHUTTING_DOWN, ApiProblem
from bot.api.storage import SessionFiles
from bot.console import plain
from bot.store.base import NewTurn, Store, ThreadBusy, ThreadKey, TurnOutcomeRecord, TurnRecord
from bot.tasks import TaskTracker
from bot.turns import TurnOutcome, TurnWorker

logger = logging.getLogger(__name__)

API_TEAM = "api"
"""The ``team`` of every API session's thread key."""
CANCELLED = "cancelled"
FIRST_POLL_SECONDS = 0.05
POLL_SECONDS = 0.2
"""How often the store is asked about a turn another replica runs (from 50 ms, doubling); a run here wakes the
wait at once."""
RUNNING_HERE_POLL_SECONDS = 1.0
"""How often the store is asked about a turn running here (its end wakes the wait; the store would only show a
cancel made on another replica)."""
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"})


def session_key(key_id: str, session_id: str) -> ThreadKey:
    """The thread of a session: the key's own channel, so another key's session is simply not found."""
    return ThreadKey(API_TEAM, f"{API_CHANNEL_PREFIX}{key_id}", session_id)


class Runs:
    """Starts, awaits and cancels the turns of API sessions, through the worker's durable queue: whichever
    replica claims a turn runs it under a lease (one turn per thread at a time)."""

    def __init__(self, *, store: Store, worker: TurnWorker, tracker: TaskTracker, files: SessionFiles,
                 poster: ApiPoster, results: TurnResults) -> None:
        self._store = store
        self.results = results
        self._worker = worker
        self._tracker = tracker
        self._files = files
        self._poster = poster
        self._starting: set[str] = set()
        """Sessions whose turn is being submitted here (two calls at once: one wins, before the store shows it)."""
        self._last_ts = 0.0

    def _next_ts(self) -> str:
        """A message ``ts`` for a new turn, later than every one before (the queue orders a thread's turns by it)."""
        self._last_ts = max(time.time(), self._last_ts + 1e-6)
        return f"{self._last_ts:.6f}"

    async def start(self, key: ThreadKey, question: str, *, user: str, now: float) -> str:
        """Store a turn of ``question`` in the session and give it to the queue; 409 while another one is in
        flight (here or on another replica: the store adds it only to a session without an unfinished turn)."""
        session = key.thread_ts
        if session in self._starting or self._tracker.closing:
            raise _busy() if session in self._starting else _shutting_down()
        self._starting.add(session)
        try:
            turn_id = uuid.uuid4().hex
            await self._worker.submit(NewTurn(id=turn_id, key=key, message_ts=self._next_ts(), user=user,
                                              question=question, files=(), created_at=now),
                                      dedupe_keys=(), alone=True)  # a new id: submit_turn refuses a repeat
        except ThreadBusy:
            raise _busy() from None
        finally:
            self._starting.discard(session)
        return turn_id

    async def wait(self, turn_id: str) -> TurnRecord | None:
        """Until the turn ended (the caller going away does not cancel it); its record. The worker wakes the wait
        as soon as the turn's run here ended (:meth:`bot.turns.queue.Dispatcher.watch`), with the record it left
        in the store (:meth:`~bot.turns.queue.Dispatcher.outcome`: no read), and so does a cancel made
        here; the store, read with a backoff, says when a turn another replica runs has finished (and, every
        :data:`RUNNING_HERE_POLL_SECONDS`, whether a turn running here was cancelled on another replica)."""
        queue = self._worker.queue
        delay = FIRST_POLL_SECONDS
        ended = queue.watch(turn_id)
        unread = 0.0  # seconds waited for the turn running here since the store was last read
        try:
            while True:  # no read first: the turn was just submitted, held by this replica's greeting
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), delay)
                if not ended.is_set() and queue.runs(turn_id):
                    unread += delay
                    if unread < RUNNING_HERE_POLL_SECONDS:  # its run here wakes the wait: no read yet
                        delay = RUNNING_HERE_POLL_SECONDS - unread
                        continue
                unread = 0.0
                if (turn := queue.outcome(turn_id)) is not None:
                    return turn  # its run here ended it and said how: no read
                ended = queue.watch(turn_id)  # before the read: a run ending in between still wakes the wait
                turn = await self._store.get_turn(turn_id)
                if turn is None or turn.status not in ("queued", "running"):
                    return turn
                delay = min(delay * 2, POLL_SECONDS)
        finally:
            queue.unwatch(turn_id)

    async def cancel(self, key: ThreadKey, turn: TurnRecord, *, now: float) -> None:
        """End a queued or running turn as failed with the error ``cancelled``, in the store: it is never started,
        and the replica running it loses its lease and stops."""
        await self._store.finish_turn(turn.id, status="failed", now=now, outcome=TurnOutcomeRecord(error=CANCELLED))
        self._files.write_json(key.thread_ts, f"turn-{turn.id}", {"error": "The turn was cancelled.",
                                                                  CANCELLED: True})
        self._worker.queue.wake(turn.id)  # a request waiting here for the turn reads it now
        logger.info("api turn cancelled turn=%s", turn.id)

    def failure(self, key: ThreadKey, turn: TurnRecord) -> str:
        """The honest line a failed turn ended with (its status reply, when it ran here), else its error."""
        doc = self.results.result(key, turn.id) or {}
        return str(doc.get("error") or plain(self._poster.last_text(key.thread_ts)).strip() or turn.error or
                   "The analysis failed.")

    async def cancel_all(self, key: ThreadKey, *, now: float) -> None:
        """Cancel the session's unfinished turns (it is being deleted)."""
        for turn in await self._store.list_turns(key):
            if turn.status in ("queued", "running"):
                await self.cancel(key, turn, now=now)


class TurnResults:
    """What API turns produced, kept under each session's directory; the worker's result hook is
    :meth:`on_result` (it needs no worker, so the worker can be built with it)."""

    def __init__(self, *, files: SessionFiles) -> None:
        self._files = files

    def result(self, key: ThreadKey, turn_id: str) -> dict[str, Any] | None:
        """What the turn produced (or its failure), once it ended."""
        return self._files.read_json(key.thread_ts, f"turn-{turn_id}")

    def angles(self, key: ThreadKey) -> list[dict[str, str]]:
        """The angles of the session's last successful analyze."""
        doc = self._files.read_json(key.thread_ts, "angles") or {}
        found = doc.get("angles")
        return found if isinstance(found, list) else []

    def output(self, key: ThreadKey, file_id: str) -> dict[str, Any] | None:
        """A file a turn wrote: ``{file_id, name, size}``."""
        entry = (self._files.read_json(key.thread_ts, "outputs") or {}).get(file_id)
        return entry if isinstance(entry, dict) else None

    async def on_result(self, turn: TurnRecord, outcome: TurnOutcome, cost_usd: float | None) -> None:
        """The worker's result hook: keep an API turn's raw narrative, code and files."""
        if turn.key.team != API_TEAM:
            return
        session = turn.key.thread_ts
        charts: list[dict[str, Any]] = []
        tables: list[dict[str, Any]] = []
        index = self._files.read_json(session, "outputs") or {}
        for upload in outcome.uploads:
            file_id = "out" + uuid.uuid4().hex[:14]
            path = self._files.output_path(session, file_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(path.write_bytes, upload.data)
            entry = {"file_id": file_id, "name": upload.filename, "size": len(upload.data)}
            index[file_id] = entry
            is_image = PurePosixPath(upload.filename).suffix.lower() in IMAGE_SUFFIXES
            (charts if is_image else tables).append(entry)
        doc: dict[str, Any] = {"narrative": outcome.result.text, "code": "\n\n".join(outcome.result.code),
                               "charts": charts, "result_files": tables, "notes": outcome.not_attached,
                               "cost_usd": cost_usd or 0.0}
        if is_angles_request(turn.question):
            doc["angles"] = [asdict(a) for a in parse_angles(outcome.result.text)]
            if doc["angles"]:
                self._files.write_json(session, "angles", {"turn_id": turn.id, "angles": doc["angles"]})
        self._files.write_json(session, "outputs", index)
        self._files.write_json(session, f"turn-{turn.id}", doc)


def _shutting_down() -> ApiProblem:
    return ApiProblem(503, SHUTTING_DOWN, "The server is shutting down; the turn was not started.")


def _busy() -> ApiProblem:
    return ApiProblem(409, SESSION_BUSY, "This session is already working on an analysis; one runs at a time. "
                                         "Wait for it (its status URL) and try again.", retry_after=2)
