"""``datastory demo`` draws Slack's native blocks: the data visualization block as an inline SVG chart, the data
table block as a sortable, paginated table, and the feedback buttons of the context actions block, whose click goes
through the emulator's ``block_actions`` to the bot, which keeps the vote in its database.

The model is FakeOpenAI with a chat script whose code (run in the demo's real local sandbox, on the real example
file) draws with the charting helper the sandbox ships (``datastory_charts``): a bar chart, a pie chart, a line
chart and a result table, the shapes the bot turns into Slack blocks.
"""

from __future__ import annotations

import re
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Locator, Page, expect

from bot.config import Settings
from bot.demo.block_rules import block_errors
from bot.digests import cancel_button
from bot.native_blocks import CHART_KINDS, ChartSpec, TableSpec, angle_blocks, chart_block, table_block
from bot.turns.native import answer_blocks, classic_answer_blocks
from tests.browser.harness import offline_settings
from tests.browser.test_demo_page import (
    CONTRAST,
    EXAMPLES,
    PLACEHOLDER,
    bot_messages,
    columns_of,
    share_example,
    wait_done,
)
from tests.emulators.fake_openai import ChatReply, FakeOpenAI, data_paths, message_text

MODEL = "gpt-4.1-mini"
CODE = """
import pandas as pd
import datastory_charts as dc
df = pd.read_csv({path!r})
by_region = df.groupby('region')['revenue'].sum().sort_values(ascending=False)
dc.bar(by_region.index.tolist(), by_region.round(2).tolist(), title='Revenue by region', value_label='revenue',
       category_label='region')
by_product = df.groupby('product')['revenue'].sum()
dc.pie(by_product.index.tolist(), by_product.round(2).tolist(), title='Revenue share by product')
recent = df[df['month'] >= '2025-01-01'].pivot_table(index='month', columns='region', values='units', aggfunc='sum')
dc.line(recent.index.tolist(), {{c: recent[c].tolist() for c in recent.columns}}, title='Units per month in 2025',
        ylabel='units', xlabel='month')
summary = df.groupby(['region', 'product'], as_index=False)[['revenue', 'units']].sum().round(2)
dc.table(summary, title='Revenue and units by region and product')
print(len(summary), 'rows;', ', '.join(summary.columns))
"""


def chart_script(body: dict[str, Any]) -> ChatReply:
    """Run the charting code once per question, then answer quoting what it printed."""
    messages = list(body.get("messages") or [])
    last = messages[-1] if messages else {}
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    if last.get("role") == "user" and tools:
        path = next(p for p in data_paths(messages) if p.endswith("sales.csv"))
        return ChatReply(tool_calls=[{"name": tools[0]["function"]["name"], "arguments": {"code": CODE.format(
            path=path)}}])
    printed = message_text(last).strip()
    return ChatReply(text=f"*Revenue* by region and product, from the code's output: `{printed[:200]}`")


@pytest.fixture
async def demo_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Settings]:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the demo's database lands where the test can read it
    async with FakeOpenAI(api_key="sk-demo-test", chat_script=chart_script) as model:
        yield offline_settings(openai_api_key="sk-demo-test", openai_base_url=model.base_url, model=MODEL)


def votes(tmp_path: Path) -> list[tuple[str, str]]:
    [database] = tmp_path.glob("datastory-demo-*/demo.db")
    with sqlite3.connect(database) as conn:
        return [(str(u), str(v)) for u, v in conn.execute("SELECT user_id, vote FROM feedback")]


async def column_texts(table: Locator, column: int) -> list[str]:
    return await table.locator(f"tbody tr td:nth-child({column})").all_inner_texts()


