"""Socket Mode, graceful shutdown and resuming unfinished turns at the next start."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.demo.slack_events import envelope
from tests.e2e.conftest import CHANNEL, Harness
from tests.emulators.fake_openai import ResponseContext, ScriptedTurn, default_script

pytestmark = pytest.mark.e2e


async def test_socket_mode_acks_at_once_and_answers_in_the_thread(harness: Harness) -> None:
    bot = await harness.start(socket_mode=True)
    assert bot.url == "socket-mode"
    event = harness.file_event("sales.csv")
    started = time.monotonic()
    ack = await harness.slack.socket_send(envelope(event), type="events_api", timeout=3.0)
    assert time.monotonic() - started < 3
    assert set(ack) == {"envelope_id"}
    thread = await harness.wait_done(event["ts"])
    assert any("Summary of sales.csv" in m.text for m in thread if m.is_bot)
    assert len(harness.slack.uploads) == 1
    # a first delivery carries retry_attempt 0, which Bolt turns into x-slack-retry-num: 0; it must not be dropped
    assert harness.slack.socket_sent[0]["retry_attempt"] == 0
    assert await bot.shutdown() == 0


async def test_socket_mode_acks_ignored_events_too(harness: Harness) -> None:
    await harness.start(socket_mode=True)
    reaction = {"type": "reaction_added", "user": "U1", "reaction": "tada", "event_ts": "1.2",
                "item": {"type": "message", "channel": CHANNEL, "ts": "1.1"}}
    ack = await harness.slack.socket_send(envelope(reaction), type="events_api", timeout=3.0)
    assert "envelope_id" in ack


async def test_shutdown_leaves_an_unfinished_turn_that_the_next_start_resumes(harness: Harness) -> None:
    hold = asyncio.Event()
    calls: list[str] = []

    async def stuck(ctx: ResponseContext) -> ScriptedTurn:
        calls.append(ctx.question)
        await hold.wait()
        return default_script(ctx)

    harness.openai.script = stuck
    bot = await harness.start(shutdown_grace_seconds=0.3)
    event = harness.file_event("sales.csv", text="what changed?")
    ts = event["ts"]
    await bot.send(event)
    await harness.wait_for(lambda: calls)
    started = time.monotonic()
    assert await bot.shutdown() == 0
    assert time.monotonic() - started < 5
    assert not any(m.text.startswith(":white_check_mark:") for m in harness.slack.thread(CHANNEL, ts))

    harness.openai.script = default_script
    hold.set()
    await harness.start()
    thread = await harness.wait_done(ts)
    status = harness.status_of(CHANNEL, ts)
    assert status is not None and status.text.startswith(":white_check_mark:")
    assert len([m for m in thread if m.is_bot and m.text.startswith(":hourglass")]) == 0  # one status message, reused
    assert len(harness.openai.live_containers()) == 1
    assert len(harness.openai.live_containers()[0].user_files()) == 1
    assert harness.openai.live_containers()[0].variables["questions"][-1] == "what changed?"


async def test_a_running_turn_finishes_within_the_grace_period(harness: Harness) -> None:
    gate = asyncio.Event()

    async def slow(ctx: ResponseContext) -> ScriptedTurn:
        gate.set()
        await asyncio.sleep(0.3)
        return default_script(ctx)

    harness.openai.script = slow
    bot = await harness.start(shutdown_grace_seconds=10)
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await gate.wait()
    assert await bot.shutdown() == 0
    status = harness.status_of(CHANNEL, event["ts"])
    assert status is not None and status.text.startswith(":white_check_mark:")


async def test_sweep_command_deletes_idle_containers_and_the_next_question_rebuilds(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    from bot import cli

    bot = await harness.start()
    event = harness.file_event("sales.csv")
    ts = event["ts"]
    await bot.send(event)
    await harness.wait_done(ts)
    [container] = harness.openai.live_containers()

    assert await cli.amain(["sweep", "--idle-minutes", "0", "--dry-run"], settings=bot.settings) == 0
    assert "would delete 1 idle" in capsys.readouterr().out
    assert not harness.openai.containers[container.id].deleted

    assert await cli.amain(["sweep", "--idle-minutes", "0"], settings=bot.settings) == 0
    out = capsys.readouterr().out
    assert out.startswith("deleted 1 idle, 0 orphaned and 0 expired container(s)")
    assert f"idle: {container.id}" in out
    assert harness.openai.containers[container.id].deleted

    await bot.send(harness.reply_event("which region grew fastest?", ts))
    thread = await harness.wait_done(ts, turns=2)
    [rebuilt] = harness.openai.live_containers()
    assert rebuilt.id != container.id and rebuilt.name == container.name
    assert [f.original_name for f in rebuilt.user_files()] == ["sales.csv"]
    assert any(m.text.startswith("_The workspace had expired; I reloaded `sales.csv`._") for m in thread if m.is_bot)


async def test_a_stopping_replica_claims_nothing_more_while_a_slow_request_is_still_being_read(
        harness: Harness) -> None:
    """SIGTERM stops the taking of work at once, even while the HTTP server still waits for a request it is
    handling (a slow client): a queued turn is left to the other replicas, and that request gets the grace period
    at most."""
    gate = asyncio.Event()
    asked: list[str] = []

    async def held(ctx: ResponseContext) -> ScriptedTurn:
        asked.append(ctx.question)
        await gate.wait()
        return default_script(ctx)

    harness.openai.script = held
    bot = await harness.start(shutdown_grace_seconds=1.5, max_concurrent_turns=1)
    first = harness.file_event("sales.csv", text="first?")
    await bot.send(first)
    await harness.wait_for(lambda: asked)
    second = harness.file_event("sales.csv", text="second?")
    await bot.send(second)
    await harness.wait_for(lambda: any(m.is_bot for m in harness.slack.thread(CHANNEL, second["ts"])))

    host, port = bot.url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n{\"type\": ")  # the rest never comes
    await writer.drain()
    await asyncio.sleep(0.2)
    started = time.monotonic()
    stopping = asyncio.create_task(bot.shutdown())
    await asyncio.sleep(0.3)
    gate.set()  # the first turn ends within the grace period and frees its slot
    assert await stopping == 0
    writer.close()
    assert time.monotonic() - started < 6
    assert asked == ["first?"]  # the queued question was not claimed by the stopping replica
    assert any(m.text.startswith(":white_check_mark:") for m in harness.slack.thread(CHANNEL, first["ts"]))
