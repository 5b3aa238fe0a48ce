"""File loading: stream files from Slack through inspection into the sandbox.

Each download is inspected before its upload starts (:func:`bot.files.inspect_stream`): a refused file (sign-in
page, binary, empty...) is recorded and named in the thread while the others are analysed; the container is
created only when the first file has passed. An upload the provider refuses for now is sent again, streamed anew.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Sequence

from bot.analysts.base import DataFile
from bot.clock import Clock
from bot.files import (
    ACCESS_DENIED_REASON,
    FOREIGN_HOST_REASON,
    NOT_FOUND_REASON,
    FileProfile,
    FileRejected,
    FilesRefused,
    ReadOptions,
    inspect_stream,
    refusals_text,
)
from bot.formatting import human_size
from bot.poster import FileAccessDenied, ForeignFileHost, Poster, SlackError
from bot.sandbox.base import SandboxBackend, SandboxFile, SandboxUnavailable
from bot.store.base import FileRecord, Store, TurnRecord
from bot.turns.config import UPLOAD_ATTEMPTS, WorkerConfig
from bot.turns.feedback import Feedback, StatusMessage

logger = logging.getLogger("bot.turns")

Create = Callable[[], Awaitable[str]]
"""Creates the container when the first file passed inspection; returns its id."""


def needs_upload(f: FileRecord, container_id: str | None, turn: TurnRecord) -> bool:
    """Not in the container yet, and not refused (a refused file is tried again only when shared again)."""
    if container_id and f.container_id == container_id and f.sandbox_path:
        return False
    if f.refused_reason is not None:
        return f.message_ts == turn.message_ts and f.refused_turn != turn.id
    return True


def replaces(f: FileRecord, files: list[FileRecord]) -> bool:
    """Whether an earlier, readable file of the thread has the same name as ``f``."""
    return any(g.name == f.name and g.slack_file_id != f.slack_file_id and g.message_ts != f.message_ts
               and g.created_at <= f.created_at and g.refused_reason is None for g in files)


def newest_versions(files: list[FileRecord], *, loaded_only: bool = True) -> list[FileRecord]:
    """The newest readable version of each file name (``files`` oldest first, as the store lists them); with
    ``loaded_only`` only among versions in a container. A same-name upload later in a thread is the new version;
    the older one stays in the container but is not given to the analysis."""
    latest: dict[str, FileRecord] = {}
    for f in files:
        if f.refused_reason is None and (f.sandbox_path or not loaded_only):
            latest[f.name] = f
    return list(latest.values())


def data_file(f: FileRecord) -> DataFile:
    """What the analysis is told about a stored file."""
    return DataFile(name=f.name, path=f.sandbox_path or "", size=f.size, facts=f.facts,
                    read_options=ReadOptions.from_json(f.read_options))


def refusal_reason(exc: SlackError) -> str | None:
    """The thread's reason for a download failure that refuses the file; ``None`` when the failure is not about
    the file (a connection error...), so the turn fails instead."""
    if isinstance(exc, FileAccessDenied):
        return ACCESS_DENIED_REASON
    if isinstance(exc, ForeignFileHost):
        return FOREIGN_HOST_REASON
    if isinstance(exc, SlackError) and exc.code == "file_not_found":
        return NOT_FOUND_REASON
    return None


def refusal_kind(exc: FileRejected) -> str:
    """What refused a file, for the log: the inspector's ``FileRejected`` or the Slack error behind it."""
    return type(exc.__cause__ or exc).__name__


