"""Plain messages: a reply in a thread that has data is a follow-up question; anything else is left alone."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.deps import Deps
from handlers.events import goes_to_intake, to_incoming


class ThreadHandlers:
    """Listener for messages without a subtype."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def on_message(self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext,
        request: AsyncBoltRequest,
    ) -> None:
        """Hand user messages to the intake (which ignores those outside threads with data)."""
        if not goes_to_intake(event, context):
            return
        self._deps.intake.receive(to_incoming(event, body, context, request))


def register(app: AsyncApp, deps: Deps) -> None:
    """Register the plain-message listener (``subtype: None`` matches only messages without a subtype)."""
    app.event({"type": "message", "subtype": None})(ThreadHandlers(deps).on_message)
