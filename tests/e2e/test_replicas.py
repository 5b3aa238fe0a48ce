"""Three ``datastory run --http`` processes on one PostgreSQL and one pair of emulators (FakeSlack, FakeOpenAI on
loopback in this process): 200 events across 40 threads, duplicates delivered to different replicas, one replica
SIGKILLed mid-turn, another SIGKILLed between posting a narrative and uploading its charts, then a rolling restart.
Every question is answered exactly once (what FakeSlack received, per question), none is lost, no thread ever ran two
turns at once (FakeOpenAI records overlapping responses per container), and the periodic sweep ran once per interval.
And a replica SIGKILLed after acknowledging a message and before storing its turn: another replica replays it from
the inbox and answers it once.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.demo.fake_slack import FakeSlack
from bot.demo.slack_events import envelope
from tests.emulators.fake_openai import FakeOpenAI
from tests.replicas import Replica, replica_env, start_replica

pytestmark = pytest.mark.postgres

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-replicas"
OPENAI_KEY = "sk-replicas"
CHANNEL = "C1"
THREADS = 40
FOLLOW_UPS = 4
LEASE = 2.0
SWEEP = 3.0
GRACE = 5.0
CSV = b"region,month,revenue\nNorth,2025-01,100\nSouth,2025-01,80\nNorth,2025-02,130\nSouth,2025-02,82\n"


class Cluster:
    """The replicas, replaced as they are killed or restarted, and the events sent to them."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.replicas: list[Replica] = []
        self.all: list[Replica] = []
        self._names = itertools.count()
        self.sent = 0
        self.acked: set[str] = set()
        self.inflight = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def add(self) -> Replica:
        replica = await start_replica(f"r{next(self._names)}", self.env, self.workdir, SECRET)
        self.replicas.append(replica)
        self.all.append(replica)
        return replica

    def live(self) -> list[Replica]:
        return [r for r in self.replicas if r.alive]

    async def send(self, event: dict[str, Any], *, duplicate: bool) -> None:
        """Deliver to one live replica (and a copy to another, as Slack's retry); a replica that is gone gets
        the event again elsewhere, as Slack retries an event that was not acknowledged."""
        targets = random.sample(self.live(), k=min(len(self.live()), 2 if duplicate else 1))
        for retry, replica in enumerate(targets):
            for attempt in range(20):
                await self.gate.wait()
                self.inflight += 1
                try:
                    reply = await replica.sender.send_event(envelope(event), retry_num=(retry + attempt) or None)
                    if reply.status == 200:
                        self.sent += 1
                        self.acked.add(event["ts"])
                        break
                except Exception:
                    pass
                finally:
                    self.inflight -= 1
                replica = random.choice(self.live())
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"event {event['ts']} was never acknowledged")

    async def quiesce(self, db: str) -> None:
        """Hold new deliveries until every message a replica acknowledged is stored as a turn: a replica is killed
        mid-turn, not between acknowledging a message and storing it (an acknowledged message lives only in that
        process until then; Slack does not send it again)."""
        self.gate.clear()
        await wait_until(lambda: self.inflight == 0, 30, "deliveries in flight")

        async def stored() -> bool:
            conn = await asyncpg.connect(db)
            try:
                have = {r["message_ts"] for r in await conn.fetch("SELECT message_ts FROM turns")}
            finally:
                await conn.close()
            return self.acked <= have

        await wait_until_async(stored, 30)

    async def close(self) -> None:
        for replica in self.all:
            if replica.alive:
                replica.kill()
            await replica.sender.close()


@asynccontextmanager
async def running_cluster(postgres_url: str, tmp_path: Path, *, lease: float = LEASE,
                          ) -> AsyncIterator[tuple[Cluster, FakeSlack, FakeOpenAI]]:
    async with FakeSlack(bot_token=BOT_TOKEN) as slack, FakeOpenAI(api_key=OPENAI_KEY) as openai:
        openai.response_latency = 0.3
        env = replica_env(slack_api_url=slack.api_url, openai_base_url=openai.base_url, database_url=postgres_url,
                          signing_secret=SECRET, bot_token=BOT_TOKEN, openai_key=OPENAI_KEY,
                          lease_seconds=lease, max_attempts=3, sweep_interval_seconds=SWEEP,
                          inbox_grace_seconds=GRACE, shutdown_grace_seconds=1, max_concurrent_turns=6,
                          max_turns_per_user=1000, max_turns_per_channel=1000, max_queued_turns=1000,
                          log_level="INFO")
        c = Cluster(env, tmp_path)
        try:
            await asyncio.gather(c.add(), c.add(), c.add())
            yield c, slack, openai
        finally:
            await c.close()


