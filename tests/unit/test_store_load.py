"""The store's load statements on SQLite and a real PostgreSQL: pending counts, typical duration, expiring waits."""

from __future__ import annotations

from bot.store import SqlStore
from bot.store.base import NewTurn, Pending, ThreadKey, TurnOutcomeRecord

T1 = ThreadKey(team="T1", channel="C1", thread_ts="1.000100")
T2 = ThreadKey(team="T1", channel="C2", thread_ts="2.000100")
OTHER_TEAM = ThreadKey(team="T2", channel="C1", thread_ts="3.000100")


def turn(turn_id: str, key: ThreadKey, *, user: str = "U1", at: float = 10.0) -> NewTurn:
    return NewTurn(id=turn_id, key=key, message_ts=f"{at:.6f}", user=user, question="q", files=(), created_at=at)


async def test_pending_counts_the_person_the_channel_and_all_unfinished_turns(store: SqlStore) -> None:
    for i, (key, user) in enumerate([(T1, "U1"), (T1, "U1"), (T2, "U1"), (T1, "U2"), (OTHER_TEAM, "U1")]):
        assert await store.submit_turn(turn(f"t{i}", key, user=user, at=10.0 + i), dedupe_keys=(f"k{i}",))
    assert await store.pending_turns(team="T1", user="U1", channel="C1") == Pending(user=3, channel=3, total=5)
    assert await store.pending_turns(team="T2", user="U1", channel="C1") == Pending(user=1, channel=1, total=5)
    await store.start_turn("t0", now=20.0)  # running still counts
    await store.finish_turn("t1", status="done", now=21.0)
    await store.finish_turn("t2", status="failed", now=21.0)
    assert await store.pending_turns(team="T1", user="U1", channel="C1") == Pending(user=1, channel=2, total=3)
    assert await store.pending_turns(team="T1", user="U9", channel="C9") == Pending(user=0, channel=0, total=3)


async def test_the_typical_duration_is_the_mean_of_recent_finished_turns(store: SqlStore) -> None:
    assert await store.typical_turn_seconds(since=0.0) is None
    for i, took in enumerate([10.0, 30.0]):
        await store.submit_turn(turn(f"t{i}", T1, at=100.0), dedupe_keys=(f"k{i}",))
        await store.start_turn(f"t{i}", now=100.0)
        await store.finish_turn(f"t{i}", status="done", now=100.0 + took, outcome=TurnOutcomeRecord(answer="a"))
    await store.submit_turn(turn("old", T1, at=1.0), dedupe_keys=("k-old",))
    await store.start_turn("old", now=1.0)
    await store.finish_turn("old", status="done", now=50.0)  # finished before the window
    assert await store.typical_turn_seconds(since=60.0) == 20.0
    assert await store.typical_turn_seconds(since=500.0) is None


async def test_expiring_ends_only_turns_still_queued_since_before_the_cut_off(store: SqlStore) -> None:
    await store.submit_turn(turn("waiting", T1, at=10.0), dedupe_keys=("k1",))
    await store.submit_turn(turn("running", T1, at=11.0), dedupe_keys=("k2",))
    await store.submit_turn(turn("recent", T2, at=100.0), dedupe_keys=("k3",))
    await store.start_turn("running", now=12.0)
    ended = await store.expire_waiting(before=50.0, now=60.0, error="WaitedTooLong")
    assert [t.id for t in ended] == ["waiting"] and ended[0].status == "queued"  # as it was
    after = await store.get_turn("waiting")
    assert after is not None and (after.status, after.finished_at, after.error) == ("failed", 60.0, "WaitedTooLong")
    assert await store.expire_waiting(before=50.0, now=61.0, error="WaitedTooLong") == []  # once
    assert not await store.start_turn("waiting", now=62.0)  # a worker reaching it later does not run it
    assert (await store.get_turn("waiting")).status == "failed"  # type: ignore[union-attr]
    assert await store.start_turn("recent", now=62.0)
    assert {t.id for t in await store.unfinished_turns()} == {"running", "recent"}
