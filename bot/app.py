"""The Slack app on top of the composition root: Bolt, the handlers, and the aiohttp application.

:func:`open_app` checks the Slack settings, calls :func:`bot.bootstrap.bootstrap` (which builds and opens the store,
the Slack client and poster, the backends, the worker and the jobs) and adds what only a running bot needs: the
Bolt app with the handlers registered, the intake and its inbox (a message event is stored before Slack is
acknowledged: :mod:`bot.inbox`), and an aiohttp application serving ``POST /slack/events``,
``GET /healthz`` and ``GET /metrics``. ``BotApp.start``/``stop`` run the periodic jobs and close the services.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.admission import build_admission
from bot.answers import Answers
from bot.api.app import attach_api, build_api_core, orphan_job
from bot.api.routes import Routes
from bot.api.service import ApiStore
from bot.backends import Backends, ConfigurationError
from bot.bootstrap import Services, bootstrap
from bot.clock import Clock
from bot.config import Settings
from bot.deps import Deps
from bot.digests import Digests
from bot.home import Home
from bot.inbox import Inbox
from bot.intake import Intake
from bot.jobs.digests import DigestReport
from bot.jobs.leader import Leader, Periodic
from bot.jobs.retention import INTERVAL_SECONDS as RETENTION_INTERVAL_SECONDS
from bot.jobs.sweeper import SweepReport
from bot.metrics import Metrics
from bot.metrics_guard import MetricsAccess, guarded
from bot.offboarding import Offboarding
from bot.slack_gateway import SlackGateway
from bot.status import Status, StatusConfig
from bot.store.base import Store
from bot.turns import TurnWorker
from handlers import register_handlers
from handlers.events import INBOX_EVENT, goes_to_intake, to_incoming

logger = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
INTAKE_GRACE_SECONDS = 10.0
"""At a stop, how long messages Slack was already told were received get to be stored (then the turn grace)."""


@dataclass(slots=True)
class BotApp:
    """The running bot: the services ``bootstrap`` built, Bolt and the web application, and the periodic jobs."""

    services: Services
    bolt: AsyncApp
    web: web.Application
    inbox: Inbox
    ready: bool = field(default=False)
    jobs: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def worker(self) -> TurnWorker:
        return self.services.require_worker()

    @property
    def metrics(self) -> Metrics:
        return self.services.metrics

    async def start(self) -> None:
        """Warm the sandbox, resume the turns a previous process left unfinished, start the periodic jobs; when
        start-up fails, every client is closed before the error propagates."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        services, settings, clock = self.services, self.services.settings, self.services.clock
        backends = services.require_backends()
        await self.store.open()  # bootstrap opened it: this only checks again (idempotent)
        await backends.start()
        resumed = await self.worker.resume_unfinished()
        self.jobs.append(asyncio.create_task(self.worker.poll_forever(), name="queue"))
        self.jobs.append(asyncio.create_task(self.inbox.poll_forever(), name="inbox"))  # replays what a dead one acked
        sweeper = services.require_sweeper()

        async def sweep(now: float) -> SweepReport:
            report = await sweeper.run_once(now)
            await self.worker.agent_sessions.suspend(report.swept_threads)
            open_now = sum(1 for t in await self.store.list_threads()
                           if t.container_id and t.backend == backends.sandbox.kind)
            self.metrics.swept(idle=len(report.deleted_idle), orphans=len(report.deleted_orphans),
                               expired=len(report.deleted_expired), open_now=open_now)
            return report

        overdue = services.require_overdue()
        jobs = [Periodic("sweeper", sweep, settings.sweep_interval_seconds),  # one sweep per interval, whoever leads
                Periodic("overdue", overdue.run_once, overdue.interval, slotted=False),
                Periodic("retention", services.retention.run_once, RETENTION_INTERVAL_SECONDS, slotted=False)]
        job = services.require_digest_job()  # the leader's first pass runs now: digests missed while down, once

        async def digests(now: float) -> DigestReport:
            report = await job.run_once(now)
            self.metrics.digests_ran(ran=len(report.ran), skipped_unchanged=len(report.skipped_unchanged),
                                     skipped_budget=len(report.skipped_budget), failed=len(report.failed),
                                     paused=len(report.paused))
            return report

        jobs.append(Periodic("digests", digests, settings.digest_interval_seconds, slotted=False))
        leader = Leader(store=self.store, clock=clock, owner=self.worker.owner, lease_seconds=settings.lease_seconds,
                        jobs=jobs, metrics=self.metrics)
        self.jobs.append(asyncio.create_task(leader.run_forever(), name="leader"))
        self.ready = True
        logger.info("bot ready sandbox=%s resumed_turns=%d", backends.sandbox.kind, resumed)

    async def quiesce(self) -> None:
        """Stop taking work: not ready (``/healthz``), no more claims from the queue or the inbox, no periodic jobs
        (another replica takes the lead). Running turns go on; idempotent."""
        self.ready = False
        if self.services.worker is not None:
            self.services.worker.queue.close()
        for job in self.jobs:
            job.cancel()
        await asyncio.gather(*self.jobs, return_exceptions=True)
        self.jobs.clear()

    async def stop(self) -> None:
        """Stop taking work, let running turns finish within the grace period, close every client."""
        await self.quiesce()
        cancelled = await self.services.tracker.close(grace=self.settings.shutdown_grace_seconds, settle="intake-",
                                                      settle_grace=INTAKE_GRACE_SECONDS)
        if cancelled:
            logger.info("shutdown: %d turn(s) interrupted; they resume at the next start", cancelled)
        await self.services.aclose()


