"""What the parts of ``SqlStore`` share: the transactions and the dialect's ``INSERT`` that ``SqlStore`` provides.

``SqlStore`` (:mod:`bot.store.sql`) is made of mixins, one per concept (threads and files, turns, digests, the queue
and the ledger, the inbox, API sessions); each derives from :class:`SqlParts` and runs every call in one transaction
of ``_write()`` (``BEGIN IMMEDIATE`` on SQLite) or one connection of ``_read()``.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

Insert = sqlite.Insert | pg.Insert
UNFINISHED = ("queued", "running")


class SqlParts:
    """The helpers every part of ``SqlStore`` uses (``SqlStore`` implements them)."""

    _sqlite: bool

    def _write(self, *, urgent: bool = False) -> AbstractAsyncContextManager[AsyncConnection]:  # pragma: no cover
        raise NotImplementedError

    def _read(self, *, snapshot: bool = False) -> AbstractAsyncContextManager[AsyncConnection]:  # pragma: no cover
        raise NotImplementedError

    def _insert(self, table: Table) -> Insert:  # pragma: no cover - SqlStore's
        raise NotImplementedError
