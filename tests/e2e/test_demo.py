"""``datastory demo`` over HTTP, without a browser: what it serves, what it binds, where it keeps its data.

The browser tests (``tests/browser/``) drive the page itself; these check the server's side of the contract.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot import cli
from bot.demo.runner import EXAMPLES, is_loopback, page_url
from tests.browser.harness import RunningDemo, offline_settings, start_demo
from tests.browser.test_demo_page import SCREENSHOT_WINDOW

pytestmark = pytest.mark.e2e

STATIC = Path(cli.__file__).resolve().parent / "demo" / "static"


@pytest.fixture
async def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RunningDemo]:
    monkeypatch.chdir(tmp_path)
    running = await start_demo(offline_settings())
    try:
        yield running
    finally:
        assert await running.shutdown() == 0


async def events_until(session: aiohttp.ClientSession, url: str, done: Any, timeout: float = 90) -> list[Any]:
    """Read the page's event stream until ``done(views)`` is true; returns the message views seen last."""
    views: dict[str, Any] = {}
    async with asyncio.timeout(timeout), session.get(url + "/demo/events") as resp:
        assert resp.headers["Content-Type"] == "text/event-stream"
        kind = ""
        async for raw in resp.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "message":
                view = json.loads(line[6:])
                views[view["key"]] = view
                if done(list(views.values())):
                    return list(views.values())
    raise AssertionError("the event stream ended")


async def test_the_page_answers_a_shared_example_through_the_bot(demo: RunningDemo, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(demo.url + "/demo/info") as resp:
            info = await resp.json()
        assert info["analyst"] == "offline" and info["sandbox"] == "local"
        packaged = {p.name: p for p in EXAMPLES.glob("*.csv")}
        assert sorted(e["name"] for e in info["examples"]) == sorted(packaged) == \
            ["sales.csv", "support_tickets.csv", "web_traffic.csv"]
        for example in info["examples"]:
            lines = packaged[example["name"]].read_text(encoding="utf-8").splitlines()
            assert example["rows"] == len(lines) - 1 and example["columns"] == lines[0].split(",")

        async with session.post(demo.url + "/demo/examples/sales.csv") as resp:
            root = (await resp.json())["ts"]

        def answered(views: list[Any]) -> bool:
            return any(v["author"]["bot"] and v["text"].startswith(":white_check_mark: Done") for v in views)

        views = await events_until(session, demo.url, answered)
        thread = [v for v in views if v["ts"] == root or v["thread_ts"] == root]
        assert thread[0]["author"]["name"] == "You" and thread[0]["files"][0]["name"] == "sales.csv"
        charts = [f for v in thread for f in v["files"] if f["image"]]
        assert charts and all(f["mimetype"] == "image/png" for f in charts)

        async with session.get(demo.url + charts[0]["url"]) as resp:
            assert resp.status == 200 and (await resp.read()).startswith(b"\x89PNG")
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert "sandbox" in resp.headers["Content-Security-Policy"]
            assert "Content-Disposition" not in resp.headers
        async with session.get(demo.url + thread[0]["files"][0]["url"]) as resp:
            assert resp.headers["Content-Disposition"].startswith("attachment")
        async with session.get(demo.url + "/demo/files/F000NOPE/x.png") as resp:
            assert resp.status == 404

        async with session.post(demo.url + "/demo/examples/passwords.csv") as resp:
            assert resp.status == 404 and "no example" in (await resp.json())["error"]
        async with session.post(demo.url + "/demo/messages", data={"text": "hi"}) as resp:  # not multipart
            assert resp.status == 400 and "multipart" in (await resp.json())["error"]
        blank = aiohttp.MultipartWriter("form-data")
        blank.append("  ").set_content_disposition("form-data", name="text")
        async with session.post(demo.url + "/demo/messages", data=blank) as resp:
            assert resp.status == 400 and (await resp.json())["error"] == "Write a message or attach a file."
        async with session.post(demo.url + "/demo/actions", json={"key": "1.2", "action_id": "x"}) as resp:
            assert resp.status == 404 and (await resp.json())["error"] == "That message is gone."
    assert not (tmp_path / "datastory.db").exists()  # the demo's database lives in its own temporary directory


async def test_the_page_loads_nothing_from_outside_the_package(demo: RunningDemo) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(demo.url + "/") as resp:
            html = await resp.text()
            policy = resp.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self'" in policy
        assets = set(re.findall(r'(?:src|href)="(/static/[^"]+)"', html))
        for name in (p.name for p in STATIC.iterdir() if p.suffix == ".js"):
            assets |= {f"/static/{m}" for m in re.findall(r'from "\./([\w.]+)"', (STATIC / name).read_text())}
        assert {"/static/app.js", "/static/demo.css", "/static/mrkdwn.js", "/static/blocks.js"} <= assets
        for asset in sorted(assets):
            async with session.get(demo.url + asset) as resp:
                assert resp.status == 200, asset
    for path in STATIC.iterdir():  # no CDN, no web font, no analytics: nothing but this origin
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", path.read_text(encoding="utf-8")), path.name


async def test_it_listens_on_loopback_unless_told_otherwise(capsys: pytest.CaptureFixture[str]) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1") and not is_loopback("demo.example.com")
    assert page_url("0.0.0.0", 8000) == "http://127.0.0.1:8000" and page_url("::", 9) == "http://[::1]:9"
    running = await start_demo(offline_settings())
    try:
        assert running.url.startswith("http://127.0.0.1:")
        assert "WARNING" not in capsys.readouterr().err
    finally:
        assert await running.shutdown() == 0
    # a non-loopback --host is taken as asked, with the warning first (this TEST-NET address cannot be bound here)
    before = set(Path(tempfile.gettempdir()).glob("datastory-demo-*"))
    code = await cli.amain(["demo", "--host", "192.0.2.1", "--port", "0"], settings=offline_settings(),
                           stop=asyncio.Event())
    err = capsys.readouterr().err
    assert code == 2
    assert "WARNING: listening on 192.0.2.1" in err and "no authentication" in err
    assert "cannot listen on 192.0.2.1:0" in err
    assert set(Path(tempfile.gettempdir()).glob("datastory-demo-*")) == before  # nothing left behind


def test_the_readme_shows_the_demo_with_a_picture_the_browser_test_took() -> None:
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert ". .venv/bin/activate && datastory demo" in readme and "](docs/demo.png)" in readme
    png = (root / "docs" / "demo.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert {"width": width, "height": height} == SCREENSHOT_WINDOW  # the browser test took it


async def test_a_sandbox_the_person_chose_is_kept_and_its_missing_key_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = await cli.amain(["demo", "--port", "0"], settings=offline_settings(sandbox="openai"), stop=asyncio.Event())
    err = capsys.readouterr().err
    assert code == 2 and "OPENAI_API_KEY is not set: the hosted sandbox (DATASTORY_SANDBOX=openai) needs it" in err
