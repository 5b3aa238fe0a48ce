"""The API's operations, independent of the transport: the HTTP routes (:mod:`bot.api.routes`) and the MCP tools
(:mod:`bot.api.mcp`) both call :class:`SessionService`, so they share keys, sessions and limits.

A session is a thread of the store with source ``api``, keyed by the API key (:func:`bot.api.runs.session_key`):
another key's session id is a 404 like an unknown one. Its container is created by its first analysis, expires
after ``DATASTORY_IDLE_MINUTES`` idle like a Slack thread's (the sweeper deletes it), and is rebuilt from the
stored uploads when a later call needs it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bot.analysts.angles import ANGLES_QUESTION, Angle, angle_question, is_angles_request
from bot.api import keys
from bot.api.limits import RateLimiter, check_budget
from bot.api.models import (
    AnalyzeOut,
    AngleOut,
    FileOut,
    OutputFile,
    RefineIn,
    RefineOut,
    SessionOut,
    TurnOut,
    TurnResult,
)
from bot.api.problems import (
    ANALYSIS_FAILED,
    INVALID_REQUEST,
    NO_ANGLES,
    NOT_FINISHED,
    TOO_MANY_FILES,
    UNAUTHORIZED,
    ApiProblem,
    not_found,
)
from bot.api.runs import CANCELLED, Runs, session_key
from bot.api.storage import SessionFiles
from bot.api.uploads import Received, receive
from bot.clock import Clock
from bot.files import extension
from bot.sandbox.base import SandboxBackend, SandboxError
from bot.store.base import FileRecord, Store, ThreadKey, ThreadRecord, TurnRecord
from bot.store.sessions import ApiKeyRecord, SessionStore

logger = logging.getLogger(__name__)

KEY_USE_RESOLUTION = 60.0
"""Seconds: a key's ``last_used_at`` is kept to the minute (``datastory api-key list``)."""
Incoming = AsyncIterator[tuple[str, AsyncIterator[bytes]]]
"""The files of an upload, in order: each name with its bytes."""


class ApiStore(Store, SessionStore, Protocol):
    """The store with its API part (``SqlStore``)."""


@dataclass(frozen=True, slots=True)
class ApiLimits:
    """The settings the API enforces."""

    max_file_bytes: int
    max_files: int
    idle_minutes: int
    daily_budget_usd: float | None
    rate_per_minute: int


