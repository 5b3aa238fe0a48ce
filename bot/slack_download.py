"""File downloads from Slack: a private file's bytes streamed with the bot token, which is sent only to the host of
``SLACK_API_URL`` and to Slack's own hosts (``slack.com``, ``slack-gov.com`` and their subdomains, over https);
redirects are followed by hand, at most twice and only to such hosts; Slack's HTML sign-in page is recognised as
"no access" rather than passed on as the file.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import aiohttp
from yarl import URL

from bot.poster import FileAccessDenied, ForeignFileHost, SlackError

logger = logging.getLogger("bot.slack_gateway")

SLACK_DOMAINS = ("slack.com", "slack-gov.com")
MAX_REDIRECTS = 2
_SNIFF_BYTES = 512
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_UNLABELLED = "application/octet-stream"  # what aiohttp reports when a response has no Content-Type


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def is_slack_host(url: URL, api_url: URL) -> bool:
    """Whether the bot token may be sent to ``url``.

    True for the scheme, host and port of ``api_url`` (an emulator, a proxy or GovSlack), and for https URLs on
    ``slack.com``, ``slack-gov.com`` or one of their subdomains, on the default port. URLs with credentials are
    never trusted.
    """
    if url.scheme not in ("http", "https") or not url.host or url.user is not None or url.password is not None:
        return False
    host = url.host.lower()
    port = url.port or _default_port(url.scheme)
    api_host = (api_url.host or "").lower()
    if (url.scheme, host, port) == (api_url.scheme, api_host, api_url.port or _default_port(api_url.scheme)):
        return True
    if url.scheme != "https" or port != 443:
        return False
    return any(host == domain or host.endswith("." + domain) for domain in SLACK_DOMAINS)


def _is_sign_in_page(content_type: str, head: bytes) -> bool:
    """Slack's sign-in page comes labelled ``text/html`` (or, through a proxy, unlabelled). An HTML body that Slack
    labels as the file's own type (``text/csv``…) is the user's file, passed on for the inspector to explain."""
    if content_type == "text/html":
        return True
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return content_type == _UNLABELLED and start.startswith((b"<!doctype html", b"<html", b"<head", b"<!--"))



class SlackDownloads:
    """Streams private files from Slack over an aiohttp session (its own, made on first use, unless given one)."""

    def __init__(self, *, token: str, api_url: URL, session: aiohttp.ClientSession | None,
                 timeout: aiohttp.ClientTimeout) -> None:
        self._token = token
        self._api_url = api_url
        self._session = session
        self._owns_session = session is None
        self._timeout = timeout

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._owns_session = True
        return self._session

    async def download(self, url: str) -> AsyncIterator[bytes]:
        """Stream a private file's bytes with the bot token, chunk by chunk (never the whole file in memory).

        Raises :class:`ForeignFileHost` before any request when the URL (or a redirect) leaves Slack's hosts,
        :class:`FileAccessDenied` when Slack answers with its HTML sign-in page (or 401/403), and
        :class:`SlackError` for other failures.
        """
        target = URL(url)
        if not is_slack_host(target, self._api_url):
            logger.warning("refusing file url on a foreign host host=%s", target.host)
            raise ForeignFileHost("foreign_file_host", method="download")
        session = self._http()
        for _ in range(MAX_REDIRECTS + 1):
            try:
                async with session.get(target, headers={"Authorization": f"Bearer {self._token}"},
                                       allow_redirects=False) as resp:
                    if resp.status in _REDIRECTS:
                        target = self._redirect_target(target, resp)
                        continue
                    self._check_status(resp)
                    head = await self._read_head(resp)
                    if _is_sign_in_page(resp.content_type, head):
                        raise FileAccessDenied("file_access_denied", method="download")
                    if head:
                        yield head
                    # the buffered chunks one by one, as the socket delivered them: ``iter_any`` would join all
                    # that are buffered into one new block, a copy of every byte (a third of the bot's user-space
                    # copying on the bench/transfer.py profile) for nothing, since the upload writes them as is
                    async for chunk, _ in resp.content.iter_chunks():
                        if chunk:
                            yield chunk
                    return
            except (TimeoutError, aiohttp.ClientError) as exc:
                raise SlackError("connection_error", method="download") from exc
        raise SlackError("too_many_redirects", method="download")

    def _redirect_target(self, current: URL, resp: aiohttp.ClientResponse) -> URL:
        location = resp.headers.get("Location")
        if not location:
            raise SlackError(f"http_{resp.status}", method="download")
        target = current.join(URL(location))
        if not is_slack_host(target, self._api_url):
            logger.warning("refusing redirect to a foreign host host=%s", target.host)
            raise ForeignFileHost("foreign_file_host", method="download")
        return target

    @staticmethod
    def _check_status(resp: aiohttp.ClientResponse) -> None:
        if resp.status in (401, 403):
            raise FileAccessDenied("file_access_denied", method="download")
        if resp.status == 404:
            raise SlackError("file_not_found", method="download")
        if resp.status != 200:
            raise SlackError(f"http_{resp.status}", method="download")

    @staticmethod
    async def _read_head(resp: aiohttp.ClientResponse) -> bytes:
        head = b""
        while len(head) < _SNIFF_BYTES:
            part = await resp.content.read(_SNIFF_BYTES - len(head))
            if not part:
                break
            head += part
        return head

    async def close(self) -> None:
        """Close the download session when the gateway created it (the Web API client is the caller's)."""
        if self._session is not None and self._owns_session and not self._session.closed:
            await self._session.close()
        self._session = None
