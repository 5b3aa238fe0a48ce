"""The sweeper against a real store and FakeOpenAI (through the real OpenAI backend), with a hand-moved clock."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from openai import AsyncOpenAI

from bot.jobs.sweeper import Sweeper
from bot.sandbox.openai import OpenAISandbox
from bot.store import make_store
from bot.store.base import FileRecord, NewTurn, Store, ThreadKey
from bot.turns import container_name
from tests.emulators.fake_openai import FakeOpenAI, ManualClock

PREFIX = "datastory-"
IDLE_MINUTES = 20


@dataclass(slots=True)
class World:
    store: Store
    sandbox: OpenAISandbox
    oai: FakeOpenAI
    clock: ManualClock

    def sweeper(self, *, grace_minutes: float = 10) -> Sweeper:
        return Sweeper(store=self.store, sandbox=self.sandbox, prefix=PREFIX, idle_minutes=IDLE_MINUTES,
                       orphan_grace_minutes=grace_minutes)

    async def thread(self, *, idle_minutes: float, busy: bool = False) -> tuple[ThreadKey, str]:
        """A thread with a file and a container, last active ``idle_minutes`` ago."""
        key = ThreadKey("T1", "C1", f"{self.clock() - idle_minutes * 60:.6f}{uuid.uuid4().hex[:4]}")
        when = self.clock() - idle_minutes * 60
        turn_id = uuid.uuid4().hex
        file = FileRecord(key=key, slack_file_id="F" + turn_id[:8], name="sales.csv", size=10, mimetype="text/csv",
                          filetype="csv", download_url="https://files.slack.com/x", message_ts=key.thread_ts,
                          user="U1", created_at=when)
        await self.store.submit_turn(NewTurn(id=turn_id, key=key, message_ts=key.thread_ts, user="U1", question="",
                                             files=(file,), created_at=when), dedupe_keys=(f"k:{turn_id}",))
        if not busy:
            await self.store.finish_turn(turn_id, status="done", now=when)
        info = await self.sandbox.create(name=container_name(PREFIX, key), idle_minutes=IDLE_MINUTES)
        await self.store.set_container(key, container_id=info.id, name=info.name, backend="openai", now=when)
        return key, info.id

    async def orphan(self, name: str) -> str:
        return (await self.sandbox.create(name=name, idle_minutes=IDLE_MINUTES)).id


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = ManualClock(start=1_800_000_000.0)
    async with FakeOpenAI(api_key="sk-test", clock=clock) as oai:
        client = AsyncOpenAI(api_key="sk-test", base_url=oai.base_url, max_retries=0)
        store = make_store(f"sqlite:///{tmp_path / 'sweep.db'}")
        await store.open()
        sandbox = OpenAISandbox(client=client)
        yield World(store=store, sandbox=sandbox, oai=oai, clock=clock)
        await sandbox.close()
        await client.close()
        await store.close()


def alive(w: World, cid: str) -> bool:
    return not w.oai.containers[cid].deleted


async def test_idle_threads_are_swept_and_keep_their_files(world: World) -> None:
    idle_key, idle = await world.thread(idle_minutes=30)
    fresh_key, fresh = await world.thread(idle_minutes=5)
    report = await world.sweeper().run_once(world.clock())
    assert report.deleted_idle == [idle] and report.deleted_orphans == [] and report.errors == []
    assert not alive(world, idle) and alive(world, fresh)
    swept = await world.store.get_thread(idle_key)
    assert swept is not None and swept.status == "swept" and swept.container_id is None
    assert [f.name for f in await world.store.list_files(idle_key)] == ["sales.csv"]
    kept = await world.store.get_thread(fresh_key)
    assert kept is not None and kept.container_id == fresh


async def test_busy_threads_are_skipped(world: World) -> None:
    _, busy = await world.thread(idle_minutes=45, busy=True)
    report = await world.sweeper().run_once(world.clock())
    assert report.skipped_busy == [busy] and report.deleted == 0
    assert alive(world, busy)


async def test_orphans_after_the_grace_period_and_never_foreign_containers(world: World) -> None:
    old_orphan = await world.orphan(f"{PREFIX}T9-C9-1.0")
    foreign = await world.orphan("someone-elses-container")
    world.clock.advance(11 * 60)
    young_orphan = await world.orphan(f"{PREFIX}T9-C9-2.0")
    report = await world.sweeper().run_once(world.clock())
    assert report.deleted_orphans == [old_orphan]
    assert alive(world, young_orphan) and alive(world, foreign)
    assert all(not r.path.endswith(foreign) for r in world.oai.recorder.requests if r.method == "DELETE")


async def test_expired_containers_still_listed_are_deleted_and_their_threads_forgotten(world: World) -> None:
    key, cid = await world.thread(idle_minutes=1)
    world.oai.expire(cid)
    orphan = await world.orphan(f"{PREFIX}T9-C9-3.0")
    world.oai.expire(orphan)
    report = await world.sweeper().run_once(world.clock())
    assert report.deleted_expired == [cid] and report.deleted_orphans == [orphan]
    thread = await world.store.get_thread(key)
    assert thread is not None and thread.container_id is None and thread.status == "swept"


async def test_pagination_over_more_than_a_hundred_containers(world: World) -> None:
    orphans = [await world.orphan(f"{PREFIX}T9-C9-{i}.0") for i in range(130)]
    world.clock.advance(3600)
    report = await world.sweeper().run_once(world.clock())
    assert sorted(report.deleted_orphans) == sorted(orphans)
    assert report.listed == 130
    lists = [r for r in world.oai.recorder.requests if r.method == "GET" and r.path == "/v1/containers"]
    deletes = [r for r in world.oai.recorder.requests if r.method == "DELETE"]
    assert len(lists) == 2 and len(deletes) == 130


async def test_dry_run_reports_without_deleting(world: World) -> None:
    key, idle = await world.thread(idle_minutes=30)
    report = await world.sweeper().run_once(world.clock(), dry_run=True)
    assert report.dry_run and report.deleted_idle == [idle]
    assert alive(world, idle)
    thread = await world.store.get_thread(key)
    assert thread is not None and thread.container_id == idle


async def test_a_container_already_gone_counts_as_deleted(world: World) -> None:
    key, idle = await world.thread(idle_minutes=30)
    await world.sandbox.delete(idle)  # gone at the provider, still in the store
    report = await world.sweeper().run_once(world.clock())
    assert report.deleted_idle == [idle] and report.errors == []
    thread = await world.store.get_thread(key)
    assert thread is not None and thread.container_id is None


async def test_a_failed_delete_is_reported_and_the_thread_kept(world: World) -> None:
    key, idle = await world.thread(idle_minutes=30)
    world.oai.fail_next("DELETE", f"/v1/containers/{idle}", status=500, times=5)
    report = await world.sweeper().run_once(world.clock())
    assert report.deleted_idle == [] and len(report.errors) == 1 and report.errors[0].startswith(idle)
    thread = await world.store.get_thread(key)
    assert thread is not None and thread.container_id == idle


async def test_a_thread_that_got_a_new_container_meanwhile_is_not_cleared(world: World) -> None:
    key, old = await world.thread(idle_minutes=30)
    await world.store.set_container(key, container_id="cntr_new", name="n", backend="openai", now=world.clock())
    assert await world.store.clear_containers([(key, old)], status="swept") == 0
    thread = await world.store.get_thread(key)
    assert thread is not None and thread.container_id == "cntr_new"


async def test_the_same_sweep_shuts_down_idle_and_orphaned_local_kernels(tmp_path: Path) -> None:
    from bot.sandbox.local import LocalSandbox

    store = make_store(f"sqlite:///{tmp_path / 'local.db'}")
    await store.open()
    sandbox = LocalSandbox(pool_size=0)
    try:
        now = 1_800_000_000.0
        key = ThreadKey("T1", "C1", "1.000001")
        idle = await sandbox.create(name=container_name(PREFIX, key), idle_minutes=IDLE_MINUTES)
        await store.set_container(key, container_id=idle.id, name=idle.name, backend="local", now=now - 3600)
        orphan = await sandbox.create(name=f"{PREFIX}T9-C9-2.0", idle_minutes=IDLE_MINUTES)
        foreign = await sandbox.create(name="not-ours", idle_minutes=IDLE_MINUTES)
        sweeper = Sweeper(store=store, sandbox=sandbox, prefix=PREFIX, idle_minutes=IDLE_MINUTES,
                          orphan_grace_minutes=0)
        report = await sweeper.run_once(max(now, orphan.created_at + 1))
        assert report.deleted_idle == [idle.id] and report.deleted_orphans == [orphan.id]
        live = {c.id for c in await sandbox.list_containers(prefix="")}
        assert live == {foreign.id}
        thread = await store.get_thread(key)
        assert thread is not None and thread.status == "swept" and thread.container_id is None
    finally:
        await sandbox.close()
        await store.close()
