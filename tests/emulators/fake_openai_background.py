"""Background responses of FakeOpenAI: ``POST /v1/responses`` with ``background: true``, polled, streamed, cancelled.

What the API documents (reference §3.3, ``background``; the Responses "background mode" guide):

- The create call answers at once with the response ``status: "queued"`` (``background: true``); the model runs
  after that, the status moving to ``in_progress`` and then to a terminal one (``completed``, ``failed``,
  ``incomplete``). ``GET /v1/responses/{id}`` shows the status of the moment.
- With ``stream: true`` the create call streams the run's events: ``response.created`` (queued),
  ``response.queued``, ``response.in_progress``, then the output events and the terminal event as a foreground
  stream has them. ``GET /v1/responses/{id}?stream=true&starting_after=N`` streams the same events again from
  the one after sequence number ``N`` (a client that lost its connection resumes).
- ``POST /v1/responses/{id}/cancel`` cancels a queued or in-progress background response: the run stops, the
  status becomes ``cancelled`` and the response is returned; cancelling again returns it unchanged. Cancelling a
  response that already finished, or one not created in background mode, is a 400 ``invalid_request_error``.
  The SDK has no stream event for a cancellation: a stream being followed simply ends.
- With ``background: true`` the ``code_interpreter_call.outputs`` come back ``[]`` even with the include
  (reference §3.7).

The container the response is bound to is never touched by a cancel: it and its files stay.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)

RUNNING = ("queued", "in_progress")
"""The statuses of a background response that a cancel stops."""


@dataclass(slots=True)
class BackgroundRun:
    """One background response: the events it produced so far (for streams that follow or resume) and its task."""

    response_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    ended: bool = False
    task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, event: dict[str, Any]) -> None:
        """Add ``event`` with the next sequence number and wake the streams that follow the run."""
        event["sequence_number"] = len(self.events)
        self.events.append(event)
        self._wake()

    def end(self) -> None:
        """No more events (the run finished or was cancelled)."""
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(self, starting_after: int) -> AsyncIterator[dict[str, Any]]:
        """The events after sequence number ``starting_after``, as they come, until the run ends."""
        index = starting_after + 1
        while True:
            while index < len(self.events):
                yield self.events[index]
                index += 1
            if self.ended:
                return
            await self._changed.wait()


async def serve_stream(request: web.Request, run: BackgroundRun, starting_after: int) -> web.StreamResponse:
    """Stream ``run``'s events after ``starting_after`` as server-sent events, ending when the run ends."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    try:
        async for event in run.follow(starting_after):
            data = json.dumps(event, separators=(",", ":"))
            await resp.write(f"event: {event['type']}\ndata: {data}\n\n".encode())
        await resp.write_eof()
    except ConnectionResetError:  # the client went away (a stopped turn closes its stream): the run goes on
        logger.debug("background stream client went away response=%s", run.response_id)
    return resp


def queued_body(final_shape: dict[str, Any]) -> dict[str, Any]:
    """The response as the create call of a background response shows it: queued, no output, no usage."""
    return {**final_shape, "status": "queued", "background": True, "output": [], "usage": None,
            "completed_at": None, "error": None, "incomplete_details": None}


def background_outputs(final: dict[str, Any]) -> dict[str, Any]:
    """``final`` as a background run ends it: code interpreter outputs ``[]`` whatever was included."""
    for item in final["output"]:
        if item["type"] == "code_interpreter_call":
            item["outputs"] = []
    return {**final, "background": True}


def cancel_refusal(status: str, background: bool) -> str | None:
    """Why a cancel of a response in ``status`` is refused (400), or ``None`` when it goes ahead / is a no-op."""
    if not background:
        return "Only responses created with background=true can be cancelled."
    if status in RUNNING or status == "cancelled":
        return None
    return f"Cannot cancel a {status} response."


Play = Callable[[], Awaitable[dict[str, Any]]]
"""Runs the script and returns the final response body (the model's work)."""


async def run_in_background(run: BackgroundRun, *, body: Callable[[], dict[str, Any]],
                            set_body: Callable[[dict[str, Any]], None], play: Play,
                            emit_output: Callable[[BackgroundRun, dict[str, Any]], Awaitable[None]]) -> None:
    """The model's side of a background response: in progress, the script, the output events, the terminal one.

    A cancel (the task cancelled by the cancel endpoint, which set the status) ends the run without more events.
    """
    try:
        set_body({**body(), "status": "in_progress"})
        await run.send({"type": "response.in_progress", "response": body()})
        final = await play()
        set_body(final)
        await emit_output(run, final)
    except asyncio.CancelledError:
        logger.debug("background response cancelled response=%s", run.response_id)
    finally:
        run.end()
