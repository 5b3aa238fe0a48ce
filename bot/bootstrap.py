"""The composition root: ``bootstrap(settings, …) -> Services`` builds every long-lived part once.

Store, Slack client and poster, sandbox backends, metrics, task tracker, turn worker, sweeper, digest job,
overdue job and retention job are built here and nowhere else; ``datastory run`` (HTTP and Socket Mode, through
``bot.app``), ``try``, ``sweep``, ``digest``, ``doctor``, the demo and the benches take what they need from the
``Services``. Everything opened is registered on one exit stack as it is opened, so ``aclose()`` closes it in
reverse order, and a start-up that fails half-way closes what it had opened before the error propagates (no
"Unclosed client session" when ``datastory run`` refuses to start).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import aiohttp

from bot.access import Access
from bot.backends import Backends, ConfigurationError, build_backends
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.jobs.digests import DigestJob, build_digest_job
from bot.jobs.overdue import Overdue, build_overdue
from bot.jobs.retention import Retention, build_retention
from bot.jobs.sweeper import Sweeper, build_sweeper
from bot.metrics import Metrics
from bot.poster import Poster
from bot.slack_gateway import SlackGateway, build_slack_client
from bot.slack_pace import SlackPace
from bot.store import SqlStore, make_store
from bot.tasks import TaskTracker
from bot.turns import TurnWorker, worker_config

SLACK_TIMEOUT = aiohttp.ClientTimeout(total=60, connect=15)


@dataclass(slots=True)
class Services:
    """What ``bootstrap`` built. Parts a command did not ask for are ``None`` (``require`` says which is missing)."""

    settings: Settings
    clock: Clock
    metrics: Metrics
    store: SqlStore
    tracker: TaskTracker
    retention: Retention
    backends: Backends | None = None
    sweeper: Sweeper | None = None
    poster: Poster | None = None
    access: Access | None = None
    worker: TurnWorker | None = None
    digest_job: DigestJob | None = None
    overdue: Overdue | None = None
    slack_session: aiohttp.ClientSession | None = None
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack)

    def require_backends(self) -> Backends:
        return _required(self.backends, "the sandbox backends")

    def require_worker(self) -> TurnWorker:
        return _required(self.worker, "the turn worker (a sandbox and a poster)")

    def require_poster(self) -> Poster:
        return _required(self.poster, "a poster (SLACK_BOT_TOKEN, or one passed in)")

    def require_sweeper(self) -> Sweeper:
        return _required(self.sweeper, "the sweeper (a sandbox)")

    def require_digest_job(self) -> DigestJob:
        return _required(self.digest_job, "the digest job (a sandbox and a poster)")

    def require_overdue(self) -> Overdue:
        return _required(self.overdue, "the overdue job (a poster)")

    async def aclose(self) -> None:
        """Close everything ``bootstrap`` opened, in reverse order (idempotent)."""
        await self._stack.aclose()


T = TypeVar("T")


def _required(part: T | None, what: str) -> T:
    if part is None:
        raise RuntimeError(f"bootstrap was asked not to build {what}")
    return part


async def bootstrap(
    settings: Settings, *,
    clock: Clock | None = None,
    metrics: Metrics | None = None,
    database_url: str | None = None,
    migrate: bool | None = None,
    open_store: bool = True,
    sandbox: bool = True,
    backends: Backends | None = None,
    sandbox_kind: Literal["openai", "local"] | None = None,
    pool_size: int | None = None,
    isolation: Literal["strict", "relaxed"] | None = None,
    slack: bool = True,
    poster: Poster | None = None,
    max_concurrent_turns: int | None = None,
    idle_minutes: float | None = None,
) -> Services:
    """Build (and, unless ``open_store`` is False, open the store of) everything a command needs.

    ``sandbox=False`` builds no backends (nor worker, sweeper, digest job); ``backends`` replaces the ones the
    settings ask for (``sandbox_kind``, ``pool_size``, ``isolation`` adjust those). ``slack=False`` builds no Slack
    client; ``poster`` replaces the Slack gateway (the console of ``datastory try``). ``database_url`` replaces
    ``DATASTORY_DATABASE_URL`` and ``migrate`` ``DATASTORY_MIGRATE``. Raises ``ConfigurationError`` (and
    ``SchemaNotAtHead`` with ``DATASTORY_MIGRATE=false``) after closing whatever it had opened.
    """
    clock = clock or SystemClock()
    metrics = metrics or Metrics()
    stack = AsyncExitStack()
    try:
        store = make_store(database_url or settings.database_url,
                           migrate=settings.migrate if migrate is None else migrate)
        stack.push_async_callback(store.close)
        services = Services(settings=settings, clock=clock, metrics=metrics, store=store, tracker=TaskTracker(),
                            retention=build_retention(settings, store=store), _stack=stack)
        if sandbox:
            if backends is None:
                backends = build_backends(settings, sandbox=sandbox_kind, pool_size=pool_size, metrics=metrics,
                                          isolation=isolation)
            stack.push_async_callback(backends.close)
            services.backends = backends
            services.sweeper = build_sweeper(settings, store=store, sandbox=backends.sandbox,
                                             idle_minutes=idle_minutes)
        if poster is None and slack:
            poster = _slack_gateway(services)
        if poster is not None:
            stack.push_async_callback(poster.close)
            services.poster = poster
            services.overdue = build_overdue(settings, store=store, poster=poster, metrics=metrics)
            services.access = Access(
                poster=poster, clock=clock, allowed_channels=frozenset(settings.allowed_channels),
                allowed_users=frozenset(settings.allowed_users), admin_users=frozenset(settings.admin_users),
                allow_external_users=settings.allow_external_users)
        if services.backends is not None and poster is not None:
            backends = services.backends
            overrides = {} if max_concurrent_turns is None else {"max_concurrent_turns": max_concurrent_turns}
            worker = TurnWorker(
                store=store, sandbox=backends.sandbox, analyst=backends.analyst, poster=poster, clock=clock,
                tracker=services.tracker, config=worker_config(settings, backends.sandbox.kind, **overrides),
                metrics=metrics,
            )
            stack.callback(worker.close)  # after the turns: the tracker below is closed first
            services.worker = worker
            services.digest_job = build_digest_job(settings, store=store, poster=poster, worker=worker,
                                                   access=services.access)
        stack.push_async_callback(_close_tracker, services.tracker)
        if open_store:
            await store.open()
        return services
    except BaseException:
        await stack.aclose()
        raise


def _slack_gateway(services: Services) -> SlackGateway:
    """The Web API client on its own session (closed by ``aclose``) and the gateway that posts through it."""
    settings = services.settings
    if settings.slack_bot_token is None:
        raise ConfigurationError("SLACK_BOT_TOKEN is not set")
    session = aiohttp.ClientSession(timeout=SLACK_TIMEOUT)
    services._stack.push_async_callback(session.close)
    services.slack_session = session
    pace = SlackPace()  # one rate-aware path: the gateway's calls and the client's retries share it
    return SlackGateway(client=build_slack_client(settings, session, pace),
                        token=settings.slack_bot_token.get_secret_value(), api_url=settings.slack_api_url,
                        on_error=services.metrics.slack_error, pace=pace)


async def _close_tracker(tracker: TaskTracker) -> None:
    await tracker.close(grace=0)
