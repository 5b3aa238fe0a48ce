"""The API's errors: one exception carrying an RFC 9457 problem (HTTP status, a stable ``code``, a human
``detail``), raised by the core and rendered by the HTTP routes and the MCP tools alike."""

from __future__ import annotations

from http import HTTPStatus

from bot.api.models import Problem

UNAUTHORIZED = "unauthorized"
NOT_FOUND = "not_found"
FILE_TOO_LARGE = "file_too_large"
TOO_MANY_FILES = "too_many_files"
UNSUPPORTED_TYPE = "unsupported_type"
UNREADABLE_TABLE = "unreadable_table"
INVALID_REQUEST = "invalid_request"
SESSION_BUSY = "session_busy"
NO_ANGLES = "no_angles"
RATE_LIMITED = "rate_limited"
BUDGET_EXHAUSTED = "budget_exhausted"
ANALYSIS_FAILED = "analysis_failed"
CANCELLED = "cancelled"
NOT_FINISHED = "not_finished"
SHUTTING_DOWN = "shutting_down"


class ApiProblem(Exception):
    """An answer other than success, with what the client needs to act on it."""

    def __init__(self, status: int, code: str, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.retry_after = retry_after

    def problem(self) -> Problem:
        """The problem document."""
        return Problem(title=HTTPStatus(self.status).phrase, status=self.status, code=self.code, detail=self.detail)

    def headers(self) -> dict[str, str]:
        """``Retry-After`` when the client should wait."""
        return {} if self.retry_after is None else {"Retry-After": str(max(1, self.retry_after))}


def not_found(what: str = "session") -> ApiProblem:
    """404: unknown, or another key's (the two are not told apart)."""
    return ApiProblem(404, NOT_FOUND, f"There is no such {what} for this API key.")
