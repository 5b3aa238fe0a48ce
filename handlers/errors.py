"""The global error handler: an exception in a listener is logged once, with its event context, never its payload."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.deps import Deps

logger = logging.getLogger(__name__)


async def on_error(error: Exception, body: dict[str, Any]) -> None:
    """Log a listener failure with the event's type and channel (the payload may hold user data)."""
    event = body.get("event") if isinstance(body.get("event"), dict) else {}
    logger.error("listener failed type=%s channel=%s error=%s", (event or {}).get("type"),
                 (event or {}).get("channel"), type(error).__name__, exc_info=error)


def register(app: AsyncApp, deps: Deps) -> None:
    """Register the error handler."""
    app.error(on_error)