class SessionService:
    """Upload → analyze → refine, and the session's files, for one API key at a time."""

    def __init__(self, *, store: ApiStore, sandbox: SandboxBackend, runs: Runs, files: SessionFiles, clock: Clock,
                 limits: ApiLimits) -> None:
        self._store = store
        self._sandbox = sandbox
        self._runs = runs
        self._files = files
        self._clock = clock
        self._limits = limits
        self._rate = RateLimiter(per_minute=limits.rate_per_minute, clock=clock)
        self._keys = keys.KeyCache(store)

    @property
    def limits(self) -> ApiLimits:
        """What is enforced."""
        return self._limits

    async def authenticate(self, authorization: str | None) -> ApiKeyRecord:
        """The key of an ``Authorization: Bearer`` header (or a bare key), or 401."""
        presented = (authorization or "").strip()
        if presented.lower().startswith("bearer "):
            presented = presented[7:].strip()
        record = await self._keys.verify(presented) if presented else None
        if record is None:
            raise ApiProblem(401, UNAUTHORIZED, "Send a live API key as `Authorization: Bearer ds_…` "
                                                "(`datastory api-key create NAME` makes one).")
        now = self._clock.now()
        if record.last_used_at is None or now - record.last_used_at >= KEY_USE_RESOLUTION:
            await self._store.touch_api_key(record.id, now=now)  # at most once a minute: no write per request
            self._keys.used(record.id, now)
        return record

    # -- sessions ---------------------------------------------------------------------------------------------

    async def create(self, owner: ApiKeyRecord, incoming: Incoming) -> SessionOut:
        """Receive the files (each inspected as it streams; 413/415/422 before any container), open the session."""
        self._rate.check(owner.id)
        session_id = "s" + secrets.token_hex(10)
        key = session_key(owner.id, session_id)
        received: list[Received] = []
        try:
            async for name, chunks in incoming:
                if len(received) >= self._limits.max_files:
                    raise ApiProblem(413, TOO_MANY_FILES, f"A session takes at most {self._limits.max_files} files "
                                                          "(`DATASTORY_API_MAX_FILES`).")
                received.append(await receive(name, chunks, files=self._files, session_id=session_id,
                                              max_bytes=self._limits.max_file_bytes))
            if not received:
                raise ApiProblem(422, INVALID_REQUEST, "The upload has no file: send multipart/form-data with one "
                                                       "or more file parts.")
            now = self._clock.now()
            outs = [_file_out(r) for r in received]
            self._files.write_json(session_id, "session", {"files": [o.model_dump() for o in outs]})
            await self._store.open_session(key, [
                FileRecord(key=key, slack_file_id=r.file_id, name=r.name, size=r.size, mimetype=r.mimetype,
                           filetype=extension(r.name).lstrip("."), download_url=self._files.url(session_id, r.file_id),
                           message_ts=f"{now:.6f}", user=owner.id, created_at=now) for r in received], now=now)
        except BaseException:
            self._files.delete(session_id)
            raise
        logger.info("api session opened session=%s key=%s files=%d", session_id, owner.id, len(received))
        thread = await self._thread(owner, session_id)
        return self._session_out(thread, [])

    async def _thread(self, owner: ApiKeyRecord, session_id: str) -> ThreadRecord:
        try:
            thread = await self._store.get_thread(session_key(owner.id, session_id))
        except ValueError:
            thread = None
        if thread is None or thread.source != "api":
            raise not_found()
        return thread

    def _session_out(self, thread: ThreadRecord, turns: list[TurnRecord]) -> SessionOut:
        doc = self._files.read_json(thread.key.thread_ts, "session") or {}
        return SessionOut(session_id=thread.key.thread_ts, files=[FileOut(**f) for f in doc.get("files", [])],
                          created_at=thread.created_at, last_active_at=thread.last_active_at,
                          expires_at=thread.last_active_at + self._limits.idle_minutes * 60,
                          turns=[self._turn_out(t) for t in turns])

    async def get(self, owner: ApiKeyRecord, session_id: str) -> SessionOut:
        """The session, its files and its turns."""
        thread = await self._thread(owner, session_id)
        return self._session_out(thread, await self._store.list_turns(thread.key))

    async def delete(self, owner: ApiKeyRecord, session_id: str) -> None:
        """Cancel its turns, delete its container, its rows and its files."""
        thread = await self._thread(owner, session_id)
        await self._runs.cancel_all(thread.key, now=self._clock.now())
        if thread.container_id and thread.backend == self._sandbox.kind:
            try:
                await self._sandbox.delete(thread.container_id)
            except SandboxError as exc:  # the sweeper deletes what carries the prefix and nobody owns
                logger.warning("api session container not deleted container=%s error=%s", thread.container_id,
                               type(exc).__name__)
        await self._store.delete_thread(thread.key)
        self._files.delete(session_id)
        logger.info("api session deleted session=%s", session_id)

    async def output(self, owner: ApiKeyRecord, session_id: str, file_id: str) -> tuple[Path, str]:
        """The path and name of a chart or result file of the session."""
        thread = await self._thread(owner, session_id)
        entry = self._runs.results.output(thread.key, file_id)
        path = self._files.output_path(session_id, file_id) if entry else None
        if entry is None or path is None or not path.is_file():
            raise not_found("file")
        return path, str(entry["name"])

    # -- analyses ---------------------------------------------------------------------------------------------

    async def _start(self, owner: ApiKeyRecord, thread: ThreadRecord, question: str) -> str:
        self._rate.check(owner.id)
        now = self._clock.now()
        await check_budget(self._store, channel=thread.key.channel, budget_usd=self._limits.daily_budget_usd, now=now)
        return await self._runs.start(thread.key, question, user=owner.id, now=now)

    async def analyze(self, owner: ApiKeyRecord, session_id: str, *, wait: bool = True) -> AnalyzeOut | TurnResult:
        """Story angles of the session's data (or, with ``wait=False``, the started turn)."""
        thread = await self._thread(owner, session_id)
        turn_id = await self._start(owner, thread, ANGLES_QUESTION)
        return await self._finish(thread.key, turn_id, ANGLES_QUESTION, wait=wait)  # type: ignore[return-value]

    async def refine(self, owner: ApiKeyRecord, session_id: str, body: RefineIn, *,
                     wait: bool = True) -> RefineOut | TurnResult:
        """The full story of an angle or of a question (or, with ``wait=False``, the started turn)."""
        thread = await self._thread(owner, session_id)
        if body.angle_id is not None:
            found = [a for a in self._runs.results.angles(thread.key) if a.get("id") == body.angle_id]
            if not found:
                raise ApiProblem(404, NO_ANGLES, f"This session has no angle `{body.angle_id}`: call analyze first "
                                                 "and use one of the ids it returns.")
            question = angle_question(Angle(**found[0]))
        else:
            question = str(body.question)
        turn_id = await self._start(owner, thread, question)
        return await self._finish(thread.key, turn_id, question, wait=wait)  # type: ignore[return-value]

    async def _finish(self, key: ThreadKey, turn_id: str, question: str, *,
                      wait: bool) -> AnalyzeOut | RefineOut | TurnResult:
        if not wait:
            return await self._turn_result(key, turn_id)
        record = await self._runs.wait(turn_id)
        if record is None:
            raise not_found("turn")
        return self._outcome(key, record)

    def _outcome(self, key: ThreadKey, record: TurnRecord) -> AnalyzeOut | RefineOut:
        """The result of a finished turn, or the problem it ended with."""
        doc = self._runs.results.result(key, record.id) or {}
        if record.status != "done" or "narrative" not in doc:
            if record.status in ("queued", "running"):
                raise ApiProblem(409, NOT_FINISHED, "The turn has not finished yet.", retry_after=2)
            raise ApiProblem(502, ANALYSIS_FAILED, self._runs.failure(key, record))
        return self._answer(key, record.id, record.question, doc, record.cost_usd)

    @staticmethod
    def _answer(key: ThreadKey, turn_id: str, question: str, doc: dict[str, Any],
                cost: float) -> AnalyzeOut | RefineOut:
        """What an answered turn produced, as the API returns it."""
        if is_angles_request(question):
            angles = [AngleOut(**a) for a in doc.get("angles", [])]
            if not angles:
                raise ApiProblem(502, ANALYSIS_FAILED, "The analysis answered without story angles; try again.")
            return AnalyzeOut(angles=angles, turn_id=turn_id)
        base = f"/v1/sessions/{key.thread_ts}/files/"
        return RefineOut(turn_id=turn_id, narrative=doc["narrative"], code=doc.get("code", ""),
                         charts=[OutputFile(**f, url=base + f["file_id"]) for f in doc.get("charts", [])],
                         result_files=[OutputFile(**f, url=base + f["file_id"]) for f in doc.get("result_files", [])],
                         cost_usd=cost, notes=doc.get("notes", ""))

    def _turn_out(self, record: TurnRecord) -> TurnOut:
        status = "cancelled" if record.error == CANCELLED else record.status
        return TurnOut(turn_id=record.id, kind="analyze" if is_angles_request(record.question) else "refine",
                       question=record.question, status=status, created_at=record.created_at,
                       finished_at=record.finished_at, cost_usd=record.cost_usd,
                       error=self._runs.failure(record.key, record) if record.status == "failed" else None,
                       status_url=f"/v1/sessions/{record.key.thread_ts}/turns/{record.id}")

    async def _turn_result(self, key: ThreadKey, turn_id: str) -> TurnResult:
        record = await self._store.get_turn(turn_id)
        if record is None or record.key != key:
            raise not_found("turn")
        result = self._outcome(key, record) if record.status == "done" else None
        return TurnResult(turn=self._turn_out(record), result=result)

    async def turn(self, owner: ApiKeyRecord, session_id: str, turn_id: str) -> TurnResult:
        """A turn's state and, once done, its result."""
        thread = await self._thread(owner, session_id)
        return await self._turn_result(thread.key, turn_id)

    async def cancel(self, owner: ApiKeyRecord, session_id: str, turn_id: str) -> TurnResult:
        """Cancel a queued or running turn (a finished one is left as it is)."""
        thread = await self._thread(owner, session_id)
        record = await self._store.get_turn(turn_id)
        if record is None or record.key != thread.key:
            raise not_found("turn")
        if record.status in ("queued", "running"):
            await self._runs.cancel(thread.key, record, now=self._clock.now())
        return await self._turn_result(thread.key, turn_id)


def _file_out(r: Received) -> FileOut:
    reader, kwargs = r.profile.options.pandas()
    return FileOut(file_id=r.file_id, name=r.name, size=r.size, rows=r.profile.rows, rows_exact=r.profile.rows_exact,
                   columns=r.profile.width, dtypes={c.name: c.type for c in r.profile.columns},
                   read_options={"reader": reader, **kwargs})
