"""Moved to :mod:`bot.demo.fake_slack` (the demo and the tests share one emulator); this re-export keeps tests
written against the old path working until they are updated, then goes."""

from bot.demo.fake_slack import Download, FakeMessage, FakeSlack, ThreadItem, UploadedFile

__all__ = ["Download", "FakeMessage", "FakeSlack", "ThreadItem", "UploadedFile"]
