"""``/datastory status``: the channel's thread workspaces (linked), their files and last activity, what the
channel's answers cost today, and its hosted workspaces priced by the minute alive with the 5-minute minimum;
only the caller sees it."""

from __future__ import annotations

import pytest

from bot.demo import slack_events as ev
from tests.e2e.conftest import CHANNEL, USER, Harness, RunningBot
from tests.e2e.test_costs_and_limits import with_usage

pytestmark = pytest.mark.e2e


async def status(harness: Harness, bot: RunningBot, channel: str = CHANNEL) -> dict[str, object]:
    before = len(harness.slack.command_responses)
    reply = await bot.sender.send_command(ev.slash_command("/datastory", "status", channel, USER,
                                                           harness.slack.new_response_url()))
    assert reply.status == 200
    await harness.wait_for(lambda: len(harness.slack.command_responses) > before)
    return harness.slack.command_responses[-1]


async def test_status_lists_the_channels_workspaces_and_todays_costs(harness: Harness) -> None:
    harness.openai.script = with_usage  # $0.28 of tokens and one 1g session ($0.03) per answer
    bot = await harness.start()
    assert (await status(harness, bot))["text"] == (
        f"*datastory in <#{CHANNEL}>*\n"
        "• No thread of this channel holds a workspace now (share a file to start one).\n"
        "• Answers today (since 00:00 UTC): $0.0000, as recorded with each answer.")
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await harness.wait_done(event["ts"])
    elsewhere = harness.file_event("other.csv", channel="C2")
    await bot.send(elsewhere)
    await harness.wait_done(elsewhere["ts"], channel="C2")

    answer = await status(harness, bot)
    assert answer.get("response_type", "ephemeral") == "ephemeral"
    lines = str(answer["text"]).splitlines()
    link = harness.slack.permalink(CHANNEL, event["ts"])
    assert lines[0] == f"*datastory in <#{CHANNEL}>*"
    assert lines[1] == f"• thread {link}: `sales.csv`; hosted workspace; last activity just now"
    assert lines[2] == "• Answers today (since 00:00 UTC): $0.3100, as recorded with each answer."
    # alive well under a minute: billed as the 5-minute minimum at $0.03 per 20 minutes
    assert lines[3].startswith("• Hosted workspaces alive today: 0 min ≈ $0.0075 (billed by the minute at $0.03 "
                               "per 20 minutes for 1g, 5-minute minimum).")
    assert len(lines) == 4 and "other.csv" not in answer["text"]  # type: ignore[operator]
