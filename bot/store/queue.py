"""The durable queue's statements: claiming the next runnable turn under a lease, renewing and giving it back,
the ledger of posted answer parts, and named leases (the leader of the periodic jobs).

Plain SQLAlchemy Core on a connection the caller opened in a write transaction (``SqlStore`` runs each call in
one). The accepted turns are the queue. A turn is **runnable** when it is unfinished, nobody holds its lease (or
the lease expired: the replica died), no earlier turn of its thread is unfinished (message order: ``message_ts``,
then arrival), and no other turn of its thread is running under a live lease. Claiming picks candidates, then
locks each candidate's thread row with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL; on SQLite the transaction is
``BEGIN IMMEDIATE``, which serialises writers) and checks the turn again before taking it, so two replicas never
take two turns of one thread, even when a late message sorts before a running one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, case, delete, exists, func, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.schema import leases, ledger, threads, turns

UNFINISHED = ("queued", "running")
STATUS_PART = "status"
"""The ledger part of a turn's status reply; recording it sets the turn's ``status_ts`` in the same transaction."""
CANDIDATES = 16
"""Runnable turns looked at per claim (one whose thread another replica is claiming is skipped)."""


def _free(now: float, owner: str | None = None) -> Any:
    """Nobody holds the turn's lease (or it expired; or ``owner`` holds it)."""
    conditions = [turns.c.lease_expires_at.is_(None), turns.c.lease_expires_at < now]
    if owner is not None:
        conditions.append(turns.c.lease_owner == owner)
    return or_(*conditions)


_OTHER = turns.alias("other")
"""Another turn of the same thread (made once: an alias copies every column of the table)."""
_ME = turns.alias("me")


def runnable(now: float, holder: str | None = None) -> Any:
    """The condition of a runnable turn (see the module docstring); a lease ``holder`` has counts as free."""
    e = _OTHER
    same_thread = and_(e.c.team == turns.c.team, e.c.channel == turns.c.channel, e.c.thread_ts == turns.c.thread_ts,
                       e.c.id != turns.c.id, e.c.status.in_(UNFINISHED))
    earlier = or_(e.c.message_ts < turns.c.message_ts,
                  and_(e.c.message_ts == turns.c.message_ts,
                       or_(e.c.created_at < turns.c.created_at,
                           and_(e.c.created_at == turns.c.created_at, e.c.id < turns.c.id))))
    running = and_(e.c.status == "running", e.c.lease_expires_at >= now)
    return and_(turns.c.status.in_(UNFINISHED), _free(now, holder),
                ~exists().where(same_thread, or_(earlier, running)))


async def claim(conn: AsyncConnection, *, owner: str, now: float, until: float, turn_id: str | None,
                postgres: bool, holder: str | None = None, status_ts: str | None = None) -> RowMapping | None:
    """Take the next runnable turn (``turn_id`` alone when given) for ``owner`` until ``until``: status running,
    started at ``now``, one more attempt (and ``status_ts`` when given). A lease ``holder`` has counts as free
    (handed over). Returns its row as the claim left it, or None when nothing is runnable."""
    values = {"status": "running", "started_at": now, "lease_owner": owner, "lease_expires_at": until,
              "attempts": func.coalesce(turns.c.attempts, 0) + 1}
    if status_ts is not None:
        values["status_ts"] = status_ts
    if turn_id is not None and not postgres:  # one conditional statement: BEGIN IMMEDIATE serialises the writers
        return (await conn.execute(update(turns).where(turns.c.id == turn_id, runnable(now, holder))
                                   .values(**values).returning(*turns.c))).mappings().first()
    query: Select[Any] = select(turns.c.id, turns.c.team, turns.c.channel, turns.c.thread_ts).where(
        runnable(now, holder))
    if turn_id is not None:
        query = query.where(turns.c.id == turn_id)
    rows = (await conn.execute(query.order_by(turns.c.created_at, turns.c.id).limit(CANDIDATES))).all()
    for row in rows:
        if postgres:
            locked = await conn.execute(select(threads.c.team).where(
                threads.c.team == row.team, threads.c.channel == row.channel, threads.c.thread_ts == row.thread_ts,
            ).with_for_update(skip_locked=True))
            if locked.first() is None:
                continue  # another replica is claiming in this thread right now
            again = await conn.execute(select(turns.c.id).where(turns.c.id == row.id, runnable(now, holder))
                                       .with_for_update(of=turns, skip_locked=True))
            if again.first() is None:
                continue
        taken = (await conn.execute(update(turns).where(turns.c.id == row.id).values(**values)
                                    .returning(*turns.c))).mappings().first()
        if taken is not None:
            return taken
    return None


