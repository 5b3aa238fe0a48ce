"""Streamed answers, end to end: the answer appears while the model writes it (``chat.startStream`` /
``appendStream`` / ``stopStream`` to the asker, with the steps as tasks and the buttons at the end), the fallback
where Slack refuses to stream (``chat.postMessage`` then ``chat.update`` at most once a second), long answers split
at paragraph breaks and never inside a table, and a resumed turn that never streams a second message."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
from typing import Any

import pytest

from bot.analysts.profiler import chartkit
from bot.demo.recorder import RecordedRequest
from tests.e2e.conftest import CHANNEL, USER, Harness
from tests.e2e.test_native import with_helper_outputs
from tests.emulators.fake_openai import ResponseContext, ScriptedTurn, default_script

pytestmark = pytest.mark.e2e

STREAM_METHODS = ("chat.startStream", "chat.appendStream", "chat.stopStream")


def calls(harness: Harness, *methods: str) -> list[RecordedRequest]:
    """The bot's Web API calls of ``methods``, in order."""
    return [r for r in harness.slack.recorder.requests if r.path.rsplit("/", 1)[-1] in methods]


def chunks_of(request: RecordedRequest) -> list[dict[str, Any]]:
    raw = request.params.get("chunks") or []
    return json.loads(raw) if isinstance(raw, str) else list(raw)


def streamed_text(request: RecordedRequest) -> str:
    return "".join(c["text"] for c in chunks_of(request) if c["type"] == "markdown_text")


def long_answer() -> str:
    """About 9,500 characters: prose paragraphs, a 40-row table after the fifth, more prose."""
    prose = [f"Paragraph {i}: " + " ".join(f"word{j}" for j in range(60)) for i in range(20)]
    table = ["| region | month | revenue |", "|---|---|---|",
             *[f"| R{i % 7} | 2025-{i % 12 + 1:02d} | {1000 + i * 37} |" for i in range(40)]]
    return "\n\n".join([*prose[:5], "\n".join(table), *prose[5:]])


