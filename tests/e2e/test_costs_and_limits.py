"""Cost footer and budgets, provider refusals, expiry inside a turn, timeouts and resets, end to end."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from bot.demo import slack_events as ev
from bot.demo.fake_slack import FakeMessage
from bot.demo.slack_events import SlackSender
from bot.store import make_store
from bot.turns import UPLOAD_ATTEMPTS
from tests.e2e.conftest import CHANNEL, SIGNING_SECRET, USER, Harness
from tests.emulators.fake_openai import ResponseContext, ScriptedTurn, ScriptUsage, default_script

pytestmark = pytest.mark.e2e


def with_usage(ctx: ResponseContext) -> ScriptedTurn:
    turn = default_script(ctx)
    return ScriptedTurn(code=turn.code, text=turn.text, files=turn.files, logs=turn.logs,
                        usage=ScriptUsage(input_tokens=100_000, output_tokens=10_000))


async def test_each_answer_ends_with_time_and_cost_and_the_cost_is_stored(harness: Harness) -> None:
    harness.openai.script = with_usage
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    await bot.send(event)
    thread = await harness.wait_done(event["ts"])
    narrative = next(m.text for m in thread if m.is_bot and "Summary of sales.csv" in m.text)
    # gpt-4.1: 100k input x $2/M + 10k output x $8/M = $0.28, plus one 1g container session = $0.03
    assert re.search(r"_⏱ \d+\.\d s · ≈ \$0\.3100_$", narrative)
    store = make_store(bot.settings.database_url)
    await store.open()
    try:
        [turn] = await store.list_turns(next(iter(await store.list_threads())).key)
        assert turn.cost_usd == pytest.approx(0.31) and turn.model == "gpt-4.1"
        assert turn.answer and turn.answer.startswith("**Summary of sales.csv**") and turn.code
    finally:
        await store.close()


async def test_the_footer_can_be_turned_off(harness: Harness) -> None:
    bot = await harness.start(cost_footer=False)
    event = harness.file_event("sales.csv")
    await bot.send(event)
    thread = await harness.wait_done(event["ts"])
    assert not any("⏱" in m.text for m in thread if m.is_bot)


async def test_a_spent_daily_budget_refuses_the_next_turn_and_says_when_it_resets(harness: Harness) -> None:
    harness.openai.script = with_usage
    bot = await harness.start(daily_budget_usd=0.25)
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await harness.wait_done(event["ts"])
    await bot.send(harness.reply_event("and by month?", event["ts"]))
    await harness.wait_for(lambda: harness.slack.recorder.calls("chat.postEphemeral"))
    await bot.shutdown()
    [refusal] = harness.slack.recorder.calls("chat.postEphemeral")
    assert refusal.params["user"] == USER and refusal.params["thread_ts"] == event["ts"]
    text = refusal.params["text"]
    assert text.startswith("The daily analysis budget for you is used up ($0.31 of $0.25). It resets at 00:00 UTC")
    assert "`DATASTORY_DAILY_BUDGET_USD`" in text
    assert len(harness.openai.responses) == 1


async def status_after_provider_faults(harness: Harness, path: str, *, status: int, times: int,
                                      **fault: Any) -> FakeMessage:
    """Share a CSV while FakeOpenAI fails ``times`` calls of ``POST path``; the thread's status once the turn ends."""
    harness.openai.fail_next("POST", path, status=status, times=times, **fault)
    bot = await harness.start(capacity_retry_seconds=0.05)
    event = harness.file_event("sales.csv")
    await bot.send(event)
    thread = await harness.wait_done(event["ts"])
    message = harness.slack.find_message(CHANNEL, thread[1].ts)
    assert message is not None
    return message


async def test_a_provider_at_capacity_queues_the_question_and_serves_it_later(harness: Harness) -> None:
    status = await status_after_provider_faults(harness, "/v1/containers", status=429, times=5,
                                                headers={"retry-after": "0"})
    assert any("at capacity. Your question is number 1 in line" in text for text in status.history)
    assert status.text.startswith(":white_check_mark:")
    assert len(harness.openai.live_containers()) == 1


