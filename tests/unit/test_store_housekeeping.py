"""The store's housekeeping on SQLite and PostgreSQL: the sweeper's two questions, retention's prune, a workspace's
purge, and the index migration behind the first."""

from __future__ import annotations

from dataclasses import replace

from bot.store import SqlStore
from bot.store.base import DigestRecord, Removed, ThreadKey, TurnOutcomeRecord
from tests.unit.test_store import a_file, a_turn

T1A = ThreadKey("T1", "C1", "1.000001")
T1B = ThreadKey("T1", "C2", "2.000002")
T2A = ThreadKey("T2", "C1", "3.000003")
DIGEST = DigestRecord(id="d1", key=T1A, owner="U1", question="revenue", cron="0 9 * * *", tz="UTC",
                      label="every day at 09:00", created_at=10.0, next_run_at=1000.0)


async def thread(store: SqlStore, key: ThreadKey, *, at: float, container: str | None, turn: str,
                 status: str = "done", msg: str = "m") -> None:
    """A thread created at ``at`` with one turn (finished at ``at`` unless ``status`` is unfinished) and one file."""
    await store.submit_turn(a_turn(turn, key=key, at=at, message_ts=f"{at:.6f}",
                                   files=(a_file(f"F{turn}", key=key, at=at),)),
                            dedupe_keys=(f"msg:{key.team}:{key.channel}:{msg}{turn}",))
    if status != "queued":
        await store.finish_turn(turn, status="done", now=at, outcome=TurnOutcomeRecord(answer="a", code="c"))
    if container:
        await store.set_container(key, container_id=container, name=f"datastory-{container}", backend="openai",
                                  now=at)


async def test_the_sweeper_asks_for_idle_threads_and_for_owners_only(store: SqlStore) -> None:
    await thread(store, T1A, at=100.0, container="c1", turn="t1")
    await thread(store, T1B, at=500.0, container="c2", turn="t2")
    await thread(store, T2A, at=50.0, container=None, turn="t3")
    assert [t.key for t in await store.idle_threads(before=200.0)] == [T1A]
    assert [t.key for t in await store.idle_threads(before=600.0)] == [T1A, T1B]
    assert await store.idle_threads(before=10.0) == []
    owners = await store.threads_with_containers(["c2", "unknown", "c1"] + [f"x{i}" for i in range(1200)])
    assert sorted(t.key.channel for t in owners) == ["C1", "C2"]
    assert await store.threads_with_containers([]) == []
    assert [t.key for t in await store.list_threads(team="T2")] == [T2A]


async def test_purge_removes_every_row_of_one_team_and_nothing_else(store: SqlStore) -> None:
    await thread(store, T1A, at=100.0, container="c1", turn="t1")
    await thread(store, T1B, at=100.0, container=None, turn="t2", status="queued")
    await thread(store, T2A, at=100.0, container="c3", turn="t3")
    await store.add_digest(DIGEST)
    await store.finish_digest_run("d1", now=200.0, outcome="ran", content_hash=None, data_changed_at=None,
                                  failures=0, status="active", cost_usd=0.5)
    await store.claim("msg:T1:C1:loose", now=1.0)
    await store.claim("msg:T1X:C1:other-team", now=1.0)

    removed = await store.purge_team("T1")
    assert removed == Removed(threads=2, files=2, turns=2, digests=1, digest_runs=1, dedupe_keys=3)
    assert [t.key for t in await store.list_threads()] == [T2A]
    assert await store.get_turn("t1") is None and await store.get_turn("t3") is not None
    assert await store.list_digests() == [] and await store.spent_since(0.0) == 0.0
    assert not await store.claim("msg:T1X:C1:other-team", now=1.0)  # another team's key, kept
    assert await store.claim("msg:T1:C1:loose", now=1.0)  # gone, so claimable again
    assert await store.purge_team("T1") == Removed(dedupe_keys=1)


async def test_prune_lets_old_finished_work_go_and_keeps_what_is_alive(store: SqlStore) -> None:
    await thread(store, T1A, at=100.0, container=None, turn="old")            # old, idle, nothing alive: all goes
    await thread(store, T1B, at=100.0, container="c2", turn="kept-thread")   # old but has a container
    await thread(store, T2A, at=100.0, container=None, turn="queued", status="queued")  # unfinished: kept
    await thread(store, T2A, at=5000.0, container=None, turn="recent")       # recent
    digest_thread = ThreadKey("T1", "C9", "9.000009")
    await thread(store, digest_thread, at=100.0, container=None, turn="digested")
    await store.add_digest(replace(DIGEST, key=digest_thread))
    await store.add_digest(replace(DIGEST, id="d2", status="cancelled", created_at=50.0))
    await store.finish_digest_run("d1", now=150.0, outcome="ran", content_hash=None, data_changed_at=None,
                                  failures=0, status="active", cost_usd=0.25)

    removed = await store.prune(before=1000.0)
    assert removed == Removed(threads=1, files=1, turns=3, digests=1, digest_runs=1, dedupe_keys=4)
    assert {t.key for t in await store.list_threads()} == {T1B, T2A, digest_thread}
    assert [t.id for t in await store.list_turns(T2A)] == ["queued", "recent"]
    assert await store.list_turns(T1B) == [] and len(await store.list_files(T1B)) == 1
    assert [d.id for d in await store.list_digests()] == ["d1"]
    assert await store.prune(before=1000.0) == Removed()


async def test_prune_drops_the_stop_leases_of_turns_that_ended_and_keeps_the_others(store: SqlStore) -> None:
    await thread(store, T1A, at=5000.0, container=None, turn="ended")       # recent, but ended: its stop goes
    await thread(store, T1B, at=100.0, container=None, turn="running", status="queued")  # unfinished: kept
    for name in ("stop/ended", "stop/running", "stop/pruned-long-ago", "leader"):
        assert await store.acquire_lease(name, owner="U1", now=4000.0, seconds=10_000.0)

    removed = await store.prune(before=1000.0)
    assert removed == Removed(dedupe_keys=1, stop_leases=2)  # (the running turn's old dedupe key too)
    assert await store.lease_holder("stop/ended", now=4001.0) is None
    assert await store.lease_holder("stop/pruned-long-ago", now=4001.0) is None  # its turn is gone
    assert await store.lease_holder("stop/running", now=4001.0) == "U1"
    assert await store.lease_holder("leader", now=4001.0) == "U1"  # not a stop
    await store.finish_turn("running", status="done", now=5000.0, outcome=TurnOutcomeRecord(answer="a", code="c"))
    assert await store.prune(before=1000.0) == Removed(stop_leases=1)
