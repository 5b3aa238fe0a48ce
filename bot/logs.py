"""Logging for the command line: text or JSON lines, ids from context, secrets redacted, quiet third-party clients.

``DATASTORY_LOG_FORMAT=text`` (the default) writes one human line per record; ``json`` writes one JSON object per
line (``time``, ``level``, ``logger``, ``message``, the ids of the work being done and any structured fields).
The ids (``team``, ``channel``, ``thread_ts``, ``turn``) come from context variables that the intake and the turn
worker bind (:func:`bind`) at the start of each task, so every line of a turn carries them without being passed
around. Each turn ends with one summary line (:func:`turn_summary`): outcome, duration, tokens and cost.

Secrets never reach the log: the bot logs ids and error kinds, never tokens, file contents or answers; the SDKs
log request details at DEBUG, so they stay at WARNING unless the bot itself runs at DEBUG; and as a last guard
every formatted line has anything shaped like a Slack token, an OpenAI key or a bearer credential replaced by
``[redacted]``.
"""

from __future__ import annotations

import logging
import logging.config
import re
from contextvars import ContextVar, Token
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

NOISY = ("slack_sdk", "slack_bolt", "openai", "httpx", "httpx2", "httpcore", "aiohttp.access", "asyncio",
         "alembic")  # alembic: bot.store.migrations.env logs each revision applied itself
CONTEXT_KEYS = ("team", "channel", "thread_ts", "turn")
"""The ids :func:`bind` takes (``thread_ts``, not ``thread``: a log record's ``thread`` is the OS thread's id)."""

_CONTEXT: ContextVar[tuple[tuple[str, str], ...]] = ContextVar("datastory_log_context", default=())
SECRET = re.compile(r"\b(?:xox[abeoprs]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|sk-[A-Za-z0-9_-]{8,})"
                    r"|(?<=Bearer )[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with anything shaped like a token, a key or a bearer credential replaced."""
    return SECRET.sub("[redacted]", text)


def bind(**ids: str | None) -> Token[tuple[tuple[str, str], ...]]:
    """Add ids (``team=``, ``channel=``, ``thread_ts=``, ``turn=``) to every log line of the current task from now
    on; returns the token that :func:`unbind` takes (a task that ends may simply drop it)."""
    unknown = ids.keys() - set(CONTEXT_KEYS)
    if unknown:
        raise ValueError(f"unknown log context ids: {sorted(unknown)}")
    merged = dict(_CONTEXT.get())
    merged.update({k: v for k, v in ids.items() if v})
    return _CONTEXT.set(tuple(merged.items()))


def unbind(token: Token[tuple[tuple[str, str], ...]]) -> None:
    """Restore the ids as they were before :func:`bind`."""
    _CONTEXT.reset(token)


def context() -> dict[str, str]:
    """The ids bound in the current task."""
    return dict(_CONTEXT.get())


class _ContextFilter(logging.Filter):
    """Copies the bound ids onto each record (``record.team``...), where the JSON formatter finds them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _CONTEXT.get():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _JsonFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def make_handler(fmt: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """A stream handler (stderr by default) writing ``text`` or ``json`` lines, with the ids and the redaction."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(_ContextFilter())
    if fmt == "json":
        handler.setFormatter(_JsonFormatter(
            "%(levelname)s %(name)s %(message)s", timestamp="time",
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "traceback"},
        ))
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger (called by the CLI only); an embedding program's handlers are left alone."""
    root = logging.getLogger()
    if root.handlers:
        return
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    root.addHandler(make_handler(fmt))
    root.setLevel(numeric)
    for name in NOISY:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING) if numeric > logging.DEBUG else numeric)


def turn_summary(logger: logging.Logger, *, outcome: str, seconds: float, input_tokens: int = 0,
                 output_tokens: int = 0, cost_usd: float | None = None, files: int = 0) -> None:
    """The one line that ends every turn: outcome, duration, tokens and cost (also as JSON fields)."""
    cost = "unknown" if cost_usd is None else f"{cost_usd:.4f}"
    logger.info("turn finished outcome=%s seconds=%.1f in_tokens=%d out_tokens=%d cost=%s files=%d", outcome,
                seconds, input_tokens, output_tokens, cost, files,
                extra={"outcome": outcome, "duration_s": round(seconds, 3), "input_tokens": input_tokens,
                       "output_tokens": output_tokens, "cost_usd": cost_usd, "files": files})
