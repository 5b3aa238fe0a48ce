"""``/datastory status``: the channel's thread workspaces, their last activity, and what the channel cost today.

Two costs are shown, each for what it is. *Answers today* is what the turns of the channel cost since 00:00 UTC as
they were recorded (tokens at ``DATASTORY_PRICES`` plus one session per container a turn created). *Hosted
workspaces alive* prices the channel's hosted containers by the minute they have been alive today: the provider
bills a session per container "by the minute, with a 5-minute minimum per session" at the 20-minute session price
of its memory tier (``DATASTORY_CONTAINER_SESSION_USD``; the minimum is ``DATASTORY_CONTAINER_MINIMUM_MINUTES``;
source: OpenAI's pricing page as quoted in ``shared/reference/openai-containers-and-responses.md``). A local
kernel costs nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.clock import Clock
from bot.costs import day_start
from bot.poster import Poster, SlackError
from bot.sandbox.base import ContainerInfo, SandboxBackend, SandboxError
from bot.slack_text import channel_link
from bot.store.base import Store, ThreadRecord

logger = logging.getLogger(__name__)

SESSION_MINUTES = 20.0
SHOWN_THREADS = 15


def container_cost(minutes: float, *, session_usd: float, minimum_minutes: float) -> float:
    """USD for a hosted container alive ``minutes``: billed by the minute at ``session_usd`` per 20-minute
    session, with ``minimum_minutes`` at least."""
    return max(minutes, minimum_minutes) * session_usd / SESSION_MINUTES


def alive_minutes(info: ContainerInfo, *, now: float, since: float, idle_minutes: float = 20.0) -> float:
    """Minutes ``info`` was alive between ``since`` and ``now``: from its creation to now, or to its expiry (its
    last activity plus the idle time) when it has expired."""
    last = info.last_active_at if info.last_active_at is not None else info.created_at
    end = now if info.status != "expired" else min(now, last + idle_minutes * 60)
    return max(0.0, end - max(info.created_at, since)) / 60


@dataclass(frozen=True, slots=True)
class StatusConfig:
    """Prices and names the status needs."""

    prefix: str
    memory: str
    session_usd: dict[str, float]
    minimum_minutes: float


def _ago(seconds: float) -> str:
    minutes = int(seconds // 60)
    return "just now" if minutes < 1 else f"{minutes} min ago" if minutes < 120 else f"{minutes // 60} h ago"


class Status:
    """Builds the text of ``/datastory status``."""

    def __init__(self, *, store: Store, sandbox: SandboxBackend, poster: Poster, clock: Clock,
                 config: StatusConfig) -> None:
        self._store = store
        self._sandbox = sandbox
        self._poster = poster
        self._clock = clock
        self._config = config

    async def _containers(self) -> dict[str, ContainerInfo]:
        try:
            return {c.id: c for c in await self._sandbox.list_containers(prefix=self._config.prefix)}
        except SandboxError as exc:
            logger.warning("status could not list containers error=%s", type(exc).__name__)
            return {}

    async def channel_text(self, *, team: str, channel: str) -> str:
        """The status of ``channel``: its threads with a workspace, their last activity, today's costs."""
        now = self._clock.now()
        since = day_start(now)
        threads = sorted((t for t in await self._store.list_threads(team=team) if t.key.channel == channel),
                         key=lambda t: -t.last_active_at)
        live = [t for t in threads if t.container_id]
        infos = await self._containers() if live else {}
        lines = [f"*datastory in {channel_link(channel)}*"]
        if not live:
            lines.append("• No thread of this channel holds a workspace now (share a file to start one).")
        hosted_minutes = 0.0
        for thread in live[:SHOWN_THREADS]:
            lines.append(await self._thread_line(thread, infos, now=now))
            info = infos.get(thread.container_id or "")
            if info is not None and thread.backend == "openai":
                hosted_minutes += alive_minutes(info, now=now, since=since)
        if len(live) > SHOWN_THREADS:
            lines.append(f"• …and {len(live) - SHOWN_THREADS} more.")
        spent = await self._store.spent_since(since, channel=channel)
        lines.append(f"• Answers today (since 00:00 UTC): ${spent:,.4f}, as recorded with each answer.")
        if hosted_minutes:
            price = self._config.session_usd.get(self._config.memory, 0.0)
            cost = container_cost(hosted_minutes, session_usd=price, minimum_minutes=self._config.minimum_minutes)
            lines.append(f"• Hosted workspaces alive today: {hosted_minutes:,.0f} min ≈ ${cost:,.4f} (billed by the "
                         f"minute at ${price:g} per 20 minutes for {self._config.memory}, "
                         f"{self._config.minimum_minutes:g}-minute minimum).")
        return "\n".join(lines)

    async def _thread_line(self, thread: ThreadRecord, infos: dict[str, ContainerInfo], *, now: float) -> str:
        try:
            link = await self._poster.permalink(channel=thread.key.channel, ts=thread.key.thread_ts)
        except SlackError:
            link = ""
        files = [f.name for f in await self._store.list_files(thread.key) if f.sandbox_path]
        named = ", ".join(f"`{n}`" for n in files[:3]) + ("…" if len(files) > 3 else "") or "no files"
        where = "hosted workspace" if thread.backend == "openai" else "local kernel"
        info = infos.get(thread.container_id or "")
        state = "" if info is None else " (expired: rebuilt at the next question)" if info.status == "expired" else ""
        thread_ref = f"thread {link}" if link else f"thread {thread.key.thread_ts}"
        return f"• {thread_ref}: {named}; {where}{state}; last activity {_ago(now - thread.last_active_at)}"
