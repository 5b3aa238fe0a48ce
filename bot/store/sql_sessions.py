"""The SQL side of :class:`bot.store.sessions.SessionStore`, mixed into ``SqlStore`` (kept apart so the store's
main module stays about Slack threads)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, insert, select, update

from bot.store.base import FileRecord, ThreadKey
from bot.store.schema import api_keys, files, threads, turns
from bot.store.sessions import ApiKeyRecord
from bot.store.sql_base import SqlParts


class SessionRows(SqlParts):
    """API keys and sessions on the store's engine (``SqlStore`` provides ``_write`` and ``_read``)."""

    async def add_api_key(self, record: ApiKeyRecord) -> None:
        """Store a new key."""
        async with self._write() as conn:
            await conn.execute(insert(api_keys).values(
                id=record.id, name=record.name, secret_sha256=record.secret_sha256, created_at=record.created_at,
                revoked_at=record.revoked_at, last_used_at=record.last_used_at))

    async def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        """One key by id."""
        async with self._read() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
        return None if row is None else ApiKeyRecord(**dict(row._mapping))

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """Every key, oldest first."""
        async with self._read() as conn:
            rows = await conn.execute(select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id))
            return [ApiKeyRecord(**dict(row._mapping)) for row in rows]

    async def touch_api_key(self, key_id: str, *, now: float) -> None:
        """Set ``last_used_at``."""
        async with self._write() as conn:
            await conn.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))

    async def revoke_api_key(self, key_id: str, *, now: float) -> bool:
        """Revoke a live key."""
        async with self._write() as conn:
            done = await conn.execute(update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                                      .values(revoked_at=now))
            return bool(done.rowcount == 1)

    async def open_session(self, key: ThreadKey, records: Sequence[FileRecord], *, now: float) -> None:
        """The thread (source ``api``, status ``new``) and its files, in one transaction."""
        async with self._write() as conn:
            await conn.execute(insert(threads).values(
                team=key.team, channel=key.channel, thread_ts=key.thread_ts, status="new", created_at=now,
                last_active_at=now, source="api"))
            for f in records:
                await conn.execute(insert(files).values(**_file_values(key, f)))

    async def delete_thread(self, key: ThreadKey) -> bool:
        """The thread, its files and its turns."""
        where = (threads.c.team == key.team, threads.c.channel == key.channel, threads.c.thread_ts == key.thread_ts)
        async with self._write() as conn:
            for table in (files, turns):
                await conn.execute(delete(table).where(table.c.team == key.team, table.c.channel == key.channel,
                                                       table.c.thread_ts == key.thread_ts))
            return bool((await conn.execute(delete(threads).where(*where))).rowcount == 1)


def _file_values(key: ThreadKey, f: FileRecord) -> dict[str, Any]:
    return {
        "team": key.team, "channel": key.channel, "thread_ts": key.thread_ts, "slack_file_id": f.slack_file_id,
        "name": f.name, "size": f.size, "mimetype": f.mimetype, "filetype": f.filetype,
        "download_url": f.download_url, "message_ts": f.message_ts, "user_id": f.user, "created_at": f.created_at,
        "facts": f.facts, "read_options": f.read_options or None,
    }


