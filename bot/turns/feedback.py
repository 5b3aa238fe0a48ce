"""What the user sees while a turn works: the reaction on the asking message and the status reply.

The status reply is posted once and then updated (throttled; identical text skipped); while the turn analyses it
carries a Stop button (:func:`bot.turns.stopping.stop_blocks`). Reactions go through
:class:`Feedback`, which logs a Slack refusal instead of failing the turn.
"""

from __future__ import annotations

import logging
import time

from bot.poster import Poster, SlackError
from bot.store.base import ThreadKey
from bot.turns.stopping import stop_blocks

logger = logging.getLogger("bot.turns")

WORKING, DONE, FAILED = "eyes", "white_check_mark", "warning"


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
        self.stop_turn: str | None = None
        """While set (the turn analyses), the status carries a Stop button for this turn id."""
        self._button = False

    @property
    def text(self) -> str:
        """The last text shown."""
        return self._text

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
        # the Stop button while the turn analyses; an update without it then removes it (empty blocks)
        blocks = stop_blocks(text, self.stop_turn) if self.stop_turn else [] if self._button else None
        try:
            if self.ts is None:
                self.ts = await self._poster.post(channel=self._channel, thread_ts=self._thread_ts, text=text,
                                                  blocks=blocks or None)
            else:
                await self._poster.update(channel=self._channel, ts=self.ts, text=text, blocks=blocks)
            self._button = bool(self.stop_turn)
        except SlackError as exc:
            logger.warning("status update failed channel=%s error=%s", self._channel, exc.code)

    async def progress(self, line: str) -> None:
        """A progress line from the analyst (throttled)."""
        await self.set(f":hourglass_flowing_sand: {line[:1].upper()}{line[1:]}", force=False)


class Feedback:
    """Reactions and one-line replies; a Slack refusal is logged, never raised."""

    def __init__(self, poster: Poster) -> None:
        self._poster = poster

    async def react(self, channel: str, ts: str, name: str) -> None:
        """Add reaction ``name`` to the message ``ts``."""
        try:
            await self._poster.react(channel=channel, ts=ts, name=name)
        except SlackError as exc:
            logger.warning("reaction failed channel=%s error=%s", channel, exc.code)

    async def swap(self, channel: str, ts: str, name: str) -> None:
        """Replace the "working" reaction with ``name``."""
        try:
            await self._poster.unreact(channel=channel, ts=ts, name=WORKING)
        except SlackError as exc:
            logger.warning("reaction removal failed channel=%s error=%s", channel, exc.code)
        await self.react(channel, ts, name)

    async def say(self, key: ThreadKey, text: str) -> None:
        """Post one line in the thread."""
        try:
            await self._poster.post(channel=key.channel, thread_ts=key.thread_ts, text=text)
        except SlackError as exc:
            logger.warning("reply failed channel=%s error=%s", key.channel, exc.code)
