"""A console thread: the :class:`~bot.poster.Poster` port for ``datastory try``, on a terminal instead of Slack.

The turn worker runs exactly as it does for Slack; this poster shows the status reply as a live progress line on
stderr, prints the narrative on stdout (and saves it as ``answer.md``), writes the charts into the output
directory, and "downloads" only the local files the user named on the command line.
"""

from __future__ import annotations

import asyncio
import html
import re
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TextIO

from bot.poster import BeforeShare, ForeignFileHost, PartTag, SlackFile, ThreadMessage, Upload, UserInfo

CHUNK = 1024 * 1024
EMOJI = {
    ":hourglass_flowing_sand:": "⏳", ":hourglass:": "⌛", ":white_check_mark:": "✅", ":warning:": "⚠️",
    ":inbox_tray:": "📥", ":recycle:": "♻️", ":page_facing_up:": "📄", ":arrows_counterclockwise:": "🔄",
}
_EMOJI = re.compile("|".join(re.escape(code) for code in EMOJI))


def plain(text: str) -> str:
    """Slack mrkdwn made readable on a terminal: entities unescaped, emoji shortcodes as characters."""
    return html.unescape(_EMOJI.sub(lambda m: EMOJI[m.group(0)], text))


class ConsolePoster:
    """Posts of one console thread: the first post is the status line, later posts are the answer."""

    def __init__(
        self, *, out_dir: Path, allowed: Sequence[Path], out: TextIO | None = None, err: TextIO | None = None
    ) -> None:
        self.out_dir = out_dir
        self._allowed = {p.resolve() for p in allowed}
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        self._status_ts: str | None = None
        self._count = 0
        self._live = self._err.isatty()
        self.answer: list[str] = []
        self.written: list[Path] = []
        self.status = ""
        self._details: set[str] = set()

    def _next_ts(self) -> str:
        self._count += 1
        return f"{self._count}.000000"

    def _show_status(self, text: str) -> None:
        """The first line is the live status (rewritten in place on a terminal); the lines under it (previews)
        are printed once each."""
        first, *details = plain(text).splitlines() or [""]
        self.status = first
        for line in details:
            if line not in self._details:
                self._details.add(line)
                self._err.write(("\r\033[K" if self._live else "") + line + "\n")
        if self._live:
            self._err.write("\r\033[K" + first)
            if text.startswith((":white_check_mark:", ":warning:")):
                self._err.write("\n")
        else:
            self._err.write(first + "\n")
        self._err.flush()

    async def react(self, *, channel: str, ts: str, name: str) -> None:
        """Reactions have no console equivalent; the status line says the same."""

    async def unreact(self, *, channel: str, ts: str, name: str) -> None:
        """See :meth:`react`."""

    async def thread_messages(self, *, channel: str, thread_ts: str) -> list[ThreadMessage]:
        """A console keeps no thread to read back: a turn there is never resumed by another process."""
        return []

    async def post(
        self, *, channel: str, thread_ts: str | None, text: str, blocks: list[dict[str, object]] | None = None,
        tag: PartTag | None = None,
    ) -> str:
        """The first post is the status line; the others are parts of the answer."""
        ts = self._next_ts()
        if self._status_ts is None:
            self._status_ts = ts
            self._show_status(text)
        else:
            self.answer.append(plain(text))
        return ts

    async def post_ephemeral(self, *, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        """On a console everything is for the one user: shown as a status line."""
        self._show_status(text)

    async def update(
        self, *, channel: str, ts: str, text: str, blocks: list[dict[str, object]] | None = None
    ) -> None:
        """Only the status line is ever updated."""
        if ts == self._status_ts:
            self._show_status(text)

    async def delete_message(self, *, channel: str, ts: str) -> None:
        """What a console printed stays printed."""

    async def delete_file(self, file_id: str) -> None:
        """Files written to the output directory are the user's now."""

    async def upload_files(
        self, *, channel: str, thread_ts: str | None, files: Sequence[Upload], comment: str | None = None,
        before_share: BeforeShare | None = None,
    ) -> list[str]:
        """Write the files into the output directory (never overwriting: ``chart (2).png``); no Slack ids."""
        if before_share is not None:
            await before_share([])
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for upload in files:
            target = self._free_name(Path(upload.filename).name or "file")
            target.write_bytes(upload.data)
            self.written.append(target)
        return []

    def _free_name(self, name: str) -> Path:
        target = self.out_dir / name
        stem, suffix, n = target.stem, target.suffix, 2
        while target.exists():
            target = self.out_dir / f"{stem} ({n}){suffix}"
            n += 1
        return target

    async def file_info(self, file_id: str) -> SlackFile:
        """Console files come with their metadata; there is nothing to look up."""
        raise ForeignFileHost("not_supported", method="files.info")

    async def thread_files(self, *, channel: str, thread_ts: str) -> list[SlackFile]:
        """A console run has no earlier thread to read."""
        return []

    async def permalink(self, *, channel: str, ts: str) -> str:
        """A console thread has no link."""
        return ""

    async def publish_home(self, *, user: str, view: dict[str, object]) -> None:
        """A console has no Home tab."""

    async def ensure_member(self, *, channel: str, ts: str) -> bool:
        """A console thread is always the bot's."""
        return True

    async def set_agent_status(self, *, channel: str, thread_ts: str, status: str) -> None:
        """A console has no Slack agent session."""

    async def user_tz(self, user: str) -> str:
        """The console user's zone is not known; UTC."""
        return "UTC"

    async def user_info(self, user: str) -> UserInfo | None:
        """The one console user, of no team."""
        return UserInfo(id=user, team="")

    async def download(self, url: str) -> AsyncIterator[bytes]:
        """Stream a file the user named (``file://`` URL); anything else is refused."""
        path = Path(url.removeprefix("file://")).resolve()
        if path not in self._allowed:
            raise ForeignFileHost("not_a_named_file", method="download")
        with path.open("rb") as fh:
            while chunk := await asyncio.to_thread(fh.read, CHUNK):
                yield chunk

    def finish(self) -> Path | None:
        """Print the answer on stdout, save it as ``answer.md``, list the written files; returns the answer path."""
        if not self.answer:
            return None
        text = "\n\n".join(self.answer)
        self._out.write("\n" + text + "\n")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        answer = self.out_dir / "answer.md"
        answer.write_text(text + "\n", encoding="utf-8")
        self._out.write("\nWritten:\n")
        for path in [answer, *self.written]:
            self._out.write(f"  {path}\n")
        self._out.flush()
        return answer

    def streams(self, channel: str) -> None:
        """The console does not stream (the answer is written whole)."""
        return None

    async def close(self) -> None:
        """Nothing to close."""
