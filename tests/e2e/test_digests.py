"""Scheduled digests end to end: the thread command, the slash commands, the Cancel button, and the runs, driven by
``datastory digest run-due --now`` and by the first pass at start-up (never by waiting for a schedule)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from bot import cli
from bot.demo import slack_events as ev
from bot.demo.fake_slack import ThreadItem
from bot.demo.slack_events import SlackSender
from bot.digests import when
from bot.schedules import parse_schedule
from bot.store import make_store
from bot.store.base import DigestRecord
from tests.e2e.conftest import CHANNEL, SIGNING_SECRET, USER, Harness, RunningBot
from tests.emulators.fake_openai import ResponseContext, ScriptedTurn

pytestmark = pytest.mark.e2e

QUIET: dict[str, Any] = {"digest_interval_seconds": 3600.0}
"""Only the start-up pass of the bot's own digest loop runs during a test; the rest is `run-due --now`."""


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def bot_with_data(harness: Harness) -> tuple[RunningBot, str]:
    """A started bot and the ts of a thread whose CSV it has analysed."""
    bot = await harness.start(**QUIET)
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await harness.wait_done(event["ts"])
    return bot, str(event["ts"])


async def schedule(harness: Harness, bot: RunningBot, ts: str, text: str) -> ThreadItem:
    """Reply ``text`` in the thread and return the bot's answer to it."""
    before = len(harness.slack.thread(CHANNEL, ts))
    await bot.send(harness.reply_event(text, ts))

    def answered() -> ThreadItem | None:
        items = harness.slack.thread(CHANNEL, ts)[before:]
        return next((m for m in items if m.is_bot), None)

    item: ThreadItem = await harness.wait_for(answered)
    return item


def button_of(item: ThreadItem) -> dict[str, Any]:
    [actions] = [b for b in item.blocks or [] if b["type"] == "actions"]
    [button] = actions["elements"]
    return dict(button)


async def digest(bot: RunningBot, digest_id: str) -> DigestRecord:
    store = make_store(bot.settings.database_url)
    await store.open()
    try:
        record = await store.get_digest(digest_id)
    finally:
        await store.close()
    assert record is not None
    return record


