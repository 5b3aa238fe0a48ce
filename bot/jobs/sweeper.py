"""The sweeper: nothing is billed after use. Deletes idle threads' containers and our orphaned containers.

One sweep (``run_once(now)``):

1. Threads idle longer than the idle TTL (``last_active_at`` in the store, asked for alone: the store is not read
   whole at every sweep), whose container is known and whose thread has no queued or running turn, get their
   container deleted; the thread is marked ``swept`` but keeps
   its files and turns, so the next question rebuilds the container transparently.
2. The provider's list of containers (all pages) is reconciled with the store: a container named with our
   prefix that the store does not own (the store is asked which of the listed ids it owns) is deleted once older
   than a grace period (a container being created
   right now is safe); an owned container that the provider reports ``expired`` is deleted and its thread
   forgotten. A container without our prefix is never touched.

Deleting is idempotent (gone counts as done); ``dry_run`` reports what would be deleted without deleting.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from bot.config import Settings
from bot.sandbox.base import ContainerInfo, SandboxBackend, SandboxError
from bot.store.base import ThreadKey, ThreadRecord, ThreadStore

logger = logging.getLogger(__name__)

DELETE_CONCURRENCY = 8


@dataclass(slots=True)
class SweepReport:
    """What one sweep did (or, in a dry run, would do)."""

    deleted_idle: list[str] = field(default_factory=list)
    """Containers of idle threads."""
    deleted_orphans: list[str] = field(default_factory=list)
    """Containers with our prefix that the store does not own."""
    deleted_expired: list[str] = field(default_factory=list)
    """Owned containers the provider already reports expired."""
    skipped_busy: list[str] = field(default_factory=list)
    """Idle-looking threads left alone because a turn is queued or running."""
    errors: list[str] = field(default_factory=list)
    """``container_id: reason`` for deletions that failed (retried at the next sweep)."""
    listed: int = 0
    dry_run: bool = False
    swept_threads: list[ThreadKey] = field(default_factory=list)
    """Threads whose containers were deleted (their Slack agent sessions become ``suspended``)."""

    @property
    def deleted(self) -> int:
        """How many containers were (or would be) deleted."""
        return len(self.deleted_idle) + len(self.deleted_orphans) + len(self.deleted_expired)

    def summary(self) -> str:
        """One line for logs and the CLI."""
        verb = "would delete" if self.dry_run else "deleted"
        return (f"{verb} {len(self.deleted_idle)} idle, {len(self.deleted_orphans)} orphaned and "
                f"{len(self.deleted_expired)} expired container(s); skipped {len(self.skipped_busy)} busy; "
                f"{len(self.errors)} error(s); {self.listed} listed")


class Sweeper:
    """Deletes what nobody uses any more; see the module docstring."""

    def __init__(
        self, *, store: ThreadStore, sandbox: SandboxBackend, prefix: str, idle_minutes: float,
        orphan_grace_minutes: float = 10.0,
    ) -> None:
        self._store = store
        self._sandbox = sandbox
        self._prefix = prefix
        self._idle_seconds = idle_minutes * 60
        self._grace_seconds = orphan_grace_minutes * 60

    async def run_once(self, now: float, *, dry_run: bool = False) -> SweepReport:
        """One sweep at the instant ``now`` (Unix seconds)."""
        report = SweepReport(dry_run=dry_run)
        kind = self._sandbox.kind
        listed = await self._sandbox.list_containers(prefix=self._prefix)
        report.listed = len(listed)
        status = {c.id: c.status for c in listed}
        owners = await self._store.threads_with_containers([c.id for c in listed])
        owned: dict[str, ThreadRecord] = {t.container_id: t for t in owners if t.container_id}
        idle = await self._store.idle_threads(before=now - self._idle_seconds)
        threads = {t.key: t for t in [*idle, *owners] if t.container_id and t.backend == kind}.values()
        busy = await self._store.busy_threads() if threads else set()

        doomed: list[tuple[str, list[str], ThreadKey | None]] = []
        for thread in threads:
            cid = thread.container_id or ""
            expired = status.get(cid) == "expired"
            if not expired and now - thread.last_active_at <= self._idle_seconds:
                continue
            if thread.key in busy:
                report.skipped_busy.append(cid)
                continue
            doomed.append((cid, report.deleted_expired if expired else report.deleted_idle, thread.key))
        for container in listed:
            if container.id not in owned and self._is_orphan(container, now):
                doomed.append((container.id, report.deleted_orphans, None))

        if dry_run:
            for cid, bucket, _ in doomed:
                bucket.append(cid)
            return report
        cleared = await self._delete_all(doomed, report)
        await self._store.clear_containers(cleared, status="swept")
        report.swept_threads = [key for key, _ in cleared]
        if report.deleted or report.errors:
            logger.info("sweep: %s", report.summary())
        return report

    def _is_orphan(self, container: ContainerInfo, now: float) -> bool:
        if not container.name.startswith(self._prefix):
            return False  # never ours, whatever a provider's filter returned
        return container.status == "expired" or now - container.created_at > self._grace_seconds

    async def _delete_all(
        self, doomed: list[tuple[str, list[str], ThreadKey | None]], report: SweepReport
    ) -> list[tuple[ThreadKey, str]]:
        gate = asyncio.Semaphore(DELETE_CONCURRENCY)
        cleared: list[tuple[ThreadKey, str]] = []

        async def delete(cid: str, bucket: list[str], key: ThreadKey | None) -> None:
            async with gate:
                try:
                    await self._sandbox.delete(cid)
                except SandboxError as exc:
                    report.errors.append(f"{cid}: {type(exc).__name__}")
                    logger.warning("sweep could not delete container=%s error=%s", cid, type(exc).__name__)
                    return
            bucket.append(cid)
            if key is not None:
                cleared.append((key, cid))

        await asyncio.gather(*(delete(cid, bucket, key) for cid, bucket, key in doomed))
        return cleared


def build_sweeper(
    settings: Settings, *, store: ThreadStore, sandbox: SandboxBackend, idle_minutes: float | None = None
) -> Sweeper:
    """The sweeper for this deployment's prefix, idle TTL (``idle_minutes`` overrides it) and grace period."""
    return Sweeper(store=store, sandbox=sandbox, prefix=settings.container_prefix,
                   idle_minutes=settings.idle_minutes if idle_minutes is None else idle_minutes,
                   orphan_grace_minutes=settings.orphan_grace_minutes)
