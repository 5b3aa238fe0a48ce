"""The first feedback on an accepted turn: the "working" reaction and the status reply, under the greeting's hold.

The status reply is posted with its ledger tag (:class:`bot.poster.PartTag`) and fenced by the hold
(:meth:`bot.turns.queue.Lease.fence`): a greeter starved past its hold posts nothing once another replica runs the
turn. The caller records the reply in the ledger (with the claim that hands the turn to a run, or alone).
"""

from __future__ import annotations

import asyncio
import logging

from bot.formatting import names_list
from bot.poster import PartTag, Poster, SlackError
from bot.store.base import TurnRecord
from bot.store.queue import STATUS_PART
from bot.turns.feedback import WORKING, Feedback, StatusMessage
from bot.turns.queue import Lease

logger = logging.getLogger("bot.turns")


async def greet(turn: TurnRecord, files: list[str], *, poster: Poster, feedback: Feedback, reacted: bool,
                hold: Lease) -> StatusMessage | None:
    """React (unless ``reacted``) and post the status reply at once; None when Slack refused the reply."""
    key = turn.key
    first = (f":hourglass_flowing_sand: Reading {names_list(files)}…" if files
             else ":hourglass_flowing_sand: Working on it…")

    async def status() -> str | None:
        try:
            await hold.fence()  # no status reply once another replica holds the turn
            return await poster.post(channel=key.channel, thread_ts=key.thread_ts, text=first,
                                     tag=PartTag(turn=turn.id, part=STATUS_PART))
        except SlackError as exc:
            logger.warning("status update failed channel=%s error=%s", key.channel, exc.code)
            return None

    if reacted:
        ts = await status()
    else:
        _, ts = await asyncio.gather(feedback.react(key.channel, turn.message_ts, WORKING), status())
    return None if ts is None else StatusMessage(poster=poster, channel=key.channel, thread_ts=key.thread_ts, ts=ts)
