"""The leader: the one replica that runs the periodic jobs (sweeper, overdue questions, retention, digests).

Replicas elect it through the database, with a named lease (:class:`bot.store.base.LeaseStore`): every replica
tries to take or renew the ``leader`` lease every third of ``DATASTORY_LEASE_SECONDS``; the one that holds it runs
the jobs, the others wait. A leader that stops gives the lease up (another replica takes it within a third of the
lease); a leader that dies stops renewing, and another replica takes over when the lease expires, within one lease.
A replica that cannot renew (the database is away, another replica took the lease) stops its jobs at once.

Each pass of a slotted job (the sweeper) also claims that job's slot, a lease ``job:NAME`` held for most of the
job's interval by that pass alone, so a leader that changes hands mid-interval (a rolling restart) does not run it
twice in one interval: one sweep per interval, whoever leads. Such a pass is fenced like a turn's posts
(:meth:`bot.turns.queue.Lease.fence`): it checks that this replica still leads and runs only when the store
answered within :data:`FENCE_SHARE` of the interval, so a leader starved past its lease (under heavy load) does not
sweep next to the replica that took over. The other jobs run their first pass as soon as a
replica leads: their passes are safe to repeat (digest runs are claimed in the store; retention and the longest
wait end only what is due).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.clock import Clock
from bot.jobs.periodic import run_periodically
from bot.metrics import Metrics
from bot.store.base import LeaseStore

logger = logging.getLogger(__name__)

LEADER = "leader"
SLOT_SHARE = 0.9
"""Share of a job's interval its slot is held: the next pass (one interval later) finds it free."""
FENCE_SHARE = 0.1
"""A slotted pass runs only when its checks in the store returned within this share of the job's interval."""


@dataclass(frozen=True, slots=True)
class Periodic:
    """A job the leader runs every ``interval`` seconds."""

    name: str
    tick: Callable[[float], Awaitable[object]]
    interval: float
    slotted: bool = True
    """Claim the job's slot for each pass; a job whose passes are safe to repeat (digests claim each run in the
    store) runs its first pass as soon as a replica leads."""


class Leader:
    """Takes part in the election and runs the jobs while elected (see the module docstring)."""

    def __init__(self, *, store: LeaseStore, clock: Clock, owner: str, lease_seconds: float,
                 jobs: list[Periodic], metrics: Metrics | None = None) -> None:
        self._store = store
        self._clock = clock
        self.owner = owner
        self._lease = lease_seconds
        self._jobs = jobs
        self._metrics = metrics or Metrics()
        self._tasks: list[asyncio.Task[None]] = []
        self._passes = itertools.count(1)

    @property
    def leading(self) -> bool:
        """Whether this replica runs the jobs now."""
        return bool(self._tasks)

    async def run_forever(self) -> None:
        """Campaign every third of the lease until cancelled; then stop the jobs and give the lease up."""
        try:
            while True:
                await self.campaign()
                await asyncio.sleep(self._lease / 3)
        finally:
            await self._stop_jobs()
            self._metrics.leader(False)
            try:
                await asyncio.shield(self._store.release_lease(LEADER, owner=self.owner))
            except Exception as exc:  # the lease then simply expires
                logger.warning("leader lease not released error=%s", type(exc).__name__)

    async def campaign(self) -> bool:
        """Take or renew the leader lease once; start or stop the jobs to match. Returns whether leading."""
        try:
            leading = await self._store.acquire_lease(LEADER, owner=self.owner, now=self._clock.now(),
                                                      seconds=self._lease)
        except Exception as exc:
            logger.warning("leader lease not renewed error=%s", type(exc).__name__)
            leading = False
        if leading and not self._tasks:
            logger.info("elected leader; running the periodic jobs owner=%s", self.owner)
            self._tasks = [asyncio.create_task(run_periodically(self._slotted(job), interval=job.interval,
                                                                clock=self._clock, name=job.name), name=job.name)
                           for job in self._jobs]
        elif not leading and self._tasks:
            logger.warning("no longer the leader; periodic jobs stopped owner=%s", self.owner)
            await self._stop_jobs()
        self._metrics.leader(leading)
        return leading

    async def _stop_jobs(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _slotted(self, job: Periodic) -> Callable[[float], Awaitable[object]]:
        if not job.slotted:
            return job.tick

        async def tick(now: float) -> object:
            slot = f"{self.owner}#{next(self._passes)}"
            asked = self._clock.now()
            if not await self._store.acquire_lease(LEADER, owner=self.owner, now=asked, seconds=self._lease):
                logger.info("no longer the leader; pass skipped job=%s", job.name)
                return None
            if not await self._store.acquire_lease(f"job:{job.name}", owner=slot, now=asked,
                                                   seconds=job.interval * SLOT_SHARE):
                logger.debug("job ran this interval already job=%s", job.name)
                return None
            if self._clock.now() - asked > job.interval * FENCE_SHARE:
                logger.warning("pass skipped: the store answered too late to run it in its slot job=%s", job.name)
                return None
            return await job.tick(now)

        return tick
