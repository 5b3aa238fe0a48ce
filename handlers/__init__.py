"""Slack surfaces: one module per surface, each with ``register(app, deps)``; no business logic here.

The order of registration matters: Bolt runs the first listener that matches, so the specific ``message``
listeners (files, thread replies) come before the catch-all in ``ignored`` that acknowledges everything else.
"""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from bot.deps import Deps
from handlers import (
    actions,
    agent_sessions,
    commands,
    errors,
    files,
    home,
    ignored,
    lifecycle,
    mentions,
    reactions,
    shortcuts,
    threads,
)


def register_handlers(app: AsyncApp, deps: Deps) -> None:
    """Wire every Slack surface to its handler. Called only from ``bot.app``."""
    files.register(app, deps)
    threads.register(app, deps)
    mentions.register(app, deps)
    commands.register(app, deps)
    actions.register(app, deps)
    home.register(app, deps)
    shortcuts.register(app, deps)
    reactions.register(app, deps)
    agent_sessions.register(app, deps)
    lifecycle.register(app, deps)
    ignored.register(app, deps)
    errors.register(app, deps)
