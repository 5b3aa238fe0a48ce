"""What the demo page shows: the channel's messages, reactions, files and ephemerals as plain JSON objects.

Each view has a stable ``key`` (the message ts, or an ephemeral's id); the page's event stream sends a view again
only when it changed, so a status message that the bot updates is re-sent and the charts above it stay put.
Message text and blocks are passed as Slack holds them (mrkdwn, Block Kit): the page renders them.
"""

from __future__ import annotations

from urllib.parse import quote

from bot.demo.slack_state import FakeMessage, Json, ts_key
from bot.demo.workspace import CHANNEL, DemoWorkspace, Ephemeral

INLINE_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""Image types the page shows inline; anything else (SVG included) is offered as a download."""


def file_url(file_id: str, name: str) -> str:
    """Where the page opens a hosted file (the person is signed in to the workspace, as in Slack's client)."""
    return f"/demo/files/{quote(file_id, safe='')}/{quote(name, safe='')}"


def _file(payload: Json) -> Json:
    name = str(payload.get("name") or payload.get("id") or "file")
    mimetype = str(payload.get("mimetype") or "application/octet-stream")
    return {"id": payload.get("id"), "name": name, "title": str(payload.get("title") or name),
            "mimetype": mimetype, "filetype": payload.get("filetype") or "", "size": payload.get("size") or 0,
            "url": file_url(str(payload.get("id")), name), "image": mimetype in INLINE_IMAGES}


def _author(workspace: DemoWorkspace, user_id: str, *, bot: bool) -> Json:
    if user_id == "USLACKBOT":
        return {"id": user_id, "name": "Slackbot", "bot": True}
    user = workspace.slack.users.get(user_id) or {}
    name = user.get("name") if bot else user.get("real_name")
    return {"id": user_id, "name": str(name or user_id), "bot": bot}


def _message(workspace: DemoWorkspace, msg: FakeMessage, replies: list[FakeMessage]) -> Json:
    reactions = workspace.slack.reactions.get((msg.channel, msg.ts), set())
    return {
        "key": msg.ts, "ts": msg.ts, "thread_ts": msg.thread_ts if msg.thread_ts != msg.ts else None,
        "author": _author(workspace, msg.user, bot=msg.is_bot), "text": msg.text, "blocks": msg.blocks,
        "files": [_file(f) for f in msg.files], "reactions": [{"name": n, "count": 1} for n in sorted(reactions)],
        "edited": bool(msg.history), "ephemeral": False,
        "reply_count": len(replies), "last_reply": replies[-1].ts if replies else None,
    }


def _ephemeral(workspace: DemoWorkspace, item: Ephemeral) -> Json:
    return {
        "key": item.id, "ts": item.ts, "thread_ts": item.thread_ts,
        "author": _author(workspace, item.author, bot=True), "text": item.text, "blocks": item.blocks,
        "files": [], "reactions": [], "edited": False, "ephemeral": True, "reply_count": 0, "last_reply": None,
    }


def channel_views(workspace: DemoWorkspace) -> list[Json]:
    """Every message and ephemeral of the demo channel, oldest first."""
    messages = sorted((m for m in workspace.slack.messages if m.channel == CHANNEL), key=lambda m: ts_key(m.ts))
    replies: dict[str, list[FakeMessage]] = {}
    for m in messages:
        if m.thread_ts and m.thread_ts != m.ts:
            replies.setdefault(m.thread_ts, []).append(m)
    views = [_message(workspace, m, replies.get(m.ts, []) if not m.thread_ts or m.thread_ts == m.ts else [])
             for m in messages]
    views += [_ephemeral(workspace, e) for e in workspace.ephemerals()]
    views.sort(key=lambda v: ts_key(str(v["ts"])))
    return views
