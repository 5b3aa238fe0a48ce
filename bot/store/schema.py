"""The store's tables (SQLAlchemy Core), as the code reads and writes them.

Every time is a float of Unix seconds. Strings are ``Text`` (Slack ids, URLs and model errors have no useful
bound). These definitions never create anything: the schema is built by the Alembic revisions in
``bot.store.migrations`` (see ``bot.store.revisions``). To change it, change a table here AND add the revision that
makes the same change; ``tests/unit/test_migrations.py`` compares the head revision with these tables.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)

METADATA = MetaData()

threads = Table(
    "threads",
    METADATA,
    Column("team", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("thread_ts", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_active_at", Float, nullable=False),
    Column("container_id", Text, nullable=True),
    Column("container_name", Text, nullable=True),
    Column("backend", Text, nullable=True),
    Column("last_response_id", Text, nullable=True),
    # revision 0009: where the thread came from: NULL or 'slack' for Slack threads, 'api' for sessions of the HTTP API
    Column("source", Text, nullable=True),
    PrimaryKeyConstraint("team", "channel", "thread_ts", name="pk_threads"),
    # version 6: the sweeper asks for idle threads and for the owners of listed containers, not for every thread
    Index("ix_threads_last_active", "last_active_at"),
    Index("ix_threads_container", "container_id"),
)

files = Table(
    "files",
    METADATA,
    Column("team", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("thread_ts", Text, nullable=False),
    Column("slack_file_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mimetype", Text, nullable=False),
    Column("filetype", Text, nullable=False),
    Column("download_url", Text, nullable=False),
    Column("message_ts", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("container_id", Text, nullable=True),
    Column("sandbox_path", Text, nullable=True),
    Column("sandbox_file_id", Text, nullable=True),
    Column("facts", Text, nullable=False, default=""),
    # version 4: a file refused while streaming (sign-in page, binary, empty...): why, and by which turn
    Column("refused_reason", Text, nullable=True),
    Column("refused_turn", Text, nullable=True),
    # version 6: how to read the file (bot.files.ReadOptions as JSON), decided once by the stream inspection
    Column("read_options", Text, nullable=True),
    PrimaryKeyConstraint("team", "channel", "thread_ts", "slack_file_id", name="pk_files"),
    ForeignKeyConstraint(
        ["team", "channel", "thread_ts"], ["threads.team", "threads.channel", "threads.thread_ts"],
        name="fk_files_thread", ondelete="CASCADE",
    ),
)

turns = Table(
    "turns",
    METADATA,
    Column("id", Text, primary_key=True),
    Column("team", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("thread_ts", Text, nullable=False),
    Column("message_ts", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("question", Text, nullable=False),
    Column("file_ids", Text, nullable=False, default="[]"),  # a JSON list of Slack file ids
    Column("status", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("status_ts", Text, nullable=True),
    Column("started_at", Float, nullable=True),
    Column("finished_at", Float, nullable=True),
    Column("response_id", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("input_tokens", BigInteger, nullable=False, default=0),
    Column("output_tokens", BigInteger, nullable=False, default=0),
    # version 2: what the turn produced, for the thread summary after a rebuild, and what it cost
    Column("answer", Text, nullable=True),
    Column("code", Text, nullable=True),
    Column("model", Text, nullable=True),
    Column("cost_usd", Float, nullable=True),
    # revision 0008: the durable queue: the replica that holds the turn, until when, and how many runs it had
    Column("lease_owner", Text, nullable=True),
    Column("lease_expires_at", Float, nullable=True),
    Column("attempts", Integer, nullable=True),
    ForeignKeyConstraint(
        ["team", "channel", "thread_ts"], ["threads.team", "threads.channel", "threads.thread_ts"],
        name="fk_turns_thread", ondelete="CASCADE",
    ),
    Index("ix_turns_status_created", "status", "created_at"),
    Index("ix_turns_thread", "team", "channel", "thread_ts"),
)

dedupe = Table(
    "dedupe",
    METADATA,
    Column("key", Text, primary_key=True),
    Column("created_at", Float, nullable=False),
    Index("ix_dedupe_created_at", "created_at"),
)

digests = Table(
    "digests",
    METADATA,
    Column("id", Text, primary_key=True),
    Column("team", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("thread_ts", Text, nullable=False),
    Column("owner", Text, nullable=False),
    Column("question", Text, nullable=False),
    Column("cron", Text, nullable=False),
    Column("tz", Text, nullable=False),
    Column("label", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("next_run_at", Float, nullable=False),
    Column("status", Text, nullable=False),  # active | paused | cancelled
    Column("skip_unchanged", Integer, nullable=False, default=1),
    Column("last_run_at", Float, nullable=True),
    Column("last_outcome", Text, nullable=True),
    Column("last_hash", Text, nullable=True),
    Column("last_data_at", Float, nullable=True),  # when the data last changed (for "no new data since ...")
    Column("failures", Integer, nullable=False, default=0),
    Index("ix_digests_due", "status", "next_run_at"),
    Index("ix_digests_channel", "team", "channel"),
)

digest_runs = Table(
    "digest_runs",
    METADATA,
    # version 5: what each digest run cost, so scheduled runs count against the daily budgets like questions
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("digest_id", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("owner", Text, nullable=False),
    Column("ran_at", Float, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Index("ix_digest_runs_ran_at", "ran_at"),
)

ledger = Table(
    "ledger",
    METADATA,
    # revision 0008: every part of an answer a turn posted (narrative messages, files, status, reactions), once
    Column("turn_id", Text, nullable=False),
    Column("part", Text, nullable=False),
    Column("ref", Text, nullable=False),  # the Slack ts or file ids of what was posted
    Column("posted_at", Float, nullable=False),
    PrimaryKeyConstraint("turn_id", "part", name="pk_ledger"),
    ForeignKeyConstraint(["turn_id"], ["turns.id"], name="fk_ledger_turn", ondelete="CASCADE"),
    Index("ix_ledger_ref", "ref"),  # revision 0009: which answer a message belongs to (a 🗑️ on it)
)

feedback = Table(
    "feedback",
    METADATA,
    # revision 0009: each person's latest 👍/👎 on an answer
    Column("turn_id", Text, nullable=False),
    Column("user_id", Text, nullable=False),
    Column("vote", Text, nullable=False),
    Column("voted_at", Float, nullable=False),
    PrimaryKeyConstraint("turn_id", "user_id", name="pk_feedback"),
    ForeignKeyConstraint(["turn_id"], ["turns.id"], name="fk_feedback_turn", ondelete="CASCADE"),
)

leases = Table(
    "leases",
    METADATA,
    # revision 0008: named leases (the leader of the periodic jobs): who holds one, until when
    Column("name", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("acquired_at", Float, nullable=False),
)

api_keys = Table(
    "api_keys",
    METADATA,
    # revision 0009: keys of the HTTP API (`datastory api-key create`): only the SHA-256 of the secret part is kept
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("secret_sha256", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("last_used_at", Float, nullable=True),
)

inbox = Table(
    "inbox",
    METADATA,
    # revision 0011: the durable inbox: each Slack message event stored before Slack is acknowledged, by event id
    Column("event_id", Text, primary_key=True),
    Column("team", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("ts", Text, nullable=False),
    Column("envelope", Text, nullable=False),  # JSON: thread_ts, user, user_team, bot_user_id, file_ids (ids only)
    Column("text", Text, nullable=True),  # the message's words, until the event is processed (NULL then)
    Column("received_at", Float, nullable=False),
    Column("done_at", Float, nullable=True),  # processed (a turn stored, a reply posted, or nothing to do)
    Column("claimed_by", Text, nullable=True),  # the replica processing it (the receiver first)
    Column("claimed_until", Float, nullable=False),  # after this, another replica replays it
    Column("attempts", Integer, nullable=False, default=0),  # replays
    Index("ix_inbox_pending", "done_at", "claimed_until"),
)
