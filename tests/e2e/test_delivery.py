"""How Slack delivers: duplicates and retries give one answer, restarts keep threads, noise is acked and ignored."""

from __future__ import annotations

import asyncio

import pytest

from bot.demo import slack_events as ev
from bot.demo.slack_events import SlackSender, envelope
from tests.e2e.conftest import CHANNEL, SIGNING_SECRET, USER, Harness, no_work_at

pytestmark = pytest.mark.e2e


async def test_the_same_file_delivered_many_ways_gets_one_answer(harness: Harness) -> None:
    bot = await harness.start()
    event = harness.file_event("sales.csv", text="<@UBOT> what is in here?")
    ts = event["ts"]
    file_id = event["files"][0]["id"]
    body = envelope(event)
    mention = dict(event, type="app_mention")
    mention.pop("subtype")

    replies = await asyncio.gather(
        bot.sender.send_event(body),
        bot.sender.send_event(body, retry_num=1, retry_reason="http_timeout"),
        bot.send(ev.file_shared(file_id, CHANNEL, USER)),
        bot.send(mention),
    )
    assert [r.status for r in replies] == [200, 200, 200, 200]
    await harness.wait_done(ts)
    await bot.sender.send_event(body, retry_num=2, retry_reason="http_error")
    await bot.shutdown()  # drains background work, so a second answer would have been posted by now

    assert len(harness.openai.containers) == 1
    assert len(harness.openai.responses) == 1
    assert len(harness.slack.uploads) == 1
    status, narrative, chart = [m for m in harness.slack.thread(CHANNEL, ts) if m.is_bot]
    assert status.text.startswith(":white_check_mark:") and "Summary of sales.csv" in narrative.text
    assert [f["name"] for f in chart.files] == [harness.slack.uploads[0].name]


async def test_restart_keeps_the_thread_its_container_and_its_dedupe_keys(harness: Harness) -> None:
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    ts = event["ts"]
    body = envelope(event)
    await bot.sender.send_event(body)
    await harness.wait_done(ts)
    assert await bot.shutdown() == 0

    bot = await harness.start()
    await bot.sender.send_event(body, retry_num=3, retry_reason="http_error")  # a late retry: still a duplicate
    await bot.send(harness.reply_event("and by month?", ts))
    await harness.wait_done(ts, turns=2)

    assert len(harness.openai.containers) == 1
    [container] = harness.openai.live_containers()
    assert container.variables["questions"][-1] == "and by month?"
    assert len(harness.openai.responses) == 2
    first, second = harness.openai.responses.values()
    assert second.previous_response_id == first.id
    assert harness.slack.reactions[(CHANNEL, ts)] == {"white_check_mark"}  # the late retry did not react again


async def test_a_bad_signature_is_rejected_and_nothing_happens(harness: Harness) -> None:
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    reply = await bot.send(event, bad_signature=True)
    assert reply.status == 401
    stale = await bot.send(event, timestamp=1_500_000_000)
    assert stale.status == 401
    await bot.shutdown()
    assert no_work_at(harness.openai)
    assert not harness.slack.recorder.calls("chat.postMessage")


async def test_url_verification_answers_the_challenge(harness: Harness) -> None:
    bot = await harness.start()
    reply = await bot.sender.send_event(ev.url_verification("abc123"))
    assert reply.status == 200 and reply.json == {"challenge": "abc123"}


async def test_noise_is_acknowledged_and_ignored(harness: Harness) -> None:
    bot = await harness.start(allowed_channels=[CHANNEL, "C2"])
    root = harness.slack.add_message(channel=CHANNEL, user=USER, text="hello team")
    events = [
        ev.message(CHANNEL, USER, "just chatting"),  # top level, no mention
        ev.message(CHANNEL, USER, "a reply", thread_ts=root.ts),  # a thread without data
        ev.bot_message(CHANNEL, "my own words"),  # the bot itself
        ev.bot_message(CHANNEL, "another bot", bot_user_id="UOTHER", bot_id="BOTHER"),
        ev.bot_message(CHANNEL, "a classic bot", bot_id="BOTHER", classic=True),
        ev.message_changed(CHANNEL, root.ts, "edited", user=USER),
        ev.message_deleted(CHANNEL, root.ts, user=USER),
        {"type": "reaction_added", "user": USER, "reaction": "tada", "event_ts": ev.fresh_ts(),
         "item": {"type": "message", "channel": CHANNEL, "ts": root.ts}},
        {"type": "member_joined_channel", "user": USER, "channel": CHANNEL, "event_ts": ev.fresh_ts()},
    ]
    outside = harness.file_event("sales.csv", channel="C9")
    replies = [await bot.send(e) for e in [*events, outside]]
    assert [r.status for r in replies] == [200] * len(replies)
    assert all(r.elapsed < 3 for r in replies)
    await bot.shutdown()
    assert not harness.slack.recorder.calls("chat.postMessage")
    assert not harness.slack.recorder.calls("reactions.add")
    assert no_work_at(harness.openai)


