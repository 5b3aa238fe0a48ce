"""The leader of the periodic jobs, elected through the store (SQLite and a real PostgreSQL): one replica runs the
jobs, once per interval; when it stops or dies another takes over within one lease."""

from __future__ import annotations

import asyncio
import itertools
import time

from bot.clock import SystemClock
from bot.jobs.leader import Leader, Periodic
from bot.store import SqlStore

LEASE = 1.5
INTERVAL = 1.0


async def open_store(url: str) -> SqlStore:
    store = SqlStore(url=url)
    await store.open()
    return store


def replica(store: SqlStore, name: str, ticks: list[tuple[str, float]]) -> Leader:
    async def sweep(now: float) -> None:
        ticks.append((name, time.monotonic()))

    return Leader(store=store, clock=SystemClock(), owner=name, lease_seconds=LEASE,
                  jobs=[Periodic("sweeper", sweep, INTERVAL)])


async def test_one_leader_runs_the_jobs_once_per_interval_and_a_stopped_one_hands_over(db_url: str) -> None:
    stores = [await open_store(db_url) for _ in range(3)]
    ticks: list[tuple[str, float]] = []
    leaders = [replica(s, f"r{i}", ticks) for i, s in enumerate(stores)]
    tasks = [asyncio.create_task(leader.run_forever()) for leader in leaders]
    try:
        await asyncio.sleep(2.5)
        assert sum(leader.leading for leader in leaders) == 1
        [first] = [leader for leader in leaders if leader.leading]
        assert ticks and ticks[-1][0] == first.owner
        tasks[leaders.index(first)].cancel()  # a graceful stop gives the lease up
        stopped = time.monotonic()
        await asyncio.sleep(3.0)
        others = [leader for leader in leaders if leader.leading]
        assert len(others) == 1 and others[0] is not first
        later = [at for name, at in ticks if name == others[0].owner]
        assert later and later[0] - stopped < LEASE / 3 + INTERVAL + 0.2  # within one interval after the handover
        gaps = [b - a for (_, a), (_, b) in itertools.pairwise(ticks)]
        assert all(gap > INTERVAL * 0.85 for gap in gaps), gaps  # one pass per interval, across the handover
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for s in stores:
            await s.close()


async def test_a_leader_that_dies_is_replaced_within_one_lease(db_url: str) -> None:
    dying, other = await open_store(db_url), await open_store(db_url)
    ticks: list[tuple[str, float]] = []
    a, b = replica(dying, "a", ticks), replica(other, "b", ticks)
    assert await a.campaign() and not await b.campaign()
    await dying.close()  # its database connection is gone: it cannot renew, nor give the lease up
    died = time.monotonic()
    assert not await a.campaign() and not a.leading  # it stops its jobs at once
    while not await b.campaign():
        assert time.monotonic() - died < LEASE + 0.5
        await asyncio.sleep(LEASE / 6)
    assert time.monotonic() - died <= LEASE + 0.3
    await asyncio.sleep(0.1)
    assert [name for name, _ in ticks][-1] == "b"
    task = asyncio.create_task(b.run_forever())
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await other.close()


class StarvedClock(SystemClock):
    """The system clock, seen by a process that is starved for ``lag`` seconds at each look (under heavy load)."""

    def __init__(self, lag: float) -> None:
        self.lag = 0.0
        self._step = lag

    def now(self) -> float:
        self.lag += self._step
        return time.time() + self.lag


async def test_a_leader_whose_store_answers_come_late_runs_no_pass(db_url: str) -> None:
    store = await open_store(db_url)
    ticks: list[tuple[str, float]] = []

    async def sweep(now: float) -> None:
        ticks.append(("starved", now))

    leader = Leader(store=store, clock=StarvedClock(lag=INTERVAL * 0.2), owner="starved", lease_seconds=LEASE * 100,
                    jobs=[Periodic("sweeper", sweep, INTERVAL)])
    task = asyncio.create_task(leader.run_forever())
    try:
        await asyncio.sleep(2.5)
        assert leader.leading and ticks == []  # elected, but each pass's checks returned too late to sweep
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
