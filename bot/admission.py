"""Fairness: whether a new question may join the queue, and what the asker is told when it may not.

Three caps on queued plus running turns, counted in the store so every replica sees the same numbers
(``DATASTORY_MAX_TURNS_PER_USER``, ``DATASTORY_MAX_TURNS_PER_CHANNEL`` and the global bound
``DATASTORY_MAX_QUEUED_TURNS``). One person's flood cannot hold every slot: past their cap their questions are
refused, and the next person's question is admitted at once. A refusal says why and, for a full queue, when to try
again (an estimate from the turns that finished in the last hour). The asker is told once per
:data:`TELL_EVERY_SECONDS` (the note says so), so a flood does not become a flood of notes.

:meth:`Admission.holding` serialises one person's admissions in this process, so the check and the insert that
follows it cannot interleave (200 messages sent at once admit exactly the cap). Across replicas the count is read
again by each, so a flood split over ``R`` replicas can overshoot a cap by at most ``R - 1``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bot.clock import Clock
from bot.config import Settings
from bot.store.base import Pending, Store

TELL_EVERY_SECONDS = 60.0
"""A person refused for load is told at most this often."""
TYPICAL_WINDOW_SECONDS = 3600.0
DEFAULT_TURN_SECONDS = 60.0
"""The duration assumed for a turn when none finished in the last hour."""


@dataclass(frozen=True, slots=True)
class Caps:
    """The fairness settings."""

    per_user: int
    per_channel: int
    total: int
    concurrent: int
    """Turns that run at once (``DATASTORY_MAX_CONCURRENT_TURNS``): how fast the queue drains."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a question was not admitted; ``text`` is None when the asker was told moments ago."""

    reason: str
    text: str | None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


class Admission:
    """Applies the caps to one question at a time per person."""

    def __init__(self, *, store: Store, clock: Clock, caps: Caps) -> None:
        self._store = store
        self._clock = clock
        self._caps = caps
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}
        self._told: dict[tuple[str, str], float] = {}

    @asynccontextmanager
    async def holding(self, team: str, user: str) -> AsyncIterator[None]:
        """One admission of ``user`` at a time in this process (check, then insert)."""
        key = (team, user)
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def refusal(self, *, team: str, user: str, channel: str) -> Refusal | None:
        """None when the question may be queued; otherwise why not and what to tell the asker."""
        pending = await self._store.pending_turns(team=team, user=user, channel=channel)
        reason = self._over(pending)
        if reason is None:
            return None
        now = self._clock.now()
        self._told = {k: t for k, t in self._told.items() if now - t < TELL_EVERY_SECONDS}
        if (team, user) in self._told:
            return Refusal(reason=reason, text=None)
        self._told[(team, user)] = now
        return Refusal(reason=reason, text=await self._text(reason, pending))

    def _over(self, pending: Pending) -> str | None:
        if pending.user >= self._caps.per_user:
            return "user"
        if pending.channel >= self._caps.per_channel:
            return "channel"
        if pending.total >= self._caps.total:
            return "total"
        return None

    async def _text(self, reason: str, pending: Pending) -> str:
        quiet = " (I won't repeat this for a minute.)"
        if reason == "user":
            return (f":hourglass: You already have {_plural(pending.user, 'question')} waiting or running, the most "
                    "one person can have at once, so I'm not taking this one. Ask again when one of them is "
                    f"answered.{quiet}")
        minutes = await self.minutes_to_wait(pending.channel if reason == "channel" else pending.total)
        if reason == "channel":
            return (f":hourglass: This channel already has {_plural(pending.channel, 'question')} waiting or "
                    f"running, the most it can have at once, so I'm not taking this one. Please try again in about "
                    f"{_plural(minutes, 'minute')}.{quiet}")
        return (f":hourglass: I'm busy: {_plural(pending.total, 'question')} are ahead of yours, so I'm not taking "
                f"it now. Please try again in about {_plural(minutes, 'minute')}.{quiet}")

    async def minutes_to_wait(self, ahead: int) -> int:
        """Whole minutes until ``ahead`` queued turns drain at the configured concurrency (at least one)."""
        now = self._clock.now()
        typical = await self._store.typical_turn_seconds(since=now - TYPICAL_WINDOW_SECONDS) or DEFAULT_TURN_SECONDS
        return max(1, math.ceil(ahead / self._caps.concurrent * typical / 60.0))


def build_admission(settings: Settings, *, store: Store, clock: Clock) -> Admission:
    """The admission of the fairness settings."""
    return Admission(store=store, clock=clock, caps=Caps(
        per_user=settings.max_turns_per_user, per_channel=settings.max_turns_per_channel,
        total=settings.max_queued_turns, concurrent=settings.max_concurrent_turns,
    ))
