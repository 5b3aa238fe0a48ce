"""Where the API keeps its sessions' files on disk: the uploaded tables (so a swept or expired workspace is rebuilt
from them, as a Slack thread's are re-downloaded from Slack), the charts and tables the analyses wrote, each
turn's result and the last angles. One directory per session under ``DATASTORY_API_DATA_DIR``; deleting the
session deletes it."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

URL_SCHEME = "datastory-api:"
"""The ``download_url`` of an uploaded file's record: ``datastory-api:<session>/<file_id>``."""
CHUNK = 1024 * 1024
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _safe(part: str) -> str:
    if not _ID.match(part):
        raise ValueError("not an id")
    return part


class SessionFiles:
    """The files of every session, under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def session_dir(self, session_id: str) -> Path:
        """The session's directory (not created)."""
        return self.root / _safe(session_id)

    def input_path(self, session_id: str, file_id: str) -> Path:
        """Where an uploaded file lives."""
        return self.session_dir(session_id) / "in" / _safe(file_id)

    def output_path(self, session_id: str, file_id: str) -> Path:
        """Where a file an analysis wrote lives."""
        return self.session_dir(session_id) / "out" / _safe(file_id)

    def url(self, session_id: str, file_id: str) -> str:
        """The ``download_url`` recorded for an uploaded file."""
        return f"{URL_SCHEME}{_safe(session_id)}/{_safe(file_id)}"

    def path_of_url(self, url: str) -> Path | None:
        """The uploaded file a ``download_url`` names, or None for any other URL."""
        if not url.startswith(URL_SCHEME):
            return None
        session_id, _, file_id = url.removeprefix(URL_SCHEME).partition("/")
        try:
            return self.input_path(session_id, file_id)
        except ValueError:
            return None

    async def read(self, path: Path) -> AsyncIterator[bytes]:
        """Stream a file in chunks (constant memory)."""
        with path.open("rb") as fh:
            while chunk := await asyncio.to_thread(fh.read, CHUNK):
                yield chunk

    def write_json(self, session_id: str, name: str, doc: dict[str, Any]) -> None:
        """Write ``<session>/<name>.json`` (atomically: a reader never sees half of it)."""
        target = self.session_dir(session_id) / f"{_safe(name)}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        tmp.replace(target)

    def read_json(self, session_id: str, name: str) -> dict[str, Any] | None:
        """``<session>/<name>.json``, or None."""
        try:
            doc = json.loads((self.session_dir(session_id) / f"{_safe(name)}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def delete(self, session_id: str) -> None:
        """Remove the session's directory (idempotent)."""
        shutil.rmtree(self.session_dir(session_id), ignore_errors=True)
