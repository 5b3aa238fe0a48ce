"""``datastory demo`` in a real browser: the page drives the real bot through the packaged Slack emulator.

The first test also makes the README's screenshot: it is written to the test's tmp dir every run, and to
``docs/demo.png`` with ``DATASTORY_UPDATE_SCREENSHOT=1`` (or ``python tests/browser/update_screenshot.py``).
"""

from __future__ import annotations

import csv
import os
import re
import shutil
from pathlib import Path

from playwright.async_api import Locator, Page, expect

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "bot" / "demo" / "examples"
SCREENSHOT = ROOT / "docs" / "demo.png"
SCREENSHOT_WINDOW = {"width": 1440, "height": 1600}
ALL_CHARTS_LOADED = """(selector) => {
    const images = [...document.querySelectorAll(selector)];
    return images.length > 0 && images.every((image) => image.complete && image.naturalWidth > 0);
}"""
PLACEHOLDER = re.compile(r"\[(an? )?[\w ]+ is not shown")
"""What the page writes for a block or element it cannot draw (the bot must never post one)."""


def columns_of(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as f:
        return next(csv.reader(f))


def bot_messages(pane: Locator) -> Locator:
    return pane.locator(".message.from-bot")


async def wait_done(pane: Locator, turns: int) -> None:
    """Wait until ``turns`` status messages of the bot in ``pane`` say the turn is done."""
    await expect(bot_messages(pane).filter(has_text=re.compile(r"Done: "))).to_have_count(turns)


async def narrative(pane: Locator) -> str:
    """The longest text the bot wrote in the pane (the answer, not the status line)."""
    texts = await bot_messages(pane).locator(".mrkdwn").all_inner_texts()
    return max(texts, key=len)


async def share_example(page: Page, name: str) -> Locator:
    await page.get_by_role("button", name=re.compile(rf"^Share {re.escape(name)} ")).click()
    thread = page.locator("#thread")
    await expect(thread).to_be_visible()
    return thread


async def test_an_example_gets_a_narrative_and_charts_then_a_follow_up(page: Page, tmp_path: Path) -> None:
    thread = await share_example(page, "sales.csv")
    root = page.locator("#channel-messages .message", has=page.locator(".file-card", has_text="sales.csv"))
    await expect(root).to_have_count(1)
    await wait_done(thread, 1)

    text = await narrative(thread)
    missing = [c for c in columns_of(EXAMPLES / "sales.csv") if c not in text]
    assert missing == [], text
    charts = "#thread .file-image img"
    await page.wait_for_function(ALL_CHARTS_LOADED, arg=charts)
    widths = await page.locator(charts).evaluate_all("(images) => images.map((image) => image.naturalWidth)")
    assert len(widths) >= 2 and min(widths) > 300
    # the reaction moved from "working" to "done" on the message that shared the file, in the channel and thread
    await expect(root.locator(".reaction[title^=':white_check_mark:']")).to_be_visible()
    await expect(root.locator(".reaction[title^=':eyes:']")).to_have_count(0)
    await expect(root.get_by_role("button", name=re.compile(r"replies: open the thread"))).to_be_visible()
    # Slack's own chart of the answer is drawn (its bars, axis names from the file), and every block the bot sent
    chart = thread.locator("figure.block-chart[data-chart-type='bar']")
    await expect(chart.locator("rect.chart-bar")).to_have_count(4)
    await expect(chart.locator(".chart-categories text")).to_have_text(["North", "West", "South", "East"])
    assert {t.lower() for t in await chart.locator(".chart-axis-label").all_text_contents()} == {"region",
                                                                                                "total revenue"}
    await expect(thread.get_by_role("button", name="This answer helped")).to_be_visible()
    assert not PLACEHOLDER.search(await page.locator("body").inner_text())

    question = "Which region grew fastest?"
    await page.get_by_label("Reply in the thread").fill(question)
    await page.get_by_label("Reply in the thread").press("Enter")
    await expect(thread.locator(".message:not(.from-bot)", has_text=question)).to_be_visible()
    await wait_done(thread, 2)
    await expect(bot_messages(thread).filter(has_text=f"“{question}”")).to_be_visible()

    await page.screenshot(path=tmp_path / "follow-up.png")
    await show_the_answer(page, thread)
    await page.screenshot(path=tmp_path / "demo.png")
    if os.environ.get("DATASTORY_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "demo.png", SCREENSHOT)


async def show_the_answer(page: Page, thread: Locator) -> None:
    """A taller window, the thread scrolled to the bot's first message: the README's picture of a thread (status,
    narrative, charts)."""
    await page.set_viewport_size(SCREENSHOT_WINDOW)
    await bot_messages(thread).first.evaluate("(message) => message.scrollIntoView({block: 'start'})")
    await page.wait_for_function(ALL_CHARTS_LOADED, arg="#thread .file-image img")


async def test_a_file_from_the_picker_and_one_dropped_in_the_thread(page: Page, tmp_path: Path) -> None:
    first = tmp_path / "gadgets été.csv"
    first.write_text("factory_city,gadget_weight_kg,shipped_on\n" + "".join(
        f"{city},{weight},2025-0{month}-1{day}\n" for month, city in enumerate(["Lyon", "Porto", "Turin"], 1)
        for day, weight in enumerate([1.5, 2.25, 3.0, 4.75])), encoding="utf-8")
    await page.locator("#channel-file").set_input_files(first)
    thread = page.locator("#thread")
    await wait_done(thread, 1)
    text = await narrative(thread)
    assert "gadget_weight_kg" in text and "factory_city" in text, text

    # a second file dropped on the thread pane joins the thread (as a file shared in a thread does in Slack)
    await thread.evaluate("""(pane) => {
        const data = new DataTransfer();
        data.items.add(new File(["station,rainfall_mm\\nBrest,12.5\\nNice,3.25\\nLille,8\\n"], "rain.csv",
                                {type: "text/csv"}));
        pane.dispatchEvent(new DragEvent("dragenter", {dataTransfer: data, bubbles: true}));
        pane.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
    }""")
    await expect(thread.locator(".message:not(.from-bot) .file-card", has_text="rain.csv")).to_be_visible()
    await wait_done(thread, 2)
    await expect(bot_messages(thread).filter(has_text="rainfall_mm")).not_to_have_count(0)
    await expect(page.locator("#channel-messages .message .file-card", has_text="rain.csv")).to_have_count(0)


async def test_a_digest_is_scheduled_listed_and_cancelled_with_its_button(page: Page, tmp_path: Path) -> None:
    thread = await share_example(page, "web_traffic.csv")
    await wait_done(thread, 1)
    reply = page.get_by_label("Reply in the thread")
    await thread.get_by_role("button", name="a weekly digest").click()
    await expect(reply).to_be_focused()
    await expect(reply).to_have_value(re.compile(r"^@datastory digest every monday 09:00: "))
    await reply.press("Enter")
    confirmation = bot_messages(thread).filter(has_text="scheduled")
    await expect(confirmation).to_be_visible()
    # the browser's time zone became the person's Slack time zone, in which the schedule is read
    await expect(confirmation).to_contain_text("Europe/Berlin")
    await expect(confirmation.locator("blockquote")).to_contain_text("summarise the latest numbers")
    await expect(confirmation.get_by_role("button", name="Cancel")).to_be_visible()

    channel_box = page.get_by_label("Message #demo")
    await channel_box.fill("/datastory digests")
    await channel_box.press("Enter")
    listing = page.locator("#channel-messages .message.ephemeral", has_text="Digests in this channel")
    await expect(listing).to_be_visible()
    await expect(listing).to_contain_text("Only visible to you")
    await page.screenshot(path=tmp_path / "digests.png")
    await listing.get_by_role("button", name="Cancel").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_contain_text("Cancel this digest?")
    await page.screenshot(path=tmp_path / "confirm.png")
    await dialog.get_by_role("button", name="Keep it").click()
    await expect(dialog).to_be_hidden()
    await listing.get_by_role("button", name="Cancel").click()
    await dialog.get_by_role("button", name="Cancel it").click()
    # the bot answered through the response_url with replace_original: the listing became the cancellation
    await expect(listing).to_have_count(0)
    cancelled = page.locator("#channel-messages .message.ephemeral", has_text=re.compile(r"[Cc]ancelled"))
    await expect(cancelled).to_be_visible()
    await page.screenshot(path=tmp_path / "cancelled.png")
    await cancelled.get_by_role("button", name="Dismiss").click()
    await expect(cancelled).to_have_count(0)

    await channel_box.fill("/nothing here")
    await channel_box.press("Enter")
    await expect(page.locator(".message.ephemeral", has_text="is not a valid command")).to_be_visible()


async def test_mrkdwn_and_blocks_render_as_elements_never_as_html(page: Page) -> None:
    result = await page.evaluate("""async () => {
        const { renderMrkdwn } = await import("/static/mrkdwn.js");
        const { renderBlocks } = await import("/static/blocks.js");
        const ctx = { userName: (id) => (id === "U0DEMO" ? "You" : id), onAction: () => {} };
        const text = "&lt;script&gt;alert(1)&lt;/script&gt; <javascript:alert(1)|click> <https://example.com|site> "
            + "*bold* _it_ ~gone~ `a &lt; b` :white_check_mark: at 10:42:00 for <@U0DEMO> and <!here> "
            + "_set `OPENAI_API_KEY` first_ \uE0007\uE001\\n"
            + "&gt; quoted\\n```\\nx &lt;&lt; 2 *not bold*\\n```";
        const node = renderMrkdwn(text, ctx);
        const blocks = renderBlocks([{ type: "no_such_block" }, { type: "section", text: { type: "plain_text",
            text: "*plain* :eyes:" }, accessory: { type: "button", text: { type: "plain_text", text: "Go" },
            action_id: "go", style: "primary" } }], ctx);
        return {
            scripts: node.querySelectorAll("script").length, text: node.textContent,
            links: [...node.querySelectorAll("a")].map((a) => [a.textContent, a.getAttribute("href")]),
            strong: node.querySelector("strong")?.textContent,
            em: [...node.querySelectorAll("em")].map((e) => [e.textContent, e.querySelectorAll("code").length]),
            s: node.querySelector("s")?.textContent, code: node.querySelector(".inline-code")?.textContent,
            pre: node.querySelector("pre")?.textContent, quote: node.querySelector("blockquote")?.textContent,
            emoji: node.querySelector(".emoji")?.textContent,
            mentions: [...node.querySelectorAll(".mention")].map((m) => m.textContent),
            blocks: blocks.textContent, button: blocks.querySelector("button.primary")?.textContent,
            plainBold: blocks.querySelectorAll("strong").length,
        };
    }""")
    assert result["scripts"] == 0 and "<script>alert(1)</script>" in result["text"]
    assert result["links"] == [["site", "https://example.com"]] and "click" in result["text"]
    assert (result["strong"], result["s"], result["code"]) == ("bold", "gone", "a < b")
    assert result["em"] == [["it", 0], ["set OPENAI_API_KEY first", 1]] and "undefined" not in result["text"]
    assert result["pre"] == "x << 2 *not bold*" and result["quote"] == "quoted"
    assert result["emoji"] == "✅" and "at 10:42:00 for" in result["text"]
    assert result["mentions"] == ["@You", "@here"]
    assert "[a no_such_block block is not shown in the demo]" in result["blocks"] and "*plain* 👀" in result["blocks"]
    assert result["button"] == "Go" and result["plainBold"] == 0


CONTRAST = """(selectors) => {
    const rgb = (value) => value.match(/[\\d.]+/g).slice(0, 4).map(Number);
    const luminance = ([r, g, b]) => [r, g, b].map((c) => {
        const v = c / 255;
        return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    }).reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
    const background = (node) => {
        for (let n = node; n; n = n.parentElement) {
            const c = rgb(getComputedStyle(n).backgroundColor);
            if (c.length < 4 || c[3] > 0.9) return c;
        }
        return [255, 255, 255];
    };
    const out = {};
    for (const selector of selectors) {
        const node = document.querySelector(selector);
        if (!node) { out[selector] = null; continue; }
        const [a, b] = [luminance(rgb(getComputedStyle(node).color)), luminance(background(node))];
        out[selector] = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    }
    return out;
}"""


async def test_the_page_is_usable_with_a_keyboard_and_readable(page: Page) -> None:
    unnamed = await page.evaluate("""() => [...document.querySelectorAll("button, a, textarea, input")]
        .filter((e) => !(e.getAttribute("aria-label") || e.textContent.trim() || (e.labels && e.labels.length)))
        .map((e) => e.outerHTML)""")
    assert unnamed == []
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to the message box")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("Message #demo")).to_be_focused()

    example = page.get_by_role("button", name=re.compile(r"^Share sales\.csv "))
    await example.focus()
    await page.keyboard.press("Enter")
    thread = page.locator("#thread")
    await wait_done(thread, 1)
    ratios = await page.evaluate(CONTRAST, [".topic", ".hint", ".time", ".sidebar-note", ".example-meta",
                                           ".replies-last", ".file-meta", ".app-badge", ".send-button",
                                           ".inline-code", ".reaction-count", ".intro p", ".channel-name"])
    low = {selector: ratio for selector, ratio in ratios.items() if ratio is None or ratio < 4.5}
    assert low == {}, ratios
    await page.keyboard.press("Escape")
    await expect(thread).to_be_hidden()
    await expect(page.get_by_label("Message #demo")).to_be_focused()
    await page.get_by_role("button", name=re.compile(r"replies: open the thread")).press("Enter")
    await expect(thread).to_be_visible()
    await expect(page.get_by_label("Reply in the thread")).to_be_focused()
