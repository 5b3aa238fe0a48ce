"""FakeSlack speaks Slack's wire format: the real slack_sdk clients (Web API, files_upload_v2, Socket Mode) accept
every answer it gives, and SlackSender signs requests the way slack_sdk verifies them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.demo.fake_slack import FakeSlack
from bot.demo.slack_events import (
    SlackSender,
    envelope,
    file_share_message,
    fresh_ts,
    signature,
    slash_command,
    url_verification,
)

DOC_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
DOC_TS = "1531420618"
DOC_BODY = (
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
DOC_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token="xoxb-test", app_token="xapp-test", team_id="T1", bot_user_id="UBOT",
                         bot_id="BBOT") as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def test_auth_test_returns_bot_identity_and_scopes(client: AsyncWebClient) -> None:
    resp = await client.auth_test()
    assert resp["user_id"] == "UBOT" and resp["bot_id"] == "BBOT" and resp["team_id"] == "T1"
    assert "files:read" in resp.headers["x-oauth-scopes"]


async def test_bad_or_missing_token_and_unknown_method(slack: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as bad:
        await AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url).auth_test()
    assert bad.value.response["error"] == "invalid_auth" and bad.value.response.status_code == 200
    with pytest.raises(SlackApiError) as none:
        await AsyncWebClient(base_url=slack.api_url).auth_test()
    assert none.value.response["error"] == "not_authed"
    with pytest.raises(SlackApiError) as unknown:
        await AsyncWebClient(token=slack.bot_token, base_url=slack.api_url).api_call("nope.nothing")
    assert unknown.value.response["error"] == "unknown_method"


async def test_post_update_and_thread_view(slack: FakeSlack, client: AsyncWebClient) -> None:
    root = fresh_ts()
    slack.add_message(channel="C1", user="U1", text="here is data", ts=root)
    posted = await client.chat_postMessage(channel="C1", thread_ts=root, text="Working on it…",
                                           unfurl_links=False, unfurl_media=False)
    assert posted["channel"] == "C1"
    msg = posted["message"]
    assert msg["bot_id"] == "BBOT" and msg["user"] == "UBOT" and msg["thread_ts"] == root and msg["ts"] == posted["ts"]
    updated = await client.chat_update(channel="C1", ts=posted["ts"], text="Done: revenue grew 12%")
    assert updated["ts"] == posted["ts"] and updated["text"] == "Done: revenue grew 12%"
    items = slack.thread("C1", root)
    assert [(i.user, i.text, i.is_bot) for i in items] == [
        ("U1", "here is data", False), ("UBOT", "Done: revenue grew 12%", True)]
    assert items[1].edited
    call = slack.recorder.calls("chat.postMessage")[0]
    assert call.params["unfurl_links"] is False and "json" in call.headers["Content-Type"]


async def test_post_errors_are_slack_api_errors(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.missing_channels.add("CGONE")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"channel": "C1", "text": "x" * 4001}, "msg_too_long"),
        ({"channel": "CGONE", "text": "hi"}, "channel_not_found"),
        ({"channel": "C1", "text": ""}, "no_text"),
    ]
    for kwargs, code in cases:
        with pytest.warns(UserWarning) if not kwargs["text"] else contextlib.nullcontext():
            with pytest.raises(SlackApiError) as err:
                await client.chat_postMessage(**kwargs)
        assert err.value.response["error"] == code
    with pytest.raises(SlackApiError) as err:
        await client.chat_update(channel="C1", ts="1.000001", text="x")
    assert err.value.response["error"] == "message_not_found"
    slack.fail_next("chat.postMessage", error="not_in_channel")
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C1", text="hi")
    assert err.value.response["error"] == "not_in_channel"


CHART = {"type": "data_visualization", "title": "Revenue by region", "chart": {
    "type": "bar", "axis_config": {"categories": ["North", "South"], "x_label": "Region", "y_label": "Revenue"},
    "series": [{"name": "Revenue", "data": [{"label": "North", "value": 130}, {"label": "South", "value": 82}]}]}}
TABLE = {"type": "data_table", "caption": "Revenue by region", "page_size": 5, "rows": [
    [{"type": "raw_text", "text": "region"}, {"type": "raw_text", "text": "revenue"}],
    [{"type": "raw_text", "text": "North"}, {"type": "raw_number", "value": 130, "text": "130"}]]}


async def test_native_chart_and_table_blocks_are_taken_or_refused_like_slack(
        slack: FakeSlack, client: AsyncWebClient) -> None:
    """Slack's data visualization and data table blocks within their limits are posted; past them (or in a
    workspace that refuses the block) the SDK raises ``invalid_blocks`` with the errors, and nothing is posted."""
    posted = await client.chat_postMessage(channel="C1", text="Revenue by region", blocks=[CHART, TABLE])
    assert posted["message"]["blocks"] == [CHART, TABLE]
    pie = {"type": "data_visualization", "title": "Shares", "chart": {
        "type": "pie", "segments": [{"label": f"s{i}", "value": 1} for i in range(7)]}}
    wide = {**TABLE, "rows": [[{"type": "raw_text", "text": "x" * 5001}], [{"type": "raw_text", "text": "y" * 5000}]]}
    stray = {**CHART, "chart": {**CHART["chart"], "series": [
        {"name": "Revenue", "data": [{"label": "West", "value": 1}]}]}}
    feedback = {"type": "context_actions", "elements": [{
        "type": "feedback_buttons", "action_id": "feedback",
        "positive_button": {"text": {"type": "plain_text", "text": "👍"}, "value": "good:t1"},
        "negative_button": {"text": {"type": "plain_text", "text": "👎"}, "value": "bad:t1"}}]}
    assert (await client.chat_postMessage(channel="C1", text="answer", blocks=[feedback]))["ok"]
    plain_in_context = {"type": "context_actions", "elements": [
        {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "A"}}]}
    for bad in ([pie], [wide], [stray], [CHART, CHART, CHART], [{"type": "image", "alt_text": "chart"}],
                [plain_in_context]):
        with pytest.raises(SlackApiError) as err:
            await client.chat_postMessage(channel="C1", text="x", blocks=bad)
        assert err.value.response["error"] == "invalid_blocks" and err.value.response["errors"]
    slack.refused_blocks = frozenset({"data_visualization"})
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C1", text="x", blocks=[CHART])
    assert err.value.response["errors"] == ["unsupported type: data_visualization [json-pointer:/blocks/0/type]"]
    image = {"type": "image", "slack_file": {"id": "F1"}, "alt_text": "Revenue by region"}
    assert (await client.chat_postMessage(channel="C1", text="x", blocks=[TABLE, image]))["ok"]
    assert len(slack.messages) == 3


async def test_views_publish_keeps_the_home_tab_and_refuses_bad_views(
        slack: FakeSlack, client: AsyncWebClient) -> None:
    view = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*Recent*"}}, TABLE]}
    published = await client.views_publish(user_id="U1", view=view)
    assert published["view"]["type"] == "home" and published["view"]["blocks"] == view["blocks"]
    assert slack.home_views["U1"] == view
    for bad in ({"type": "modal", "blocks": []}, {"type": "home", "blocks": [{"type": "divider"}] * 101},
                {"type": "home", "blocks": [{"type": "image", "alt_text": "x"}]}):
        with pytest.raises(SlackApiError) as err:
            await client.views_publish(user_id="U1", view=bad)
        assert err.value.response["error"] in ("invalid_arguments", "invalid_blocks")
    assert list(slack.home_views) == ["U1"]


async def test_reactions_add_and_remove(slack: FakeSlack, client: AsyncWebClient) -> None:
    ts = fresh_ts()
    await client.reactions_add(channel="C1", timestamp=ts, name="eyes")
    assert slack.reactions[("C1", ts)] == {"eyes"}
    with pytest.raises(SlackApiError) as err:
        await client.reactions_add(channel="C1", timestamp=ts, name="eyes")
    assert err.value.response["error"] == "already_reacted"
    await client.reactions_remove(channel="C1", timestamp=ts, name="eyes")
    assert slack.reactions[("C1", ts)] == set()
    with pytest.raises(SlackApiError) as err:
        await client.reactions_remove(channel="C1", timestamp=ts, name="eyes")
    assert err.value.response["error"] == "no_reaction"


async def test_conversations_replies_paginates_with_the_sdk(slack: FakeSlack, client: AsyncWebClient) -> None:
    root = fresh_ts()
    slack.add_message(channel="C1", user="U1", text="root", ts=root)
    for i in range(4):
        await client.chat_postMessage(channel="C1", thread_ts=root, text=f"reply {i}")
    # The SDK's async iterator yields the *same* response object, mutated per page: copy what you need.
    pages: list[dict[str, Any]] = []
    async for page in await client.conversations_replies(channel="C1", ts=root, limit=2):
        pages.append(dict(page.data))  # type: ignore[arg-type]
    assert len(pages) == 3
    texts = [m["text"] for page in pages for m in page["messages"]]
    assert texts == ["root", "reply 0", "reply 1", "reply 2", "reply 3"]
    assert pages[0]["messages"][0]["reply_count"] == 4
    assert pages[0]["messages"][1]["parent_user_id"] == "U1"
    assert pages[-1]["response_metadata"]["next_cursor"] == ""
    with pytest.raises(SlackApiError) as err:
        await client.conversations_replies(channel="C1", ts="1.000002")
    assert err.value.response["error"] == "thread_not_found"


async def test_message_metadata_comes_back_with_include_all_metadata(slack: FakeSlack,
                                                                    client: AsyncWebClient) -> None:
    root = fresh_ts()
    slack.add_message(channel="C1", user="U1", text="root", ts=root)
    metadata = {"event_type": "datastory_part", "event_payload": {"turn": "t1", "part": "answer:0"}}
    posted = await client.chat_postMessage(channel="C1", thread_ts=root, text="tagged", metadata=metadata)
    await client.chat_postMessage(channel="C1", thread_ts=root, text="plain")
    plain = await client.conversations_replies(channel="C1", ts=root)
    assert all("metadata" not in m for m in plain["messages"])  # only when asked for, as Slack does
    full = await client.conversations_replies(channel="C1", ts=root, include_all_metadata=True)
    tagged = [m for m in full["messages"] if "metadata" in m]
    assert [(m["ts"], m["metadata"]) for m in tagged] == [(posted["ts"], metadata)]
    with pytest.raises(SlackApiError) as err:
        await client.chat_postMessage(channel="C1", thread_ts=root, text="x", metadata={"event_payload": {}})
    assert err.value.response["error"] == "invalid_metadata_format"


async def test_a_held_call_waits_until_released_and_then_completes(slack: FakeSlack,
                                                                   client: AsyncWebClient) -> None:
    held = slack.hold("chat.postMessage")
    call = asyncio.create_task(client.chat_postMessage(channel="C1", text="held"))
    await asyncio.wait_for(held.arrived.wait(), 5)
    await asyncio.sleep(0.05)
    assert not call.done() and not slack.messages
    held.release()
    assert (await asyncio.wait_for(call, 5))["ok"] and [m.text for m in slack.messages] == ["held"]


async def test_users_info_has_time_zone(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.add_user("U7", name="ada", tz="Europe/Paris", tz_offset=3600)
    resp = await client.users_info(user="U7")
    assert resp["user"]["tz"] == "Europe/Paris" and resp["user"]["tz_offset"] == 3600
    assert slack.recorder.calls("users.info")[0].method == "GET"


async def test_chat_get_permalink_with_the_sdk(slack: FakeSlack, client: AsyncWebClient) -> None:
    root = slack.add_message(channel="C1", user="U1", text="root")
    reply = slack.add_message(channel="C1", user="U1", text="reply", thread_ts=root.ts)
    resp = await client.chat_getPermalink(channel="C1", message_ts=root.ts)
    assert resp["channel"] == "C1" and resp["permalink"].endswith(f"/archives/C1/p{root.ts.replace('.', '')}")
    threaded = await client.chat_getPermalink(channel="C1", message_ts=reply.ts)
    assert threaded["permalink"].endswith(f"?thread_ts={root.ts}&cid=C1")
    with pytest.raises(SlackApiError) as err:
        await client.chat_getPermalink(channel="C1", message_ts="1.000001")
    assert err.value.response["error"] == "message_not_found"


async def test_files_info_and_download_urls(slack: FakeSlack, client: AsyncWebClient) -> None:
    f = slack.add_file(name="sales.csv", content=b"region,amount\nnorth,3\n", user="U1")
    resp = await client.files_info(file=f["id"])
    assert resp["file"]["size"] == 22 and resp["file"]["url_private_download"].startswith(slack.base_url)
    assert f["url_private_download"] == resp["file"]["url_private_download"]
    async with aiohttp.ClientSession() as http:
        async with http.get(f["url_private_download"], headers={"Authorization": "Bearer xoxb-test"}) as ok:
            assert ok.content_type == "text/csv" and await ok.read() == b"region,amount\nnorth,3\n"
        async with http.get(f["url_private"]) as anonymous:
            assert anonymous.status == 200 and anonymous.content_type == "text/html"
            assert (await anonymous.text()).startswith("<!DOCTYPE html>")
    assert [d.served for d in slack.downloads] == ["file", "html"]
    assert slack.downloads[1].authorization is None
    with pytest.raises(SlackApiError) as err:
        await client.files_info(file="FNOPE")
    assert err.value.response["error"] == "file_not_found"


async def test_files_upload_v2_lands_in_the_thread(slack: FakeSlack, client: AsyncWebClient) -> None:
    root = fresh_ts()
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
    resp = await client.files_upload_v2(
        file_uploads=[{"content": png, "filename": "chart.png", "title": "Revenue"},
                      {"content": b"a,b\n1,2\n", "filename": "table.csv"}],
        channel="C1", thread_ts=root, initial_comment="Here are the charts",
    )
    assert [f["title"] for f in resp["files"]] == ["Revenue", "table.csv"]
    assert [(u.name, u.content, u.channel, u.thread_ts) for u in slack.uploads] == [
        ("chart.png", png, "C1", root), ("table.csv", b"a,b\n1,2\n", "C1", root)]
    (item,) = slack.thread("C1", root)
    assert item.is_bot and item.text == "Here are the charts"
    assert [(f["name"], f["title"], f["bytes"]) for f in item.files] == [
        ("chart.png", "Revenue", png), ("table.csv", "table.csv", b"a,b\n1,2\n")]
    raw_uploads = slack.recorder.find(lambda r: r.path.startswith("/upload/v1/"))
    assert len(raw_uploads) == 2 and all(r.authorization is None for r in raw_uploads)
    complete = slack.recorder.calls("files.completeUploadExternal")[0]
    assert json.loads(complete.query["files"])[0]["title"] == "Revenue"
    assert complete.query["thread_ts"] == root and complete.query["channel_id"] == "C1"
    single = await client.files_upload_v2(content=b"x,y\n", filename="one.csv", channel="C1", thread_ts=root)
    assert single["file"]["name"] == "one.csv"


async def test_rate_limit_is_retried_by_the_async_handler(slack: FakeSlack) -> None:
    plain = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    slack.fail_next("chat.postMessage", status=429, retry_after=0)
    with pytest.raises(SlackApiError) as err:
        await plain.chat_postMessage(channel="C1", text="hi")
    assert err.value.response.status_code == 429 and err.value.response["error"] == "ratelimited"
    assert err.value.response.headers["Retry-After"] == "0"
    patient = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url,
                             retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)])
    slack.fail_next("chat.postMessage", status=429, retry_after=0)
    resp = await patient.chat_postMessage(channel="C1", text="hi again")
    assert resp["ok"] and len(slack.recorder.calls("chat.postMessage")) == 3
    assert [m.text for m in slack.bot_messages("C1")] == ["hi again"]


async def test_socket_mode_client_connects_receives_and_acks(slack: FakeSlack) -> None:
    web_client = AsyncWebClient(base_url=slack.api_url)
    sm = SocketModeClient(app_token=slack.app_token, web_client=web_client, auto_reconnect_enabled=True)
    received: list[dict[str, Any]] = []

    async def listener(client: SocketModeClient, req: SocketModeRequest) -> None:
        received.append({"type": req.type, "payload": req.payload, "retry_attempt": req.retry_attempt})
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

    sm.socket_mode_request_listeners.append(listener)
    try:
        await sm.connect()
        await slack.wait_socket_connected()
        opened = slack.recorder.calls("apps.connections.open")[0]
        assert opened.authorization == "Bearer xapp-test"
        event = file_share_message("C1", "U1", [slack.add_file(name="a.csv", content=b"a\n1\n")])
        body = envelope(event, team_id="T1")
        ack = await slack.socket_send(body, type="events_api", retry_attempt=0)
        assert set(ack) == {"envelope_id"} and ack["envelope_id"] == slack.socket_sent[-1]["envelope_id"]
        assert received[0]["payload"]["event_id"] == body["event_id"] and received[0]["retry_attempt"] == 0
        # Slack's refresh: the client calls apps.connections.open again and reconnects.
        await slack.socket_disconnect()
        await slack.wait_socket_connected(connects=2)
        ack = await slack.socket_send(slash_command("/csv", "help", "C1", "U1", slack.new_response_url()),
                                      type="slash_commands")
        assert received[-1]["type"] == "slash_commands"
        assert len(slack.recorder.calls("apps.connections.open")) == 2
    finally:
        await sm.close()


async def test_socket_send_times_out_without_ack(slack: FakeSlack) -> None:
    sm = SocketModeClient(app_token=slack.app_token, web_client=AsyncWebClient(base_url=slack.api_url))
    try:
        await sm.connect()
        with pytest.raises(TimeoutError):
            await slack.socket_send(envelope({"type": "app_mention"}), timeout=0.3, redeliver=1)
        assert [e["retry_attempt"] for e in slack.socket_sent] == [0, 1]
        assert slack.socket_sent[1]["retry_reason"] == "timeout"
    finally:
        await sm.close()


def test_official_signature_vector() -> None:
    verifier = SignatureVerifier(DOC_SECRET, clock=_FixedClock(int(DOC_TS)))
    assert verifier.generate_signature(timestamp=DOC_TS, body=DOC_BODY) == DOC_SIGNATURE
    assert verifier.is_valid(body=DOC_BODY, timestamp=DOC_TS, signature=DOC_SIGNATURE)
    # the emulator signs without slack_sdk (the demo ships it in the package): the same bytes as Slack's example
    assert signature(DOC_SECRET, DOC_TS, DOC_BODY) == DOC_SIGNATURE


class _FixedClock:
    def __init__(self, now: int) -> None:
        self._now = now

    def now(self) -> float:
        return float(self._now)


async def test_slack_sender_signs_like_slack() -> None:
    seen: list[tuple[bytes, dict[str, str]]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((await request.read(), dict(request.headers)))
        return web.Response(text="")

    app = web.Application()
    app.router.add_post("/slack/events", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    verifier = SignatureVerifier("s3cret")
    try:
        async with SlackSender(f"http://127.0.0.1:{port}/slack/events", "s3cret") as sender:
            reply = await sender.send_event(envelope({"type": "app_mention", "text": "héllo"}))
            await sender.send_command(slash_command("/csv", "a b&c", "C1", "U1", "http://x/y"))
            await sender.send_interactive({"type": "block_actions", "actions": []}, retry_num=1)
            await sender.send_event(url_verification("abc"), bad_signature=True)
            await sender.send_event(url_verification("abc"), timestamp=int(time.time()) - 600)
        assert reply.status == 200 and reply.elapsed >= 0
        valid = [verifier.is_valid(body=b.decode(), timestamp=h["X-Slack-Request-Timestamp"],
                                   signature=h["X-Slack-Signature"]) for b, h in seen]
        assert valid == [True, True, True, False, False]
        assert seen[0][1]["Content-Type"] == "application/json"
        assert seen[1][1]["Content-Type"] == "application/x-www-form-urlencoded"
        assert seen[2][0].startswith(b"payload=") and seen[2][1]["X-Slack-Retry-Num"] == "1"
        assert seen[2][1]["X-Slack-Retry-Reason"] == "http_timeout"
    finally:
        await runner.cleanup()


async def test_socket_send_without_connection_times_out(slack: FakeSlack) -> None:
    # socket_send waits for a connection (on a condition), then gives up when none comes.
    with pytest.raises(asyncio.TimeoutError):
        await slack.socket_send({"type": "event_callback"}, timeout=0.2)
