"""The workspace leaves: ``app_uninstalled``, and ``tokens_revoked`` when a bot token is among the revoked.

Acknowledged at once (Bolt checks no token for these two events: the token may already be dead); the team is
stopped, its containers deleted and its data purged in the background by :class:`bot.offboarding.Offboarding`.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp

from bot.deps import Deps


def _team(body: dict[str, Any]) -> str:
    authorizations = body.get("authorizations") or [{}]
    first = authorizations[0] if isinstance(authorizations[0], dict) else {}
    return str(body.get("team_id") or first.get("team_id") or "")


class LifecycleHandlers:
    """Listeners for the app leaving a workspace."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def on_app_uninstalled(self, body: dict[str, Any]) -> None:
        """The app was uninstalled: everything of the workspace goes."""
        self._deps.offboarding.receive(_team(body), reason="app_uninstalled")

    async def on_tokens_revoked(self, event: dict[str, Any], body: dict[str, Any]) -> None:
        """Tokens were revoked: the workspace leaves when a bot token is among them (the bot uses no user token)."""
        tokens = event.get("tokens") if isinstance(event.get("tokens"), dict) else {}
        if (tokens or {}).get("bot"):
            self._deps.offboarding.receive(_team(body), reason="tokens_revoked")


def register(app: AsyncApp, deps: Deps) -> None:
    """Register the lifecycle listeners."""
    handlers = LifecycleHandlers(deps)
    app.event("app_uninstalled")(handlers.on_app_uninstalled)
    app.event("tokens_revoked")(handlers.on_tokens_revoked)
