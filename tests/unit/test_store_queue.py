"""The durable queue, the ledger and named leases of the SQL store, on SQLite and on a real PostgreSQL.

Claims: message order within a thread, one running turn per thread, leases that expire and are taken over, the
attempt counter, races between replicas (several stores on one database claiming at once).
"""

from __future__ import annotations

import asyncio

from bot.store import SqlStore
from bot.store.base import NewTurn, ThreadKey, TurnOutcomeRecord

KEY = ThreadKey(team="T1", channel="C1", thread_ts="1700000000.000100")
OTHER = ThreadKey(team="T1", channel="C2", thread_ts="1700000001.000200")
LEASE = 30.0


def turn(turn_id: str, *, key: ThreadKey = KEY, ts: str = "1700000000.000100", at: float = 10.0) -> NewTurn:
    return NewTurn(id=turn_id, key=key, message_ts=ts, user="U1", question=f"q {turn_id}", files=(), created_at=at)


async def submit(store: SqlStore, *turns: NewTurn) -> None:
    for t in turns:
        assert await store.submit_turn(t, dedupe_keys=(f"k-{t.id}",))


async def claim(store: SqlStore, owner: str = "r1", *, now: float = 100.0, turn_id: str | None = None) -> str | None:
    record = await store.claim_turn(owner=owner, now=now, lease_seconds=LEASE, turn_id=turn_id)
    return None if record is None else record.id


async def test_a_thread_runs_one_turn_at_a_time_in_message_order(store: SqlStore) -> None:
    # "b" arrived first but its message is later: "a" goes first; the other thread runs beside them
    await submit(store, turn("b", ts="1700000000.000300", at=10.0), turn("a", ts="1700000000.000200", at=11.0),
                 turn("x", key=OTHER, at=12.0))
    assert await claim(store) == "a"
    assert await claim(store, "r2") == "x"
    assert await claim(store, "r3") is None  # "b" waits for "a"
    assert await store.turns_ahead("b") == 1
    assert await store.finish_turn("a", status="done", now=101.0, owner="r1")
    assert await claim(store, "r3") == "b"
    record = await store.get_turn("b")
    assert record is not None and (record.status, record.lease_owner, record.attempts) == ("running", "r3", 1)


async def test_a_late_message_that_sorts_first_waits_for_the_running_turn(store: SqlStore) -> None:
    await submit(store, turn("late", ts="1700000000.000500"))
    assert await claim(store) == "late"
    await submit(store, turn("early", ts="1700000000.000400", at=20.0))
    assert await claim(store, "r2") is None  # the thread is busy whatever the order
    assert await store.thread_busy(KEY, before_ts="1700000000.000450", now=100.0)


async def test_an_expired_lease_is_taken_over_and_counts_an_attempt(store: SqlStore) -> None:
    await submit(store, turn("t"))
    assert await claim(store, "dead", now=100.0) == "t"
    assert await claim(store, "r2", now=100.0 + LEASE - 1) is None  # still leased
    assert await store.renew_turn("t", owner="dead", now=110.0, lease_seconds=LEASE)  # renewed: until 140
    assert await claim(store, "r2", now=135.0) is None
    assert await claim(store, "r2", now=141.0) == "t"  # the holder died
    record = await store.get_turn("t")
    assert record is not None and record.attempts == 2 and record.lease_owner == "r2"
    assert not await store.renew_turn("t", owner="dead", now=142.0, lease_seconds=LEASE)  # it lost the lease
    assert not await store.finish_turn("t", status="done", now=143.0, owner="dead")  # and cannot finish it
    assert await store.finish_turn("t", status="done", now=143.0, owner="r2", outcome=TurnOutcomeRecord(answer="a"))
    record = await store.get_turn("t")
    assert record is not None and (record.status, record.lease_owner, record.answer) == ("done", None, "a")


async def test_a_run_whose_lease_expired_cannot_renew_the_next_run_of_the_same_replica(store: SqlStore) -> None:
    await submit(store, turn("t"))
    assert await claim(store, "r1", now=100.0) == "t"  # attempt 1, then starved past its lease
    assert await claim(store, "r1", now=100.0 + LEASE + 1) == "t"  # the same replica claims it again: attempt 2
    assert not await store.renew_turn("t", owner="r1", now=132.0, lease_seconds=LEASE, attempt=1)
    assert await store.renew_turn("t", owner="r1", now=132.0, lease_seconds=LEASE, attempt=2)
    assert await store.renew_turn("t", owner="r1", now=133.0, lease_seconds=LEASE)  # without an attempt: the owner


async def test_a_turn_given_back_at_shutdown_is_claimed_at_once_without_an_attempt(store: SqlStore) -> None:
    await submit(store, turn("t"))
    assert await claim(store, "old") == "t"
    assert await store.release_turn("t", owner="old", refund=True)
    assert not await store.release_turn("t", owner="old")  # not its turn any more
    assert await claim(store, "new", now=100.5) == "t"
    record = await store.get_turn("t")
    assert record is not None and record.attempts == 1


async def test_a_turn_held_while_greeted_is_not_claimed_until_released(store: SqlStore) -> None:
    assert await store.submit_turn(turn("t"), dedupe_keys=("k",), holder="r1/greeting", hold_until=100.0 + LEASE)
    assert await claim(store, "r2") is None
    assert await store.queue_depth(now=100.0) == 1
    assert await store.release_turn("t", owner="r1/greeting")
    assert await claim(store, "r2", turn_id="t") == "t"
    assert await store.queue_depth(now=100.0) == 0
    assert await store.hold_turn("t", owner="x", now=100.0, lease_seconds=LEASE) is False  # running: not held


