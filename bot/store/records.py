"""The store's values: threads, their files, turns, digests, as frozen dataclasses (the ports: ``bot.store.base``).

The SQL implementation (``bot.store.sql``) serves SQLite by default and PostgreSQL for several replicas. Every
method that must be safe when two replicas race (claiming a dedupe key, submitting a turn) is a single
conditional statement or one transaction, never a read followed by a write.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

TurnStatus = Literal["queued", "running", "done", "failed"]
ThreadStatus = Literal["new", "active", "swept", "reset"]


class ThreadBusy(Exception):
    """``submit_turn(..., alone=True)``: the thread has an unfinished turn; nothing was written."""


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
    source: str = "slack"
    """``slack`` for a Slack thread, ``api`` for a session of the HTTP API (or its MCP server)."""


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
    attempts: int = 0
    """Runs the turn was claimed for (a claim counts one; a run given back at shutdown gives it back)."""
    lease_owner: str | None = None
    """The replica holding the turn (greeting it, or running it) until ``lease_expires_at``."""
    lease_expires_at: float | None = None


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
class InboxEntry:
    """A Slack message event as the durable inbox keeps it until it is processed: ids, the words, file ids (never
    the files' contents). ``event_id`` is Slack's, the same on every delivery of the event."""

    event_id: str
    team: str
    channel: str
    ts: str
    user: str
    text: str
    """The message's words: kept only until the event is processed (then blanked)."""
    thread_ts: str | None = None
    file_ids: tuple[str, ...] = ()
    user_team: str = ""
    bot_user_id: str = ""
    received_at: float = 0.0
    attempts: int = 0
    """Times the event was replayed (claimed from the inbox by a replica other than the receiver's first pass)."""


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
    inbox_events: int = 0
    stop_leases: int = 0
    """``stop/<turn id>`` leases of turns that ended (:mod:`bot.turns.stopping`)."""

    def summary(self) -> str:
        """``2 threads, 5 turns, ...`` (kinds with none left out; ``nothing`` when empty)."""
        parts = [f"{getattr(self, f.name)} {f.name.replace('_', ' ')}" for f in fields(self) if getattr(self, f.name)]
        return ", ".join(parts) or "nothing"
