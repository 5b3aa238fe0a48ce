"""The digest job against the emulators: a real store (SQLite in a temp dir), the real OpenAI backend and analyst
talking to FakeOpenAI, the real Slack gateway talking to FakeSlack, and a hand-moved clock that decides what is due.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openai import AsyncOpenAI
from slack_sdk.web.async_client import AsyncWebClient

from bot.analysts.responses import ResponsesAnalyst
from bot.costs import DAY, day_start
from bot.demo.fake_slack import FakeSlack
from bot.jobs.digests import DigestJob, batch_name
from bot.jobs.periodic import run_periodically
from bot.sandbox.openai import OpenAISandbox
from bot.schedules import parse_schedule, utc
from bot.slack_gateway import SlackGateway
from bot.store import make_store
from bot.store.base import DigestRecord, FileRecord, NewTurn, Store, ThreadKey
from bot.tasks import TaskTracker
from bot.turns import TurnWorker, WorkerConfig
from tests.e2e.conftest import SALES_CSV
from tests.emulators.fake_openai import FakeOpenAI, ResponseContext, ScriptedTurn

TOKEN = "xoxb-unit"
PREFIX = "datastory-"
START = 1_800_000_000.0  # Fri 15 Jan 2027 08:00 UTC
CHANNEL = "C1"


class StepClock:
    """The injectable clock: ``now()`` is the hand-set time; ``sleep`` moves it (and yields to the loop)."""

    def __init__(self, start: float) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


@dataclass(slots=True)
class World:
    slack: FakeSlack
    oai: FakeOpenAI
    store: Store
    clock: StepClock
    worker: TurnWorker
    job: DigestJob
    gateway: SlackGateway

    async def thread_with(self, *files: tuple[str, bytes]) -> ThreadKey:
        """A thread whose root message shared ``files`` (as the intake stores it)."""
        root = self.slack.add_message(channel=CHANNEL, user="U1", text="")
        key = ThreadKey("T1", CHANNEL, root.ts)
        await self.share(key, root.ts, *files)
        return key

    async def share(self, key: ThreadKey, message_ts: str, *files: tuple[str, bytes]) -> list[str]:
        records = []
        for name, content in files:
            hosted = self.slack.add_file(name=name, content=content, user="U1")
            records.append(FileRecord(key=key, slack_file_id=hosted["id"], name=name, size=len(content),
                                      mimetype="text/csv", filetype="csv",
                                      download_url=hosted["url_private_download"], message_ts=message_ts, user="U1",
                                      created_at=self.clock.now()))
        turn_id = uuid.uuid4().hex
        await self.store.submit_turn(NewTurn(id=turn_id, key=key, message_ts=message_ts, user="U1", question="",
                                             files=tuple(records), created_at=self.clock.now()),
                                     dedupe_keys=(f"k:{turn_id}",))
        await self.store.finish_turn(turn_id, status="done", now=self.clock.now())
        return [r.slack_file_id for r in records]

    async def digest(self, key: ThreadKey, schedule: str = "daily 09:00", *, tz: str = "UTC",
                     question: str = "summarise revenue by region", skip_unchanged: bool = True) -> DigestRecord:
        parsed = parse_schedule(schedule, tz=tz)
        record = DigestRecord(id="d" + uuid.uuid4().hex[:6], key=key, owner="U1", question=question,
                              cron=parsed.cron, tz=parsed.tz, label=parsed.label, created_at=self.clock.now(),
                              next_run_at=parsed.next_run(self.clock.now()), skip_unchanged=skip_unchanged)
        await self.store.add_digest(record)
        return record

    async def get(self, digest_id: str) -> DigestRecord:
        record = await self.store.get_digest(digest_id)
        assert record is not None
        return record

    def top_level(self) -> list[Any]:
        """Top-level posts of the bot (text; the charts come as a separate file share)."""
        return [m for m in self.slack.bot_messages(CHANNEL) if m.thread_ts is None and not m.files]


def config(**overrides: Any) -> WorkerConfig:
    values: dict[str, Any] = {"container_prefix": PREFIX, "container_idle_minutes": 20, "max_concurrent_turns": 4,
                              "turn_timeout": 60.0, "prices": {"gpt-4.1": (2.0, 8.0)}, "session_usd": 0.03,
                              "capacity_retry_seconds": 0.01}
    values.update(overrides)
    return WorkerConfig(**values)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = StepClock(START)
    async with FakeSlack(bot_token=TOKEN) as slack, FakeOpenAI(api_key="sk-test") as oai:
        session = aiohttp.ClientSession()
        gateway = SlackGateway(client=AsyncWebClient(token=TOKEN, base_url=slack.api_url, session=session),
                               token=TOKEN, api_url=slack.api_url)
        client = AsyncOpenAI(api_key="sk-test", base_url=oai.base_url, max_retries=0)
        store = make_store(f"sqlite:///{tmp_path / 'digests.db'}")
        await store.open()
        sandbox = OpenAISandbox(client=client)
        tracker = TaskTracker()
        worker = TurnWorker(store=store, sandbox=sandbox, analyst=ResponsesAnalyst(client=client, model="gpt-4.1"),
                            poster=gateway, clock=clock, tracker=tracker, config=config())
        job = DigestJob(store=store, poster=gateway, worker=worker, prefix=PREFIX, batch_ttl_minutes=5)
        yield World(slack=slack, oai=oai, store=store, clock=clock, worker=worker, job=job, gateway=gateway)
        await tracker.close(grace=1)
        await gateway.close()
        await session.close()
        await sandbox.close()
        await client.close()
        await store.close()


async def test_a_due_digest_runs_in_a_short_lived_batch_container_and_posts_to_the_channel(world: World) -> None:
    key = await world.thread_with(("sales.csv", SALES_CSV))
    d = await world.digest(key)
    world.clock.t = d.next_run_at + 30
    report = await world.job.run_once(world.clock.now())
    assert report.ran == [d.id] and report.failed == [] and report.skipped_unchanged == []

    [container] = world.oai.containers.values()
    assert container.expires_after == {"anchor": "last_active_at", "minutes": 5}
    assert container.name == batch_name(PREFIX, d.id, world.clock.now())
    assert container.name == f"datastory-digest-{d.id}-{utc(world.clock.now()):%Y%m%d%H%M}"
    assert [f.original_name for f in container.user_files()] == ["sales.csv"]
    assert container.deleted
    [response] = world.oai.responses.values()
    assert "summarise revenue by region" in str(response.request["input"])

    [post] = world.top_level()
    assert post.text.startswith(f":newspaper: *Digest* `{d.id}` · every day at 09:00\n&gt;summarise revenue by region")
    assert "Summary of sales.csv" in post.text
    assert f"Source thread ({world.slack.permalink(CHANNEL, key.thread_ts)})" in post.text
    [chart] = world.slack.uploads
    assert chart.channel == CHANNEL and chart.thread_ts is None and chart.content.startswith(b"\x89PNG")
    assert world.slack.thread(CHANNEL, key.thread_ts)[1:] == []  # nothing in the source thread

    after = await world.get(d.id)
    assert after.last_outcome == "ran" and after.failures == 0 and after.last_hash
    assert after.next_run_at == parse_schedule("daily 09:00", tz="UTC").next_run(world.clock.now())
    assert after.last_data_at == world.clock.now()


async def test_runs_count_against_the_daily_budget_and_a_run_over_it_is_skipped(world: World) -> None:
    job = DigestJob(store=world.store, poster=world.gateway, worker=world.worker, prefix=PREFIX, batch_ttl_minutes=5,
                    daily_budget_usd=0.03)  # one container session
    key = await world.thread_with(("sales.csv", SALES_CSV))
    d = await world.digest(key, "0 */2 * * *", skip_unchanged=False)  # every two hours
    first = await job.run_once(d.next_run_at)
    assert first.ran == [d.id]
    midnight = day_start(d.next_run_at)
    spent = await world.store.spent_since(midnight, user="U1")
    assert spent >= 0.03 and spent == await world.store.spent_since(midnight, channel=CHANNEL)

    second = await job.run_once((await world.get(d.id)).next_run_at)
    assert second.skipped_budget == [d.id] and second.ran == [] and second.failed == []
    assert len(world.oai.containers) == 1 and len(world.oai.responses) == 1  # no container, no model call
    assert world.top_level()[-1].text.startswith(
        f":money_with_wings: Digest `{d.id}` ({d.label}) did not run: The daily analysis budget of <@U1> is used "
        f"up (${spent:.2f} of $0.03). It resets at 00:00 UTC")
    assert (await world.get(d.id)).last_outcome == "skipped: over budget"

    tomorrow = await job.run_once(midnight + DAY + 1)  # a new day, a new budget
    assert tomorrow.ran == [d.id] and len(world.oai.containers) == 2


async def test_nothing_runs_before_the_due_instant_and_a_dry_run_claims_nothing(world: World) -> None:
    key = await world.thread_with(("sales.csv", SALES_CSV))
    d = await world.digest(key)
    early = await world.job.run_once(d.next_run_at - 1)
    assert early.ran == [] and early.failed == [] and early.taken == []
    dry = await world.job.run_once(d.next_run_at, dry_run=True)
    assert dry.would_run == [d.id] and dry.ran == []
    assert (await world.get(d.id)).next_run_at == d.next_run_at
    assert world.oai.containers == {} and world.slack.bot_messages() == [] and world.slack.downloads == []


async def test_unchanged_data_posts_one_line_and_creates_no_container(world: World) -> None:
    key = await world.thread_with(("sales.csv", SALES_CSV))
    d = await world.digest(key, "every monday 09:00", tz="America/New_York")
    first_run = d.next_run_at
    await world.job.run_once(first_run)
    assert len(world.oai.containers) == 1
    second = await world.get(d.id)
    report = await world.job.run_once(second.next_run_at)
    assert report.skipped_unchanged == [d.id] and report.ran == []
    assert len(world.oai.containers) == 1 and len(world.oai.responses) == 1  # no container, no model call
    line = world.top_level()[-1]
    assert line.text == (f":zzz: No new data since Mon 18 Jan 09:00 EST for digest `{d.id}` "
                         "(every Monday at 09:00).")
    assert (await world.get(d.id)).last_outcome == "skipped: no new data"

    # a new version of the file shared in the thread: the next run analyses it
    reply = world.slack.add_message(channel=CHANNEL, user="U1", thread_ts=key.thread_ts)
    await world.share(key, reply.ts, ("sales.csv", SALES_CSV + b"West,2025-02,10\n"))
    third = await world.get(d.id)
    report = await world.job.run_once(third.next_run_at)
    assert report.ran == [d.id]
    newest = list(world.oai.containers.values())[-1]
    assert len(world.oai.containers) == 2 and newest.deleted
    assert newest.user_files()[0].data.endswith(b"West,2025-02,10\n")


async def test_skip_when_unchanged_can_be_off(world: World) -> None:
    key = await world.thread_with(("sales.csv", SALES_CSV))
    d = await world.digest(key, skip_unchanged=False)
    await world.job.run_once(d.next_run_at)
    again = await world.get(d.id)
    report = await world.job.run_once(again.next_run_at)
    assert report.ran == [d.id] and len(world.oai.containers) == 2


async def test_missed_runs_collapse_into_one(world: World) -> None:
    key = await world.thread_with(("sales.csv", SALES_CSV))
    d = await world.digest(key, "daily 09:00")
    world.clock.t = d.next_run_at + 5 * 86_400 + 60  # five days and six slots later
    report = await world.job.run_once(world.clock.now())
    assert report.ran == [d.id]
    assert len(world.oai.containers) == 1 and len(world.top_level()) == 1
    after = await world.get(d.id)
    assert world.clock.now() < after.next_run_at <= world.clock.now() + 86_400
    assert (await world.job.run_once(world.clock.now())).ran == []


async def test_of_two_replicas_only_one_runs_a_due_digest(world: World, tmp_path: Path) -> None:
    key = await world.thread_with(("sales.csv", SALES_CSV))
    d = await world.digest(key)
    other_store = make_store(f"sqlite:///{tmp_path / 'digests.db'}")
    await other_store.open()
    try:
        other = DigestJob(store=other_store, poster=world.gateway, worker=world.worker, prefix=PREFIX,
                          batch_ttl_minutes=5)
        one, two = await asyncio.gather(world.job.run_once(d.next_run_at), other.run_once(d.next_run_at))
    finally:
        await other_store.close()
    # the slower replica either lost the claim ("taken") or no longer saw the digest as due
    assert sorted(one.ran + two.ran) == [d.id] and set(one.taken + two.taken) <= {d.id}
    assert len(world.oai.containers) == 1 and len(world.top_level()) == 1


async def test_three_failures_in_a_row_pause_the_digest_and_the_owner_is_told(world: World) -> None:
    def broken(ctx: ResponseContext) -> ScriptedTurn:
        return ScriptedTurn(status="failed", error_message="The model failed to generate a response.")

    world.oai.script = broken
    key = await world.thread_with(("sales.csv", SALES_CSV))
    d = await world.digest(key)
    for attempt in (1, 2, 3):
        current = await world.get(d.id)
        report = await world.job.run_once(current.next_run_at)
        assert report.failed == [d.id]
        assert report.paused == ([d.id] if attempt == 3 else [])
        assert (await world.get(d.id)).failures == attempt
    assert len(world.oai.containers) == 3 and all(c.deleted for c in world.oai.containers.values())
    told = [m.text for m in world.slack.thread(CHANNEL, key.thread_ts) if m.is_bot]
    assert len(told) == 3
    assert all(t.startswith(f":warning: <@U1> Digest `{d.id}` (every day at 09:00) failed: The model could not "
                            "finish the analysis") for t in told)
    assert "(ref `" in told[0] and "paused" not in told[1]
    assert told[2].endswith(f"Digest `{d.id}` is paused after 3 failures in a row; fix the cause and schedule it "
                            "again.")
    paused = await world.get(d.id)
    assert paused.status == "paused"
    assert (await world.job.run_once(paused.next_run_at + 86_400)).failed == []
    assert world.top_level() == []


async def test_a_success_resets_the_failure_count(world: World) -> None:
    calls: list[int] = []

    def once_broken(ctx: ResponseContext) -> ScriptedTurn:
        calls.append(1)
        return ScriptedTurn(status="failed") if len(calls) == 1 else ScriptedTurn(text="All good.")

    world.oai.script = once_broken
    key = await world.thread_with(("sales.csv", SALES_CSV))
    d = await world.digest(key)
    await world.job.run_once(d.next_run_at)
    assert (await world.get(d.id)).failures == 1
    await world.job.run_once((await world.get(d.id)).next_run_at)
    after = await world.get(d.id)
    assert after.failures == 0 and after.last_outcome == "ran" and after.status == "active"


async def test_a_file_deleted_from_slack_fails_with_the_reason_in_the_thread(world: World) -> None:
    key = await world.thread_with(("sales.csv", SALES_CSV))
    [file_id] = [f.slack_file_id for f in await world.store.list_files(key)]
    world.slack.delete_file(file_id)
    d = await world.digest(key)
    report = await world.job.run_once(d.next_run_at)
    assert report.failed == [d.id] and world.oai.containers == {}
    [told] = [m.text for m in world.slack.thread(CHANNEL, key.thread_ts) if m.is_bot]
    assert "Slack refused a request (`file_not_found`)" in told


async def test_the_periodic_loop_runs_missed_digests_at_its_first_tick(world: World) -> None:
    key = await world.thread_with(("sales.csv", SALES_CSV))
    d = await world.digest(key)
    world.clock.t = d.next_run_at + 3 * 86_400  # the bot was down for three days
    reports = []

    async def tick(now: float) -> None:
        reports.append(await world.job.run_once(now))
        if len(reports) == 3:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await run_periodically(tick, interval=30, clock=world.clock, name="digests")
    assert [r.ran for r in reports] == [[d.id], [], []]
    assert len(world.oai.containers) == 1
