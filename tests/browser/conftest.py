"""Browser harness: ``datastory demo`` in-process on a random loopback port, driven by a real headless Chromium.

The browser is Debian's ``chromium`` (``apt-get install -y chromium``; Playwright's own download is not used),
driven through Playwright's Python package. Without it the tests skip locally and fail in CI (``CI=true``), like
the PostgreSQL tests. Every page error or failed console message fails the test that caused it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright

from bot.config import Settings
from tests.browser.harness import RunningDemo, offline_settings, start_demo

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
VIEWPORT = {"width": 1360, "height": 900}
ANSWER_TIMEOUT_MS = 90_000
"""Long enough for a first kernel on a busy 2-core machine; the tests wait on conditions, never sleep."""

pytestmark = pytest.mark.browser


@pytest.fixture
async def demo_settings() -> Settings:
    """The settings ``datastory demo`` starts with (a module overrides this fixture to configure a model)."""
    return offline_settings()


@pytest.fixture
async def demo(demo_settings: Settings) -> AsyncIterator[RunningDemo]:
    running = await start_demo(demo_settings)
    try:
        yield running
    finally:
        assert await running.shutdown() == 0


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing: CI must install Debian's chromium (see .ci/run)")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser: Browser, demo: RunningDemo) -> AsyncIterator[Page]:
    """A tab on the demo's page (closed before the demo stops, so no reconnect noise lands in the console)."""
    context = await browser.new_context(viewport=VIEWPORT, timezone_id="Europe/Berlin", locale="en-GB")
    tab = await context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console error: {message.text}")

    tab.on("console", console)
    tab.set_default_timeout(ANSWER_TIMEOUT_MS)
    await tab.goto(demo.url)
    try:
        yield tab
    finally:
        await context.close()
    assert problems == []