async def renew(conn: AsyncConnection, turn_id: str, *, owner: str, until: float, attempt: int | None = None) -> bool:
    """Extend ``owner``'s lease on an unfinished turn (claimed as ``attempt`` when given); False when the lease was
    lost (another replica, or another run of this one, took it)."""
    conditions = [turns.c.id == turn_id, turns.c.lease_owner == owner, turns.c.status.in_(UNFINISHED)]
    if attempt is not None:
        conditions.append(turns.c.attempts == attempt)
    result = await conn.execute(update(turns).where(*conditions).values(lease_expires_at=until))
    return result.rowcount == 1


async def release(conn: AsyncConnection, turn_id: str, *, owner: str, refund: bool) -> bool:
    """Give an unfinished turn back to the queue (queued, no lease); ``refund`` takes back the attempt the claim
    counted (a graceful shutdown is not a failed run)."""
    values: dict[str, Any] = {"status": "queued", "lease_owner": None, "lease_expires_at": None}
    if refund:
        values["attempts"] = case((func.coalesce(turns.c.attempts, 0) > 0, turns.c.attempts - 1), else_=0)
    result = await conn.execute(update(turns).where(
        turns.c.id == turn_id, turns.c.lease_owner == owner, turns.c.status.in_(UNFINISHED)).values(**values))
    return result.rowcount == 1


def ahead(turn_id: str) -> Select[Any]:
    """How many unfinished turns of the turn's thread go before it."""
    me = _ME
    return select(func.count()).select_from(turns).join(me, and_(
        me.c.id == turn_id, me.c.team == turns.c.team, me.c.channel == turns.c.channel,
        me.c.thread_ts == turns.c.thread_ts)).where(
        turns.c.id != turn_id, turns.c.status.in_(UNFINISHED),
        or_(turns.c.status == "running", turns.c.message_ts < me.c.message_ts,
            and_(turns.c.message_ts == me.c.message_ts, turns.c.created_at < me.c.created_at)))


def busy_before(team: str, channel: str, thread_ts: str, ts: str, now: float) -> Select[Any]:
    """Unfinished turns of a thread asked before ``ts``, or running under a live lease: what a reset waits for."""
    return select(func.count()).select_from(turns).where(
        turns.c.team == team, turns.c.channel == channel, turns.c.thread_ts == thread_ts,
        turns.c.status.in_(UNFINISHED),
        or_(turns.c.message_ts < ts, and_(turns.c.status == "running", turns.c.lease_expires_at >= now)))


def waiting(now: float) -> Select[Any]:
    """How many unfinished turns nobody runs under a live lease."""
    return select(func.count()).select_from(turns).where(
        turns.c.status.in_(UNFINISHED),
        or_(turns.c.status == "queued", turns.c.lease_expires_at.is_(None), turns.c.lease_expires_at < now))


# -- the ledger --------------------------------------------------------------------------------------------------


def parts(turn_id: str) -> Select[Any]:
    """The parts a turn posted, oldest first."""
    return select(ledger.c.part, ledger.c.ref).where(ledger.c.turn_id == turn_id).order_by(ledger.c.posted_at)


# -- named leases --------------------------------------------------------------------------------------------------


async def acquire(conn: AsyncConnection, name: str, *, owner: str, now: float, until: float,
                  insert: Any) -> bool:
    """Take or extend the named lease: when nobody holds it, it expired, or ``owner`` holds it already.

    ``insert`` is the dialect's ``INSERT`` for the leases table (``ON CONFLICT DO UPDATE ... WHERE``).
    """
    stmt = insert.values(name=name, owner=owner, expires_at=until, acquired_at=now)
    excluded = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=[leases.c.name],
        set_={"owner": excluded.owner, "expires_at": excluded.expires_at,
              "acquired_at": func.coalesce(
                  select(leases.c.acquired_at).where(leases.c.name == name, leases.c.owner == owner)
                  .scalar_subquery(), excluded.acquired_at)},
        where=or_(leases.c.owner == owner, leases.c.expires_at < now),
    )
    return (await conn.execute(stmt)).rowcount == 1


async def resign(conn: AsyncConnection, name: str, *, owner: str) -> None:
    """Give the named lease up (a graceful stop: another replica takes it at once)."""
    await conn.execute(delete(leases).where(leases.c.name == name, leases.c.owner == owner))


def holder(name: str, now: float) -> Select[Any]:
    """Who holds the named lease now."""
    return select(leases.c.owner).where(leases.c.name == name, leases.c.expires_at >= now)
