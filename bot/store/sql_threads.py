"""``SqlThreads``: threads, their containers and their files, of ``SqlStore`` (its mixin): what a turn's workspace,
the file loader and the sweeper read and write."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store import housekeeping
from bot.store.base import FileRecord, ThreadKey, ThreadRecord, ThreadStatus
from bot.store.schema import files, threads, turns
from bot.store.sql_base import SqlParts
from bot.store.sql_rows import file_record, key_of, thread_is, thread_record


class SqlThreads(SqlParts):
    """Threads and files (``bot.store.base.ThreadStore``)."""

    async def get_thread(self, key: ThreadKey) -> ThreadRecord | None:
        """The thread, or None."""
        async with self._read() as conn:
            row = (await conn.execute(select(threads).where(*thread_is(threads, key)))).first()
        return None if row is None else thread_record(row._mapping)

    async def list_threads(self, *, team: str | None = None) -> list[ThreadRecord]:
        """Every thread (of one team when given), oldest first."""
        stmt = select(threads).order_by(threads.c.created_at, threads.c.team, threads.c.channel, threads.c.thread_ts)
        if team is not None:
            stmt = stmt.where(threads.c.team == team)
        async with self._read() as conn:
            return [thread_record(row._mapping) for row in await conn.execute(stmt)]

    async def idle_threads(self, *, before: float) -> list[ThreadRecord]:
        """Threads with a container, last active before ``before`` (an index serves it)."""
        async with self._read() as conn:
            return [thread_record(row._mapping) for row in await conn.execute(housekeeping.idle_threads(before))]

    async def threads_with_containers(self, container_ids: Sequence[str]) -> list[ThreadRecord]:
        """The threads owning one of ``container_ids``."""
        async with self._read() as conn:
            return [thread_record(row._mapping) for query in housekeeping.owners(container_ids)
                    for row in await conn.execute(query)]

    async def set_container(self, key: ThreadKey, *, container_id: str, name: str, backend: str, now: float) -> None:
        """Record the thread's container, mark it active, forget the response chain (creates the thread if new)."""
        values = {"container_id": container_id, "container_name": name, "backend": backend, "status": "active",
                  "last_response_id": None, "last_active_at": now}
        stmt = self._insert(threads).values(team=key.team, channel=key.channel, thread_ts=key.thread_ts,
                                            created_at=now, **values)
        async with self._write() as conn:
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=[threads.c.team, threads.c.channel, threads.c.thread_ts], set_=values,
            ))

    async def clear_container(
        self, key: ThreadKey, *, status: ThreadStatus, expected_container_id: str | None = None
    ) -> bool:
        """Forget the container and the response chain; the files lose their upload state so a rebuild re-uploads.

        With ``expected_container_id`` the thread is changed only while it still has that container.
        """
        async with self._write() as conn:
            return await self._clear(conn, key, status, expected_container_id)

    async def clear_containers(self, items: list[tuple[ThreadKey, str]], *, status: ThreadStatus) -> int:
        """Clear many threads (each only while it still has the given container) in one transaction."""
        if not items:
            return 0
        async with self._write() as conn:
            return sum([await self._clear(conn, key, status, container_id) for key, container_id in items])

    async def _clear(self, conn: AsyncConnection, key: ThreadKey, status: ThreadStatus, expected: str | None) -> bool:
        where = [*thread_is(threads, key)]
        if expected is not None:
            where.append(threads.c.container_id == expected)
        changed = await conn.execute(update(threads).where(*where).values(
            container_id=None, container_name=None, last_response_id=None, status=status,
        ))
        if changed.rowcount == 0:
            return False
        await conn.execute(update(files).where(*thread_is(files, key)).values(
            container_id=None, sandbox_path=None, sandbox_file_id=None,
        ))
        return True

    async def busy_threads(self) -> set[ThreadKey]:
        """Threads that have a queued or running turn."""
        query = select(turns.c.team, turns.c.channel, turns.c.thread_ts).where(
            turns.c.status.in_(("queued", "running"))).distinct()
        async with self._read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return {key_of(row) for row in rows}

    async def set_last_response(self, key: ThreadKey, response_id: str | None, *, now: float) -> None:
        """Remember the response to chain on and touch ``last_active_at``."""
        async with self._write() as conn:
            await conn.execute(update(threads).where(*thread_is(threads, key)).values(
                last_response_id=response_id, last_active_at=now,
            ))

    async def touch(self, key: ThreadKey, *, now: float) -> None:
        """Set ``last_active_at``."""
        async with self._write() as conn:
            await conn.execute(update(threads).where(*thread_is(threads, key)).values(last_active_at=now))

    # -- files ---------------------------------------------------------------------------------------------

    async def list_files(self, key: ThreadKey) -> list[FileRecord]:
        """The thread's files, oldest first."""
        stmt = select(files).where(*thread_is(files, key)).order_by(files.c.created_at, files.c.slack_file_id)
        async with self._read() as conn:
            return [file_record(row._mapping) for row in await conn.execute(stmt)]

    async def mark_uploaded(
        self, key: ThreadKey, slack_file_id: str, *, container_id: str, sandbox_path: str, sandbox_file_id: str,
        facts: str = "", read_options: str = "",
    ) -> None:
        """Record where the file lives now; ``facts`` and ``read_options`` replace the stored ones only when not
        empty."""
        values: dict[str, Any] = {"container_id": container_id, "sandbox_path": sandbox_path,
                                  "sandbox_file_id": sandbox_file_id}
        if facts:
            values["facts"] = facts
        if read_options:
            values["read_options"] = read_options
        async with self._write() as conn:
            await conn.execute(update(files).where(
                *thread_is(files, key), files.c.slack_file_id == slack_file_id,
            ).values(**values))

    async def mark_refused(self, key: ThreadKey, slack_file_id: str, *, turn_id: str, reason: str) -> None:
        """Record that ``turn_id`` refused the file, and why."""
        async with self._write() as conn:
            await conn.execute(update(files).where(
                *thread_is(files, key), files.c.slack_file_id == slack_file_id,
            ).values(refused_reason=reason, refused_turn=turn_id))
