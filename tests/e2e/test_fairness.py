"""Fairness end to end: one person's flood neither holds every slot nor slows the next person's first feedback; a
question that waited too long is told; Slack's ``Retry-After`` holds the method's other calls too."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import pytest

from bot.jobs.overdue import overdue_text
from bot.store import make_store
from tests.e2e.conftest import CHANNEL, Harness, RunningBot

pytestmark = pytest.mark.e2e

FLOOD = 200
OTHERS = 10
PER_USER = 5


async def send_all(bot: RunningBot, events: list[dict[str, Any]], sent: dict[str, float]) -> None:
    async def one(event: dict[str, Any]) -> None:
        sent[event["ts"]] = time.perf_counter()
        reply = await bot.send(event)
        assert reply.status == 200

    await asyncio.gather(*(one(e) for e in events))


def first_reactions(harness: Harness) -> dict[str, float]:
    """Message ts -> when its first ``reactions.add`` reached FakeSlack."""
    first: dict[str, float] = {}
    for rec in harness.slack.recorder.calls("reactions.add"):
        first.setdefault(str(rec.params.get("timestamp")), rec.received_at)
    return first


async def test_a_flood_from_one_person_is_capped_and_the_next_person_is_served_at_once(harness: Harness) -> None:
    harness.openai.fail_next("POST", "/v1/responses", status=None, delay=1.5, times=1000)  # turns stay pending
    bot = await harness.start(max_concurrent_turns=4, max_turns_per_user=PER_USER)
    flood = [harness.file_event(f"mine-{i}.csv", user="UFLOOD") for i in range(FLOOD)]
    sent: dict[str, float] = {}
    started = time.perf_counter()
    await send_all(bot, flood, sent)
    others = [harness.file_event("sales.csv", user=f"UOTHER{i}") for i in range(OTHERS)]
    await send_all(bot, others, sent)

    def all_others_reacted() -> bool:
        return all(e["ts"] in first_reactions(harness) for e in others)

    await harness.wait_for(all_others_reacted, timeout=20)
    reacted = first_reactions(harness)
    feedback = sorted(reacted[e["ts"]] - sent[e["ts"]] for e in others)
    p99 = feedback[-1]  # of 10 events, the slowest
    print(f"\nfirst feedback of the {OTHERS} others after a {FLOOD}-event flood: "
          f"p50 {statistics.median(feedback) * 1000:.0f} ms, max {p99 * 1000:.0f} ms")
    assert p99 < 0.25

    for e in others:  # answered, and not behind the flood: only the admitted turns ever ran
        await harness.wait_done(e["ts"], timeout=30)
    elapsed = time.perf_counter() - started
    reacted = first_reactions(harness)
    admitted = [e for e in flood if e["ts"] in reacted]
    assert len(admitted) == PER_USER  # the cap, not one more, though all 200 arrived together
    notes = [m for m in harness.slack.ephemerals if m["user"] == "UFLOOD"]
    assert len(notes) == 1 and "the most one person can have at once" in notes[0]["text"]
    assert "won't repeat this for a minute" in notes[0]["text"]
    store = make_store(bot.settings.database_url)
    await store.open()
    try:
        assert len(await store.list_threads()) == PER_USER + OTHERS  # the refused 195 left nothing queued
    finally:
        await store.close()
    assert elapsed < 25, f"{elapsed:.1f} s: the others waited behind more than the capped flood"
    for e in flood:
        if e not in admitted:
            assert [m for m in harness.slack.thread(CHANNEL, e["ts"]) if m.is_bot] == []  # not queued


async def test_a_full_queue_tells_when_to_try_again(harness: Harness) -> None:
    harness.openai.fail_next("POST", "/v1/responses", status=None, delay=3.0, times=100)
    bot = await harness.start(max_concurrent_turns=1, max_queued_turns=2)
    first, second = harness.file_event("a.csv", user="UA"), harness.file_event("b.csv", user="UB")
    await bot.send(first)
    await bot.send(second)
    await harness.wait_for(lambda: all(harness.status_of(CHANNEL, e["ts"]) for e in (first, second)))  # stored
    third = harness.file_event("c.csv", user="UC")
    await bot.send(third)
    note = await harness.wait_for(lambda: next((m for m in harness.slack.ephemerals if m["user"] == "UC"), None))
    assert "I'm busy: 2 questions are ahead of yours" in note["text"]
    assert "try again in about 2 minutes" in note["text"]  # 2 queued / 1 at a time x 60 s (no history yet)
    assert str(third["ts"]) not in first_reactions(harness)


async def test_a_question_that_waits_too_long_is_told_and_never_runs(harness: Harness) -> None:
    harness.openai.fail_next("POST", "/v1/responses", status=None, delay=6.0, times=1)
    bot = await harness.start(max_concurrent_turns=1, max_queue_wait_minutes=0.05)  # 3 s
    running, waiting = harness.file_event("a.csv", user="UA"), harness.file_event("b.csv", user="UB")
    await bot.send(running)
    await harness.wait_for(lambda: harness.openai.recorder.calls("/v1/responses"))  # running, held 6 s
    await bot.send(waiting)
    told = overdue_text(0.1)

    def waiting_told() -> bool:
        status = harness.status_of(CHANNEL, waiting["ts"])
        return status is not None and status.text == told

    await harness.wait_for(waiting_told, timeout=10)
    await harness.wait_for(lambda: any(r.params.get("name") == "warning" and r.params.get("timestamp") == waiting["ts"]
                                       for r in harness.slack.recorder.calls("reactions.add")), timeout=5)
    await harness.wait_done(running["ts"], timeout=20)
    await asyncio.sleep(1.0)  # the slot is free now: the ended question must still not run
    assert len(harness.openai.containers) == 1
    assert [m.text for m in harness.slack.thread(CHANNEL, waiting["ts"]) if m.is_bot] == [told]


async def test_slacks_retry_after_holds_the_methods_other_calls(harness: Harness) -> None:
    harness.slack.fail_next("reactions.add", status=429, retry_after=1)
    bot = await harness.start()
    first = harness.file_event("r.csv", user="UR")
    await bot.send(first)
    await harness.wait_for(lambda: harness.slack.recorder.calls("reactions.add"))
    limited_at = harness.slack.recorder.calls("reactions.add")[0].received_at  # answered 429, Retry-After: 1
    events = [harness.file_event(f"r{i}.csv", user=f"UR{i}") for i in range(5)]
    await send_all(bot, events, {})
    await harness.wait_for(lambda: len(harness.slack.recorder.calls("reactions.add")) >= 7, timeout=15)  # + retry
    later = [r.received_at - limited_at for r in harness.slack.recorder.calls("reactions.add")[1:]]
    assert min(later) >= 0.9, f"a reaction went out {min(later):.2f} s after Retry-After: 1"
