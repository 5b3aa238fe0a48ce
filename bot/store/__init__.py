"""The store: the ``Store`` protocol and its values (``bot.store.base``) and the SQL implementation.

``make_store(url)`` is what the composition root calls with ``DATASTORY_DATABASE_URL``: ``sqlite:///PATH``
(default ``sqlite:///./datastory.db``; ``sqlite:///:memory:`` for tests) or ``postgresql://...`` /
``postgres://...`` for several replicas. The store is returned unopened: call ``await store.open()``.
"""

from __future__ import annotations

from bot.store.base import FileRecord, NewTurn, Store, ThreadKey, ThreadRecord, ThreadStatus, TurnRecord, TurnStatus
from bot.store.sql import SqlStore


def make_store(url: str, *, migrate: bool = True) -> SqlStore:
    """A ``SqlStore`` for ``url`` (not yet opened); ``ValueError`` for an unsupported URL scheme.

    ``open()`` upgrades the schema to the head revision, or with ``migrate=False`` refuses one behind it.
    """
    return SqlStore(url=url, migrate=migrate)


__all__ = [
    "FileRecord",
    "NewTurn",
    "SqlStore",
    "Store",
    "ThreadKey",
    "ThreadRecord",
    "ThreadStatus",
    "TurnRecord",
    "TurnStatus",
    "make_store",
]
