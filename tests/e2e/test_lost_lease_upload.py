"""A replica that loses its turn's lease in the middle of uploading the answer's chart does not share it: the replica
that took the turn over uploads it, and the thread shows it once.

Two ``datastory run --http`` processes on one database (SQLite file, PostgreSQL). The first replica's upload is held
in FakeSlack (``files.getUploadURLExternal``) and the process is stopped (SIGSTOP: a replica starved under heavy
load, whose lease renewals stop) until its lease expired and the second replica claimed the turn and reached the
same upload. Then both go on: the first one's share is fenced (its lease is checked in the store right before
``files.completeUploadExternal``) and it gives the turn up; exactly one upload reaches the thread.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.demo.fake_slack import FakeSlack
from bot.demo.slack_events import envelope
from tests.emulators.fake_openai import FakeOpenAI
from tests.replicas import Replica, replica_env, start_replica

pytestmark = pytest.mark.e2e

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-lost-lease"
OPENAI_KEY = "sk-lost-lease"
CHANNEL, USER = "C1", "U1"
LEASE = 2.0
CSV = b"region,month,revenue\nNorth,2025-01,100\nSouth,2025-01,80\nNorth,2025-02,130\n"


Pair = tuple[Replica, Replica, FakeSlack, str]


@pytest.fixture
async def pair(replica_database_url: str, tmp_path: Path) -> AsyncIterator[Pair]:
    database_url = replica_database_url
    async with FakeSlack(bot_token=BOT_TOKEN) as slack, FakeOpenAI(api_key=OPENAI_KEY) as openai:
        env = replica_env(slack_api_url=slack.api_url, openai_base_url=openai.base_url, database_url=database_url,
                          signing_secret=SECRET, bot_token=BOT_TOKEN, openai_key=OPENAI_KEY, lease_seconds=LEASE,
                          shutdown_grace_seconds=1, log_level="INFO")
        first = await start_replica("a", env, tmp_path, SECRET)
        second = await start_replica("b", env, tmp_path, SECRET)
        try:
            yield first, second, slack, database_url
        finally:
            for replica in (first, second):
                if replica.alive:
                    replica.proc.send_signal(signal.SIGCONT)
                    await replica.stop()


async def lease_owner(database_url: str) -> str | None:
    """Who holds the lease of the (one) unfinished turn."""
    query = "SELECT lease_owner FROM turns WHERE status NOT IN ('done', 'failed')"
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=10) as conn:
            row = conn.execute(query).fetchone()
        return None if row is None else row[0]
    conn = await asyncpg.connect(database_url)
    try:
        owner: str | None = await conn.fetchval(query)
        return owner
    finally:
        await conn.close()


def held_by(replica: Replica) -> Callable[[str | None], bool]:
    return lambda owner: owner is not None and f"-{replica.proc.pid}-" in owner


async def wait_for(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := await probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return value


async def test_a_replica_that_lost_its_lease_mid_upload_does_not_share_the_chart(pair: Pair) -> None:
    first, second, slack, db = pair
    held = slack.hold("files.getUploadURLExternal")
    f = slack.add_file(name="sales.csv", content=CSV, user=USER)
    event = slack.post_as_user(channel=CHANNEL, user=USER, text="revenue by region?", files=[f])
    assert (await first.sender.send_event(envelope(event))).status == 200
    await asyncio.wait_for(held.arrived.wait(), 30)
    assert held_by(first)(await lease_owner(db))  # the first replica runs the turn and is uploading its chart

    first.proc.send_signal(signal.SIGSTOP)  # starved: no renewal, no progress
    try:
        async def taken_over() -> bool:
            return held_by(second)(await lease_owner(db)) and held.arrivals >= 2

        await wait_for(taken_over, LEASE * 5, "the second replica to take the turn over and reach its upload")
    finally:
        first.proc.send_signal(signal.SIGCONT)
    held.release()

    async def answered() -> bool:
        return any(m.is_bot and m.text.startswith(":white_check_mark:") for m in slack.thread(CHANNEL, event["ts"]))

    await wait_for(answered, 30, "the answer")

    async def first_gave_up() -> bool:
        return await first.metric("datastory_lease_renewals_lost_total") >= 1

    await wait_for(first_gave_up, 10, "the first replica to see its lease lost")
    await asyncio.sleep(LEASE)  # anything the first replica still had in flight lands by now
    thread = [m for m in slack.thread(CHANNEL, event["ts"]) if m.is_bot]
    assert [u.thread_ts for u in slack.uploads] == [event["ts"]], slack.uploads  # one chart, uploaded once
    assert sum(len(m.files) for m in thread) == 1
    assert len(slack.recorder.calls("files.completeUploadExternal")) == 1
    assert sum("Question: revenue by region?" in m.text for m in thread) == 1  # the narrative once
    assert first.alive and second.alive
