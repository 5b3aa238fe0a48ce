"""The answer, shown while the model writes it: one turn's streamed reply in the thread.

Where the poster can stream (:meth:`bot.poster.Poster.streams`), a turn opens a stream in its thread when the analysis
starts (``chat.startStream`` to the asker and their team, with a plan title and the steps as tasks: reading →
loading → running code → drawing charts → writing), appends the model's text as it arrives (safe pieces:
:mod:`bot.turns.stream_text`; the first at once, then at most every :data:`STREAM_INTERVAL` seconds), and stops it
when the answer is delivered, with the notes and footer, the first native charts and the answer's buttons
(``chat.stopStream``). A reply longer than :data:`MESSAGE_CHARS` continues in a new stream, split at a paragraph
break, never inside a table or a code block.

Where Slack refuses to stream, or a stream ends early (its lifetime is a few minutes), the same messages are posted
with ``chat.postMessage`` and rewritten with ``chat.update``, at most once every :data:`FALLBACK_INTERVAL` seconds
per message.

Exactly once: each streamed message is recorded in the turn's ledger (``stream:N``) as soon as Slack gives its
``ts`` (its start before: :mod:`bot.turns.stream_parts`), and a plan records the Markdown of each. A turn resumed
after a crash never opens a second stream: it adopts a stream an earlier run started but did not record, ends the
streams and rewrites their messages in order with ``chat.update`` (messages it still needs are posted through the
ledger, tagged like every other part; messages it no longer needs are deleted); the final step is recorded as
``streamed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bot.analysts.base import Progress
from bot.analysts.responses import RUNNING_CODE, WRITING_ANSWER
from bot.formatting import NO_NARRATIVE, to_mrkdwn
from bot.poster import Chunk, PartTag, Poster, SlackError, StreamPoster, StreamTarget
from bot.turns.ledger import AnswerLedger
from bot.turns.native import (
    REFUSED,
    NativeMessage,
    answer_actions,
    answer_blocks,
    classic_actions,
    classic_answer_blocks,
)
from bot.turns.stream_parts import adopt_started, delete_unneeded, live, next_part, part_name
from bot.turns.stream_text import ReleasedText, fit_message

logger = logging.getLogger("bot.turns")

MESSAGE_CHARS = 3_500
"""Markdown per streamed message (well under Slack's 4,000 characters of a message's text, for the fallback)."""
STREAM_INTERVAL = 0.5
"""Seconds between appends to a stream (``chat.appendStream`` is Tier 4, ~100 a minute per workspace)."""
FALLBACK_INTERVAL = 1.0
"""Seconds between two ``chat.update`` of one message on the fallback."""
DONE_PART = "streamed"
STEPS = {"read": "Reading the question", "load": "Loading the data", "code": "Running code",
         "charts": "Drawing charts", "write": "Writing the answer"}


@dataclass(slots=True)
class _Message:
    part: int
    """Its ledger part is ``stream:<part>``."""
    ts: str | None
    text: str = ""
    """The Markdown shown in it so far."""
    dirty: bool = False
    """Its text changed since Slack last got it (the fallback)."""
    updated_at: float = float("-inf")
    streamed: bool = True
    """Started as a stream (a message the fallback posted is not)."""


class AnswerStream:
    """One turn's streamed reply (see the module docstring)."""

    def __init__(self, *, poster: Poster, ledger: AnswerLedger, turn_id: str, target: StreamTarget,
                 texts: list[str] | None = None, message_chars: int = MESSAGE_CHARS,
                 interval: float = STREAM_INTERVAL, fallback_interval: float = FALLBACK_INTERVAL,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._poster = poster
        self._streams: StreamPoster | None = poster.streams(target.channel)
        self._ledger = ledger
        self._turn_id = turn_id
        self._target = target
        self._chars = message_chars
        self._interval = interval
        self._fallback_interval = fallback_interval
        self._monotonic = monotonic
        self._messages = [_Message(part=n, ts=ts) for n, ts in live(ledger.posted)]
        for message, text in zip(self._messages, texts or [], strict=False):
            message.text = text
        self._keep = None if texts is None else max(1, len(texts))
        """How many messages the reply has (given by the plan); the ones after it are no longer needed."""
        self._cursor = max(0, len(self._messages) - 1)
        """The message the text goes on in (a resumed run rewrites the recorded ones from the first)."""
        self._streaming = False
        self._text = ReleasedText()
        self._chunks: list[Chunk] = []
        self._steps: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._pump: asyncio.Task[None] | None = None
        self._closed = False
        self._ending = asyncio.Event()
        self.first_text_at: float | None = None
        """``monotonic()`` when the first text was sent to Slack."""

    @property
    def texts(self) -> list[str]:
        """The Markdown of each message of the reply."""
        return [m.text for m in self._messages]

    @property
    def got_text(self) -> bool:
        """The analyst sent text while it ran (an engine that streams)."""
        return bool(self._text.received)

    def _tag(self, message: _Message) -> PartTag:
        return PartTag(turn=self._turn_id, part=part_name(message.part))

    def _new_part(self) -> int:
        return next_part(self._ledger.posted, [m.part for m in self._messages])

    # ------------------------------------------------------------------ progress

    async def open(self, title: str) -> None:
        """Start the reply: a stream with the plan and its first step (or, resumed, take over the recorded
        messages, their streams ended); then follow the text as it comes."""
        if await adopt_started(self._ledger):
            self._messages = [_Message(part=n, ts=ts) for n, ts in live(self._ledger.posted)]
        if self._messages:
            for m in self._messages:
                await self._end_quietly(m)
                m.streamed = False
            self._cursor = 0
            logger.info("resumed turn takes over its streamed messages turn=%s count=%d", self._turn_id,
                        len(self._messages))
        elif self._streams is not None:
            self._step("read", "in_progress")
            await self._start([{"type": "plan_update", "title": title[:200]}, *self._take_chunks()])
        self._pump = asyncio.create_task(self._follow(), name=f"stream-{self._turn_id}")

    async def _start(self, chunks: list[Chunk], text: str = "") -> bool:
        assert self._streams is not None
        part = self._new_part()
        await self._ledger.intend(part_name(part))  # Slack may open it and this replica die before it is recorded
        await self._ledger.fence()
        try:
            ts = await self._streams.start_stream(self._target, markdown_text=text, chunks=chunks)
        except SlackError as exc:
            logger.info("streaming refused; answering with post and update channel=%s error=%s",
                        self._target.channel, exc.code)
            self._streaming = False
            return False
        await self._ledger.record(part_name(part), ts)
        self._messages.append(_Message(part=part, ts=ts, text=text))
        self._cursor = len(self._messages) - 1
        self._streaming = True
        return True

    async def _end_quietly(self, message: _Message) -> None:
        if self._streams is None or message.ts is None:
            return
        with contextlib.suppress(SlackError):
            await self._streams.stop_stream(channel=self._target.channel, ts=message.ts)

    def _step(self, step: str, status: str) -> None:
        if self._steps.get(step) == status:
            return
        self._steps[step] = status
        self._chunks.append({"type": "task_update", "id": step, "title": STEPS[step], "status": status})

    def _take_chunks(self) -> list[Chunk]:
        chunks, self._chunks = self._chunks, []
        return chunks

    def step(self, step: str, status: str) -> None:
        """A step of the turn started (``in_progress``) or ended (``complete``); shown with the next append."""
        for earlier in STEPS:
            if earlier == step:
                break
            if self._steps.get(earlier) == "in_progress":
                self._step(earlier, "complete")
        self._step(step, status)
        self._wake.set()

    def follow(self, status: Progress) -> Progress:
        """The analyst's progress for the status reply and, as steps, for the stream."""
        async def progress(line: str) -> None:
            if line == RUNNING_CODE:
                self.step("code", "in_progress")
            elif line == WRITING_ANSWER:
                self.step("write", "in_progress")
            await status(line)
        return progress

    async def text(self, delta: str) -> None:
        """More of the model's answer."""
        if not delta:
            return
        self._text.add(delta)
        if "write" not in self._steps:
            self.step("write", "in_progress")
        self._wake.set()

    # ------------------------------------------------------------------ sending

    async def _follow(self) -> None:
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            try:
                await self._flush(final=False)
            except SlackError as exc:
                logger.warning("streamed reply not updated channel=%s error=%s", self._target.channel, exc.code)
            if self.first_text_at is None:
                continue  # the first text goes out as soon as it comes
            with contextlib.suppress(TimeoutError):  # the pace of the calls; the end does not wait for it
                await asyncio.wait_for(self._ending.wait(),
                                       self._interval if self._streaming else self._fallback_interval)

    async def _flush(self, *, final: bool) -> None:
        async with self._lock:
            piece = self._text.take(final=final)
            if self._streaming:
                piece = await self._append(piece)
            if piece or not self._streaming:
                await self._fallback(piece, final=final)

    async def _append(self, piece: str) -> str:
        """Append ``piece`` (and the task updates) to the stream, in new streams when it is long; returns what
        could not be streamed (the stream ended): the fallback posts it."""
        assert self._streams is not None
        chunks = self._take_chunks()
        while piece or chunks:
            message = self._messages[-1]
            n = fit_message(piece, message.text, self._chars)
            if n == 0 and piece:  # the message is full: stop it at its paragraph break and go on in a new one
                with contextlib.suppress(SlackError):
                    await self._streams.stop_stream(channel=self._target.channel, ts=str(message.ts),
                                                    tag=self._tag(message))
                if not await self._start([{"type": "plan_update", "title": "Continued"}]):
                    return piece
                continue
            head = piece[:n]
            try:
                await self._streams.append_stream(channel=self._target.channel, ts=str(message.ts),
                                                  markdown_text=head, chunks=chunks)
            except SlackError as exc:
                if exc.code == "ratelimited":
                    raise
                logger.info("stream ended early; going on with chat.update channel=%s error=%s",
                            self._target.channel, exc.code)
                self._streaming = False
                return piece
            piece, chunks = piece[n:], []
            message.text += head
            if head and self.first_text_at is None:
                self.first_text_at = self._monotonic()
        return ""

    async def _fallback(self, piece: str, *, final: bool) -> None:
        """Put ``piece`` in the messages (new ones when long) and send what changed: a post for a new message,
        an update at most once every :data:`FALLBACK_INTERVAL` seconds for one already posted."""
        while piece:
            if self._cursor >= len(self._messages):
                self._messages.append(_Message(part=self._new_part(), ts=None))
            message = self._messages[self._cursor]
            n = fit_message(piece, message.text, self._chars)
            if n == 0:
                self._cursor += 1
                continue
            message.text += piece[:n]
            message.dirty = True
            piece = piece[n:]
        for message in self._messages:
            if not message.dirty:
                continue
            wait = message.updated_at + self._fallback_interval - self._monotonic()
            if wait > 0:
                if not final:
                    continue  # the next round sends it
                await asyncio.sleep(wait)
            await self._send(message)

    async def _send(self, message: _Message, blocks: list[dict[str, Any]] | None = None) -> None:
        text = await asyncio.to_thread(to_mrkdwn, message.text) or NO_NARRATIVE
        message.dirty = False
        if message.ts is None:
            message.ts = await self._ledger.post(part_name(message.part), text, blocks)
            message.streamed = False
            if self.first_text_at is None:
                self.first_text_at = self._monotonic()
        else:
            await self._poster.update(channel=self._target.channel, ts=message.ts, text=text, blocks=blocks)
        message.updated_at = self._monotonic()

    # ------------------------------------------------------------------ the end

    async def drain(self, whole: str) -> list[str]:
        """The analysis ended: send the rest of its text (``whole``, the answer, when the engine sent none while
        it ran); returns the Markdown of each message."""
        if not self.got_text:
            self._text.add(whole.strip() or NO_NARRATIVE)
        self.step("charts", "complete")
        await self._stop_following()
        await self._flush(final=True)
        await self._drop_unneeded(self._cursor + 1)
        return self.texts

    async def _drop_unneeded(self, keep: int) -> None:
        """Delete the messages after the first ``keep`` (an earlier run streamed more than this one needs)."""
        extra, self._messages = self._messages[keep:], self._messages[:keep]
        await delete_unneeded(self._poster, self._ledger, channel=self._target.channel,
                              parts=[(m.part, m.ts) for m in extra if m.ts is not None])

    async def _stop_following(self) -> None:
        self._closed = True
        self._ending.set()
        self._wake.set()
        if self._pump is not None:
            await self._pump
            self._pump = None

    async def finish(self, tail: str, *, has_code: bool, natives: list[NativeMessage]) -> None:
        """End the reply: ``tail`` (notes, footer) after the text, then the first native charts and the answer's
        buttons (Slack's feedback buttons, else plain ones, else none, as Slack accepts them). Charts that went
        into it are recorded as their own part (``native:0``), so they are not posted again. Done once (the
        ledger's ``streamed`` part)."""
        if DONE_PART in self._ledger.posted or not self._messages:
            return
        if self._keep is not None:
            await self._drop_unneeded(self._keep)
        charts = natives[0].blocks if natives and natives[0].kind == "chart" else []
        message = self._messages[-1]
        tail = f"\n\n{tail}" if tail and message.text else tail
        attached: bool | None = None
        if self._streams is not None and message.ts is not None and message.streamed:
            attached = await self._stop(message, tail, has_code=has_code, charts=charts)
        if attached is None:  # never streamed, or the stream ended before: rewrite the message
            message.text += tail
            await self._update_last(message, has_code=has_code)
        elif attached:
            await self._ledger.record("native:0", str(message.ts))
        await self._ledger.record(DONE_PART, str(message.ts))

    async def _stop(self, message: _Message, tail: str, *, has_code: bool, charts: list[dict[str, Any]]
                    ) -> bool | None:
        assert self._streams is not None and message.ts is not None
        done: list[Chunk] = [{"type": "task_update", "id": s, "title": STEPS[s], "status": "complete"}
                for s, status in self._steps.items() if status == "in_progress"]
        options = [(True, [*charts, *answer_actions(turn_id=self._turn_id, has_code=has_code)]),
                   (False, answer_actions(turn_id=self._turn_id, has_code=has_code)),
                   (False, classic_actions(turn_id=self._turn_id, has_code=has_code)), (False, [])]
        for with_charts, blocks in options if charts else options[1:]:
            try:
                await self._streams.stop_stream(channel=self._target.channel, ts=message.ts, markdown_text=tail,
                                                chunks=done, blocks=blocks or None, tag=self._tag(message))
            except SlackError as exc:
                if exc.code in REFUSED:
                    logger.info("blocks refused at the end of the stream error=%s", exc.code)
                    continue
                logger.info("stream not stopped; the message is rewritten instead error=%s", exc.code)
                return None
            message.text += tail
            return with_charts
        return None

    async def _update_last(self, message: _Message, *, has_code: bool) -> None:
        """The fallback's last rewrite of the last message: its text with the answer's buttons."""
        wait = message.updated_at + self._fallback_interval - self._monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        text = await asyncio.to_thread(to_mrkdwn, message.text) or NO_NARRATIVE
        for build in (answer_blocks, classic_answer_blocks, None):
            blocks = build(text, turn_id=self._turn_id, has_code=has_code) if build else None
            try:
                await self._send(message, blocks)
                return
            except SlackError as exc:
                if exc.code not in REFUSED or build is None:
                    raise

    def abandon(self) -> None:
        """The turn was interrupted (shutdown, lease lost): stop following; the stream is left for the next run."""
        self._closed = True
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None

    async def close(self) -> None:
        """The turn failed or was stopped: stop following and end an open stream (what was shown stays)."""
        await self._stop_following()
        if self._streaming and self._messages:
            await self._end_quietly(self._messages[-1])
