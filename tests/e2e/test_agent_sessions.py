"""Slack agent sessions: the thread's session is ``processing`` while a turn runs (Slack shows its own Stop button),
``active`` after it, ``suspended`` when the sweeper deletes its container and ``closed`` on reset; a click on
Slack's Stop button (``agent_session_stopped``) stops the turn like ``stop`` typed in the thread, cancels the hosted
response and keeps the container. Where Slack refuses the method (no ``assistant:write``), the bot stops asking
after one refusal and everything else works; ``DATASTORY_AGENT_SESSIONS=false`` never asks."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conftest import CHANNEL, USER, Harness
from tests.emulators.fake_openai import ResponseContext, ScriptedTurn, default_script

pytestmark = pytest.mark.e2e


def statuses(harness: Harness, thread_ts: str) -> list[str]:
    return [s for c, t, s in harness.slack.agent_statuses if (c, t) == (CHANNEL, thread_ts)]


async def test_the_session_follows_the_turns_and_slacks_stop_button_stops_one(harness: Harness) -> None:
    started = asyncio.Event()

    async def script(ctx: ResponseContext) -> ScriptedTurn:
        if "slow" in ctx.question:
            started.set()
            await asyncio.Event().wait()  # a long analysis: only a cancel ends it
        return default_script(ctx)

    harness.openai.script = script  # type: ignore[assignment]
    bot = await harness.start(sweep_interval_seconds=0.3)
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await harness.wait_done(event["ts"])
    await harness.wait_for(lambda: statuses(harness, event["ts"]) == ["processing", "active"])

    await bot.send(harness.reply_event("slow: and by month?", event["ts"]))
    await asyncio.wait_for(started.wait(), 20)
    assert harness.slack.agent_sessions[(CHANNEL, event["ts"])] == "processing"
    click = harness.slack.stop_agent_session(CHANNEL, event["ts"], USER)  # Slack's own Stop button
    assert (await bot.send(click)).status == 200
    await harness.wait_done(event["ts"], turns=2)
    bot_items = [m for m in harness.slack.thread(CHANNEL, event["ts"]) if m.is_bot]
    assert any(m.text.startswith(f":warning: Stopped by <@{USER}>: the running code was interrupted.")
               for m in bot_items)
    await harness.wait_for(lambda: statuses(harness, event["ts"])[-1] == "active")
    assert statuses(harness, event["ts"]) == ["processing", "active", "processing", "active"]
    assert len(harness.openai.cancelled) == 1  # the hosted response was cancelled on the provider
    [container] = harness.openai.live_containers()
    assert container.file_by_name("sales.csv") is not None  # the container and its data are kept

    assert (await bot.send(click)).status == 200  # a second click: nothing runs; the session stays active
    await harness.wait_for(lambda: len(statuses(harness, event["ts"])) == 5)
    assert statuses(harness, event["ts"])[-1] == "active" and len(harness.openai.cancelled) == 1

    harness.openai.expire(container.id)  # the sweeper deletes the expired container: the session is suspended
    await harness.wait_for(lambda: statuses(harness, event["ts"])[-1] == "suspended", timeout=10)

    await bot.send(harness.reply_event("reset", event["ts"]))
    await harness.wait_for(lambda: statuses(harness, event["ts"])[-1] == "closed", timeout=10)


@pytest.mark.parametrize("how", ["no_scope", "setting_off"])
async def test_without_agent_sessions_the_turns_are_answered_and_slack_is_asked_at_most_once(
        harness: Harness, how: str) -> None:
    if how == "no_scope":
        harness.slack.scopes = ",".join(s for s in harness.slack.scopes.split(",") if s != "assistant:write")
        bot = await harness.start()
    else:
        bot = await harness.start(agent_sessions=False)
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await harness.wait_done(event["ts"])
    await bot.send(harness.reply_event("and by month?", event["ts"]))
    await harness.wait_done(event["ts"], turns=2)
    calls = harness.slack.recorder.calls("agents.sessions.setStatus")
    assert len(calls) == (1 if how == "no_scope" else 0)
    assert not harness.slack.agent_sessions
