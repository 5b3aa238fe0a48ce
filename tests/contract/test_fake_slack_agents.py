"""FakeSlack's ``agents.sessions.setStatus``, ``agent_session_stopped`` and ``conversations.join`` through the real
``slack_sdk`` client: the JSON body the SDK sends, the statuses Slack accepts, and the refusals (missing scope,
unknown thread, private channel) as Slack words them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.demo.fake_slack import FakeSlack


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token="xoxb-test", team_id="T1", bot_user_id="UBOT") as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def test_set_status_creates_then_moves_the_threads_session(slack: FakeSlack, client: AsyncWebClient) -> None:
    root = slack.post_as_user(channel="C1", user="U1", text="hi")
    resp = await client.agents_sessions_setStatus(channel_id="C1", thread_ts=root["ts"], status="processing")
    assert resp["ok"] is True and resp["status"] == "processing"
    [call] = slack.recorder.calls("agents.sessions.setStatus")
    assert "json" in call.headers["Content-Type"]  # the SDK sends this method as JSON
    assert call.json == {"channel_id": "C1", "thread_ts": root["ts"], "status": "processing"}
    event = slack.stop_agent_session("C1", root["ts"], "U1")
    assert (event["type"], event["channel"], event["thread_ts"], event["user"], event["streaming_message_ts"]) == (
        "agent_session_stopped", "C1", root["ts"], "U1", [])
    await client.agents_sessions_setStatus(channel_id="C1", thread_ts=root["ts"], status="active")
    with pytest.raises(AssertionError):
        slack.stop_agent_session("C1", root["ts"], "U1")  # no Stop button unless processing
    assert slack.agent_statuses == [("C1", root["ts"], "processing"), ("C1", root["ts"], "active")]


async def test_set_status_refusals(slack: FakeSlack, client: AsyncWebClient) -> None:
    root = slack.post_as_user(channel="C1", user="U1", text="hi")
    for kwargs, error in [({"status": "thinking", "thread_ts": root["ts"]}, "invalid_arguments"),
                          ({"status": "active", "thread_ts": "1.000"}, "thread_not_found")]:
        with pytest.raises(SlackApiError) as refused:
            await client.agents_sessions_setStatus(channel_id="C1", **kwargs)
        assert refused.value.response["error"] == error
    slack.scopes = ",".join(s for s in slack.scopes.split(",") if s != "assistant:write")
    with pytest.raises(SlackApiError) as scope:
        await client.agents_sessions_setStatus(channel_id="C1", thread_ts=root["ts"], status="active")
    assert scope.value.response["error"] == "missing_scope" and scope.value.response["needed"] == "assistant:write"
    slack.scopes = ",".join(s for s in slack.scopes.split(",") if s != "chat:write")
    with pytest.raises(SlackApiError) as write:
        await client.agents_sessions_setStatus(channel_id="C1", thread_ts=root["ts"], status="active")
    assert write.value.response["needed"] == "chat:write"  # the method's documented scope
    assert not slack.agent_sessions


async def test_set_status_warns_an_app_not_subscribed_to_the_stop_event(slack: FakeSlack,
                                                                          client: AsyncWebClient) -> None:
    root = slack.post_as_user(channel="C1", user="U1", text="hi")
    ok = await client.agents_sessions_setStatus(channel_id="C1", thread_ts=root["ts"], status="processing")
    assert "warning" not in ok.data
    slack.agent_stop_subscribed = False
    warned = await client.agents_sessions_setStatus(channel_id="C1", thread_ts=root["ts"], status="processing")
    assert warned["ok"] is True and warned["warning"] == "missing_agent_session_stopped_event_subscription"
    with pytest.raises(SlackApiError) as long_title:
        await client.agents_sessions_setStatus(channel_id="C1", thread_ts=root["ts"], status="active", title="t" * 201)
    assert long_title.value.response["error"] == "invalid_arguments"


async def test_conversations_join(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.non_member_channels.update({"C2", "C3"})
    slack.private_channels.add("C3")
    joined = await client.conversations_join(channel="C2")
    assert joined["channel"]["id"] == "C2" and joined["channel"]["is_member"] is True and "warning" not in joined
    again = await client.conversations_join(channel="C2")
    assert again["warning"] == "already_in_channel"
    with pytest.raises(SlackApiError) as private:
        await client.conversations_join(channel="C3")
    assert private.value.response["error"] == "method_not_supported_for_channel_type"
    slack.scopes = ",".join(s for s in slack.scopes.split(",") if s != "channels:join")
    with pytest.raises(SlackApiError) as scope:
        await client.conversations_join(channel="C2")
    assert scope.value.response["error"] == "missing_scope" and scope.value.response["needed"] == "channels:join"
