"""The store's part for the HTTP API: API keys and sessions (threads whose ``source`` is ``api``).

A session is an ordinary thread of the store, so the container registry, the sweeper, the rebuild after expiry,
budgets and cost accounting treat it like a Slack thread; this protocol only adds what Slack threads do not need:
creating a thread with its files in one step, deleting one thread, and the keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.store.base import FileRecord, ThreadKey


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    """An API key as stored: its public id, the SHA-256 of its secret part (never the secret), its life."""

    id: str
    name: str
    secret_sha256: str
    created_at: float
    revoked_at: float | None = None
    last_used_at: float | None = None


class SessionStore(Protocol):
    """API keys and API sessions; ``SqlStore`` implements it beside :class:`bot.store.base.Store`."""

    async def add_api_key(self, record: ApiKeyRecord) -> None:
        """Store a new key."""
        ...

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        """One key by id (revoked ones too)."""
        ...

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key, oldest first."""
        ...

    async def touch_api_key(self, key_id: str, *, now: float) -> None:
        """Record that the key was just used."""
        ...

    async def revoke_api_key(self, key_id: str, *, now: float) -> bool:
        """Revoke a key; False when there is no such key or it was revoked already."""
        ...

    async def open_session(self, key: ThreadKey, files: Sequence[FileRecord], *, now: float) -> None:
        """Create the thread (source ``api``) and its file records in one transaction."""
        ...

    async def delete_thread(self, key: ThreadKey) -> bool:
        """Delete the thread with its files and turns; False when there was none."""
        ...
