"""Retention: what the store keeps is deleted once older than ``DATASTORY_RETENTION_DAYS``.

One pass (``run_once(now)``) asks the store to prune everything before ``now - days`` (:meth:`bot.store.base.Store.
prune`: finished turns with their answers and code, digest runs, dedupe keys, processed inbox events, cancelled
digests, and threads that keep nothing alive, with their file records). ``datastory run`` runs it every
:data:`INTERVAL_SECONDS`; deleting is idempotent, so replicas doing it too only repeat a no-op.
"""

from __future__ import annotations

import logging

from bot.config import Settings
from bot.store.base import HousekeepingStore, Removed

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 3600.0
DAY = 86_400.0


class Retention:
    """Prunes the store to ``days`` of history."""

    def __init__(self, *, store: HousekeepingStore, days: int) -> None:
        self._store = store
        self._seconds = days * DAY

    async def run_once(self, now: float) -> Removed:
        """Delete what is older than the retention period at the instant ``now``; returns what went."""
        removed = await self._store.prune(before=now - self._seconds)
        if removed != Removed():
            logger.info("retention: pruned %s", removed.summary())
        return removed


def build_retention(settings: Settings, *, store: HousekeepingStore) -> Retention:
    """The retention job of ``DATASTORY_RETENTION_DAYS``."""
    return Retention(store=store, days=settings.retention_days)
