"""Slack's own charts and tables: chart and table specs (written by the sandbox's charting helper) as Block Kit.

The helper (:mod:`bot.analysts.profiler.chartkit`, ``datastory_charts`` in a sandbox) writes ``<name>.chart.json``
beside each PNG and ``<name>.table.json`` for a result table. Here they become a data visualization block (line,
bar, area, pie) and a data table block, but only when they fit Slack's limits: a chart that does not fit is posted
as its PNG alone, which is always posted anyway. A spec that cannot be read is ignored (fail closed: the PNG stays).

Slack's limits, and where they come from (they differ between sources; the strictest is used):

- data visualization block (https://docs.slack.dev/reference/block-kit/blocks/data-visualization-block, read
  2026-12): ``title`` at most 50 characters; pie ``segments`` 1–6, each ``label`` at most 20 characters and
  ``value`` > 0; bar, area and line ``series`` 1–6 with an ``axis_config`` (categories, x/y labels). Third-party
  validators (slackblocks' shared fixtures, OpenClaw's Slack renderer, slack-morphism) allow 12 segments and 12
  series, 1–20 categories and 1–20 points per series, series names and category labels at most 20 characters,
  axis labels at most 50, one finite value per category, and at most 2 such blocks per message: we keep 6 (the
  official page) and take the others as stated.
- data table block (https://docs.slack.dev/reference/block-kit/blocks/data-table-block): ``caption`` required;
  2–101 rows (a header row plus 1–100), 1–20 columns, every row the same length; header cells are ``raw_text``;
  cells ``raw_text`` (``text`` at least 1 character) or ``raw_number`` (``value``, optional ``text``);
  ``page_size`` 1–100 (default 5); the characters of all cells at most 10,000 per table and per message.
  (slack-morphism's docs say 201 rows; the official 101 is used.)
- a message holds at most 50 blocks (https://docs.slack.dev/reference/block-kit/blocks).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

CHART_SUFFIX = ".chart.json"
TABLE_SUFFIX = ".table.json"
ANGLES_SUFFIX = ".angles.json"
ANGLE_ACTION = "story_angle_{}"
"""The action id of the i-th story angle button (ids are unique within a block)."""
SPEC_BYTES = 512 * 1024
"""A spec file larger than this is not read (the helper's are a few kilobytes)."""

TITLE_MAX = 50
LABEL_MAX = 20
AXIS_LABEL_MAX = 50
SEGMENTS_MAX = 6
SERIES_MAX = 6
CATEGORIES_MAX = 20
CHARTS_PER_MESSAGE = 2
TABLE_ROWS_MAX = 100
TABLE_COLUMNS_MAX = 20
TABLE_CHARS_MAX = 10_000
PAGE_SIZE = 10
BLOCKS_PER_MESSAGE = 50
CHART_KINDS = ("bar", "line", "area", "pie")
EMPTY_CELL = "–"


def is_spec(name: str) -> bool:
    """True for a chart or table spec the helper wrote (posted as blocks, never attached as a file)."""
    return name.endswith((CHART_SUFFIX, TABLE_SUFFIX, ANGLES_SUFFIX))


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class ChartSpec:
    """One chart the helper drew: kind, title, labels, categories, series (name and one value per category)."""

    kind: str
    title: str
    png: str
    categories: tuple[str, ...]
    series: tuple[tuple[str, tuple[float | None, ...]], ...]
    x_label: str = ""
    y_label: str = ""
    points: int = 0

    @classmethod
    def parse(cls, data: bytes) -> ChartSpec | None:
        """The spec in ``data``, or None when it is not a chart spec this version reads."""
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict) or raw.get("version") != 1 or raw.get("kind") not in CHART_KINDS:
                return None
            categories = tuple(str(c) for c in raw["categories"])
            series = tuple((str(s["name"]), tuple(None if v is None else float(v) for v in s["values"]))
                           for s in raw["series"])
            return cls(kind=str(raw["kind"]), title=str(raw["title"]), png=str(raw["png"]), categories=categories,
                       series=series, x_label=str(raw.get("x_label") or ""), y_label=str(raw.get("y_label") or ""),
                       points=int(raw.get("points") or len(categories)))
        except (ValueError, KeyError, TypeError):
            return None


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A result table: caption, column names, the first rows, how many rows the whole table has, its CSV."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str | float | None, ...], ...]
    total_rows: int
    csv: str | None = None

    @classmethod
    def parse(cls, data: bytes) -> TableSpec | None:
        """The spec in ``data``, or None when it is not a table spec this version reads."""
        try:
            raw = json.loads(data)
            if not isinstance(raw, dict) or raw.get("version") != 1 or raw.get("kind") != "table":
                return None
            columns = tuple(str(c) for c in raw["columns"])
            rows = tuple(tuple(_cell_value(v) for v in row) for row in raw["rows"])
            if any(len(row) != len(columns) for row in rows):
                return None
            csv = raw.get("csv")
            return cls(title=str(raw["title"]), columns=columns, rows=rows,
                       total_rows=int(raw.get("total_rows") or len(rows)), csv=str(csv) if csv else None)
        except (ValueError, KeyError, TypeError):
            return None


