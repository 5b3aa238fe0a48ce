"""A mention in a thread whose file was shared before the bot was there: the thread is read once and answered."""

from __future__ import annotations

import pytest

from bot.demo import slack_events as ev
from bot.intake import NO_DATA_IN_THREAD_TEXT
from tests.e2e.conftest import CHANNEL, SALES_CSV, Harness, RunningBot

pytestmark = pytest.mark.e2e


async def mention(harness: Harness, bot: RunningBot, text: str, thread_ts: str) -> dict[str, object]:
    """A reply that mentions the bot, delivered as Slack does: a ``message`` event and an ``app_mention``."""
    message = harness.reply_event(f"<@UBOT> {text}", thread_ts)
    await bot.send(message)
    await bot.send(ev.app_mention(CHANNEL, "U1", f"<@UBOT> {text}", ts=str(message["ts"]), thread_ts=thread_ts))
    return message


async def test_a_mention_in_a_thread_shared_before_the_bot_reads_it_once_and_answers(harness: Harness) -> None:
    harness.slack.replies_page_size = 2  # the file sits on the second page of the thread
    root = harness.slack.post_as_user(channel=CHANNEL, user="U2", text="numbers for this quarter")
    harness.slack.post_as_user(channel=CHANNEL, user="U3", text="thanks!", thread_ts=root["ts"])
    f = harness.slack.add_file(name="sales.csv", content=SALES_CSV, user="U2")
    harness.slack.post_as_user(channel=CHANNEL, user="U2", files=[f], thread_ts=root["ts"])
    bot = await harness.start()  # none of the above reached it
    await mention(harness, bot, "which region sells most?", root["ts"])
    thread = await harness.wait_done(root["ts"])
    assert any(m.is_bot and "Summary of sales.csv" in m.text for m in thread)
    reads = harness.slack.recorder.calls("conversations.replies")
    assert len(reads) == 2 and reads[1].params.get("cursor")  # two pages, one read for the post's two events
    [request] = [r for r in harness.openai.recorder.calls("/v1/responses")]
    assert "which region sells most?" in str(request.params)

    await mention(harness, bot, "and the trend?", root["ts"])  # the thread has data now: a follow-up
    await harness.wait_done(root["ts"], turns=2)
    assert len(harness.slack.recorder.calls("conversations.replies")) == 2


async def test_a_mention_in_a_thread_without_data_says_how_to_start(harness: Harness) -> None:
    root = harness.slack.post_as_user(channel=CHANNEL, user="U2", text="what do we do about churn?")
    bot = await harness.start()
    await mention(harness, bot, "can you look at this?", root["ts"])
    told = await harness.wait_for(lambda: [m for m in harness.slack.thread(CHANNEL, root["ts"]) if m.is_bot])
    assert [m.text for m in told] == [NO_DATA_IN_THREAD_TEXT]
    assert harness.slack.recorder.calls("reactions.add") == []


async def test_the_bots_own_files_in_a_thread_are_not_taken_for_data(harness: Harness) -> None:
    root = harness.slack.post_as_user(channel=CHANNEL, user="U2", text="last week's export")
    own = harness.slack.add_file(name="result.csv", content=SALES_CSV, user="UBOT")
    harness.slack.add_message(channel=CHANNEL, user="UBOT", text="", thread_ts=root["ts"], files=[own])
    bot = await harness.start()
    await mention(harness, bot, "summarise", root["ts"])
    told = await harness.wait_for(lambda: [m for m in harness.slack.thread(CHANNEL, root["ts"])
                                           if m.is_bot and m.text == NO_DATA_IN_THREAD_TEXT])
    assert len(told) == 1
