"""``agent_session_stopped``: someone clicked Slack's own Stop button on the thread's agent session.

Handled like ``stop`` typed in the thread (:meth:`bot.intake.Intake.stop_session`): the analysis running there is
interrupted (on whichever replica runs it), the thread is told who stopped it, and the session leaves
``processing`` (Slack does not move it by itself). A click when nothing runs any more only moves the session on;
a second click changes nothing.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.deps import Deps
from handlers.events import installation_team


class AgentSessionHandlers:
    """Listener for Slack's Stop button."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def on_stopped(self, event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext) -> None:
        """Stop the thread's analysis."""
        channel, thread_ts = str(event.get("channel") or ""), str(event.get("thread_ts") or "")
        if not channel or not thread_ts:
            return
        team = str(body.get("team_id") or installation_team(context))
        await self._deps.intake.stop_session(team, channel, thread_ts, by=str(event.get("user") or ""))


def register(app: AsyncApp, deps: Deps) -> None:
    """Register the Stop button listener."""
    app.event("agent_session_stopped")(AgentSessionHandlers(deps).on_stopped)
