"""What the turn worker is configured with: :class:`WorkerConfig`, the limits it posts within, and the names it
gives containers and the history it gives a fresh response chain."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from bot.analysts.base import DEFAULT_QUESTION
from bot.config import Settings
from bot.outputs import MB
from bot.store.base import ThreadKey, TurnRecord

MAX_POSTED_FILES = 10
MAX_POSTED_FILE_BYTES = 50 * MB
CONTAINER_NAME_MAX = 64
UPLOAD_ATTEMPTS = 3
"""Times one file is streamed into the sandbox when the provider refuses the upload for now."""
ANSWER_KEPT = 600
"""Characters of each answer kept for the thread summary."""
CODE_KEPT = 6000
"""Characters of each turn's code kept (the end: where derived tables are built)."""
HISTORY_TURNS = 8


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """The settings the worker needs."""

    container_prefix: str
    container_idle_minutes: int
    max_concurrent_turns: int
    turn_timeout: float
    prices: dict[str, tuple[float, float]] = field(default_factory=dict)
    session_usd: float = 0.0
    """Price of one hosted container session (0 for the local sandbox)."""
    cost_footer: bool = True
    stream_answers: bool = False
    """Stream each answer into its thread (``DATASTORY_STREAM_ANSWERS``; :mod:`bot.turns.streaming`)."""
    capacity_retry_seconds: float = 5.0
    """First wait when the provider refuses a new container (doubles, with jitter, up to a minute)."""
    max_output_bytes: int = 100 * MB
    """Bytes of the files the code wrote that one answer reads and attaches (``DATASTORY_MAX_OUTPUT_MB``)."""
    lease_seconds: float = 30.0
    """How long a replica's hold on a turn lasts unless renewed (``DATASTORY_LEASE_SECONDS``)."""
    max_attempts: int = 2
    """Runs a turn may take before it gets a failure note instead (``DATASTORY_MAX_ATTEMPTS``)."""
    agent_sessions: bool = True
    """Keep the threads' Slack agent session statuses (``DATASTORY_AGENT_SESSIONS``, :mod:`bot.agent_sessions`)."""


def worker_config(settings: Settings, sandbox_kind: str, **overrides: Any) -> WorkerConfig:
    """The worker's view of the settings (hosted container sessions cost money; local kernels do not)."""
    values: dict[str, Any] = {
        "container_prefix": settings.container_prefix,
        "container_idle_minutes": settings.container_idle_minutes,
        "max_concurrent_turns": settings.max_concurrent_turns,
        "turn_timeout": settings.turn_timeout_seconds,
        "prices": dict(settings.prices),
        "session_usd": settings.container_session_usd.get(settings.container_memory, 0.0)
        if sandbox_kind == "openai" else 0.0,
        "cost_footer": settings.cost_footer,
        "stream_answers": settings.stream_answers,
        "capacity_retry_seconds": settings.capacity_retry_seconds,
        "max_output_bytes": settings.max_output_mb * MB,
        "lease_seconds": settings.lease_seconds,
        "max_attempts": settings.max_attempts,
        "agent_sessions": settings.agent_sessions,
    }
    values.update(overrides)
    return WorkerConfig(**values)


def container_name(prefix: str, key: ThreadKey, *, max_len: int = CONTAINER_NAME_MAX) -> str:
    """``{prefix}{team}-{channel}-{thread_ts}``; a long name is shortened with a hash, keeping the prefix."""
    name = f"{prefix}{key.team}-{key.channel}-{key.thread_ts}"
    if len(name) <= max_len:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return name[: max_len - len(digest) - 1] + "-" + digest


def thread_summary(turns: list[TurnRecord]) -> str:
    """Earlier questions, short answers and the code that ran, so a fresh chain in a rebuilt container can
    rebuild its state (derived tables, cleaned columns) instead of starting from nothing."""
    parts = []
    for n, t in enumerate(turns, 1):
        answer = " ".join((t.answer or "").split())[:300]
        part = f"Turn {n}. Question: {t.question or DEFAULT_QUESTION}\nAnswer (start): {answer or '(none kept)'}"
        if t.code:
            part += f"\nCode that ran:\n```python\n{t.code[-1500:]}\n```"
        parts.append(part)
    return "\n\n".join(parts)
