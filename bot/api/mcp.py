"""``datastory mcp``: the API's operations as an MCP server on the official SDK (``mcp``), so agents (IDE agents,
desktop assistants, Slack's own assistant) can use datastory.

The tools (``upload_dataset``, ``analyze``, ``refine``, ``ask``, ``get_file``) call the same
:class:`~bot.api.service.SessionService` as the HTTP routes: same keys, sessions and limits. Over streamable HTTP
(at ``/mcp``, served by uvicorn beside the HTTP API of the same process) every HTTP request needs
``Authorization: Bearer <key>`` at the transport: the SDK's bearer-auth middleware asks :class:`ApiKeyVerifier`
(the API's own key check), and a request without a live key gets 401 with ``WWW-Authenticate: Bearer
error="invalid_token"`` before any MCP message is read; a tool acts as the key its request was verified as. The
SDK binds each MCP session to the key that opened it. Over stdio the local user is trusted with the process, but a
key still names whose sessions and limits apply: ``DATASTORY_API_KEY``, checked at start-up (no live key: the
server does not start) and again on each call (a revoked key stops working within
:data:`bot.api.keys.CACHE_SECONDS`). A refused call is a tool error whose text carries the HTTP status and the
problem's code (``404 not_found: …``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, TypeVar

import uvicorn
from aiohttp import web
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.utilities.types import Image
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from bot import __version__
from bot.api.app import ApiApp, open_api_app
from bot.api.models import RefineIn
from bot.api.problems import INVALID_REQUEST, UNAUTHORIZED, ApiProblem
from bot.api.routes import PREFIX
from bot.api.runs import IMAGE_SUFFIXES
from bot.api.service import Incoming, SessionService
from bot.config import Settings
from bot.store.sessions import ApiKeyRecord

logger = logging.getLogger(__name__)

CHUNK = 1024 * 1024
T = TypeVar("T")
INSTRUCTIONS = ("datastory analyses tables (CSV, TSV, Excel, JSON). Call upload_dataset with the files, then analyze "
                "for story angles, then refine with an angle id (or ask with a question) for the full narrative, "
                "charts and code; get_file fetches a chart or result file.")


class Dataset(BaseModel):
    """One file to upload."""

    name: str = Field(description="The file name, with its extension (sales.csv, data.xlsx).")
    content: str = Field(description="The file's content: text as it is, or base64 for binary files.")
    encoding: Literal["text", "base64"] = Field(default="text", description="How `content` is given.")


class KeyToken(AccessToken):
    """A verified API key, as the SDK's auth middleware keeps it for the request (``client_id`` is the key id)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    record: ApiKeyRecord


class ApiKeyVerifier:
    """The SDK's :class:`~mcp.server.auth.provider.TokenVerifier` over the API's keys: the same check (and
    ``last_used_at``) as an HTTP API request."""

    def __init__(self, service: SessionService) -> None:
        self._service = service

    async def verify_token(self, token: str) -> AccessToken | None:
        """The key ``token`` is, or None (malformed, unknown, revoked): the middleware answers 401."""
        try:
            record = await self._service.authenticate(token)
        except ApiProblem:
            return None
        return KeyToken(token=token, client_id=record.id, scopes=[], record=record)


def _verified(ctx: Context) -> ApiKeyRecord | None:
    """The key the transport verified this request as (streamable HTTP), or None (stdio has no request)."""
    request = ctx.request_context.request
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    if isinstance(user, AuthenticatedUser) and isinstance(user.access_token, KeyToken):
        return user.access_token.record
    return None


def _tool_error(exc: ApiProblem) -> ToolError:
    wait = f" (retry after {exc.retry_after} s)" if exc.retry_after else ""
    return ToolError(f"{exc.status} {exc.code}: {exc.detail}{wait}")


def _incoming(files: list[Dataset]) -> Incoming:
    async def each() -> Incoming:
        for f in files:
            try:
                data = base64.b64decode(f.content, validate=True) if f.encoding == "base64" else f.content.encode()
            except (binascii.Error, ValueError):
                raise ApiProblem(422, INVALID_REQUEST, f"`{f.name}`: the content is not valid base64.") from None
            yield f.name, _chunks(data)

    return each()


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), CHUNK):
        yield data[start:start + CHUNK]


