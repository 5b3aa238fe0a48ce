"""Exactly once, visible to users: every part of a turn's answer is recorded in the store's ledger when posted.

A part is a narrative message (``answer:0``, ``answer:1``... or, streamed, ``stream:0``, ``stream:1``...), the
files (``files``), the status reply (``status``), a line about refused files (``refusals``) and the reaction swap
(``reaction``). Before posting a part
the ledger is asked; a part it knows is skipped. Between Slack accepting a post and the ledger's write a replica
may die: every message is posted with its :class:`bot.poster.PartTag` as Slack message metadata, so a turn that may
have posted before (it is resumed) reads the thread back once and records what it finds instead of posting again.
Files carry no metadata, so their upload has two phases: the Slack file ids of the uploaded bytes are recorded
(``files:intent:<attempt>``) before ``files.completeUploadExternal`` shares them; a resumed turn that finds an
intent whose files are in the thread adopts them instead of uploading new ones; when they are not there, it waits
the fence's margin once more (a share sent under the earlier run's fence may still be on its way) and looks
again. (For a turn recorded before intents, an upload of the same names after the turn's first narrative message
counts as posted.) A streamed message carries no metadata until its stream stops (``chat.startStream`` takes
none), so its start is recorded first (:meth:`AnswerLedger.intend`); a resumed turn with a start but no ``ts``
adopts the bot's message of this turn that the thread shows and nothing accounts for (:meth:`AnswerLedger.adopt`).

Every visible post (and the sharing of uploaded files) is fenced: the turn's lease is renewed, with margin, just
before it (:meth:`bot.turns.queue.Lease.fence`), so a replica that lost its lease posts nothing more, and the
replica that took the turn over (only once that lease expired) sees everything the first one posted.

The answer itself is the **plan** (``plan``), recorded before the first part is posted: the narrative's messages,
the files to attach (as sandbox file ids) and the turn's outcome. A resumed turn that finds a plan delivers it
without running the analysis again, so what it posts continues what was posted.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Protocol

from bot.clock import Clock
from bot.poster import PartTag, Poster, SlackError, ThreadMessage, Upload
from bot.store.base import LedgerStore, TurnOutcomeRecord, TurnRecord
from bot.turns.queue import FENCE_MARGIN

logger = logging.getLogger("bot.turns")


class Held(Protocol):
    """The turn's lease as the ledger uses it (:class:`bot.turns.queue.Lease`)."""

    @property
    def seconds(self) -> float:
        """The lease period."""
        ...

    async def fence(self) -> None:
        """Called just before every visible post; cancels the turn when this replica no longer holds it."""
        ...


PLAN = "plan"
INTENT = ":intent:"
"""Between a part and an attempt number: the file ids an upload of that attempt was about to share."""
STREAM_PART = re.compile(r"stream:\d+")
"""The parts that are streamed messages (``stream:0``, ``stream:1``...: :mod:`bot.turns.streaming`)."""
INTENT_SUFFIX = ":start"
"""``<part>:start``: the part is about to be posted without metadata (a stream), at ``at:<epoch seconds>``."""
CLOCK_SKEW = 60.0
"""Seconds a replica's clock may be off Slack's when a started message is looked for in the thread."""


