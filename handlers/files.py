"""Files shared in Slack: ``message`` events of subtype ``file_share`` start an analysis; ``file_shared`` is acked.

``file_shared`` carries only a file id and no thread, and every share the bot can see also arrives as a
``message``/``file_share`` (which has the thread), so ``file_shared`` is acknowledged and left alone.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.deps import Deps
from handlers.events import goes_to_intake, to_incoming


class FileHandlers:
    """Listeners for shared files."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def on_file_share(self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext,
        request: AsyncBoltRequest,
    ) -> None:
        """A message with files: hand it to the intake."""
        if not goes_to_intake(event, context):
            return
        self._deps.intake.receive(to_incoming(event, body, context, request))

    async def on_file_shared(self, event: dict[str, Any]) -> None:
        """Acknowledged only: the matching ``message``/``file_share`` event does the work."""


def register(app: AsyncApp, deps: Deps) -> None:
    """Register the file listeners."""
    handlers = FileHandlers(deps)
    app.event({"type": "message", "subtype": "file_share"})(handlers.on_file_share)
    app.event("file_shared")(handlers.on_file_shared)
