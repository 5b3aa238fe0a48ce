"""A workspace that uninstalls the app or revokes its bot token leaves nothing running and nothing behind: its turns
stop, its containers are deleted and every stored row of the team is purged. The running bot prunes rows older
than the retention period."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.demo import slack_events as ev
from bot.store import make_store
from bot.store.base import Removed
from bot.store.sql import async_url
from tests.e2e.conftest import CHANNEL, Harness, RunningBot
from tests.e2e.test_digests import QUIET, button_of, schedule
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


async def test_the_running_bot_prunes_what_is_older_than_the_retention_period(harness: Harness) -> None:
    bot = await harness.start()
    old, recent = harness.file_event("old.csv"), harness.file_event("recent.csv")
    for event in (old, recent):
        await bot.send(event)
        await harness.wait_done(event["ts"])
    assert await bot.shutdown() == 0
    month = 31 * 86_400  # the old thread's rows are aged past DATASTORY_RETENTION_DAYS=30, its container swept
    engine = create_async_engine(str(async_url(bot.settings.database_url)))
    async with engine.begin() as conn:
        for table, column in (("turns", "created_at"), ("turns", "finished_at"), ("turns", "started_at"),
                              ("threads", "last_active_at"), ("files", "created_at")):
            await conn.execute(text(f"UPDATE {table} SET {column} = {column} - {month} WHERE thread_ts = :ts"),
                               {"ts": old["ts"]})
        await conn.execute(text("UPDATE threads SET container_id = NULL WHERE thread_ts = :ts"), {"ts": old["ts"]})
        await conn.execute(text(f"UPDATE dedupe SET created_at = created_at - {month} WHERE key LIKE :k"),
                           {"k": f"%{old['ts']}"})
    await engine.dispose()

    again = await harness.start()  # the retention job's first pass runs at start

    async def pruned() -> bool:
        return [t.key.thread_ts for t in (await stored(again))["threads"]] == [recent["ts"]]

    for _ in range(200):
        if await pruned():
            break
        await asyncio.sleep(0.05)
    left = await stored(again)
    assert [t.key.thread_ts for t in left["threads"]] == [recent["ts"]]
    assert [t.message_ts for t in left["turns"]] == [recent["ts"]]
    assert await again.shutdown() == 0
    store = make_store(bot.settings.database_url)
    await store.open()
    try:
        assert await store.claim(f"msg:T1:{CHANNEL}:{old['ts']}", now=time.time())  # its dedupe key went too
        assert not await store.claim(f"msg:T1:{CHANNEL}:{recent['ts']}", now=time.time())
        assert await store.prune(before=time.time() - 30 * 86_400) == Removed()  # nothing else was that old
    finally:
        await store.close()
