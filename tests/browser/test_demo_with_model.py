"""``datastory demo`` with a model configured: the chat tool loop on the local sandbox answers, with code and a
chart, and the page shows the model's Markdown as Slack would (code blocks included).

The model is FakeOpenAI (``tests/emulators/fake_openai.py``) with its default chat script: it runs pandas code
in the thread's kernel that prints the data's shape and saves a bar chart, then quotes the output.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from bot.config import Settings
from tests.browser.harness import offline_settings
from tests.browser.test_demo_page import ALL_CHARTS_LOADED, EXAMPLES, bot_messages, columns_of, share_example, wait_done
from tests.emulators.fake_openai import FakeOpenAI

MODEL = "gpt-4.1-mini"


@pytest.fixture
async def demo_settings() -> AsyncIterator[Settings]:
    async with FakeOpenAI(api_key="sk-demo-test") as model:
        yield offline_settings(openai_api_key="sk-demo-test", openai_base_url=model.base_url, model=MODEL)


async def test_a_configured_model_answers_with_code_output_and_a_chart(page: Page, tmp_path: Path) -> None:
    await expect(page.locator("#topic")).to_contain_text(MODEL)
    await expect(page.locator("#analyst")).to_contain_text(f"Analyst: {MODEL}")
    thread = await share_example(page, "support_tickets.csv")
    await wait_done(thread, 1)
    code = bot_messages(thread).locator("pre.code-block")
    await expect(code.first).to_contain_text("support_tickets.csv: 1200 rows")
    output = await code.first.inner_text()
    assert [c for c in columns_of(EXAMPLES / "support_tickets.csv") if c not in output] == [], output
    await page.wait_for_function(ALL_CHARTS_LOADED, arg="#thread .file-image img")

    await page.get_by_label("Reply in the thread").fill("And the satisfaction total?")
    await page.get_by_label("Reply in the thread").press("Enter")
    await wait_done(thread, 2)
    await expect(thread.locator(".file-image img")).to_have_count(2)
    await page.wait_for_function(ALL_CHARTS_LOADED, arg="#thread .file-image img")
    await expect(bot_messages(thread).filter(has_text=re.compile(r"Done: answered"))).to_have_count(1)
    # the thread follows the conversation down to the last chart (whose height arrives after it was added)
    await page.wait_for_function("""() => {
        const list = document.getElementById("thread-messages");
        return list.scrollHeight - list.scrollTop - list.clientHeight < 60;
    }""")
    await page.screenshot(path=tmp_path / "model.png")
