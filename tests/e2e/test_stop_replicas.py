"""Stop across replicas: two ``datastory run --http`` processes on one database (SQLite file, PostgreSQL). A turn
analyses on one replica; ``stop`` in its thread reaches the other replica, which records the stop in the store; the
replica running the turn stops it within about a lease period (the hosted background response cancelled, the
container kept), the thread says who stopped it, and the next question works on the same data. ``/datastory stop``
sent to the other replica stops a second long turn the same way, and a second stop changes nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.demo import slack_events as ev
from bot.demo.fake_slack import FakeSlack
from bot.demo.slack_events import envelope
from tests.emulators.fake_openai import FakeOpenAI, ResponseContext, ScriptedTurn, default_script
from tests.replicas import Replica, replica_env, start_replica

pytestmark = pytest.mark.e2e

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-stop-replicas"
OPENAI_KEY = "sk-stop-replicas"
CHANNEL, USER = "C1", "U1"
LEASE = 3.0
CSV = b"region,month,revenue\nNorth,2025-01,100\nSouth,2025-01,80\n"


Pair = tuple[Replica, Replica, FakeSlack, FakeOpenAI, asyncio.Event]


@pytest.fixture
async def pair(replica_database_url: str, tmp_path: Path) -> AsyncIterator[Pair]:
    database_url = replica_database_url
    started = asyncio.Event()

    async def script(ctx: ResponseContext) -> ScriptedTurn:
        if "slow" in ctx.question:
            started.set()
            await asyncio.Event().wait()  # a long analysis: only a cancel ends it
        return default_script(ctx)

    (tmp_path / "db").mkdir(exist_ok=True)
    async with FakeSlack(bot_token=BOT_TOKEN) as slack, FakeOpenAI(api_key=OPENAI_KEY) as openai:
        openai.script = script
        env = replica_env(slack_api_url=slack.api_url, openai_base_url=openai.base_url, database_url=database_url,
                          signing_secret=SECRET, bot_token=BOT_TOKEN, openai_key=OPENAI_KEY, lease_seconds=LEASE,
                          shutdown_grace_seconds=1, log_level="INFO")
        first = await start_replica("a", env, tmp_path, SECRET)
        second = await start_replica("b", env, tmp_path, SECRET)
        try:
            yield first, second, slack, openai, started
        finally:
            for replica in (first, second):
                if replica.alive:
                    await replica.stop()


async def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def statuses(slack: FakeSlack, ts: str) -> list[str]:
    return [m.text for m in slack.thread(CHANNEL, ts) if m.is_bot and m.text.startswith((":white_check_mark:",
                                                                                        ":warning:"))]


async def started_in(started: asyncio.Event, replicas: tuple[Replica, ...], timeout: float = 60) -> None:
    """Wait for the slow analysis to start; on a timeout, the replicas' logs say why."""
    try:
        await asyncio.wait_for(started.wait(), timeout)
    except TimeoutError:
        raise AssertionError("\n".join(r.log.read_text()[-3000:] for r in replicas)) from None


async def running_and_other(first: Replica, second: Replica) -> tuple[Replica, Replica]:
    """The replica running the one turn (whichever claimed it), and the other one."""
    counts = [await r.metric("datastory_turns_running") for r in (first, second)]
    assert sorted(counts) == [0, 1], counts
    return (first, second) if counts[0] == 1 else (second, first)


async def test_a_stop_sent_to_one_replica_stops_the_turn_running_on_the_other(pair: Pair) -> None:
    first, second_replica, slack, openai, started = pair
    f = slack.add_file(name="sales.csv", content=CSV, user=USER)
    root = slack.post_as_user(channel=CHANNEL, user=USER, text="slow: the whole story?", files=[f])
    assert (await first.sender.send_event(envelope(root))).status == 200
    await started_in(started, (first, second_replica))
    _, other = await running_and_other(first, second_replica)

    stop = slack.post_as_user(channel=CHANNEL, user=USER, text="stop", thread_ts=root["ts"])
    asked = time.monotonic()
    assert (await other.sender.send_event(envelope(stop))).status == 200
    await wait_for(lambda: statuses(slack, root["ts"]), 4 * LEASE, "the stop to reach the running replica")
    assert time.monotonic() - asked < 2 * LEASE  # about a lease period
    [said] = statuses(slack, root["ts"])
    assert said.startswith(f":warning: Stopped by <@{USER}>: the running code was interrupted.")
    [cancelled] = openai.cancelled  # the hosted background response was cancelled on the provider
    assert openai.responses[cancelled].status == "cancelled"
    [container] = openai.live_containers()
    assert container.file_by_name("sales.csv") is not None
    assert not slack.ephemerals  # the person was not told that nothing runs

    again = slack.post_as_user(channel=CHANNEL, user=USER, text="stop", thread_ts=root["ts"])
    assert (await other.sender.send_event(envelope(again))).status == 200  # a second stop: harmless
    follow = slack.post_as_user(channel=CHANNEL, user=USER, text="and by month?", thread_ts=root["ts"])
    assert (await other.sender.send_event(envelope(follow))).status == 200
    await wait_for(lambda: len(statuses(slack, root["ts"])) == 2, 30, "the follow-up to be answered")
    assert statuses(slack, root["ts"])[1].startswith(":white_check_mark:")
    assert openai.live_containers() == [container]  # the same workspace, the data still there
    assert any(m.is_bot and "Summary of sales.csv" in m.text for m in slack.thread(CHANNEL, root["ts"]))

    # /datastory stop on the replica not running the turn
    started.clear()
    g = slack.add_file(name="costs.csv", content=CSV, user=USER)
    second = slack.post_as_user(channel=CHANNEL, user=USER, text="slow: costs?", files=[g])
    assert (await first.sender.send_event(envelope(second))).status == 200
    await started_in(started, (first, second_replica))
    _, other = await running_and_other(first, second_replica)
    reply = await other.sender.send_command(ev.slash_command("/datastory", "stop", CHANNEL, USER,
                                                             slack.new_response_url()))
    text = reply.body.get("text") if isinstance(reply.body, dict) else reply.body
    assert text == "Stopped 1 running analysis in this channel."
    await wait_for(lambda: statuses(slack, second["ts"]), 4 * LEASE, "the channel stop to reach the runner")
    assert statuses(slack, second["ts"])[0].startswith(f":warning: Stopped by <@{USER}>")
    assert len(openai.cancelled) == 2
