"""FakeSlack's text streaming (``chat.startStream`` / ``appendStream`` / ``stopStream``) as the real slack_sdk client
drives it: its ``chat_stream`` helper and the three methods, with Slack's validation and errors (a companion of
``test_fake_slack_conformance.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.models.messages.chunk import MarkdownTextChunk, PlanUpdateChunk, TaskUpdateChunk
from slack_sdk.web.async_client import AsyncWebClient

from bot.demo.fake_slack import FakeSlack
from bot.demo.slack_events import fresh_ts


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token="xoxb-test", team_id="T1", bot_user_id="UBOT", bot_id="BBOT") as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def test_the_sdk_chat_stream_helper_streams_a_reply_with_tasks_and_buttons(
        slack: FakeSlack, client: AsyncWebClient) -> None:
    root = slack.add_message(channel="C1", user="U1", text="question").ts
    streamer = await client.chat_stream(channel="C1", thread_ts=root, recipient_user_id="U1",
                                        recipient_team_id="T1", task_display_mode="plan", buffer_size=10)
    assert await streamer.append(markdown_text="**Rev") is None  # buffered by the SDK below 10 characters
    await streamer.append(markdown_text="enue** rose 12%", chunks=[
        PlanUpdateChunk(title="Analysing sales.csv"),
        TaskUpdateChunk(id="code", title="Running code", status="in_progress")])
    await streamer.append(markdown_text=" in March.\n\n")
    buttons = [{"type": "actions", "elements": [{"type": "button", "action_id": "show_code", "value": "t1",
                                                  "text": {"type": "plain_text", "text": "Show code"}}]}]
    metadata = {"event_type": "datastory_part", "event_payload": {"turn": "t", "part": "p"}}
    stopped = await streamer.stop(markdown_text="Done.", blocks=buttons, metadata=metadata)
    assert stopped["ok"] and streamer.ts
    [msg] = slack.streamed_messages()
    assert msg.ts == streamer.ts and msg.thread_ts == root and msg.channel == "C1"
    assert msg.text == "**Revenue** rose 12% in March.\n\nDone."
    assert msg.blocks == [{"type": "markdown", "text": msg.text}, *buttons] and msg.metadata == metadata
    assert msg.stream is not None and not msg.stream.open
    assert (msg.stream.recipient_user_id, msg.stream.recipient_team_id, msg.stream.task_display_mode) == \
        ("U1", "T1", "plan")
    assert [m for m, _ in msg.stream.calls] == ["chat.startStream", "chat.appendStream", "chat.stopStream"]
    assert {"type": "task_update", "id": "code", "title": "Running code", "status": "in_progress"} \
        in msg.stream.chunks
    replies = await client.conversations_replies(channel="C1", ts=root, include_all_metadata=True)
    assert replies["messages"][-1]["text"] == msg.text


async def test_a_channel_stream_needs_the_recipient_user_and_team(slack: FakeSlack, client: AsyncWebClient) -> None:
    root = fresh_ts()
    with pytest.raises(SlackApiError) as no_user:
        await client.chat_startStream(channel="C1", thread_ts=root, recipient_team_id="T1")
    assert no_user.value.response["error"] == "missing_recipient_user_id"
    with pytest.raises(SlackApiError) as no_team:
        await client.chat_startStream(channel="C1", thread_ts=root, recipient_user_id="U1")
    assert no_team.value.response["error"] == "missing_recipient_team_id"
    in_dm = await client.chat_startStream(channel="D1", thread_ts=root, markdown_text="hi")  # a DM needs neither
    assert in_dm["ts"]


async def test_limits_and_chunks_are_checked(slack: FakeSlack, client: AsyncWebClient) -> None:
    started = await client.chat_startStream(channel="C1", thread_ts=fresh_ts(), recipient_user_id="U1",
                                            recipient_team_id="T1")
    ts = started["ts"]
    with pytest.raises(SlackApiError) as too_long:
        await client.chat_appendStream(channel="C1", ts=ts, markdown_text="x" * 12_001)
    assert too_long.value.response["error"] == "msg_too_long"
    await client.chat_appendStream(channel="C1", ts=ts, markdown_text="x" * 12_000)  # per call, not cumulative
    await client.chat_appendStream(channel="C1", ts=ts, chunks=[MarkdownTextChunk(text="y" * 12_000)])
    with pytest.raises(SlackApiError) as bad_status:
        await client.chat_appendStream(channel="C1", ts=ts, chunks=[{"type": "task_update", "id": "a",
                                                                      "title": "A", "status": "running"}])
    assert bad_status.value.response["error"] == "invalid_chunks"
    with pytest.raises(SlackApiError) as bad_mode:
        await client.chat_startStream(channel="C1", thread_ts=fresh_ts(), recipient_user_id="U1",
                                      recipient_team_id="T1", task_display_mode="grid")
    assert bad_mode.value.response["error"] == "invalid_arguments"


async def test_a_stopped_or_expired_stream_takes_no_more_and_a_streaming_message_refuses_updates(
        slack: FakeSlack, client: AsyncWebClient) -> None:
    ts = (await client.chat_startStream(channel="C1", thread_ts=fresh_ts(), recipient_user_id="U1",
                                        recipient_team_id="T1", markdown_text="one"))["ts"]
    with pytest.raises(SlackApiError) as conflict:
        await client.chat_update(channel="C1", ts=ts, text="edited")
    assert conflict.value.response["error"] == "streaming_state_conflict"
    await client.chat_stopStream(channel="C1", ts=ts)
    for call in (client.chat_appendStream(channel="C1", ts=ts, markdown_text="two"),
                 client.chat_stopStream(channel="C1", ts=ts)):
        with pytest.raises(SlackApiError) as ended:
            await call
        assert ended.value.response["error"] == "message_not_in_streaming_state"
    await client.chat_update(channel="C1", ts=ts, text="edited")  # an ordinary message now
    slack.stream_lifetime = 0.0
    old = (await client.chat_startStream(channel="C1", thread_ts=fresh_ts(), recipient_user_id="U1",
                                         recipient_team_id="T1"))["ts"]
    with pytest.raises(SlackApiError) as expired:
        await client.chat_appendStream(channel="C1", ts=old, markdown_text="late")
    assert expired.value.response["error"] == "message_not_in_streaming_state"
    posted = (await client.chat_postMessage(channel="C1", text="plain"))["ts"]
    with pytest.raises(SlackApiError) as never:
        await client.chat_appendStream(channel="C1", ts=posted, markdown_text="x")
    assert never.value.response["error"] == "message_not_in_streaming_state"


async def test_the_refusal_switch_refuses_streaming(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.refuse_streaming = "feature_not_enabled"
    with pytest.raises(SlackApiError) as refused:
        await client.chat_startStream(channel="C1", thread_ts=fresh_ts(), recipient_user_id="U1",
                                      recipient_team_id="T1")
    assert refused.value.response["error"] == "feature_not_enabled"
    assert slack.streamed_messages() == []


def _chart(i: int) -> dict[str, object]:
    return {"type": "data_visualization", "block_id": f"c{i}", "title": f"Chart {i}",
            "chart": {"type": "pie", "segments": [{"label": "A", "value": 1}, {"label": "B", "value": 2}]}}


async def test_a_stopped_message_holds_at_most_two_charts_counting_the_streamed_blocks(
        slack: FakeSlack, client: AsyncWebClient) -> None:
    async def started() -> str:
        resp = await client.chat_startStream(channel="C1", thread_ts=fresh_ts(), recipient_user_id="U1",
                                             recipient_team_id="T1")
        return str(resp["ts"])

    ts = await started()
    with pytest.raises(SlackApiError) as three:
        await client.chat_stopStream(channel="C1", ts=ts, blocks=[_chart(0), _chart(1), _chart(2)])
    assert three.value.response["error"] == "invalid_blocks"
    await client.chat_stopStream(channel="C1", ts=ts, blocks=[_chart(0), _chart(1)])
    ts = await started()
    await client.chat_appendStream(channel="C1", ts=ts, chunks=[{"type": "blocks", "blocks": [_chart(0)]}])
    with pytest.raises(SlackApiError) as counted:
        await client.chat_stopStream(channel="C1", ts=ts, blocks=[_chart(1), _chart(2)])
    assert counted.value.response["error"] == "invalid_blocks"
    await client.chat_stopStream(channel="C1", ts=ts, blocks=[_chart(1)])
