"""Sweeper at scale (not a test; prints numbers).

10,000 threads in the store (1,500 of them own a container, 1,000 of those idle), 2,000 containers listed by
FakeOpenAI (the 1,500 owned ones and 500 orphans named with our prefix, all past the grace period). One sweep must
delete 1,500 containers with exactly ``list pages + 1,500`` API calls, in < 5 s. The baseline, measured in the same
run against a fresh copy of the same containers, is the raw API work alone: the same list pages and deletes
through a bare ``AsyncOpenAI`` client with the same concurrency, no store.

Run: ``python bench/sweeper.py``. FakeOpenAI runs in this process (seeded directly), so its work counts too.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from openai import AsyncOpenAI
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.bootstrap import bootstrap
from bot.config import Settings
from bot.jobs.sweeper import DELETE_CONCURRENCY
from bot.store.schema import threads, turns
from bot.store.sql import SqlStore
from tests.emulators.fake_openai import ContainerState, FakeOpenAI, ManualClock

THREADS, OWNED, IDLE, ORPHANS = 10_000, 1_500, 1_000, 500
PREFIX = "datastory-"


def seed_containers(oai: FakeOpenAI, now: float) -> tuple[list[str], list[str]]:
    """Containers straight into the emulator's state: owned ones (one per owning thread) and orphans."""
    oai.containers.clear()
    owned, orphans = [], []
    for i in range(OWNED + ORPHANS):
        cid = f"cntr_{i:048x}"
        name = f"{PREFIX}T1-C1-{i}.000000" if i < OWNED else f"{PREFIX}T9-C9-{i}.000000"
        oai.containers[cid] = ContainerState(
            id=cid, name=name, expires_after={"anchor": "last_active_at", "minutes": 20}, memory_limit="1g",
            created_at=int(now) - 7200, last_active_at=int(now) - 60, seq=i)
        (owned if i < OWNED else orphans).append(cid)
    return owned, orphans


async def seed_store(store: SqlStore, owned: list[str], now: float) -> None:
    engine = store._require()
    rows, done = [], []
    for i in range(THREADS):
        has = i < OWNED
        last = now - (3600 if i < IDLE else 60)
        rows.append({"team": "T1", "channel": "C1", "thread_ts": f"{i}.000000", "status": "active" if has else "swept",
                     "created_at": now - 7200, "last_active_at": last,
                     "container_id": owned[i] if has else None, "container_name": f"{PREFIX}T1-C1-{i}.000000",
                     "backend": "openai", "last_response_id": None})
        done.append({"id": f"turn{i}", "team": "T1", "channel": "C1", "thread_ts": f"{i}.000000",
                     "message_ts": f"{i}.000000", "user_id": "U1", "question": "", "file_ids": "[]", "status": "done",
                     "created_at": now - 7200, "input_tokens": 0, "output_tokens": 0})
    async with engine.begin() as conn:
        await conn.execute(insert(threads), rows)
        await conn.execute(insert(turns), done)


def api_calls(oai: FakeOpenAI, since: int) -> tuple[int, int]:
    reqs = oai.recorder.requests[since:]
    lists = sum(1 for r in reqs if r.method == "GET" and r.path == "/v1/containers")
    deletes = sum(1 for r in reqs if r.method == "DELETE")
    return lists, deletes


async def raw_baseline(client: AsyncOpenAI, doomed: set[str]) -> float:
    started = time.perf_counter()
    listed = [c.id async for c in client.containers.list(limit=100)]
    gate = asyncio.Semaphore(DELETE_CONCURRENCY)

    async def delete(cid: str) -> None:
        async with gate:
            await client.containers.delete(cid)

    await asyncio.gather(*(delete(cid) for cid in listed if cid in doomed))
    return time.perf_counter() - started


async def main() -> None:
    clock = ManualClock(start=1_800_000_000.0)
    now = clock()
    async with FakeOpenAI(api_key="sk-bench", clock=clock) as oai:
        client = AsyncOpenAI(api_key="sk-bench", base_url=oai.base_url, max_retries=0)
        owned, orphans = seed_containers(oai, now)
        doomed = set(owned[:IDLE]) | set(orphans)
        baseline = await raw_baseline(client, doomed)

        owned, orphans = seed_containers(oai, now)
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, openai_api_key="sk-bench", openai_base_url=oai.base_url, sandbox="openai",
            database_url=f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}", container_prefix=PREFIX,
            idle_minutes=20, orphan_grace_minutes=10)
        services = await bootstrap(settings, slack=False)  # the sweeper `datastory run` and `sweep` build
        store, sweeper = services.store, services.require_sweeper()
        await seed_store(store, owned, now)
        mark = len(oai.recorder.requests)
        started = time.perf_counter()
        report = await sweeper.run_once(now)
        wall = time.perf_counter() - started
        lists, deletes = api_calls(oai, mark)
        swept = sum(1 for t in await store.list_threads()
                    if int(float(t.key.thread_ts)) < IDLE and t.status == "swept" and t.container_id is None)
        await services.aclose()
        await client.close()
    pages = -(-(OWNED + ORPHANS) // 100)
    print(f"store: {THREADS} threads, {OWNED} own a container, {IDLE} idle; provider lists {OWNED + ORPHANS}")
    print(f"sweep: {report.summary()}")
    print(f"  wall time {wall:.2f} s (goal < 5 s); raw API baseline {baseline:.2f} s; ratio {wall / baseline:.2f} x")
    print(f"  API calls: {lists} list pages + {deletes} deletes = {lists + deletes} "
          f"(goal: {pages} pages + {IDLE + ORPHANS} deletes = {pages + IDLE + ORPHANS})")
    print(f"  idle threads marked swept in the store: {swept} of {IDLE}")


if __name__ == "__main__":
    asyncio.run(main())
