"""A 🗑️ on an answer by the person who asked (or an admin) removes it: its messages (``chat.delete``), the files
it posted (``files.delete``) and the files its code wrote in the container; the status says who removed it.
Anyone else's 🗑️ is told why nothing happened, privately."""

from __future__ import annotations

import pytest

from bot.demo import slack_events as ev
from tests.e2e.conftest import CHANNEL, USER, Harness, RunningBot
from tests.e2e.test_native import answered, thread_posts, with_helper_outputs

pytestmark = pytest.mark.e2e


async def trash(harness: Harness, bot: RunningBot, ts: str, user: str) -> None:
    assert (await bot.send(ev.reaction_added(user, "wastebasket", channel=CHANNEL, ts=ts,
                                             item_user="UBOT"))).status == 200


async def test_the_asker_removes_an_answer_its_charts_and_its_outputs(harness: Harness) -> None:
    with_helper_outputs(harness)
    bot = await harness.start()
    ts = await answered(harness, bot)
    posted = [m for m in harness.slack.messages if m.thread_ts == ts and m.is_bot]
    status, narrative, chart, table, files = posted
    file_ids = sorted(f["id"] for f in files.files)
    [container] = harness.openai.live_containers()
    outputs = [f for f in container.files.values() if f.source == "assistant" and f.name.endswith(".png")]
    assert len(outputs) == 2

    await trash(harness, bot, chart.ts, "U2")  # not the asker, not an admin
    await harness.wait_for(lambda: harness.slack.ephemerals)
    [note] = harness.slack.ephemerals
    assert (note["user"], note["text"]) == ("U2", "Only the person who asked, or an admin, can remove this answer.")
    assert not harness.slack.recorder.calls("chat.delete")

    await trash(harness, bot, narrative.ts, USER)
    await harness.wait_for(lambda: "removed by" in (harness.slack.find_message(CHANNEL, status.ts).text or ""))
    deleted = sorted(c.params["ts"] for c in harness.slack.recorder.calls("chat.delete"))
    assert deleted == sorted([narrative.ts, chart.ts, table.ts])
    assert all(c.params["channel"] == CHANNEL for c in harness.slack.recorder.calls("chat.delete"))
    assert sorted(c.params["file"] for c in harness.slack.recorder.calls("files.delete")) == file_ids
    left = [m for m in harness.slack.thread(CHANNEL, ts) if m.is_bot]
    assert [m.ts for m in left] == [status.ts]  # the file message went with its last file
    assert harness.slack.find_message(CHANNEL, status.ts).text == (  # type: ignore[union-attr]
        f":wastebasket: This answer was removed by <@{USER}>.")
    assert not [f for f in container.files.values() if f.source == "assistant" and f.name.endswith(".png")]
    assert [f.original_name for f in container.user_files()] == ["sales.csv"]  # the data stays



async def test_an_admin_may_remove_anyones_answer(harness: Harness) -> None:
    with_helper_outputs(harness)
    bot = await harness.start(admin_users=["U9"])
    ts = await answered(harness, bot)
    narrative = thread_posts(harness, ts)[1]
    narrative_ts = next(m.ts for m in harness.slack.messages if m.thread_ts == ts and m.text == narrative["text"])
    await trash(harness, bot, narrative_ts, "U9")
    await harness.wait_for(lambda: len(harness.slack.recorder.calls("chat.delete")) == 3)
    assert not harness.slack.ephemerals
