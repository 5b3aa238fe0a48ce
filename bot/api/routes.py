"""The HTTP API's routes on aiohttp (the bot's own server): ``/v1/sessions…`` and ``/v1/openapi.json``.

Every route but the OpenAPI document needs ``Authorization: Bearer <key>``. Errors are problem details
(``application/problem+json``) with a stable ``code``, from :class:`bot.api.problems.ApiProblem` and from aiohttp's
own (unknown route, wrong method); anything unexpected is a 500 with a reference, logged with its trace. An upload
whose ``Content-Length`` is already over the limit gets 413 before its body is read; a streamed one is counted and
cut at the limit.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ValidationError

from bot.api.models import Problem, RefineIn, TurnResult
from bot.api.openapi import openapi_document
from bot.api.problems import INVALID_REQUEST, UNSUPPORTED_TYPE, ApiProblem
from bot.api.service import Incoming, SessionService
from bot.api.uploads import too_large
from bot.errors import new_ref
from bot.store.sessions import ApiKeyRecord

logger = logging.getLogger(__name__)

PREFIX = "/v1"
CHUNK = 256 * 1024
MULTIPART_OVERHEAD = 64 * 1024
"""Bytes of multipart framing allowed per file beyond the files' own limit."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> web.Response:
    """A problem document as the response."""
    return web.json_response(problem.model_dump(), status=problem.status, headers=headers,
                             content_type="application/problem+json")


