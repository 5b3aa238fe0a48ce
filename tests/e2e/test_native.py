"""Slack-native answers, end to end: the model's charts and tables (written with the charting helper) become
Slack's data visualization and data table blocks next to the PNGs, the fallback when Slack refuses the blocks,
and the answer's buttons: "Show code" and 👍 / 👎."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import aiohttp
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.analysts.profiler import chartkit
from bot.demo import slack_events as ev
from bot.native_blocks import ChartSpec, TableSpec, chart_block, table_block
from bot.store import make_store
from bot.store.base import ThreadKey
from tests.e2e.conftest import CHANNEL, USER, Harness, RunningBot
from tests.emulators.fake_openai import ResponseContext, ScriptedTurn

pytestmark = pytest.mark.e2e

CODE = "import datastory_charts as dc\ndc.bar(regions, totals, title='Revenue by region')\n"


def helper_outputs(folder: Path) -> list[tuple[str, bytes]]:
    """What a model's code writes with the charting helper: a bar chart that fits a native block, a daily line
    that does not (30 points), and a result table."""
    old = os.getcwd()
    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)
    try:
        chartkit.bar(["North", "South", "East"], [230, 162, 135], title="Revenue by region",
                     value_label="Revenue", category_label="Region")
        chartkit.line(list(range(1, 31)), {"Visits": [float(i * 3 % 17) for i in range(30)]}, title="Daily visits",
                      ylabel="Visits", dates=False)
        chartkit.table(pd.DataFrame({"region": ["North", "South", "East"], "revenue": [230, 162, 135]}),
                       title="Revenue by region")
    finally:
        os.chdir(old)
    return sorted((p.name, p.read_bytes()) for p in folder.iterdir())


def with_helper_outputs(harness: Harness) -> list[tuple[str, bytes]]:
    files = helper_outputs(harness.tmp / "outputs")

    def script(ctx: ResponseContext) -> ScriptedTurn:
        return ScriptedTurn(code=CODE, text="**Revenue** is highest in the North.", files=files, cite_files=False)

    harness.openai.script = script
    return files


def thread_posts(harness: Harness, ts: str) -> list[dict[str, Any]]:
    """Every chat.postMessage the bot sent into the thread (accepted or not), in order."""
    return [c.params for c in harness.slack.recorder.calls("chat.postMessage") if c.params.get("thread_ts") == ts]


def blocks_of(params: dict[str, Any]) -> list[dict[str, Any]] | None:
    blocks = params.get("blocks")
    return json.loads(blocks) if isinstance(blocks, str) else blocks


async def answered(harness: Harness, bot: RunningBot) -> str:
    """Share a CSV and wait until its turn is done in the store too (the code is kept as the turn finishes,
    just after the status says so)."""
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await harness.wait_done(event["ts"])
    store = make_store(bot.settings.database_url)
    await store.open()
    try:
        async with asyncio.timeout(10):
            while not any(t.status == "done" for t in await store.list_turns(
                    ThreadKey(team="T1", channel=CHANNEL, thread_ts=event["ts"]))):
                await asyncio.sleep(0.02)
    finally:
        await store.close()
    return str(event["ts"])


async def test_a_chart_that_fits_is_native_beside_its_png_and_tables_are_data_tables(harness: Harness) -> None:
    files = dict(with_helper_outputs(harness))
    bot = await harness.start()
    ts = await answered(harness, bot)
    posts = thread_posts(harness, ts)
    [status, narrative, chart, table] = posts
    assert status["text"].startswith(":hourglass_flowing_sand:")

    # the narrative carries Slack's feedback buttons and Show code, with the turn's id
    [section, feedback, actions] = blocks_of(narrative) or []
    assert section == {"type": "section", "text": {"type": "mrkdwn", "text": narrative["text"]}}
    assert "*Revenue* is highest in the North." in narrative["text"]
    turn_id = actions["elements"][0]["value"]
    assert actions == {"type": "actions", "block_id": f"answer-{turn_id}", "elements": [
        {"type": "button", "action_id": "show_code", "value": turn_id,
         "text": {"type": "plain_text", "text": "Show code"}}]}
    assert feedback == {"type": "context_actions", "block_id": f"feedback-{turn_id}", "elements": [{
        "type": "feedback_buttons", "action_id": "feedback",
        "positive_button": {"text": {"type": "plain_text", "text": "👍"}, "value": f"good:{turn_id}",
                            "accessibility_label": "This answer helped"},
        "negative_button": {"text": {"type": "plain_text", "text": "👎"}, "value": f"bad:{turn_id}",
                            "accessibility_label": "This answer did not help"}}]}

    # Slack's own bar chart (the 30-point line does not fit: PNG only), then the table
    bar = ChartSpec.parse(files["revenue_by_region.chart.json"])
    assert bar is not None
    assert (chart["channel"], chart["thread_ts"]) == (CHANNEL, ts)
    assert blocks_of(chart) == [chart_block(bar, block_id="chart-0")]
    assert chart["text"] == "Chart: Revenue by region (North 230, South 162, East 135)"
    spec = TableSpec.parse(files["revenue_by_region.table.json"])
    assert spec is not None
    built = table_block(spec, block_id="table-0")
    assert built is not None and blocks_of(table) == [built.block]
    assert [c["text"] for c in built.block["rows"][1]] == ["North", "230"]

    # every PNG is in the thread, the specs are not
    assert sorted(u.name for u in harness.slack.uploads) == ["daily_visits.png", "revenue_by_region.png"]
    assert all(u.thread_ts == ts and u.channel == CHANNEL for u in harness.slack.uploads)
    seen = [m for m in harness.slack.thread(CHANNEL, ts) if m.is_bot]
    assert len(seen) == 5  # status, narrative, chart, table, the PNGs
    assert {f["name"] for f in seen[-1].files} == {"daily_visits.png", "revenue_by_region.png"}


async def test_refused_blocks_fall_back_to_the_png_and_a_text_table(harness: Harness) -> None:
    with_helper_outputs(harness)
    harness.slack.refused_blocks = frozenset({"data_visualization", "data_table"})
    bot = await harness.start()
    ts = await answered(harness, bot)
    posts = thread_posts(harness, ts)
    kinds = [[b["type"] for b in blocks_of(p) or []] for p in posts]
    assert kinds == [[], ["section", "context_actions", "actions"], ["data_visualization"], ["data_table"], []]
    fallback = posts[-1]
    assert fallback["text"].startswith("*Revenue by region*\n```\nregion  revenue\nNorth   230")
    posted = [m for m in harness.slack.messages if m.thread_ts == ts and m.is_bot]
    assert not any(b["type"].startswith("data_") for m in posted for b in m.blocks or [])
    assert sorted(u.name for u in harness.slack.uploads) == ["daily_visits.png", "revenue_by_region.png"]
    assert harness.status_of(CHANNEL, ts).text.startswith(":white_check_mark:")  # type: ignore[union-attr]


async def click(harness: Harness, bot: RunningBot, action: str, turn_id: str, message_ts: str,
                user: str = USER) -> dict[str, Any] | None:
    before = len(harness.slack.command_responses)
    uploads = len(harness.slack.uploads)
    payload = ev.block_actions(action, turn_id, channel_id=CHANNEL, user_id=user, message_ts=message_ts,
                               response_url=harness.slack.new_response_url())
    assert (await bot.sender.send_interactive(payload)).status == 200
    await harness.wait_for(lambda: len(harness.slack.command_responses) > before
                           or len(harness.slack.uploads) > uploads)
    return harness.slack.command_responses[-1] if len(harness.slack.command_responses) > before else None


async def metric(bot: RunningBot, name: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as session, session.get(bot.url + "/metrics") as resp:
        text = await resp.text()
    return {s.labels.get("vote", ""): s.value for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == name}


async def test_show_code_posts_the_turns_code_as_a_snippet_once(harness: Harness) -> None:
    with_helper_outputs(harness)
    bot = await harness.start()
    ts = await answered(harness, bot)
    narrative = thread_posts(harness, ts)[1]
    turn_id = (blocks_of(narrative) or [])[2]["elements"][0]["value"]
    assert await click(harness, bot, "show_code", turn_id, ts) is None
    snippet = harness.slack.uploads[-1]
    assert (snippet.name, snippet.channel, snippet.thread_ts) == (f"{turn_id}.py", CHANNEL, ts)
    assert snippet.content.decode().strip() == CODE.strip()
    again = await click(harness, bot, "show_code", turn_id, ts)
    assert again is not None and again["response_type"] == "ephemeral"
    assert again["text"] == "The code of that answer is already in the thread."
    gone = await click(harness, bot, "show_code", "no-such-turn", ts)
    assert gone is not None and gone["response_type"] == "ephemeral" and "no longer kept" in gone["text"]


async def test_feedback_keeps_the_latest_click_and_counts_it_in_metrics(harness: Harness) -> None:
    with_helper_outputs(harness)
    bot = await harness.start()
    ts = await answered(harness, bot)
    turn_id = (blocks_of(thread_posts(harness, ts)[1]) or [])[2]["elements"][0]["value"]
    good = await click(harness, bot, "feedback", f"good:{turn_id}", ts)
    assert good is not None and (good["response_type"], good["text"]) == ("ephemeral", "Thanks, noted.")
    assert await metric(bot, "datastory_feedback_votes") == {"good": 1.0}
    await click(harness, bot, "feedback", f"bad:{turn_id}", ts)
    await click(harness, bot, "feedback", f"bad:{turn_id}", ts)  # the same vote again changes nothing
    await click(harness, bot, "feedback", f"good:{turn_id}", ts, user="U2")
    assert await metric(bot, "datastory_feedback_votes") == {"good": 1.0, "bad": 1.0}


async def test_plain_buttons_where_slack_refuses_its_feedback_buttons(harness: Harness) -> None:
    with_helper_outputs(harness)
    harness.slack.refused_blocks = frozenset({"context_actions"})
    bot = await harness.start()
    ts = await answered(harness, bot)
    refused, narrative = thread_posts(harness, ts)[1:3]
    assert [b["type"] for b in blocks_of(refused) or []] == ["section", "context_actions", "actions"]
    [_, actions] = blocks_of(narrative) or []
    turn_id = actions["elements"][0]["value"]
    assert [(b["action_id"], b["value"]) for b in actions["elements"]] == [
        ("show_code", turn_id), ("feedback_good", turn_id), ("feedback_bad", turn_id)]
    bad = await click(harness, bot, "feedback_bad", turn_id, ts)
    assert bad is not None and bad["text"].startswith("Thanks, noted.")
    assert await metric(bot, "datastory_feedback_votes") == {"bad": 1.0}


async def test_story_angles_are_buttons_and_a_click_tells_that_story_in_the_same_container(
        harness: Harness) -> None:
    folder = harness.tmp / "angles"
    folder.mkdir()
    old = os.getcwd()
    os.chdir(folder)
    try:
        chartkit.angles([("North leads", "the North sells the most every month"),
                         ("East is catching up", "East grew fastest from January to February"),
                         ("  ", "an angle without a title is dropped"), ("Fourth", "only three are offered")])
    finally:
        os.chdir(old)
    angles = (folder / "story.angles.json").read_bytes()

    def script(ctx: ResponseContext) -> ScriptedTurn:
        first = not ctx.chain
        return ScriptedTurn(code="print(df.shape)", text=f"Answer to: {ctx.question}",
                            files=[("story.angles.json", angles)] if first else [], cite_files=False)

    harness.openai.script = script
    bot = await harness.start()
    ts = await answered(harness, bot)
    [offer] = [p for p in thread_posts(harness, ts) if "Story angles" in p["text"]]
    section, actions = blocks_of(offer) or []
    assert section["text"]["text"].endswith("• *North leads*: the North sells the most every month\n"
                                            "• *East is catching up*: East grew fastest from January to February")
    assert [(b["action_id"], b["text"]["text"]) for b in actions["elements"]] == [
        ("story_angle_0", "North leads"), ("story_angle_1", "East is catching up")]
    assert not [u for u in harness.slack.uploads if u.name.endswith(".json")]

    east = actions["elements"][1]
    payload = ev.block_actions(east["action_id"], east["value"], channel_id=CHANNEL, user_id="U2",
                               message_ts=ev.fresh_ts(), response_url=harness.slack.new_response_url(), thread_ts=ts)
    assert (await bot.sender.send_interactive(payload)).status == 200
    await harness.wait_done(ts, turns=2)
    first, second = harness.openai.responses.values()
    assert second.previous_response_id == first.id  # the same chain and container: the data is still loaded
    assert second.request["tools"] == first.request["tools"]
    question = ("Tell the full story of this angle, with charts: East is catching up (East grew fastest from "
                "January to February). Use the data already loaded.")
    assert f"Question: {question}" in str(second.request["input"])
    assert any(m.is_bot and f"Answer to: {question}" in m.text for m in harness.slack.thread(CHANNEL, ts))
    assert len([p for p in thread_posts(harness, ts) if "Story angles" in p["text"]]) == 1  # offered once
