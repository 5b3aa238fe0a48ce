"""The person in the demo workspace: what they post, share and click, delivered to the bot as Slack would.

:class:`DemoWorkspace` turns the page's actions into the emulator's state plus signed deliveries to the bot's
Request URL: a message (``message``, ``file_share`` with ``file_shared``, ``app_mention`` when it mentions the
bot), a slash command (form body; the acknowledgement and ``response_url`` posts become ephemeral messages), and
a button click (a ``block_actions`` payload, feedback buttons included). Text is escaped as Slack's client
escapes it (``&``, ``<``, ``>``) and ``@datastory`` becomes the ``<@U…>`` mention the bot sees in Slack.
"""

from __future__ import annotations

import mimetypes
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.demo.fake_slack import FakeSlack
from bot.demo.slack_events import (
    SignedReply,
    SlackSender,
    app_mention,
    block_actions,
    envelope,
    file_shared,
    fresh_ts,
    slash_command,
)
from bot.demo.slack_state import Json, filetype_of

CHANNEL = "C0DEMO"
CHANNEL_NAME = "demo"
USER = "U0DEMO"
COMMAND = "/datastory"
_MENTION = re.compile(r"(?<![\w<])@datastory\b", re.IGNORECASE)


class DeliveryError(Exception):
    """The bot did not accept a delivery (not running, or it answered an error status)."""


@dataclass(frozen=True, slots=True)
class Upload:
    """A file the person attached: its name as they gave it and where its bytes wait on disk."""

    name: str
    path: Path


@dataclass(slots=True)
class Ephemeral:
    """A message only the person sees (``chat.postEphemeral``, a slash command's answer, a ``response_url`` post)."""

    id: str
    ts: str
    text: str
    blocks: list[Any] | None = None
    thread_ts: str | None = None
    author: str = ""
    """The user id shown as its author (the bot's, or Slackbot's for Slack's own notes)."""
    response_url: str = ""
    """The ``response_url`` of the command or click that made it (its replies replace it)."""


@dataclass(slots=True)
class _Origin:
    """What a ``response_url`` belongs to: an ephemeral message, or a message in the channel."""

    ephemeral: str | None = None
    thread_ts: str | None = None


@dataclass(slots=True)
class EphemeralLog:
    """The ephemerals of the demo's one person, gathered from every way Slack produces them."""

    items: dict[str, Ephemeral] = field(default_factory=dict)
    origins: dict[str, _Origin] = field(default_factory=dict)
    seen_posted: int = 0
    seen_responses: int = 0


def clicked_action(blocks: list[Any] | None, *, block_id: str, action_id: str, value: str) -> Json:
    """What Slack says about the element clicked in ``blocks``: its ``type`` and ``text`` (for feedback buttons,
    https://docs.slack.dev/reference/block-kit/block-elements/feedback-buttons-element, the side whose ``value``
    was sent); a plain button when no element matches."""
    for block in blocks or []:
        if not isinstance(block, dict) or block.get("block_id", block_id) != block_id:
            continue
        accessory = block.get("accessory")
        elements = block.get("elements") if block.get("type") in ("actions", "context_actions") else [accessory]
        for element in elements or []:
            if not isinstance(element, dict) or element.get("action_id") != action_id:
                continue
            if element.get("type") != "feedback_buttons":
                found: Json = {"type": str(element.get("type") or "button")}
                return found | ({"text": element["text"]} if isinstance(element.get("text"), dict) else {})
            for side in (element.get("positive_button"), element.get("negative_button")):
                if isinstance(side, dict) and side.get("value") == value:
                    return {"type": "feedback_buttons", "text": side.get("text")}
    return {"type": "button"}


