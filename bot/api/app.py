"""``datastory api`` (and ``datastory mcp``): the API alone on the services of :func:`bot.bootstrap.bootstrap`
(no Slack settings; the sweeper, retention and the API's file housekeeping in-process)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from bot.api.core import fail_interrupted, orphan_job
from bot.api.routes import Routes
from bot.api.service import SessionService
from bot.backends import Backends
from bot.bootstrap import Services, bootstrap
from bot.clock import Clock
from bot.config import Settings
from bot.jobs.periodic import run_periodically
from bot.jobs.retention import INTERVAL_SECONDS as RETENTION_INTERVAL_SECONDS

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class ApiApp:
    """The API's web application over the services, and its periodic jobs."""

    services: Services
    service: SessionService
    web: web.Application
    ready: bool = False
    jobs: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        """Warm the sandbox, end turns a previous process left, start the sweeper and retention; when start-up
        fails, everything is closed before the error propagates."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        services, settings, clock = self.services, self.services.settings, self.services.clock
        await services.store.open()  # bootstrap opened it: this only checks again (idempotent)
        await services.require_backends().start()
        failed = await fail_interrupted(services.store, now=clock.now())
        sweeper = services.require_sweeper()
        self.jobs += [
            asyncio.create_task(run_periodically(sweeper.run_once, interval=settings.sweep_interval_seconds,
                                                 clock=clock, name="sweeper"), name="sweeper"),
            asyncio.create_task(run_periodically(services.retention.run_once, interval=RETENTION_INTERVAL_SECONDS,
                                                 clock=clock, name="retention"), name="retention"),
        ]
        self.ready = True
        logger.info("api ready sandbox=%s interrupted_turns=%d", services.require_backends().sandbox.kind, failed)

    async def stop(self) -> None:
        """Stop the jobs, let running turns finish within the grace period, close everything."""
        self.ready = False
        for job in self.jobs:
            job.cancel()
        await asyncio.gather(*self.jobs, return_exceptions=True)
        await self.services.tracker.close(grace=self.services.settings.shutdown_grace_seconds)
        await self.services.aclose()


async def open_api_app(settings: Settings, *, clock: Clock | None = None, backends: Backends | None = None) -> ApiApp:
    """Bootstrap the services with the API and no Slack, and build the web application on them; ``backends``
    replaces the sandbox and analyst the settings ask for."""
    services = await bootstrap(settings, clock=clock, backends=backends, slack=False, api=True)
    service, core = services.require_sessions(), services.api_core
    assert core is not None
    app = ApiApp(services=services, service=service, web=web.Application())
    Routes(service).mount(app.web)

    async def healthz(request: web.Request) -> web.Response:
        ok = app.ready and await services.store.ping()
        return web.json_response({"ok": ok, "ready": app.ready}, status=200 if ok else 503)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await app.start()
        yield
        await app.stop()

    app.web.router.add_get("/healthz", healthz)
    app.web.cleanup_ctx.append(lifecycle)
    app.web.cleanup_ctx.append(orphan_job(core, services.store, services.clock))
    return app