@pytest.fixture
async def cluster(postgres_url: str, tmp_path: Path) -> AsyncIterator[tuple[Cluster, FakeSlack, FakeOpenAI]]:
    async with running_cluster(postgres_url, tmp_path) as running:
        yield running


async def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
    return value


async def interrupted_upload_owner(db: str) -> str | None:
    """The replica that posted a narrative (or ended its streamed one) and has not uploaded its files yet (it is
    uploading now)."""
    conn = await asyncpg.connect(db)
    try:
        owner: str | None = await conn.fetchval(
            "SELECT t.lease_owner FROM turns t WHERE t.status = 'running' "
            "AND EXISTS (SELECT 1 FROM ledger l WHERE l.turn_id = t.id AND l.part IN ('answer:0', 'streamed')) "
            "AND NOT EXISTS (SELECT 1 FROM ledger l WHERE l.turn_id = t.id AND l.part = 'files') LIMIT 1")
        return owner
    finally:
        await conn.close()


async def test_replicas_answer_every_question_exactly_once_through_kills_and_a_rolling_restart(
    cluster: tuple[Cluster, FakeSlack, FakeOpenAI], postgres_url: str,
) -> None:
    c, slack, openai = cluster
    started = time.monotonic()
    random.seed(20)
    roots = []
    for t in range(THREADS):
        f = slack.add_file(name="sales.csv", content=CSV, user="U1")
        roots.append(slack.post_as_user(channel=CHANNEL, user="U1", text=f"question {t}-0?", files=[f]))
    await asyncio.gather(*(c.send(e, duplicate=i % 4 == 0) for i, e in enumerate(roots)))
    # each thread exists once its first question is accepted (a reply in an unknown thread is not work)
    await wait_until(lambda: all(any(m.is_bot for m in slack.thread(CHANNEL, e["ts"])) for e in roots), 30,
                     "every root to be accepted")

    waves = [[slack.post_as_user(channel=CHANNEL, user="U1", text=f"question {t}-{n}?", thread_ts=e["ts"])
              for t, e in enumerate(roots)] for n in range(1, FOLLOW_UPS + 1)]

    # wave 1, and a replica SIGKILLed while it runs turns
    sending = asyncio.gather(*(c.send(e, duplicate=i % 5 == 0) for i, e in enumerate(waves[0])))
    victim = c.replicas[0]
    deadline = time.monotonic() + 20
    while await victim.metric("datastory_turns_running") < 1:
        assert time.monotonic() < deadline, "the first replica never ran a turn"
        await asyncio.sleep(0.05)
    await c.quiesce(postgres_url)
    victim.kill()
    c.gate.set()
    await asyncio.gather(sending, c.add())

    # wave 2, and a replica SIGKILLed between posting a narrative and uploading its charts
    held = slack.hold("files.getUploadURLExternal")
    sending = asyncio.gather(*(c.send(e, duplicate=i % 5 == 1) for i, e in enumerate(waves[1])))
    await asyncio.wait_for(held.arrived.wait(), 30)
    await c.quiesce(postgres_url)
    owner = await wait_until_async(lambda: interrupted_upload_owner(postgres_url), 10)
    pid = int(owner.rsplit("-", 2)[1])
    [second] = [r for r in c.live() if r.proc.pid == pid]
    second.kill()
    held.release()
    c.gate.set()
    await asyncio.gather(sending, c.add())

    # waves 3 and 4 during a rolling restart (SIGTERM one at a time, a new replica in its place)
    sending = asyncio.gather(*(c.send(e, duplicate=i % 5 == 2) for wave in waves[2:] for i, e in enumerate(wave)))
    for old in list(c.live()):
        assert await old.stop() == 0
        await c.add()
    await sending

    questions = [(e["ts"], f"question {t}-{n}?") for t, e in enumerate(roots) for n in range(FOLLOW_UPS + 1)]
    assert len(questions) == 200 and c.sent >= 200

    def finished() -> bool:
        return all(sum(m.is_bot and m.text.startswith((":white_check_mark:", ":warning:")) for m in
                       slack.thread(CHANNEL, e["ts"])) == FOLLOW_UPS + 1 for e in roots)

    try:
        await wait_until(finished, 90, "every question to be answered")
    except AssertionError:
        conn = await asyncpg.connect(postgres_url)
        rows = await conn.fetch("SELECT id, status, lease_owner, lease_expires_at, attempts, question, error "
                                "FROM turns WHERE status NOT IN ('done') ORDER BY created_at")
        count = await conn.fetchval("SELECT count(*) FROM turns")
        await conn.close()
        logs = "\n".join(r.log.read_text()[-3000:] for r in c.all)
        raise AssertionError(f"{count} turns; not done: {[dict(r) for r in rows][:20]}\n{logs}") from None
    for root in roots:
        thread = slack.thread(CHANNEL, root["ts"])
        bot = [m for m in thread if m.is_bot]
        statuses = [m for m in bot if m.text.startswith((":white_check_mark:", ":hourglass", ":warning:"))]
        assert [m.text[:18] for m in statuses] == [":white_check_mark:"] * (FOLLOW_UPS + 1), statuses
        assert sum(len(m.files) for m in bot) == FOLLOW_UPS + 1, (  # one chart per question, uploaded once
            root["ts"], [(m.ts, [f["id"] for f in m.files]) for m in bot if m.files])
    for ts, question in questions:
        answers = [m for m in slack.thread(CHANNEL, ts) if m.is_bot and f"Question: {question}" in m.text]
        assert len(answers) == 1, (question, [a.text[:80] for a in answers])
    assert openai.overlaps == []  # no thread ever ran two turns at once
    sweeps = [r.received_at for r in openai.recorder.requests
              if r.method == "GET" and r.path == "/v1/containers" and "after" not in r.query]
    gaps = [b - a for a, b in itertools.pairwise(sweeps)]
    assert sweeps and all(gap > SWEEP * 0.8 for gap in gaps), gaps  # one sweep per interval, whoever leads
    assert time.monotonic() - started < 120


