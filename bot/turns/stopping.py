"""Stopping turns, on this replica or on another one.

A turn analyses on whichever replica claimed it; a stop (``stop`` in the thread, ``/datastory stop``, the Stop
button its status reply carries while it analyses (:func:`stop_blocks`), Slack's agent-session Stop) can arrive at
any replica. The replica that analyses the turn interrupts it at once: its task is
cancelled, which interrupts the local kernel's cell (the variables stay) or cancels the hosted background response
(:mod:`bot.analysts.responses`); the worker then tells the thread who stopped it.

A stop for a turn that runs elsewhere is recorded in the store as the named lease ``stop/<turn id>`` held by the
person who stopped it (:class:`bot.store.base.LeaseStore`: no new table; the request expires by itself). While a
turn analyses, its replica looks for that lease every third of ``DATASTORY_LEASE_SECONDS`` (the lease renewal's
pace) and stops the turn when it appears, so a stop reaches another replica within about a lease period. A second
stop of the same turn changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot.clock import Clock
from bot.store.base import Store, ThreadKey, TurnRecord
from bot.store.housekeeping import STOP_PREFIX

logger = logging.getLogger("bot.turns")


STOP_ACTION = "turn_stop"
"""``action_id`` of the Stop button on a turn's status reply while it analyses; its ``value`` is the turn's id."""

ANALYSED_KEPT = 1024
"""Turns whose analysis ended here that a replica remembers (far more than it delivers at once)."""
STATUS_TEXT_MAX = 3000
"""Characters a section block's text may have."""


def stop_blocks(text: str, turn_id: str) -> list[dict[str, object]]:
    """The status reply's blocks while its turn analyses: the status text and a Stop button."""
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text[:STATUS_TEXT_MAX]}},
            {"type": "actions", "elements": [{"type": "button", "action_id": STOP_ACTION, "value": turn_id,
                                              "text": {"type": "plain_text", "text": "Stop"}}]}]


def stop_lease(turn_id: str) -> str:
    """The name of the lease that asks the replica running ``turn_id`` to stop it."""
    return f"{STOP_PREFIX}{turn_id}"


class Stopper:
    """The turns analysing on this replica, and the stops asked for them here or on another replica."""

    def __init__(self, *, store: Store, clock: Clock, lease_seconds: float) -> None:
        self._store = store
        self._clock = clock
        self._interval = lease_seconds / 3
        self._hold = lease_seconds * 2
        """How long a stop request stays in the store: longer than the running replica takes to look."""
        self._analysing: dict[ThreadKey, tuple[TurnRecord, asyncio.Task[Any]]] = {}
        self._stops: dict[str, str] = {}
        """Turn id → who stopped it (the turns cancelled by a stop)."""
        self._analysed: dict[str, None] = {}
        """The latest turns whose analysis ended here (insertion order, at most :data:`ANALYSED_KEPT`): running
        in the store a little longer while their answer or stop note is posted and recorded, with nothing to stop."""

    @asynccontextmanager
    async def analysing(self, turn: TurnRecord) -> AsyncIterator[None]:
        """While the body runs, ``turn`` can be stopped from here or from another replica."""
        task = asyncio.current_task()
        assert task is not None
        self._analysing[turn.key] = (turn, task)
        self._analysed.pop(turn.id, None)
        watcher = asyncio.create_task(self._watch(turn, task), name=f"stop-watch-{turn.id}")
        try:
            yield
        finally:
            self._analysing.pop(turn.key, None)
            self._analysed[turn.id] = None
            while len(self._analysed) > ANALYSED_KEPT:
                del self._analysed[next(iter(self._analysed))]
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    def stopped_by(self, turn_id: str) -> str | None:
        """Who stopped the turn (once: the entry is taken), or None when it was not stopped."""
        return self._stops.pop(turn_id, None)

    async def stop(self, key: ThreadKey, *, by: str) -> bool:
        """Stop the thread's analysing turn, here or on the replica running it. False when nothing runs there."""
        if self._stop_here(key, by=by):
            return True
        running = [turn for turn in await self._store.list_turns(key)
                   if turn.status == "running" and turn.id not in self._analysed]
        for turn in running:
            await self._ask(turn, by=by)
        return bool(running)

    async def stop_in_channel(self, team: str, channel: str, *, by: str, everyone: bool) -> int:
        """``/datastory stop``: stop the channel's running turns (``by``'s own, or all for an admin), here and on
        the other replicas; returns how many were stopped."""
        here = [key for key, (turn, _) in self._analysing.items()
                if key.team == team and key.channel == channel and (everyone or turn.user == by)]
        count = sum(self._stop_here(key, by=by) for key in here)
        elsewhere = [turn for turn in await self._store.unfinished_turns()
                     if turn.status == "running" and turn.id not in self._analysed and turn.key.team == team
                     and turn.key.channel == channel and (everyone or turn.user == by) and turn.key not in here]
        for turn in elsewhere:
            await self._ask(turn, by=by)
        return count + len(elsewhere)

    def _stop_here(self, key: ThreadKey, *, by: str) -> bool:
        """Interrupt the thread's turn when it analyses on this replica; a turn already stopping is left alone."""
        entry = self._analysing.get(key)
        if entry is None:
            return False
        turn, task = entry
        if turn.id not in self._stops:
            self._stops[turn.id] = by
            task.cancel("stopped")
            logger.info("turn stopped turn=%s by=%s", turn.id, by)
        return True

    async def _ask(self, turn: TurnRecord, *, by: str) -> None:
        """Record a stop for a turn running on another replica (a stop already asked for stays as it is)."""
        asked = await self._store.acquire_lease(stop_lease(turn.id), owner=by, now=self._clock.now(),
                                                seconds=self._hold)
        logger.info("stop asked of the replica running the turn turn=%s by=%s new=%s", turn.id, by, asked)

    async def _watch(self, turn: TurnRecord, task: asyncio.Task[Any]) -> None:
        """Stop ``turn`` when a stop for it appears in the store (asked on another replica)."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                by = await self._store.lease_holder(stop_lease(turn.id), now=self._clock.now())
            except Exception as exc:  # the database is away: look again at the next tick
                logger.warning("stop check failed turn=%s error=%s", turn.id, type(exc).__name__)
                continue
            if by is not None:
                self._stop_here(turn.key, by=by)
                return