async def run_due(bot: RunningBot, at: float, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    capsys.readouterr()
    assert await cli.amain(["digest", "run-due", "--now", iso(at), *extra], settings=bot.settings) == 0
    return capsys.readouterr().out


def top_level(harness: Harness) -> list[Any]:
    return [m for m in harness.slack.bot_messages(CHANNEL) if m.thread_ts is None and not m.files]


async def test_a_digest_in_a_thread_is_confirmed_with_the_next_runs_in_the_users_zone(harness: Harness) -> None:
    harness.slack.add_user(USER, tz="America/New_York", tz_offset=-18000)
    bot, ts = await bot_with_data(harness)
    reply = await schedule(harness, bot, ts, "<@UBOT> digest every monday 09:00: summarise revenue by region and "
                                             "flag drops over 10%")
    button = button_of(reply)
    assert button["action_id"] == "digest_cancel" and button["text"]["text"] == "Cancel"
    digest_id = button["value"]
    expected = parse_schedule("every monday 09:00", tz="America/New_York").next_runs(time.time(), 3)
    assert reply.text.startswith(f":calendar: Digest `{digest_id}` scheduled every Monday at 09:00 "
                                 "(America/New_York):\n&gt;summarise revenue by region and flag drops over 10%\n")
    assert f"Next runs: {', '.join(when(m) for m in expected)}." in reply.text
    assert all(when(m).endswith(("EST", "EDT")) and when(m).startswith("Mon ") for m in expected)
    record = await digest(bot, digest_id)
    assert (record.owner, record.tz, record.cron, record.key.thread_ts) == (USER, "America/New_York", "0 9 * * 1", ts)
    assert record.next_run_at == expected[0].timestamp()
    assert len(harness.openai.responses) == 1  # the digest command is not a question


async def test_an_unreadable_schedule_gets_examples_and_nothing_is_scheduled(harness: Harness) -> None:
    bot, ts = await bot_with_data(harness)
    reply = await schedule(harness, bot, ts, "digest every blursday 09:00: revenue please")
    assert "`blursday` is not a day of the week" in reply.text and "`daily 08:30`" in reply.text
    assert "Examples:" in reply.text and reply.blocks is None
    reply = await schedule(harness, bot, ts, "digest sometime soon")
    assert reply.text.startswith(":calendar: Write it as `digest &lt;schedule&gt;: &lt;question&gt;`")
    store = make_store(bot.settings.database_url)
    await store.open()
    try:
        assert await store.list_digests() == []
    finally:
        await store.close()


async def test_a_due_digest_runs_in_a_batch_container_and_posts_to_the_channel(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    bot, ts = await bot_with_data(harness)
    digest_id = button_of(await schedule(harness, bot, ts, "digest daily 08:30: summarise revenue by region"))["value"]
    [thread_container] = harness.openai.live_containers()
    due = (await digest(bot, digest_id)).next_run_at
    uploads_before = len(harness.slack.uploads)

    out = await run_due(bot, due + 60, capsys)
    assert "ran 1, skipped 0 unchanged, 0 failed" in out and f"ran: {digest_id}" in out

    batch = [c for c in harness.openai.containers.values() if c.id != thread_container.id]
    assert len(batch) == 1
    [container] = batch
    assert container.expires_after == {"anchor": "last_active_at", "minutes": 5}
    assert container.name.startswith(f"datastory-digest-{digest_id}-")
    assert [f.original_name for f in container.user_files()] == ["sales.csv"]
    assert container.deleted and not harness.openai.containers[thread_container.id].deleted

    [post] = top_level(harness)
    assert post.text.startswith(f":newspaper: *Digest* `{digest_id}` · every day at 08:30")
    assert "Summary of sales.csv" in post.text and "summarise revenue by region" in post.text
    assert f"Source thread ({harness.slack.permalink(CHANNEL, ts)})" in post.text
    [chart] = harness.slack.uploads[uploads_before:]
    assert chart.channel == CHANNEL and chart.thread_ts is None and chart.content.startswith(b"\x89PNG")
    after = await digest(bot, digest_id)
    assert after.last_outcome == "ran" and after.next_run_at > due + 60


async def test_unchanged_data_posts_one_line_and_creates_no_container(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    bot, ts = await bot_with_data(harness)
    digest_id = button_of(await schedule(harness, bot, ts, "digest daily 08:30: revenue by region"))["value"]
    first = (await digest(bot, digest_id)).next_run_at
    await run_due(bot, first, capsys)
    containers = len(harness.openai.containers)
    responses = len(harness.openai.responses)

    out = await run_due(bot, first + 86_400, capsys)
    assert f"skipped, no new data: {digest_id}" in out
    assert len(harness.openai.containers) == containers and len(harness.openai.responses) == responses
    line = top_level(harness)[-1]
    assert line.text == (f":zzz: No new data since {when(datetime.fromtimestamp(first, UTC))} for digest "
                         f"`{digest_id}` (every day at 08:30).")


async def test_digest_always_posts_the_full_digest_even_when_nothing_changed(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    bot, ts = await bot_with_data(harness)
    confirmation = await schedule(harness, bot, ts, "digest always daily 08:30: revenue by region")
    assert "posts the full digest even when the data has not changed" in confirmation.text
    digest_id = button_of(confirmation)["value"]
    assert not (await digest(bot, digest_id)).skip_unchanged
    first = (await digest(bot, digest_id)).next_run_at
    await run_due(bot, first, capsys)
    containers = len(harness.openai.containers)
    out = await run_due(bot, first + 86_400, capsys)
    assert f"ran: {digest_id}" in out and "skipped, no new data" not in out
    assert len(harness.openai.containers) == containers + 1
    assert top_level(harness)[-1].text.startswith(f":newspaper: *Digest* `{digest_id}`")


async def test_missed_runs_run_once_at_the_next_start(harness: Harness) -> None:
    bot, ts = await bot_with_data(harness)
    digest_id = button_of(await schedule(harness, bot, ts, "digest daily 08:30: revenue by region"))["value"]
    assert await bot.shutdown() == 0
    # the bot was down for four days: four slots were missed
    store = make_store(bot.settings.database_url)
    await store.open()
    try:
        record = await store.get_digest(digest_id)
        assert record is not None
        assert await store.claim_digest(digest_id, due_at=record.next_run_at, next_run_at=time.time() - 4 * 86_400,
                                        now=time.time() - 5 * 86_400)
    finally:
        await store.close()
    containers = len(harness.openai.containers)

    await harness.start(**QUIET)
    await harness.wait_for(lambda: top_level(harness))
    await harness.wait_for(lambda: (c := list(harness.openai.containers.values())[-1]).deleted and c)
    assert len(harness.openai.containers) == containers + 1
    assert len(top_level(harness)) == 1
    after = await digest(bot, digest_id)
    assert time.time() < after.next_run_at <= time.time() + 86_400


async def test_run_due_at_an_instant_that_is_not_due_runs_nothing(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    bot, ts = await bot_with_data(harness)
    digest_id = button_of(await schedule(harness, bot, ts, "digest weekdays 17:00: revenue"))["value"]
    due = (await digest(bot, digest_id)).next_run_at
    containers, posts = len(harness.openai.containers), len(harness.slack.bot_messages())

    out = await run_due(bot, due - 60, capsys)
    assert "ran 0, skipped 0 unchanged, 0 failed" in out
    out = await run_due(bot, due, capsys, "--dry-run")
    assert "would run 1 digest(s)" in out and f"would run: {digest_id}" in out
    assert len(harness.openai.containers) == containers and len(harness.slack.bot_messages()) == posts
    assert (await digest(bot, digest_id)).next_run_at == due  # nothing claimed


async def test_three_failures_pause_the_digest_and_tell_the_owner(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    bot, ts = await bot_with_data(harness)
    digest_id = button_of(await schedule(harness, bot, ts, "digest daily 08:30: revenue"))["value"]

    def broken(ctx: ResponseContext) -> ScriptedTurn:
        return ScriptedTurn(status="failed")

    harness.openai.script = broken
    for _ in range(3):
        await run_due(bot, (await digest(bot, digest_id)).next_run_at, capsys)
    told = [m.text for m in harness.slack.thread(CHANNEL, ts) if m.is_bot and f"Digest `{digest_id}`" in m.text
            and "failed" in m.text]
    assert len(told) == 3 and all(t.startswith(f":warning: <@{USER}> Digest `{digest_id}`") for t in told)
    assert told[2].endswith("is paused after 3 failures in a row; fix the cause and schedule it again.")
    assert all(c.deleted for c in harness.openai.containers.values() if c.name.startswith("datastory-digest-"))
    paused = await digest(bot, digest_id)
    assert paused.status == "paused" and paused.failures == 3
    out = await run_due(bot, paused.next_run_at + 86_400, capsys)
    assert "ran 0, skipped 0 unchanged, 0 failed" in out
    capsys.readouterr()
    assert await cli.amain(["digest", "list"], settings=bot.settings) == 0
    listing = capsys.readouterr().out
    assert f"{digest_id}\t{CHANNEL}\tevery day at 08:30 (30 8 * * *)\tUTC\t" in listing
    assert "\tpaused\tfailed: AnalysisFailed ref=" in listing


async def test_the_cancel_button_cancels_and_updates_the_confirmation(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    bot, ts = await bot_with_data(harness)
    confirmation = await schedule(harness, bot, ts, "digest daily 08:30: revenue")
    digest_id = button_of(confirmation)["value"]
    due = (await digest(bot, digest_id)).next_run_at
    harness.slack.add_user("U2", is_admin=True)  # not the owner: a workspace admin may cancel it
    async with SlackSender(bot.url + "/slack/events", SIGNING_SECRET) as sender:
        reply = await sender.send_interactive(ev.block_actions(
            "digest_cancel", digest_id, channel_id=CHANNEL, user_id="U2", message_ts=confirmation.ts,
            response_url=harness.slack.new_response_url()))
    assert reply.status == 200
    await harness.wait_for(lambda: (m := harness.slack.find_message(CHANNEL, confirmation.ts)) and m.history)
    updated = harness.slack.find_message(CHANNEL, confirmation.ts)
    assert updated is not None
    assert updated.text.startswith(f":no_entry_sign: Digest `{digest_id}` (every day at 08:30) was cancelled by "
                                   "<@U2>.")
    assert updated.blocks is not None and not any(b["type"] == "actions" for b in updated.blocks)
    assert (await digest(bot, digest_id)).status == "cancelled"
    containers = len(harness.openai.containers)
    assert "ran 0" in await run_due(bot, due, capsys)
    assert len(harness.openai.containers) == containers


async def test_slash_commands_list_and_cancel_the_channels_digests(harness: Harness) -> None:
    bot, ts = await bot_with_data(harness)
    first = button_of(await schedule(harness, bot, ts, "digest daily 08:30: revenue"))["value"]
    second = button_of(await schedule(harness, bot, ts, "digest every 1st of the month 09:00: churn"))["value"]
    async with SlackSender(bot.url + "/slack/events", SIGNING_SECRET) as sender:
        listed = await sender.send_command(ev.slash_command("/datastory", "digests", CHANNEL, USER,
                                                            harness.slack.new_response_url()))
        assert listed.status == 200
        await harness.wait_for(lambda: harness.slack.command_responses)
        listing = harness.slack.command_responses[-1]
        assert f"`{first}` every day at 08:30 (UTC), next " in listing["text"]
        assert f"`{second}` on day 1 of every month at 09:00 (UTC)" in listing["text"]
        assert f"owner <@{USER}>: revenue" in listing["text"]
        buttons = [b["accessory"] for b in listing["blocks"] if "accessory" in b]
        assert sorted(b["value"] for b in buttons) == sorted([first, second])
        assert {b["action_id"] for b in buttons} == {"digest_cancel"}

        await sender.send_command(ev.slash_command("/datastory", f"digest cancel {first}", CHANNEL, USER,
                                                   harness.slack.new_response_url()))
        await harness.wait_for(lambda: len(harness.slack.command_responses) >= 2)
        assert harness.slack.command_responses[-1]["text"] == (
            f":no_entry_sign: Digest `{first}` (every day at 08:30) was cancelled by <@{USER}>.")
        await sender.send_command(ev.slash_command("/datastory", f"digest cancel {second}", "C2", USER,
                                                   harness.slack.new_response_url()))
        await harness.wait_for(lambda: len(harness.slack.command_responses) >= 3)
        assert "belongs to <#C1>; cancel it there" in harness.slack.command_responses[-1]["text"]
        await sender.send_command(ev.slash_command("/datastory", "digests", CHANNEL, USER,
                                                   harness.slack.new_response_url()))
        await harness.wait_for(lambda: len(harness.slack.command_responses) >= 4)
    remaining = harness.slack.command_responses[-1]
    assert first not in remaining["text"] and second in remaining["text"]
    assert (await digest(bot, first)).status == "cancelled" and (await digest(bot, second)).status == "active"
    await harness.wait_for(lambda: not confirmation_buttons(harness, ts, first))  # the confirmation lost its button…
    assert confirmation_buttons(harness, ts, second)
    [retired] = [m for m in harness.slack.thread(CHANNEL, ts) if m.is_bot and f"`{first}`" in m.text]
    assert retired.text.startswith(f":no_entry_sign: Digest `{first}` (every day at 08:30) was cancelled by <@{USER}>.")
    assert "&gt;revenue" in retired.text  # …and says who cancelled which question


async def test_the_cancel_button_of_the_ephemeral_list_replaces_the_list_line(harness: Harness) -> None:
    bot, ts = await bot_with_data(harness)
    digest_id = button_of(await schedule(harness, bot, ts, "digest weekdays 17:00: revenue"))["value"]
    payload = ev.block_actions("digest_cancel", digest_id, channel_id=CHANNEL, user_id=USER, message_ts=ev.fresh_ts(),
                               response_url=harness.slack.new_response_url())
    payload["container"]["is_ephemeral"] = True
    async with SlackSender(bot.url + "/slack/events", SIGNING_SECRET) as sender:
        assert (await sender.send_interactive(payload)).status == 200
    await harness.wait_for(lambda: harness.slack.command_responses)
    [answer] = harness.slack.command_responses
    assert answer["replace_original"] is True
    assert answer["text"] == (f":no_entry_sign: Digest `{digest_id}` (every weekday at 17:00) was cancelled by "
                              f"<@{USER}>.")
    assert (await digest(bot, digest_id)).status == "cancelled"
    await harness.wait_for(lambda: not confirmation_buttons(harness, ts, digest_id))
    assert "was cancelled by" in next(m.text for m in harness.slack.thread(CHANNEL, ts) if f"`{digest_id}`" in m.text)


def confirmation_buttons(harness: Harness, ts: str, digest_id: str) -> list[Any]:
    return [b for m in harness.slack.thread(CHANNEL, ts) if m.is_bot and f"`{digest_id}`" in m.text
            for b in m.blocks or [] if b["type"] == "actions"]
