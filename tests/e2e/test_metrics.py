"""``GET /metrics`` of the running bot, scraped around real turns: the counters move with what happened."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
import pytest
from openai import AsyncOpenAI
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import CHANNEL, OPENAI_KEY, Harness, RunningBot

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(bot: RunningBot) -> Samples:
    """Every sample of ``/metrics``, parsed by prometheus_client's own parser."""
    async with aiohttp.ClientSession() as session, session.get(bot.url + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        text = await resp.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def scrape_until(bot: RunningBot, condition: Callable[[Samples], bool], timeout: float = 10) -> Samples:
    """Scrape until ``condition`` holds (background handling finishes after Slack's ack)."""
    async with asyncio.timeout(timeout):
        while not condition(samples := await scrape(bot)):
            await asyncio.sleep(0.05)
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def test_a_turn_moves_the_counters(harness: Harness) -> None:
    bot = await harness.start()
    before = await scrape(bot)
    assert value(before, "datastory_ready") == 1
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await harness.wait_done(event["ts"])  # the thread shows it done; the turn's last line comes right after
    after = await scrape_until(bot, lambda s: moved(before, s, "datastory_turns_total", outcome="done") == 1)

    assert moved(before, after, "datastory_events_received_total", type="message") == 1
    assert moved(before, after, "datastory_messages_total", outcome="turn") == 1
    assert moved(before, after, "datastory_turns_total", outcome="done") == 1
    for histogram in ("datastory_turn_duration_seconds", "datastory_first_feedback_seconds",
                      "datastory_queue_wait_seconds"):
        assert moved(before, after, histogram + "_count") == 1, histogram
    assert 0 < value(after, "datastory_first_feedback_seconds_sum") < 3
    assert value(after, "datastory_queue_depth") == 0
    assert moved(before, after, "datastory_containers_created_total", backend="openai") == 1
    assert moved(before, after, "datastory_tokens_total", direction="input") > 0
    assert moved(before, after, "datastory_cost_usd_total", source="turn") > 0
    assert value(after, "process_resident_memory_bytes") > 0


async def test_duplicates_ignored_events_and_provider_errors_are_counted(harness: Harness) -> None:
    bot = await harness.start()
    before = await scrape(bot)
    harness.openai.fail_next("POST", "/v1/containers", status=429)  # the SDK retries; the turn still succeeds
    harness.slack.fail_next("reactions.add", error="not_in_channel")
    event = harness.file_event("sales.csv")
    await bot.send(event)
    await bot.send(event, retry_num=1)  # Slack's redelivery of the same post
    await harness.wait_done(event["ts"])
    await bot.send({"type": "message", "subtype": "message_changed", "channel": CHANNEL, "ts": "1.000001",
                    "message": {"text": "edited"}})
    await bot.send(harness.slack.post_as_user(channel=CHANNEL, user="U1", text="lunch?"))
    after = await scrape_until(bot, lambda s: moved(before, s, "datastory_messages_total", outcome="ignored") == 1
                               and moved(before, s, "datastory_events_ignored_total", reason="no_listener") == 1
                               and moved(before, s, "datastory_turns_total", outcome="done") == 1)

    assert moved(before, after, "datastory_events_received_total", type="message") == 4
    assert moved(before, after, "datastory_events_deduplicated_total") == 1
    assert moved(before, after, "datastory_events_ignored_total", reason="no_listener") == 1
    assert moved(before, after, "datastory_events_ignored_total", reason="no_work") == 1
    assert moved(before, after, "datastory_openai_errors_total", kind="rate_limited") == 1
    assert moved(before, after, "datastory_slack_errors_total", kind="not_in_channel") == 1
    assert moved(before, after, "datastory_turns_total", outcome="done") == 1


async def test_a_refused_file_counts_as_a_refused_turn(harness: Harness) -> None:
    bot = await harness.start()
    before = await scrape(bot)
    event = harness.file_event("sales.csv", accessible=False)
    await bot.send(event)
    await harness.wait_done(event["ts"])
    after = await scrape_until(bot, lambda s: moved(before, s, "datastory_turns_total", outcome="refused") == 1)
    assert moved(before, after, "datastory_containers_created_total", backend="openai") == 0


async def test_sweeps_and_rebuilds_are_counted(harness: Harness) -> None:
    async with AsyncOpenAI(api_key=OPENAI_KEY, base_url=harness.openai.base_url) as client:
        await client.containers.create(name="datastory-T1-C9-1.000001")  # our prefix, unknown to the store
        bot = await harness.start(orphan_grace_minutes=0.01, sweep_interval_seconds=0.2)  # grace: 0.6 s
        swept = await scrape_until(bot, lambda s: value(s, "datastory_containers_swept_total", reason="orphan") == 1)
        assert value(swept, "datastory_containers_open") == 0
        event = harness.file_event("sales.csv")
        await bot.send(event)
        await harness.wait_done(event["ts"])
        await scrape_until(bot, lambda s: value(s, "datastory_containers_open") == 1)
        [container] = harness.openai.live_containers()
        await client.containers.delete(container.id)  # gone behind the bot's back: the next question rebuilds
        await bot.send(harness.reply_event("which region grew fastest?", event["ts"]))
        await harness.wait_done(event["ts"], turns=2)
        after = await scrape_until(bot, lambda s: value(s, "datastory_turns_total", outcome="done") == 2)
    assert value(after, "datastory_containers_rebuilt_total") == 1
    assert value(after, "datastory_containers_swept_total", reason="orphan") == 1  # the bot's own were spared
    assert value(after, "datastory_containers_created_total", backend="openai") == 2