def _json(model: BaseModel, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(model.model_dump(mode="json"), status=status, headers=headers)


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure under ``/v1`` as a problem document."""
    if not request.path.startswith(PREFIX + "/"):
        return await handler(request)
    try:
        return await handler(request)
    except ApiProblem as exc:
        return problem_response(exc.problem(), exc.headers())
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.status, "http_error")
        kept = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}  # RFC 9110 Allow
        return problem_response(ApiProblem(exc.status, code, exc.reason or "HTTP error").problem(), kept)
    except Exception as exc:
        ref = new_ref()
        logger.error("api request failed path=%s ref=%s error=%s", request.path, ref, type(exc).__name__,
                     exc_info=exc)
        return problem_response(ApiProblem(500, "internal_error", f"Something went wrong on our side (ref {ref})."
                                           ).problem())


class Routes:
    """The handlers over one :class:`SessionService`."""

    def __init__(self, service: SessionService) -> None:
        self._service = service

    def mount(self, app: web.Application) -> None:
        """Add the routes (and the problem middleware) to ``app``."""
        app.middlewares.append(problems)
        r = app.router
        r.add_get(f"{PREFIX}/openapi.json", self.openapi)
        r.add_post(f"{PREFIX}/sessions", self.create)
        r.add_get(f"{PREFIX}/sessions/{{session_id}}", self.get)
        r.add_delete(f"{PREFIX}/sessions/{{session_id}}", self.delete)
        r.add_post(f"{PREFIX}/sessions/{{session_id}}/analyze", self.analyze)
        r.add_post(f"{PREFIX}/sessions/{{session_id}}/refine", self.refine)
        r.add_get(f"{PREFIX}/sessions/{{session_id}}/turns/{{turn_id}}", self.turn)
        r.add_delete(f"{PREFIX}/sessions/{{session_id}}/turns/{{turn_id}}", self.cancel)
        r.add_get(f"{PREFIX}/sessions/{{session_id}}/files/{{file_id}}", self.file)

    async def _owner(self, request: web.Request) -> ApiKeyRecord:
        return await self._service.authenticate(request.headers.get("Authorization"))

    async def openapi(self, request: web.Request) -> web.Response:
        """The OpenAPI 3.1 document."""
        return web.json_response(openapi_document())

    async def create(self, request: web.Request) -> web.Response:
        """``POST /v1/sessions``: multipart upload of one or more files."""
        owner = await self._owner(request)
        limits = self._service.limits
        most = limits.max_files * (limits.max_file_bytes + MULTIPART_OVERHEAD)
        if request.content_length is not None and request.content_length > most:
            raise too_large(limits.max_file_bytes)
        if not request.content_type.startswith("multipart/"):
            raise ApiProblem(415, UNSUPPORTED_TYPE, "Upload the files as multipart/form-data (one file part each).")
        try:
            reader = await request.multipart()
        except (AssertionError, ValueError) as exc:  # no boundary, or not multipart after all
            raise ApiProblem(415, UNSUPPORTED_TYPE, "The multipart/form-data body could not be read.") from exc
        session = await self._service.create(owner, _files_of(reader))
        return _json(session, 201, {"Location": f"{PREFIX}/sessions/{session.session_id}"})

    async def get(self, request: web.Request) -> web.Response:
        """``GET /v1/sessions/{id}``."""
        return _json(await self._service.get(await self._owner(request), request.match_info["session_id"]))

    async def delete(self, request: web.Request) -> web.Response:
        """``DELETE /v1/sessions/{id}``."""
        await self._service.delete(await self._owner(request), request.match_info["session_id"])
        return web.Response(status=204)

    async def analyze(self, request: web.Request) -> web.Response:
        """``POST /v1/sessions/{id}/analyze``."""
        owner = await self._owner(request)
        out = await self._service.analyze(owner, request.match_info["session_id"], wait=not _async(request))
        return _started(out) if isinstance(out, TurnResult) else _json(out)

    async def refine(self, request: web.Request) -> web.Response:
        """``POST /v1/sessions/{id}/refine`` with ``{"angle_id": …}`` or ``{"question": …}``."""
        owner = await self._owner(request)
        try:
            body = RefineIn.model_validate_json(await request.read())
        except ValidationError as exc:
            reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors())
            raise ApiProblem(422, INVALID_REQUEST, f"The request body is not valid: {reasons}.") from None
        out = await self._service.refine(owner, request.match_info["session_id"], body, wait=not _async(request))
        return _started(out) if isinstance(out, TurnResult) else _json(out)

    async def turn(self, request: web.Request) -> web.Response:
        """``GET /v1/sessions/{id}/turns/{turn_id}``: the status URL of an asynchronous turn."""
        return _json(await self._service.turn(await self._owner(request), request.match_info["session_id"],
                                              request.match_info["turn_id"]))

    async def cancel(self, request: web.Request) -> web.Response:
        """``DELETE /v1/sessions/{id}/turns/{turn_id}``: cancel it."""
        return _json(await self._service.cancel(await self._owner(request), request.match_info["session_id"],
                                                request.match_info["turn_id"]))

    async def file(self, request: web.Request) -> web.StreamResponse:
        """``GET /v1/sessions/{id}/files/{file_id}``: stream a chart or result file."""
        path, name = await self._service.output(await self._owner(request), request.match_info["session_id"],
                                                request.match_info["file_id"])
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        safe = name.replace('"', "'").encode("ascii", "replace").decode()
        return web.FileResponse(path, headers={"Content-Type": kind,
                                               "Content-Disposition": f'attachment; filename="{safe}"'})


def _async(request: web.Request) -> bool:
    """``Prefer: respond-async`` (RFC 7240)."""
    return any(p.strip().lower() == "respond-async" for p in request.headers.get("Prefer", "").split(","))


def _started(out: TurnResult) -> web.Response:
    status = 202 if out.turn.status in ("queued", "running") else 200
    return _json(out, status, {"Location": out.turn.status_url, "Preference-Applied": "respond-async"})


def _malformed(exc: Exception) -> ApiProblem:
    return ApiProblem(400, INVALID_REQUEST, f"The multipart/form-data body is malformed ({type(exc).__name__}).")


async def _next_part(reader: Any) -> Any:
    try:
        return await reader.next()
    except (HttpProcessingError, ValueError, AssertionError) as exc:  # bad part headers, boundaries, encodings
        raise _malformed(exc) from None


async def _files_of(reader: Any) -> Incoming:
    """The file parts of a multipart body, each streamed (other fields are skipped)."""
    while (part := await _next_part(reader)) is not None:
        if not isinstance(part, BodyPartReader) or part.filename is None:
            if isinstance(part, BodyPartReader):
                await part.release()
            continue
        yield part.filename, _chunks(part)


async def _chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while True:
        try:
            chunk = await part.read_chunk(CHUNK)
        except (HttpProcessingError, ValueError, AssertionError) as exc:
            raise _malformed(exc) from None
        if not chunk:
            return
        yield chunk