async def test_a_greeting_hands_its_hold_to_the_run_in_one_claim(store: SqlStore) -> None:
    await submit(store, turn("before", ts="1700000000.000050", at=5.0))
    assert await store.submit_turn(turn("t"), dedupe_keys=("k",), holder="r1/greeting", hold_until=100.0 + LEASE)
    take = {"owner": "r1", "now": 100.0, "lease_seconds": LEASE, "turn_id": "t"}
    assert await store.claim_turn(**take, holder="r1/greeting") is None  # an earlier turn of the thread is unfinished
    assert await store.finish_turn("before", status="done", now=100.0)
    assert await store.claim_turn(**take, holder="r2/greeting") is None  # someone else's hold is not handed over
    assert await store.claim_turn(**take) is None  # nor is it free without the holder's name
    record = await store.claim_turn(**take, holder="r1/greeting")
    assert record is not None and (record.status, record.lease_owner, record.attempts) == ("running", "r1", 1)
    assert await store.release_turn("t", owner="r1/greeting") is False  # the hold is gone: nothing to release
    assert await store.renew_turn("t", owner="r1", now=101.0, lease_seconds=LEASE)


async def test_a_handing_claim_records_the_greetings_status_reply(store: SqlStore) -> None:
    await submit(store, turn("before", ts="1700000000.000050", at=5.0))
    assert await store.submit_turn(turn("t"), dedupe_keys=("k",), holder="r1/greeting", hold_until=100.0 + LEASE)
    take = {"owner": "r1", "now": 100.0, "lease_seconds": LEASE, "turn_id": "t", "holder": "r1/greeting",
            "status_ts": "1700000000.000777"}
    assert await store.claim_turn(**take) is None  # not claimed: nothing recorded (the greeting records it)
    assert await store.posted_parts("t") == {}
    assert (await store.get_turn("t")).status_ts is None  # type: ignore[union-attr]
    assert await store.finish_turn("before", status="done", now=100.0)
    record = await store.claim_turn(**take)
    assert record is not None and (record.status_ts, record.started_at, record.attempts) == (
        "1700000000.000777", 100.0, 1)
    assert await store.posted_parts("t") == {"status": "1700000000.000777"}
    assert await store.turn_of_part("1700000000.000777") == "t"
    assert not await store.record_part("t", "status", "1700000000.000888", now=101.0)  # recorded once


async def test_claims_racing_from_replicas_take_each_turn_once_and_one_per_thread(db_url: str) -> None:
    stores = [SqlStore(url=db_url) for _ in range(4)]
    for s in stores:
        await s.open()
    try:
        threads = [ThreadKey("T1", "C1", f"17000000{n:02d}.000100") for n in range(10)]
        await submit(stores[0], *[turn(f"t{n}-{m}", key=k, ts=f"17000000{n:02d}.00{m}100", at=float(m))
                                  for n, k in enumerate(threads) for m in range(3)])

        async def claim_all(s: SqlStore, owner: str) -> list[str]:
            got = []
            while (t := await s.claim_turn(owner=owner, now=100.0, lease_seconds=LEASE)) is not None:
                got.append(t.id)
            return got

        results = await asyncio.gather(*(claim_all(s, f"r{i}") for i, s in enumerate(stores)))
        taken = [t for r in results for t in r]
        assert sorted(taken) == sorted(f"t{n}-0" for n in range(10))  # the first of each thread, once each
    finally:
        for s in stores:
            await s.close()


async def test_the_ledger_records_each_part_once(store: SqlStore) -> None:
    await submit(store, turn("t"))
    assert await store.posted_parts("t") == {}
    assert await store.record_part("t", "answer:0", "1700000001.000100", now=1.0)
    assert not await store.record_part("t", "answer:0", "1700000009.000100", now=2.0)
    assert await store.record_part("t", "files", "chart.png", now=3.0)
    assert await store.posted_parts("t") == {"answer:0": "1700000001.000100", "files": "chart.png"}
    assert await store.record_part("t", "status", "1700000000.000900", now=4.0)
    record = await store.get_turn("t")
    assert record is not None and record.status_ts == "1700000000.000900"  # the status reply is the turn's
    await store.purge_team("T1")  # the ledger goes with its turn
    assert await store.posted_parts("t") == {}


async def test_a_named_lease_has_one_holder_until_it_expires_or_is_released(db_url: str) -> None:
    a, b = SqlStore(url=db_url), SqlStore(url=db_url)
    await a.open()
    await b.open()
    try:
        results = await asyncio.gather(a.acquire_lease("leader", owner="a", now=100.0, seconds=10),
                                       b.acquire_lease("leader", owner="b", now=100.0, seconds=10))
        assert sorted(results) == [False, True]
        holder = await a.lease_holder("leader", now=101.0)
        other = "b" if holder == "a" else "a"
        assert not await a.acquire_lease("leader", owner=other, now=105.0, seconds=10)
        assert await a.acquire_lease("leader", owner=holder or "", now=105.0, seconds=10)  # renewed: until 115
        assert not await a.acquire_lease("leader", owner=other, now=112.0, seconds=10)
        assert await a.acquire_lease("leader", owner=other, now=116.0, seconds=10)  # the holder died
        assert await a.lease_holder("leader", now=117.0) == other
        await a.release_lease("leader", owner=other)
        assert await a.lease_holder("leader", now=117.5) is None
        assert await b.acquire_lease("leader", owner=holder or "", now=118.0, seconds=10)
    finally:
        await a.close()
        await b.close()
