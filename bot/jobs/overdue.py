"""The longest wait: a question that could not start within ``DATASTORY_MAX_QUEUE_WAIT_MINUTES`` is told so.

Under load a question waits for its thread (earlier questions first) and for a free slot. One pass
(``run_once(now)``) ends, in the store, every turn still queued that was asked longer ago than the longest wait
(:meth:`bot.store.base.Store.expire_waiting`, conditional, so a turn a worker starts at that moment is left alone and
a worker that reaches an ended turn skips it), then tells each thread: the status reply becomes the note (or the note
is posted when there is none) and the working reaction becomes the warning one. A question is never dropped
silently, and nothing runs after its asker was told to ask again. ``datastory run`` runs it every
:data:`INTERVAL_SECONDS` (a quarter of the longest wait when that is shorter); a turn ended by one replica is not
ended again by another.
"""

from __future__ import annotations

import logging

from bot.config import Settings
from bot.metrics import Metrics
from bot.poster import Poster, SlackError
from bot.store.base import LoadStore, TurnRecord
from bot.turns import FAILED
from bot.turns.feedback import Feedback

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 30.0
ERROR = "WaitedTooLong"


def overdue_text(minutes: float) -> str:
    """What the thread of a question that waited too long is told."""
    shown = f"{minutes:g} minute{'s' * (minutes != 1)}"
    return (f":warning: I couldn't start on this question within {shown}: too many questions were ahead of it. "
            "Nothing ran; please ask again in a little while.")


class Overdue:
    """Ends the questions that waited longer than the longest wait, and tells their threads."""

    def __init__(
        self, *, store: LoadStore, poster: Poster, max_wait_seconds: float, metrics: Metrics | None = None
    ) -> None:
        self._store = store
        self._poster = poster
        self._feedback = Feedback(poster)
        self._max_wait = max_wait_seconds
        self._metrics = metrics

    @property
    def interval(self) -> float:
        """Seconds between passes: :data:`INTERVAL_SECONDS`, or a quarter of a shorter longest wait."""
        return min(INTERVAL_SECONDS, self._max_wait / 4)

    async def run_once(self, now: float) -> list[TurnRecord]:
        """End and tell every turn queued since before ``now`` minus the longest wait; returns them."""
        ended = await self._store.expire_waiting(before=now - self._max_wait, now=now, error=ERROR)
        for turn in ended:
            logger.info("turn waited too long; thread told turn=%s thread=%s", turn.id, turn.key)
            await self._tell(turn)
            if self._metrics is not None:
                self._metrics.turn_finished("waited_too_long", seconds=now - turn.created_at)
        return ended

    async def _tell(self, turn: TurnRecord) -> None:
        key, text = turn.key, overdue_text(round(self._max_wait / 60.0, 1))
        if not turn.status_ts:
            await self._feedback.say(key, text)
        else:
            try:
                await self._poster.update(channel=key.channel, ts=turn.status_ts, text=text)
            except SlackError as exc:
                logger.warning("overdue note not delivered channel=%s error=%s", key.channel, exc.code)
        await self._feedback.swap(key.channel, turn.message_ts, FAILED)


def build_overdue(settings: Settings, *, store: LoadStore, poster: Poster, metrics: Metrics | None = None) -> Overdue:
    """The overdue job of ``DATASTORY_MAX_QUEUE_WAIT_MINUTES``."""
    return Overdue(store=store, poster=poster, max_wait_seconds=settings.max_queue_wait_minutes * 60.0,
                   metrics=metrics)
