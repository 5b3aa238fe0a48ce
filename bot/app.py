"""Composition root: builds every client and object from :class:`Settings`, registers the handlers, returns the app.

This is the one place objects are constructed (no module-level clients anywhere). It builds the single
``AsyncWebClient`` that Bolt and the gateway share, pointed at ``SLACK_API_URL`` (slack_sdk reads no base-URL
variable of its own), the OpenAI client, the sandbox backend, the analyst, the store, the worker, the intake and
the digests, and an aiohttp application serving ``POST /slack/events``, ``GET /healthz`` and ``GET /metrics``.
:func:`build_digest_runner` builds the smaller graph ``datastory digest run-due`` needs (no Bolt, no HTTP).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import Access
from bot.admission import build_admission
from bot.answers import Answers
from bot.backends import Backends, ConfigurationError, build_backends
from bot.clock import Clock, SystemClock
from bot.config import Settings
from bot.deps import Deps
from bot.digests import Digests
from bot.home import Home
from bot.intake import Intake
from bot.jobs.digests import DigestJob, DigestReport, build_digest_job
from bot.jobs.overdue import build_overdue
from bot.jobs.periodic import run_periodically
from bot.jobs.retention import INTERVAL_SECONDS as RETENTION_INTERVAL_SECONDS
from bot.jobs.retention import build_retention
from bot.jobs.sweeper import SweepReport, build_sweeper
from bot.metrics import Metrics
from bot.metrics_guard import MetricsAccess, guarded
from bot.offboarding import Offboarding
from bot.poster import Poster
from bot.slack_gateway import SlackGateway
from bot.slack_pace import SlackPace, retry_handlers
from bot.status import Status, StatusConfig
from bot.store import make_store
from bot.store.base import Store
from bot.tasks import TaskTracker
from bot.turns import TurnWorker, worker_config
from handlers import register_handlers

logger = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"


@dataclass(slots=True)
class BotApp:
    """The running bot's object graph and its lifecycle."""

    settings: Settings
    bolt: AsyncApp
    web: web.Application
    store: Store
    worker: TurnWorker
    tracker: TaskTracker
    poster: Poster
    backends: Backends
    clock: Clock
    metrics: Metrics = field(default_factory=Metrics)
    slack_session: aiohttp.ClientSession | None = None
    digest_job: DigestJob | None = None
    ready: bool = field(default=False)
    jobs: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        """Open the store and resume the turns a previous process left unfinished; when start-up fails, every
        client is closed before the error propagates."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        await self.store.open()
        await self.backends.start()
        resumed = await self.worker.resume_unfinished()
        sweeper = build_sweeper(self.settings, store=self.store, sandbox=self.backends.sandbox)

        async def sweep(now: float) -> SweepReport:
            report = await sweeper.run_once(now)
            open_now = sum(1 for t in await self.store.list_threads()
                           if t.container_id and t.backend == self.backends.sandbox.kind)
            self.metrics.swept(idle=len(report.deleted_idle), orphans=len(report.deleted_orphans),
                               expired=len(report.deleted_expired), open_now=open_now)
            return report

        self.jobs.append(asyncio.create_task(run_periodically(
            sweep, interval=self.settings.sweep_interval_seconds, clock=self.clock, name="sweeper"),
            name="sweeper"))
        overdue = build_overdue(self.settings, store=self.store, poster=self.poster, metrics=self.metrics)
        self.jobs.append(asyncio.create_task(run_periodically(
            overdue.run_once, interval=overdue.interval, clock=self.clock, name="overdue"), name="overdue"))
        retention = build_retention(self.settings, store=self.store)
        self.jobs.append(asyncio.create_task(run_periodically(
            retention.run_once, interval=RETENTION_INTERVAL_SECONDS, clock=self.clock, name="retention"),
            name="retention"))
        if (job := self.digest_job) is not None:  # the first pass runs now: digests missed while down, once

            async def digests(now: float) -> DigestReport:
                report = await job.run_once(now)
                self.metrics.digests_ran(ran=len(report.ran), skipped_unchanged=len(report.skipped_unchanged),
                                         skipped_budget=len(report.skipped_budget), failed=len(report.failed),
                                         paused=len(report.paused))
                return report

            self.jobs.append(asyncio.create_task(run_periodically(
                digests, interval=self.settings.digest_interval_seconds, clock=self.clock, name="digests"),
                name="digests"))
        self.ready = True
        logger.info("bot ready sandbox=%s resumed_turns=%d", self.backends.sandbox.kind, resumed)

    async def stop(self) -> None:
        """Stop taking work, let running turns finish within the grace period, close every client."""
        self.ready = False
        for job in self.jobs:
            job.cancel()
        await asyncio.gather(*self.jobs, return_exceptions=True)
        cancelled = await self.tracker.close(grace=self.settings.shutdown_grace_seconds)
        if cancelled:
            logger.info("shutdown: %d turn(s) interrupted; they resume at the next start", cancelled)
        self.worker.close()
        await self.backends.close()
        await self.poster.close()
        if self.slack_session is not None:
            await self.slack_session.close()
        await self.store.close()


def build_slack_client(
    settings: Settings, session: aiohttp.ClientSession, pace: SlackPace | None = None
) -> AsyncWebClient:
    """The one Web API client: Bolt's, the gateway's, Socket Mode's; rate limits (telling ``pace``, the gateway's
    rate-aware path, to hold the method's other calls too) and 5xx are retried.

    It gets a shared session: without one, slack_sdk opens a new connection for every call, which costs
    tens of milliseconds per reaction or status update under load.
    """
    if settings.slack_bot_token is None:
        raise ConfigurationError("SLACK_BOT_TOKEN is not set")
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        session=session,
        retry_handlers=retry_handlers(pace or SlackPace()),
    )


def build_app(
    settings: Settings, *, socket_mode: bool = False, clock: Clock | None = None, backends: Backends | None = None,
) -> BotApp:
    """Build the whole bot; ``backends`` replaces the sandbox and analyst the settings ask for."""
    clock = clock or SystemClock()
    if settings.slack_bot_token is None:
        raise ConfigurationError("SLACK_BOT_TOKEN is not set")
    if not socket_mode and settings.slack_signing_secret is None:
        raise ConfigurationError("SLACK_SIGNING_SECRET is not set (needed by `datastory run --http`)")
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60, connect=15))
    pace = SlackPace()
    slack = build_slack_client(settings, session, pace)
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else "socket-mode"
    bolt = AsyncApp(
        client=slack,
        signing_secret=secret,
        request_verification_enabled=not socket_mode,
        process_before_response=False,
        raise_error_for_unhandled_request=False,
        logger=logging.getLogger("bot.bolt"),
    )
    metrics = Metrics(process=True)
    bolt.use(_count_events(metrics))
    backends = backends or build_backends(settings, metrics=metrics)
    store = make_store(settings.database_url, migrate=settings.migrate)
    poster = _gateway(settings, slack, metrics, pace=pace)
    tracker = TaskTracker()
    worker = TurnWorker(
        store=store, sandbox=backends.sandbox, analyst=backends.analyst, poster=poster, clock=clock, tracker=tracker,
        config=worker_config(settings, backends.sandbox.kind), metrics=metrics,
    )
    access = build_access(settings, poster=poster, clock=clock)
    digests = Digests(store=store, poster=poster, clock=clock, access=access)
    intake = Intake(
        store=store, worker=worker, poster=poster, clock=clock, tracker=tracker,
        max_file_bytes=settings.max_file_bytes, access=access, daily_budget_usd=settings.daily_budget_usd,
        admission=build_admission(settings, store=store, clock=clock),
        digests=digests, metrics=metrics,
    )
    offboarding = Offboarding(store=store, sandbox=backends.sandbox, tracker=tracker)
    answers = Answers(store=store, poster=poster, metrics=metrics)
    register_handlers(bolt, Deps(settings=settings, intake=intake, digests=digests, access=access,
                                 offboarding=offboarding, answers=answers,
                                 home=Home(store=store, poster=poster), status=Status(
                                     store=store, sandbox=backends.sandbox, poster=poster, clock=clock,
                                     config=StatusConfig(prefix=settings.container_prefix,
                                                         memory=settings.container_memory,
                                                         session_usd=settings.container_session_usd,
                                                         minimum_minutes=settings.container_minimum_minutes)),
                                 metrics=metrics))
    app = BotApp(settings=settings, bolt=bolt, web=web.Application(), store=store, worker=worker, tracker=tracker,
                 poster=poster, backends=backends, clock=clock, metrics=metrics, slack_session=session,
                 digest_job=build_digest_job(settings, store=store, poster=poster, worker=worker, access=access))
    metrics.watch(ready=lambda: float(app.ready), running=lambda: app.worker.running, tasks=lambda: len(app.tracker))
    _mount_routes(app)
    return app


def _count_events(metrics: Metrics) -> Callable[..., Awaitable[None]]:
    """Bolt middleware: every request that passed Bolt's checks (signature, self events) counts as received."""

    async def count(body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> None:
        event = body.get("event")
        kind = event.get("type") if isinstance(event, dict) else "command" if "command" in body else body.get("type")
        metrics.event_received(str(kind or ""))
        await next()

    return count


def build_access(settings: Settings, *, poster: Poster, clock: Clock) -> Access:
    """The access rules of the settings (allowlists, admins, other organisations)."""
    return Access(poster=poster, clock=clock, allowed_channels=frozenset(settings.allowed_channels),
                  allowed_users=frozenset(settings.allowed_users), admin_users=frozenset(settings.admin_users),
                  allow_external_users=settings.allow_external_users)


def _gateway(settings: Settings, slack: AsyncWebClient, metrics: Metrics | None = None, *,
             pace: SlackPace | None = None) -> SlackGateway:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    return SlackGateway(client=slack, token=token, api_url=settings.slack_api_url,
                        on_error=metrics.slack_error if metrics is not None else None, pace=pace)


@dataclass(slots=True)
class DigestRunner:
    """What ``datastory digest run-due`` runs: the digest job over the store, the backends and a Slack poster."""

    job: DigestJob
    store: Store
    backends: Backends
    poster: Poster
    tracker: TaskTracker
    session: aiohttp.ClientSession
    worker: TurnWorker

    async def open(self, *, warm: bool = True) -> None:
        """Open the store and (unless ``warm`` is False, as in a dry run) warm the sandbox."""
        await self.store.open()
        if warm:
            await self.backends.start()

    async def close(self) -> None:
        """Close every client."""
        await self.tracker.close(grace=0)
        self.worker.close()
        await self.backends.close()
        await self.poster.close()
        await self.session.close()
        await self.store.close()


def build_digest_runner(
    settings: Settings, *, clock: Clock | None = None, backends: Backends | None = None
) -> DigestRunner:
    """The object graph of a one-shot digest pass (cron, Kubernetes CronJob); needs ``SLACK_BOT_TOKEN``."""
    if settings.slack_bot_token is None:
        raise ConfigurationError("SLACK_BOT_TOKEN is not set: digests read the threads' files from Slack and post "
                                 "there")
    clock = clock or SystemClock()
    backends = backends or build_backends(settings)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60, connect=15))
    pace = SlackPace()
    poster = _gateway(settings, build_slack_client(settings, session, pace), pace=pace)
    store = make_store(settings.database_url, migrate=settings.migrate)
    tracker = TaskTracker()
    worker = TurnWorker(
        store=store, sandbox=backends.sandbox, analyst=backends.analyst, poster=poster, clock=clock, tracker=tracker,
        config=worker_config(settings, backends.sandbox.kind),
    )
    access = build_access(settings, poster=poster, clock=clock)
    return DigestRunner(job=build_digest_job(settings, store=store, poster=poster, worker=worker, access=access),
                        store=store, backends=backends, poster=poster, tracker=tracker, session=session,
                        worker=worker)


