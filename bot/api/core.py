"""The API's parts the composition root (:func:`bot.bootstrap.bootstrap`) builds: :func:`build_api_core` what must
exist before the turn worker (its poster and result hook), :func:`attach_api` the service once the worker exists.

With the API on, one worker serves Slack threads and API sessions (through :class:`~bot.api.poster.RoutingPoster`
when Slack is there too): one set of slots, one thread queue, one sweeper. Also here: the housekeeping of the
API's own files (:func:`prune_orphan_files`) and of turns a previous process left (:func:`fail_interrupted`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from bot.api.poster import ApiPoster
from bot.api.runs import API_TEAM, Runs, TurnResults
from bot.api.service import ApiLimits, ApiStore, SessionService
from bot.api.storage import SessionFiles
from bot.clock import Clock
from bot.config import Settings
from bot.jobs.periodic import run_periodically
from bot.jobs.retention import INTERVAL_SECONDS as RETENTION_INTERVAL_SECONDS
from bot.sandbox.base import SandboxBackend
from bot.store.base import TurnOutcomeRecord
from bot.tasks import TaskTracker
from bot.turns import TurnWorker

logger = logging.getLogger(__name__)

ORPHAN_GRACE_SECONDS = 3600.0
"""A session directory without a thread is removed only once this old (a session being created has no row yet)."""


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
               sandbox: SandboxBackend, clock: Clock) -> SessionService:
    """The service over the worker that runs the sessions' turns."""
    runs = Runs(store=store, worker=worker, tracker=tracker, files=core.files, poster=core.poster,
                results=core.results)
    limits = ApiLimits(max_file_bytes=settings.max_file_bytes, max_files=settings.api_max_files,
                       idle_minutes=settings.idle_minutes, daily_budget_usd=settings.daily_budget_usd,
                       rate_per_minute=settings.api_rate_per_minute)
    return SessionService(store=store, sandbox=sandbox, runs=runs, files=core.files, clock=clock, limits=limits)


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


async def fail_interrupted(store: ApiStore, *, now: float) -> int:
    """API turns a previous process left unfinished end failed (their callers are gone); Slack turns are left to
    ``datastory run``. Returns how many."""
    count = 0
    for turn in await store.unfinished_turns():
        if turn.key.team == API_TEAM:
            await store.finish_turn(turn.id, status="failed", now=now,
                                    outcome=TurnOutcomeRecord(error="interrupted by a restart"))
            count += 1
    return count
