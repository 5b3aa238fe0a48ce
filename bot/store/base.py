"""The store ports: one async protocol per user (threads, turns, the queue, the ledger, leases, digests...), and
:class:`Store`, all of them, which ``bot.store.sql.SqlStore`` implements on SQLite and PostgreSQL.

Every method that must be safe when two replicas race (claiming a dedupe key, submitting or claiming a turn,
taking a lease) is a single conditional statement or one transaction, never a read followed by a write. The values
live in ``bot.store.records`` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bot.store.records import (
    DigestRecord,
    DigestStatus,
    FileRecord,
    InboxEntry,
    NewTurn,
    Pending,
    Removed,
    ThreadBusy,
    ThreadKey,
    ThreadRecord,
    ThreadStatus,
    TurnOutcomeRecord,
    TurnRecord,
    TurnStatus,
)


class Lifecycle(Protocol):
    """Opening and closing the store."""

    async def open(self) -> None:
        """Connect and bring the schema up to date (idempotent)."""
        ...

    async def close(self) -> None:
        """Dispose of connections."""
        ...

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        ...

class DedupeStore(Protocol):
    """Dedupe keys: each Slack post is handled once, by one replica."""

    async def claim(self, key: str, *, now: float) -> bool:
        """Insert a dedupe key; True for the first claimer, False when it was already there."""
        ...

    async def claimed(self, key: str) -> bool:
        """Whether the dedupe key is stored (the post it stands for was acted on)."""
        ...

    async def prune_dedupe(self, before: float) -> int:
        """Delete dedupe keys claimed before ``before`` (Unix seconds); returns how many were deleted."""
        ...

class ThreadStore(Protocol):
    """Threads, their containers and their files: what a turn's workspace and the sweeper need."""

    async def get_thread(self, key: ThreadKey) -> ThreadRecord | None:
        """The thread, or None when the bot has never had work in it."""
        ...

    async def set_container(self, key: ThreadKey, *, container_id: str, name: str, backend: str, now: float) -> None:
        """Record the thread's (new) container, mark the thread active and forget the response chain."""
        ...

    async def clear_container(
        self, key: ThreadKey, *, status: ThreadStatus, expected_container_id: str | None = None
    ) -> bool:
        """Forget the thread's container (swept or reset); files and turns are kept so a later turn rebuilds.

        With ``expected_container_id``, only when the thread still has that container (a turn may have
        replaced it meanwhile). Returns whether the thread was changed.
        """
        ...

    async def clear_containers(self, items: list[tuple[ThreadKey, str]], *, status: ThreadStatus) -> int:
        """:meth:`clear_container` with ``expected_container_id`` for many threads in one transaction."""
        ...

    async def busy_threads(self) -> set[ThreadKey]:
        """Threads with a queued or running turn (in any replica): the sweeper leaves their containers alone."""
        ...

    async def set_last_response(self, key: ThreadKey, response_id: str | None, *, now: float) -> None:
        """Remember the response to chain the next turn on, and touch ``last_active_at``."""
        ...

    async def touch(self, key: ThreadKey, *, now: float) -> None:
        """Set ``last_active_at``."""
        ...

    async def list_threads(self, *, team: str | None = None) -> list[ThreadRecord]:
        """Every thread (of one team when given), oldest first."""
        ...

    async def idle_threads(self, *, before: float) -> list[ThreadRecord]:
        """Threads that have a container and were last active before ``before``: what the sweeper may delete,
        asked for alone (an index on ``last_active_at``), not every thread at every sweep."""
        ...

    async def threads_with_containers(self, container_ids: Sequence[str]) -> list[ThreadRecord]:
        """The threads that own one of ``container_ids`` (the sweeper's question about the provider's list)."""
        ...

    async def list_files(self, key: ThreadKey) -> list[FileRecord]:
        """The thread's files, oldest first."""
        ...

    async def mark_uploaded(
        self, key: ThreadKey, slack_file_id: str, *, container_id: str, sandbox_path: str, sandbox_file_id: str,
        facts: str = "", read_options: str = "",
    ) -> None:
        """Record that a file now lives in ``container_id`` at ``sandbox_path`` (and how to read it)."""
        ...

    async def mark_refused(self, key: ThreadKey, slack_file_id: str, *, turn_id: str, reason: str) -> None:
        """Record that a turn refused the file, and why."""
        ...

