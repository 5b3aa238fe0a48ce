"""The store's tables (SQLAlchemy Core) and the ordered list of schema migrations ``SqlStore.open`` applies.

Every time is a float of Unix seconds. Strings are ``Text`` (Slack ids, URLs and model errors have no useful
bound). The applied versions live in ``schema_version``; ``open()`` applies the missing steps in order, each in the
same transaction as its version row, under a lock (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL)
so replicas starting together migrate once.

To change the schema: append a ``Migration`` with the next version whose step alters what exists (never edit an
applied step). Version 1 creates the tables from their current definitions, so a later step must be idempotent:
adding nullable columns goes through ``_add_missing_columns``, which adds only what a database lacks (an old
database gets the columns, a new one already has them). A step that is not additive (a type change, a drop) must
first freeze version 1 with its own copy of the version-1 tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    inspect,
    text,
)
from sqlalchemy.schema import CreateColumn

METADATA = MetaData()

schema_version = Table(
    "schema_version",
    METADATA,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", Float, nullable=False),
)

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
    # version 8: the durable queue: the replica that holds the turn, until when, and how many runs it had
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
    # version 8: every part of an answer a turn posted (narrative messages, files, status, reactions), once
    Column("turn_id", Text, nullable=False),
    Column("part", Text, nullable=False),
    Column("ref", Text, nullable=False),  # the Slack ts or file ids of what was posted
    Column("posted_at", Float, nullable=False),
    PrimaryKeyConstraint("turn_id", "part", name="pk_ledger"),
    ForeignKeyConstraint(["turn_id"], ["turns.id"], name="fk_ledger_turn", ondelete="CASCADE"),
)

leases = Table(
    "leases",
    METADATA,
    # version 8: named leases (the leader of the periodic jobs): who holds one, until when
    Column("name", Text, primary_key=True),
    Column("owner", Text, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("acquired_at", Float, nullable=False),
)

VERSION_1_TABLES = (threads, files, turns, dedupe)


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``apply`` runs on a synchronous connection inside the migration transaction."""

    version: int
    description: str
    apply: Callable[[Connection], None]


def _create_version_1(conn: Connection) -> None:
    METADATA.create_all(conn, tables=list(VERSION_1_TABLES), checkfirst=True)


def _add_missing_columns(table: Table) -> Callable[[Connection], None]:
    """A step that adds the columns of ``table`` the database lacks (all nullable, so ``ADD COLUMN`` works on
    SQLite and PostgreSQL alike); a database created after the columns were defined needs nothing."""

    def apply(conn: Connection) -> None:
        present = {c["name"] for c in inspect(conn).get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                ddl = CreateColumn(column).compile(dialect=conn.dialect)
                conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))

    return apply


def _create_indexes(table: Table) -> Callable[[Connection], None]:
    """A step that creates the indexes of ``table`` a database lacks (one created after they were defined has them)."""

    def apply(conn: Connection) -> None:
        for index in table.indexes:
            index.create(conn, checkfirst=True)

    return apply


def _create(table: Table) -> Callable[[Connection], None]:
    """A step that creates ``table`` (and its indexes) when missing."""

    def apply(conn: Connection) -> None:
        table.create(conn, checkfirst=True)

    return apply


def _version_8(conn: Connection) -> None:
    _add_missing_columns(turns)(conn)
    _create(ledger)(conn)
    _create(leases)(conn)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(version=1, description="create threads, files, turns, dedupe", apply=_create_version_1),
    Migration(version=2, description="turns: answer, code, model, cost_usd", apply=_add_missing_columns(turns)),
    Migration(version=3, description="create digests", apply=_create(digests)),
    Migration(version=4, description="files: refused_reason, refused_turn", apply=_add_missing_columns(files)),
    Migration(version=5, description="create digest_runs", apply=_create(digest_runs)),
    Migration(version=6, description="threads: indexes on last_active_at and container_id",
              apply=_create_indexes(threads)),
    Migration(version=7, description="files: read_options", apply=_add_missing_columns(files)),
    Migration(version=8, description="turns: leases and attempts; create ledger, leases", apply=_version_8),
)
"""Ordered by version, starting at 1, without gaps."""

LATEST_VERSION = MIGRATIONS[-1].version
