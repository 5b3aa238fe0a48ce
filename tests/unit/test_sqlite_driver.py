"""The SQLite driver under the store (:mod:`bot.store.sqlite_driver`): one trip to the connection's thread per
statement, a ``BEGIN`` riding with the transaction's first statement, no trip for a ``COMMIT`` or ``ROLLBACK``
with nothing open, reads in autocommit; and the transactions still what they were: atomic, ``BEGIN IMMEDIATE``
taking the write lock, no read snapshot left open on a pooled connection."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.store import SqlStore
from bot.store.base import NewTurn, ThreadKey
from bot.store.sqlite_driver import OneTripConnection

KEY = ThreadKey(team="T1", channel="C1", thread_ts="1700000000.000100")


def a_turn(turn_id: str) -> NewTurn:
    return NewTurn(id=turn_id, key=KEY, message_ts="1700000000.000100", user="U1", question="Why?", files=(),
                   created_at=10.0)


async def _driver(store: SqlStore) -> OneTripConnection:
    async with store._read() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
    assert isinstance(driver, OneTripConnection)
    return driver


async def test_a_read_is_one_trip_and_a_one_statement_write_two() -> None:
    store = SqlStore(url="sqlite:///:memory:")  # one connection (a static pool): every trip is counted here
    await store.open()
    try:
        driver = await _driver(store)
        assert await store.submit_turn(a_turn("t1"), dedupe_keys=("k1",))
        before = driver.trips
        assert (await store.get_turn("t1")) is not None
        assert driver.trips - before == 1  # the SELECT alone: no BEGIN, no ROLLBACK
        before = driver.trips
        await store.set_status_ts("t1", "1.5")
        assert driver.trips - before == 2  # BEGIN IMMEDIATE with the UPDATE, then COMMIT
        before = driver.trips
        assert await store.record_part("t1", "status", "2.5", now=11.0)  # two statements
        assert driver.trips - before == 3
        assert (await store.get_turn("t1")).status_ts == "2.5"  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_a_failed_transaction_is_rolled_back_whole(tmp_path: Path) -> None:
    store = SqlStore(url=f"sqlite:///{tmp_path / 'd.db'}")
    await store.open()
    try:
        with pytest.raises(RuntimeError):
            async with store._write() as conn:
                await conn.execute(text("INSERT INTO dedupe (key, created_at) VALUES ('a', 1.0)"))
                raise RuntimeError("after the first statement")
        assert not await store.claimed("a")
        assert await store.claim("a", now=2.0)  # the connection went back to its pool usable
        assert await store.claimed("a")
    finally:
        await store.close()


async def test_begin_immediate_takes_the_write_lock_with_the_first_statement(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    store = SqlStore(url=f"sqlite:///{path}")
    await store.open()
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        async with store._write() as conn:
            await conn.execute(text("SELECT 1"))
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")  # another process's writer waits for this transaction
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        async with store._write():
            pass  # a transaction with no statement begins nothing
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()
        await store.close()


async def test_reads_leave_no_snapshot_open(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    store = SqlStore(url=f"sqlite:///{path}")
    await store.open()
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        assert await store.submit_turn(a_turn("t1"), dedupe_keys=("k1",))
        for _ in range(3):
            assert (await store.get_turn("t1")) is not None
            assert await store.list_turns(KEY)
        assert await store.claim("k2", now=3.0)
        other.execute("INSERT INTO dedupe (key, created_at) VALUES ('k3', 4.0)")
        assert await store.claimed("k3")  # a read sees the latest commit
        busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0  # no pooled connection holds a read transaction the checkpoint would wait for
    finally:
        other.close()
        await store.close()
