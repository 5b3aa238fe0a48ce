"""What the thread is told when something fails: one table from error types to messages, each with a reference.

Users never see ``str(exc)`` of an unexpected error or a stack trace; they see a sentence that says what
happened and what they can do, and a short reference id that is also in the log line of the failure.
"""

from __future__ import annotations

import secrets

from bot.analysts.base import AnalysisFailed
from bot.files import FileRejected
from bot.poster import FileAccessDenied, ForeignFileHost, SlackError
from bot.sandbox.base import (
    ContainerExpired,
    ContainerNotFound,
    SandboxError,
    SandboxSetupError,
    SandboxTimeout,
    SandboxUnavailable,
)
from bot.slack_text import mention


class TurnTimeout(Exception):
    """A whole turn took longer than ``DATASTORY_TURN_TIMEOUT_SECONDS``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"turn took longer than {seconds:.0f} s")
        self.seconds = seconds


class AttemptsExhausted(Exception):
    """A turn's runs ended without an answer ``attempts`` times (crashes, lost leases): it is not run again."""

    def __init__(self, attempts: int) -> None:
        super().__init__(f"{attempts} runs did not end")
        self.attempts = attempts


class TurnStopped(Exception):
    """Someone stopped the turn while it was analysing (``stop`` in the thread, ``/datastory stop``)."""

    def __init__(self, by: str) -> None:
        super().__init__(f"stopped by {by}")
        self.by = by


def new_ref() -> str:
    """A short reference id to quote in the thread and in the log."""
    return secrets.token_hex(3)


def describe(exc: BaseException) -> str:
    """The sentence the thread gets for ``exc`` (without the reference id)."""
    if isinstance(exc, TurnStopped):
        return (f"Stopped by {mention(exc.by)}: the running code was interrupted. The data and the variables are "
                "kept; ask again, or ask something else.")
    if isinstance(exc, AttemptsExhausted):
        return (f"I started on this question {exc.attempts} times and each run was cut short (the bot restarted or "
                "crashed), so I stopped trying. Ask again to start over.")
    if isinstance(exc, TurnTimeout | SandboxTimeout):
        limit = f" {exc.seconds:.0f} s" if isinstance(exc, TurnTimeout) else " the time limit"
        return f"The analysis took longer than{limit} and was stopped. Try a narrower question."
    if isinstance(exc, SandboxSetupError):
        return (f"The code sandbox cannot run on the bot's machine: a local setup problem, not an outage. {exc} "
                "Your files are kept: ask again once it is fixed (`datastory doctor` checks it).")
    if isinstance(exc, SandboxUnavailable):
        return ("The code sandbox is not taking work right now (rate limit or outage). "
                "Your files are kept: ask again in a few minutes.")
    if isinstance(exc, ContainerNotFound | ContainerExpired):
        return "The workspace for this thread expired and could not be rebuilt. Ask again to start a fresh one."
    if isinstance(exc, AnalysisFailed):
        return f"The model could not finish the analysis: {exc.reason}"
    if isinstance(exc, FileRejected):
        return exc.message
    if isinstance(exc, FileAccessDenied):
        return ("Slack served its sign-in page instead of the file: the app needs the `files:read` scope, "
                "and the file must be shared in a conversation I'm in.")
    if isinstance(exc, ForeignFileHost):
        return "The file is hosted outside Slack, so I did not download it with my token."
    if isinstance(exc, SlackError):
        return f"Slack refused a request (`{exc.code}`)."
    return "Something went wrong on my side."


def failure_text(exc: BaseException, ref: str) -> str:
    """The full failure line for the thread: the description and the reference id."""
    return f":warning: {describe(exc)} (ref `{ref}`)"


def outcome_of(exc: BaseException) -> str:
    """The outcome a failed turn is counted and logged under: ``refused`` (the files), ``timeout``,
    ``unavailable`` (the provider refuses work for now), ``setup`` (a local setup problem), or ``failed``."""
    if isinstance(exc, TurnTimeout | SandboxTimeout):
        return "timeout"
    if isinstance(exc, FileRejected | FileAccessDenied | ForeignFileHost):
        return "refused"
    if isinstance(exc, SandboxUnavailable):
        return "unavailable"
    if isinstance(exc, SandboxSetupError):
        return "setup"
    if isinstance(exc, AttemptsExhausted):
        return "exhausted"
    if isinstance(exc, TurnStopped):
        return "stopped"
    return "failed"


def is_expected(exc: BaseException) -> bool:
    """Whether the thread's message fully explains the failure (a refused file, a time limit, a provider, Slack,
    model or sandbox set-up problem): logged at INFO without a stack trace, which only a bug deserves (the
    traceback still comes with ``DATASTORY_LOG_LEVEL=DEBUG``)."""
    return isinstance(exc, TurnTimeout | SandboxError | FileRejected | SlackError | AnalysisFailed | AttemptsExhausted
                      | TurnStopped)
