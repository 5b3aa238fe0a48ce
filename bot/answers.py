"""What a person can do with a posted answer: see the code that ran for it, say whether it helped, remove it.

The answer's buttons (:mod:`bot.turns.native`) carry the turn's id. "Show code" posts the Python that ran for
that turn (the store keeps it with the turn) into the thread as a snippet (``<turn>.py``, which Slack shows as a
Python snippet), once per answer (the ledger's ``code`` part); a turn without code, one of another channel, or one
already shown gets a short reply only the person who clicked sees. 👍 / 👎 keep each person's latest vote per
answer in the store (``feedback``) and ``/metrics`` shows how many latest votes each side has
(``datastory_feedback_votes``, refreshed at each vote).

A 🗑️ (``wastebasket``) reaction on one of an answer's messages, by the person who asked or an admin, removes the
answer: every message the ledger recorded for it (narrative, charts, tables, angles), the files it uploaded to
Slack (charts, CSVs, the code snippet) and the files its code wrote in the container; the status line says who
removed it. Someone else's 🗑️ gets a note only they see; a second 🗑️ changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.access import Access
from bot.clock import Clock
from bot.metrics import Metrics
from bot.poster import Poster, SlackError, Upload
from bot.sandbox.base import SandboxBackend, SandboxError
from bot.slack_text import mention
from bot.store.base import Store
from bot.turns.ledger import PLAN, STREAM_PART, Plan

logger = logging.getLogger(__name__)

CODE_FILE_BYTES = 1_000_000
"""Slack takes snippets up to 1 MB (reference §10.6)."""
REMOVE_REACTIONS = frozenset({"wastebasket"})
NOT_YOURS = "Only the person who asked, or an admin, can remove this answer."
REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class Clicked:
    """Where a button was clicked and by whom."""

    turn_id: str
    user: str
    channel: str


class Answers:
    """Show code, feedback and removal of posted answers."""

    def __init__(self, *, store: Store, poster: Poster, metrics: Metrics, sandbox: SandboxBackend, access: Access,
                 clock: Clock) -> None:
        self._store = store
        self._poster = poster
        self._metrics = metrics
        self._sandbox = sandbox
        self._access = access
        self._clock = clock

    async def show_code(self, click: Clicked) -> str | None:
        """Post the turn's code in its thread as a snippet; returns the note for the person who clicked, or None
        when the code was posted."""
        turn = await self._store.get_turn(click.turn_id)
        if turn is None or turn.key.channel != click.channel:
            return "That answer is no longer kept (answers and their code are pruned after the retention period)."
        if not (turn.code or "").strip():
            return "No code ran for that answer."
        if not await self._store.record_part(click.turn_id, "code", click.user, now=self._clock.now()):
            return "The code of that answer is already in the thread."
        data = (turn.code or "").encode()[-CODE_FILE_BYTES:]
        ids = await self._poster.upload_files(channel=turn.key.channel, thread_ts=turn.key.thread_ts,
                                              files=[Upload(filename=f"{click.turn_id}.py", data=data,
                                                            title="The code that ran for this answer")])
        if ids:
            await self._store.record_part(click.turn_id, "code:ids", ",".join(ids), now=self._clock.now())
        logger.info("code shown turn=%s channel=%s", click.turn_id, click.channel)
        return None

    async def vote(self, click: Clicked, vote: str) -> str:
        """Keep ``vote`` (``good`` or ``bad``) as the person's latest on that answer; the thanks to show them."""
        previous = await self._store.set_vote(click.turn_id, click.user, vote, now=self._clock.now())
        if previous != vote:
            self._metrics.feedback_votes(await self._store.votes())
        logger.info("feedback turn=%s vote=%s changed=%s", click.turn_id, vote, previous not in (None, vote))
        return "Thanks, noted." if vote == "good" else "Thanks, noted. Ask a follow-up in the thread to refine it."

    async def remove(self, *, channel: str, ts: str, user: str) -> bool:
        """A 🗑️ by ``user`` on the message ``ts``: remove its answer when they may; True when it was removed now."""
        turn_id = await self._store.turn_of_part(ts)
        turn = await self._store.get_turn(turn_id) if turn_id else None
        if turn is None or turn.key.channel != channel:
            return False  # not one of the bot's answers (a status line, a help message...)
        parts = await self._store.posted_parts(turn.id)
        if REMOVED in parts:
            return False
        if user != turn.user and not await self._access.is_admin(user):
            await self._tell(channel, user, turn.key.thread_ts, NOT_YOURS)
            return False
        if not await self._store.record_part(turn.id, REMOVED, user, now=self._clock.now()):
            return False  # another 🗑️ got there first
        for part, ref in parts.items():
            if part.startswith(("answer:", "native:")) or STREAM_PART.fullmatch(part):
                await self._poster.delete_message(channel=channel, ts=ref)
            elif part.endswith(":ids"):
                for file_id in ref.split(","):
                    await self._poster.delete_file(file_id)
        await self._delete_outputs(parts.get(PLAN))
        if status := parts.get("status"):
            try:
                await self._poster.update(channel=channel, ts=status,
                                          text=f":wastebasket: This answer was removed by {mention(user)}.")
            except SlackError as exc:
                logger.warning("status not updated after removal turn=%s error=%s", turn.id, exc.code)
        logger.info("answer removed turn=%s by=%s", turn.id, user)
        return True

    async def _delete_outputs(self, plan_text: str | None) -> None:
        """The files the turn's code wrote, from its container (gone with a swept container already)."""
        if not plan_text:
            return
        plan = Plan.from_json(plan_text)
        for file_id, _name in plan.files:
            try:
                await self._sandbox.delete_file(plan.container_id, file_id)
            except SandboxError as exc:
                logger.info("output not deleted from the container error=%s", type(exc).__name__)
                return

    async def _tell(self, channel: str, user: str, thread_ts: str, text: str) -> None:
        try:
            await self._poster.post_ephemeral(channel=channel, user=user, thread_ts=thread_ts, text=text)
        except SlackError as exc:
            logger.warning("note not posted channel=%s error=%s", channel, exc.code)
