"""Slack's side of Block Kit for the emulator: the checks that make ``chat.postMessage`` answer ``invalid_blocks``.

Written from Slack's reference pages, not from the bot's builders (the emulator shares no code with the bot):

- data visualization block (https://docs.slack.dev/reference/block-kit/blocks/data-visualization-block):
  ``title`` 1–50 characters; ``chart.type`` pie (``segments`` 1–6, ``label`` 1–20 characters, ``value`` > 0) or
  bar/area/line (``series`` 1–6, each a ``name`` of 1–20 characters and ``data`` points ``{label, value}`` with
  labels among ``axis_config.categories``; categories 1–20, each 1–20 characters; axis labels at most 50); at
  most 2 per message (the stricter of the published validators);
- data table block (https://docs.slack.dev/reference/block-kit/blocks/data-table-block): ``caption`` required;
  2–101 rows, 1–20 columns, rows of equal length; header cells ``raw_text``; cells ``raw_text`` (``text`` at least
  1 character), ``raw_number`` (numeric ``value``) or ``rich_text``; ``page_size`` 1–100; all cells' characters at
  most 10,000 per table and per message;
- image block with ``slack_file`` (``id`` or ``url``) or ``image_url``, and ``alt_text``;
- actions blocks (1–25 buttons with ``text`` of 1–75 characters, ``action_id`` at most 255 and ``value`` at most
  2000) and context actions blocks (https://docs.slack.dev/reference/block-kit/blocks/context-actions-block: 1–5
  feedback buttons or icon buttons; each feedback button ``plain_text`` of 1–75 characters and a ``value`` of
  1–2000).

A workspace can also refuse whole block types (``FakeSlack(refused_blocks={"data_visualization"})``), as a
Slack that does not know the block yet would.
"""

from __future__ import annotations

import math
from typing import Any

_CHART_TYPES = ("pie", "bar", "area", "line")
_BUTTON_ELEMENTS = ("button", "feedback_buttons", "icon_button")


def _text_len(value: Any) -> int:
    return len(value) if isinstance(value, str) else -1


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _pie_errors(where: str, chart: dict[str, Any]) -> list[str]:
    segments = chart.get("segments")
    if not isinstance(segments, list) or not 1 <= len(segments) <= 6:
        return [f"must have 1-6 items {where}/chart/segments]"]
    errors: list[str] = []
    for j, s in enumerate(segments):
        if not isinstance(s, dict) or not 1 <= _text_len(s.get("label")) <= 20:
            errors.append(f"must be 1-20 characters {where}/chart/segments/{j}/label]")
        elif not _number(s.get("value")) or s["value"] <= 0:
            errors.append(f"must be greater than 0 {where}/chart/segments/{j}/value]")
    return errors


def _series_errors(where: str, j: int, s: Any, categories: list[Any]) -> list[str]:
    errors: list[str] = []
    data = s.get("data") if isinstance(s, dict) else None
    if not isinstance(s, dict) or not 1 <= _text_len(s.get("name")) <= 20:
        errors.append(f"must be 1-20 characters {where}/chart/series/{j}/name]")
    if not isinstance(data, list) or not 1 <= len(data) <= 20:
        return [*errors, f"must have 1-20 items {where}/chart/series/{j}/data]"]
    labels = [p.get("label") if isinstance(p, dict) else None for p in data]
    if len(set(map(str, labels))) != len(labels) or any(label not in categories for label in labels):
        errors.append(f"labels must be distinct categories {where}/chart/series/{j}/data]")
    if not all(isinstance(p, dict) and _number(p.get("value")) for p in data):
        errors.append(f"must be a finite number {where}/chart/series/{j}/data/value]")
    return errors


def _chart_errors(i: int, block: dict[str, Any]) -> list[str]:
    where = f"[json-pointer:/blocks/{i}"
    errors: list[str] = []
    if not 1 <= _text_len(block.get("title")) <= 50:
        errors.append(f"must be 1-50 characters {where}/title]")
    chart = block.get("chart")
    if not isinstance(chart, dict) or chart.get("type") not in _CHART_TYPES:
        return [*errors, f"must be one of pie, bar, area, line {where}/chart/type]"]
    if chart["type"] == "pie":
        return errors + _pie_errors(where, chart)
    axis = chart.get("axis_config")
    if not isinstance(axis, dict):
        return [*errors, f"missing required field: axis_config {where}/chart]"]
    categories = axis.get("categories")
    if not isinstance(categories, list) or not 1 <= len(categories) <= 20 or \
            not all(1 <= _text_len(c) <= 20 for c in categories):
        return [*errors, f"must be 1-20 categories of 1-20 characters {where}/chart/axis_config/categories]"]
    for label in ("x_label", "y_label"):
        if label in axis and not 0 <= _text_len(axis[label]) <= 50:
            errors.append(f"must be at most 50 characters {where}/chart/axis_config/{label}]")
    series = chart.get("series")
    if not isinstance(series, list) or not 1 <= len(series) <= 6:
        return [*errors, f"must have 1-6 items {where}/chart/series]"]
    for j, s in enumerate(series):
        errors.extend(_series_errors(where, j, s, categories))
    return errors


