"""Alembic's environment for the store: runs on the connection the caller put in ``config.attributes``.

The store migrates inside its own transaction and lock (``bot.store.sql``), so this file never connects, never
commits and has no offline (``--sql``) mode.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.runtime.migration import MigrationContext, MigrationInfo

from bot.store.schema import METADATA

logger = logging.getLogger("bot.store.revisions")


def _applied(ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]) -> None:
    logger.info("schema revision applied revision=%s", step.up_revision_id)

connection = context.config.attributes.get("connection")
if connection is None or context.is_offline_mode():
    raise RuntimeError("the datastory migrations run on a connection the store passes in; use `datastory migrate`")

context.configure(connection=connection, target_metadata=METADATA, on_version_apply=_applied)
with context.begin_transaction():
    context.run_migrations()