class FileLoader:
    """Streams a thread's (or a batch run's) files into a container."""

    def __init__(self, *, store: Store, sandbox: SandboxBackend, poster: Poster, clock: Clock,
                 config: WorkerConfig) -> None:
        self._store = store
        self._sandbox = sandbox
        self._poster = poster
        self._clock = clock
        self._config = config
        self._feedback = Feedback(poster)

    async def load_turn(
        self, turn: TurnRecord, container_id: str | None, status: StatusMessage, *, create: Create,
        say: Callable[[str], Awaitable[object]] | None = None,
    ) -> tuple[str, list[str], list[FileRecord]]:
        """Stream the files the container lacks from Slack into it; returns the container, the names loaded and
        the thread's files as the store has them after the loads (what the analysis is given: no read again).

        This turn's own files come first. When every file of the turn is refused, or the thread has nothing
        readable at all, the turn ends with :class:`bot.files.FilesRefused` and no container is created for it.
        Earlier files are reloaded (a rebuilt container) in their newest version per name only.
        """
        key = turn.key
        loaded: list[str] = []
        refused: list[tuple[str, str]] = []
        files = await self._store.list_files(key)
        for f in files:
            if f.message_ts == turn.message_ts and needs_upload(f, container_id, turn):
                container_id, refusal = await self._load_one(turn, f, container_id, status, create,
                                                             replaces=replaces(f, files))
                if refusal:
                    refused.append((f.name, refusal))
                else:
                    loaded.append(f.name)
        if loaded or refused:  # what the loads recorded (paths, refusals); nothing else changes a thread's files
            files = await self._store.list_files(key)
        own = [f for f in files if f.message_ts == turn.message_ts]
        if own and not any(f.sandbox_path for f in own):
            raise FilesRefused(refused or [(f.name, f.refused_reason) for f in own if f.refused_reason])
        earlier = len(loaded) + len(refused)
        for f in newest_versions(files, loaded_only=False):
            if f.message_ts != turn.message_ts and needs_upload(f, container_id, turn):
                container_id, refusal = await self._load_one(turn, f, container_id, status, create)
                if refusal:
                    refused.append((f.name, refusal))
                else:
                    loaded.append(f.name)
        if len(loaded) + len(refused) > earlier:  # earlier files were reloaded: their new paths
            files = await self._store.list_files(key)
        if refused:
            if say is None:
                await self._feedback.say(key, refusals_text(refused))
            else:
                await say(refusals_text(refused))
        if container_id is None:
            raise FilesRefused([(f.name, f.refused_reason) for f in files if f.refused_reason])
        return container_id, loaded, files

    async def load_batch(
        self, files: Sequence[FileRecord], create: Create, status: StatusMessage
    ) -> tuple[str, list[DataFile], list[tuple[str, str]]]:
        """Stream ``files`` into a container created once the first one passed inspection (nothing stored)."""
        container_id: str | None = None
        data: list[DataFile] = []
        refused: list[tuple[str, str]] = []
        for f in files:
            await status.set(f":inbox_tray: Loading `{f.name}` ({human_size(f.size)}) into the sandbox…")
            try:
                container_id, stored, profile = await self.stream_file(f, container_id, create, status)
            except FileRejected as exc:
                logger.info("batch file refused file=%s reason=%s", f.slack_file_id, refusal_kind(exc))
                refused.append((f.name, exc.reason))
                continue
            data.append(DataFile(name=f.name, path=stored.path, size=f.size, facts=profile.facts(stored.path),
                                 read_options=profile.options))
        if container_id is None:
            raise FilesRefused(refused)
        return container_id, data, refused

    async def _load_one(
        self, turn: TurnRecord, f: FileRecord, container_id: str | None, status: StatusMessage,
        create: Create, *, replaces: bool = False,
    ) -> tuple[str | None, str | None]:
        """Inspect one file's download and stream it into the container (created now if needed); returns the
        container and, for a refused file, the reason (recorded in the store so later turns skip the file)."""
        key = turn.key
        await status.set(f":inbox_tray: Loading `{f.name}` ({human_size(f.size)}) into the sandbox…")
        try:
            container_id, stored, profile = await self.stream_file(f, container_id, create, status)
        except FileRejected as exc:
            logger.info("file refused thread=%s file=%s reason=%s", key, f.slack_file_id, refusal_kind(exc))
            await self._store.mark_refused(key, f.slack_file_id, turn_id=turn.id, reason=exc.reason)
            return container_id, exc.reason
        await self._store.mark_uploaded(key, f.slack_file_id, container_id=container_id, sandbox_path=stored.path,
                                        sandbox_file_id=stored.id, facts=profile.facts(stored.path),
                                        read_options=profile.options.to_json())
        if f.message_ts == turn.message_ts:
            lines = [":page_facing_up: " + profile.preview(f.name, f.size)]
            if replaces:
                lines.append(f":arrows_counterclockwise: `{f.name}` replaces the version shared earlier.")
            status.details.extend(line for line in lines if line not in status.details)  # a rebuild loads again
            await status.set(f":inbox_tray: Loaded `{f.name}`.")
        return container_id, None

    async def stream_file(
        self, f: FileRecord, container_id: str | None, create: Create, status: StatusMessage,
    ) -> tuple[str, SandboxFile, FileProfile]:
        """Stream one file from Slack through inspection into the container (created first when there is none
        yet); returns the container, the stored file and the profile of the whole file.

        An upload the provider refuses for now (a 5xx or 429, a dropped connection) is sent again, streamed anew
        from Slack, up to :data:`UPLOAD_ATTEMPTS` times in all with growing, jittered delays. A file refused before
        any container exists, by the inspector or by Slack (sign-in page, foreign host, file gone), raises
        :class:`bot.files.FileRejected` with the reason for the thread; other Slack errors propagate.
        """
        delay = self._config.capacity_retry_seconds
        attempt = 1
        while True:
            try:
                stream = await inspect_stream(self._poster.download(f.download_url), name=f.name, size=f.size)
            except SlackError as exc:
                reason = refusal_reason(exc)
                if reason is None:
                    raise
                raise FileRejected(reason) from exc
            try:
                if container_id is None:
                    container_id = await create()
                stored = await self._sandbox.upload(container_id, name=f.name, chunks=stream, size=f.size or None)
                return container_id, stored, stream.profile
            except SandboxUnavailable:
                if attempt >= UPLOAD_ATTEMPTS:
                    raise
            finally:
                await stream.aclose()  # the download too: nothing stays open while waiting
            wait = delay * random.uniform(0.8, 1.2)
            logger.info("upload refused for now, again in %.1f s file=%s attempt=%d", wait, f.slack_file_id, attempt)
            await status.set(f":hourglass: The sandbox did not take `{f.name}` this time; sending it again in "
                             f"{wait:.0f} s…")
            await self._clock.sleep(wait)
            delay, attempt = delay * 2, attempt + 1
