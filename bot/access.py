"""Who may use the bot, and who may do what only admins may: one policy for every surface.

Every surface (a file, a follow-up, a mention, ``reset``, a digest, its scheduled runs, the slash command, the
Cancel button) asks :meth:`Access.refusal` before acting, in this order:

1. ``DATASTORY_ALLOWED_CHANNELS``: the channel must be listed (empty: every channel);
2. other organisations: a person whose own team is not the workspace the bot is installed in (a Slack Connect
   member of a shared channel) is refused unless ``DATASTORY_ALLOW_EXTERNAL_USERS`` is true. Slack says which
   team a person belongs to in the payload (``user_team``/``team`` of a message, ``user.team_id`` of a button);
   when a payload does not, ``users.info``'s ``team_id`` decides, and when that cannot be read the person is
   refused (the check fails closed);
3. ``DATASTORY_ALLOWED_USERS``: the person must be listed (empty: everyone).

A refusal is a sentence that says why, for that person only. Resetting a whole channel and cancelling someone
else's digest also need an admin (:meth:`Access.is_admin`): a user of ``DATASTORY_ADMIN_USERS``, or a workspace
admin or owner as ``users.info`` reports (``is_admin``, ``is_owner``, ``is_primary_owner``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.clock import Clock
from bot.poster import Poster, SlackError, UserInfo

logger = logging.getLogger(__name__)

PROFILE_SECONDS = 300.0
"""How long a ``users.info`` answer is reused (a team or an admin flag rarely changes)."""

CHANNEL_REFUSAL = ("I'm not set up to work in this channel, so I left this alone (the channel is not in "
                   "`DATASTORY_ALLOWED_CHANNELS`). Ask whoever runs the bot, or try a channel where I work.")
EXTERNAL_REFUSAL = ("You're in another organisation than the workspace I'm installed in, so I can't work for you "
                    "here (`DATASTORY_ALLOW_EXTERNAL_USERS` is off).")
UNKNOWN_TEAM_REFUSAL = ("I couldn't check which organisation you belong to (Slack did not answer `users.info`), "
                        "so I left this alone. Please try again in a minute.")
USER_REFUSAL = ("I only work for the people this bot is set up for, and you're not on the list, so I left this "
                "alone (`DATASTORY_ALLOWED_USERS`). Ask whoever runs the bot to add you.")
ADMIN_HINT = "a bot admin (`DATASTORY_ADMIN_USERS`) or a workspace admin or owner"


@dataclass(frozen=True, slots=True)
class Person:
    """Someone asking for something, as a payload tells it."""

    user: str
    channel: str
    home_team: str
    """The workspace the bot is installed in."""
    user_team: str = ""
    """The person's own team as the payload says it; empty when it does not (``users.info`` is asked)."""


class Access:
    """The allowlists, the other-organisation rule and the admin rule (see the module docstring)."""

    def __init__(
        self, *, poster: Poster, clock: Clock, allowed_channels: frozenset[str] = frozenset(),
        allowed_users: frozenset[str] = frozenset(), admin_users: frozenset[str] = frozenset(),
        allow_external_users: bool = False,
    ) -> None:
        self._poster = poster
        self._clock = clock
        self._channels = allowed_channels
        self._users = allowed_users
        self._admins = admin_users
        self._external = allow_external_users
        self._profiles: dict[str, tuple[float, UserInfo | None]] = {}

    def channel_allowed(self, channel: str) -> bool:
        """Whether the bot works in ``channel`` at all."""
        return not self._channels or channel in self._channels

    async def refusal(self, who: Person) -> str | None:
        """Why ``who`` may not use the bot here (a sentence for them alone), or None when they may."""
        if not self.channel_allowed(who.channel):
            return CHANNEL_REFUSAL
        if not self._external:
            team = who.user_team
            if not team:
                profile = await self._profile(who.user)
                if profile is None:
                    return UNKNOWN_TEAM_REFUSAL
                team = profile.team
            if team and who.home_team and team != who.home_team:
                logger.info("external user refused user=%s team=%s home=%s", who.user, team, who.home_team)
                return EXTERNAL_REFUSAL
        if self._users and who.user not in self._users:
            return USER_REFUSAL
        return None

    async def is_admin(self, user: str) -> bool:
        """A bot admin (``DATASTORY_ADMIN_USERS``) or a workspace admin or owner (``users.info``); False when Slack
        cannot say."""
        if user in self._admins:
            return True
        profile = await self._profile(user)
        return profile is not None and profile.is_admin

    async def _profile(self, user: str) -> UserInfo | None:
        now = self._clock.now()
        cached = self._profiles.get(user)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            profile: UserInfo | None = await self._poster.user_info(user)
        except SlackError as exc:
            logger.warning("users.info failed user=%s error=%s", user, exc.code)
            return None  # not cached: the next question asks again
        self._profiles[user] = (now + PROFILE_SECONDS, profile)
        return profile
