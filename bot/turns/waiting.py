"""Why a turn that could not start at once waits, told in its status reply: earlier questions of its thread, or no
free slot.

A question's place in its thread is counted in the store (:meth:`bot.store.base.TurnQueue.turns_ahead`: the
unfinished turns asked before it, and the running one). Messages can be stored out of order (two quick replies
reach two replicas, or Slack delivers the later one first): a question stored before an earlier one was would keep
too small a number. So a waiting turn's greeting counts again after showing its place (until the number holds),
and then tells each later question of the thread that still waits its new place, under a hold on that turn (so
nobody starts it meanwhile, and its own greeting is not overwritten).
"""

from __future__ import annotations

import logging

from bot.clock import Clock
from bot.poster import Poster, SlackError
from bot.store.base import Store, TurnRecord
from bot.turns.feedback import StatusMessage
from bot.turns.slots import Slots

logger = logging.getLogger("bot.turns")

RECOUNTS = 3
"""Times a greeting counts its place again while the number changes."""


def queued_line(ahead: int) -> str:
    """The status line of a question that waits for ``ahead`` earlier ones of its thread."""
    return (f":hourglass: Queued behind {ahead} earlier question{'s' * (ahead > 1)} in this thread; "
            "I'll answer in order.")


async def tell_waiting(*, store: Store, poster: Poster, clock: Clock, slots: Slots, turn: TurnRecord,
                       reply: StatusMessage, owner: str, lease_seconds: float) -> None:
    """Show why ``turn`` waits, then correct the places of later questions of its thread (see the module
    docstring); ``owner`` holds those while their replies are updated."""
    shown = 0
    for _ in range(RECOUNTS):
        ahead = await store.turns_ahead(turn.id)
        if ahead == shown:
            break
        await reply.set(queued_line(ahead))
        shown = ahead
    if not shown and slots.full():
        await reply.set(f":hourglass: Waiting for a free slot: {slots.running} analyses are running.")
    for later in await store.list_turns(turn.key):
        if later.id == turn.id or later.status != "queued" or not later.status_ts \
                or (later.message_ts, later.created_at) <= (turn.message_ts, turn.created_at):
            continue
        if not await store.hold_turn(later.id, owner=owner, now=clock.now(), lease_seconds=lease_seconds):
            continue  # it started, or its greeting holds it (and counts its place after this turn was stored)
        try:
            text = queued_line(await store.turns_ahead(later.id))
            await poster.update(channel=later.key.channel, ts=later.status_ts, text=text)
        except SlackError as exc:
            logger.warning("queue place not updated turn=%s error=%s", later.id, exc.code)
        finally:
            await store.release_turn(later.id, owner=owner)
