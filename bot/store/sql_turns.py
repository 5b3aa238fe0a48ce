"""``SqlTurns``: dedupe keys, submitting turns, reading and finishing them, and the load they make, of ``SqlStore``
(its mixin). ``claim`` and ``submit_turn`` are safe when replicas race: ``INSERT ... ON CONFLICT DO NOTHING`` and
its row count, never a read followed by a write."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store import load
from bot.store.base import (
    FileRecord,
    NewTurn,
    Pending,
    ThreadBusy,
    ThreadKey,
    TurnOutcomeRecord,
    TurnRecord,
    TurnStatus,
)
from bot.store.schema import dedupe, digest_runs, files, inbox, threads, turns
from bot.store.sql_base import UNFINISHED, SqlParts
from bot.store.sql_rows import file_row, thread_is, turn_record, turn_row, unique_files

logger = logging.getLogger("bot.store.sql")


class _Duplicate(Exception):
    """Raised inside ``submit_turn``'s transaction to roll it back."""


class SqlTurns(SqlParts):
    """Dedupe keys and turns (``bot.store.base.DedupeStore``, ``TurnStore``, ``LoadStore``)."""

    async def claim(self, key: str, *, now: float) -> bool:
        """Insert a dedupe key; True for the one caller (of any replica) that inserted it."""
        stmt = self._insert(dedupe).values(key=key, created_at=now).on_conflict_do_nothing(index_elements=["key"])
        async with self._write() as conn:
            return (await conn.execute(stmt)).rowcount == 1

    async def claimed(self, key: str) -> bool:
        """Whether the dedupe key is stored (the post was acted on)."""
        async with self._read() as conn:
            return (await conn.execute(select(dedupe.c.key).where(dedupe.c.key == key))).first() is not None

    async def prune_dedupe(self, before: float) -> int:
        """Delete dedupe keys created before ``before``; returns how many."""
        async with self._write() as conn:
            return (await conn.execute(delete(dedupe).where(dedupe.c.created_at < before))).rowcount

    async def submit_turn(self, turn: NewTurn, *, dedupe_keys: tuple[str, ...], holder: str | None = None,
                          hold_until: float | None = None, inbox_event: str | None = None,
                          alone: bool = False) -> bool:
        """Claim every key, upsert the thread and the files, add the queued turn: all or nothing.

        The files are recorded under ``turn.key``. A file the thread already has (same Slack id) is updated
        (name, size, types, URL, message, user; facts when given) and keeps its upload state and ``created_at``.
        A duplicate key, or a turn id that exists already, returns False and writes nothing. With ``holder``, the
        turn is stored leased to it until ``hold_until`` (the accepting replica greets it before anyone runs it).
        With ``inbox_event``, that inbox event is marked done (its words blanked) in the same transaction. With
        ``alone``, a thread with an unfinished turn raises ``ThreadBusy`` (checked after the thread's upsert, which
        locks its row on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises the writers).
        """
        try:
            async with self._write() as conn:
                await self._claim_all(conn, dedupe_keys, turn.created_at)
                await self._upsert_thread(conn, turn.key, turn.created_at)
                if alone and (await conn.execute(select(turns.c.id).where(
                        *thread_is(turns, turn.key), turns.c.status.in_(UNFINISHED)).limit(1))).first() is not None:
                    raise ThreadBusy(turn.key)
                for record in sorted(unique_files(turn.files), key=lambda f: f.slack_file_id):
                    await self._upsert_file(conn, turn.key, record)
                row = turn_row(turn) | {"lease_owner": holder, "lease_expires_at": hold_until if holder else None}
                added = await conn.execute(
                    self._insert(turns).values(**row).on_conflict_do_nothing(index_elements=["id"])
                )
                if added.rowcount != 1:
                    raise _Duplicate
                if inbox_event:
                    await conn.execute(update(inbox).where(inbox.c.event_id == inbox_event, inbox.c.done_at.is_(None))
                                       .values(done_at=turn.created_at, text=None, claimed_by=None))
        except _Duplicate:
            logger.info("duplicate turn not stored turn=%s thread=%s", turn.id, turn.key)
            return False
        return True

    async def _claim_all(self, conn: AsyncConnection, keys: Sequence[str], now: float) -> None:
        unique = sorted(set(keys))  # one order for every replica: no deadlock between overlapping key sets
        if not unique:
            return
        stmt = self._insert(dedupe).values([{"key": k, "created_at": now} for k in unique])
        result = await conn.execute(stmt.on_conflict_do_nothing(index_elements=["key"]))
        if result.rowcount != len(unique):
            raise _Duplicate

    async def _upsert_thread(self, conn: AsyncConnection, key: ThreadKey, now: float) -> None:
        stmt = self._insert(threads).values(
            team=key.team, channel=key.channel, thread_ts=key.thread_ts, status="new", created_at=now,
            last_active_at=now,
        )
        later = case((threads.c.last_active_at < stmt.excluded.last_active_at, stmt.excluded.last_active_at),
                     else_=threads.c.last_active_at)
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=[threads.c.team, threads.c.channel, threads.c.thread_ts],
            set_={"last_active_at": later},
        ))

    async def _upsert_file(self, conn: AsyncConnection, key: ThreadKey, record: FileRecord) -> None:
        stmt = self._insert(files).values(**file_row(key, record))
        new = stmt.excluded
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=[files.c.team, files.c.channel, files.c.thread_ts, files.c.slack_file_id],
            set_={
                "name": new.name, "size": new.size, "mimetype": new.mimetype, "filetype": new.filetype,
                "download_url": new.download_url, "message_ts": new.message_ts, "user_id": new.user_id,
                "facts": case((new.facts != "", new.facts), else_=files.c.facts),
            },
        ))

    # -- turns ---------------------------------------------------------------------------------------------

    async def get_turn(self, turn_id: str) -> TurnRecord | None:
        """One turn by id, or None."""
        async with self._read() as conn:
            row = (await conn.execute(select(turns).where(turns.c.id == turn_id))).first()
        return None if row is None else turn_record(row._mapping)

    async def set_status_ts(self, turn_id: str, status_ts: str) -> None:
        """Remember the ts of the turn's status reply."""
        async with self._write() as conn:
            await conn.execute(update(turns).where(turns.c.id == turn_id).values(status_ts=status_ts))

    async def start_turn(self, turn_id: str, *, now: float) -> bool:
        """Mark the turn running (again, when resumed) and set ``started_at``; False when it already ended."""
        async with self._write() as conn:
            result = await conn.execute(update(turns).where(turns.c.id == turn_id, turns.c.status.in_(UNFINISHED))
                                        .values(status="running", started_at=now))
            return bool(result.rowcount)

    async def finish_turn(
        self, turn_id: str, *, status: TurnStatus, now: float, outcome: TurnOutcomeRecord | None = None,
        owner: str | None = None,
    ) -> bool:
        """Record the turn's outcome and free its lease; with ``owner``, only while that replica holds the lease
        of the unfinished turn (False otherwise: another replica took it over)."""
        o = outcome or TurnOutcomeRecord()
        where = [turns.c.id == turn_id]
        if owner is not None:
            where += [turns.c.lease_owner == owner, turns.c.status.in_(UNFINISHED)]
        async with self._write() as conn:
            result = await conn.execute(update(turns).where(*where).values(
                status=status, finished_at=now, response_id=o.response_id, error=o.error,
                input_tokens=o.input_tokens, output_tokens=o.output_tokens, answer=o.answer, code=o.code,
                model=o.model, cost_usd=o.cost_usd, lease_owner=None, lease_expires_at=None,
            ))
            return result.rowcount == 1

    async def list_turns(self, key: ThreadKey) -> list[TurnRecord]:
        """The thread's turns, oldest first."""
        query = select(turns).where(*thread_is(turns, key)).order_by(turns.c.created_at, turns.c.id)
        async with self._read() as conn:
            return [turn_record(row) for row in (await conn.execute(query)).mappings()]

    async def spent_since(self, since: float, *, user: str | None = None, channel: str | None = None) -> float:
        """Sum of ``cost_usd`` of the turns started and digest runs finished at or after ``since``, filtered by user
        (a digest run's owner) and/or channel."""
        asked = select(func.coalesce(func.sum(turns.c.cost_usd), 0.0)).where(turns.c.started_at >= since)
        scheduled = select(func.coalesce(func.sum(digest_runs.c.cost_usd), 0.0)).where(digest_runs.c.ran_at >= since)
        if user is not None:
            asked = asked.where(turns.c.user_id == user)
            scheduled = scheduled.where(digest_runs.c.owner == user)
        if channel is not None:
            asked = asked.where(turns.c.channel == channel)
            scheduled = scheduled.where(digest_runs.c.channel == channel)
        async with self._read() as conn:
            return float((await conn.execute(select(asked.scalar_subquery() + scheduled.scalar_subquery())))
                         .scalar_one())

    async def unfinished_turns(self) -> list[TurnRecord]:
        """Queued or running turns, oldest first."""
        stmt = select(turns).where(turns.c.status.in_(UNFINISHED)).order_by(turns.c.created_at, turns.c.id)
        async with self._read() as conn:
            return [turn_record(row._mapping) for row in await conn.execute(stmt)]

    async def pending_turns(self, *, team: str, user: str, channel: str) -> Pending:
        """Unfinished turns of a person, a channel and in all (:func:`bot.store.load.pending`)."""
        async with self._read() as conn:
            return await load.pending(conn, team=team, user=user, channel=channel)

    async def typical_turn_seconds(self, *, since: float) -> float | None:
        """Mean duration of recent turns (:func:`bot.store.load.typical_seconds`)."""
        async with self._read() as conn:
            return await load.typical_seconds(conn, since=since)

    async def expire_waiting(self, *, before: float, now: float, error: str) -> list[TurnRecord]:
        """End the turns that waited too long (:func:`bot.store.load.expire_waiting`)."""
        async with self._write() as conn:
            return [turn_record(row) for row in await load.expire_waiting(conn, before=before, now=now, error=error)]
