"""Moved to :mod:`bot.demo.slack_events`; this re-export keeps tests written against the old path working until
they are updated, then goes."""

from bot.demo.slack_events import *  # noqa: F403
from bot.demo.slack_events import __all__  # noqa: F401
