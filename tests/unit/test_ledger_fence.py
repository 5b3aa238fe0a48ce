"""The ledger's fenced, two-phase upload against the real store (SQLite, PostgreSQL) and FakeSlack over loopback.

A replica whose lease renewer is starved (under heavy load) is still uploading a chart when its lease expires and
another replica takes the turn over: its share is fenced (the lease checked in the store right before
``files.completeUploadExternal``), so only the new owner's upload reaches the thread. A run that shared the files
and died before recording them leaves its intent (the Slack file ids) in the ledger: the next run finds those files
in the thread and adopts them instead of uploading again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.demo.fake_slack import FakeSlack
from bot.metrics import Metrics
from bot.poster import Upload
from bot.slack_gateway import SlackGateway
from bot.store import SqlStore
from bot.store.base import NewTurn, ThreadKey, TurnRecord
from bot.turns.ledger import AnswerLedger
from bot.turns.queue import Lease
from tests.clocks import HandClock

LEASE = 30.0
PNG = b"\x89PNG\r\n\x1a\n" + b"chart" * 20
CHART = [Upload(filename="revenue.png", data=PNG, title="Revenue")]


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token="xoxb-test") as fake:
        yield fake


@pytest.fixture
async def gateway(slack: FakeSlack) -> AsyncIterator[SlackGateway]:
    gw = SlackGateway(client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url), token=slack.bot_token,
                      api_url=slack.api_url)
    yield gw
    await gw.close()


async def claimed(store: SqlStore, slack: FakeSlack, owner: str, now: float) -> TurnRecord:
    record = await store.claim_turn(owner=owner, now=now, lease_seconds=LEASE)
    assert record is not None and record.lease_owner == owner
    return record


async def a_turn(store: SqlStore, slack: FakeSlack) -> None:
    root = slack.post_as_user(channel="C1", user="U1", text="revenue by region?")
    key = ThreadKey(team="T1", channel="C1", thread_ts=root["ts"])
    assert await store.submit_turn(NewTurn(id="t1", key=key, message_ts=root["ts"], user="U1", question="q",
                                           files=(), created_at=10.0), dedupe_keys=("k1",))


def lease(store: SqlStore, clock: HandClock, turn: TurnRecord) -> Lease:
    assert turn.lease_owner is not None
    return Lease(store=store, clock=clock, turn_id="t1", owner=turn.lease_owner, seconds=LEASE, metrics=Metrics(),
                 attempt=turn.attempts, expires_at=turn.lease_expires_at)


@pytest.mark.parametrize("taker", ["second", "first"])  # another replica, or this one again (a later claim)
async def test_a_replica_that_lost_its_lease_mid_upload_shares_nothing(store: SqlStore, slack: FakeSlack,
                                                                       gateway: SlackGateway, taker: str) -> None:
    clock = HandClock(100.0)
    await a_turn(store, slack)
    first_turn = await claimed(store, slack, "first", clock.now())
    first_lease = lease(store, clock, first_turn)
    first = await AnswerLedger.open(store=store, poster=gateway, clock=clock, turn=first_turn, resumed=False,
                                    lease=first_lease)
    held = slack.hold("files.getUploadURLExternal")

    async def first_run() -> None:
        first_lease.keep()  # renews every LEASE/3 real seconds: starved for the length of this test
        try:
            await first.upload("files", CHART, after=None)
        finally:
            await first_lease.stop()

    first_task = asyncio.create_task(first_run())
    await asyncio.wait_for(held.arrived.wait(), 10)

    clock.t += LEASE + 1  # the first replica's lease expired: the second takes the turn over
    second_turn = await claimed(store, slack, taker, clock.now())
    assert second_turn.attempts == 2
    second_lease = lease(store, clock, second_turn)
    second = await AnswerLedger.open(store=store, poster=gateway, clock=clock, turn=second_turn, resumed=True,
                                     lease=second_lease)
    second_task = asyncio.create_task(second.upload("files", CHART, after=None))
    while held.arrivals < 2:  # both are uploading the same chart now
        await asyncio.sleep(0.01)
    held.release()

    await second_task
    with pytest.raises(asyncio.CancelledError):
        await first_task
    assert first_lease.lost and not second_lease.lost
    [upload] = slack.uploads  # exactly one upload shared, the second replica's
    assert upload.content == PNG
    assert len(slack.recorder.calls("files.completeUploadExternal")) == 1
    parts = await store.posted_parts("t1")
    assert parts["files"] == "revenue.png" and parts["files:ids"] == upload.id
    assert parts["files:intent:2"] == upload.id  # what the second run was about to share, recorded before


async def test_a_run_that_shared_files_before_recording_them_has_them_adopted(store: SqlStore, slack: FakeSlack,
                                                                             gateway: SlackGateway) -> None:
    clock = HandClock(100.0)
    await a_turn(store, slack)
    first_turn = await claimed(store, slack, "first", clock.now())
    first_lease = lease(store, clock, first_turn)
    first = await AnswerLedger.open(store=store, poster=gateway, clock=clock, turn=first_turn, resumed=False,
                                    lease=first_lease)
    await first.upload("files", CHART, after=None)
    [upload] = slack.uploads
    parts = await store.posted_parts("t1")
    assert parts["files:intent:1"] == upload.id

    # the replica died after Slack shared the files and before its ledger knew: the ledger as the next run sees it
    clock.t += LEASE + 1
    second_turn = await claimed(store, slack, "second", clock.now())
    before = {p: ref for p, ref in parts.items() if p not in ("files", "files:ids")}
    second = AnswerLedger(store=store, poster=gateway, clock=clock, turn=second_turn, posted=before, resumed=True,
                          lease=lease(store, clock, second_turn))
    await second.upload("files", CHART, after=None)
    assert len(slack.uploads) == 1  # adopted, not uploaded again
    assert second.posted["files:ids"] == upload.id

    # an intent whose files never reached the thread (the run died before sharing) is uploaded anew
    clock.t += LEASE + 1
    third_turn = await claimed(store, slack, "third", clock.now())
    third = AnswerLedger(store=store, poster=gateway, clock=clock, turn=third_turn, resumed=True,
                         posted={"files:intent:1": "F0NOTSHARED"}, lease=lease(store, clock, third_turn))
    await third.upload("files", CHART, after=None)
    assert len(slack.uploads) == 2


async def test_a_fence_trusts_the_expiry_its_own_claim_wrote_and_renews_within_the_margin(store: SqlStore,
                                                                                          slack: FakeSlack) -> None:
    clock = HandClock(100.0)
    await a_turn(store, slack)
    held = lease(store, clock, await claimed(store, slack, "first", clock.now()))

    async def expiry() -> float | None:
        turn = await store.get_turn("t1")
        assert turn is not None
        return turn.lease_expires_at

    clock.t = 110.0  # 20 s of the claim's 30 left, more than half: nobody can claim before, no write
    await held.fence()
    assert await expiry() == 130.0
    clock.t = 120.0  # 10 s left: renewed in the store first
    await held.fence()
    assert await expiry() == 150.0
    clock.t = 151.0  # expired (a starved replica) and taken over: the fence asks the store and gives the turn up
    await claimed(store, slack, "second", clock.now())
    with pytest.raises(asyncio.CancelledError):
        await held.fence()
    assert held.lost and await expiry() == 151.0 + LEASE
