"""The durable inbox of the SQL store, on SQLite and on a real PostgreSQL: each Slack event stored once by its
event id, claimed by its receiver for the grace period and then by one replica at a time, its words blanked when
processed, processed events pruned by retention and purged with their workspace."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bot.store import SqlStore
from bot.store.base import InboxEntry, NewTurn, Removed, ThreadKey

GRACE = 10.0
LEASE = 30.0


def entry(event_id: str = "Ev1", *, at: float = 100.0, team: str = "T1", text: str = "which region grew?",
          files: tuple[str, ...] = ()) -> InboxEntry:
    return InboxEntry(event_id=event_id, team=team, channel="C1", ts="1700000000.000200", user="U1", text=text,
                      thread_ts="1700000000.000100", file_ids=files, user_team="T1", bot_user_id="UBOT",
                      received_at=at)


async def test_an_event_is_stored_once_whoever_receives_it(store: SqlStore) -> None:
    assert await store.add_inbox(entry(files=("F1", "F2")), owner="r1", hold_until=100.0 + GRACE)
    assert not await store.add_inbox(entry(text="a retry"), owner="r2", hold_until=101.0 + GRACE)
    found = await store.get_inbox("Ev1")
    assert found is not None
    stored, done_at = found
    assert stored == entry(files=("F1", "F2")) and done_at is None  # the first copy, every id as it came
    assert await store.inbox_waiting() == 1


async def test_replicas_racing_on_one_event_store_it_once(store: SqlStore, db_url: str) -> None:
    other = SqlStore(url=db_url)
    await other.open()
    try:
        results = await asyncio.gather(*((store if i % 2 else other).add_inbox(entry(), owner=f"r{i}",
                                                                             hold_until=110.0) for i in range(8)))
    finally:
        await other.close()
    assert sorted(results) == [False] * 7 + [True]


async def test_processing_blanks_the_words_once(store: SqlStore) -> None:
    await store.add_inbox(entry(), owner="r1", hold_until=110.0)
    assert await store.finish_inbox("Ev1", now=101.0)
    assert not await store.finish_inbox("Ev1", now=102.0)
    assert not await store.finish_inbox("unknown", now=102.0)
    found = await store.get_inbox("Ev1")
    assert found is not None and found[0].text == "" and found[1] == 101.0
    assert await store.inbox_waiting() == 0
    assert await store.claim_inbox(owner="r2", now=1000.0, lease_seconds=LEASE) == []  # done: never replayed


async def test_an_event_not_processed_in_time_is_replayed_by_one_replica(store: SqlStore) -> None:
    await store.add_inbox(entry("Ev1", at=100.0), owner="dead", hold_until=110.0)
    await store.add_inbox(entry("Ev2", at=105.0), owner="dead", hold_until=115.0)
    assert await store.claim_inbox(owner="r2", now=109.0, lease_seconds=LEASE) == []  # its receiver's grace
    [first] = await store.claim_inbox(owner="r2", now=111.0, lease_seconds=LEASE)
    assert (first.event_id, first.text, first.attempts) == ("Ev1", "which region grew?", 1)
    assert await store.claim_inbox(owner="r3", now=112.0, lease_seconds=LEASE) == []  # r2 holds it
    [second] = await store.claim_inbox(owner="r3", now=116.0, lease_seconds=LEASE)
    assert second.event_id == "Ev2"
    # r2 died too: once its lease expired the event is claimed again, one more attempt counted
    again = await store.claim_inbox(owner="r3", now=111.0 + LEASE + 1, lease_seconds=LEASE)
    assert [(e.event_id, e.attempts) for e in again] == [("Ev1", 2)]
    assert await store.finish_inbox("Ev1", now=150.0)
    assert await store.claim_inbox(owner="r4", now=1000.0, lease_seconds=LEASE, limit=5) == [
        replace(entry("Ev2", at=105.0), attempts=2)]


async def test_replicas_claiming_at_once_never_share_an_event(store: SqlStore, db_url: str) -> None:
    for i in range(12):
        await store.add_inbox(entry(f"Ev{i:02d}", at=100.0 + i), owner="dead", hold_until=100.0)
    others = [SqlStore(url=db_url) for _ in range(3)]
    for s in others:
        await s.open()
    try:
        claims = await asyncio.gather(*(s.claim_inbox(owner=f"r{i}", now=200.0, lease_seconds=LEASE, limit=3)
                                        for i, s in enumerate([store, *others, store, *others])))
    finally:
        for s in others:
            await s.close()
    ids = [e.event_id for claim in claims for e in claim]
    assert sorted(ids) == [f"Ev{i:02d}" for i in range(12)]  # each once, none left out


async def test_retention_prunes_processed_events_and_keeps_the_rest(store: SqlStore) -> None:
    await store.add_inbox(entry("old"), owner="r1", hold_until=110.0)
    await store.add_inbox(entry("recent"), owner="r1", hold_until=110.0)
    await store.add_inbox(entry("waiting"), owner="r1", hold_until=110.0)
    await store.finish_inbox("old", now=500.0)
    await store.finish_inbox("recent", now=1500.0)
    assert await store.prune(before=1000.0) == Removed(inbox_events=1)
    assert await store.get_inbox("old") is None
    assert await store.get_inbox("recent") is not None and await store.get_inbox("waiting") is not None


async def test_a_workspace_purge_takes_its_events(store: SqlStore) -> None:
    await store.add_inbox(entry("mine"), owner="r1", hold_until=110.0)
    await store.add_inbox(entry("theirs", team="T2"), owner="r1", hold_until=110.0)
    assert await store.purge_team("T1") == Removed(inbox_events=1)
    assert await store.get_inbox("mine") is None and await store.get_inbox("theirs") is not None



async def test_storing_the_turn_marks_its_event_done_in_the_same_transaction(store: SqlStore) -> None:
    key = ThreadKey(team="T1", channel="C1", thread_ts="1700000000.000100")
    await store.add_inbox(entry("Ev1"), owner="r1", hold_until=110.0)
    await store.add_inbox(entry("Ev2"), owner="r1", hold_until=110.0)
    turn = NewTurn(id="t1", key=key, message_ts="1700000000.000200", user="U1", question="q", files=(),
                   created_at=101.0)
    assert not await store.claimed("msg:T1:C1:1700000000.000200")
    assert await store.submit_turn(turn, dedupe_keys=("msg:T1:C1:1700000000.000200",), inbox_event="Ev1")
    assert await store.claimed("msg:T1:C1:1700000000.000200")
    found = await store.get_inbox("Ev1")
    assert found is not None and found[1] == 101.0 and found[0].text == ""
    # the same post's other event: a duplicate turn, nothing written, so that event is not marked done
    again = NewTurn(id="t2", key=key, message_ts="1700000000.000200", user="U1", question="q", files=(),
                    created_at=102.0)
    assert not await store.submit_turn(again, dedupe_keys=("msg:T1:C1:1700000000.000200",), inbox_event="Ev2")
    found = await store.get_inbox("Ev2")
    assert found is not None and found[1] is None and found[0].text == "which region grew?"


async def test_the_replica_handling_an_event_keeps_it_by_renewing_its_claim(store: SqlStore) -> None:
    await store.add_inbox(entry("Ev1"), owner="r1", hold_until=110.0)
    await store.add_inbox(entry("Ev2"), owner="r1", hold_until=110.0)
    await store.finish_inbox("Ev2", now=105.0)
    assert await store.renew_inbox(["Ev1", "Ev2", "unknown"], owner="r1", until=130.0) == 1  # Ev2 is done
    assert await store.renew_inbox([], owner="r1", until=130.0) == 0
    assert await store.claim_inbox(owner="r2", now=120.0, lease_seconds=LEASE) == []  # still handled by r1
    assert await store.renew_inbox(["Ev1"], owner="r2", until=200.0) == 0  # not r2's
    [taken] = await store.claim_inbox(owner="r2", now=131.0, lease_seconds=LEASE)  # r1 stopped renewing: it died
    assert taken.event_id == "Ev1"
    assert await store.renew_inbox(["Ev1"], owner="r1", until=170.0) == 0  # r1 lost it to r2


async def test_a_batch_of_events_is_stored_in_one_statement_each_id_once(store: SqlStore) -> None:
    await store.add_inbox(entry("Ev1"), owner="r1", hold_until=110.0)
    added = await store.add_inbox_batch([entry("Ev1"), entry("Ev2", text="first"), entry("Ev3"),
                                         entry("Ev2", text="second")], owner="r2", hold_until=120.0)
    assert added == [False, True, True, False]
    found = await store.get_inbox("Ev2")
    assert found is not None and found[0].text == "first"
    assert await store.add_inbox_batch([], owner="r2", hold_until=120.0) == []
    assert await store.inbox_waiting() == 3
