"""Slack agent sessions: the thread's session status, which gives people Slack's own Stop button.

Slack's agent sessions (``agents.sessions.setStatus``; the app declared as an agent, scope ``assistant:write``) are
thread-scoped and show a status; while it is ``processing`` Slack shows a native Stop button, and a click sends
``agent_session_stopped`` (handled like ``stop`` in the thread: :mod:`handlers.agent_sessions`). Slack does not move
the status by itself: the bot sets ``processing`` while a turn runs, ``active`` when it ends (answered, failed or
stopped), ``suspended`` when the sweeper deletes the thread's idle container, and ``closed`` on reset.

``DATASTORY_AGENT_SESSIONS`` turns this off. A workspace where Slack refuses the method (the app is not declared as
an agent, or was installed without the scope) turns it off for the process after one warning; ``stop`` in the
thread and ``/datastory stop`` work everywhere. Any other refusal is logged and never fails a turn.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Literal

from bot.poster import Poster, SlackError
from bot.store.base import ThreadKey

logger = logging.getLogger(__name__)

AgentStatus = Literal["processing", "active", "suspended", "closed"]

UNAVAILABLE = frozenset({"missing_scope", "not_allowed_token_type", "unknown_method", "method_deprecated",
                         "no_permission", "invalid_auth", "not_authed", "feature_not_enabled"})
"""Slack's answers that mean agent sessions are not available to this app at all."""


class AgentSessions:
    """Sets threads' agent session statuses (see the module docstring); never raises."""

    def __init__(self, poster: Poster, *, enabled: bool) -> None:
        self._poster = poster
        self.enabled = enabled

    async def set(self, key: ThreadKey, status: AgentStatus) -> None:
        """Make the thread's session ``status`` (created on first use)."""
        if not self.enabled:
            return
        try:
            await self._poster.set_agent_status(channel=key.channel, thread_ts=key.thread_ts, status=status)
        except SlackError as exc:
            if exc.code in UNAVAILABLE:
                self.enabled = False
                logger.warning("agent sessions unavailable (%s); stop works by `stop` in the thread and "
                               "/datastory stop", exc.code)
            else:
                logger.info("agent session status not set status=%s channel=%s error=%s", status, key.channel,
                            exc.code)

    async def suspend(self, keys: Iterable[ThreadKey]) -> None:
        """The threads whose containers the sweeper deleted: their sessions are ``suspended``."""
        for key in keys:
            await self.set(key, "suspended")
