"""The Slack port of the core: what the turn worker and the jobs need from Slack, as one protocol.

``bot.slack_gateway.SlackGateway`` implements it over ``slack_sdk`` (the only core module that imports it);
the core depends on this protocol alone, so it never imports a Slack library.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.slack_text import one_line

NAME_CHARS = 200
"""Longest file name kept (Slack allows 255); longer ones are cut with an ellipsis."""


@dataclass(frozen=True, slots=True)
class SlackFile:
    """The metadata of a file as Slack reports it (event ``files[]`` entry or ``files.info``)."""

    id: str
    name: str
    title: str
    mimetype: str
    filetype: str
    size: int
    mode: str
    """``hosted``, ``external``, ``snippet``, ``post``, ``tombstone``, or ``file_access`` (Slack Connect stub)."""
    url_private_download: str
    user: str = ""

    @classmethod
    def from_payload(cls, payload: dict[str, object]) -> SlackFile:
        """Build from a ``files[]`` entry of an event or the ``file`` of ``files.info``.

        The name and title are whoever shared the file's words: they are made one clean line here, where they enter
        (no control characters or line breaks, which would reach the thread's messages and the model's prompt; no
        backticks, which would end the code span a name is shown in).
        """
        url = payload.get("url_private_download") or payload.get("url_private") or ""
        name = one_line(str(payload.get("name") or payload.get("title") or ""), limit=NAME_CHARS) \
            or str(payload.get("id") or "file")
        size = payload.get("size")
        return cls(
            id=str(payload.get("id", "")),
            name=name,
            title=one_line(str(payload.get("title") or name), limit=NAME_CHARS),
            mimetype=str(payload.get("mimetype") or ""),
            filetype=str(payload.get("filetype") or ""),
            size=size if isinstance(size, int) else 0,
            mode=str(payload.get("mode") or "hosted"),
            url_private_download=str(url),
            user=str(payload.get("user") or ""),
        )


@dataclass(frozen=True, slots=True)
class UserInfo:
    """What ``users.info`` says about a person."""

    id: str
    team: str
    """The person's own team (another organisation's for a Slack Connect member)."""
    tz: str = "UTC"
    is_admin: bool = False
    """A workspace admin or owner."""

    @classmethod
    def from_payload(cls, payload: dict[str, object]) -> UserInfo:
        """Build from the ``user`` object of ``users.info``."""
        tz = payload.get("tz")
        return cls(id=str(payload.get("id") or ""), team=str(payload.get("team_id") or ""),
                   tz=tz if isinstance(tz, str) and tz else "UTC",
                   is_admin=any(payload.get(k) is True for k in ("is_admin", "is_owner", "is_primary_owner")))


@dataclass(frozen=True, slots=True)
class Upload:
    """A file the bot posts into a thread (a chart, a table)."""

    filename: str
    data: bytes
    title: str = ""


BeforeShare = Callable[[list[str]], Awaitable[None]]
"""Told the Slack ids of uploaded files just before they are shared into the thread; raising stops the share."""


PART_EVENT = "datastory_part"
"""The ``event_type`` of the metadata every part of an answer is posted with (:class:`PartTag`)."""


@dataclass(frozen=True, slots=True)
class PartTag:
    """Which turn a message belongs to and which part of its answer it is, sent as Slack message metadata so a
    resumed turn finds in the thread what it posted before its ledger knew."""

    turn: str
    part: str


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """A message of a thread as the bot reads it back (``conversations.replies`` with metadata)."""

    ts: str
    user: str
    tag: PartTag | None = None
    """The part the message is, when the bot posted it with a :class:`PartTag`."""
    file_names: tuple[str, ...] = ()
    file_ids: tuple[str, ...] = ()
    block_ids: tuple[str, ...] = ()
    """The ``block_id`` of each of its blocks (how the bot finds a message it posted with buttons)."""


class SlackError(Exception):
    """A Slack call failed; ``code`` is Slack's error string (``not_in_channel``, ``ratelimited``...)."""

    def __init__(self, code: str, *, method: str = "") -> None:
        super().__init__(f"{method}: {code}" if method else code)
        self.code = code
        self.method = method


class FileAccessDenied(SlackError):
    """Slack served its sign-in page instead of the file: the token lacks ``files:read`` or the file is not shared."""


class ForeignFileHost(SlackError):
    """A file URL points outside Slack's hosts; the bot token is never sent there."""


@dataclass(frozen=True, slots=True)
class StreamTarget:
    """Where a streamed answer goes: the thread, and the person and team it streams to (Slack requires both
    outside a DM)."""

    channel: str
    thread_ts: str
    recipient_user: str
    recipient_team: str


Chunk = dict[str, object]
"""A streaming chunk: ``{"type": "task_update", "id", "title", "status"}``, ``{"type": "plan_update", "title"}``
(the ``markdown_text`` chunk is built from the text given)."""


