"""The ``openai`` sandbox backend: hosted containers over the Containers API.

Every call goes through the ``openai`` SDK (``AsyncOpenAI``, passed in) except :meth:`OpenAISandbox.upload`:
the SDK reads a file fully into memory before sending it, so uploads are streamed with an ``aiohttp`` session as
one ``multipart/form-data`` part named ``file`` (exact ``Content-Length`` when the size is known, chunked
otherwise). Provider errors become :mod:`bot.sandbox.base` errors through :func:`translate_error`, the one place
that knows the provider's status codes and messages.
"""

from __future__ import annotations

import contextlib
import json
import logging
import mimetypes
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal, cast
from urllib.parse import quote

import aiohttp
import openai
from openai import AsyncOpenAI

from bot.config import MAX_CONTAINER_IDLE_MINUTES
from bot.sandbox.base import (
    ContainerExpired,
    ContainerInfo,
    ContainerNotFound,
    SandboxError,
    SandboxFile,
    SandboxTimeout,
    SandboxUnavailable,
)
from bot.sandbox.helper import helper_files

logger = logging.getLogger(__name__)

MemoryLimit = Literal["1g", "4g", "16g", "64g"]

_PAGE_SIZE = 100
_EXPIRED_RE = re.compile(r"container is expired", re.IGNORECASE)
_MISSING_FILE_RE = re.compile(r"\bfile\b.*\bnot found\b", re.IGNORECASE)
_NOT_A_CONTAINER_404_RE = re.compile(r"invalid url|\bmodel\b|\bresponse with id\b", re.IGNORECASE)
_FORM_ESCAPES = {'"': "%22", "\\": "\\\\"} | {chr(c): f"%{c:02X}" for c in range(0x20) if c != 0x1B}
_FORM_ESCAPE_RE = re.compile("|".join(re.escape(c) for c in _FORM_ESCAPES))


def error_for_status(status: int, message: str) -> SandboxError | None:
    """The sandbox error for an HTTP error ``status`` with the provider's ``message``, or ``None`` if none fits.

    404 means the container is gone, except when the message is about a missing file (the container exists:
    a plain :class:`SandboxError`) or not about containers at all (a wrong URL or model: ``None``).
    """
    if status == 404:
        if _MISSING_FILE_RE.search(message) and "container with id" not in message.lower():
            return SandboxError(f"The file is not in the container: {message}")
        if _NOT_A_CONTAINER_404_RE.search(message):
            return None
        return ContainerNotFound(message or "The container does not exist any more; it will be rebuilt.")
    if status == 400 and _EXPIRED_RE.search(message):
        return ContainerExpired(message)
    if status == 408:
        return SandboxTimeout(message or "The sandbox provider timed out.")
    if status == 429 or status >= 500:
        return SandboxUnavailable(f"The sandbox provider is unavailable for now (HTTP {status}): {message}")
    return None


def _status_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return cast(str, body["message"])
    return re.sub(r"^Error code: \d+ - ", "", exc.message)


def translate_error(exc: BaseException) -> SandboxError | None:
    """Map a provider exception (SDK or the aiohttp upload path) to a sandbox error; ``None`` when it is not one.

    ``NotFoundError`` → :class:`ContainerNotFound` (see :func:`error_for_status` for the exceptions),
    400 ``Container is expired.`` → :class:`ContainerExpired`, ``APITimeoutError`` → :class:`SandboxTimeout`,
    ``RateLimitError``/``InternalServerError``/``APIConnectionError`` → :class:`SandboxUnavailable`.
    """
    if isinstance(exc, SandboxError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return SandboxTimeout("The sandbox provider did not answer in time.")
    if isinstance(exc, openai.APIConnectionError):
        return SandboxUnavailable("Could not reach the sandbox provider.")
    if isinstance(exc, openai.APIStatusError):
        return error_for_status(exc.status_code, _status_message(exc))
    if isinstance(exc, (TimeoutError, aiohttp.ServerTimeoutError)):
        return SandboxTimeout("The sandbox provider did not answer in time.")
    if isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)):
        return SandboxUnavailable("Could not reach the sandbox provider.")
    return None


