"""The message shortcut "Analyze with datastory": a file posted where the bot did not analyse it (it was not in
the channel yet) is analysed in that message's thread, the person who clicked being the asker; a message without
a file, or one already analysed, gets a note only that person sees."""

from __future__ import annotations

import pytest

from bot.demo import slack_events as ev
from tests.e2e.conftest import CHANNEL, SALES_CSV, USER, Harness, RunningBot

pytestmark = pytest.mark.e2e


async def shortcut(harness: Harness, bot: RunningBot, message: dict[str, object], user: str = USER) -> None:
    payload = ev.message_action("analyze_with_datastory", message, channel_id=CHANNEL, user_id=user,
                                response_url=harness.slack.new_response_url())
    assert (await bot.sender.send_interactive(payload)).status == 200


async def test_the_shortcut_analyses_a_message_the_bot_never_saw(harness: Harness) -> None:
    bot = await harness.start()
    f = harness.slack.add_file(name="sales.csv", content=SALES_CSV, user="U7")
    old = harness.slack.post_as_user(channel=CHANNEL, user="U7", text="numbers from last week", files=[f])
    await shortcut(harness, bot, old)  # the event itself never reached the bot
    thread = await harness.wait_done(old["ts"])
    assert any(m.is_bot and "Summary of sales.csv" in m.text for m in thread)
    assert all(m.thread_ts == old["ts"] for m in thread[1:])
    [container] = harness.openai.live_containers()
    assert [u.original_name for u in container.user_files()] == ["sales.csv"]
    assert harness.slack.reactions[(CHANNEL, old["ts"])] == {"white_check_mark"}

    await shortcut(harness, bot, old)  # a second click: already analysed, said to the clicker alone
    await harness.wait_for(lambda: harness.slack.command_responses)
    [note] = harness.slack.command_responses
    assert (note["response_type"], note["text"]) == (
        "ephemeral", "I have already analysed that message: the answer is in its thread.")
    assert len(harness.openai.responses) == 1


async def test_a_message_without_a_file_gets_a_private_note(harness: Harness) -> None:
    bot = await harness.start()
    plain = harness.slack.post_as_user(channel=CHANNEL, user="U7", text="no data here")
    await shortcut(harness, bot, plain)
    await harness.wait_for(lambda: harness.slack.command_responses)
    [note] = harness.slack.command_responses
    assert note["response_type"] == "ephemeral" and note["text"].startswith("That message has no file")
    assert not harness.openai.containers and not [m for m in harness.slack.messages if m.is_bot]


async def test_in_a_public_channel_the_bot_is_not_in_it_joins_then_answers(harness: Harness) -> None:
    harness.slack.non_member_channels.add(CHANNEL)
    bot = await harness.start()
    f = harness.slack.add_file(name="sales.csv", content=SALES_CSV, user="U7")
    old = harness.slack.post_as_user(channel=CHANNEL, user="U7", text="numbers", files=[f])
    await shortcut(harness, bot, old)
    thread = await harness.wait_done(old["ts"])
    assert any(m.is_bot and "Summary of sales.csv" in m.text for m in thread)
    [join] = harness.slack.recorder.calls("conversations.join")
    assert join.params["channel"] == CHANNEL
    assert CHANNEL not in harness.slack.non_member_channels
    assert not harness.slack.command_responses


@pytest.mark.parametrize("where", ["private", "no_scope"])
async def test_where_it_cannot_join_the_person_is_told_how_to_invite_it(harness: Harness, where: str) -> None:
    harness.slack.non_member_channels.add(CHANNEL)
    if where == "private":
        harness.slack.private_channels.add(CHANNEL)
    else:
        harness.slack.scopes = ",".join(s for s in harness.slack.scopes.split(",") if s != "channels:join")
    bot = await harness.start()
    f = harness.slack.add_file(name="sales.csv", content=SALES_CSV, user="U7")
    old = harness.slack.post_as_user(channel=CHANNEL, user="U7", text="numbers", files=[f])
    await shortcut(harness, bot, old)
    await harness.wait_for(lambda: harness.slack.command_responses)
    [note] = harness.slack.command_responses
    assert (note["response_type"], note["text"]) == (
        "ephemeral", "I'm not in this channel, so I can't answer here. Invite me with `/invite @datastory` and try "
                     "again.")
    assert len(harness.slack.recorder.calls("conversations.join")) == 1  # tried once, refused
    assert not [m for m in harness.slack.messages if m.is_bot] and not harness.openai.containers
    assert CHANNEL in harness.slack.non_member_channels
