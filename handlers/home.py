"""The App Home tab: ``app_home_opened`` (tab ``home``) publishes the person's tab with ``views.publish``.

Acknowledged at once (events are acked by Bolt before the listener runs); the view is built and published by
:class:`bot.home.Home`. A person the bot may not serve (allowlists, other organisations) sees only the reason.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.access import Person
from bot.deps import Deps
from handlers.events import installation_team


class HomeHandlers:
    """Listener for the Home tab."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def on_app_home_opened(self, event: dict[str, Any], context: AsyncBoltContext) -> None:
        """Publish the person's Home tab (the Messages tab needs nothing)."""
        if event.get("tab") != "home":
            return
        user = str(event.get("user") or "")
        team = installation_team(context, str(event.get("team") or ""))
        refusal = await self._deps.access.refusal(Person(user=user, channel="", home_team=team))
        if refusal:
            await self._deps.home.publish_text(user=user, text=refusal)
            return
        await self._deps.home.publish(team=team, user=user)


def register(app: AsyncApp, deps: Deps) -> None:
    """Register the Home tab listener."""
    app.event("app_home_opened")(HomeHandlers(deps).on_app_home_opened)
