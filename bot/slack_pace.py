"""One rate-aware path for the bot's Slack Web API calls: bounded bursts, and Slack's ``Retry-After`` obeyed by all.

A flood of events must not become a flood of Slack calls: every call the gateway makes (reactions, status posts and
updates, ephemerals, answers) first takes a slot of its method's family (:data:`IN_FLIGHT` at once), so hundreds of
reactions queue here instead of hitting Slack together. When Slack answers ``429`` for a method, the retry handler
(:class:`PacedRateLimitRetryHandler`, slack_sdk's own handler that sleeps for ``Retry-After`` and retries) also
pauses the whole family until then, so the other callers wait instead of each earning their own ``429``. Slack's
limits are per method and workspace (tiers of roughly 1, 20, 50 and 100+ calls a minute, with bursts tolerated);
the bot does not guess them ahead of time but keeps its bursts small and backs off as told.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

IN_FLIGHT = 8
"""Calls of one method family in flight at once."""
FAMILIES = {"reactions.add": "reactions", "reactions.remove": "reactions", "chat.postMessage": "chat.post",
            "chat.postEphemeral": "chat.post", "chat.update": "chat.update", "chat.startStream": "chat.stream",
            "chat.appendStream": "chat.stream", "chat.stopStream": "chat.stream"}
"""Methods that share a slot pool (the rest each have their own)."""
DEFAULT_RETRY_AFTER = 1.0


def method_of(url: str) -> str:
    """``https://slack.com/api/reactions.add?x=1`` → ``reactions.add``."""
    return url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


class SlackPace:
    """Slots per method family, and pauses that every caller of a family honours."""

    def __init__(self, *, in_flight: int = IN_FLIGHT, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._in_flight = in_flight
        self._monotonic = monotonic
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._paused_until: dict[str, float] = {}

    @staticmethod
    def family(method: str) -> str:
        """The pool ``method`` draws from."""
        return FAMILIES.get(method, method)

    @asynccontextmanager
    async def slot(self, method: str) -> AsyncIterator[None]:
        """Hold one of the family's slots for a call, after any pause Slack asked for has passed."""
        family = self.family(method)
        slots = self._slots.setdefault(family, asyncio.Semaphore(self._in_flight))
        async with slots:
            while (wait := self._paused_until.get(family, 0.0) - self._monotonic()) > 0:
                await asyncio.sleep(wait)
            yield

    def pause(self, method: str, seconds: float) -> None:
        """Slack said ``Retry-After: seconds`` for ``method``: hold its family's new calls until then."""
        family = self.family(method)
        until = self._monotonic() + max(seconds, 0.0)
        self._paused_until[family] = max(self._paused_until.get(family, 0.0), until)

    def paused(self, method: str) -> float:
        """Seconds the family of ``method`` is still paused for (0 when it is not)."""
        return max(0.0, self._paused_until.get(self.family(method), 0.0) - self._monotonic())


def retry_after(response: HttpResponse) -> float:
    """The ``Retry-After`` seconds of a ``429`` (one second when Slack gave none)."""
    for name, values in response.headers.items():
        if name.lower() == "retry-after" and values:
            try:
                return float(values[0])
            except ValueError:
                break
    return DEFAULT_RETRY_AFTER


class PacedRateLimitRetryHandler(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's rate-limit retry (sleep ``Retry-After``, try again), telling :class:`SlackPace` first."""

    def __init__(self, pace: SlackPace, *, max_retry_count: int = 3) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self._pace = pace

    async def prepare_for_next_attempt_async(
        self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        if response is not None:
            self._pace.pause(method_of(request.url), retry_after(response) + random.random() / 10)
        await super().prepare_for_next_attempt_async(state=state, request=request, response=response, error=error)


def retry_handlers(pace: SlackPace) -> list[AsyncRetryHandler]:
    """The retry handlers of the bot's one Web API client: connection errors, 429 (paced), 5xx."""
    return [AsyncConnectionErrorRetryHandler(max_retry_count=2), PacedRateLimitRetryHandler(pace, max_retry_count=3),
            AsyncServerErrorRetryHandler(max_retry_count=2)]