def _cell_chars(cell: Any, *, header: bool) -> int:
    """The characters of one cell, or -1 when it is not a valid cell."""
    if not isinstance(cell, dict):
        return -1
    kind = cell.get("type")
    if kind == "raw_text":
        return len(cell["text"]) if _text_len(cell.get("text")) >= 1 else -1
    if header:
        return -1
    if kind == "raw_number":
        if not _number(cell.get("value")) or ("text" in cell and _text_len(cell["text"]) < 1):
            return -1
        return len(cell.get("text") or str(cell["value"]))
    if kind == "rich_text":
        return len(str(cell.get("elements", "")))
    return -1


def _table_errors(i: int, block: dict[str, Any]) -> tuple[list[str], int]:
    where = f"[json-pointer:/blocks/{i}"
    errors: list[str] = []
    if not isinstance(block.get("caption"), str):
        errors.append(f"missing required field: caption {where}]")
    if "page_size" in block and not (isinstance(block["page_size"], int) and 1 <= block["page_size"] <= 100):
        errors.append(f"must be 1-100 {where}/page_size]")
    rows = block.get("rows")
    if not isinstance(rows, list) or not 2 <= len(rows) <= 101:
        return [*errors, f"must have 2-101 rows {where}/rows]"], 0
    width = len(rows[0]) if isinstance(rows[0], list) else 0
    if not 1 <= width <= 20 or any(not isinstance(r, list) or len(r) != width for r in rows):
        return [*errors, f"rows must have the same 1-20 cells {where}/rows]"], 0
    chars = 0
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            n = _cell_chars(cell, header=r == 0)
            if n < 0:
                errors.append(f"invalid cell {where}/rows/{r}/{c}]")
            chars += max(n, 0)
    if chars > 10_000:
        errors.append(f"cells must total at most 10000 characters {where}/rows]")
    return errors, chars


def _image_errors(i: int, block: dict[str, Any]) -> list[str]:
    where = f"[json-pointer:/blocks/{i}"
    source = block.get("slack_file")
    has_file = isinstance(source, dict) and (isinstance(source.get("id"), str) or isinstance(source.get("url"), str))
    if has_file == isinstance(block.get("image_url"), str):
        return [f"must have exactly one of image_url, slack_file {where}]"]
    if not 1 <= _text_len(block.get("alt_text")) <= 2000:
        return [f"must be 1-2000 characters {where}/alt_text]"]
    return []


def _actions_errors(i: int, block: dict[str, Any]) -> list[str]:
    where = f"[json-pointer:/blocks/{i}"
    elements = block.get("elements")
    most = 5 if block.get("type") == "context_actions" else 25
    if not isinstance(elements, list) or not 1 <= len(elements) <= most:
        return [f"must have 1-{most} items {where}/elements]"]
    allowed = ("feedback_buttons", "icon_button") if block.get("type") == "context_actions" else ("button",)
    if any(isinstance(e, dict) and e.get("type") not in allowed for e in elements):
        return [f"element type not allowed in {block.get('type')} {where}/elements]"]
    errors: list[str] = []
    for j, e in enumerate(elements):
        if not isinstance(e, dict) or e.get("type") not in _BUTTON_ELEMENTS:
            errors.append(f"unsupported element {where}/elements/{j}]")
        elif e["type"] == "feedback_buttons":
            for side in ("positive_button", "negative_button"):
                button = e.get(side)
                text = button.get("text") if isinstance(button, dict) else None
                if not isinstance(text, dict) or text.get("type") != "plain_text" or \
                        not 1 <= _text_len(text.get("text")) <= 75 or \
                        not 1 <= _text_len(button.get("value")) <= 2000:  # type: ignore[union-attr]
                    errors.append(f"invalid {side} {where}/elements/{j}]")
        elif e["type"] == "button":
            text = e.get("text")
            if not isinstance(text, dict) or not 1 <= _text_len(text.get("text")) <= 75:
                errors.append(f"must be 1-75 characters {where}/elements/{j}/text]")
            if not 1 <= _text_len(e.get("action_id")) <= 255 or len(str(e.get("value", ""))) > 2000:
                errors.append(f"invalid action_id or value {where}/elements/{j}]")
    return errors


def block_errors(blocks: list[Any], *, refused: frozenset[str] = frozenset()) -> list[str]:
    """Slack's complaints about ``blocks`` (empty when it would accept them)."""
    errors: list[str] = []
    charts = 0
    table_chars = 0
    for i, block in enumerate(blocks):
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(kind, str) or kind in refused:
            errors.append(f"unsupported type: {kind} [json-pointer:/blocks/{i}/type]")
        elif kind == "data_visualization":
            charts += 1
            errors.extend(_chart_errors(i, block))
        elif kind == "data_table":
            found, chars = _table_errors(i, block)
            errors.extend(found)
            table_chars += chars
        elif kind == "image":
            errors.extend(_image_errors(i, block))
        elif kind in ("actions", "context_actions"):
            errors.extend(_actions_errors(i, block))
    if charts > 2:
        errors.append("no more than 2 data_visualization blocks per message [json-pointer:/blocks]")
    if table_chars > 10_000:
        errors.append("table cells must total at most 10000 characters per message [json-pointer:/blocks]")
    return errors
