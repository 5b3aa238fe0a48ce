"""Stopping a thread's turn against the real store (SQLite, PostgreSQL): a turn analysing here is interrupted, a turn
running on another replica is asked through the store, and a turn whose analysis ended here (its answer or stop
note being posted and recorded, still ``running`` in the store for a moment) has nothing to stop."""

from __future__ import annotations

import asyncio

from bot.clock import SystemClock
from bot.store import SqlStore
from bot.store.base import NewTurn, ThreadKey
from bot.turns.stopping import Stopper, stop_lease

KEY = ThreadKey(team="T1", channel="C1", thread_ts="1700000000.000100")
LEASE = 30.0


async def test_a_turn_whose_analysis_ended_here_has_nothing_to_stop_one_elsewhere_is_asked(store: SqlStore) -> None:
    assert await store.submit_turn(NewTurn(id="t1", key=KEY, message_ts=KEY.thread_ts, user="U1", question="q",
                                           files=(), created_at=10.0), dedupe_keys=("k1",))
    clock = SystemClock()  # the watchers' sleeps (a third of the lease) outlast the test: nothing looks meanwhile
    turn = await store.claim_turn(owner="here", now=clock.now(), lease_seconds=LEASE)
    assert turn is not None and turn.status == "running"
    stopper = Stopper(store=store, clock=clock, lease_seconds=LEASE)

    async def analyse() -> None:
        async with stopper.analysing(turn):
            await asyncio.sleep(60)

    task = asyncio.create_task(analyse())
    await asyncio.sleep(0.01)
    assert await stopper.stop(KEY, by="U1")  # interrupted here
    assert task.cancelling() or task.cancelled() or not task.done()
    await asyncio.gather(task, return_exceptions=True)
    assert stopper.stopped_by("t1") == "U1"
    assert await stopper.stop(KEY, by="U2") is False  # ended here; the store still says running
    assert await store.lease_holder(stop_lease("t1"), now=clock.now()) is None  # nothing asked of another replica

    other = Stopper(store=store, clock=clock, lease_seconds=LEASE)  # another replica: it did not analyse it
    assert await other.stop(KEY, by="U3")
    assert await store.lease_holder(stop_lease("t1"), now=clock.now()) == "U3"
