"""Access rules end to end, on every surface: files, follow-ups, mentions, ``reset``, digests and their runs, the
slash command and the Cancel button. Someone not allowed (allowlists, another organisation) is told why, privately,
and nothing happens; a channel-wide reset and cancelling someone else's digest need an admin."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot import cli
from bot.access import CHANNEL_REFUSAL, EXTERNAL_REFUSAL, USER_REFUSAL
from bot.demo import slack_events as ev
from bot.demo.slack_events import SignedReply
from handlers.commands import RESET_REFUSAL
from tests.e2e.conftest import CHANNEL, USER, Harness, RunningBot
from tests.e2e.test_digests import QUIET, button_of, digest, schedule

pytestmark = pytest.mark.e2e

OTHER = "U2"
OUTSIDER = "UEXT"


async def analysed_thread(harness: Harness, bot: RunningBot) -> str:
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await harness.wait_done(event["ts"])
    return str(event["ts"])


async def refusals_to(harness: Harness, user: str, count: int) -> list[str]:
    """The texts of the ephemerals ``user`` got, once there are ``count``."""
    def told() -> list[str] | None:
        texts = [e["text"] for e in harness.slack.ephemerals if e["user"] == user]
        return texts if len(texts) >= count else None

    texts: list[str] = await harness.wait_for(told)
    return texts


async def command(harness: Harness, bot: RunningBot, text: str, *, user: str = USER,
                  channel: str = CHANNEL) -> SignedReply:
    return await bot.sender.send_command(ev.slash_command("/datastory", text, channel, user,
                                                          harness.slack.new_response_url()))


async def cancel_button(harness: Harness, bot: RunningBot, digest_id: str, *, user: str, message_ts: str,
                        team: str = "T1") -> dict[str, Any]:
    before = len(harness.slack.command_responses)
    payload = ev.block_actions("digest_cancel", digest_id, channel_id=CHANNEL, user_id=user, message_ts=message_ts,
                               response_url=harness.slack.new_response_url())
    payload["user"]["team_id"] = team  # the clicker's own team; the payload's "team" stays the workspace
    assert (await bot.sender.send_interactive(payload)).status == 200
    await harness.wait_for(lambda: len(harness.slack.command_responses) > before
                           or harness.slack.find_message(CHANNEL, message_ts).history)  # type: ignore[union-attr]
    return harness.slack.command_responses[-1] if len(harness.slack.command_responses) > before else {}


async def test_someone_off_the_allowlist_is_refused_privately_on_every_surface(harness: Harness) -> None:
    bot = await harness.start(allowed_users=[USER], **QUIET)
    ts = await analysed_thread(harness, bot)
    [container] = harness.openai.live_containers()
    digest_id = button_of(await schedule(harness, bot, ts, "digest daily 08:30: revenue"))["value"]
    posts = len(harness.slack.recorder.calls("chat.postMessage"))
    reactions = len(harness.slack.recorder.calls("reactions.add"))
    responses = len(harness.openai.responses)

    await bot.send(harness.reply_event("and by month?", ts, user=OTHER))  # a follow-up
    await bot.send(harness.reply_event("reset", ts, user=OTHER))
    await bot.send(harness.reply_event("digest daily 09:00: churn", ts, user=OTHER))
    await bot.send(ev.app_mention(CHANNEL, OTHER, "<@UBOT> what can you do?"))
    await bot.send(harness.file_event("other.csv", user=OTHER))
    assert await refusals_to(harness, OTHER, 5) == [USER_REFUSAL] * 5
    help_reply = await command(harness, bot, "help", user=OTHER)
    assert help_reply.body == USER_REFUSAL
    clicked = await cancel_button(harness, bot, digest_id, user=OTHER, message_ts=ts)
    assert clicked["text"] == USER_REFUSAL and clicked["response_type"] == "ephemeral"

    await bot.shutdown()
    assert len(harness.slack.recorder.calls("chat.postMessage")) == posts  # nothing public
    assert len(harness.slack.recorder.calls("reactions.add")) == reactions
    assert len(harness.openai.responses) == responses and not harness.openai.containers[container.id].deleted
    assert [d.id for d in await list_digests(bot)] == [digest_id]
    assert (await digest(bot, digest_id)).status == "active"


async def list_digests(bot: RunningBot) -> list[Any]:
    from bot.store import make_store

    store = make_store(bot.settings.database_url)
    await store.open()
    try:
        return await store.list_digests()
    finally:
        await store.close()


async def test_a_channel_off_the_allowlist_gets_a_private_note_for_files_mentions_and_commands(
    harness: Harness,
) -> None:
    bot = await harness.start(allowed_channels=[CHANNEL])
    await bot.send(harness.file_event("sales.csv", channel="C9"))
    await bot.send(ev.app_mention("C9", USER, "<@UBOT> hello"))
    await bot.send(ev.message("C9", USER, "just chatting"))  # not for the bot: no note
    assert await refusals_to(harness, USER, 2) == [CHANNEL_REFUSAL] * 2
    assert (await command(harness, bot, "digests", channel="C9")).body == CHANNEL_REFUSAL
    await bot.shutdown()
    assert len(harness.slack.ephemerals) == 2 and not harness.slack.recorder.calls("chat.postMessage")
    assert harness.slack.downloads == []


async def test_a_channel_wide_reset_needs_an_admin(harness: Harness) -> None:
    bot = await harness.start(admin_users=["UBOTADMIN"])
    await analysed_thread(harness, bot)
    refused = await command(harness, bot, "reset")
    assert refused.body == RESET_REFUSAL and len(harness.openai.live_containers()) == 1

    cases: list[tuple[str, dict[str, bool]]] = [("UWSADMIN", {"is_admin": True}), ("UOWNER", {"is_owner": True}),
                                                 ("UBOTADMIN", {})]
    for n, (user, flags) in enumerate(cases):
        harness.slack.add_user(user, **flags)
        await analysed_thread(harness, bot)  # the refused reset left the first thread's workspace: 2, then 1, 1
        before = len(harness.slack.command_responses)
        assert (await command(harness, bot, "reset", user=user)).status == 200
        await harness.wait_for(lambda b=before: len(harness.slack.command_responses) > b)  # type: ignore[misc]
        expected = "Reset 2 thread workspaces" if n == 0 else "Reset 1 thread workspace in"
        assert expected in harness.slack.command_responses[-1]["text"], user
        assert harness.openai.live_containers() == []


async def test_only_the_owner_or_an_admin_cancels_a_digest(harness: Harness) -> None:
    bot = await harness.start(**QUIET)
    ts = await analysed_thread(harness, bot)
    confirmation = await schedule(harness, bot, ts, "digest daily 08:30: revenue")
    digest_id = button_of(confirmation)["value"]

    refused = await cancel_button(harness, bot, digest_id, user=OTHER, message_ts=confirmation.ts)
    assert refused["response_type"] == "ephemeral"
    assert refused["text"] == (f"Digest `{digest_id}` is <@{USER}>'s: only its owner or a bot admin "
                               "(`DATASTORY_ADMIN_USERS`) or a workspace admin or owner can cancel it.")
    assert (await command(harness, bot, f"digest cancel {digest_id}", user=OTHER)).status == 200
    await harness.wait_for(lambda: len(harness.slack.command_responses) >= 2)
    assert harness.slack.command_responses[-1]["text"] == refused["text"]
    assert (await digest(bot, digest_id)).status == "active"

    await cancel_button(harness, bot, digest_id, user=USER, message_ts=confirmation.ts)  # the owner
    assert (await digest(bot, digest_id)).status == "cancelled"


async def test_people_of_another_organisation_are_refused_unless_allowed(harness: Harness) -> None:
    harness.slack.add_user(OUTSIDER, team_id="T2")
    bot = await harness.start(**QUIET)
    ts = await analysed_thread(harness, bot)
    digest_id = button_of(await schedule(harness, bot, ts, "digest daily 08:30: revenue"))["value"]
    responses = len(harness.openai.responses)
    outside = harness.file_event("theirs.csv", user=OUTSIDER)
    assert outside["user_team"] == "T2"
    await bot.send(outside)
    await bot.send(harness.reply_event("and by month?", ts, user=OUTSIDER))
    assert await refusals_to(harness, OUTSIDER, 2) == [EXTERNAL_REFUSAL] * 2
    assert (await command(harness, bot, "help", user=OUTSIDER)).body == EXTERNAL_REFUSAL  # users.info
    clicked = await cancel_button(harness, bot, digest_id, user=OUTSIDER, message_ts=ts, team="T2")
    assert clicked["text"] == EXTERNAL_REFUSAL
    assert len(harness.openai.responses) == responses
    assert outside["files"][0]["id"] not in {d.file_id for d in harness.slack.downloads}
    assert await bot.shutdown() == 0

    bot = await harness.start(allow_external_users=True, **QUIET)
    await bot.send(harness.reply_event("and by month?", ts, user=OUTSIDER))
    await harness.wait_done(ts, turns=2)
    assert len(harness.openai.responses) == responses + 1


async def test_a_digest_whose_owner_is_no_longer_allowed_pauses_and_tells_the_owner_alone(
    harness: Harness, capsys: pytest.CaptureFixture[str]
) -> None:
    bot = await harness.start(**QUIET)
    ts = await analysed_thread(harness, bot)
    digest_id = button_of(await schedule(harness, bot, ts, "digest daily 08:30: revenue"))["value"]
    due = (await digest(bot, digest_id)).next_run_at
    containers = len(harness.openai.containers)
    settings = bot.settings.model_copy(update={"allowed_users": ["USOMEONE"]})
    capsys.readouterr()
    assert await cli.amain(["digest", "run-due", "--now", datetime.fromtimestamp(due, UTC).isoformat()],
                           settings=settings) == 0
    assert "1 refused" in capsys.readouterr().out
    [told] = [e for e in harness.slack.ephemerals if e["user"] == USER]
    assert told["thread_ts"] == ts and told["text"] == (
        f":double_vertical_bar: Digest `{digest_id}` (every day at 08:30) is paused: {USER_REFUSAL}")
    assert (await digest(bot, digest_id)).status == "paused"
    assert len(harness.openai.containers) == containers and not harness.slack.downloads[1:]
    assert not [m for m in harness.slack.bot_messages(CHANNEL) if m.thread_ts is None]
