"""The analyst port: something that answers a question about the files in a thread's container.

Engines (``responses`` over the Responses API and code_interpreter, ``chat_tools`` over Chat Completions and the
local sandbox, ``offline`` with no model) implement :class:`Analyst`. The turn worker computes which files the
run created by diffing the container's file list; an analyst only reports what its engine saw.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from bot.files.options import ReadOptions

logger = logging.getLogger(__name__)

Progress = Callable[[str], Awaitable[None]]
"""A callback the engine may call with a short status line (\"running code\", \"writing the answer\")."""

TextSink = Callable[[str], Awaitable[None]]
"""A callback an engine that streams calls with each piece of the answer's text as the model writes it."""


DEFAULT_QUESTION = (
    "Give me a first look at this data: what it contains, the main patterns, trends and anything unusual, "
    "with the charts that show them best."
)
"""The question of a turn whose message had no text: a first look at the data."""


@dataclass(frozen=True, slots=True)
class DataFile:
    """A data file the thread has loaded into its container, as the analysis should know it."""

    name: str
    """The original name the user uploaded, e.g. ``sales.csv``."""
    path: str
    """Where the file is inside the container."""
    size: int
    facts: str = ""
    """What the bot detected (encoding, delimiter, ...), said to the model so the first code reads it right."""
    read_options: ReadOptions | None = None
    """How to read the file (the pandas call the facts quote); ``None`` for a file stored before it was kept."""

    @property
    def reading(self) -> ReadOptions:
        """:attr:`read_options`, or what the name alone suggests when none were kept."""
        return self.read_options or ReadOptions.for_name(self.name)


@dataclass(frozen=True, slots=True)
class AnalysisRequest:
    """One question asked in a thread."""

    question: str
    container_id: str
    files: tuple[DataFile, ...]
    new_files: tuple[str, ...] = ()
    """Names of files added to the container for this turn (the analysis should look at them first)."""
    previous_response_id: str | None = None
    """The response this turn continues; ``None`` starts a fresh chain."""
    history: str = ""
    """A compact summary of the thread so far, sent when a chain restarts (rebuilt container)."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one analysis."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    """What an analysis produced."""

    text: str
    """The narrative in Markdown, as the model wrote it."""
    response_id: str | None = None
    """The id to chain the next turn on (``previous_response_id``); ``None`` when the engine has no chain."""
    code: tuple[str, ...] = ()
    """The code that ran, in order."""
    cited_file_ids: tuple[str, ...] = ()
    """Container file ids the answer cited (the container's file list is the truth; these only help order)."""
    usage: Usage = field(default_factory=Usage)
    model: str = ""


class AnalysisFailed(Exception):
    """The engine ran but could not produce an answer (model error, failed or incomplete response)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Analyst(Protocol):
    """Answers a question with code that runs in the thread's container."""

    async def run(self, request: AnalysisRequest, *, progress: Progress | None = None,
                  on_text: TextSink | None = None) -> AnalysisResult:
        """Answer ``request``; raise ``bot.sandbox.base.SandboxError`` subclasses for container trouble.

        ``progress`` (optional) is awaited with short status lines while the engine works; ``on_text`` (optional)
        with the answer's text as the model writes it (an engine may also leave it unused: the caller then
        shows the result's text whole).
        """
        ...


async def report_text(on_text: TextSink | None, delta: str) -> None:
    """Call ``on_text``; a failing callback never breaks the analysis."""
    if on_text is None:
        return
    try:
        await on_text(delta)
    except Exception:
        logger.warning("text callback failed", exc_info=True)


async def report_progress(progress: Progress | None, line: str) -> None:
    """Call ``progress``; a failing callback never breaks the analysis."""
    if progress is None:
        return
    try:
        await progress(line)
    except Exception:
        logger.warning("progress callback failed line=%r", line, exc_info=True)