async def test_charts_tables_and_feedback_buttons_are_drawn_and_work(page: Page, tmp_path: Path) -> None:
    thread = await share_example(page, "sales.csv")
    await wait_done(thread, 1)
    columns = columns_of(EXAMPLES / "sales.csv")

    bar = thread.locator("figure.block-chart[data-chart-type='bar']")
    await expect(bar).to_have_count(1)
    await expect(bar.locator("figcaption")).to_have_text("Revenue by region")
    await expect(bar.locator("rect.chart-bar")).to_have_count(4)
    await expect(bar.locator(".chart-categories text")).to_have_text(["North", "West", "South", "East"])
    axis_labels = [t.lower() for t in await bar.locator(".chart-axis-label").all_text_contents()]
    assert axis_labels and all(label in columns for label in axis_labels), axis_labels
    heights = await bar.locator("rect.chart-bar").evaluate_all(
        "(bars) => bars.map((b) => b.getBBox().height)")
    assert heights == sorted(heights, reverse=True) and heights[-1] > 20, heights  # largest first, drawn to scale
    name = await bar.locator("svg").get_attribute("aria-labelledby")
    assert name and await page.locator(f"[id='{name.split()[1]}']").text_content()  # described in words

    line = thread.locator("figure.block-chart[data-chart-type='line']")
    await expect(line.locator(".chart-series")).to_have_count(4)
    await expect(line.locator(".chart-series").first.locator("circle.chart-point")).to_have_count(12)
    await expect(line.locator(".chart-legend li")).to_have_text(["East", "North", "South", "West"])
    assert {t.lower() for t in await line.locator(".chart-axis-label").all_text_contents()} == {"month", "units"}

    pie = thread.locator("figure.block-chart[data-chart-type='pie']")
    await expect(pie.locator(".chart-slice")).to_have_count(3)
    await expect(pie.locator(".chart-legend li")).to_contain_text(["Hardware", "Services", "Software"])

    table = thread.locator(".block-table table")
    await expect(table.locator("caption")).to_contain_text("Revenue and units by region and product")
    await expect(table.locator("thead th")).to_have_text([re.compile(rf"^{c}") for c in
                                                           ("region", "product", "revenue", "units")])
    await expect(table.locator("tbody tr")).to_have_count(10)  # a page of 10 of the 12 rows
    await expect(thread.locator(".table-status")).to_have_text("1–10 of 12 rows")
    await thread.get_by_role("button", name="Next page").click()
    await expect(table.locator("tbody tr")).to_have_count(2)
    revenue = table.get_by_role("button", name=re.compile(r"^revenue: sort"))
    await revenue.click()
    await expect(table.locator("th[aria-sort='ascending']")).to_have_count(1)
    ascending = [float(v.replace(",", "")) for v in await column_texts(table, 3)]
    assert len(ascending) == 10 and ascending == sorted(ascending)
    await revenue.press("Enter")  # the keyboard sorts too
    await expect(table.locator("th[aria-sort='descending']")).to_have_count(1)
    descending = [float(v.replace(",", "")) for v in await column_texts(table, 3)]
    assert descending == sorted(descending, reverse=True) and descending[0] > ascending[-1]
    await table.get_by_role("button", name=re.compile(r"^region: sort")).click()
    assert await column_texts(table, 1) == sorted(await column_texts(table, 1))

    # 👍 then 👎: each click is a block_actions through the emulator; the bot thanks and keeps the latest vote
    good = thread.get_by_role("button", name="This answer helped")
    await good.click()
    thanks = thread.locator(".message.ephemeral", has_text="Thanks, noted.")
    await expect(thanks).to_have_count(1)
    await expect(good).to_have_attribute("aria-pressed", "true")
    assert votes(tmp_path) == [("U0DEMO", "good")]
    bad = thread.get_by_role("button", name="This answer did not help")
    await bad.focus()
    await page.keyboard.press("Space")  # the keyboard presses it too
    await expect(thread.locator(".message.ephemeral", has_text="Ask a follow-up")).to_have_count(1)
    await expect(good).to_have_attribute("aria-pressed", "false")
    assert votes(tmp_path) == [("U0DEMO", "bad")]

    assert not PLACEHOLDER.search(await page.locator("body").inner_text())
    await expect(bot_messages(thread).locator(".unsupported")).to_have_count(0)
    ratios = await page.evaluate(CONTRAST, [".chart-title", ".chart-legend li", ".data-table caption",
                                           ".data-table td", ".sort-button", ".table-status", ".pager-button"])
    assert {s: r for s, r in ratios.items() if r is None or r < 4.5} == {}, ratios
    for name, node in (("bar", bar), ("line", line), ("pie", pie), ("table", thread.locator(".block-table"))):
        await node.screenshot(path=tmp_path / f"{name}.png")  # to look at after a change to the page


def every_block_the_bot_builds() -> list[dict[str, Any]]:
    """The blocks the bot's own builders make for messages: the answer's buttons (Slack's and the classic ones),
    story angles, each chart kind, a table, and a digest's Cancel button (each valid for the emulator's Slack)."""
    categories = ("2025-01", "2025-02", "2025-03", "2025-04")
    charts = [chart_block(ChartSpec(kind=kind, title=f"Revenue {kind}", png="x.png", categories=categories,
                                    series=(("revenue", (4.0, 3.0, 2.5, 1.0)), ("units", (1.0, 2.0, 3.0, 4.0)))[
                                        : 1 if kind == "pie" else 2],
                                    x_label="month", y_label="revenue", points=4)) for kind in CHART_KINDS]
    table = table_block(TableSpec(title="Revenue by month", columns=("month", "revenue"),
                                  rows=tuple((c, float(i)) for i, c in enumerate(categories)), total_rows=4))
    assert table is not None and all(charts)
    blocks = [*answer_blocks("*Answer*", turn_id="t1", has_code=True),
              *classic_answer_blocks("*Answer*", turn_id="t2", has_code=True),
              *angle_blocks([("Seasonality", "revenue by month"), ("Regions", "")]), *charts[:2], *charts[2:],
              table.block, {"type": "actions", "block_id": "digest-d1", "elements": [cancel_button("d1")]}]
    for i in range(0, len(blocks), 2):
        assert block_errors(blocks[i:i + 2]) == [], blocks[i:i + 2]
    return blocks


async def test_every_block_the_bot_builds_renders_as_itself(page: Page) -> None:
    blocks = every_block_the_bot_builds()
    result = await page.evaluate("""async (blocks) => {
        const { renderBlocks } = await import("/static/blocks.js");
        const node = renderBlocks(blocks, { userName: (id) => id, onAction: () => {} });
        document.getElementById("channel-messages").append(node);
        return {
            unsupported: [...node.querySelectorAll(".unsupported")].map((n) => n.textContent),
            charts: [...node.querySelectorAll("figure.block-chart")].map((f) => [f.dataset.chartType,
                f.querySelectorAll(".chart-bar, .chart-point, .chart-slice").length,
                f.querySelectorAll("path[fill-opacity]").length]),
            tables: [...node.querySelectorAll(".block-table th")].map((th) => th.textContent),
            buttons: [...node.querySelectorAll("button")].map((b) => b.getAttribute("aria-label") || b.textContent),
            text: node.textContent,
        };
    }""", blocks)
    assert result["unsupported"] == [] and not PLACEHOLDER.search(result["text"])
    assert result["charts"] == [["bar", 8, 0], ["line", 8, 0], ["area", 8, 2], ["pie", 4, 0]]
    assert [re.sub(r"[▲▼↕]", "", t) for t in result["tables"]] == ["month", "revenue"]
    assert result["buttons"][:4] == ["This answer helped", "This answer did not help", "Show code", "Show code"]
    assert {"Seasonality", "Regions", "Cancel"} <= set(result["buttons"])
