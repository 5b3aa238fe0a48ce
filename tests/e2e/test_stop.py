"""Stop: ``stop`` in a thread (or ``/datastory stop`` in the channel) interrupts the analysis running there (the
hosted background response is cancelled on the provider); the thread is told who stopped it, the workspace and its
data stay, and the next question works in it; with nothing running, only the person who asked is told."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.demo import slack_events as ev
from bot.demo.slack_state import FakeMessage
from tests.e2e.conftest import CHANNEL, USER, Harness, RunningBot
from tests.emulators.fake_openai import (
    ChatReply,
    ResponseContext,
    ScriptedTurn,
    default_chat_script,
    default_script,
    message_text,
)

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


async def test_the_status_stop_button_interrupts_a_local_cell_and_its_variables_stay(harness: Harness) -> None:
    """The local sandbox: a long cell is interrupted by the Stop button of the status reply; the next question's
    code reads the variable the stopped turn set, in the same kernel."""
    def chat(body: dict[str, object]) -> ChatReply:
        messages = list(body.get("messages") or [])  # type: ignore[call-overload]
        last = messages[-1] if messages else {}
        question = next(message_text(m) for m in reversed(messages) if m.get("role") == "user")
        tools = sum(1 for m in messages if m.get("role") == "tool")
        if last.get("role") == "user" and "slow" in question:
            code = "marker = 41\nprint('set')"
        elif last.get("role") == "tool" and "slow" in question and tools == 1:
            code = "import time\ntime.sleep(120)"  # the long cell, in the same kernel
        elif last.get("role") == "user":
            code = "print(marker + 1)"
        else:
            return default_chat_script(body)  # type: ignore[arg-type]
        return ChatReply(tool_calls=[{"name": "run_python", "arguments": {"code": code}}])

    harness.openai.chat_script = chat  # type: ignore[assignment]
    bot = await harness.start(sandbox="local", local_isolation="relaxed", local_pool_size=0,
                              local_dir=str(harness.tmp / "kernels"))
    event = harness.file_event("sales.csv", text="slow: the whole story?")
    await bot.send(event)

    def running() -> FakeMessage | None:
        status = harness.status_of(CHANNEL, event["ts"])
        msg = harness.slack.find_message(CHANNEL, status.ts) if status is not None else None
        return msg if msg is not None and msg.blocks and len(harness.openai.chat_completions) == 2 else None

    # the first cell set the variable; the model asked for the long cell; the status reply carries Stop
    msg = await harness.wait_for(running, timeout=30)
    [button] = [e for b in msg.blocks or [] if b["type"] == "actions" for e in b["elements"]]
    assert (button["action_id"], button["text"]["text"]) == ("turn_stop", "Stop")
    await asyncio.sleep(1.5)  # the long cell runs in the warm kernel
    started = time.monotonic()
    payload = ev.block_actions("turn_stop", button["value"], channel_id=CHANNEL, user_id=USER, message_ts=msg.ts,
                               response_url=harness.slack.new_response_url(), thread_ts=event["ts"])
    assert (await bot.sender.send_interactive(payload)).status == 200
    await harness.wait_done(event["ts"])
    assert time.monotonic() - started < 10  # interrupted, not waited for
    assert msg.text.startswith(f":warning: Stopped by <@{USER}>: the running code was interrupted.")
    assert not msg.blocks  # the Stop button went with the run

    again = await bot.sender.send_interactive(payload)  # a second click: nothing runs, said to the clicker alone
    assert again.status == 200
    await harness.wait_for(lambda: harness.slack.command_responses)
    assert harness.slack.command_responses[-1]["text"] == "Nothing is running in this thread right now."

    await bot.send(harness.reply_event("and then?", event["ts"]))
    thread = await harness.wait_done(event["ts"], turns=2)
    assert any(m.is_bot and "42" in m.text for m in thread), [m.text[:300] for m in thread if m.is_bot]
