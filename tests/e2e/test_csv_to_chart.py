"""A CSV dropped in Slack gets an analysis and a chart in its thread; follow-ups reuse the same container."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import BOT_TOKEN, CHANNEL, OPENAI_KEY, SALES_CSV, Harness

pytestmark = pytest.mark.e2e


async def test_csv_drop_gets_narrative_and_chart_in_its_thread(harness: Harness) -> None:
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    ts = event["ts"]

    reply = await bot.send(event)
    assert reply.status == 200 and reply.elapsed < 3

    thread = await harness.wait_done(ts)
    slack, oai = harness.slack, harness.openai

    # feedback first: a reaction on the message and a status reply that said what it was reading
    status = harness.status_of(CHANNEL, ts)
    assert status is not None
    first_status = slack.find_message(CHANNEL, status.ts)
    assert first_status is not None and first_status.history[0] == ":hourglass_flowing_sand: Reading `sales.csv`…"
    assert status.text.startswith(":white_check_mark: Done: analysed `sales.csv` in ")
    assert slack.reactions[(CHANNEL, ts)] == {"white_check_mark"}
    assert slack.recorder.calls("reactions.add")[0].params["name"] == "eyes"

    # the container: our name, the idle TTL anchored on last_active_at
    [container] = oai.live_containers()
    assert container.name == f"datastory-T1-{CHANNEL}-{ts}"
    assert container.expires_after == {"anchor": "last_active_at", "minutes": 20}
    [uploaded] = container.user_files()
    helper = sorted(f.original_name for f in container.helper_files())
    assert helper == ["datastory_charts.py", "datastory_style.py"]  # the charting helper, beside the data
    assert uploaded.original_name == "sales.csv" and uploaded.data == SALES_CSV

    # the analysis ran with code_interpreter bound to that container
    [response] = oai.responses.values()
    assert response.request["tools"] == [{"type": "code_interpreter", "container": container.id}]
    assert response.previous_response_id is None

    # the narrative and the chart the code wrote, in the thread
    answer = [m for m in thread if m.is_bot and "Summary of sales.csv" in m.text]
    assert len(answer) == 1 and "*Summary of sales.csv*" in answer[0].text
    [chart] = [f for f in container.files.values() if f.source == "assistant"]
    [posted] = slack.uploads
    assert (posted.name, posted.content, posted.channel, posted.thread_ts) == (chart.name, chart.data, CHANNEL, ts)
    assert posted.content.startswith(b"\x89PNG")
    complete = slack.recorder.calls("files.completeUploadExternal")[0]
    assert (complete.params["channel_id"], complete.params["thread_ts"]) == (CHANNEL, ts)

    # order a user sees: status (updated in place), narrative, then the chart
    bot_items = [m for m in thread if m.is_bot]
    assert bot_items[0].ts == status.ts
    assert bot_items[-1].files and bot_items[-1].files[0]["name"] == chart.name


async def test_follow_up_reuses_the_container_and_chains_the_response(harness: Harness) -> None:
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    ts = event["ts"]
    await bot.send(event)
    await harness.wait_done(ts)
    [first_response] = harness.openai.responses

    await bot.send(harness.reply_event("which region grew fastest?", ts))
    thread = await harness.wait_done(ts, turns=2)

    assert len(harness.openai.containers) == 1
    [container] = harness.openai.live_containers()
    assert container.variables["turns"] == 2
    assert container.variables["questions"][-1] == "which region grew fastest?"
    assert len(container.user_files()) == 1  # the file is not uploaded twice
    second = next(r for r in harness.openai.responses.values() if r.id != first_response)
    assert second.previous_response_id == first_response
    assert any("Turn 2 in this container" in m.text for m in thread if m.is_bot)
    assert len(harness.slack.uploads) == 2


async def test_text_sent_with_the_file_is_the_first_question(harness: Harness) -> None:
    bot = await harness.start()
    event = harness.file_event("sales.csv", text="which region grew fastest?")
    await bot.send(event)
    await harness.wait_done(event["ts"])
    [response] = harness.openai.responses.values()
    [container] = harness.openai.live_containers()
    assert container.variables["questions"] == ["which region grew fastest?"]
    assert "which region grew fastest?" in str(response.request["input"])


async def test_secrets_go_only_where_they_belong(harness: Harness) -> None:
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await harness.wait_done(event["ts"])
    for rec in harness.openai.recorder.requests:
        assert BOT_TOKEN not in (rec.authorization or "") and BOT_TOKEN.encode() not in rec.body
    for rec in harness.slack.recorder.requests:
        assert OPENAI_KEY not in (rec.authorization or "") and OPENAI_KEY.encode() not in rec.body
    [download] = harness.slack.downloads
    assert download.authorization == f"Bearer {BOT_TOKEN}"
