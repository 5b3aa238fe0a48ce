"""A workspace that uninstalls the app or revokes its bot token leaves nothing running and nothing behind: its turns
stop, its containers are deleted and every stored row of the team is purged. Retention prunes old rows, and the
sweeper asks the store only for idle threads."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from bot.store import make_store
from bot.store.base import Removed
from tests.e2e.conftest import CHANNEL, Harness, RunningBot
from tests.e2e.test_digests import QUIET, button_of, schedule
from tests.emulators import slack_events as ev
from tests.emulators.fake_openai import ResponseContext, ScriptedTurn, default_script

pytestmark = pytest.mark.e2e


async def stored(bot: RunningBot) -> dict[str, Any]:
    store = make_store(bot.settings.database_url)
    await store.open()
    try:
        threads = await store.list_threads()
        return {"threads": threads, "digests": await store.list_digests(),
                "turns": [t for th in threads for t in await store.list_turns(th.key)],
                "unfinished": await store.unfinished_turns()}
    finally:
        await store.close()


async def test_app_uninstalled_stops_the_teams_work_deletes_its_containers_and_purges_its_data(
    harness: Harness,
) -> None:
    hold = asyncio.Event()
    asked: list[str] = []

    async def stuck_on_the_second(ctx: ResponseContext) -> ScriptedTurn:
        asked.append(ctx.question)
        if len(asked) == 2:
            await hold.wait()
        return default_script(ctx)

    harness.openai.script = stuck_on_the_second
    bot = await harness.start(**QUIET)
    first = harness.file_event("sales.csv")
    await bot.send(first)
    await harness.wait_done(first["ts"])
    button_of(await schedule(harness, bot, first["ts"], "digest daily 08:30: revenue"))
    second = harness.file_event("other.csv")
    await bot.send(second)
    await harness.wait_for(lambda: len(asked) == 2)  # a turn is running in its container
    assert len(harness.openai.live_containers()) == 2

    assert (await bot.send(ev.app_uninstalled())).status == 200
    await harness.wait_for(lambda: not harness.openai.live_containers())
    hold.set()
    assert await bot.shutdown() == 0  # a turn still running would post its answer before this returns
    assert not any("Summary of other.csv" in m.text for m in harness.slack.thread(CHANNEL, second["ts"]))
    left = await stored(bot)
    assert left["threads"] == [] and left["digests"] == [] and left["turns"] == [] and left["unfinished"] == []

    again = await harness.start(**QUIET)  # nothing to resume: the interrupted turn was purged, not left queued
    assert await again.shutdown() == 0
    assert len(asked) == 2


async def test_tokens_revoked_purges_only_when_the_bot_token_is_revoked(harness: Harness) -> None:
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await harness.wait_done(event["ts"])
    assert (await bot.send(ev.tokens_revoked(oauth=["U1"]))).status == 200  # a user token: not the bot's
    mention = ev.app_mention(CHANNEL, "U1", "<@UBOT> still there?")
    assert (await bot.send(mention)).status == 200  # the bot still works
    await harness.wait_for(lambda: any("Drop a CSV" in m.text for m in harness.slack.thread(CHANNEL, mention["ts"])))
    assert len((await stored(bot))["threads"]) == 1 and harness.openai.live_containers()

    assert (await bot.send(ev.tokens_revoked(bot=["UBOT"]))).status == 200
    await harness.wait_for(lambda: not harness.openai.live_containers())
    assert await bot.shutdown() == 0
    assert (await stored(bot))["threads"] == []


async def test_retention_prunes_old_turns_and_the_sweeper_reads_only_idle_threads(harness: Harness) -> None:
    bot = await harness.start()
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await harness.wait_done(event["ts"])
    assert await bot.shutdown() == 0

    store = make_store(bot.settings.database_url)
    await store.open()
    try:
        [thread] = await store.list_threads()
        assert await store.idle_threads(before=thread.last_active_at) == []  # active: not even read by a sweep
        assert [t.key for t in await store.idle_threads(before=time.time() + 1)] == [thread.key]
        removed = await store.prune(before=time.time() + 31 * 86_400)  # what a run 31 days later prunes
        assert removed.turns == 1 and removed.dedupe_keys == 1
        assert await store.list_turns(thread.key) == []
        assert await store.prune(before=time.time() + 31 * 86_400) == Removed()
    finally:
        await store.close()