async def test_the_answer_streams_to_the_asker_with_its_steps_and_ends_with_its_buttons(harness: Harness) -> None:
    harness.openai.token_interval = 0.02
    bot = await harness.start(stream_answers=True)
    event = harness.file_event(text="What changed?")
    await bot.send(event)
    thread = await harness.wait_done(event["ts"])

    [start] = calls(harness, "chat.startStream")
    assert (start.params["channel"], start.params["thread_ts"]) == (CHANNEL, event["ts"])
    assert (start.params["recipient_user_id"], start.params["recipient_team_id"]) == (USER, harness.slack.team_id)
    assert start.params["task_display_mode"] == "plan"
    first = chunks_of(start)
    assert first[0] == {"type": "plan_update", "title": "Analysing your data"}
    assert {"type": "task_update", "id": "read", "title": "Reading the question", "status": "in_progress"} in first
    appends = calls(harness, "chat.appendStream")
    assert appends and all(a.params["ts"] == start.params.get("ts", a.params["ts"]) for a in appends)
    tasks = [(c["id"], c["status"]) for r in [start, *appends] for c in chunks_of(r) if c["type"] == "task_update"]
    for step in ("load", "code", "write"):
        assert (step, "in_progress") in tasks, tasks
    assert tasks.index(("code", "in_progress")) < tasks.index(("write", "in_progress"))
    [stop] = calls(harness, "chat.stopStream")
    blocks = stop.params["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    assert [b["type"] for b in blocks] == ["context_actions", "actions"]  # 👍 / 👎, then "Show code"
    metadata = stop.params["metadata"]
    metadata = json.loads(metadata) if isinstance(metadata, str) else metadata
    assert metadata["event_type"] == "datastory_part" and metadata["event_payload"]["part"] == "stream:0"

    [msg] = harness.slack.streamed_messages()
    answer = default_script_text(harness)
    assert msg.text.startswith(answer) and "⏱" in msg.text[len(answer):]
    assert "".join(streamed_text(r) for r in [start, *appends, stop]) == msg.text
    assert not [r for r in calls(harness, "chat.postMessage") if "Summary of" in str(r.params.get("text"))]
    bot_items = [m for m in thread if m.is_bot]
    assert [m.ts for m in bot_items].index(msg.ts) == 1  # after the status reply, before the chart
    assert any(m.files for m in bot_items if m.ts > msg.ts)
    await bot.shutdown()


def default_script_text(harness: Harness) -> str:
    [record] = harness.openai.responses.values()
    return "".join(part["text"] for item in record.body["output"] if item["type"] == "message"
                   for part in item["content"])


async def test_where_slack_refuses_to_stream_the_answer_is_posted_then_updated_at_most_once_a_second(
        harness: Harness) -> None:
    harness.slack.refuse_streaming = "feature_not_enabled"
    harness.openai.token_interval = 0.02
    harness.openai.token_chars = 8

    def paced(ctx: ResponseContext) -> ScriptedTurn:
        turn = default_script(ctx)
        return ScriptedTurn(code=turn.code, files=turn.files, logs=turn.logs, text=long_answer()[:3000])

    harness.openai.script = paced
    bot = await harness.start(stream_answers=True)
    event = harness.file_event()
    await bot.send(event)
    await harness.wait_done(event["ts"], timeout=40)

    assert len(calls(harness, "chat.startStream")) == 1 and harness.slack.streamed_messages() == []
    assert not calls(harness, "chat.appendStream", "chat.stopStream")
    posts = [r for r in calls(harness, "chat.postMessage") if "datastory_part" in str(r.params.get("metadata"))
             and "stream:0" in str(r.params.get("metadata"))]
    assert len(posts) == 1
    ts = harness.slack.thread(CHANNEL, event["ts"])
    [answer] = [m for m in ts if m.is_bot and "Paragraph 0" in m.text]
    updates = [r for r in calls(harness, "chat.update") if r.params.get("ts") == answer.ts]
    assert len(updates) >= 2  # it grew while the model wrote
    times = [posts[0].received_at, *(u.received_at for u in updates)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.95, gaps  # at most one update a second
    assert answer.blocks is not None and answer.blocks[-1]["type"] == "actions"
    assert "Paragraph 3" in answer.text and "⏱" in answer.text
    await bot.shutdown()


async def test_a_long_answer_is_split_at_paragraph_breaks_and_never_inside_a_table(harness: Harness) -> None:
    text = long_answer()

    def long(ctx: ResponseContext) -> ScriptedTurn:
        turn = default_script(ctx)
        return ScriptedTurn(code=turn.code, files=turn.files, logs=turn.logs, text=text)

    harness.openai.script = long
    harness.openai.token_interval = 0.002
    harness.openai.token_chars = 40
    bot = await harness.start(stream_answers=True)
    event = harness.file_event()
    await bot.send(event)
    await harness.wait_done(event["ts"], timeout=40)

    messages = harness.slack.streamed_messages()
    assert len(messages) >= 3
    assert all(len(m.text) <= 3_500 for m in messages)
    assert "".join(m.text for m in messages).startswith(text)
    table_rows = [line for line in text.splitlines() if line.startswith("|")]
    [holder] = [m for m in messages if table_rows[0] in m.text]
    assert all(row in holder.text for row in table_rows)  # the whole table in one message
    for m in messages[:-1]:
        assert m.text.endswith("\n\n") and re.match(r"(Paragraph \d+|\| region)", m.text)  # paragraph breaks
        assert m.stream is not None and not m.stream.open
    starts = calls(harness, "chat.startStream")
    assert len(starts) == len(messages)
    stops = calls(harness, "chat.stopStream")
    assert [json.loads(s.params["metadata"])["event_payload"]["part"] if isinstance(s.params["metadata"], str)
            else s.params["metadata"]["event_payload"]["part"] for s in stops] == \
        [f"stream:{i}" for i in range(len(messages))]
    assert messages[-1].blocks is not None and [b["type"] for b in messages[-1].blocks] == \
        ["markdown", "context_actions", "actions"]
    assert all(m.blocks is not None and [b["type"] for b in m.blocks] == ["markdown"] for m in messages[:-1])
    await bot.shutdown()


async def test_a_turn_resumed_after_its_stream_was_stopped_does_not_stream_or_post_it_again(harness: Harness) -> None:
    harness.openai.token_interval = 0.01
    first = await harness.start(stream_answers=True, shutdown_grace_seconds=0.5)
    held = harness.slack.hold("chat.stopStream")
    event = harness.file_event()
    await first.send(event)
    await asyncio.wait_for(held.arrived.wait(), 20)
    await first.shutdown()  # the replica goes while Slack has its stopStream: Slack applies it, the ledger never knew
    held.release()
    await harness.wait_for(lambda: not any(m.stream and m.stream.open for m in harness.slack.streamed_messages()))

    second = await harness.start(stream_answers=True)
    thread = await harness.wait_done(event["ts"])
    assert len(calls(harness, "chat.startStream")) == 1
    [msg] = harness.slack.streamed_messages()
    answers = [m for m in thread if m.is_bot and "Summary of sales.csv" in m.text]
    assert [m.ts for m in answers] == [msg.ts]
    assert msg.blocks is not None and any(b["type"] == "context_actions" for b in msg.blocks)
    assert sum(len(m.files) for m in thread if m.is_bot) == 1  # the chart, once
    assert not [r for r in calls(harness, "chat.postMessage") if "stream:" in str(r.params.get("metadata"))]
    await second.shutdown()


async def test_a_turn_resumed_in_the_middle_of_its_stream_rewrites_that_message_instead_of_a_second(
        harness: Harness) -> None:
    harness.openai.token_interval = 0.01
    first = await harness.start(stream_answers=True, shutdown_grace_seconds=0.5)
    held = harness.slack.hold("chat.appendStream")
    event = harness.file_event()
    await first.send(event)
    await asyncio.wait_for(held.arrived.wait(), 20)
    await first.shutdown()  # mid-stream: no plan yet, the turn runs again
    held.release()

    second = await harness.start(stream_answers=True)
    thread = await harness.wait_done(event["ts"])
    assert len(calls(harness, "chat.startStream")) == 1
    [msg] = harness.slack.streamed_messages()
    assert msg.stream is not None and not msg.stream.open
    rewrites = [r for r in calls(harness, "chat.update") if r.params.get("ts") == msg.ts]
    assert rewrites and "Summary of sales.csv" in msg.text and "⏱" in msg.text
    assert msg.blocks is not None and msg.blocks[-1]["type"] == "actions"
    answers = [m for m in thread if m.is_bot and "Summary of sales.csv" in m.text]
    assert [m.ts for m in answers] == [msg.ts]
    assert not [r for r in calls(harness, "chat.postMessage") if "stream:" in str(r.params.get("metadata"))]
    await second.shutdown()


async def test_native_charts_and_buttons_are_attached_when_the_stream_stops_and_a_refused_chart_leaves_the_buttons(
        harness: Harness) -> None:
    with_helper_outputs(harness)  # the charting helper's real outputs
    bot = await harness.start(stream_answers=True)
    event = harness.file_event("sales.csv")
    await bot.send(event)
    thread = await harness.wait_done(event["ts"])
    [stop] = calls(harness, "chat.stopStream")
    blocks = stop.params["blocks"]
    kinds = [b["type"] for b in (json.loads(blocks) if isinstance(blocks, str) else blocks)]
    assert kinds == ["data_visualization", "context_actions", "actions"]  # the chart, 👍 / 👎, Show code
    posted = [json.dumps(r.params.get("blocks")) for r in calls(harness, "chat.postMessage")]
    assert not [p for p in posted if "data_visualization" in p]  # not posted again on its own
    assert any("data_table" in p for p in posted)  # the table follows as its own message
    [msg] = harness.slack.streamed_messages()
    assert msg.text.startswith("**Revenue** is highest in the North.")
    pngs = [f["name"] for m in thread if m.is_bot for f in m.files if f["name"].endswith(".png")]
    assert len(pngs) == 2  # the PNGs are uploaded in every case
    await bot.shutdown()

    harness.slack.refused_blocks = frozenset({"data_visualization"})
    second = await harness.start(stream_answers=True)
    event = harness.file_event("sales.csv")
    await second.send(event)
    await harness.wait_done(event["ts"])
    stops = [r for r in calls(harness, "chat.stopStream") if r is not stop]
    kinds = [[b["type"] for b in (json.loads(r.params["blocks"]) if isinstance(r.params["blocks"], str)
                                  else r.params["blocks"])] for r in stops]
    assert kinds == [["data_visualization", "context_actions", "actions"], ["context_actions", "actions"]]
    [again] = [m for m in harness.slack.streamed_messages() if m.thread_ts == event["ts"]]
    assert again.blocks is not None and [b["type"] for b in again.blocks] == ["markdown", "context_actions", "actions"]
    await second.shutdown()


async def test_a_stream_slack_opened_after_the_replica_died_is_adopted_not_opened_again(harness: Harness) -> None:
    harness.openai.token_interval = 0.01
    first = await harness.start(stream_answers=True, shutdown_grace_seconds=0.5)
    held = harness.slack.hold("chat.startStream")
    event = harness.file_event()
    await first.send(event)
    await asyncio.wait_for(held.arrived.wait(), 20)
    await first.shutdown()  # Slack opens the stream after the replica is gone: the ledger has its start, no ts
    held.release()
    await harness.wait_for(lambda: harness.slack.streamed_messages())

    second = await harness.start(stream_answers=True)
    thread = await harness.wait_done(event["ts"])
    assert len(calls(harness, "chat.startStream")) == 1
    [msg] = harness.slack.streamed_messages()
    assert msg.stream is not None and not msg.stream.open
    assert "Summary of sales.csv" in msg.text and "⏱" in msg.text
    assert msg.blocks is not None and msg.blocks[-1]["type"] == "actions"
    assert [m.ts for m in thread if m.is_bot and "Summary of sales.csv" in m.text] == [msg.ts]
    assert not [r for r in calls(harness, "chat.postMessage") if "stream:" in str(r.params.get("metadata"))]
    await second.shutdown()


async def test_a_resumed_run_with_a_shorter_answer_deletes_the_streamed_messages_it_no_longer_needs(
        harness: Harness) -> None:
    def long(ctx: ResponseContext) -> ScriptedTurn:
        turn = default_script(ctx)
        return ScriptedTurn(code=turn.code, files=turn.files, logs=turn.logs, text=long_answer())

    harness.openai.script = long
    harness.openai.token_interval = 0.01
    harness.openai.token_chars = 40
    first = await harness.start(stream_answers=True, shutdown_grace_seconds=0.5)
    event = harness.file_event()
    await first.send(event)
    await harness.wait_for(lambda: len(calls(harness, "chat.startStream")) >= 2, timeout=30)
    held = harness.slack.hold("chat.startStream")  # the third message: Slack opens it, the ledger never knows
    await asyncio.wait_for(held.arrived.wait(), 30)
    await first.shutdown()
    held.release()
    await harness.wait_for(lambda: len(harness.slack.streamed_messages()) == 3)
    earlier = [m.ts for m in harness.slack.streamed_messages()]

    harness.openai.script = default_script  # the rerun answers in one message
    second = await harness.start(stream_answers=True)
    thread = await harness.wait_done(event["ts"], timeout=40)
    assert len(calls(harness, "chat.startStream")) == 3  # none opened again
    [msg] = harness.slack.streamed_messages()
    assert msg.ts == earlier[0] and "Summary of sales.csv" in msg.text and "⏱" in msg.text
    assert sorted(r.params["ts"] for r in calls(harness, "chat.delete")) == sorted(earlier[1:])
    assert not [m for m in thread if "Paragraph" in m.text]  # the thread shows exactly the final answer
    assert [m.ts for m in thread if m.is_bot and "Summary of sales.csv" in m.text] == [msg.ts]
    await second.shutdown()


async def test_two_charts_go_into_the_stopped_stream_and_a_third_follows_in_its_own_message(
        harness: Harness) -> None:
    folder = harness.tmp / "three"
    folder.mkdir()
    old = os.getcwd()
    os.chdir(folder)
    try:
        for i, title in enumerate(("Revenue by region", "Orders by region", "Returns by region")):
            chartkit.bar(["North", "South", "East"], [230 + i, 162, 135], title=title, value_label="Value",
                         category_label="Region")
    finally:
        os.chdir(old)
    files = sorted((p.name, p.read_bytes()) for p in folder.iterdir())
    harness.openai.script = lambda ctx: ScriptedTurn(code="import datastory_charts as dc\n", files=files,
                                                     text="**Revenue** is highest in the North.", cite_files=False)
    bot = await harness.start(stream_answers=True)
    event = harness.file_event("sales.csv")
    await bot.send(event)
    thread = await harness.wait_done(event["ts"])

    [stop] = calls(harness, "chat.stopStream")
    blocks = stop.params["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    assert [b["type"] for b in blocks] == ["data_visualization", "data_visualization", "context_actions", "actions"]
    charts = [m for m in thread if m.is_bot and m.blocks and any(b["type"] == "data_visualization" for b in m.blocks)]
    titles = [[b["title"] for b in m.blocks or [] if b["type"] == "data_visualization"] for m in charts]
    [streamed] = harness.slack.streamed_messages()
    assert [len(t) for t in titles] == [2, 1] and charts[0].ts == streamed.ts  # the stream's two, then the third
    assert sorted(t for ts in titles for t in ts) == ["Orders by region", "Returns by region", "Revenue by region"]
    assert len([f for m in thread if m.is_bot for f in m.files if f["name"].endswith(".png")]) == 3
    await bot.shutdown()
