"""The demo's person: what the page asks for reaches a Request URL exactly as Slack would deliver it.

A small aiohttp app stands in for the bot's Request URL; it checks every signature with slack_sdk's own verifier
and answers like Bolt (2xx, a slash command's acknowledgement body).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from bot.demo.fake_slack import FakeSlack
from bot.demo.serving import listen
from bot.demo.slack_events import SlackSender
from bot.demo.views import channel_views
from bot.demo.workspace import CHANNEL, USER, DeliveryError, DemoWorkspace
from bot.turns.native import answer_blocks

SECRET = "demo-signing-secret"


@dataclass(slots=True)
class RequestUrl:
    """The bot's side: every delivery, verified, and what to answer to slash commands."""

    url: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    commands: list[dict[str, str]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)
    command_answer: dict[str, Any] = field(default_factory=dict)
    status: int = 200


@pytest.fixture
async def bot() -> AsyncIterator[RequestUrl]:
    seen = RequestUrl()
    verifier = SignatureVerifier(SECRET)

    async def handler(request: web.Request) -> web.Response:
        body = (await request.read()).decode()
        assert verifier.is_valid(body=body, timestamp=request.headers["X-Slack-Request-Timestamp"],
                                 signature=request.headers["X-Slack-Signature"])
        if request.content_type == "application/json":
            seen.events.append(json.loads(body))
            return web.Response(status=seen.status)
        form = dict(parse_qsl(body))
        if "payload" in form:
            seen.actions.append(json.loads(form["payload"]))
            return web.Response()
        seen.commands.append(form)
        return web.json_response(seen.command_answer) if seen.command_answer else web.Response()

    app = web.Application()
    app.router.add_post("/slack/events", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    seen.url = f"http://127.0.0.1:{await listen(runner, '127.0.0.1')}/slack/events"
    try:
        yield seen
    finally:
        await runner.cleanup()


@pytest.fixture
async def workspace(bot: RequestUrl, tmp_path: Path) -> AsyncIterator[DemoWorkspace]:
    (tmp_path / "sales.csv").write_text("region,revenue\nNorth,10\n", encoding="utf-8")
    async with FakeSlack(team_id="T0DEMO") as slack, SlackSender(bot.url, SECRET) as sender:
        ws = DemoWorkspace(slack=slack, examples={"sales.csv": tmp_path / "sales.csv"})
        ws.connect(sender)
        yield ws


def inner(bot: RequestUrl) -> list[dict[str, Any]]:
    return [e["event"] for e in bot.events]


async def test_a_message_is_escaped_and_a_mention_also_arrives_as_app_mention(
    workspace: DemoWorkspace, bot: RequestUrl
) -> None:
    ts = await workspace.post("@datastory is revenue < 5 & > 2?")
    text = "<@UBOT> is revenue &lt; 5 &amp; &gt; 2?"
    assert [(e["type"], e["text"], e["ts"]) for e in inner(bot)] == [("message", text, ts), ("app_mention", text, ts)]
    assert all(e["team_id"] == "T0DEMO" and e["authorizations"][0]["user_id"] == "UBOT" for e in bot.events)
    assert workspace.slack.find_message(CHANNEL, ts) is not None


async def test_a_shared_file_is_a_file_share_message_and_a_file_shared_event(
    workspace: DemoWorkspace, bot: RequestUrl
) -> None:
    ts = await workspace.share_example("sales.csv")
    share, shared = inner(bot)
    assert share["subtype"] == "file_share" and share["ts"] == ts
    file = share["files"][0]
    assert (file["name"], file["mimetype"], file["filetype"], file["user"]) == ("sales.csv", "text/csv", "csv", USER)
    assert shared["type"] == "file_shared" and shared["file_id"] == file["id"]
    # the bot can fetch it with its token, as from Slack
    async with aiohttp.ClientSession() as session, session.get(
        file["url_private_download"], headers={"Authorization": f"Bearer {workspace.slack.bot_token}"}
    ) as resp:
        assert await resp.read() == b"region,revenue\nNorth,10\n"


async def test_a_reply_to_a_reply_goes_to_the_thread_root(workspace: DemoWorkspace, bot: RequestUrl) -> None:
    root = await workspace.post("first")
    reply = await workspace.post("second", thread_ts=root)
    await workspace.post("third", thread_ts=reply)
    assert [e.get("thread_ts") for e in inner(bot)] == [None, root, root]
    assert inner(bot)[2]["parent_user_id"] == USER


async def test_a_slash_command_answer_and_its_response_url_posts_are_ephemerals(
    workspace: DemoWorkspace, bot: RequestUrl
) -> None:
    bot.command_answer = {"text": "Here are your digests"}
    assert await workspace.post("/datastory digests", thread_ts=None) == ""
    [command] = bot.commands
    assert (command["command"], command["text"], command["channel_id"], command["user_id"]) == \
        ("/datastory", "digests", CHANNEL, USER)
    [shown] = workspace.ephemerals()
    assert shown.text == "Here are your digests"
    async with aiohttp.ClientSession() as session:
        await session.post(command["response_url"], json={"text": "Replaced", "replace_original": True})
        [replaced] = workspace.ephemerals()
        assert replaced.id == shown.id and replaced.text == "Replaced"
        await session.post(command["response_url"], json={"text": "For all", "response_type": "in_channel"})
        assert len(workspace.ephemerals()) == 1  # (response_url posts are gathered when the page looks)
        assert workspace.slack.bot_messages(CHANNEL)[-1].text == "For all"
        await session.post(command["response_url"], json={"delete_original": True})
    assert workspace.ephemerals() == []
    assert not any(m.user == USER for m in workspace.slack.messages)  # a command is never a message


async def test_an_unknown_command_gets_slack_s_own_note(workspace: DemoWorkspace, bot: RequestUrl) -> None:
    await workspace.post("/giphy cats")
    [note] = workspace.ephemerals()
    assert note.author == "USLACKBOT" and "`/giphy` is not a valid command" in note.text
    assert bot.commands == [] and bot.events == []


async def test_a_button_press_is_a_block_actions_payload(workspace: DemoWorkspace, bot: RequestUrl) -> None:
    root = await workspace.post("data")
    msg = workspace.slack.add_message(channel=CHANNEL, user="UBOT", bot_id="BBOT", text="Digest", thread_ts=root)
    msg.blocks = [{"type": "actions", "block_id": "d-1", "elements": [{"type": "button", "action_id": "digest_cancel",
                                                                         "value": "d1"}]}]
    await workspace.click(msg.ts, action_id="digest_cancel", value="d1", block_id="d-1")
    [payload] = bot.actions
    assert payload["type"] == "block_actions" and payload["actions"][0]["value"] == "d1"
    assert payload["container"] == {"type": "message", "message_ts": msg.ts, "channel_id": CHANNEL,
                                    "is_ephemeral": False, "thread_ts": root}
    assert payload["message"]["blocks"] == msg.blocks and payload["user"]["id"] == USER

    bot.command_answer = {"text": "listing"}
    await workspace.post("/datastory digests")
    [listing] = workspace.ephemerals()
    await workspace.click(listing.id, action_id="digest_cancel", value="d1", block_id="x")
    assert bot.actions[1]["container"]["is_ephemeral"] is True and "message" not in bot.actions[1]
    with pytest.raises(KeyError):
        await workspace.click("1.000001", action_id="digest_cancel", value="d1", block_id="x")


async def test_a_feedback_button_press_is_the_feedback_buttons_action_slack_sends(
    workspace: DemoWorkspace, bot: RequestUrl,
) -> None:
    root = await workspace.post("data")
    msg = workspace.slack.add_message(channel=CHANNEL, user="UBOT", bot_id="BBOT", text="Answer", thread_ts=root)
    msg.blocks = answer_blocks("Answer", turn_id="t1", has_code=True)
    await workspace.click(msg.ts, action_id="feedback", value="bad:t1", block_id="feedback-t1")
    await workspace.click(msg.ts, action_id="show_code", value="t1", block_id="answer-t1")
    feedback, show_code = (p["actions"][0] for p in bot.actions)
    assert {k: v for k, v in feedback.items() if k != "action_ts"} == {
        "type": "feedback_buttons", "action_id": "feedback", "block_id": "feedback-t1", "value": "bad:t1",
        "text": {"type": "plain_text", "text": "👎"}}
    assert show_code["type"] == "button" and show_code["text"] == {"type": "plain_text", "text": "Show code"}


async def test_nothing_shows_when_the_bot_is_not_there_or_refuses(workspace: DemoWorkspace, bot: RequestUrl) -> None:
    workspace.connect(None)
    with pytest.raises(DeliveryError, match="not running"):
        await workspace.post("hello")
    assert workspace.slack.messages == []
    workspace.connect(SlackSender(bot.url, SECRET))
    bot.status = 500
    with pytest.raises(DeliveryError, match="HTTP 500"):
        await workspace.post("hello")
    await workspace.sender.close()


async def test_views_show_replies_reactions_files_and_the_browser_time_zone(workspace: DemoWorkspace) -> None:
    root = await workspace.share_example("sales.csv")
    await workspace.post("why?", thread_ts=root)
    workspace.slack.reactions[(CHANNEL, root)].add("eyes")
    workspace.set_time_zone("Europe/Berlin")
    workspace.set_time_zone("Not/AZone")
    assert workspace.slack.users[USER]["tz"] == "Europe/Berlin"
    first, reply = channel_views(workspace)
    assert (first["reply_count"], first["last_reply"], reply["thread_ts"]) == (1, reply["ts"], root)
    assert first["reactions"] == [{"name": "eyes", "count": 1}] and first["author"]["name"] == "You"
    [file] = first["files"]
    assert file["url"] == f"/demo/files/{file['id']}/sales.csv" and file["image"] is False