def _mount_routes(app: BotApp) -> None:
    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await app.bolt.async_dispatch(await to_bolt_request(request)))

    async def healthz(request: web.Request) -> web.Response:
        ok = app.ready and await app.store.ping()
        return web.json_response({"ok": ok, "ready": app.ready}, status=200 if ok else 503)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=app.metrics.render(), headers={"Content-Type": app.metrics.content_type})

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await app.start()
        yield
        await app.stop()

    app.web.router.add_post(EVENTS_PATH, events)
    app.web.router.add_get("/healthz", healthz)
    app.web.router.add_get("/metrics", guarded(metrics, MetricsAccess.from_settings(app.settings)))
    app.web.cleanup_ctx.append(lifecycle)


async def start_socket_mode(app: BotApp) -> Callable[[], Awaitable[None]]:
    """Connect the bot to Slack over Socket Mode (``SLACK_APP_TOKEN``); returns the function that disconnects."""
    if app.settings.slack_app_token is None:
        raise ConfigurationError("SLACK_APP_TOKEN is not set (needed by Socket Mode; or run with --http)")
    handler = AsyncSocketModeHandler(app.bolt, app_token=app.settings.slack_app_token.get_secret_value())
    await handler.connect_async()  # type: ignore[no-untyped-call]

    async def close() -> None:
        await handler.close_async()  # type: ignore[no-untyped-call]

    return close