class TurnStore(Protocol):
    """Turns: submitted by the intake, read and finished by the worker, summed for budgets."""

    async def submit_turn(self, turn: NewTurn, *, dedupe_keys: tuple[str, ...], holder: str | None = None,
                          hold_until: float | None = None, inbox_event: str | None = None,
                          alone: bool = False) -> bool:
        """Atomically claim every dedupe key, create the thread row if new, add the files and the queued turn.

        Returns False (and writes nothing) when any key was already claimed: the work is a duplicate. With
        ``holder``, the turn is stored leased to that replica until ``hold_until`` (it greets the turn first).
        With ``inbox_event``, that inbox event is marked done in the same transaction (the turn now stands for it).
        With ``alone``, the turn is added only when its thread has no unfinished turn, else :class:`ThreadBusy`
        is raised and nothing written (checked with the thread's row locked: of two submits racing on replicas,
        one adds its turn).
        """
        ...

    async def get_turn(self, turn_id: str) -> TurnRecord | None:
        """One turn by id."""
        ...

    async def set_status_ts(self, turn_id: str, status_ts: str) -> None:
        """Remember the ts of the turn's status reply."""
        ...

    async def start_turn(self, turn_id: str, *, now: float) -> bool:
        """Mark a queued (or resumed) turn running; False when it already ended (it waited too long)."""
        ...

    async def finish_turn(
        self, turn_id: str, *, status: TurnStatus, now: float, outcome: TurnOutcomeRecord | None = None,
        owner: str | None = None,
    ) -> bool:
        """Mark a turn done or failed with its outcome and free its lease; with ``owner``, only while that replica
        holds the lease of the unfinished turn (False otherwise: another replica took it over)."""
        ...

    async def list_turns(self, key: ThreadKey) -> list[TurnRecord]:
        """The thread's turns, oldest first."""
        ...

    async def spent_since(self, since: float, *, user: str | None = None, channel: str | None = None) -> float:
        """Dollars spent at or after ``since`` (of one user, or in one channel): turns that started then, and digest
        runs that finished then (a digest's spending is its owner's)."""
        ...

    async def unfinished_turns(self) -> list[TurnRecord]:
        """Turns left queued or running (by a crash or a shutdown), oldest first, to resume at start-up."""
        ...

class LoadStore(Protocol):
    """What the fairness caps and the longest wait read and end (``bot.admission``, ``bot.jobs.overdue``)."""

    async def pending_turns(self, *, team: str, user: str, channel: str) -> Pending:
        """Queued plus running turns of ``user`` of ``team``, of ``channel`` and in all."""
        ...

    async def typical_turn_seconds(self, *, since: float) -> float | None:
        """Mean duration of the recent turns that finished after ``since`` (None when none did)."""
        ...

    async def expire_waiting(self, *, before: float, now: float, error: str) -> list[TurnRecord]:
        """End as failed (with ``error``) the turns still queued that were created before ``before``; a turn a
        worker started meanwhile is left alone. Returns the turns that ended, as they were."""
        ...


