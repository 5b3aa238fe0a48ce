"""The durable queue, seen from one replica: claiming runnable turns from the store and holding their leases.

The accepted turns are the queue (:class:`bot.store.base.TurnQueue`). :meth:`Dispatcher.pump` claims runnable
turns while this replica has a free slot and starts each in a tracked task; it runs when a turn is accepted here,
and when one of this replica's turns ends and every :data:`POLL_SECONDS` (work another replica finished or gave
up) if the queue's depth, read first, shows a turn nobody runs (a claim is a write transaction; the read is not).
A claimed turn runs under a :class:`Lease` renewed every third of ``DATASTORY_LEASE_SECONDS``; a renewal that
fails (the lease expired and another replica took the turn) stops the work at once. A replica that dies stops
renewing, and another replica claims the turn when the lease expires.

A renewal alone cannot keep two replicas from posting the same part: the background renewer of a starved process
(under heavy load) may run too late to notice that its lease expired and another replica took the turn over. So
every visible post of a turn (a message, the sharing of uploaded files, a reaction) is **fenced**
(:meth:`Lease.fence`): just before it, the lease is renewed in the store by a write conditional on this replica
still owning it, and the post goes ahead only when at least :data:`FENCE_MARGIN` of the lease period is left after
that write returned. Another replica can only claim the turn once the lease expired, so it starts after every post
this replica made (unless a request takes longer than that margin to reach Slack). The same holds without a round
trip while the expiry that this replica's own last claim or renewal wrote (computed from the time taken before that
write) is still at least that margin away: a fence then checks the clock only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable, Coroutine
from dataclasses import asdict, replace
from typing import Any

from bot.clock import Clock
from bot.metrics import Metrics
from bot.store.base import TurnOutcomeRecord, TurnQueue, TurnRecord, TurnStatus
from bot.store.queue import STATUS_PART
from bot.tasks import TaskTracker, TrackerClosed
from bot.turns.slots import Slots

logger = logging.getLogger("bot.turns")

POLL_SECONDS = 1.0
"""How often an idle replica looks for turns it was not told about."""

FENCE_MARGIN = 0.5
"""The share of the lease period that must be left after a fence's renewal for the post to go ahead."""
FENCE_TRIES = 3
"""Renewals a fence tries while each returns too late (a slow database) before it gives the turn up."""

Work = Callable[[TurnRecord, "Lease"], Coroutine[Any, Any, None]]


def replica_id() -> str:
    """This process's name in leases: host, pid and a random suffix (a restarted pid is a new owner)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class Lease:
    """This replica's hold on one turn, renewed in the background while the turn's task works."""

    def __init__(self, *, store: TurnQueue, clock: Clock, turn_id: str, owner: str, seconds: float,
                 metrics: Metrics, handed: dict[str, str] | None = None, attempt: int | None = None,
                 expires_at: float | None = None) -> None:
        self._store = store
        self._expires_at = expires_at
        """The lease's expiry as this replica's last claim or renewal wrote it (None: not known here)."""
        self.handed = handed
        """The turn's ledger as the hold handed over in the claim had it (the parts its greeting recorded), so
        the run need not read it; None for a turn claimed from the queue."""
        self._clock = clock
        self.turn_id = turn_id
        self.owner = owner
        self.attempt = attempt
        """The claim's attempt number: the lease is this run's, not a later run's of the same replica."""
        self._seconds = seconds
        self._metrics = metrics
        self.lost = False
        """The lease could not be renewed: another replica may be running the turn; stop, post nothing."""
        self._renewer: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[Any] | None = None
        """The task working on the turn, cancelled when the lease is lost."""

    @property
    def seconds(self) -> float:
        """The lease period."""
        return self._seconds

    def keep(self) -> None:
        """Start renewing; on a lost lease the calling task is cancelled."""
        self._worker = asyncio.current_task()
        self._renewer = asyncio.create_task(self._renew(self._worker), name=f"lease-{self.turn_id}")

    async def stop(self) -> None:
        """Stop renewing (the turn ended or was given back)."""
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
            self._renewer = None

    async def fence(self) -> None:
        """Make sure this replica holds the turn, with margin, right before a visible post (see the module
        docstring); otherwise mark the lease lost and cancel the calling task (nothing more is posted)."""
        left = None if self._expires_at is None else self._expires_at - self._clock.now()
        if not self.lost and left is not None and left >= self._seconds * FENCE_MARGIN:
            return  # written by our own claim or renewal: nobody can claim the turn before it
        for _ in range(FENCE_TRIES):
            asked = self._clock.now()
            try:
                kept = await self._store.renew_turn(self.turn_id, owner=self.owner, now=asked,
                                                    lease_seconds=self._seconds, attempt=self.attempt)
            except Exception as exc:  # fail closed: without the store's word nothing is posted
                logger.warning("lease fence failed turn=%s error=%s", self.turn_id, type(exc).__name__)
                kept = False
            if not kept:
                break
            self._expires_at = asked + self._seconds
            if asked + self._seconds - self._clock.now() >= self._seconds * FENCE_MARGIN:
                return
            logger.warning("lease fence renewed too late; trying again turn=%s", self.turn_id)
        self._lose(self._worker)
        if asyncio.current_task() is self._worker:
            await asyncio.sleep(0)  # the cancel lands here
        raise asyncio.CancelledError("lease lost")  # in a helper task of the turn (a stream's)

    def _lose(self, worker: asyncio.Task[Any] | None) -> None:
        if not self.lost:
            self.lost = True
            self._metrics.lease_lost()
            logger.warning("lease lost; another replica continues the turn turn=%s", self.turn_id)
        if worker is not None:
            worker.cancel("lease lost")

    async def _renew(self, worker: asyncio.Task[Any] | None) -> None:
        while True:
            await asyncio.sleep(self._seconds / 3)
            asked = self._clock.now()
            try:
                kept = await self._store.renew_turn(self.turn_id, owner=self.owner, now=asked,
                                                    lease_seconds=self._seconds, attempt=self.attempt)
            except Exception as exc:  # the database is away: keep working, try again; the lease may still hold
                logger.warning("lease renewal failed turn=%s error=%s", self.turn_id, type(exc).__name__)
                continue
            if not kept:
                self._lose(worker)
                return
            self._expires_at = asked + self._seconds


