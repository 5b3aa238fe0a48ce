"""A mention in a thread whose CSV was shared before the bot was there: the bot reads the thread once
(``conversations.replies``, a small page), takes the files people shared in it and answers the mention's question;
a thread without data gets the short help."""

from __future__ import annotations

import pytest

from bot.demo import slack_events as ev
from bot.intake import HELP_TEXT
from tests.e2e.conftest import CHANNEL, SALES_CSV, USER, Harness

pytestmark = pytest.mark.e2e


async def test_a_mention_in_an_old_thread_analyses_the_files_shared_before(harness: Harness) -> None:
    bot = await harness.start()
    f = harness.slack.add_file(name="sales.csv", content=SALES_CSV, user="U7")
    root = harness.slack.post_as_user(channel=CHANNEL, user="U7", text="last week's numbers", files=[f])
    harness.slack.post_as_user(channel=CHANNEL, user="U8", text="thanks!", thread_ts=root["ts"])
    mention = ev.app_mention(CHANNEL, USER, "<@UBOT> which region sells most?", thread_ts=root["ts"])
    harness.slack.add_message(channel=CHANNEL, user=USER, text=mention["text"], ts=mention["ts"],
                              thread_ts=root["ts"])
    await bot.send(mention)
    thread = await harness.wait_done(root["ts"])

    [read] = harness.slack.recorder.calls("conversations.replies")
    assert (read.params["channel"], read.params["ts"], int(read.params["limit"])) == (CHANNEL, root["ts"], 15)
    [container] = harness.openai.live_containers()
    assert [u.original_name for u in container.user_files()] == ["sales.csv"]
    [response] = harness.openai.responses.values()
    assert response.request["input"] and "Question: which region sells most?" in str(response.request["input"])
    assert any(m.is_bot and "Summary of sales.csv" in m.text for m in thread)
    assert harness.slack.reactions[(CHANNEL, mention["ts"])] == {"white_check_mark"}


async def test_a_mention_in_a_thread_without_data_gets_the_help(harness: Harness) -> None:
    bot = await harness.start()
    root = harness.slack.post_as_user(channel=CHANNEL, user="U7", text="what do you all think?")
    mention = ev.app_mention(CHANNEL, USER, "<@UBOT> can you help?", thread_ts=root["ts"])
    await bot.send(mention)
    await harness.wait_for(lambda: [m for m in harness.slack.thread(CHANNEL, root["ts"]) if m.is_bot])
    [reply] = [m for m in harness.slack.thread(CHANNEL, root["ts"]) if m.is_bot]
    assert reply.text == HELP_TEXT
    assert len(harness.slack.recorder.calls("conversations.replies")) == 1 and not harness.openai.containers
