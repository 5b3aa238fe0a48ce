"""The SQL store on SQLite and on a real PostgreSQL: opening, dedupe races, turns, threads, files, restarts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.store import SqlStore, make_store
from bot.store.base import FileRecord, NewTurn, ThreadBusy, ThreadKey, TurnOutcomeRecord
from bot.store.sql import async_url, describe_url

KEY = ThreadKey(team="T1", channel="C1", thread_ts="1700000000.000100")
OTHER = ThreadKey(team="T1", channel="C2", thread_ts="1700000001.000200")


def a_file(file_id: str = "F1", *, key: ThreadKey = KEY, message_ts: str = "1700000000.000100", at: float = 10.0,
           name: str = "sales.csv", facts: str = "") -> FileRecord:
    return FileRecord(
        key=key, slack_file_id=file_id, name=name, size=1234, mimetype="text/csv", filetype="csv",
        download_url=f"https://files.slack.com/files-pri/T1-{file_id}/download/{name}", message_ts=message_ts,
        user="U1", created_at=at, facts=facts,
    )


def a_turn(turn_id: str = "turn-1", *, key: ThreadKey = KEY, files: tuple[FileRecord, ...] = (), at: float = 10.0,
           message_ts: str = "1700000000.000100", question: str = "What sells best?") -> NewTurn:
    return NewTurn(id=turn_id, key=key, message_ts=message_ts, user="U1", question=question, files=files,
                   created_at=at)


# -- lifecycle -----------------------------------------------------------------------------------------------


async def test_open_twice_is_idempotent(db_url: str) -> None:
    first, second = SqlStore(url=db_url), SqlStore(url=db_url)
    await asyncio.gather(first.open(), second.open())  # replicas starting together migrate once
    await first.open()
    try:
        engine = first._require()
        async with engine.connect() as conn:
            revisions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
        assert revisions == ["0011"]
        assert await first.claim("k", now=1.0)
        assert not await second.claim("k", now=1.0)
    finally:
        await first.close()
        await second.close()


async def test_ping(store: SqlStore) -> None:
    assert await store.ping()
    await store.close()
    assert not await store.ping()


async def test_not_open_raises(db_url: str) -> None:
    with pytest.raises(RuntimeError, match="open"):
        await SqlStore(url=db_url).claim("k", now=1.0)


async def test_restart_keeps_everything(db_url: str) -> None:
    s = SqlStore(url=db_url)
    await s.open()
    assert await s.submit_turn(a_turn(files=(a_file(),)), dedupe_keys=("k1",))
    await s.set_container(KEY, container_id="cntr_1", name="datastory-T1-C1-x", backend="openai", now=20.0)
    await s.close()

    again = SqlStore(url=db_url)
    await again.open()
    try:
        thread = await again.get_thread(KEY)
        assert thread is not None and thread.container_id == "cntr_1" and thread.backend == "openai"
        assert [f.slack_file_id for f in await again.list_files(KEY)] == ["F1"]
        assert [t.id for t in await again.unfinished_turns()] == ["turn-1"]
        assert not await again.claim("k1", now=30.0)
    finally:
        await again.close()


# -- dedupe --------------------------------------------------------------------------------------------------


async def test_claim_once(store: SqlStore) -> None:
    assert await store.claim("T1:C1:1.1", now=1.0)
    assert not await store.claim("T1:C1:1.1", now=2.0)
    assert await store.claim("T1:C1:1.2", now=2.0)


async def test_concurrent_claims_across_instances(db_url: str, store: SqlStore) -> None:
    other = SqlStore(url=db_url)
    await other.open()
    try:
        results = await asyncio.gather(*(
            (store if i % 2 else other).claim("race", now=float(i)) for i in range(20)
        ))
        assert sum(results) == 1
    finally:
        await other.close()


async def test_concurrent_submits_across_instances(db_url: str, store: SqlStore) -> None:
    other = SqlStore(url=db_url)
    await other.open()
    try:
        results = await asyncio.gather(*(
            (store if i % 2 else other).submit_turn(a_turn(f"turn-{i}", files=(a_file(),)), dedupe_keys=("ev", f"u{i}"))
            for i in range(10)
        ))
        assert sum(results) == 1
        assert len(await store.unfinished_turns()) == 1
        assert len(await store.list_files(KEY)) == 1
    finally:
        await other.close()


async def test_prune_dedupe(store: SqlStore) -> None:
    for i in range(5):
        assert await store.claim(f"k{i}", now=float(i))
    assert await store.prune_dedupe(3.0) == 3
    assert await store.claim("k0", now=10.0)
    assert not await store.claim("k4", now=10.0)
    assert await store.prune_dedupe(0.0) == 0


# -- submit_turn ---------------------------------------------------------------------------------------------


async def test_submit_turn_creates_thread_files_and_turn(store: SqlStore) -> None:
    assert await store.get_thread(KEY) is None
    assert await store.submit_turn(a_turn(files=(a_file("F1"), a_file("F2", at=11.0))), dedupe_keys=("k1", "k2"))
    thread = await store.get_thread(KEY)
    assert thread is not None
    assert (thread.status, thread.created_at, thread.last_active_at, thread.container_id) == ("new", 10.0, 10.0, None)
    assert [f.slack_file_id for f in await store.list_files(KEY)] == ["F1", "F2"]
    turn = await store.get_turn("turn-1")
    assert turn is not None
    assert (turn.key, turn.status, turn.file_ids, turn.question, turn.user) == (
        KEY, "queued", ("F1", "F2"), "What sells best?", "U1")
    assert not await store.claim("k2", now=11.0)


async def test_submit_turn_duplicate_writes_nothing(store: SqlStore) -> None:
    assert await store.claim("taken", now=1.0)
    assert not await store.submit_turn(a_turn(files=(a_file(),)), dedupe_keys=("fresh", "taken"))
    assert await store.get_thread(KEY) is None
    assert await store.list_files(KEY) == []
    assert await store.get_turn("turn-1") is None
    assert await store.claim("fresh", now=2.0)  # rolled back with the rest


async def test_submit_turn_same_id_twice_is_a_duplicate(store: SqlStore) -> None:
    assert await store.submit_turn(a_turn(), dedupe_keys=())
    assert not await store.submit_turn(a_turn(question="again"), dedupe_keys=("k9",))
    turn = await store.get_turn("turn-1")
    assert turn is not None and turn.question == "What sells best?"
    assert await store.claim("k9", now=1.0)


async def test_submit_turn_alone_refuses_a_thread_with_an_unfinished_turn(store: SqlStore) -> None:
    assert await store.submit_turn(a_turn(), dedupe_keys=("k1",), alone=True)  # a new thread
    second = a_turn("turn-2", at=20.0, message_ts="1700000000.000900")
    with pytest.raises(ThreadBusy):
        await store.submit_turn(second, dedupe_keys=("k2",), alone=True)
    assert await store.get_turn("turn-2") is None
    assert await store.claim("k2", now=21.0)  # rolled back with the rest
    assert await store.submit_turn(a_turn("turn-3", key=OTHER), dedupe_keys=(), alone=True)  # another thread
    claimed = await store.claim_turn(owner="r1", now=22.0, lease_seconds=30.0, turn_id="turn-1")
    assert claimed is not None and claimed.started_at == 22.0  # running counts too
    with pytest.raises(ThreadBusy):
        await store.submit_turn(second, dedupe_keys=(), alone=True)
    assert await store.finish_turn("turn-1", status="done", now=23.0, owner="r1")
    assert await store.submit_turn(second, dedupe_keys=(), alone=True)
    assert await store.submit_turn(a_turn("turn-4", at=24.0, message_ts="1700000000.000950"), dedupe_keys=())


async def test_racing_alone_submits_to_one_thread_add_one_turn(store: SqlStore) -> None:
    turns = [a_turn(f"race-{i}", at=30.0 + i, message_ts=f"1700000000.00{i:04d}") for i in range(6)]
    results = await asyncio.gather(*(store.submit_turn(t, dedupe_keys=(), alone=True) for t in turns),
                                   return_exceptions=True)
    assert sum(r is True for r in results) == 1
    assert all(isinstance(r, ThreadBusy) for r in results if r is not True)
    assert len(await store.list_turns(KEY)) == 1


async def test_submit_turn_keeps_existing_container(store: SqlStore) -> None:
    assert await store.submit_turn(a_turn(files=(a_file(),)), dedupe_keys=("k1",))
    await store.set_container(KEY, container_id="cntr_1", name="datastory-x", backend="openai", now=15.0)
    await store.set_last_response(KEY, "resp_1", now=16.0)
    assert await store.submit_turn(a_turn("turn-2", at=30.0, message_ts="1700000000.000900"), dedupe_keys=("k2",))
    thread = await store.get_thread(KEY)
    assert thread is not None
    assert (thread.container_id, thread.container_name, thread.backend, thread.status) == (
        "cntr_1", "datastory-x", "openai", "active")
    assert thread.last_response_id == "resp_1"
    assert (thread.created_at, thread.last_active_at) == (10.0, 30.0)


async def test_submit_turn_upserts_files(store: SqlStore) -> None:
    assert await store.submit_turn(a_turn(files=(a_file("F1", facts="utf-8, comma"),)), dedupe_keys=("k1",))
    await store.mark_uploaded(KEY, "F1", container_id="cntr_1", sandbox_path="/mnt/data/sales.csv",
                              sandbox_file_id="cfile_1")
    shared_again = a_file("F1", message_ts="1700000000.000900", at=50.0, name="sales-v2.csv")
    assert await store.submit_turn(a_turn("turn-2", files=(shared_again, a_file("F2", at=51.0)), at=50.0,
                                          message_ts="1700000000.000900"), dedupe_keys=("k2",))
    f1, f2 = await store.list_files(KEY)
    assert (f1.slack_file_id, f1.name, f1.message_ts, f1.created_at) == (
        "F1", "sales-v2.csv", "1700000000.000900", 10.0)
    assert (f1.container_id, f1.sandbox_path, f1.sandbox_file_id, f1.facts) == (
        "cntr_1", "/mnt/data/sales.csv", "cfile_1", "utf-8, comma")
    assert f2.slack_file_id == "F2" and f2.container_id is None


async def test_files_are_per_thread(store: SqlStore) -> None:
    assert await store.submit_turn(a_turn(files=(a_file("F1"),)), dedupe_keys=("k1",))
    assert await store.submit_turn(a_turn("turn-2", key=OTHER, files=(a_file("F1", key=OTHER),)), dedupe_keys=("k2",))
    assert [f.key for f in await store.list_files(KEY)] == [KEY]
    assert [f.key for f in await store.list_files(OTHER)] == [OTHER]


# -- threads and containers ----------------------------------------------------------------------------------


async def test_set_and_clear_container(store: SqlStore) -> None:
    assert await store.submit_turn(a_turn(files=(a_file("F1"), a_file("F2", at=11.0))), dedupe_keys=("k1",))
    await store.set_container(KEY, container_id="cntr_1", name="datastory-x", backend="openai", now=20.0)
    await store.mark_uploaded(KEY, "F1", container_id="cntr_1", sandbox_path="/mnt/data/a.csv",
                              sandbox_file_id="cfile_1", facts="utf-8", read_options='{"sep": ";"}')
    await store.set_last_response(KEY, "resp_1", now=21.0)
    thread = await store.get_thread(KEY)
    assert thread is not None
    assert (thread.status, thread.container_id, thread.last_response_id, thread.last_active_at) == (
        "active", "cntr_1", "resp_1", 21.0)
    f1 = (await store.list_files(KEY))[0]
    assert (f1.container_id, f1.sandbox_path, f1.sandbox_file_id, f1.facts, f1.read_options) == (
        "cntr_1", "/mnt/data/a.csv", "cfile_1", "utf-8", '{"sep": ";"}')
    assert (await store.list_files(KEY))[1].read_options == ""  # not uploaded yet: nothing decided

    await store.clear_container(KEY, status="swept")
    thread = await store.get_thread(KEY)
    assert thread is not None
    assert (thread.status, thread.container_id, thread.last_response_id) == ("swept", None, None)
    cleared = await store.list_files(KEY)
    assert [f.slack_file_id for f in cleared] == ["F1", "F2"]
    assert all(f.container_id is None and f.sandbox_path is None and f.sandbox_file_id is None for f in cleared)
    assert cleared[0].facts == "utf-8"
    assert await store.get_turn("turn-1") is not None

    await store.set_container(KEY, container_id="cntr_2", name="datastory-x", backend="local", now=40.0)
    thread = await store.get_thread(KEY)
    assert thread is not None
    assert (thread.status, thread.container_id, thread.backend, thread.last_active_at) == (
        "active", "cntr_2", "local", 40.0)


async def test_set_container_forgets_response_chain(store: SqlStore) -> None:
    assert await store.submit_turn(a_turn(), dedupe_keys=("k1",))
    await store.set_container(KEY, container_id="cntr_1", name="n", backend="openai", now=20.0)
    await store.set_last_response(KEY, "resp_1", now=21.0)
    await store.set_container(KEY, container_id="cntr_2", name="n", backend="openai", now=22.0)
    thread = await store.get_thread(KEY)
    assert thread is not None and thread.last_response_id is None and thread.container_id == "cntr_2"


async def test_touch_and_list_threads(store: SqlStore) -> None:
    assert await store.list_threads() == []
    assert await store.submit_turn(a_turn(key=OTHER, at=5.0), dedupe_keys=("k1",))
    assert await store.submit_turn(a_turn("turn-2", at=7.0), dedupe_keys=("k2",))
    await store.touch(OTHER, now=99.0)
    threads = await store.list_threads()
    assert [t.key for t in threads] == [OTHER, KEY]
    assert [t.last_active_at for t in threads] == [99.0, 7.0]


# -- turns ---------------------------------------------------------------------------------------------------


async def test_turn_lifecycle(store: SqlStore) -> None:
    assert await store.submit_turn(a_turn("ok"), dedupe_keys=("k1",))
    assert await store.submit_turn(a_turn("bad", at=11.0), dedupe_keys=("k2",))
    await store.set_status_ts("ok", "1700000000.000555")
    await store.start_turn("ok", now=12.0)
    running = await store.get_turn("ok")
    assert running is not None
    assert (running.status, running.started_at, running.status_ts) == ("running", 12.0, "1700000000.000555")

    await store.finish_turn("ok", status="done", now=20.0, outcome=TurnOutcomeRecord(
        response_id="resp_1", input_tokens=1200, output_tokens=345, answer="North grew most.", code="df.sum()",
        model="gpt-4.1", cost_usd=0.0052))
    done = await store.get_turn("ok")
    assert done is not None
    assert (done.status, done.finished_at, done.response_id, done.error, done.input_tokens, done.output_tokens) == (
        "done", 20.0, "resp_1", None, 1200, 345)
    assert (done.answer, done.code, done.model, done.cost_usd) == ("North grew most.", "df.sum()", "gpt-4.1", 0.0052)
    assert [t.id for t in await store.list_turns(done.key)] == [t.id for t in await store.list_turns(done.key)]
    assert await store.spent_since(12.0) == pytest.approx(0.0052)
    assert await store.spent_since(12.0, user="nobody") == 0.0
    assert await store.spent_since(12.5) == 0.0

    await store.start_turn("bad", now=13.0)
    await store.finish_turn("bad", status="failed", now=14.0,
                             outcome=TurnOutcomeRecord(error="SandboxTimeout ref=abc123"))
    failed = await store.get_turn("bad")
    assert failed is not None and (failed.status, failed.error, failed.input_tokens) == (
        "failed", "SandboxTimeout ref=abc123", 0)
    assert await store.unfinished_turns() == []
    assert await store.get_turn("missing") is None


async def test_unfinished_turns_oldest_first(store: SqlStore) -> None:
    for turn_id, at in (("c", 30.0), ("a", 10.0), ("d", 40.0), ("b", 20.0)):
        assert await store.submit_turn(a_turn(turn_id, at=at), dedupe_keys=(turn_id,))
    await store.start_turn("b", now=50.0)
    await store.finish_turn("d", status="done", now=51.0)
    unfinished = await store.unfinished_turns()
    assert [(t.id, t.status) for t in unfinished] == [("a", "queued"), ("b", "running"), ("c", "queued")]


# -- URLs ----------------------------------------------------------------------------------------------------


async def test_relative_sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = make_store("sqlite:///./data/nested/bot.db")
    assert isinstance(store, SqlStore)
    await store.open()
    try:
        assert await store.claim("k", now=1.0)
    finally:
        await store.close()
    assert (tmp_path / "data" / "nested" / "bot.db").is_file()


async def test_memory_sqlite_url() -> None:
    store = SqlStore(url="sqlite:///:memory:")
    await store.open()
    try:
        results = await asyncio.gather(*(store.claim("race", now=1.0) for _ in range(10)))
        assert sum(results) == 1
        assert await store.submit_turn(a_turn(files=(a_file(),)), dedupe_keys=("k1",))
        assert [t.id for t in await store.unfinished_turns()] == ["turn-1"]
        assert await store.ping()
    finally:
        await store.close()


@pytest.mark.parametrize(("url", "driver"), [
    ("sqlite:///x.db", "sqlite+aiosqlite"),
    ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite"),
    ("postgresql://u:secret@h/db", "postgresql+asyncpg"),
    ("postgres://u:secret@h:6543/db", "postgresql+asyncpg"),
    ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg"),
])
def test_async_url(url: str, driver: str) -> None:
    assert async_url(url).drivername == driver
    assert "secret" not in describe_url(async_url(url))


def test_sslmode_is_translated_for_asyncpg() -> None:
    assert dict(async_url("postgres://u@h/db?sslmode=require").query) == {"ssl": "require"}


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url", "postgresql+psycopg2://u@h/db"])
def test_unsupported_url(url: str) -> None:
    with pytest.raises(ValueError, match=r"sqlite:///PATH"):
        SqlStore(url=url)

