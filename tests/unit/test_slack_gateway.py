"""SlackGateway against FakeSlack over loopback HTTP: posting, reactions, uploads, and the download token policy."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from yarl import URL

from bot.demo.fake_slack import FakeSlack
from bot.demo.slack_events import fresh_ts
from bot.poster import FileAccessDenied, ForeignFileHost, SlackError, Upload
from bot.slack_download import is_slack_host
from bot.slack_gateway import SlackGateway


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token="xoxb-test") as fake:
        yield fake


@pytest.fixture
async def gateway(slack: FakeSlack) -> AsyncIterator[SlackGateway]:
    client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url,
                            retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)])
    gw = SlackGateway(client=client, token=slack.bot_token, api_url=slack.api_url)
    yield gw
    await gw.close()


class OtherHost:
    """A second loopback server standing for a foreign host; records the Authorization headers it receives."""

    def __init__(self) -> None:
        self.authorizations: list[str | None] = []
        self.redirect_to = ""
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.authorizations.append(request.headers.get("Authorization"))
        if request.path.startswith("/redirect") and self.redirect_to:
            raise web.HTTPFound(self.redirect_to)
        return web.Response(body=b"a,b\n1,2\n", content_type="text/csv")

    async def __aenter__(self) -> OtherHost:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


async def _collect(gateway: SlackGateway, url: str) -> list[bytes]:
    return [chunk async for chunk in gateway.download(url)]


async def test_post_and_update_in_thread(slack: FakeSlack, gateway: SlackGateway) -> None:
    root = fresh_ts()
    ts = await gateway.post(channel="C1", thread_ts=root, text="Looking at sales.csv…")
    await gateway.update(channel="C1", ts=ts, text="Sales grew 12% in Q3.")
    (item,) = slack.thread("C1", root)
    assert (item.ts, item.text, item.is_bot) == (ts, "Sales grew 12% in Q3.", True)
    call = slack.recorder.calls("chat.postMessage")[0]
    assert call.params["unfurl_links"] is False and call.params["unfurl_media"] is False
    assert call.params["thread_ts"] == root


async def test_post_maps_errors_and_survives_rate_limits(slack: FakeSlack, gateway: SlackGateway) -> None:
    slack.fail_next("chat.postMessage", status=429, retry_after=0)
    await gateway.post(channel="C1", thread_ts=None, text="after a 429")
    slack.missing_channels.add("CGONE")
    with pytest.raises(SlackError) as err:
        await gateway.post(channel="CGONE", thread_ts=None, text="hi")
    assert err.value.code == "channel_not_found" and err.value.method == "chat.postMessage"
    with pytest.raises(SlackError) as err:
        await gateway.update(channel="C1", ts="1.000001", text="x")
    assert err.value.code == "message_not_found"


async def test_react_and_unreact_are_idempotent(slack: FakeSlack, gateway: SlackGateway) -> None:
    ts = fresh_ts()
    await gateway.react(channel="C1", ts=ts, name="hourglass_flowing_sand")
    await gateway.react(channel="C1", ts=ts, name="hourglass_flowing_sand")
    assert slack.reactions[("C1", ts)] == {"hourglass_flowing_sand"}
    await gateway.unreact(channel="C1", ts=ts, name="hourglass_flowing_sand")
    await gateway.unreact(channel="C1", ts=ts, name="hourglass_flowing_sand")
    assert slack.reactions[("C1", ts)] == set()
    slack.fail_next("reactions.add", error="invalid_name")
    with pytest.raises(SlackError, match="invalid_name"):
        await gateway.react(channel="C1", ts=ts, name="x")


async def test_upload_lands_in_the_thread(slack: FakeSlack, gateway: SlackGateway) -> None:
    root = fresh_ts()
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    await gateway.upload_files(channel="C1", thread_ts=root, comment="Charts",
                               files=[Upload(filename="trend.png", data=png, title="Trend"),
                                      Upload(filename="top.csv", data=b"k,v\n")])
    (item,) = slack.thread("C1", root)
    assert item.is_bot and item.text == "Charts"
    assert [(f["name"], f["title"], f["bytes"]) for f in item.files] == [
        ("trend.png", "Trend", png), ("top.csv", "top.csv", b"k,v\n")]
    assert {u.thread_ts for u in slack.uploads} == {root}
    await gateway.upload_files(channel="C1", thread_ts=root, files=[])
    assert len(slack.uploads) == 2


async def test_file_info(slack: FakeSlack, gateway: SlackGateway) -> None:
    f = slack.add_file(name="sales.csv", content=b"a,b\n1,2\n", user="U9")
    info = await gateway.file_info(f["id"])
    assert (info.id, info.name, info.size, info.user) == (f["id"], "sales.csv", 8, "U9")
    assert info.url_private_download == f["url_private_download"]
    with pytest.raises(SlackError) as err:
        await gateway.file_info("FMISSING")
    assert err.value.code == "file_not_found" and err.value.method == "files.info"


async def test_download_streams_bytes_with_the_token(slack: FakeSlack, gateway: SlackGateway,
                                                     tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    row = b"2024-01-01,north,123.45\n"
    with big.open("wb") as out:
        for _ in range(3 * (1 << 20) // len(row) + 7):
            out.write(row)
    f = slack.add_file(name="big.csv", content=big)
    chunks = await _collect(gateway, f["url_private_download"])
    assert b"".join(chunks) == big.read_bytes()
    assert len(chunks) > 1 and max(len(c) for c in chunks) <= 1 << 20
    assert [(d.served, d.authorization) for d in slack.downloads] == [("file", "Bearer xoxb-test")]


async def test_sign_in_page_is_access_denied(slack: FakeSlack, gateway: SlackGateway) -> None:
    f = slack.add_file(name="secret.csv", content=b"a\n1\n", accessible=False)
    with pytest.raises(FileAccessDenied):
        await _collect(gateway, f["url_private_download"])
    assert slack.downloads[-1].served == "html"
    # An unlabelled HTML body (a proxy dropping the Content-Type) is caught by sniffing the first bytes ...
    page = "\n<!DOCTYPE html><html><body>Sign in</body></html>"
    slack.fail_next("download", status=200, body=page, content_type="application/octet-stream")
    with pytest.raises(FileAccessDenied):
        await _collect(gateway, f["url_private_download"])
    # ... while HTML that Slack serves as the file's own type (text/csv) is the user's file, passed on as it is
    g = slack.add_file(name="page.csv", content=page.encode())
    assert b"".join(await _collect(gateway, g["url_private_download"])) == page.encode()
    slack.fail_next("download", status=404, body="<html>gone</html>", content_type="text/html")
    with pytest.raises(SlackError) as err:
        await _collect(gateway, f["url_private_download"])
    assert err.value.code == "file_not_found"


async def test_foreign_host_gets_no_request(slack: FakeSlack, gateway: SlackGateway) -> None:
    async with OtherHost() as other:
        for url in (f"{other.url}/files-pri/T1-F1/download/x.csv", "https://evil.example/x",
                    "http://files.slack.com/files-pri/T1-F1/download/x.csv",
                    f"https://user:pw@{URL(slack.api_url).host}:{URL(slack.api_url).port}/files-pri/x"):
            with pytest.raises(ForeignFileHost):
                await _collect(gateway, url)
        assert other.authorizations == []
    assert slack.downloads == []


async def test_redirects_are_followed_only_to_slack_hosts(slack: FakeSlack, gateway: SlackGateway) -> None:
    f = slack.add_file(name="sales.csv", content=b"a,b\n1,2\n")
    async with OtherHost() as other:
        slack.fail_next("download", status=302, body="", content_type="text/plain",
                        headers={"Location": f"{other.url}/stolen"})
        with pytest.raises(ForeignFileHost):
            await _collect(gateway, f["url_private_download"])
        assert other.authorizations == []
    # A redirect that stays on the API host is followed (relative Location), with the token.
    slack.fail_next("download", status=302, body="", content_type="text/plain",
                    headers={"Location": URL(f["url_private"]).path})
    assert b"".join(await _collect(gateway, f["url_private_download"])) == b"a,b\n1,2\n"
    assert slack.downloads[-1].authorization == "Bearer xoxb-test"
    slack.fail_next("download", status=302, body="", content_type="text/plain", times=3,
                    headers={"Location": f["url_private"]})
    with pytest.raises(SlackError) as err:
        await _collect(gateway, f["url_private_download"])
    assert err.value.code == "too_many_redirects"


def test_host_policy() -> None:
    api = URL("http://127.0.0.1:5555/api/")
    allowed = ["https://files.slack.com/files-pri/T1-F1/download/a.csv", "https://slack.com/x",
               "https://files.slack-gov.com/x", "http://127.0.0.1:5555/files-pri/T1-F1/a.csv",
               "https://FILES.SLACK.COM/x"]
    denied = ["http://files.slack.com/x", "https://files.slack.com:8443/x", "https://evilslack.com/x",
              "https://slack.com.evil.example/x", "http://127.0.0.1:5556/x", "https://127.0.0.1:5555/x",
              "https://a@files.slack.com/x", "ftp://files.slack.com/x", "https://slack-gov.com.evil/x"]
    assert [u for u in allowed if not is_slack_host(URL(u), api)] == []
    assert [u for u in denied if is_slack_host(URL(u), api)] == []


async def test_permalink_of_a_thread_root(slack: FakeSlack, gateway: SlackGateway) -> None:
    root = slack.add_message(channel="C1", user="U1", text="data")
    link = await gateway.permalink(channel="C1", ts=root.ts)
    assert link == f"https://test-workspace.slack.com/archives/C1/p{root.ts.replace('.', '')}"
    [call] = slack.recorder.calls("chat.getPermalink")
    assert call.params["message_ts"] == root.ts
    with pytest.raises(SlackError) as err:
        await gateway.permalink(channel="C1", ts=fresh_ts())
    assert err.value.code == "message_not_found"


async def test_user_tz_reads_users_info_and_falls_back_to_utc(slack: FakeSlack, gateway: SlackGateway) -> None:
    slack.add_user("U7", tz="Europe/Paris", tz_offset=3600)
    assert await gateway.user_tz("U7") == "Europe/Paris"
    assert await gateway.user_tz("Bnot-a-user") == "UTC"  # users.info: user_not_found
    slack.fail_next("users.info", error="missing_scope")
    assert await gateway.user_tz("U7") == "UTC"


async def test_a_post_into_a_public_channel_the_bot_is_not_in_joins_it_and_posts_once(
        slack: FakeSlack, gateway: SlackGateway) -> None:
    slack.non_member_channels.add("C9")
    ts = await gateway.post(channel="C9", thread_ts=None, text="hello")
    assert [m.ts for m in slack.messages if m.channel == "C9"] == [ts]
    assert [r.params["channel"] for r in slack.recorder.calls("conversations.join")] == ["C9"]
    assert len(slack.recorder.calls("chat.postMessage")) == 2  # refused (not_in_channel), then posted


async def test_a_post_where_joining_is_refused_raises_not_in_channel(slack: FakeSlack, gateway: SlackGateway) -> None:
    slack.non_member_channels.add("C9")
    slack.private_channels.add("C9")
    with pytest.raises(SlackError) as refused:
        await gateway.post(channel="C9", thread_ts=None, text="hello")
    assert refused.value.code == "not_in_channel"
    assert len(slack.recorder.calls("chat.postMessage")) == 1  # no second try
    assert await gateway.ensure_member(channel="C9", ts=fresh_ts()) is False


async def test_slacks_warning_that_the_stop_event_is_not_subscribed_is_logged(
        slack: FakeSlack, gateway: SlackGateway, caplog: pytest.LogCaptureFixture) -> None:
    root = slack.post_as_user(channel="C1", user="U1", text="hi")
    with caplog.at_level(logging.WARNING, logger="bot.slack_gateway"):
        await gateway.set_agent_status(channel="C1", thread_ts=root["ts"], status="processing")
        assert not caplog.records
        slack.agent_stop_subscribed = False
        await gateway.set_agent_status(channel="C1", thread_ts=root["ts"], status="processing")
    [record] = caplog.records
    assert "agent_session_stopped" in record.getMessage() and slack.agent_sessions[("C1", root["ts"])] == "processing"