def _form_param(value: str) -> str:
    """Quote a multipart form parameter the way the SDK's HTTP client does (HTML5 form encoding)."""
    return _FORM_ESCAPE_RE.sub(lambda m: _FORM_ESCAPES[m.group(0)], value)


def _to_info(container: Any) -> ContainerInfo:
    last = getattr(container, "last_active_at", None)
    return ContainerInfo(id=container.id, name=container.name, status=container.status,
                         created_at=float(container.created_at), last_active_at=float(last) if last else None)


def _to_file(item: Any) -> SandboxFile:
    size = item.bytes if isinstance(item.bytes, int) else 0
    return SandboxFile(id=item.id, path=item.path, size=size, source=item.source,
                       created_at=float(item.created_at or 0))


class _SizeMismatch(ValueError):
    pass


class OpenAISandbox:
    """:class:`bot.sandbox.base.SandboxBackend` over OpenAI hosted containers."""

    kind = "openai"

    def __init__(self, *, client: AsyncOpenAI, api_key: str | None = None, base_url: str | None = None,
                 memory_limit: MemoryLimit = "1g", http: aiohttp.ClientSession | None = None,
                 upload_timeout_s: float = 900.0) -> None:
        """``api_key``/``base_url`` default to the client's; ``http`` is used (not closed) when given."""
        self._client = client
        self._api_key = api_key if api_key is not None else client.api_key
        self._base_url = (base_url if base_url is not None else str(client.base_url)).rstrip("/")
        self._memory_limit: MemoryLimit = memory_limit
        self._http = http
        self._owns_http = http is None
        self._upload_timeout = aiohttp.ClientTimeout(total=upload_timeout_s, sock_connect=30.0)

    async def create(self, *, name: str, idle_minutes: int) -> ContainerInfo:
        """Create a container that expires ``idle_minutes`` (capped at 20) after its last activity."""
        minutes = max(1, min(idle_minutes, MAX_CONTAINER_IDLE_MINUTES))
        with _provider_errors():
            created = await self._client.containers.create(
                name=name, expires_after={"anchor": "last_active_at", "minutes": minutes},
                memory_limit=self._memory_limit,
            )
        logger.info("container created container=%s name=%s minutes=%d", created.id, name, minutes)
        await self._ship_helper(created.id)
        return _to_info(created)

    async def _ship_helper(self, container_id: str) -> None:
        """Upload the charting helper beside the data (:mod:`bot.sandbox.helper`); without it the model draws
        with matplotlib alone (the instructions say so), so a refused upload is logged, not fatal."""
        for name, data in helper_files().items():
            async def chunks(data: bytes = data) -> AsyncIterator[bytes]:
                yield data

            try:
                await self.upload(container_id, name=name, chunks=chunks(), size=len(data))
            except SandboxError as exc:
                logger.warning("charting helper not uploaded container=%s file=%s error=%s", container_id, name,
                               type(exc).__name__)
                return

    async def delete(self, container_id: str) -> None:
        """Delete a container; one that is already gone counts as deleted."""
        try:
            with _provider_errors():
                await self._client.containers.delete(container_id)
        except ContainerNotFound:
            logger.info("container already gone container=%s", container_id)
            return
        logger.info("container deleted container=%s", container_id)

    async def upload(self, container_id: str, *, name: str, chunks: AsyncIterator[bytes], size: int | None
                     ) -> SandboxFile:
        """Stream ``chunks`` into the container as ``name`` (constant memory; no retry, the stream is consumed)."""
        boundary = secrets.token_hex(16)
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{_form_param(name)}\""
                f"\r\nContent-Type: {ctype}\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        headers = self._headers()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        if size is not None:
            headers["Content-Length"] = str(len(head) + size + len(tail))
        failure: list[BaseException] = []

        async def body() -> AsyncIterator[bytes]:
            yield head
            sent = 0
            try:
                async for chunk in chunks:
                    sent += len(chunk)
                    if size is not None and sent > size:
                        raise _SizeMismatch(f"upload of {name!r} exceeds its declared size of {size} bytes")
                    yield chunk
            except BaseException as exc:
                failure.append(exc)
                raise
            if size is not None and sent != size:
                err = _SizeMismatch(f"upload of {name!r} has {sent} bytes, {size} were declared")
                failure.append(err)
                raise err
            yield tail

        url = f"{self._base_url}/containers/{quote(container_id, safe='')}/files"
        try:
            async with self._session().post(url, data=body(), headers=headers, timeout=self._upload_timeout) as resp:
                raw = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            if failure:
                raise failure[0] from exc
            translated = translate_error(exc)
            if translated is None:
                raise
            raise translated from exc
        if failure:
            raise failure[0]
        if status >= 400:
            message = _error_message(raw)
            logger.warning("upload refused container=%s status=%d", container_id, status)
            raise error_for_status(status, message) or SandboxError(f"Upload refused (HTTP {status}): {message}")
        try:
            payload = json.loads(raw)
            uploaded = SandboxFile(id=str(payload["id"]), path=str(payload["path"]), size=int(payload["bytes"]),
                                   source=str(payload.get("source") or "user"),
                                   created_at=float(payload.get("created_at") or 0))
        except (ValueError, KeyError, TypeError) as exc:
            raise SandboxError("The sandbox provider answered the upload with an unexpected body.") from exc
        logger.info("file uploaded container=%s file=%s bytes=%d", container_id, uploaded.id, uploaded.size)
        return uploaded

    async def list_files(self, container_id: str) -> list[SandboxFile]:
        """Every file in the container (all pages)."""
        with _provider_errors():
            return [_to_file(f) async for f in self._client.containers.files.list(container_id, limit=_PAGE_SIZE)]

    async def read_file(self, container_id: str, file_id: str) -> bytes:
        """The content of one file."""
        with _provider_errors():
            content = await self._client.containers.files.content.retrieve(file_id, container_id=container_id)
        return content.content

    async def delete_file(self, container_id: str, file_id: str) -> None:
        """Delete one file of the container; a file already gone counts as deleted (a gone container raises)."""
        try:
            with _provider_errors():
                await self._client.containers.files.delete(file_id, container_id=container_id)
        except (ContainerNotFound, ContainerExpired, SandboxUnavailable, SandboxTimeout):
            raise
        except SandboxError:  # the file is not there: gone already, unless the container is (that raises here)
            await self.list_files(container_id)
            logger.info("container file already gone container=%s", container_id)

    async def list_containers(self, *, prefix: str) -> list[ContainerInfo]:
        """Every container whose name starts with ``prefix`` (all pages, expired ones included)."""
        with _provider_errors():
            return [_to_info(c) async for c in self._client.containers.list(limit=_PAGE_SIZE)
                    if c.name.startswith(prefix)]

    async def close(self) -> None:
        """Close the upload session if this backend created it (the SDK client belongs to the caller)."""
        if self._http is not None and self._owns_http:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
            self._owns_http = True
        return self._http

    def _headers(self) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"}
        organization = getattr(self._client, "organization", None)
        project = getattr(self._client, "project", None)
        if organization:
            headers["OpenAI-Organization"] = str(organization)
        if project:
            headers["OpenAI-Project"] = str(project)
        return headers


def _error_message(raw: bytes) -> str:
    try:
        payload = json.loads(raw)
    except ValueError:
        return raw[:200].decode("utf-8", "replace")
    if isinstance(payload, dict):
        error = payload.get("error", payload)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return cast(str, error["message"])
    return ""


@contextlib.contextmanager
def _provider_errors() -> Iterator[None]:
    """Re-raise SDK errors as sandbox errors where :func:`translate_error` knows one; others unchanged."""
    try:
        yield
    except openai.OpenAIError as exc:
        translated = translate_error(exc)
        if translated is None:
            raise
        raise translated from exc
