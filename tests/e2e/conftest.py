"""End-to-end harness: ``datastory run --http`` in-process, FakeSlack and FakeOpenAI on random loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bot import cli
from bot.config import Settings
from bot.demo.fake_slack import FakeSlack, ThreadItem
from bot.demo.slack_events import SignedReply, SlackSender, envelope
from tests.emulators.fake_openai import FakeOpenAI

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-e2e-bot-token"
OPENAI_KEY = "sk-e2e-openai-key"
CHANNEL = "C1"
USER = "U1"
SALES_CSV = (b"region,month,revenue\nNorth,2025-01,100\nSouth,2025-01,80\nNorth,2025-02,130\n"
             b"South,2025-02,82\nEast,2025-01,40\nEast,2025-02,95\n")


def no_work_at(oai: FakeOpenAI) -> bool:
    """True when the bot asked FakeOpenAI for nothing but reads (the sweeper lists containers at start-up)."""
    return all(r.method == "GET" for r in oai.recorder.requests) and not oai.containers and not oai.responses


@dataclass(slots=True)
class RunningBot:
    """A bot started with ``datastory run --http`` and the sender that speaks Slack's Events API to it."""

    url: str
    settings: Settings
    sender: SlackSender
    stop: asyncio.Event
    task: asyncio.Task[int]

    async def send(self, event: dict[str, Any], **options: Any) -> SignedReply:
        """Post an inner event wrapped in its ``event_callback`` envelope, signed."""
        return await self.sender.send_event(envelope(event), **options)

    async def shutdown(self) -> int:
        """SIGTERM equivalent; returns the exit code."""
        self.stop.set()
        code = await asyncio.wait_for(self.task, 30)
        await self.sender.close()
        return code


@dataclass(slots=True)
class Harness:
    """Starts bots against the emulators; every bot is stopped at the end of the test."""

    slack: FakeSlack
    openai: FakeOpenAI
    tmp: Path
    bots: list[RunningBot] = field(default_factory=list)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "slack_bot_token": BOT_TOKEN, "slack_signing_secret": SIGNING_SECRET,
            "slack_api_url": self.slack.api_url, "openai_api_key": OPENAI_KEY,
            "openai_base_url": self.openai.base_url, "database_url": f"sqlite:///{self.tmp / 'bot.db'}",
            "shutdown_grace_seconds": 5.0,
            "stream_answers": False,  # the suites that stream say so (test_streaming.py)
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    async def start(self, *, socket_mode: bool = False, **overrides: Any) -> RunningBot:
        """``datastory run --http`` (or ``datastory run`` over Socket Mode with ``SLACK_APP_TOKEN``)."""
        if socket_mode:
            overrides.setdefault("slack_app_token", self.slack.app_token)
        settings = self.settings(**overrides)
        stop = asyncio.Event()
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        argv = ["run"] if socket_mode else ["run", "--http", "--host", "127.0.0.1", "--port", "0"]
        task = asyncio.create_task(cli.amain(argv, settings=settings, ready=ready.set_result, stop=stop))
        done, _ = await asyncio.wait({ready, task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            raise RuntimeError(f"datastory run exited early with {task.result()}")
        url = ready.result()
        bot = RunningBot(url=url, settings=settings, sender=SlackSender(url + "/slack/events", SIGNING_SECRET),
                         stop=stop, task=task)
        self.bots.append(bot)
        return bot

    def file_event(self, name: str = "sales.csv", content: bytes = SALES_CSV, *, text: str = "",
                   thread_ts: str | None = None, channel: str = CHANNEL, user: str = USER,
                   **file_options: Any) -> dict[str, Any]:
        """Host a file in FakeSlack and return the ``message``/``file_share`` event of a user sharing it."""
        f = self.slack.add_file(name=name, content=content, user=user, **file_options)
        return self.slack.post_as_user(channel=channel, user=user, text=text, files=[f], thread_ts=thread_ts)

    def reply_event(self, text: str, thread_ts: str, *, channel: str = CHANNEL, user: str = USER) -> dict[str, Any]:
        """The ``message`` event of a user replying in a thread."""
        return self.slack.post_as_user(channel=channel, user=user, text=text, thread_ts=thread_ts)

    def status_of(self, channel: str, thread_ts: str) -> ThreadItem | None:
        """The bot's status reply (its first message) in the thread."""
        bot_items = [m for m in self.slack.thread(channel, thread_ts) if m.is_bot]
        return bot_items[0] if bot_items else None

    async def wait_done(self, thread_ts: str, *, channel: str = CHANNEL, turns: int = 1,
                        timeout: float = 20) -> list[ThreadItem]:
        """Wait until ``turns`` turns in the thread ended (done or failed); returns the thread."""

        def finished() -> list[ThreadItem] | None:
            items = self.slack.thread(channel, thread_ts)
            ended = [m for m in items if m.is_bot and m.text.startswith((":white_check_mark:", ":warning:"))]
            return items if len(ended) >= turns else None

        result: list[ThreadItem] = await self.slack.recorder.wait_for(finished, timeout=timeout)
        return result

    async def wait_for(self, condition: Callable[[], Any], timeout: float = 20) -> Any:
        """Wait on a condition over either emulator's state."""

        async def either() -> Any:
            while not (value := condition()):
                waits = [asyncio.create_task(r.next_change(timeout=1.0))
                         for r in (self.slack.recorder, self.openai.recorder)]
                _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
            return value

        return await asyncio.wait_for(either(), timeout)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    async with FakeSlack(bot_token=BOT_TOKEN) as slack, FakeOpenAI(api_key=OPENAI_KEY) as openai:
        h = Harness(slack=slack, openai=openai, tmp=tmp_path)
        yield h
        for bot in h.bots:
            if not bot.task.done():
                bot.stop.set()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(bot.task, 30)
            await bot.sender.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def replica_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database several replica processes share: a SQLite file (its directory made) or a fresh PostgreSQL
    database."""
    if request.param == "sqlite":
        (tmp_path / "db").mkdir(exist_ok=True)
        return f"sqlite:///{tmp_path / 'db' / 'store.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