async def test_every_event_the_manifest_subscribes_to_is_acknowledged(harness: Harness) -> None:
    import yaml

    from tests.unit.test_manifest import ROOT

    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text(encoding="utf-8"))
    bot = await harness.start()
    kinds = {"channels": "channel", "groups": "group", "im": "im", "mpim": "mpim"}
    for name in manifest["settings"]["event_subscriptions"]["bot_events"]:
        if name.startswith("message."):
            event = ev.message("D1", USER, "hi", channel_type=kinds[name.split(".")[1]])
        elif name == "app_mention":
            event = ev.app_mention(CHANNEL, USER, "<@UBOT> hi")
        elif name == "file_shared":
            event = ev.file_shared("F999", CHANNEL, USER)
        elif name == "tokens_revoked":
            event = ev.tokens_revoked(oauth=["U9"])
        elif name == "app_uninstalled":
            event = ev.app_uninstalled()
        elif name == "app_home_opened":
            event = ev.app_home_opened(USER)
        elif name == "reaction_added":
            event = ev.reaction_added(USER, "wastebasket", channel=CHANNEL, ts=ev.fresh_ts(), item_user="UBOT")
        elif name == "agent_session_stopped":
            event = ev.agent_session_stopped(CHANNEL, ev.fresh_ts(), USER)
        else:
            raise AssertionError(f"no test event for {name}")
        reply = await bot.send(event)
        assert reply.status == 200, name


async def test_the_bots_own_upload_does_not_start_an_analysis(harness: Harness) -> None:
    bot = await harness.start()
    png = harness.slack.add_file(name="chart.png", content=b"\x89PNG...", user="UBOT", mimetype="image/png",
                                 filetype="png")
    csv = harness.slack.add_file(name="table.csv", content=b"a,b\n1,2\n", user="UBOT")
    own = ev.file_share_message(CHANNEL, "UBOT", [png, csv], ts=ev.fresh_ts())
    own["bot_id"] = "BBOT"
    assert (await bot.send(own)).status == 200
    assert (await bot.send(ev.file_shared(csv["id"], CHANNEL, "UBOT"))).status == 200
    await bot.shutdown()
    assert no_work_at(harness.openai)
    assert not harness.slack.recorder.calls("chat.postMessage")


async def test_a_mention_without_data_gets_help_once(harness: Harness) -> None:
    bot = await harness.start()
    msg = ev.message(CHANNEL, USER, "<@UBOT> what can you do?")
    mention = dict(msg, type="app_mention")
    await asyncio.gather(bot.send(msg), bot.send(mention))
    await bot.shutdown()
    [help_post] = harness.slack.recorder.calls("chat.postMessage")
    assert help_post.params["thread_ts"] == msg["ts"]
    assert "Drop a CSV" in help_post.params["text"]


async def test_slash_command_is_acknowledged_with_help(harness: Harness) -> None:
    bot = await harness.start()
    async with SlackSender(bot.url + "/slack/events", SIGNING_SECRET) as sender:
        fields = ev.slash_command("/datastory", "help", CHANNEL, USER, harness.slack.new_response_url())
        reply = await sender.send_command(fields)
        unknown = await sender.send_command(dict(fields, text="frobnicate"))
    assert reply.status == 200 and "Drop a CSV" in reply.body
    assert unknown.status == 200 and "/datastory help" in unknown.body


async def test_health_and_metrics_endpoints(harness: Harness) -> None:
    import aiohttp

    bot = await harness.start()
    async with aiohttp.ClientSession() as http:
        async with http.get(bot.url + "/healthz") as resp:
            assert resp.status == 200 and (await resp.json())["ok"] is True
        async with http.get(bot.url + "/metrics") as resp:
            text = await resp.text()
            assert resp.status == 200 and "datastory_ready 1" in text and "datastory_turns_running 0" in text