def build_mcp(service: SessionService, *, stdio_key: str | None = None,
              issuer_url: str = "http://127.0.0.1") -> MCPServer:
    """The MCP server over ``service``. Its streamable HTTP app needs a live key on every request (checked by
    :class:`ApiKeyVerifier` in the SDK's middleware; ``issuer_url``, the server's own URL, is what the SDK's auth
    settings require; no OAuth routes are served). ``stdio_key`` is the key of a stdio connection (no headers)."""
    server: MCPServer = MCPServer(
        name="datastory", version=__version__, instructions=INSTRUCTIONS, token_verifier=ApiKeyVerifier(service),
        auth=AuthSettings(issuer_url=AnyHttpUrl(issuer_url), resource_server_url=None, required_scopes=[]))

    async def call(ctx: Context, op: Callable[[ApiKeyRecord], Awaitable[T]]) -> T:
        """Run ``op`` as the caller's key (the one its HTTP request was verified as; over stdio ``stdio_key``,
        checked again); a problem becomes a tool error."""
        try:
            owner = _verified(ctx)
            if owner is None:
                if ctx.headers is not None:  # an HTTP request the middleware did not verify: never served
                    raise ApiProblem(401, UNAUTHORIZED, "Send a live API key as `Authorization: Bearer ds_…`.")
                owner = await service.authenticate(stdio_key)
            return await op(owner)
        except ApiProblem as exc:
            raise _tool_error(exc) from None

    @server.tool()
    async def upload_dataset(files: list[Dataset], ctx: Context) -> dict[str, Any]:
        """Upload one or more tables; returns the session (its id, how each file was read, when it expires)."""
        out = await call(ctx, lambda key: service.create(key, _incoming(files)))
        return out.model_dump(mode="json")

    @server.tool()
    async def analyze(session_id: str, ctx: Context) -> dict[str, Any]:
        """Story angles of the session's data: each with an id to refine."""
        return (await call(ctx, lambda key: service.analyze(key, session_id))).model_dump(mode="json")

    @server.tool()
    async def refine(session_id: str, angle_id: str, ctx: Context) -> dict[str, Any]:
        """The full story of one angle: narrative (Markdown), charts and result files (fetch with get_file), code."""
        out = await call(ctx, lambda key: service.refine(key, session_id, RefineIn.of(angle_id=angle_id)))
        return out.model_dump(mode="json")

    @server.tool()
    async def ask(session_id: str, question: str, ctx: Context) -> dict[str, Any]:
        """Answer a question about the session's data: narrative, charts, result files, code."""
        out = await call(ctx, lambda key: service.refine(key, session_id, RefineIn.of(question=question)))
        return out.model_dump(mode="json")

    @server.tool()
    async def get_file(session_id: str, file_id: str, ctx: Context) -> Image | str:
        """A chart (as an image) or a result file (its text) the session's analyses wrote."""
        path, name = await call(ctx, lambda key: service.output(key, session_id, file_id))
        data = await asyncio.to_thread(path.read_bytes)
        suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
        if suffix in IMAGE_SUFFIXES:
            return Image(data=data, format={".jpg": "jpeg", ".svg": "svg+xml"}.get(suffix, suffix[1:]))
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(data).decode()

    return server


async def _api_site(app: ApiApp, host: str, port: int) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app.web, handle_signals=False, access_log=None)
    await runner.setup()  # the app's start-up: store, sandbox, sweeper
    await web.TCPSite(runner, host, port).start()
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{bound_host}:{bound_port}"


async def serve_mcp(settings: Settings, *, stdio: bool, host: str, port: int, api_port: int,
                    ready: Callable[[str], None] | None, stop: asyncio.Event) -> int:
    """Serve MCP over stdio, or over streamable HTTP at ``/mcp`` beside the HTTP API, until ``stop``."""
    app = await open_api_app(settings)
    key = settings.api_key.get_secret_value() if settings.api_key else None
    if stdio:
        server = build_mcp(app.service, stdio_key=key)
        await app.start()
        try:
            try:
                await app.service.authenticate(key)  # the trusted local user still names a live key
            except ApiProblem:
                print("datastory mcp --stdio: DATASTORY_API_KEY must be a live API key (`datastory api-key create "
                      "NAME` makes one); it names whose sessions, budget and limits apply.", file=sys.stderr)
                return 2
            work = asyncio.create_task(server.run_stdio_async())
            if ready:
                ready("stdio")
            await asyncio.wait({work, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
        finally:
            await app.stop()
        return 0
    runner, api_url = await _api_site(app, host, api_port)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = f"http://{f'[{host}]' if ':' in host else host}:{sock.getsockname()[1]}"
    server = build_mcp(app.service, issuer_url=bound)
    http = uvicorn.Server(uvicorn.Config(server.streamable_http_app(host=host), log_level="warning",
                                         lifespan="on", access_log=False))
    serving = asyncio.create_task(http.serve(sockets=[sock]))
    while not http.started and not serving.done():
        await asyncio.sleep(0.01)
    url = f"{bound}/mcp"
    logger.info("mcp serving %s beside the API at %s%s/", url, api_url, PREFIX)
    if ready:
        ready(url)
    await asyncio.wait({serving, asyncio.create_task(stop.wait())}, return_when=asyncio.FIRST_COMPLETED)
    http.should_exit = True
    with contextlib.suppress(Exception):
        await serving
    sock.close()
    await runner.cleanup()
    return 0
