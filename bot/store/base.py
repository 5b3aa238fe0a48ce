"""The store port: threads, their files, turns and dedupe keys, as values and one async protocol.

The SQL implementation (``bot.store.sql``) serves SQLite by default and PostgreSQL for several replicas. Every
method that must be safe when two replicas race (claiming a dedupe key, submitting a turn) is a single
conditional statement or one transaction, never a read followed by a write.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Literal, Protocol

TurnStatus = Literal["queued", "running", "done", "failed"]
ThreadStatus = Literal["new", "active", "swept", "reset"]


@dataclass(frozen=True, slots=True)
class ThreadKey:
    """A Slack thread: the team, the channel and the ``ts`` of the thread's root message."""

    team: str
    channel: str
    thread_ts: str

    def __str__(self) -> str:
        return f"{self.team}/{self.channel}/{self.thread_ts}"


@dataclass(frozen=True, slots=True)
class ThreadRecord:
    """What the store knows about a thread and its container."""

    key: ThreadKey
    status: ThreadStatus
    created_at: float
    last_active_at: float
    container_id: str | None = None
    container_name: str | None = None
    backend: str | None = None
    """The sandbox backend that owns ``container_id`` (``openai`` or ``local``)."""
    last_response_id: str | None = None


@dataclass(frozen=True, slots=True)
class FileRecord:
    """A Slack file shared in a thread, and where it went in the thread's container."""

    key: ThreadKey
    slack_file_id: str
    name: str
    size: int
    mimetype: str
    filetype: str
    download_url: str
    """``url_private_download`` (or ``url_private``); fetched with the bot token, only from Slack hosts."""
    message_ts: str
    """The message that carried the file."""
    user: str
    created_at: float
    container_id: str | None = None
    """The container the file was uploaded to; differs from the thread's container after a rebuild."""
    sandbox_path: str | None = None
    sandbox_file_id: str | None = None
    facts: str = ""
    """What the checks detected (encoding, delimiter, ...), told to the analysis."""
    refused_reason: str | None = None
    """Why the file was refused while streaming (sign-in page, binary, empty...); later turns skip it."""
    refused_turn: str | None = None
    """The turn that refused it (the same file shared again is tried again)."""
    read_options: str = ""
    """How to read the file (``bot.files.ReadOptions`` as JSON), decided by the stream inspection."""


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One unit of work in a thread: a question, possibly with new files."""

    id: str
    key: ThreadKey
    message_ts: str
    """The ``ts`` of the message that asked (reactions go on it)."""
    user: str
    question: str
    file_ids: tuple[str, ...]
    """Slack file ids that arrived with this message."""
    status: TurnStatus
    created_at: float
    status_ts: str | None = None
    """The ``ts`` of the bot's status reply, updated as the turn progresses."""
    started_at: float | None = None
    finished_at: float | None = None
    response_id: str | None = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    answer: str | None = None
    """The start of the narrative (for the thread summary a rebuilt container starts from)."""
    code: str | None = None
    """The code that ran (truncated), so a rebuilt container can rebuild derived tables."""
    model: str | None = None
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class TurnOutcomeRecord:
    """What a finished turn produced, as the store keeps it."""

    response_id: str | None = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    answer: str | None = None
    code: str | None = None
    model: str | None = None
    cost_usd: float = 0.0


DigestStatus = Literal["active", "paused", "cancelled"]


@dataclass(frozen=True, slots=True)
class DigestRecord:
    """A thread's analysis re-run on a schedule and posted to the channel."""

    id: str
    key: ThreadKey
    """The source thread: its files and its channel."""
    owner: str
    question: str
    cron: str
    tz: str
    label: str
    created_at: float
    next_run_at: float
    status: DigestStatus = "active"
    skip_unchanged: bool = True
    last_run_at: float | None = None
    last_outcome: str | None = None
    last_hash: str | None = None
    last_data_at: float | None = None
    failures: int = 0


@dataclass(frozen=True, slots=True)
class NewTurn:
    """A turn to submit; the store assigns nothing but what it is given."""

    id: str
    key: ThreadKey
    message_ts: str
    user: str
    question: str
    files: tuple[FileRecord, ...]
    created_at: float


@dataclass(frozen=True, slots=True)
class Pending:
    """Queued plus running turns: of one person, of one channel, and in all (what the fairness caps count)."""

    user: int = 0
    channel: int = 0
    total: int = 0


@dataclass(frozen=True, slots=True)
class Removed:
    """Rows a purge or a prune deleted, by kind."""

    threads: int = 0
    files: int = 0
    turns: int = 0
    digests: int = 0
    digest_runs: int = 0
    dedupe_keys: int = 0

    def summary(self) -> str:
        """``2 threads, 5 turns, ...`` (kinds with none left out; ``nothing`` when empty)."""
        parts = [f"{getattr(self, f.name)} {f.name.replace('_', ' ')}" for f in fields(self) if getattr(self, f.name)]
        return ", ".join(parts) or "nothing"


class Store(Protocol):
    """Async persistence for the bot. All times are Unix seconds (float)."""

    async def open(self) -> None:
        """Connect and bring the schema up to date (idempotent)."""
        ...

    async def close(self) -> None:
        """Dispose of connections."""
        ...

    async def ping(self) -> bool:
        """True when the database answers a trivial query."""
        ...

    async def claim(self, key: str, *, now: float) -> bool:
        """Insert a dedupe key; True for the first claimer, False when it was already there."""
        ...

    async def prune_dedupe(self, before: float) -> int:
        """Delete dedupe keys claimed before ``before`` (Unix seconds); returns how many were deleted."""
        ...

    async def submit_turn(self, turn: NewTurn, *, dedupe_keys: tuple[str, ...]) -> bool:
        """Atomically claim every dedupe key, create the thread row if new, add the files and the queued turn.

        Returns False (and writes nothing) when any key was already claimed: the work is a duplicate.
        """
        ...

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
        self, turn_id: str, *, status: TurnStatus, now: float, outcome: TurnOutcomeRecord | None = None
    ) -> None:
        """Mark a turn done or failed with its outcome."""
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

    async def purge_team(self, team: str) -> Removed:
        """Delete everything stored for a workspace (it uninstalled the app): threads, files, turns, digests and
        their runs, dedupe keys. One transaction."""
        ...

    async def prune(self, *, before: float) -> Removed:
        """Retention: delete what is older than ``before``: finished turns (their answers and code), digest runs,
        dedupe keys, cancelled digests, and threads idle since then with no container, no unfinished turn and no
        digest left (their file records with them). One transaction."""
        ...

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
