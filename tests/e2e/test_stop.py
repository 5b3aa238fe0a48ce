"""Stop: ``stop`` in a thread (or ``/datastory stop`` in the channel) interrupts the analysis running there (the
hosted background response is cancelled on the provider); the thread is told who stopped it, the workspace and its
data stay, and the next question works in it; with nothing running, only the person who asked is told."""

from __future__ import annotations

import asyncio

import pytest

from bot.demo import slack_events as ev
from tests.e2e.conftest import CHANNEL, USER, Harness, RunningBot
from tests.emulators.fake_openai import ResponseContext, ScriptedTurn, default_script

pytestmark = pytest.mark.e2e


def slow_first(started: asyncio.Event, release: asyncio.Event) -> object:
    async def script(ctx: ResponseContext) -> ScriptedTurn:
        if not ctx.chain and not release.is_set():
            started.set()
            await release.wait()  # a long analysis (cancelled on the provider when the turn is stopped)
        return default_script(ctx)
    return script


async def command(harness: Harness, bot: RunningBot, text: str) -> str:
    reply = await bot.sender.send_command(ev.slash_command("/datastory", text, CHANNEL, USER,
                                                           harness.slack.new_response_url()))
    return reply.body.get("text", "") if isinstance(reply.body, dict) else str(reply.body)


async def test_stop_in_the_thread_interrupts_and_the_next_question_uses_the_same_workspace(
        harness: Harness) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    harness.openai.script = slow_first(started, release)  # type: ignore[assignment]
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await asyncio.wait_for(started.wait(), 20)
    await bot.send(harness.reply_event("stop", event["ts"]))
    thread = await harness.wait_done(event["ts"])
    status = harness.status_of(CHANNEL, event["ts"])
    assert status is not None and status.text.startswith(
        f":warning: Stopped by <@{USER}>: the running code was interrupted. The data and the variables are kept; "
        "ask again, or ask something else.")
    assert not any(m.is_bot and "Summary of sales.csv" in m.text for m in thread)
    [container] = harness.openai.live_containers()
    # the hosted response ran in background mode and the stop cancelled it on the provider
    await harness.wait_for(lambda: harness.openai.cancelled)
    [cancelled] = harness.openai.cancelled
    assert harness.openai.responses[cancelled].status == "cancelled"
    assert [(r.method, r.path) for r in harness.openai.recorder.calls("/cancel")] == [
        ("POST", f"/v1/responses/{cancelled}/cancel")]
    assert container.file_by_name("sales.csv") is not None  # the container and its data are kept
    release.set()

    await bot.send(harness.reply_event("and by month?", event["ts"]))
    thread = await harness.wait_done(event["ts"], turns=2)
    assert harness.openai.live_containers() == [container]  # the same workspace, the data still there
    assert any(m.is_bot and "Summary of sales.csv" in m.text for m in thread)


async def test_stop_with_nothing_running_is_told_only_to_the_person(harness: Harness) -> None:
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await harness.wait_done(event["ts"])
    await bot.send(harness.reply_event("stop", event["ts"]))
    await harness.wait_for(lambda: harness.slack.ephemerals)
    [note] = harness.slack.ephemerals
    assert (note["user"], note["text"]) == (USER, "Nothing is running in this thread right now.")
    assert await command(harness, bot, "stop") == "Nothing of yours is running in this channel right now."
