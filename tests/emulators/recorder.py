"""Moved to :mod:`bot.demo.recorder`; this re-export keeps tests written against the old path working until they
are updated, then goes."""

from bot.demo.recorder import RecordedRequest, Recorder

__all__ = ["RecordedRequest", "Recorder"]