class StreamPoster(Protocol):
    """Slack's text streaming (``chat.startStream`` / ``appendStream`` / ``stopStream``)."""

    async def start_stream(self, target: StreamTarget, *, markdown_text: str = "",
                           chunks: Sequence[Chunk] = ()) -> str:
        """Start a streamed reply in the thread; returns its ``ts``."""
        ...

    async def append_stream(self, *, channel: str, ts: str, markdown_text: str = "",
                            chunks: Sequence[Chunk] = ()) -> None:
        """Append text (and task or plan updates) to a stream."""
        ...

    async def stop_stream(self, *, channel: str, ts: str, markdown_text: str = "", chunks: Sequence[Chunk] = (),
                          blocks: list[dict[str, object]] | None = None, tag: PartTag | None = None) -> None:
        """Stop the stream: the last text, ``blocks`` at the bottom of the message, ``tag`` as its metadata."""
        ...


class Poster(Protocol):
    """Posting into Slack threads and reading Slack files."""

    async def react(self, *, channel: str, ts: str, name: str) -> None:
        """Add a reaction (an existing one is fine)."""
        ...

    async def unreact(self, *, channel: str, ts: str, name: str) -> None:
        """Remove a reaction (a missing one is fine)."""
        ...

    async def post(
        self, *, channel: str, thread_ts: str | None, text: str, blocks: list[dict[str, object]] | None = None,
        tag: PartTag | None = None,
    ) -> str:
        """Post a message (in a thread when ``thread_ts`` is set; tagged with ``tag`` as message metadata);
        returns its ``ts``."""
        ...

    async def thread_messages(self, *, channel: str, thread_ts: str) -> list[ThreadMessage]:
        """The thread's messages, oldest first, with the part tags the bot posted them with."""
        ...

    async def post_ephemeral(self, *, channel: str, user: str, thread_ts: str | None, text: str) -> None:
        """A message only ``user`` sees (access refusals: allowlists, budgets)."""
        ...

    async def update(
        self, *, channel: str, ts: str, text: str, blocks: list[dict[str, object]] | None = None
    ) -> None:
        """Replace the text of a message the bot posted."""
        ...

    async def upload_files(
        self, *, channel: str, thread_ts: str | None, files: Sequence[Upload], comment: str | None = None,
        before_share: BeforeShare | None = None,
    ) -> list[str]:
        """Upload files into a channel or thread the way files_upload_v2 does; returns their Slack file ids.
        ``before_share`` is awaited with those ids between the upload of the bytes and their sharing (what makes
        them visible); when it raises, nothing is shared."""
        ...

    async def delete_message(self, *, channel: str, ts: str) -> None:
        """``chat.delete`` of a message the bot posted; one already gone is fine."""
        ...

    async def delete_file(self, file_id: str) -> None:
        """``files.delete`` of a file the bot uploaded; one already gone is fine."""
        ...

    async def file_info(self, file_id: str) -> SlackFile:
        """``files.info`` for a file id."""
        ...

    async def thread_files(self, *, channel: str, thread_ts: str) -> list[SlackFile]:
        """The files shared in a thread so far, oldest first (``conversations.replies``, paginated and bounded):
        what a mention in a thread the bot has not seen before brings in."""
        ...

    async def permalink(self, *, channel: str, ts: str) -> str:
        """``chat.getPermalink``: a link to the message ``ts`` (a thread's root links to the thread)."""
        ...

    async def publish_home(self, *, user: str, view: dict[str, object]) -> None:
        """``views.publish``: ``user``'s App Home tab."""
        ...

    async def set_agent_status(self, *, channel: str, thread_ts: str, status: str) -> None:
        """``agents.sessions.setStatus``: the thread's Slack agent session becomes ``status`` (``processing``,
        ``active``, ``suspended``, ``closed``), created on first use. Raises :class:`SlackError`."""
        ...

    async def ensure_member(self, *, channel: str, ts: str) -> bool:
        """Whether the bot is in ``channel`` (probed by reading the message ``ts``), joining a public channel it
        is not in (``conversations.join``, scope ``channels:join``); False when it is not in and cannot join."""
        ...

    async def user_tz(self, user: str) -> str:
        """The user's IANA time zone from ``users.info`` (``users:read``); ``"UTC"`` when it cannot be read."""
        ...

    async def user_info(self, user: str) -> UserInfo | None:
        """``users.info``: the person's team, zone and admin flags; None for an unknown user. Raises
        :class:`SlackError` when Slack cannot be asked."""
        ...

    def download(self, url: str) -> AsyncIterator[bytes]:
        """Stream a private file's bytes in chunks with the bot token.

        Raises :class:`ForeignFileHost` before any request when ``url`` is not on a Slack host, and
        :class:`FileAccessDenied` when Slack answers with its HTML sign-in page.
        """
        ...

    def streams(self, channel: str) -> StreamPoster | None:
        """Slack's text streaming for ``channel``, or None where the poster cannot stream (the console, the API)."""
        ...

    async def close(self) -> None:
        """Close HTTP sessions."""
        ...