class Dispatcher:
    """Claims runnable turns for this replica while it has free slots (see the module docstring)."""

    def __init__(self, *, store: TurnQueue, clock: Clock, slots: Slots, tracker: TaskTracker, metrics: Metrics,
                 owner: str, lease_seconds: float, work: Work) -> None:
        self._store = store
        self._clock = clock
        self._slots = slots
        self._tracker = tracker
        self._metrics = metrics
        self.owner = owner
        self.lease_seconds = lease_seconds
        self._work = work
        self._pumping = asyncio.Lock()
        self._watchers: dict[str, asyncio.Event] = {}
        """Turn id → what :meth:`watch` handed out, set when a run of the turn here ends."""
        self._running: set[str] = set()
        """The turns running here."""
        self._ended: dict[str, TurnRecord] = {}
        """Turn id → its record as a run here has just ended it in the store (for a watcher of the turn)."""
        self.closed = False
        """Set when the replica stops taking work (:meth:`close`): no more claims; running turns go on."""

    def close(self) -> None:
        """Claim nothing more (the replica is shutting down: queued turns are left to the other replicas)."""
        self.closed = True

    def watch(self, turn_id: str) -> asyncio.Event:
        """An event set as soon as a run of ``turn_id`` on this replica ends (finished, failed or given back),
        after the store says so: a caller waiting for the turn is woken at once instead of polling. Watch before
        reading the turn's state, so an end in between is not missed; another replica's run sets nothing."""
        event = self._watchers.get(turn_id)
        if event is None or event.is_set():
            event = self._watchers[turn_id] = asyncio.Event()
        return event

    def unwatch(self, turn_id: str) -> None:
        """Nobody waits for the turn here any more."""
        self._watchers.pop(turn_id, None)
        self._ended.pop(turn_id, None)

    def ended(self, turn: TurnRecord, status: TurnStatus, now: float, outcome: TurnOutcomeRecord) -> None:
        """The run here has just ended the turn in the store (while it held the lease): a watcher of the turn
        gets its record as the store now has it from :meth:`outcome`, without reading it."""
        if turn.id in self._watchers:
            self._ended[turn.id] = replace(turn, status=status, finished_at=now, lease_owner=None,
                                           lease_expires_at=None, **(asdict(outcome) | {
                                               "cost_usd": outcome.cost_usd or 0.0}))

    def outcome(self, turn_id: str) -> TurnRecord | None:
        """The record of a turn whose run here ended it (:meth:`ended`), once; None otherwise."""
        return self._ended.pop(turn_id, None)

    def wake(self, turn_id: str) -> None:
        """Wake whoever watches the turn here (it was ended in the store by someone else than its run: a cancel)."""
        if (watcher := self._watchers.get(turn_id)) is not None:
            watcher.set()

    def runs(self, turn_id: str) -> bool:
        """Whether the turn is running here now (its end sets its watchers)."""
        return turn_id in self._running

    async def pump(self, *, first: str | None = None) -> int:
        """Claim runnable turns (``first`` before any other) while a slot is free, and start each; returns how
        many were started."""
        started = 0
        async with self._pumping:
            while not (self.closed or self._tracker.closing) and not self._slots.full():
                try:
                    turn = await self._store.claim_turn(owner=self.owner, now=self._clock.now(),
                                                        lease_seconds=self.lease_seconds, turn_id=first)
                    if turn is None and first is not None:
                        first = None
                        turn = await self._store.claim_turn(owner=self.owner, now=self._clock.now(),
                                                            lease_seconds=self.lease_seconds)
                except Exception as exc:
                    logger.warning("claiming a turn failed error=%s", type(exc).__name__)
                    break
                first = None
                if turn is None or not await self._launch(turn):
                    break
                started += 1
        return started

    async def take(self, turn_id: str, *, holder: str, status_ts: str) -> bool:
        """Claim ``turn_id`` alone while a slot is free, taking over the lease ``holder`` has on it (a greeting's
        hold: handed to the run in the claim's transaction, no release and claim in between), and start it; the
        claim records the status reply ``status_ts`` the holder posted, and a first attempt's run starts from that
        ledger (:attr:`Lease.handed`: nothing else was recorded while the hold was held). False when it was not
        claimed (no free slot, or not runnable): ``holder`` still holds it, and records the status reply itself."""
        async with self._pumping:
            if self.closed or self._tracker.closing or self._slots.full():
                return False
            try:
                turn = await self._store.claim_turn(owner=self.owner, now=self._clock.now(),
                                                    lease_seconds=self.lease_seconds, turn_id=turn_id, holder=holder,
                                                    status_ts=status_ts)
            except Exception as exc:
                logger.warning("claiming a turn failed error=%s", type(exc).__name__)
                return False
            if turn is None:
                return False
            # not started: it went back to the queue (the next pump or poll takes it)
            await self._launch(turn, handed={STATUS_PART: status_ts} if turn.attempts == 1 else None)
            return True

    async def _launch(self, turn: TurnRecord, *, handed: dict[str, str] | None = None) -> bool:
        """Start a claimed turn in a slot, under a renewed lease; False (the turn given back) when none is left."""
        if not self._slots.take_now():  # a batch run took the last slot meanwhile
            await self._store.release_turn(turn.id, owner=self.owner, refund=True)
            return False
        lease = Lease(store=self._store, clock=self._clock, turn_id=turn.id, owner=self.owner,
                      seconds=self.lease_seconds, metrics=self._metrics, handed=handed, attempt=turn.attempts,
                      expires_at=turn.lease_expires_at)
        try:
            self._tracker.spawn(self._run(turn, lease), name=f"turn-{turn.id}", group=turn.key.team)
        except TrackerClosed:
            self._slots.give()
            await self._store.release_turn(turn.id, owner=self.owner, refund=True)
            return False
        return True

    async def _run(self, turn: TurnRecord, lease: Lease) -> None:
        lease.keep()
        self._running.add(turn.id)
        try:
            await self._work(turn, lease)
        finally:
            self._running.discard(turn.id)
            await lease.stop()
            self._slots.give()
            if (watcher := self._watchers.pop(turn.id, None)) is not None:
                watcher.set()
        await self._next()

    async def _next(self) -> None:
        """After a run and at each poll: the queue depth (a read), then a claim only when some turn waits."""
        if await self._gauge() != 0 and await self.pump():
            await self._gauge()  # what the claims took

    async def _gauge(self) -> int | None:
        """Refresh the queue depth metric (after each turn, and at each poll); the depth, None when not read."""
        try:
            depth = await self._store.queue_depth(now=self._clock.now())
        except Exception as exc:
            logger.debug("queue depth not read error=%s", type(exc).__name__)
            return None
        self._metrics.queue_depth(depth)
        return depth

    async def poll_forever(self, interval: float = POLL_SECONDS) -> None:
        """Look for runnable turns every ``interval`` seconds until cancelled (the app's background job)."""
        while True:
            try:
                await self._next()
            except Exception as exc:  # pragma: no cover - pump and the gauge log their own failures
                logger.warning("queue poll failed error=%s", type(exc).__name__)
            await asyncio.sleep(interval)
