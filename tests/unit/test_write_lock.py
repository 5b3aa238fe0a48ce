"""The SQLite writers' lock: arrival order, urgent writers first, a cancelled waiter never keeps the lock."""

from __future__ import annotations

import asyncio

from bot.store.write_lock import WriteLock


async def test_waiters_get_the_lock_in_order_urgent_ones_first() -> None:
    lock = WriteLock()
    order: list[str] = []

    async def writer(name: str, *, urgent: bool = False) -> None:
        async with lock.held(urgent=urgent):
            order.append(name)
            await asyncio.sleep(0)

    await lock.acquire()  # a transaction in progress
    tasks = [asyncio.create_task(writer("a")), asyncio.create_task(writer("b")),
             asyncio.create_task(writer("ack1", urgent=True)), asyncio.create_task(writer("c")),
             asyncio.create_task(writer("ack2", urgent=True))]
    await asyncio.sleep(0.01)
    assert order == []
    lock.release()
    await asyncio.gather(*tasks)
    assert order == ["ack1", "ack2", "a", "b", "c"]
    assert not lock.locked


async def test_a_cancelled_waiter_hands_the_lock_on() -> None:
    lock = WriteLock()
    await lock.acquire()
    waiting = asyncio.create_task(lock.acquire())
    after = asyncio.create_task(lock.acquire(urgent=True))
    await asyncio.sleep(0.01)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    lock.release()  # to the urgent waiter; the cancelled one is gone
    await asyncio.wait_for(after, 1)
    assert lock.locked
    lock.release()
    assert not lock.locked


async def test_a_waiter_cancelled_as_it_is_handed_the_lock_releases_it() -> None:
    lock = WriteLock()
    await lock.acquire()
    first = asyncio.create_task(lock.acquire())
    second = asyncio.create_task(lock.acquire())
    await asyncio.sleep(0.01)
    lock.release()  # handed to "first"...
    first.cancel()  # ...which is cancelled before it runs
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, 1)  # so "second" has it
    lock.release()
    assert not lock.locked