async def test_an_upload_the_provider_refuses_for_now_is_streamed_again_from_slack(harness: Harness) -> None:
    # the first refusal goes to the charting helper's upload (made as the container is created; given up at once)
    status = await status_after_provider_faults(harness, "/v1/containers/*/files", status=500,
                                                times=1 + UPLOAD_ATTEMPTS - 1)
    assert status.text.startswith(":white_check_mark:")
    assert any("did not take `sales.csv` this time; sending it again in" in text for text in status.history)
    assert [d.served for d in harness.slack.downloads] == ["file"] * UPLOAD_ATTEMPTS
    [container] = harness.openai.live_containers()
    assert [f.original_name for f in container.user_files()] == ["sales.csv"]


async def test_an_upload_refused_every_time_ends_the_turn_with_a_clear_answer(harness: Harness) -> None:
    status = await status_after_provider_faults(harness, "/v1/containers/*/files", status=503,
                                                times=1 + UPLOAD_ATTEMPTS)  # 1: the charting helper's upload
    assert status.text.startswith(":warning: The code sandbox is not taking work right now (rate limit or outage). "
                                  "Your files are kept: ask again in a few minutes.")
    assert len(harness.slack.downloads) == UPLOAD_ATTEMPTS and harness.openai.responses == {}


async def test_a_container_that_expires_between_two_calls_of_a_turn_is_rebuilt_once(harness: Harness) -> None:
    harness.openai.fail_next("POST", "/v1/responses", status=400, body="Container is expired.")
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    await bot.send(event)
    thread = await harness.wait_done(event["ts"])
    assert len(harness.openai.containers) == 2
    second = list(harness.openai.containers.values())[-1]
    assert [f.original_name for f in second.user_files()] == ["sales.csv"]
    assert any("Summary of sales.csv" in m.text for m in thread if m.is_bot)


async def test_reset_in_a_thread_deletes_the_workspace_and_the_next_question_starts_fresh(harness: Harness) -> None:
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    ts = event["ts"]
    await bot.send(event)
    await harness.wait_done(ts)
    [old] = harness.openai.live_containers()
    await bot.send(harness.reply_event("reset", ts))
    await harness.wait_for(lambda: any(m.text.startswith("Fresh start") for m in harness.slack.thread(CHANNEL, ts)))
    assert harness.openai.containers[old.id].deleted
    await bot.send(harness.reply_event("what is in the file?", ts))
    await harness.wait_done(ts, turns=2)
    [new] = harness.openai.live_containers()
    assert new.id != old.id and [f.original_name for f in new.user_files()] == ["sales.csv"]
    assert new.variables["turns"] == 1


async def test_slash_reset_resets_the_channels_threads(harness: Harness) -> None:
    bot = await harness.start(admin_users=[USER])  # a channel-wide reset needs an admin (tests/e2e/test_access.py)
    events = [harness.file_event("a.csv"), harness.file_event("b.csv")]
    for event in events:
        await bot.send(event)
    for event in events:
        await harness.wait_done(event["ts"])
    async with SlackSender(bot.url + "/slack/events", SIGNING_SECRET) as sender:
        reply = await sender.send_command(ev.slash_command("/datastory", "reset", CHANNEL, USER,
                                                           harness.slack.new_response_url()))
    assert reply.status == 200
    await harness.wait_for(lambda: harness.slack.command_responses)
    assert "Reset 2 thread workspaces in this channel" in harness.slack.command_responses[0]["text"]
    assert harness.openai.live_containers() == []


async def test_a_turn_that_runs_too_long_is_stopped_and_the_container_stays_usable(harness: Harness) -> None:
    calls: list[str] = []

    async def slow_once(ctx: ResponseContext) -> ScriptedTurn:
        calls.append(ctx.question)
        if len(calls) == 1:
            await asyncio.sleep(3)
        return default_script(ctx)

    harness.openai.script = slow_once
    bot = await harness.start(turn_timeout_seconds=1)
    event = harness.file_event("sales.csv")
    ts = event["ts"]
    await bot.send(event)
    await harness.wait_done(ts)
    status = harness.status_of(CHANNEL, ts)
    assert status is not None
    assert status.text.startswith(":warning: The analysis took longer than 1 s and was stopped. "
                                  "Try a narrower question.")
    await bot.send(harness.reply_event("just the totals", ts))
    thread = await harness.wait_done(ts, turns=2)
    assert len(harness.openai.containers) == 1
    assert any("just the totals" in m.text for m in thread if m.is_bot)
