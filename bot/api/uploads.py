"""Receiving a session's files: each upload is counted (413 as soon as it passes the limit, before more is read),
checked by name (415, the Slack bot's words), inspected while it streams to disk by the same
:func:`bot.files.inspect_stream` the Slack bot uses (422 with the same honest reasons), and profiled, all before
any container exists."""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath, PureWindowsPath

from bot.api.problems import FILE_TOO_LARGE, UNREADABLE_TABLE, UNSUPPORTED_TYPE, ApiProblem
from bot.api.storage import SessionFiles
from bot.files import HEAD_BYTES, FileProfile, FileRejected, inspect_head, inspect_stream, rejection_reason
from bot.formatting import human_size
from bot.poster import NAME_CHARS, SlackFile
from bot.slack_text import one_line

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Received:
    """An accepted upload, on disk."""

    file_id: str
    name: str
    size: int
    mimetype: str
    profile: FileProfile


def clean_name(name: str) -> str:
    """The file's own name (no directories), one clean line."""
    base = PureWindowsPath(PurePosixPath(name or "").name).name
    return one_line(base, limit=NAME_CHARS) or "upload"


def too_large(max_bytes: int, name: str = "") -> ApiProblem:
    """413 in the Slack bot's words."""
    what = f"`{name}` is" if name else "the upload is"
    return ApiProblem(413, FILE_TOO_LARGE, f"I can't analyse it: {what} over the limit of {human_size(max_bytes)} "
                                           "(`DATASTORY_MAX_FILE_MB`).")


async def _counted(chunks: AsyncIterator[bytes], *, max_bytes: int, name: str) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise too_large(max_bytes, name)
        yield chunk


def check_name(name: str) -> str:
    """The cleaned name, or 415 with the reason the Slack bot gives."""
    cleaned = clean_name(name)
    meta = SlackFile(id="", name=cleaned, title=cleaned, mimetype="", filetype="", size=0, mode="hosted",
                     url_private_download="")
    if (reason := rejection_reason(meta, max_bytes=1 << 62)) is not None:
        raise ApiProblem(415, UNSUPPORTED_TYPE, f"I can't analyse `{cleaned}`: {reason}.")
    return cleaned


async def receive(
    name: str, chunks: AsyncIterator[bytes], *, files: SessionFiles, session_id: str, max_bytes: int
) -> Received:
    """Stream one upload through inspection to the session's storage; 413, 415 or 422 (and nothing kept) when it
    cannot be analysed."""
    cleaned = check_name(name)
    file_id = "in" + uuid.uuid4().hex[:14]
    target = files.input_path(session_id, file_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        stream = await inspect_stream(_counted(chunks, max_bytes=max_bytes, name=cleaned), name=cleaned, size=0)
    except FileRejected as exc:
        logger.info("api upload refused reason=%s", type(exc).__name__)
        raise ApiProblem(422, UNREADABLE_TABLE, f"I can't analyse `{cleaned}`: {exc.reason}.") from None
    size = 0
    try:
        with target.open("wb") as out:
            async for chunk in stream:
                out.write(chunk)
                size += len(chunk)
    except BaseException:
        await stream.aclose()
        target.unlink(missing_ok=True)
        raise
    profile = stream.profile
    if not profile.rows_exact and size > HEAD_BYTES:  # the head alone was inspected: rows estimated from the size
        profile = await asyncio.to_thread(_estimate, target, cleaned, size, profile)
    return Received(file_id=file_id, name=cleaned, size=size, profile=profile,
                    mimetype=mimetypes.guess_type(cleaned)[0] or "application/octet-stream")


def _estimate(path: Path, name: str, size: int, profile: FileProfile) -> FileProfile:
    with path.open("rb") as fh:
        head = fh.read(HEAD_BYTES)
    try:
        again = inspect_head(head, name=name, size=size, complete=False)
    except FileRejected:
        return profile
    return profile if again.rows_exact else replace(profile, rows=again.rows)
