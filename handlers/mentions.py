"""``app_mention``: a mention in a thread with data is a question; elsewhere the bot explains itself.

The same post also arrives as a ``message`` event; the intake's per-post dedupe key makes only one act. A
mention that carries files is left to the ``file_share`` message, which has the same thread context.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.deps import Deps
from handlers.events import goes_to_intake, to_incoming


class MentionHandlers:
    """Listener for mentions of the bot."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def on_app_mention(self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext,
        request: AsyncBoltRequest,
    ) -> None:
        """Hand the mention to the intake unless the file_share message will."""
        if not goes_to_intake(event, context):
            return
        self._deps.intake.receive(to_incoming(event, body, context, request))


def register(app: AsyncApp, deps: Deps) -> None:
    """Register the mention listener."""
    app.event("app_mention")(MentionHandlers(deps).on_app_mention)
