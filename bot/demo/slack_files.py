"""The emulator's files: hosting (private URLs that serve the bytes only to the bot token and otherwise a 200
``text/html`` sign-in page, as real Slack does), ``files.info``, and the files_upload_v2 flow
(``files.getUploadURLExternal``, the upload URL, ``files.completeUploadExternal``)."""

from __future__ import annotations

import json
import mimetypes
import secrets
import time
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from bot.demo.pacing import LinkPacer
from bot.demo.recorder import RecordedRequest
from bot.demo.slack_events import fresh_ts
from bot.demo.slack_state import (
    SIGN_IN_PAGE,
    ApiError,
    Download,
    FakeMessage,
    HostedFile,
    Json,
    PendingUpload,
    SlackState,
    UploadedFile,
    filetype_of,
)


class FileHosting(SlackState):
    """Hosted files, their private URLs, ``files.info`` and the upload flow of ``files_upload_v2``."""

    def add_file(
        self, *, name: str, content: bytes | Path, user: str = "U1", mimetype: str = "text/csv",
        filetype: str = "csv", mode: str = "hosted", title: str | None = None, file_id: str | None = None,
        size: int | None = None, accessible: bool = True,
    ) -> Json:
        """Host a file; returns its object as it appears in an event's ``files[]`` (and in ``files.info``).

        ``content`` may be a :class:`~pathlib.Path` (served from disk in chunks); ``size`` overrides the reported
        size; ``accessible=False`` serves the sign-in page even to the bot token (file not shared with the bot).
        """
        fid = file_id or self._new_id("F")
        real_size = content.stat().st_size if isinstance(content, Path) else len(content)
        payload = self._file_payload(fid, name=name, title=title or name, mimetype=mimetype, filetype=filetype,
                                     user=user, size=real_size if size is None else size, mode=mode)
        self._files[fid] = HostedFile(payload=payload, content=content, accessible=accessible)
        return dict(payload)

    def _file_payload(self, fid: str, *, name: str, title: str, mimetype: str, filetype: str, user: str, size: int,
                      mode: str) -> Json:
        now = int(time.time())
        base = f"{self.base_url}/files-pri/{self.team_id}-{fid}"
        quoted = quote(name, safe="")  # Slack percent-encodes the name in its URLs
        return {
            "id": fid, "created": now, "timestamp": now, "name": name, "title": title, "mimetype": mimetype,
            "filetype": filetype, "pretty_type": filetype.upper(), "user": user, "user_team": self.team_id,
            "editable": False, "size": size, "mode": mode, "is_external": False, "external_type": "",
            "is_public": True, "public_url_shared": False, "display_as_bot": False, "username": "",
            "url_private": f"{base}/{quoted}", "url_private_download": f"{base}/download/{quoted}",
            "permalink": f"https://example.slack.com/files/{user}/{fid}/{quoted}", "has_rich_preview": False,
            "file_access": "visible",
        }

    def deny_file(self, file_id: str) -> None:
        """Serve the sign-in page for this file even with the bot token (not shared / no ``files:read``)."""
        self._files[file_id].accessible = False

    def delete_file(self, file_id: str) -> None:
        """``files.info`` answers ``file_deleted`` and downloads 404 from now on."""
        self._files[file_id].deleted = True

    def file_payload(self, file_id: str) -> Json:
        """The current file object of a hosted or uploaded file."""
        return dict(self._files[file_id].payload)

    def hosted_file(self, file_id: str) -> HostedFile | None:
        """A hosted or uploaded file that is not deleted (what a signed-in member of the workspace may open)."""
        hosted = self._files.get(file_id)
        return None if hosted is None or hosted.deleted else hosted

    async def _files_info(self, rec: RecordedRequest) -> Json:
        hosted = self._files.get(str(rec.params.get("file", "")))
        if hosted is None:
            raise ApiError("file_not_found")
        if hosted.deleted:
            raise ApiError("file_deleted")
        return {"file": dict(hosted.payload), "comments": [], "response_metadata": {"next_cursor": ""}}

    async def _get_upload_url(self, rec: RecordedRequest) -> Json:
        p = rec.params
        filename = str(p.get("filename") or "")
        try:
            length = int(p.get("length") or 0)
        except ValueError as exc:
            raise ApiError("invalid_arguments") from exc
        if not filename or length <= 0:
            raise ApiError("missing_argument" if not filename or not p.get("length") else "invalid_arguments")
        upload_id = secrets.token_urlsafe(24)
        file_id = self._new_id("F")
        self._pending_uploads[upload_id] = PendingUpload(file_id=file_id, filename=filename, length=length)
        return {"upload_url": f"{self.base_url}/upload/v1/{upload_id}", "file_id": file_id}

    async def _upload(self, request: web.Request) -> web.StreamResponse:
        content_type = request.headers.get("Content-Type", "")
        if content_type.startswith("multipart/"):
            reader = await request.multipart()
            data = b""
            async for part in reader:
                if getattr(part, "filename", None) or getattr(part, "name", None) == "file":
                    data = await part.read()  # type: ignore[union-attr]
                    break
        else:
            data = await request.read()
        await self.recorder.record(request, data)
        fault = self._fault_response("upload")
        if fault is not None:
            return fault
        pending = self._pending_uploads.get(request.match_info["upload_id"])
        if pending is None:
            return web.Response(status=404, text="upload_url_not_found", content_type="text/plain")
        if len(data) != pending.length:
            return web.Response(status=400, text=f"length mismatch: expected {pending.length}, got {len(data)}",
                                content_type="text/plain")
        pending.content = data
        return web.Response(text=f"OK - {len(data)}", content_type="text/plain")

    async def _complete_upload(self, rec: RecordedRequest) -> Json:
        p = rec.params
        raw = p.get("files")
        try:
            items = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError as exc:
            raise ApiError("invalid_arguments") from exc
        if not isinstance(items, list) or not items:
            raise ApiError("invalid_arguments")
        by_file_id = {u.file_id: (k, u) for k, u in self._pending_uploads.items()}
        channel = self._check_channel(p["channel_id"]) if p.get("channel_id") else None
        if channel is None and p.get("channels"):
            channel = self._check_channel(str(p["channels"]).split(",")[0])
        thread_ts = str(p["thread_ts"]) if p.get("thread_ts") else None
        comment = str(p["initial_comment"]) if p.get("initial_comment") else None
        done: list[tuple[Json, bytes]] = []
        for item in items:
            found = by_file_id.get(str(item.get("id")))
            if found is None or found[1].content is None:
                raise ApiError("file_not_found")
            upload_id, pending = found
            data = pending.content
            assert data is not None
            title = str(item.get("title") or pending.filename)
            mimetype = mimetypes.guess_type(pending.filename)[0] or "application/octet-stream"
            payload = self._file_payload(pending.file_id, name=pending.filename, title=title, mimetype=mimetype,
                                         filetype=filetype_of(pending.filename), user=self.bot_user_id,
                                         size=len(data), mode="hosted")
            if channel:
                payload["channels"] = [channel]
                payload["shares"] = {"public": {channel: [{"ts": "", "thread_ts": thread_ts or "",
                                                           "channel_name": channel, "team_id": self.team_id}]}}
            self._files[pending.file_id] = HostedFile(payload=payload, content=data)
            del self._pending_uploads[upload_id]
            self.uploads.append(UploadedFile(id=pending.file_id, name=pending.filename, title=title, content=data,
                                             channel=channel, thread_ts=thread_ts, initial_comment=comment,
                                             mimetype=mimetype, filetype=payload["filetype"]))
            done.append((payload, data))
        if channel:
            msg = FakeMessage(channel=channel, ts=fresh_ts(), user=self.bot_user_id, text=comment or "",
                              thread_ts=thread_ts, bot_id=self.bot_id,
                              files=[{**payload, "bytes": data} for payload, data in done])
            self.messages.append(msg)
            for payload, _ in done:
                payload["shares"]["public"][channel][0]["ts"] = msg.ts
        return {"files": [dict(payload) for payload, _ in done]}

    async def _download(self, request: web.Request) -> web.StreamResponse:
        await self.recorder.record(request, b"")
        team, _, file_id = request.match_info["team_file"].partition("-")
        auth = request.headers.get("Authorization")
        fault = self._fault_response("download")
        if fault is not None:
            return fault
        hosted = self._files.get(file_id)
        if hosted is None or hosted.deleted or team != self.team_id:
            self.downloads.append(Download(file_id=file_id, authorization=auth, served="not_found"))
            await self.recorder.notify()
            return web.Response(status=404, text=SIGN_IN_PAGE, content_type="text/html")
        if auth != f"Bearer {self.bot_token}" or not hosted.accessible:
            self.downloads.append(Download(file_id=file_id, authorization=auth, served="html"))
            await self.recorder.notify()
            return web.Response(text=SIGN_IN_PAGE, content_type="text/html")
        self.downloads.append(Download(file_id=file_id, authorization=auth, served="file"))
        await self.recorder.notify()
        return await self.serve_file(request, hosted, attachment="/download/" in request.path)

    async def serve_file(self, request: web.Request, hosted: HostedFile, *, attachment: bool) -> web.StreamResponse:
        """The bytes of ``hosted`` with its type (paced when ``link_rate`` is set and it lives on disk)."""
        mimetype = str(hosted.payload.get("mimetype") or "application/octet-stream")
        name = str(hosted.payload.get("name") or hosted.payload.get("id") or "file")
        headers = {"Content-Type": mimetype}
        if attachment:
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
        if isinstance(hosted.content, Path) and self.link_rate:
            return await self._paced_file(request, hosted.content, headers, self.link_rate)
        if isinstance(hosted.content, Path):
            return web.FileResponse(hosted.content, chunk_size=1 << 20, headers=headers)
        return web.Response(body=hosted.content, headers=headers)

    @staticmethod
    async def _paced_file(request: web.Request, path: Path, headers: dict[str, str], rate: float
                          ) -> web.StreamResponse:
        response = web.StreamResponse(headers=headers)
        response.content_length = path.stat().st_size
        await response.prepare(request)
        pacer = LinkPacer(rate)
        with path.open("rb") as source:
            while chunk := source.read(1 << 18):
                await response.write(chunk)
                await pacer.take(len(chunk))
        await response.write_eof()
        return response
