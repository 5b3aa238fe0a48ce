"""Turns of API sessions: started on the same :class:`~bot.turns.TurnWorker` path as a Slack thread's question
(stored turn, thread queue, global slots, container ensured or rebuilt, files loaded, analyst, outputs collected,
cost recorded), awaited or left running for ``Prefer: respond-async``, cancellable.

One turn per session at a time: a second ``analyze`` or ``refine`` while one is queued or running gets 409
``session_busy`` (a client retries or polls the running turn's status URL). The worker's result hook
(:meth:`Runs.on_result`) keeps each turn's raw narrative, code and written files under the session's directory.
"""

from __future__ import annotations

import asyncio
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
from bot.store.base import NewTurn, Store, ThreadKey, TurnOutcomeRecord, TurnRecord
from bot.tasks import TaskTracker, TrackerClosed
from bot.turns import TurnOutcome, TurnWorker

logger = logging.getLogger(__name__)

API_TEAM = "api"
"""The ``team`` of every API session's thread key."""
CANCELLED = "cancelled"
POLL_SECONDS = 0.2
"""How often the store is asked about a turn that runs elsewhere."""
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp"})


def session_key(key_id: str, session_id: str) -> ThreadKey:
    """The thread of a session: the key's own channel, so another key's session is simply not found."""
    return ThreadKey(API_TEAM, f"{API_CHANNEL_PREFIX}{key_id}", session_id)


class Runs:
    """Starts, awaits and cancels the turns of API sessions."""

    def __init__(self, *, store: Store, worker: TurnWorker, tracker: TaskTracker, files: SessionFiles,
                 poster: ApiPoster, results: TurnResults) -> None:
        self._store = store
        self.results = results
        self._worker = worker
        self._tracker = tracker
        self._files = files
        self._poster = poster
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._busy: set[str] = set()
        self._last_ts = 0.0

    def _next_ts(self) -> str:
        """A message ``ts`` for a new turn, later than every one before (the thread queue orders by it)."""
        self._last_ts = max(time.time(), self._last_ts + 1e-6)
        return f"{self._last_ts:.6f}"

    async def start(self, key: ThreadKey, question: str, *, user: str, now: float) -> str:
        """Store a turn of ``question`` in the session and start it; 409 while another one is in flight."""
        session = key.thread_ts
        if session in self._busy:
            raise _busy()
        self._busy.add(session)
        try:
            if any(t.status in ("queued", "running") for t in await self._store.list_turns(key)):
                raise _busy()  # another replica's turn
            turn_id = uuid.uuid4().hex
            await self._store.submit_turn(NewTurn(id=turn_id, key=key, message_ts=self._next_ts(), user=user,
                                                  question=question, files=(), created_at=now),
                                          dedupe_keys=(f"api:{turn_id}",))
            self._tasks[turn_id] = self._tracker.spawn(self._drive(key, turn_id), name=f"api-turn-{turn_id}",
                                                       group=API_TEAM)
        except TrackerClosed:
            self._busy.discard(session)
            raise ApiProblem(503, SHUTTING_DOWN, "The server is shutting down; the turn was not started.") from None
        except BaseException:
            self._busy.discard(session)
            raise
        return turn_id

    async def _drive(self, key: ThreadKey, turn_id: str) -> None:
        try:
            await self._worker.run(turn_id)
        finally:
            self._busy.discard(key.thread_ts)
            self._tasks.pop(turn_id, None)
        if self.results.result(key, turn_id) is not None:  # answered (the hook kept it): no store read needed
            return
        record = await self._store.get_turn(turn_id)
        if record is not None and record.status == "failed":
            self._files.write_json(key.thread_ts, f"turn-{turn_id}",
                                   {"error": plain(self._poster.last_text(key.thread_ts)).strip() or record.error})

    async def wait(self, turn_id: str) -> None:
        """Until the turn ended (the caller going away does not cancel it): its task when it runs here, else the
        store (a turn another replica runs)."""
        task = self._tasks.get(turn_id)
        if task is not None:
            await asyncio.wait({task})
            return
        while (turn := await self._store.get_turn(turn_id)) is not None and turn.status in ("queued", "running"):
            await asyncio.sleep(POLL_SECONDS)

    async def cancel(self, key: ThreadKey, turn: TurnRecord, *, now: float) -> None:
        """End a queued or running turn as failed with the error ``cancelled``: first in the store (so it is never
        started, wherever it waits), then its task when it runs here."""
        await self._store.finish_turn(turn.id, status="failed", now=now, outcome=TurnOutcomeRecord(error=CANCELLED))
        self._files.write_json(key.thread_ts, f"turn-{turn.id}", {"error": "The turn was cancelled.",
                                                                  CANCELLED: True})
        if (task := self._tasks.get(turn.id)) is not None:
            task.cancel()
            await asyncio.wait({task})
        logger.info("api turn cancelled turn=%s", turn.id)

    async def cancel_all(self, key: ThreadKey, *, now: float) -> None:
        """Cancel the session's turns running here (it is being deleted)."""
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


def _busy() -> ApiProblem:
    return ApiProblem(409, SESSION_BUSY, "This session is already working on an analysis; one runs at a time. "
                                         "Wait for it (its status URL) and try again.", retry_after=2)
