"""What a person can do with a posted answer: see the code that ran for it, and say whether it helped.

The answer's buttons (:mod:`bot.turns.native`) carry the turn's id. "Show code" posts the Python that ran for
that turn (the store keeps it with the turn) into the thread as a snippet (``<turn>.py``, which Slack shows as
a Python snippet), once per turn per process; a turn without code, one of another thread, or one already shown
gets a short reply only the person who clicked sees. 👍 / 👎 keep each person's latest click per answer and
count the votes in ``/metrics`` (``datastory_feedback``: a changed vote moves from one count to the other).

The latest clicks are kept in memory for now: a table for them needs a schema migration (see the README).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.metrics import Metrics
from bot.poster import Poster, Upload
from bot.store.base import Store

logger = logging.getLogger(__name__)

CODE_FILE_BYTES = 1_000_000
"""Slack takes snippets up to 1 MB (reference §10.6)."""


@dataclass(frozen=True, slots=True)
class Clicked:
    """Where a button was clicked and by whom."""

    turn_id: str
    user: str
    channel: str


class Answers:
    """Show code and feedback for posted answers."""

    def __init__(self, *, store: Store, poster: Poster, metrics: Metrics) -> None:
        self._store = store
        self._poster = poster
        self._metrics = metrics
        self._shown: set[str] = set()
        self._votes: dict[tuple[str, str], str] = {}

    async def show_code(self, click: Clicked) -> str | None:
        """Post the turn's code in its thread as a snippet; returns the note for the person who clicked, or None
        when the code was posted."""
        turn = await self._store.get_turn(click.turn_id)
        if turn is None or turn.key.channel != click.channel:
            return "That answer is no longer kept (answers and their code are pruned after the retention period)."
        if not (turn.code or "").strip():
            return "No code ran for that answer."
        if click.turn_id in self._shown:
            return "The code of that answer is already in the thread."
        self._shown.add(click.turn_id)
        data = turn.code.encode()[-CODE_FILE_BYTES:] if turn.code else b""
        await self._poster.upload_files(channel=turn.key.channel, thread_ts=turn.key.thread_ts,
                                        files=[Upload(filename=f"{click.turn_id}.py", data=data,
                                                      title="The code that ran for this answer")])
        logger.info("code shown turn=%s channel=%s", click.turn_id, click.channel)
        return None

    def vote(self, click: Clicked, vote: str) -> str:
        """Keep ``vote`` (``good`` or ``bad``) as the person's latest on that answer; the thanks to show them."""
        previous = self._votes.get((click.turn_id, click.user))
        if previous != vote:
            self._votes[(click.turn_id, click.user)] = vote
            self._metrics.feedback(vote, previous=previous)
        logger.info("feedback turn=%s vote=%s changed=%s", click.turn_id, vote, previous not in (None, vote))
        return "Thanks, noted." if vote == "good" else "Thanks, noted. Ask a follow-up in the thread to refine it."
