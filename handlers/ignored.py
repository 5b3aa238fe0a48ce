"""Events that need no work still get a 200: Bolt answers 404 to events without a listener, and Slack retries.

Registered last, so it only sees what no other listener took: edits, deletions, other bots' messages, channel
joins, and any event type the manifest may subscribe to in the future.
"""

from __future__ import annotations

import re

from slack_bolt.async_app import AsyncApp

from bot.deps import Deps


def register(app: AsyncApp, deps: Deps) -> None:
    """Register the catch-all listener for every remaining event type."""

    async def acknowledge_only() -> None:
        """Nothing to do (Bolt has already acknowledged the event) but count it."""
        deps.metrics.event_ignored("no_listener")

    app.event(re.compile(r".*"))(acknowledge_only)