class TurnQueue(Protocol):
    """The durable queue: the accepted turns, claimed by one replica at a time under a lease."""

    async def claim_turn(self, *, owner: str, now: float, lease_seconds: float, turn_id: str | None = None,
                         holder: str | None = None, status_ts: str | None = None) -> TurnRecord | None:
        """Take the next runnable turn (``turn_id`` alone when given) under ``owner``'s lease for ``lease_seconds``:
        it becomes running (``started_at`` is ``now``: a run starts with its claim) and counts one more attempt.
        Runnable: unfinished, its lease free or expired (or held by ``holder``: a hold handed over to the run in the
        same transaction), no earlier turn of its thread unfinished, no other turn of its thread running under a
        live lease. ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, one ``BEGIN IMMEDIATE`` transaction on SQLite.
        With ``status_ts``, a claimed turn's status reply is recorded too (the ledger's ``status`` part and the
        turn's ``status_ts``, as :meth:`LedgerStore.record_part` would) in the same transaction."""
        ...

    async def renew_turn(self, turn_id: str, *, owner: str, now: float, lease_seconds: float,
                         attempt: int | None = None) -> bool:
        """Extend ``owner``'s lease; False when it no longer holds it (it expired and another replica took it) or,
        with ``attempt``, when the turn was claimed again since that attempt (by this same replica too: a run
        whose lease expired while it was starved must not renew the next run's lease)."""
        ...

    async def hold_turn(self, turn_id: str, *, owner: str, now: float, lease_seconds: float) -> bool:
        """Lease a queued turn nobody holds without running it (its feedback is being shown); False otherwise."""
        ...

    async def release_turn(self, turn_id: str, *, owner: str, refund: bool = False) -> bool:
        """Give ``owner``'s unfinished turn back to the queue (queued, no lease); ``refund`` takes back the
        attempt its claim counted (a graceful shutdown is not a failed run)."""
        ...

    async def queue_depth(self, *, now: float) -> int:
        """Unfinished turns nobody runs under a live lease: waiting for their thread or a free slot."""
        ...

    async def turns_ahead(self, turn_id: str) -> int:
        """How many unfinished turns of the thread go before this one (a running one included)."""
        ...

    async def thread_busy(self, key: ThreadKey, *, before_ts: str, now: float) -> bool:
        """Whether a turn of the thread asked before ``before_ts`` is unfinished, or one runs under a live lease."""
        ...

class LedgerStore(Protocol):
    """The ledger: each part of an answer a turn posted, so a resumed turn never posts it twice."""

    async def record_part(self, turn_id: str, part: str, ref: str, *, now: float) -> bool:
        """Record that the turn posted ``part`` (``ref``: the Slack ts or file ids); False when already recorded.
        Recording ``status`` (the status reply) also sets the turn's ``status_ts``."""
        ...

    async def posted_parts(self, turn_id: str) -> dict[str, str]:
        """What the turn posted so far: part key → Slack ts or file ids."""
        ...

    async def turn_of_part(self, ref: str) -> str | None:
        """The turn that posted the message ``ref`` (a Slack ts), if any."""
        ...


class InboxStore(Protocol):
    """The durable inbox: Slack message events stored before Slack is acknowledged, processed once, replayed when
    the replica that acknowledged one died before processing it."""

    async def add_inbox(self, entry: InboxEntry, *, owner: str, hold_until: float) -> bool:
        """Store the event, claimed by ``owner`` until ``hold_until``; False (nothing written) when its event id is
        stored already (Slack's retry, or the copy another replica took)."""
        ...

    async def add_inbox_batch(self, entries: Sequence[InboxEntry], *, owner: str, hold_until: float) -> list[bool]:
        """:meth:`add_inbox` for several events in one statement: for each, whether it was new (an id twice in
        ``entries`` is new once, the first time)."""
        ...

    async def finish_inbox(self, event_id: str, *, now: float) -> bool:
        """Mark the event processed and blank its words; False when it was done already or is unknown."""
        ...

    async def renew_inbox(self, event_ids: Sequence[str], *, owner: str, until: float) -> int:
        """Extend ``owner``'s claim to ``until`` on those of ``event_ids`` it still holds and are not done (it is
        still handling them); returns how many."""
        ...

    async def claim_inbox(self, *, owner: str, now: float, lease_seconds: float, limit: int = 20) -> list[InboxEntry]:
        """Claim up to ``limit`` events that are not done and whose claim expired (oldest first) for ``owner`` for
        ``lease_seconds``, one more attempt each; two replicas never claim the same event at once."""
        ...

    async def inbox_waiting(self) -> int:
        """Events stored and not processed yet."""
        ...

    async def get_inbox(self, event_id: str) -> tuple[InboxEntry, float | None] | None:
        """One event and when it was processed (None: not yet); None when unknown."""
        ...


