"""The demo page, served by the emulator's own aiohttp application: a Slack-like channel in the browser.

Routes (mounted by :func:`mount` next to the emulator's ``/api/…`` and file routes):

- ``GET /`` and ``GET /static/…``: the page (plain HTML, CSS and JavaScript shipped in the package; no build
  step, nothing from the network).
- ``GET /demo/info``: the workspace, the channel, the person, the bot and what analyses (offline or a model).
- ``GET /demo/events``: Server-Sent Events; ``reset`` then one ``message`` event per message view
  (:mod:`bot.demo.views`), again whenever a view changes, and ``remove`` when one goes.
- ``POST /demo/messages`` (multipart: ``text``, ``thread_ts``, ``tz``, ``file``…): post as the person.
- ``POST /demo/examples/{name}``: share a packaged example; ``POST /demo/actions``: press a button;
  ``POST /demo/dismiss``: hide an ephemeral; ``GET /demo/files/{id}/{name}``: open a hosted file.

Every response carries a Content-Security-Policy that allows only this origin, and files are served with
``nosniff`` and a sandbox policy (a file the bot wrote is data, never a page that runs here).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web

from bot.demo.slack_state import Json
from bot.demo.views import INLINE_IMAGES, channel_views
from bot.demo.workspace import CHANNEL, CHANNEL_NAME, USER, DeliveryError, DemoWorkspace, Upload

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
MAX_UPLOAD_BYTES = 2 << 30
"""Uploads larger than this are refused by the page (the bot's own limit, DATASTORY_MAX_FILE_MB, is lower)."""
KEEPALIVE_SECONDS = 15.0
PAGE_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
               "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
FILE_POLICY = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"
_SAFE_NAME = re.compile(r"[^\w.\- ()]+")

WORKSPACE_KEY = web.AppKey("demo_workspace", DemoWorkspace)
INFO_KEY: web.AppKey[Json] = web.AppKey("demo_info")
UPLOADS_KEY = web.AppKey("demo_uploads", Path)

Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


def mount(app: web.Application, workspace: DemoWorkspace, *, info: Json, uploads: Path) -> None:
    """Add the page's routes and headers to the emulator's application."""
    app[WORKSPACE_KEY] = workspace
    app[INFO_KEY] = info
    app[UPLOADS_KEY] = uploads
    app.router.add_get("/", _index)
    app.router.add_static("/static/", STATIC, append_version=False)
    app.router.add_get("/demo/info", _info)
    app.router.add_get("/demo/events", _events)
    app.router.add_post("/demo/messages", _post_message)
    app.router.add_post("/demo/examples/{name}", _share_example)
    app.router.add_post("/demo/actions", _action)
    app.router.add_post("/demo/dismiss", _dismiss)
    app.router.add_get("/demo/files/{file_id}/{name}", _file)
    app.middlewares.append(_headers)


@web.middleware
async def _headers(request: web.Request, handler: Route) -> web.StreamResponse:
    response = await handler(request)
    if request.path == "/" or request.path.startswith("/static/"):
        response.headers.setdefault("Content-Security-Policy", PAGE_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Cache-Control", "no-cache")
    return response


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Content-Type": "text/html; charset=utf-8"})


def _workspace(request: web.Request) -> DemoWorkspace:
    return request.app[WORKSPACE_KEY]


async def _info(request: web.Request) -> web.Response:
    workspace = _workspace(request)
    examples = [_example_info(name, path) for name, path in workspace.examples.items()]
    base: Json = request.app[INFO_KEY]
    info = dict(base)
    info.update({"channel": {"id": CHANNEL, "name": CHANNEL_NAME}, "user": {"id": USER, "name": "You"},
                 "examples": examples, "bot": {"id": workspace.slack.bot_user_id, "name": "datastory"}})
    return web.json_response(info)


def _example_info(name: str, path: Path) -> Json:
    with path.open(encoding="utf-8", errors="replace") as f:
        header = f.readline().strip().split(",")
        rows = sum(1 for _ in f)
    return {"name": name, "rows": rows, "columns": header, "size": path.stat().st_size}


async def _events(request: web.Request) -> web.StreamResponse:
    """The channel as Server-Sent Events: every view once, then each view again when it changes."""
    workspace = _workspace(request)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    await response.write(b"event: reset\ndata: {}\n\n")
    sent: dict[str, str] = {}
    try:
        while True:
            current = {str(v["key"]): json.dumps(v, separators=(",", ":")) for v in channel_views(workspace)}
            chunks = [f"event: remove\ndata: {json.dumps({'key': key})}\n\n" for key in sent.keys() - current.keys()]
            chunks += [f"event: message\ndata: {data}\n\n" for key, data in current.items() if sent.get(key) != data]
            sent = current
            if chunks:
                await response.write("".join(chunks).encode())
            if not await workspace.slack.recorder.next_change(timeout=KEEPALIVE_SECONDS):
                await response.write(b": keepalive\n\n")
    except ConnectionResetError:  # the page was closed or reloaded
        pass
    return response


def _safe_name(name: str) -> str:
    """A file name as the person gave it, without directories or control characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return _SAFE_NAME.sub("_", base)[:200].lstrip(".") or "file"


async def _save_upload(part: BodyPartReader, folder: Path) -> Upload:
    name = _safe_name(part.filename or "file")
    target = folder / uuid.uuid4().hex
    target.mkdir()
    path = target / name
    size = 0
    with path.open("wb") as out:
        while chunk := await part.read_chunk(1 << 20):
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:
                raise web.HTTPRequestEntityTooLarge(max_size=MAX_UPLOAD_BYTES, actual_size=size)
            out.write(chunk)
    return Upload(name=name, path=path)


async def _post_message(request: web.Request) -> web.Response:
    """Multipart form: ``text``, ``thread_ts``, ``tz`` and any number of ``file`` parts."""
    if not request.content_type.startswith("multipart/"):
        return _problem(400, "Send the message as multipart/form-data.")
    fields: dict[str, str] = {}
    uploads: list[Upload] = []
    reader = await request.multipart()
    async for part in reader:
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "file" and part.filename:
            uploads.append(await _save_upload(part, request.app[UPLOADS_KEY]))
        elif part.name in ("text", "thread_ts", "tz"):
            fields[part.name] = (await part.text())[:40_000]
    if not fields.get("text", "").strip() and not uploads:
        return _problem(400, "Write a message or attach a file.")
    workspace = _workspace(request)
    if fields.get("tz"):
        workspace.set_time_zone(fields["tz"])
    return await _act(lambda: workspace.post(fields.get("text", ""), thread_ts=fields.get("thread_ts") or None,
                                             uploads=tuple(uploads)))


async def _share_example(request: web.Request) -> web.Response:
    workspace = _workspace(request)
    name = request.match_info["name"]
    if name not in workspace.examples:
        return _problem(404, f"There is no example called {name}.")
    form = await request.post()
    thread_ts = str(form.get("thread_ts") or "") or None
    return await _act(lambda: workspace.share_example(name, thread_ts=thread_ts))


async def _action(request: web.Request) -> web.Response:
    body = await _json(request)
    key, action_id = str(body.get("key") or ""), str(body.get("action_id") or "")
    if not key or not action_id:
        return _problem(400, "A button press needs the message and the action.")
    workspace = _workspace(request)

    async def click() -> str:
        await workspace.click(key, action_id=action_id, value=str(body.get("value") or ""),
                              block_id=str(body.get("block_id") or ""))
        return key

    return await _act(click)


async def _dismiss(request: web.Request) -> web.Response:
    workspace = _workspace(request)
    workspace.dismiss(str((await _json(request)).get("key") or ""))
    await workspace.slack.recorder.notify()
    return web.json_response({"ok": True})


async def _act(action: Callable[[], Awaitable[str]]) -> web.Response:
    try:
        ts = await action()
    except KeyError:
        return _problem(404, "That message is gone.")
    except DeliveryError as exc:
        return _problem(502, str(exc))
    except OSError as exc:  # the bot's port refused the connection: it stopped
        logger.warning("demo: delivery to the bot failed: %s", exc)
        return _problem(502, "The bot is not answering (it may have stopped). Restart `datastory demo`.")
    return web.json_response({"ok": True, "ts": ts})


async def _json(request: web.Request) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        body = await request.json()
        if isinstance(body, dict):
            return body
    return {}


def _problem(status: int, text: str) -> web.Response:
    return web.json_response({"ok": False, "error": text}, status=status)


async def _file(request: web.Request) -> web.StreamResponse:
    workspace = _workspace(request)
    hosted = workspace.slack.hosted_file(request.match_info["file_id"])
    if hosted is None:
        raise web.HTTPNotFound(text="This file is gone.")
    mimetype = str(hosted.payload.get("mimetype") or "")
    response = await workspace.slack.serve_file(request, hosted, attachment=mimetype not in INLINE_IMAGES)
    response.headers.update({"Content-Security-Policy": FILE_POLICY, "X-Content-Type-Options": "nosniff",
                             "Cache-Control": "private, max-age=3600"})
    return response