@dataclass(frozen=True, slots=True)
class Plan:
    """A finished analysis, ready to deliver (see the module docstring)."""

    texts: list[str]
    container_id: str
    files: list[tuple[str, str]]
    """``(sandbox file id, name)`` of each file to attach, in order."""
    done_line: str
    outcome: dict[str, object] = field(default_factory=dict)
    """The :class:`bot.store.base.TurnOutcomeRecord` fields."""
    elapsed: float = 0.0
    specs: list[tuple[str, str]] = field(default_factory=list)
    """``(name, JSON text)`` of each chart and table spec the charting helper wrote (:mod:`bot.turns.native`)."""
    has_code: bool = False
    """Code ran for the answer ("Show code" is offered)."""
    streamed: list[str] = field(default_factory=list)
    """The Markdown of each streamed message (``stream:N``) when the narrative was streamed; empty otherwise."""
    tail: str = ""
    """What a streamed narrative ends with: notes and footer (in ``texts`` already for a posted one)."""

    def to_json(self) -> str:
        """The ledger's text of the plan."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """The plan a ledger kept."""
        raw = json.loads(text)
        return cls(texts=[str(t) for t in raw["texts"]], container_id=str(raw["container_id"]),
                   files=[(str(i), str(n)) for i, n in raw["files"]], done_line=str(raw["done_line"]),
                   outcome=dict(raw.get("outcome") or {}), elapsed=float(raw.get("elapsed") or 0.0),
                   specs=[(str(n), str(t)) for n, t in raw.get("specs") or []],
                   has_code=bool(raw.get("has_code")), streamed=[str(t) for t in raw.get("streamed") or []],
                   tail=str(raw.get("tail") or ""))

    def outcome_record(self) -> TurnOutcomeRecord:
        """What the store keeps of the finished turn."""
        return TurnOutcomeRecord(**self.outcome)  # type: ignore[arg-type]


class AnswerLedger:
    """One turn's ledger (see the module docstring)."""

    def __init__(self, *, store: LedgerStore, poster: Poster, clock: Clock, turn: TurnRecord,
                 posted: dict[str, str], resumed: bool, lease: Held | None = None) -> None:
        self._store = store
        self._lease = lease
        self._poster = poster
        self._clock = clock
        self._turn = turn
        self.posted = posted
        self._resumed = resumed
        """Parts may have reached Slack without reaching the ledger: read the thread before posting."""
        self._thread: list[ThreadMessage] | None = None

    @classmethod
    async def open(cls, *, store: LedgerStore, poster: Poster, clock: Clock, turn: TurnRecord,
                   resumed: bool, lease: Held | None = None) -> AnswerLedger:
        """The turn's ledger as the store has it, posting under ``lease`` (the run's, or a greeting's hold)."""
        return cls(store=store, poster=poster, clock=clock, turn=turn, posted=await store.posted_parts(turn.id),
                   resumed=resumed, lease=lease)

    async def fence(self) -> None:
        """Make sure this replica still holds the turn, with margin, before a visible post (see the module
        docstring); a lost turn's task is cancelled."""
        if self._lease is not None:
            await self._lease.fence()

    def plan(self) -> Plan | None:
        """The answer recorded before delivery began, if any."""
        text = self.posted.get(PLAN)
        return None if text is None else Plan.from_json(text)

    async def keep_plan(self, plan: Plan) -> None:
        """Record the answer before posting any of it."""
        await self._record(PLAN, plan.to_json())

    async def record(self, part: str, ref: str) -> None:
        """Record ``part`` as posted (a streamed message, recorded as soon as Slack gave its ``ts``)."""
        await self._record(part, ref)

    async def _record(self, part: str, ref: str) -> None:
        await self._store.record_part(self._turn.id, part, ref, now=self._clock.now())
        self.posted[part] = ref

    async def _thread_messages(self) -> list[ThreadMessage]:
        if self._thread is None:
            key = self._turn.key
            try:
                self._thread = await self._poster.thread_messages(channel=key.channel, thread_ts=key.thread_ts)
            except SlackError as exc:
                logger.warning("thread not read back channel=%s error=%s", key.channel, exc.code)
                raise
        return self._thread

    async def intend(self, part: str) -> None:
        """Record that ``part`` is about to be posted without metadata (``chat.startStream``)."""
        await self._record(part + INTENT_SUFFIX, f"at:{self._clock.now():.3f}")

    def intended(self, part: str) -> float | None:
        """When ``part`` was about to be posted (:meth:`intend`), if it was."""
        ref = self.posted.get(part + INTENT_SUFFIX)
        try:
            return None if ref is None else float(ref.removeprefix("at:"))
        except ValueError:
            return None

    async def adopt(self, part: str) -> str | None:
        """The ts of ``part``, started (:meth:`intend`) by a run that died before recording it, when the thread
        shows it: its tag (a stream that was stopped), else the one message of this bot after the question and
        after the start (give or take :data:`CLOCK_SKEW`) that is not tagged, carries no files and that no turn
        recorded. None when Slack never got it. The thread is read once per run. (A start without a ts shows an
        earlier run, even one that gave its attempt back.)"""
        if part in self.posted:
            return self.posted[part]
        since = self.intended(part)
        if since is None:
            return None
        self._resumed = True
        if (ts := await self._found(part)) is not None:
            return ts
        thread = await self._thread_messages()
        known = {*self.posted.values(), self._turn.status_ts}
        mine = {m.user for m in thread if m.ts in known or (m.tag is not None and m.tag.turn == self._turn.id)}
        asked = ts_order(self._turn.message_ts)
        for m in thread:
            if m.user not in mine or m.tag is not None or m.file_names or m.ts in known:
                continue
            if ts_order(m.ts) <= asked or ts_order(m.ts)[0] < since - CLOCK_SKEW:
                continue
            if await self._store.turn_of_part(m.ts) not in (None, self._turn.id):
                continue
            await self._record(part, m.ts)
            logger.info("started message found in the thread, adopted turn=%s part=%s", self._turn.id, part)
            return m.ts
        return None

    async def _found(self, part: str) -> str | None:
        """The ts of ``part`` when the thread shows it was posted (only for a turn that may have posted it)."""
        if not self._resumed:
            return None
        for m in await self._thread_messages():
            if m.tag is not None and m.tag.turn == self._turn.id and m.tag.part == part:
                await self._record(part, m.ts)
                logger.info("part found in the thread, not posted again turn=%s part=%s", self._turn.id, part)
                return m.ts
        return None

    async def post(self, part: str, text: str, blocks: list[dict[str, object]] | None = None) -> str:
        """Post ``text`` (with ``blocks``) as ``part`` once; returns its ts."""
        if part in self.posted:
            return self.posted[part]
        if (ts := await self._found(part)) is not None:
            return ts
        key = self._turn.key
        await self.fence()
        ts = await self._poster.post(channel=key.channel, thread_ts=key.thread_ts, text=text, blocks=blocks,
                                     tag=PartTag(turn=self._turn.id, part=part))
        await self._record(part, ts)
        return ts

    async def upload(self, part: str, uploads: Sequence[Upload], *, after: str | None) -> None:
        """Upload the files as ``part`` once (after the message ``after``, the answer's first)."""
        if part in self.posted or not uploads:
            return
        names = {u.filename for u in uploads}
        if self._resumed and await self._adopted(part, names, after):
            return
        key = self._turn.key
        intent = f"{part}{INTENT}{self._turn.attempts}"

        async def share(ids: list[str]) -> None:  # the bytes are at Slack: say which files, then check the lease
            if ids:
                await self._record(intent, ",".join(ids))
            await self.fence()

        ids = await self._poster.upload_files(channel=key.channel, thread_ts=key.thread_ts, files=list(uploads),
                                              before_share=share)
        await self._record(part, ",".join(sorted(names)))
        if ids:  # what a 🗑️ on the answer deletes (bot.answers)
            await self._record(f"{part}:ids", ",".join(ids))

    async def _adopted(self, part: str, names: set[str], after: str | None) -> bool:
        """Whether an earlier run of the turn shared the files already (recorded as ``part`` now)."""
        intents = [ref.split(",") for p, ref in self.posted.items() if p.startswith(part + INTENT)]
        if intents:
            shared = await self._shared(intents)
            if shared is None and self._lease is not None:
                # an earlier run's share may still be on its way (sent under its fence, with margin, before its
                # lease expired): give it that margin again, then look once more
                await self._clock.sleep(self._lease.seconds * FENCE_MARGIN)
                self._thread = None
                shared = await self._shared(intents)
            if shared is None:
                return False
            await self._record(part, ",".join(sorted(names)))
            await self._record(f"{part}:ids", ",".join(shared))
            logger.info("files shared by an earlier run found in the thread, not uploaded again turn=%s",
                        self._turn.id)
            return True
        if after is not None:  # a turn recorded before intents: its files by name, after the answer's first message
            seen = {n for m in await self._thread_messages() if ts_order(m.ts) > ts_order(after) for n in m.file_names}
            if names <= seen:
                await self._record(part, ",".join(sorted(names)))
                logger.info("files found in the thread, not uploaded again turn=%s", self._turn.id)
                return True
        return False

    async def _shared(self, intents: list[list[str]]) -> list[str] | None:
        """The file ids of the intent whose files are all in the thread, if any."""
        in_thread = {i for m in await self._thread_messages() for i in m.file_ids}
        return next((ids for ids in intents if set(ids) <= in_thread), None)

    async def once(self, part: str, action: Callable[[], Awaitable[None]]) -> None:
        """Run ``action`` (a reaction swap) unless ``part`` was recorded; record it after."""
        if part in self.posted:
            return
        await self.fence()
        await action()
        await self._record(part, "done")


def ts_order(ts: str) -> tuple[int, int]:
    """A Slack ``ts`` as a sortable pair (seconds, microseconds); (0, 0) when it is not one."""
    seconds, _, micros = ts.partition(".")
    try:
        return int(seconds), int(micros.ljust(6, "0")[:6])
    except ValueError:
        return 0, 0
