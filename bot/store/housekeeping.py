"""The store's housekeeping statements: what the sweeper asks, retention's prune, and a workspace's purge.

Plain SQLAlchemy Core on a connection the caller opened (``SqlStore`` runs each in one transaction), kept apart
from ``bot.store.sql`` so the rules of what is deleted read in one place:

* :func:`purge_team`: a workspace uninstalled the app or revoked its token: everything of that team goes.
* :func:`prune`: ``DATASTORY_RETENTION_DAYS``: finished turns (with their answers and code), digest runs, dedupe
  keys and cancelled digests older than the cut-off go, and so do threads idle since then that keep nothing alive
  (no container, no unfinished turn, no digest), with their file records. Unfinished turns are never pruned. So
  do inbox events processed before the cut-off (an event not processed yet is kept: it is replayed), and the
  ``stop/<turn id>`` leases (:mod:`bot.turns.stopping`) of turns that ended or are gone, whatever their age.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, delete, exists, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.base import Removed
from bot.store.schema import dedupe, digest_runs, digests, files, inbox, leases, threads, turns

IN_CHUNK = 500
"""Container ids per ``IN (...)`` (SQLite caps the parameters of one statement)."""
FINISHED = ("done", "failed")
STOP_PREFIX = "stop/"
"""The named leases that ask the replica running a turn to stop it: ``stop/<turn id>``."""


def idle_threads(before: float) -> Select[tuple[object, ...]]:
    """Threads with a container, last active before ``before``."""
    return (select(threads).where(threads.c.container_id.is_not(None), threads.c.last_active_at < before)
            .order_by(threads.c.last_active_at))


def owners(container_ids: Sequence[str]) -> list[Select[tuple[object, ...]]]:
    """Queries for the threads that own ``container_ids``, a chunk of ids each."""
    ids = sorted(set(container_ids))
    return [select(threads).where(threads.c.container_id.in_(ids[i:i + IN_CHUNK]))
            for i in range(0, len(ids), IN_CHUNK)]


async def purge_team(conn: AsyncConnection, team: str) -> Removed:
    """Delete every row of ``team`` (see the module docstring)."""
    team_digests = select(digests.c.id).where(digests.c.team == team)
    runs = await conn.execute(delete(digest_runs).where(digest_runs.c.digest_id.in_(team_digests)))
    gone_digests = await conn.execute(delete(digests).where(digests.c.team == team))
    gone_turns = await conn.execute(delete(turns).where(turns.c.team == team))
    gone_files = await conn.execute(delete(files).where(files.c.team == team))
    gone_threads = await conn.execute(delete(threads).where(threads.c.team == team))
    keys = await conn.execute(delete(dedupe).where(dedupe.c.key.startswith(f"msg:{team}:", autoescape=True)))
    events = await conn.execute(delete(inbox).where(inbox.c.team == team))
    return Removed(threads=gone_threads.rowcount, files=gone_files.rowcount, turns=gone_turns.rowcount,
                   digests=gone_digests.rowcount, digest_runs=runs.rowcount, dedupe_keys=keys.rowcount,
                   inbox_events=events.rowcount)


async def prune(conn: AsyncConnection, before: float) -> Removed:
    """Delete what retention lets go (see the module docstring)."""
    old_turns = await conn.execute(delete(turns).where(
        turns.c.status.in_(FINISHED), turns.c.created_at < before,
        or_(turns.c.finished_at.is_(None), turns.c.finished_at < before)))
    runs = await conn.execute(delete(digest_runs).where(digest_runs.c.ran_at < before))
    keys = await conn.execute(delete(dedupe).where(dedupe.c.created_at < before))
    cancelled = await conn.execute(delete(digests).where(
        digests.c.status == "cancelled", func.coalesce(digests.c.last_run_at, digests.c.created_at) < before))
    same_thread = [(t.c.team == threads.c.team) & (t.c.channel == threads.c.channel)
                   & (t.c.thread_ts == threads.c.thread_ts) for t in (turns, digests)]
    idle = (threads.c.last_active_at < before, threads.c.container_id.is_(None),
            ~exists().where(same_thread[0]), ~exists().where(same_thread[1]))
    doomed = select(threads.c.team, threads.c.channel, threads.c.thread_ts).where(*idle)
    gone_files = await conn.execute(delete(files).where(
        tuple_(files.c.team, files.c.channel, files.c.thread_ts).in_(doomed)))
    gone_threads = await conn.execute(delete(threads).where(*idle))
    events = await conn.execute(delete(inbox).where(inbox.c.done_at < before))
    running = select(turns.c.id).where(turns.c.id == func.substr(leases.c.name, len(STOP_PREFIX) + 1),
                                       turns.c.status.not_in(FINISHED))
    stops = await conn.execute(delete(leases).where(leases.c.name.startswith(STOP_PREFIX), ~exists(running)))
    return Removed(threads=gone_threads.rowcount, files=gone_files.rowcount, turns=old_turns.rowcount,
                   digests=cancelled.rowcount, digest_runs=runs.rowcount, dedupe_keys=keys.rowcount,
                   inbox_events=events.rowcount, stop_leases=stops.rowcount)
