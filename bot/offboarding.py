"""A workspace leaves: the app was uninstalled (``app_uninstalled``) or its bot token revoked (``tokens_revoked``).

Nothing of that workspace may go on or stay behind, so :meth:`Offboarding.leave`:

1. stops its work in this process: every tracked task of the team (intake, queued and running turns) is cancelled
   and awaited, so no turn starts a container or calls the model afterwards;
2. deletes its containers (each thread's, through the sandbox; a failure is logged and the container, still named
   with our prefix but no longer owned by the store, is removed by the sweeper as an orphan);
3. purges its stored data in one transaction (:meth:`bot.store.base.Store.purge_team`): threads, file records,
   turns with their answers and code, digests and their runs, dedupe keys, inbox events.

Other replicas learn nothing from this process; their turns of the team fail on Slack (the token is dead) and the
rows they would touch are gone. A revoked token may also be only a user token (``tokens.oauth``); the bot uses
none, so only a revoked bot token (``tokens.bot``) makes the workspace leave.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.sandbox.base import SandboxBackend, SandboxError
from bot.store.base import Removed, Store
from bot.tasks import TaskTracker, TrackerClosed

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Departure:
    """What leaving did."""

    team: str
    stopped: int
    """Tasks of the team cancelled in this process."""
    containers_deleted: tuple[str, ...]
    containers_failed: tuple[str, ...]
    removed: Removed


class Offboarding:
    """Stops, deletes and purges a workspace's everything (see the module docstring)."""

    def __init__(self, *, store: Store, sandbox: SandboxBackend, tracker: TaskTracker) -> None:
        self._store = store
        self._sandbox = sandbox
        self._tracker = tracker

    def receive(self, team: str, *, reason: str) -> None:
        """Leave in a tracked background task (called right after Slack was acknowledged)."""
        if not team:
            logger.warning("workspace left but no team in the event reason=%s", reason)
            return
        try:
            self._tracker.spawn(self.leave(team, reason=reason), name=f"offboard-{team}")
        except TrackerClosed:
            logger.warning("shutting down; workspace not purged team=%s reason=%s", team, reason)

    async def leave(self, team: str, *, reason: str) -> Departure:
        """Stop the team's work, delete its containers, purge its data."""
        stopped = await self._tracker.cancel_group(team)
        deleted: list[str] = []
        failed: list[str] = []
        for thread in await self._store.list_threads(team=team):
            if not thread.container_id or thread.backend != self._sandbox.kind:
                continue
            try:
                await self._sandbox.delete(thread.container_id)
                deleted.append(thread.container_id)
            except SandboxError as exc:
                logger.warning("container not deleted, the sweeper will container=%s error=%s",
                               thread.container_id, type(exc).__name__)
                failed.append(thread.container_id)
        removed = await self._store.purge_team(team)
        logger.info("workspace left team=%s reason=%s stopped=%d containers_deleted=%d purged=%s", team, reason,
                    stopped, len(deleted), removed.summary())
        return Departure(team=team, stopped=stopped, containers_deleted=tuple(deleted),
                         containers_failed=tuple(failed), removed=removed)
