"""Plain messages: a reply in a thread that has data is a follow-up question; anything else is left alone."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.deps import Deps
from handlers.events import is_from_a_bot, to_incoming

logger = logging.getLogger(__name__)


class ThreadHandlers:
    """Listener for messages without a subtype."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def on_message(self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> None:
        """Hand user messages to the intake (which ignores those outside threads with data)."""
        if is_from_a_bot(event, context):
            return
        outcome = await self._deps.intake.on_message(to_incoming(event, body, context))
        if outcome != "ignored":
            logger.info("message channel=%s ts=%s outcome=%s", event.get("channel"), event.get("ts"), outcome)


def register(app: AsyncApp, deps: Deps) -> None:
    """Register the plain-message listener (``subtype: None`` matches only messages without a subtype)."""
    app.event({"type": "message", "subtype": None})(ThreadHandlers(deps).on_message)
