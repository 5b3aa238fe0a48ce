"""The durable inbox, end to end on one process and SQLite: Slack is acknowledged only once the message is stored
(over HTTP and over Socket Mode), a retry of a stored event is acknowledged and not handled again, the stored words
are blanked once the message is handled, a message the inbox cannot store gets a 503 (Slack sends it again) and
is answered once when Slack's retry finds the inbox writable, and a message a process acknowledged and never
handled (it died) is answered at the next start, once. The multi-replica version (a replica SIGKILLed between its
acknowledgement and its turn) is in ``test_replicas.py``."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.demo.slack_events import envelope
from bot.store import SqlStore
from bot.store.base import InboxEntry
from tests.e2e.conftest import CHANNEL, USER, Harness

HELD = 1.0
"""How long the test holds the database's write lock: the acknowledgement must wait that long."""


@asynccontextmanager
async def write_locked(db: Path) -> AsyncIterator[None]:
    """Hold SQLite's write lock from another connection (the bot's writes wait, its reads go on); taken off the
    event loop, which the bot in this process shares."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=30, check_same_thread=False)
    try:
        await asyncio.to_thread(conn.execute, "BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


async def inbox_row(db: Path, event_id: str) -> tuple[InboxEntry, float | None] | None:
    store = SqlStore(url=f"sqlite:///{db}", migrate=False)
    await store.open()
    try:
        return await store.get_inbox(event_id)
    finally:
        await store.close()


async def test_http_acknowledges_a_message_once_it_is_stored_and_a_retry_is_not_handled_again(
    harness: Harness,
) -> None:
    bot = await harness.start()
    db = harness.tmp / "bot.db"
    event = harness.file_event("sales.csv", text="which region grew fastest?")
    body = envelope(event, event_id="EvHTTP1")
    async with write_locked(db):
        sending = asyncio.create_task(bot.sender.send_event(body))
        await asyncio.sleep(HELD)
        assert not sending.done()  # not acknowledged while the inbox cannot be written
    reply = await asyncio.wait_for(sending, 30)
    assert reply.status == 200
    thread = await harness.wait_done(event["ts"])
    assert any("Summary of sales.csv" in m.text for m in thread if m.is_bot)
    found = await inbox_row(db, "EvHTTP1")
    assert found is not None
    stored, done_at = found
    assert done_at is not None and stored.text == ""  # handled: the words are gone
    assert (stored.team, stored.channel, stored.ts, stored.user, stored.file_ids) == (
        "T1", CHANNEL, event["ts"], USER, tuple(f["id"] for f in event["files"]))
    posted = len(harness.slack.recorder.calls("chat.postMessage"))
    retry = await bot.sender.send_event(body, retry_num=1, retry_reason="http_timeout")  # Slack's retry
    assert retry.status == 200
    await asyncio.sleep(0.5)
    assert len(harness.slack.recorder.calls("chat.postMessage")) == posted
    assert len(harness.slack.uploads) == 1
    assert await bot.shutdown() == 0


@asynccontextmanager
async def inbox_gone(db: Path) -> AsyncIterator[None]:
    """The inbox table cannot be written (renamed away from another connection), then is back."""
    conn = sqlite3.connect(db, isolation_level=None, timeout=30, check_same_thread=False)
    try:
        await asyncio.to_thread(conn.execute, "ALTER TABLE inbox RENAME TO inbox_away")
        yield
        await asyncio.to_thread(conn.execute, "ALTER TABLE inbox_away RENAME TO inbox")
    finally:
        conn.close()


async def test_http_answers_503_when_the_inbox_cannot_store_a_message_and_the_retry_is_answered_once(
    harness: Harness,
) -> None:
    bot = await harness.start()
    db = harness.tmp / "bot.db"
    event = harness.file_event("sales.csv", text="which month was best?")
    body = envelope(event, event_id="EvDown1")
    async with inbox_gone(db):
        reply = await bot.sender.send_event(body)
        assert reply.status == 503  # not acknowledged: Slack sends the event again
        await asyncio.sleep(0.5)
        assert harness.slack.recorder.calls("chat.postMessage") == []  # and nothing was handled
        assert harness.slack.recorder.calls("reactions.add") == []
    assert await inbox_row(db, "EvDown1") is None
    retry = await bot.sender.send_event(body, retry_num=1, retry_reason="http_error")
    assert retry.status == 200
    thread = await harness.wait_done(event["ts"])
    bot_items = [m for m in thread if m.is_bot]
    assert sum(m.text.startswith(":white_check_mark:") for m in bot_items) == 1
    assert len(harness.slack.uploads) == 1
    found = await inbox_row(db, "EvDown1")
    assert found is not None and found[1] is not None
    assert await bot.shutdown() == 0


async def test_socket_mode_acks_a_message_once_it_is_stored(harness: Harness) -> None:
    await harness.start(socket_mode=True)
    db = harness.tmp / "bot.db"
    event = harness.file_event("sales.csv")
    async with write_locked(db):
        sending = asyncio.create_task(harness.slack.socket_send(envelope(event, event_id="EvSock1"), timeout=30))
        await asyncio.sleep(HELD)
        assert not sending.done()
    ack = await sending
    assert set(ack) == {"envelope_id"}
    await harness.wait_done(event["ts"])
    found = await inbox_row(db, "EvSock1")
    assert found is not None and found[1] is not None


async def test_a_message_a_dead_process_acknowledged_is_answered_once_at_the_next_start(harness: Harness) -> None:
    db = harness.tmp / "bot.db"
    event = harness.file_event("sales.csv", text="what drives revenue?")
    store = SqlStore(url=f"sqlite:///{db}")
    await store.open()
    try:  # what the process wrote before it acknowledged the event, and then it died
        dead = time.time() - 60
        assert await store.add_inbox(InboxEntry(
            event_id="EvDead1", team="T1", channel=CHANNEL, ts=event["ts"], user=USER, text=event["text"],
            file_ids=tuple(f["id"] for f in event["files"]), bot_user_id="UBOT", received_at=dead,
        ), owner="dead-replica", hold_until=dead + 15)
    finally:
        await store.close()
    await harness.start()
    thread = await harness.wait_done(event["ts"])
    bot_items = [m for m in thread if m.is_bot]
    assert any("Summary of sales.csv" in m.text for m in bot_items)
    assert sum(m.text.startswith(":white_check_mark:") for m in bot_items) == 1
    assert len(harness.slack.uploads) == 1
    found = await inbox_row(db, "EvDead1")
    assert found is not None and found[1] is not None and found[0].text == ""