def check_slack_settings(settings: Settings, *, socket_mode: bool) -> None:
    """``ConfigurationError`` for a Slack setting the mode needs, before anything is opened."""
    if settings.slack_bot_token is None:
        raise ConfigurationError("SLACK_BOT_TOKEN is not set")
    if not socket_mode and settings.slack_signing_secret is None:
        raise ConfigurationError("SLACK_SIGNING_SECRET is not set (needed by `datastory run --http`)")


async def open_app(
    settings: Settings, *, socket_mode: bool = False, clock: Clock | None = None, backends: Backends | None = None,
) -> BotApp:
    """Bootstrap the services (store opened) and build the bot on them; ``backends`` replaces the sandbox and
    analyst the settings ask for. Whatever fails closes what was opened."""
    check_slack_settings(settings, socket_mode=socket_mode)
    services = await bootstrap(settings, clock=clock, backends=backends, metrics=Metrics(process=True),
                               api=build_api_core(settings) if settings.api_enabled else None)
    try:
        return build_app(services, socket_mode=socket_mode)
    except BaseException:
        await services.aclose()
        raise


def build_app(services: Services, *, socket_mode: bool = False) -> BotApp:
    """Bolt, the intake and the handlers, and the web application, on ``services``."""
    settings = services.settings
    check_slack_settings(settings, socket_mode=socket_mode)
    poster, worker, access, metrics = (services.require_poster(), services.require_worker(), services.access,
                                       services.metrics)
    assert isinstance(poster, SlackGateway) and access is not None
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else "socket-mode"
    bolt = AsyncApp(
        client=poster.client,
        signing_secret=secret,
        request_verification_enabled=not socket_mode,
        process_before_response=False,
        raise_error_for_unhandled_request=False,
        logger=logging.getLogger("bot.bolt"),
    )
    bolt.use(_count_events(metrics))
    store, clock, tracker = services.store, services.clock, services.tracker
    digests = Digests(store=store, poster=poster, clock=clock, access=access)
    intake = Intake(
        store=store, worker=worker, poster=poster, clock=clock, tracker=tracker,
        max_file_bytes=settings.max_file_bytes, access=access, daily_budget_usd=settings.daily_budget_usd,
        admission=build_admission(settings, store=store, clock=clock),
        digests=digests, metrics=metrics,
    )
    sandbox = services.require_backends().sandbox
    offboarding = Offboarding(store=store, sandbox=sandbox, tracker=tracker)
    status = Status(store=store, sandbox=sandbox, poster=poster, clock=clock, config=StatusConfig(
        prefix=settings.container_prefix, memory=settings.container_memory,
        session_usd=settings.container_session_usd, minimum_minutes=settings.container_minimum_minutes))
    register_handlers(bolt, Deps(settings=settings, intake=intake, digests=digests, access=access,
                                 offboarding=offboarding, answers=Answers(
                                     store=store, poster=poster, metrics=metrics, sandbox=sandbox, access=access,
                                     clock=clock),
                                 home=Home(store=store, poster=poster), status=status, metrics=metrics))
    inbox = Inbox(store=store, intake=intake, clock=clock, owner=worker.owner, grace=settings.inbox_grace_seconds,
                  metrics=metrics)
    bolt.use(_inbox_first(inbox, metrics))  # after Bolt's own checks (the signature first), before the listeners
    app = BotApp(services=services, bolt=bolt, web=web.Application(), inbox=inbox)
    metrics.watch(ready=lambda: float(app.ready), running=lambda: worker.running, tasks=lambda: len(tracker))
    _mount_routes(app)
    if (api := services.api) is not None:  # API sessions run on the same worker (bootstrap routed its poster)
        Routes(attach_api(api, settings, store=cast(ApiStore, store), worker=worker, tracker=tracker,
                          backends=services.require_backends(), clock=clock)).mount(app.web)
        app.web.cleanup_ctx.append(orphan_job(api, cast(ApiStore, store), clock))
    return app


def _count_events(metrics: Metrics) -> Callable[..., Awaitable[None]]:
    """Bolt middleware: every request that passed Bolt's checks (signature, self events) counts as received."""

    async def count(body: dict[str, Any], next: Callable[[], Awaitable[None]]) -> None:
        event = body.get("event")
        kind = event.get("type") if isinstance(event, dict) else "command" if "command" in body else body.get("type")
        metrics.event_received(str(kind or ""))
        await next()

    return count


def _inbox_first(inbox: Inbox, metrics: Metrics) -> Callable[..., Awaitable[BoltResponse | None]]:
    """Bolt middleware: a message event the intake takes is stored in the inbox before Bolt acknowledges it (the
    200 over HTTP, the ack over Socket Mode, both sent once dispatching returns). An event stored already (Slack's
    retry, a copy another replica took) is acknowledged and not handled again; one that could not be stored is
    not acknowledged, so Slack sends it again."""

    async def store_first(body: dict[str, Any], context: AsyncBoltContext, request: AsyncBoltRequest,
                          next: Callable[[], Awaitable[None]]) -> BoltResponse | None:
        event, event_id = body.get("event"), str(body.get("event_id") or "")
        if not event_id or not isinstance(event, dict) or not goes_to_intake(event, context):
            await next()
            return None
        try:
            fresh = await inbox.admit(to_incoming(event, body, context, request), event_id=event_id)
        except Exception as exc:
            logger.warning("inbox write failed; Slack is not acknowledged and sends the event again event_id=%s "
                           "error=%s", event_id, type(exc).__name__)
            return BoltResponse(status=503, body="")
        if not fresh:
            metrics.event_ignored("delivered_before")
            return BoltResponse(status=200, body="")
        context[INBOX_EVENT] = event_id
        await next()
        return None

    return store_first


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