def slack_escape(text: str) -> str:
    """Escape text as Slack's client does before it reaches an app (``&``, ``<``, ``>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _tz_offset(zone: str) -> int:
    offset = datetime.now(ZoneInfo(zone)).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


class DemoWorkspace:
    """One channel, one person and the bot: the person's actions reach the bot as signed Slack deliveries."""

    def __init__(self, *, slack: FakeSlack, examples: dict[str, Path]) -> None:
        self.slack = slack
        self.examples = examples
        self._sender: SlackSender | None = None
        self._ephemerals = EphemeralLog()
        slack.add_user(USER, name="you", real_name="You", tz="UTC", tz_offset=0)

    def connect(self, sender: SlackSender | None) -> None:
        """Deliver to the bot through ``sender`` from now on (``None``: the bot is not there)."""
        self._sender = sender

    @property
    def sender(self) -> SlackSender:
        """The sender to the bot's Request URL; :class:`DeliveryError` while the bot is not up."""
        if self._sender is None:
            raise DeliveryError("The bot is not running yet (or any more); try again in a moment.")
        return self._sender

    # ------------------------------------------------------------------ the person's actions

    def set_time_zone(self, zone: str) -> None:
        """Use the browser's IANA time zone as the person's Slack profile zone (digests are read in it)."""
        try:
            offset = _tz_offset(zone)
        except (ZoneInfoNotFoundError, ValueError):
            return
        self.slack.users[USER].update({"tz": zone, "tz_label": zone, "tz_offset": offset})

    async def post(self, text: str, *, thread_ts: str | None = None, uploads: tuple[Upload, ...] = ()) -> str:
        """Post a message (with files when ``uploads``) as the person; returns its ts, or ``""`` for a command."""
        text = text.strip()
        _ = self.sender  # refuse before anything shows in the channel when the bot is not there
        if text.startswith("/") and not uploads:
            await self._command(text, thread_ts=thread_ts)
            return ""
        files = [self._host(upload) for upload in uploads]
        escaped = _MENTION.sub(f"<@{self.slack.bot_user_id}>", slack_escape(text))
        event = self.slack.post_as_user(channel=CHANNEL, user=USER, text=escaped, files=files or None,
                                        thread_ts=self._root(thread_ts))
        await self._deliver(event)
        for f in files:
            await self._deliver(file_shared(f["id"], CHANNEL, USER, event_ts=event["ts"]))
        if f"<@{self.slack.bot_user_id}>" in escaped:
            await self._deliver(app_mention(CHANNEL, USER, escaped, ts=event["ts"], thread_ts=event.get("thread_ts"),
                                            files=files or None, team=self.slack.team_id))
        return str(event["ts"])

    async def share_example(self, name: str, *, thread_ts: str | None = None) -> str:
        """Share one of the packaged example files; returns the message ts."""
        path = self.examples.get(name)
        if path is None:
            raise KeyError(name)
        return await self.post("", thread_ts=thread_ts, uploads=(Upload(name=name, path=path),))

    async def click(self, key: str, *, action_id: str, value: str, block_id: str) -> None:
        """Press a button of the message ``key`` (a ts, or an ephemeral's id): a ``block_actions`` payload whose
        action says what was clicked as Slack does (:func:`clicked_action`: a button, or a feedback button's side)."""
        _ = self.sender
        response_url = self.slack.new_response_url()
        path = _path(response_url)
        ephemeral = self._ephemerals.items.get(key)
        msg = None
        if ephemeral is not None:
            message_ts, thread_ts = ephemeral.ts, ephemeral.thread_ts
            self._ephemerals.origins[path] = _Origin(ephemeral=ephemeral.id, thread_ts=thread_ts)
        else:
            msg = self.slack.find_message(CHANNEL, key)
            if msg is None:
                raise KeyError(key)
            message_ts, thread_ts = msg.ts, msg.thread_ts
            self._ephemerals.origins[path] = _Origin(thread_ts=thread_ts)
        payload = block_actions(action_id, value, channel_id=CHANNEL, user_id=USER, message_ts=message_ts,
                                response_url=response_url, team_id=self.slack.team_id, block_id=block_id)
        blocks = ephemeral.blocks if ephemeral is not None else msg.blocks if msg is not None else None
        payload["actions"][0].update(clicked_action(blocks, block_id=block_id, action_id=action_id, value=value))
        payload["user"].update({"username": "you", "name": "you"})
        payload["channel"]["name"] = CHANNEL_NAME
        payload["container"].update({"is_ephemeral": ephemeral is not None, "thread_ts": thread_ts})
        if msg is not None:
            payload["message"] = msg.to_api(team_id=self.slack.team_id, app_id=self.slack.app_id)
        else:  # an ephemeral message is nowhere the app could read it: Slack sends only the container
            payload.pop("message", None)
        self._check(await self.sender.send_interactive(payload), "the click")

    def dismiss(self, ephemeral_id: str) -> None:
        """Hide an ephemeral message (Slack's "Dismiss")."""
        self._ephemerals.items.pop(ephemeral_id, None)

    # ------------------------------------------------------------------ what the person sees

    def ephemerals(self) -> list[Ephemeral]:
        """Every ephemeral the person can see, after gathering new ones from the emulator."""
        log = self._ephemerals
        for posted in self.slack.ephemerals[log.seen_posted:]:
            if posted.get("user") == USER and posted.get("channel") == CHANNEL:
                self._add(Ephemeral(id=_new_id(), ts=str(posted["message_ts"]), text=str(posted.get("text") or ""),
                                    blocks=posted.get("blocks"), thread_ts=posted.get("thread_ts") or None,
                                    author=self.slack.bot_user_id))
        log.seen_posted = len(self.slack.ephemerals)
        for response in self.slack.command_responses[log.seen_responses:]:
            self._respond(response)
        log.seen_responses = len(self.slack.command_responses)
        return list(log.items.values())

    # ------------------------------------------------------------------ internals

    def _root(self, thread_ts: str | None) -> str | None:
        """The thread root of a reply (a reply to a reply goes to the same thread, as in Slack)."""
        if not thread_ts:
            return None
        msg = self.slack.find_message(CHANNEL, thread_ts)
        return (msg.thread_ts or msg.ts) if msg is not None else thread_ts

    def _host(self, upload: Upload) -> Json:
        mimetype = mimetypes.guess_type(upload.name)[0] or "application/octet-stream"
        if upload.name.lower().endswith((".csv", ".tsv")):
            mimetype = "text/csv" if upload.name.lower().endswith(".csv") else "text/tab-separated-values"
        return self.slack.add_file(name=upload.name, content=upload.path, user=USER, mimetype=mimetype,
                                   filetype=filetype_of(upload.name))

    async def _deliver(self, event: Json) -> None:
        reply = await self.sender.send_event(envelope(event, team_id=self.slack.team_id,
                                                       api_app_id=self.slack.app_id,
                                                       bot_user_id=self.slack.bot_user_id))
        self._check(reply, f"the {event.get('type')} event")

    @staticmethod
    def _check(reply: SignedReply, what: str) -> None:
        if reply.status >= 300:
            raise DeliveryError(f"The bot answered {what} with HTTP {reply.status}.")

    async def _command(self, text: str, *, thread_ts: str | None) -> None:
        command, _, rest = text.partition(" ")
        if command != COMMAND:
            self._add(Ephemeral(id=_new_id(), ts=fresh_ts(), thread_ts=thread_ts, author="USLACKBOT",
                                text=f"`{slack_escape(command)}` is not a valid command. In this demo, the one "
                                     f"command is `{COMMAND}` (try `{COMMAND} help`)."))
            await self.slack.recorder.notify()
            return
        response_url = self.slack.new_response_url()
        fields = slash_command(COMMAND, rest.strip(), CHANNEL, USER, response_url, team_id=self.slack.team_id,
                               api_app_id=self.slack.app_id, channel_name=CHANNEL_NAME, user_name="you")
        self._ephemerals.origins[_path(response_url)] = _Origin(thread_ts=thread_ts)
        reply = await self.sender.send_command(fields)
        self._check(reply, f"`{COMMAND}`")
        answer = reply.json if isinstance(reply.json, dict) else ({"text": reply.body} if reply.body.strip() else {})
        if answer.get("text") or answer.get("blocks"):
            self._respond({"path": _path(response_url), **answer})
        await self.slack.recorder.notify()

    def _respond(self, response: Json) -> None:
        """Apply one ``response_url`` post (or a command's acknowledgement body) as Slack shows it."""
        origin = self._ephemerals.origins.get(str(response.get("path")), _Origin())
        target = self._ephemerals.items.get(origin.ephemeral or "")
        if response.get("delete_original") and target is not None:
            self.dismiss(target.id)
            return
        text, blocks = str(response.get("text") or ""), response.get("blocks")
        if response.get("replace_original") and target is not None:
            target.text, target.blocks = text, blocks
            return
        if response.get("response_type") == "in_channel":
            self.slack.add_message(channel=CHANNEL, user=self.slack.bot_user_id, text=text,
                                   thread_ts=origin.thread_ts, bot_id=self.slack.bot_id).blocks = blocks
            return
        item = Ephemeral(id=_new_id(), ts=fresh_ts(), text=text, blocks=blocks, thread_ts=origin.thread_ts,
                         author=self.slack.bot_user_id, response_url=str(response.get("path") or ""))
        self._add(item)
        if item.response_url:  # a later post to the same response_url replaces this one
            self._ephemerals.origins[item.response_url] = _Origin(ephemeral=item.id, thread_ts=item.thread_ts)

    def _add(self, item: Ephemeral) -> None:
        self._ephemerals.items[item.id] = item


def _new_id() -> str:
    return f"eph-{uuid.uuid4().hex[:12]}"


def _path(url: str) -> str:
    return "/" + url.split("/", 3)[3]