def parse_angles(data: bytes) -> list[tuple[str, str]]:
    """The story angles of an angles spec (title, one line), at most 3; empty when it cannot be read."""
    try:
        raw = json.loads(data)
        if not isinstance(raw, dict) or raw.get("version") != 1 or raw.get("kind") != "angles":
            return []
        found = [(" ".join(str(a["title"]).split()), " ".join(str(a.get("line") or "").split()))
                 for a in raw["angles"] if isinstance(a, dict)]
    except (ValueError, KeyError, TypeError):
        return []
    return [(title, line) for title, line in found if title][:3]


def angle_blocks(angles: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """A section naming the angles and one button per angle (its value carries the title and the line)."""
    lines = "\n".join(f"• *{_short(t, 75)}*: {_short(line, 200)}" if line else f"• *{_short(t, 75)}*"
                      for t, line in angles)
    buttons = [{"type": "button", "action_id": ANGLE_ACTION.format(i), "text": {"type": "plain_text",
                                                                               "text": _short(t, 75)},
                "value": json.dumps({"t": _short(t, 75), "l": _short(line, 200)}, ensure_ascii=False)}
               for i, (t, line) in enumerate(angles)]
    return [{"type": "section", "text": {"type": "mrkdwn", "text": "*Story angles*: pick one for the full story "
                                         f"with charts, or ask your own question.\n{lines}"}},
            {"type": "actions", "block_id": "story-angles", "elements": buttons}]


def _cell_value(value: Any) -> str | float | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    number = float(value)
    return number if math.isfinite(number) else None


def _finite(values: tuple[float | None, ...]) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def chart_block(spec: ChartSpec, *, block_id: str | None = None) -> dict[str, Any] | None:
    """The data visualization block for ``spec``, or None when its data does not fit the block's limits."""
    if spec.points != len(spec.categories) or not spec.categories or not spec.series:
        return None
    labels = [_short(c, LABEL_MAX) for c in spec.categories]
    if len(set(labels)) != len(labels):
        return None
    chart: dict[str, Any]
    if spec.kind == "pie":
        values = spec.series[0][1]
        if len(labels) > SEGMENTS_MAX or len(values) != len(labels) or not _finite(values) or \
                any(v is None or v <= 0 for v in values):
            return None
        chart = {"type": "pie", "segments": [{"label": label, "value": value}
                                             for label, value in zip(labels, values, strict=True)]}
    else:
        names = [_short(name, LABEL_MAX) for name, _ in spec.series]
        if len(labels) > CATEGORIES_MAX or len(spec.series) > SERIES_MAX or len(set(names)) != len(names):
            return None
        if any(len(values) != len(labels) or not _finite(values) for _, values in spec.series):
            return None
        axis: dict[str, Any] = {"categories": labels}
        if spec.x_label:
            axis["x_label"] = _short(spec.x_label, AXIS_LABEL_MAX)
        if spec.y_label:
            axis["y_label"] = _short(spec.y_label, AXIS_LABEL_MAX)
        chart = {"type": spec.kind, "axis_config": axis, "series": [
            {"name": name, "data": [{"label": label, "value": value} for label, value in zip(labels, values,
                                                                                           strict=True)]}
            for name, (_, values) in zip(names, spec.series, strict=True)]}
    block: dict[str, Any] = {"type": "data_visualization", "title": _short(spec.title, TITLE_MAX), "chart": chart}
    if block_id:
        block["block_id"] = block_id
    return block


def _number_text(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    size = abs(value)
    if 1e3 <= size < 1e15:  # plain, with thousands separators: a table reader compares whole numbers
        return f"{value:,.0f}" if size >= 1e6 else f"{value:,.1f}".rstrip("0").rstrip(".")
    return f"{value:.3g}" if size < 1e-3 or size >= 1e15 else f"{value:,.4f}".rstrip("0").rstrip(".")


def _cell(value: str | float | None) -> tuple[dict[str, Any], int]:
    if isinstance(value, float):
        text = _number_text(value)
        return {"type": "raw_number", "value": value, "text": text}, len(text)
    text = value if value else EMPTY_CELL
    return {"type": "raw_text", "text": text}, len(text)


@dataclass(frozen=True, slots=True)
class TableBlock:
    """A data table block and how many of the table's rows it shows."""

    block: dict[str, Any]
    shown_rows: int
    chars: int


def table_block(spec: TableSpec, *, chars_left: int = TABLE_CHARS_MAX,
                block_id: str | None = None) -> TableBlock | None:
    """The data table block for ``spec``: its first rows that fit within the row and character limits
    (``chars_left`` of the message's budget); None when not even one row fits or it has too many columns."""
    if not spec.columns or len(spec.columns) > TABLE_COLUMNS_MAX or not spec.rows:
        return None
    budget = min(chars_left, TABLE_CHARS_MAX)
    header = [{"type": "raw_text", "text": _short(c, 200) or EMPTY_CELL} for c in spec.columns]
    used = sum(len(c["text"]) for c in header)
    rows: list[list[dict[str, Any]]] = [header]
    for row in spec.rows[:TABLE_ROWS_MAX]:
        cells = [_cell(v) for v in row]
        size = sum(n for _, n in cells)
        if used + size > budget:
            break
        rows.append([c for c, _ in cells])
        used += size
    if len(rows) < 2:
        return None
    block: dict[str, Any] = {"type": "data_table", "caption": _short(spec.title, 200) or "Table", "rows": rows,
                             "page_size": min(PAGE_SIZE, len(rows) - 1)}
    if block_id:
        block["block_id"] = block_id
    return TableBlock(block=block, shown_rows=len(rows) - 1, chars=used)
