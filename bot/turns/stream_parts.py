"""A streamed reply's messages in the turn's ledger: which are live, which part the next one is, the ones a run
started but did not record, and the ones a shorter rerun no longer needs.

Each streamed message is a ledger part ``stream:N`` (N only names it: the messages' order is their order in the
thread, their ``ts``). Before ``chat.startStream`` the turn records ``stream:N:start``
(:meth:`bot.turns.ledger.AnswerLedger.intend`): a replica may die between Slack opening the stream and the ledger
recording its ``ts``, and a resumed turn then adopts that message (:func:`adopt_started`) instead of opening a
second one. A message a resumed run does not need (its answer came out shorter) is deleted and recorded as
``stream:N:deleted``, so the thread shows exactly the final answer and no later run takes it over again.
"""

from __future__ import annotations

import logging
import re

from bot.poster import Poster
from bot.turns.ledger import INTENT_SUFFIX, STREAM_PART, AnswerLedger, ts_order

logger = logging.getLogger("bot.turns")

DELETED_SUFFIX = ":deleted"
_USED = re.compile(r"stream:(\d+)(?::deleted)?")


def part_name(n: int) -> str:
    """The ledger part of the streamed message ``n``."""
    return f"stream:{n}"


def live(posted: dict[str, str]) -> list[tuple[int, str]]:
    """``(N, ts)`` of each streamed message the ledger has and has not deleted, in thread order."""
    found = [(int(p.split(":")[1]), ts) for p, ts in posted.items()
             if STREAM_PART.fullmatch(p) and p + DELETED_SUFFIX not in posted]
    return sorted(found, key=lambda item: ts_order(item[1]))


def next_part(posted: dict[str, str], taken: list[int]) -> int:
    """A part number no streamed message of the turn has had (recorded, deleted or ``taken``; a number only
    started is free again: what Slack has of it was adopted before, :func:`adopt_started`)."""
    numbers = [int(m.group(1)) for p in posted if (m := _USED.fullmatch(p))]
    return max([*numbers, *taken], default=-1) + 1


def first_ts(posted: dict[str, str]) -> str | None:
    """The ``ts`` of the reply's first streamed message (files go after it), if any."""
    found = live(posted)
    return found[0][1] if found else None


async def adopt_started(ledger: AnswerLedger) -> int:
    """Record the streamed messages an earlier run started but did not record, when the thread shows them
    (:meth:`bot.turns.ledger.AnswerLedger.adopt`); how many were adopted."""
    adopted = 0
    for p in sorted(ledger.posted):
        part = p.removesuffix(INTENT_SUFFIX)
        if p.endswith(INTENT_SUFFIX) and STREAM_PART.fullmatch(part) and part not in ledger.posted:
            adopted += await ledger.adopt(part) is not None
    return adopted


async def delete_unneeded(poster: Poster, ledger: AnswerLedger, *, channel: str, parts: list[tuple[int, str]]
                          ) -> None:
    """Delete the streamed messages ``(N, ts)`` a rerun does not need, and record them gone."""
    for n, ts in parts:
        await poster.delete_message(channel=channel, ts=ts)
        await ledger.record(part_name(n) + DELETED_SUFFIX, ts)
        logger.info("streamed message no longer needed, deleted part=%s", part_name(n))