async def wait_until_async(probe: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := await probe()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
    return value


async def waiting_to_store_a_turn(db: str) -> bool:
    """A replica's ``submit_turn`` waits for the dedupe table (the test holds a lock on it)."""
    conn = await asyncpg.connect(db)
    try:
        return bool(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
            "AND query ILIKE 'INSERT INTO dedupe%'"))
    finally:
        await conn.close()


async def test_a_message_acknowledged_by_a_replica_killed_before_it_stored_the_turn_is_answered_once(
    postgres_url: str, tmp_path: Path,
) -> None:
    async with running_cluster(postgres_url, tmp_path, lease=6.0) as (c, slack, openai):
        await acknowledged_then_killed(c, slack, openai, postgres_url)


async def acknowledged_then_killed(c: Cluster, slack: FakeSlack, openai: FakeOpenAI, postgres_url: str) -> None:
    """A replica acknowledges a follow-up question and is SIGKILLed while it waits to store the turn (the test
    holds a lock on the dedupe table); Slack's retry reaches another replica; the question is answered once."""
    f = slack.add_file(name="sales.csv", content=CSV, user="U1")
    root = slack.post_as_user(channel=CHANNEL, user="U1", text="question root?", files=[f])
    await c.send(root, duplicate=False)

    def answered(n: int) -> bool:
        return sum(m.is_bot and m.text.startswith(":white_check_mark:")
                   for m in slack.thread(CHANNEL, root["ts"])) >= n

    await wait_until(lambda: answered(1), 30, "the first question to be answered")
    follow_up = slack.post_as_user(channel=CHANNEL, user="U1", text="question follow-up?", thread_ts=root["ts"])
    body = envelope(follow_up)
    victim, other = c.replicas[0], c.replicas[1]
    lock = await asyncpg.connect(postgres_url)
    held = lock.transaction()
    await held.start()
    await lock.execute("LOCK TABLE dedupe IN SHARE ROW EXCLUSIVE MODE")  # storing a turn waits; reads go on
    try:
        assert (await victim.sender.send_event(body)).status == 200  # acknowledged: Slack will not send it again
        await wait_until_async(lambda: waiting_to_store_a_turn(postgres_url), 20)  # after the ack, before the turn
        # Slack's retry of the same event (the same event id) reaching another replica: acknowledged, not handled
        assert (await other.sender.send_event(body, retry_num=1)).status == 200
        victim.kill()
    finally:
        await held.rollback()
        await lock.close()
    await wait_until(lambda: answered(2), 60, "the acknowledged question to be answered by another replica")
    await asyncio.sleep(GRACE + 1)  # time for a second answer, were there one
    thread = slack.thread(CHANNEL, root["ts"])
    answers = [m for m in thread if m.is_bot and "Question: question follow-up?" in m.text]
    assert len(answers) == 1, [a.text[:80] for a in answers]
    statuses = [m.text[:18] for m in thread if m.is_bot and m.text.startswith((":white_check_mark:", ":warning:"))]
    assert statuses == [":white_check_mark:"] * 2
    conn = await asyncpg.connect(postgres_url)
    try:
        row = await conn.fetchrow("SELECT done_at, text, attempts FROM inbox WHERE event_id = $1", body["event_id"])
        turns = await conn.fetchval("SELECT count(*) FROM turns WHERE message_ts = $1", follow_up["ts"])
    finally:
        await conn.close()
    assert row is not None and row["done_at"] is not None and row["text"] is None and row["attempts"] >= 1
    assert turns == 1
    replayed = sum([await r.metric("datastory_inbox_replayed_total") for r in c.live()])
    assert replayed >= 1
    assert openai.overlaps == []