class FeedbackStore(Protocol):
    """People's latest 👍/👎 on each answer."""

    async def set_vote(self, turn_id: str, user: str, vote: str, *, now: float) -> str | None:
        """Keep ``vote`` as ``user``'s latest on the turn's answer; returns the vote it replaced (None: first)."""
        ...

    async def votes(self) -> dict[str, int]:
        """How many people's latest vote is each vote (``{"good": 3, "bad": 1}``)."""
        ...

class LeaseStore(Protocol):
    """Named leases: the leader of the periodic jobs."""

    async def acquire_lease(self, name: str, *, owner: str, now: float, seconds: float) -> bool:
        """Take the named lease, or extend it when ``owner`` holds it; False while another owner's is live."""
        ...

    async def release_lease(self, name: str, *, owner: str) -> None:
        """Give the named lease up (only when ``owner`` holds it)."""
        ...

    async def lease_holder(self, name: str, *, now: float) -> str | None:
        """The owner of the named lease while it is live, else None."""
        ...

class DigestStore(Protocol):
    """Scheduled digests and their runs."""

    async def add_digest(self, digest: DigestRecord) -> None:
        """Store a new digest."""
        ...

    async def get_digest(self, digest_id: str) -> DigestRecord | None:
        """One digest by id."""
        ...

    async def list_digests(self, *, team: str | None = None, channel: str | None = None) -> list[DigestRecord]:
        """Digests that are not cancelled (of one channel when given), by next run."""
        ...

    async def due_digests(self, now: float) -> list[DigestRecord]:
        """Active digests whose next run is at or before ``now``."""
        ...

    async def claim_digest(self, digest_id: str, *, due_at: float, next_run_at: float, now: float) -> bool:
        """Take the run due at ``due_at``: one conditional update, so of several replicas exactly one wins.

        Moves ``next_run_at`` to ``next_run_at`` (past every missed slot, so missed runs collapse into one).
        """
        ...

    async def finish_digest_run(
        self, digest_id: str, *, now: float, outcome: str, content_hash: str | None, data_changed_at: float | None,
        failures: int, status: DigestStatus, cost_usd: float | None = None,
    ) -> None:
        """Record a run's outcome (hash and data time kept when ``None``); a run that cost something adds its
        ``cost_usd`` to the owner's and the channel's spending at ``now``."""
        ...

    async def cancel_digest(self, digest_id: str) -> bool:
        """Cancel an active or paused digest; False when there was none to cancel."""
        ...

class HousekeepingStore(Protocol):
    """Retention and offboarding."""

    async def purge_team(self, team: str) -> Removed:
        """Delete everything stored for a workspace (it uninstalled the app): threads, files, turns, digests and
        their runs, dedupe keys, inbox events. One transaction."""
        ...

    async def prune(self, *, before: float) -> Removed:
        """Retention: delete what is older than ``before``: finished turns (their answers and code), digest runs,
        dedupe keys, processed inbox events, cancelled digests, and threads idle since then with no container, no
        unfinished turn and no digest left (their file records with them). One transaction."""
        ...

class Store(Lifecycle, DedupeStore, ThreadStore, TurnStore, LoadStore, TurnQueue, LedgerStore, LeaseStore,
            DigestStore, HousekeepingStore, FeedbackStore, InboxStore, Protocol):
    """Every port: what the composition root builds and hands out. All times are Unix seconds (float)."""


__all__ = [
    "DedupeStore", "DigestRecord", "DigestStatus", "DigestStore", "FeedbackStore", "FileRecord", "HousekeepingStore",
    "InboxEntry", "InboxStore", "LeaseStore", "LedgerStore", "Lifecycle", "LoadStore", "NewTurn", "Pending",
    "Removed", "Store", "ThreadBusy", "ThreadKey", "ThreadRecord", "ThreadStatus", "ThreadStore",
    "TurnOutcomeRecord", "TurnQueue", "TurnRecord", "TurnStatus", "TurnStore",
]
