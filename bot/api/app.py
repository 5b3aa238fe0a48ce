"""Composition of the HTTP API: :func:`build_api_core` makes the pieces that must exist before the turn worker
(its poster and result hook), :func:`attach_api` the service once the worker exists, and :func:`build_api_app`
the whole graph of ``datastory api`` (the API alone: no Slack settings, the sweeper and retention in-process).

In ``datastory run --http`` with ``DATASTORY_API_ENABLED=true``, ``bot.app.build_app`` uses the first two: one
worker (through :class:`~bot.api.poster.RoutingPoster`) serves Slack threads and API sessions, with one set of
slots, one thread queue, one sweeper, and the API's routes are mounted beside ``/slack/events``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from aiohttp import web

from bot.api.poster import ApiPoster
from bot.api.routes import Routes
from bot.api.runs import API_TEAM, Runs, TurnResults
from bot.api.service import ApiLimits, ApiStore, SessionService
from bot.api.storage import SessionFiles
from bot.backends import Backends
from bot.bootstrap import Services, bootstrap
from bot.clock import Clock
from bot.config import Settings
from bot.jobs.leader import Leader, Periodic
from bot.jobs.periodic import run_periodically
from bot.jobs.retention import INTERVAL_SECONDS as RETENTION_INTERVAL_SECONDS
from bot.tasks import TaskTracker
from bot.turns import TurnWorker

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ApiCore:
    """What the worker needs from the API: its poster (session files) and its result hook."""

    files: SessionFiles
    poster: ApiPoster
    results: TurnResults


def build_api_core(settings: Settings) -> ApiCore:
    """The session storage under ``DATASTORY_API_DATA_DIR``, the API's poster and the result hook."""
    files = SessionFiles(Path(settings.api_data_dir).expanduser().resolve())
    return ApiCore(files=files, poster=ApiPoster(files=files), results=TurnResults(files=files))


def attach_api(core: ApiCore, settings: Settings, *, store: ApiStore, worker: TurnWorker, tracker: TaskTracker,
               backends: Backends, clock: Clock) -> SessionService:
    """The service over the worker that runs the sessions' turns."""
    runs = Runs(store=store, worker=worker, tracker=tracker, files=core.files, poster=core.poster,
                results=core.results)
    limits = ApiLimits(max_file_bytes=settings.max_file_bytes, max_files=settings.api_max_files,
                       idle_minutes=settings.idle_minutes, daily_budget_usd=settings.daily_budget_usd,
                       rate_per_minute=settings.api_rate_per_minute)
    return SessionService(store=store, sandbox=backends.sandbox, runs=runs, files=core.files, clock=clock,
                          limits=limits)


ORPHAN_GRACE_SECONDS = 3600.0
"""A session directory without a thread is removed only once this old (a session being created has no row yet)."""


async def prune_orphan_files(store: ApiStore, files: SessionFiles, *, now: float) -> int:
    """Remove the files of sessions the store no longer has (retention pruned them); returns how many."""
    if not files.root.is_dir():
        return 0
    live = {t.key.thread_ts for t in await store.list_threads(team=API_TEAM)}
    removed = 0
    for entry in files.root.iterdir():
        if entry.is_dir() and entry.name not in live and now - entry.stat().st_mtime > ORPHAN_GRACE_SECONDS:
            files.delete(entry.name)
            removed += 1
    if removed:
        logger.info("api files of pruned sessions removed sessions=%d", removed)
    return removed


def orphan_job(core: ApiCore, store: ApiStore, clock: Clock) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp cleanup context running :func:`prune_orphan_files` with retention's interval."""

    async def run_once(now: float) -> int:
        return await prune_orphan_files(store, core.files, now=now)

    async def context(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run_periodically(run_once, interval=RETENTION_INTERVAL_SECONDS, clock=clock,
                                                    name="api-files"), name="api-files")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    return context


@dataclass(slots=True)
class ApiApp:
    """``datastory api``: the object graph (:func:`bot.bootstrap.bootstrap`'s services) and its lifecycle."""

    services: Services
    web: web.Application
    service: SessionService
    ready: bool = False
    jobs: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def store(self) -> ApiStore:
        return cast(ApiStore, self.services.store)

    async def start(self) -> None:
        """Open the store, warm the sandbox, resume and poll the durable queue, start the sweeper and retention
        (under the leader, like ``datastory run``'s periodic jobs)."""
        services, clock = self.services, self.services.clock
        await services.store.open()
        backends = services.require_backends()
        await backends.start()
        worker = services.require_worker()
        resumed = await worker.resume_unfinished()  # what a previous process left runs now
        self.jobs.append(asyncio.create_task(worker.poll_forever(), name="queue"))
        jobs = [Periodic("sweeper", services.require_sweeper().run_once, self.settings.sweep_interval_seconds),
                Periodic("retention", services.retention.run_once, RETENTION_INTERVAL_SECONDS)]
        leader = Leader(store=services.store, clock=clock, owner=worker.owner,
                        lease_seconds=self.settings.lease_seconds, jobs=jobs, metrics=services.metrics)
        self.jobs.append(asyncio.create_task(leader.run_forever(), name="leader"))
        self.ready = True
        logger.info("api ready sandbox=%s resumed_turns=%d", backends.sandbox.kind, resumed)

    async def stop(self) -> None:
        """Stop the jobs, let running turns finish within the grace period, close every client."""
        self.ready = False
        for job in self.jobs:
            job.cancel()
        await asyncio.gather(*self.jobs, return_exceptions=True)
        await self.services.tracker.close(grace=self.settings.shutdown_grace_seconds)
        await self.services.aclose()


async def open_api_app(settings: Settings, *, clock: Clock | None = None, backends: Backends | None = None) -> ApiApp:
    """The API alone (``datastory api``), on :func:`bot.bootstrap.bootstrap` without Slack (the store is opened
    when the web app starts); ``backends`` replaces the sandbox and analyst the settings ask for."""
    core = build_api_core(settings)
    services = await bootstrap(settings, clock=clock, backends=backends, slack=False, api=core, open_store=False)
    try:
        store = cast(ApiStore, services.store)
        service = attach_api(core, settings, store=store, worker=services.require_worker(),
                             tracker=services.tracker, backends=services.require_backends(), clock=services.clock)
    except BaseException:
        await services.aclose()
        raise
    app = ApiApp(services=services, web=web.Application(), service=service)
    Routes(service).mount(app.web)

    async def healthz(request: web.Request) -> web.Response:
        ok = app.ready and await app.store.ping()
        return web.json_response({"ok": ok, "ready": app.ready}, status=200 if ok else 503)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await app.start()
        yield
        await app.stop()

    app.web.router.add_get("/healthz", healthz)
    app.web.cleanup_ctx.append(lifecycle)
    app.web.cleanup_ctx.append(orphan_job(core, store, services.clock))
    return app
