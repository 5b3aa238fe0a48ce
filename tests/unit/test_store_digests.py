"""Digests in the store (SQLite and PostgreSQL): lifecycle, due runs, and one claim per due run across replicas."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bot.store import SqlStore
from bot.store.base import DigestRecord, ThreadKey

KEY = ThreadKey("T1", "C1", "1700000000.000100")
DIGEST = DigestRecord(id="d1", key=KEY, owner="U1", question="revenue by region", cron="0 9 * * 1",
                      tz="America/New_York", label="every Monday at 09:00", created_at=100.0, next_run_at=1000.0)


async def test_add_list_get_cancel(store: SqlStore) -> None:
    await store.add_digest(DIGEST)
    await store.add_digest(replace(DIGEST, id="d2", key=ThreadKey("T1", "C2", "1.0"), next_run_at=500.0))
    assert [d.id for d in await store.list_digests()] == ["d2", "d1"]
    assert [d.id for d in await store.list_digests(team="T1", channel="C1")] == ["d1"]
    assert await store.get_digest("d1") == DIGEST
    assert await store.cancel_digest("d1")
    assert not await store.cancel_digest("d1")
    assert not await store.cancel_digest("nope")
    assert [d.id for d in await store.list_digests()] == ["d2"]
    cancelled = await store.get_digest("d1")
    assert cancelled is not None and cancelled.status == "cancelled"


async def test_due_claim_and_finish(store: SqlStore) -> None:
    await store.add_digest(DIGEST)
    assert await store.due_digests(999.0) == []
    [due] = await store.due_digests(5000.0)
    assert await store.claim_digest("d1", due_at=due.next_run_at, next_run_at=9000.0, now=5000.0)
    assert not await store.claim_digest("d1", due_at=due.next_run_at, next_run_at=9000.0, now=5000.0)
    assert await store.due_digests(5000.0) == []
    await store.finish_digest_run("d1", now=5001.0, outcome="posted", content_hash="abc", data_changed_at=5001.0,
                                  failures=0, status="active")
    done = await store.get_digest("d1")
    assert done is not None
    assert (done.next_run_at, done.last_outcome, done.last_hash, done.last_data_at, done.last_run_at) == (
        9000.0, "posted", "abc", 5001.0, 5001.0)
    await store.finish_digest_run("d1", now=9001.0, outcome="failed: x", content_hash=None, data_changed_at=None,
                                  failures=3, status="paused")
    paused = await store.get_digest("d1")
    assert paused is not None and (paused.status, paused.failures, paused.last_hash) == ("paused", 3, "abc")
    assert await store.due_digests(1e12) == []


async def test_what_a_run_costs_counts_against_its_owner_and_channel(store: SqlStore) -> None:
    await store.add_digest(DIGEST)
    await store.add_digest(replace(DIGEST, id="d2", owner="U2", key=ThreadKey("T1", "C2", "1.0")))
    await store.finish_digest_run("d1", now=5000.0, outcome="ran", content_hash="a", data_changed_at=None, failures=0,
                                  status="active", cost_usd=0.25)
    await store.finish_digest_run("d2", now=6000.0, outcome="ran", content_hash="b", data_changed_at=None, failures=0,
                                  status="active", cost_usd=0.5)
    await store.finish_digest_run("d2", now=7000.0, outcome="skipped: no new data", content_hash=None,
                                  data_changed_at=None, failures=0, status="active")  # free: nothing recorded
    assert await store.spent_since(0.0) == 0.75
    assert (await store.spent_since(0.0, user="U1"), await store.spent_since(0.0, channel="C1")) == (0.25, 0.25)
    assert await store.spent_since(0.0, user="U2", channel="C2") == 0.5
    assert await store.spent_since(5500.0) == 0.5 and await store.spent_since(6500.0) == 0.0
    assert await store.spent_since(0.0, user="U1", channel="C2") == 0.0


async def test_replicas_racing_for_a_due_run_get_exactly_one_claim(db_url: str) -> None:
    replicas = [SqlStore(url=db_url), SqlStore(url=db_url)]
    for replica in replicas:
        await replica.open()
    try:
        await replicas[0].add_digest(DIGEST)
        claims = await asyncio.gather(*(
            replicas[i % 2].claim_digest("d1", due_at=1000.0, next_run_at=2000.0, now=1500.0) for i in range(20)
        ))
        assert claims.count(True) == 1
    finally:
        for replica in replicas:
            await replica.close()
