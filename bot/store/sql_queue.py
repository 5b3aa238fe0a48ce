"""``SqlQueue``: the durable queue, the ledger, people's feedback and named leases of ``SqlStore`` (its mixin),
each call one transaction over the statements of :mod:`bot.store.queue`."""

from __future__ import annotations

from sqlalchemy import func, select, update

from bot.store import queue
from bot.store.base import ThreadKey, TurnRecord
from bot.store.schema import feedback, leases, ledger, turns
from bot.store.sql_base import SqlParts
from bot.store.sql_rows import turn_record


class SqlQueue(SqlParts):
    """The queue's half of ``SqlStore`` (see :mod:`bot.store.queue` for what is runnable)."""

    # -- turns ---------------------------------------------------------------------------------------------------

    async def claim_turn(self, *, owner: str, now: float, lease_seconds: float, turn_id: str | None = None,
                         holder: str | None = None, status_ts: str | None = None) -> TurnRecord | None:
        """Take the next runnable turn (or ``turn_id`` when it is runnable) under ``owner``'s lease (a lease
        ``holder`` has is handed over); with ``status_ts``, its status reply recorded in the ledger too."""
        async with self._write() as conn:
            row = await queue.claim(conn, owner=owner, now=now, until=now + lease_seconds, turn_id=turn_id,
                                    postgres=not self._sqlite, holder=holder, status_ts=status_ts)
            if row is not None and status_ts is not None:
                await conn.execute(self._insert(ledger).values(turn_id=row["id"], part=queue.STATUS_PART,
                                                               ref=status_ts, posted_at=now)
                                   .on_conflict_do_nothing(index_elements=["turn_id", "part"]))
        return None if row is None else turn_record(row)

    async def renew_turn(self, turn_id: str, *, owner: str, now: float, lease_seconds: float,
                         attempt: int | None = None) -> bool:
        """Extend the lease; False when ``owner`` no longer holds it (or no longer for ``attempt``)."""
        async with self._write() as conn:
            return await queue.renew(conn, turn_id, owner=owner, until=now + lease_seconds, attempt=attempt)

    async def hold_turn(self, turn_id: str, *, owner: str, now: float, lease_seconds: float) -> bool:
        """Lease a queued turn that nobody holds without claiming it to run (its greeting is being posted)."""
        async with self._write() as conn:
            result = await conn.execute(update(turns).where(
                turns.c.id == turn_id, turns.c.status == "queued", queue._free(now, owner),
            ).values(lease_owner=owner, lease_expires_at=now + lease_seconds))
            return result.rowcount == 1

    async def release_turn(self, turn_id: str, *, owner: str, refund: bool = False) -> bool:
        """Give an unfinished turn back to the queue; ``refund`` takes back the claim's attempt."""
        async with self._write() as conn:
            return await queue.release(conn, turn_id, owner=owner, refund=refund)

    async def turns_ahead(self, turn_id: str) -> int:
        """Unfinished turns of the thread that go before this one (the running one included)."""
        async with self._read() as conn:
            return int((await conn.execute(queue.ahead(turn_id))).scalar_one())

    async def thread_busy(self, key: ThreadKey, *, before_ts: str, now: float) -> bool:
        """Whether a turn asked before ``before_ts`` is unfinished, or one is running under a live lease."""
        async with self._read() as conn:
            query = queue.busy_before(key.team, key.channel, key.thread_ts, before_ts, now)
            return int((await conn.execute(query)).scalar_one()) > 0

    async def queue_depth(self, *, now: float) -> int:
        """Unfinished turns nobody runs under a live lease (waiting for their thread or a free slot)."""
        async with self._read() as conn:
            return int((await conn.execute(queue.waiting(now))).scalar_one())

    # -- the ledger ----------------------------------------------------------------------------------------------

    async def record_part(self, turn_id: str, part: str, ref: str, *, now: float) -> bool:
        """Record a posted part (the status reply's ts is the turn's ``status_ts`` too); False when it was
        recorded already."""
        stmt = self._insert(ledger).values(turn_id=turn_id, part=part, ref=ref, posted_at=now)
        async with self._write() as conn:
            added = (await conn.execute(stmt.on_conflict_do_nothing(index_elements=["turn_id", "part"]))).rowcount
            if added and part == queue.STATUS_PART:
                await conn.execute(update(turns).where(turns.c.id == turn_id).values(status_ts=ref))
            return added == 1

    async def posted_parts(self, turn_id: str) -> dict[str, str]:
        """The parts the turn posted: part key → Slack ts or file ids."""
        async with self._read() as conn:
            return {row.part: row.ref for row in await conn.execute(queue.parts(turn_id))}

    async def turn_of_part(self, ref: str) -> str | None:
        """The turn that posted ``ref`` (a Slack ts), if any."""
        async with self._read() as conn:
            row = (await conn.execute(select(ledger.c.turn_id).where(ledger.c.ref == ref).limit(1))).first()
        return None if row is None else str(row.turn_id)

    # -- feedback --------------------------------------------------------------------------------------------------

    async def set_vote(self, turn_id: str, user: str, vote: str, *, now: float) -> str | None:
        """Keep ``user``'s latest vote on the turn's answer; the vote it replaced (None for a first vote)."""
        async with self._write() as conn:
            row = (await conn.execute(select(feedback.c.vote).where(
                feedback.c.turn_id == turn_id, feedback.c.user_id == user))).first()
            if row is None:
                await conn.execute(self._insert(feedback).values(turn_id=turn_id, user_id=user, vote=vote,
                                                                 voted_at=now))
                return None
            await conn.execute(update(feedback).where(feedback.c.turn_id == turn_id, feedback.c.user_id == user)
                               .values(vote=vote, voted_at=now))
            return str(row.vote)

    async def votes(self) -> dict[str, int]:
        """How many people's latest vote is each vote."""
        async with self._read() as conn:
            rows = await conn.execute(select(feedback.c.vote, func.count()).group_by(feedback.c.vote))
            return {str(vote): int(count) for vote, count in rows}

    # -- named leases --------------------------------------------------------------------------------------------

    async def acquire_lease(self, name: str, *, owner: str, now: float, seconds: float) -> bool:
        """Take or extend the lease ``name`` for ``owner``; False while another owner holds it."""
        async with self._write() as conn:
            return await queue.acquire(conn, name, owner=owner, now=now, until=now + seconds,
                                       insert=self._insert(leases))

    async def release_lease(self, name: str, *, owner: str) -> None:
        """Give up the lease ``name`` when ``owner`` holds it."""
        async with self._write() as conn:
            await queue.resign(conn, name, owner=owner)

    async def lease_holder(self, name: str, *, now: float) -> str | None:
        """Who holds the lease ``name`` now (None when nobody does)."""
        async with self._read() as conn:
            row = (await conn.execute(queue.holder(name, now))).first()
        return None if row is None else str(row.owner)
