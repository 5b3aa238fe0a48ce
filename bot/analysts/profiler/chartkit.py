"""The charting helper every sandbox kernel can import as ``datastory_charts``: a house-style PNG plus its data.

Each drawing function draws one PNG with :mod:`.style` (the house style) and writes a chart spec beside it,
``<name>.chart.json``: the kind (``bar``, ``line``, ``area`` or ``pie``), the title, the axis labels and unit, the
categories and the series, the numbers behind the picture. The bot turns a spec into Slack's data visualization
block when it fits Slack's limits and posts the PNG in any case (:mod:`bot.native_blocks`). :func:`table` writes a
result table's first rows as ``<name>.table.json`` (for Slack's data table block) and, when the table is larger
than a block can hold, the whole table as ``<name>.csv``. :func:`angles` offers up to three story angles as
buttons under a first answer.

Usage in a kernel::

    import datastory_charts as dc
    dc.bar(["North", "South"], [130, 82], title="Revenue by region", value_label="Revenue ($)", unit="$")
    dc.line(months, {"Revenue": revenue}, title="Revenue per month", ylabel="Revenue ($)")
    dc.table(summary_frame, title="Revenue by region")

Standalone like :mod:`.style` (standard library and matplotlib; :func:`table` takes any pandas-like frame). Inside
the profiler package it imports ``style`` relatively; shipped into a sandbox it is the top-level module
``datastory_charts`` beside ``datastory_style`` (:mod:`bot.sandbox.helper`).
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import math
import numbers
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

try:
    from . import style
except ImportError:  # shipped into a sandbox as top-level modules (bot.sandbox.helper)
    style = importlib.import_module("datastory_style")

SPEC_SUFFIX = ".chart.json"
TABLE_SUFFIX = ".table.json"
ANGLES_FILE = "story.angles.json"
ANGLES_MAX = 3
SPEC_VERSION = 1
SPEC_POINTS = 200
"""Categories a spec carries at most (far more than any native chart shows; the PNG has them all)."""
TABLE_ROWS = 100
TABLE_COLUMNS = 20
TABLE_CHARS = 10_000
"""A table within these (rows, columns, characters over all cells) is whole in its spec; a larger one also gets
its CSV. The same numbers as Slack's data table block (see :mod:`bot.native_blocks`)."""

__all__ = ["ANGLES_FILE", "SPEC_SUFFIX", "TABLE_SUFFIX", "angles", "area", "bar", "line", "pie", "table"]


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]+", "_", ascii_text).strip("_").lower()[:48] or "chart"


def _free_path(title: str, suffix: str = ".png") -> str:
    base = _slug(title)
    path, n = f"{base}{suffix}", 2
    while os.path.exists(path):
        path, n = f"{base}_{n}{suffix}", n + 1
    return path


def _stem(path: str) -> str:
    return path[:-4] if path.lower().endswith(".png") else path


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _label(value: Any) -> str:
    """A category as text: dates as ``2025-01-31`` (with the time when there is one), numbers plainly."""
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, _dt.datetime):
        return value.strftime("%Y-%m-%d") if value.time() == _dt.time() else value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, _dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _write(path: str, spec: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        json.dump(spec, out, ensure_ascii=False, allow_nan=False)


def _spec(kind: str, png: str, *, title: str, categories: Sequence[Any], series: Mapping[str, Sequence[Any]],
          x_label: str = "", y_label: str = "", unit: str | None = None) -> None:
    labels = [_label(c) for c in categories]
    spec = {
        "version": SPEC_VERSION, "kind": kind, "title": str(title), "png": os.path.basename(png),
        "x_label": str(x_label or ""), "y_label": str(y_label or ""), "unit": unit,
        "points": len(labels), "categories": labels[:SPEC_POINTS],
        "series": [{"name": str(name), "values": [_number(v) for v in list(values)[:SPEC_POINTS]]}
                   for name, values in series.items()],
    }
    _write(_stem(png) + SPEC_SUFFIX, spec)


def bar(labels: Sequence[Any], values: Sequence[float], *, title: str, value_label: str = "",
        category_label: str = "", unit: str | None = None, subtitle: str = "", path: str | None = None) -> str:
    """Horizontal bars in the given order (largest first is the house rule), from zero, values at their ends;
    returns the PNG's path."""
    png = path or _free_path(title)
    style.bar_chart(png, [_label(v) for v in labels], [float(v) for v in values], title=title,
                    value_label=value_label, category_label=category_label, unit=unit, subtitle=subtitle)
    _spec("bar", png, title=title, categories=labels, series={value_label or "Value": values},
          x_label=category_label, y_label=value_label, unit=unit)
    return png


def line(x: Sequence[Any], series: Mapping[str, Sequence[float]], *, title: str, ylabel: str = "",
         xlabel: str = "", unit: str | None = None, dates: bool | None = None, subtitle: str = "",
         markers: bool = False, background: tuple[Sequence[Any], Sequence[float]] | None = None,
         path: str | None = None) -> str:
    """One line per series over ``x`` (dates are detected); returns the PNG's path. ``background`` (raw readings
    drawn light under their average) is in the picture only."""
    png = path or _free_path(title)
    xs = list(x)
    is_dates = dates if dates is not None else any(isinstance(v, _dt.date) or hasattr(v, "to_pydatetime")
                                                   for v in xs[:5])
    style.line_chart(png, xs, {k: [float(v) for v in vs] for k, vs in series.items()}, title=title,
                     ylabel=ylabel, xlabel=xlabel, unit=unit, dates=is_dates, subtitle=subtitle,
                     markers=markers, background=background)
    _spec("line", png, title=title, categories=xs, series=series, x_label=xlabel, y_label=ylabel, unit=unit)
    return png


def area(x: Sequence[Any], series: Mapping[str, Sequence[float]], *, title: str, ylabel: str = "",
         xlabel: str = "", unit: str | None = None, stacked: bool = False, path: str | None = None) -> str:
    """Filled areas over ``x`` (layered in order, or stacked); returns the PNG's path."""
    png = path or _free_path(title)
    xs = list(x)
    is_dates = any(isinstance(v, _dt.date) or hasattr(v, "to_pydatetime") for v in xs[:5])
    fig, ax = style.figure(style.WIDE)
    base = [0.0] * len(xs)
    for i, (name, values) in enumerate(series.items()):
        ys = [float(v) for v in values]
        top = [b + y for b, y in zip(base, ys, strict=False)] if stacked else ys
        color = style.PALETTE[i % len(style.PALETTE)]
        ax.fill_between(xs, base if stacked else [0.0] * len(xs), top, alpha=0.22, color=color, linewidth=0)
        ax.plot(xs, top, color=color, label=str(name))
        base = top if stacked else base
    if is_dates:
        style.date_axis(ax)
    style.number_axis(ax, "y", unit)
    ax.set_ylim(bottom=0)
    if len(series) > 1:
        ax.legend(loc="best")
    style.titles(ax, title, xlabel=xlabel, ylabel=ylabel)
    style.save(fig, png)
    _spec("area", png, title=title, categories=xs, series=series, x_label=xlabel, y_label=ylabel, unit=unit)
    return png


def pie(labels: Sequence[Any], values: Sequence[float], *, title: str, unit: str | None = None,
        path: str | None = None) -> str:
    """Shares of a whole (a few positive parts; bars read better beyond six); returns the PNG's path."""
    png = path or _free_path(title)
    names, numbers = [_label(v) for v in labels], [float(v) for v in values]
    fig, ax = style.figure(style.SQUARE)
    ax.grid(False)
    total = sum(v for v in numbers if v > 0) or 1.0
    colors = [style.PALETTE[i % len(style.PALETTE)] for i in range(len(numbers))]
    wedges = ax.pie(numbers, labels=names, colors=colors, autopct=lambda p: f"{p:.0f}%" if p >= 3 else "",
                    startangle=90, counterclock=False, wedgeprops={"linewidth": 1, "edgecolor": "white"},
                    textprops={"fontsize": 9})
    for share in wedges[2]:  # the percentages, inside the wedges
        share.set_color("white")
        share.set_fontweight("bold")
    ax.axis("equal")
    style.titles(ax, title, subtitle=f"Total {style.format_number(total, unit)}")
    style.save(fig, png)
    _spec("pie", png, title=title, categories=labels, series={"Share": values}, unit=unit)
    return png


def _cell(value: Any) -> str | float | None:
    """A table cell for JSON: a finite number, text, or None for a missing value."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return str(bool(value))
    if isinstance(value, numbers.Number):
        return _number(value)
    if value is None:
        return None
    text = _label(value)
    return None if text in ("nan", "NaT", "<NA>", "None") else text


def table(frame: Any, *, title: str, path: str | None = None, index: bool | None = None) -> str:
    """A result table for the answer: its first rows as ``<name>.table.json`` and, when it is larger than a data
    table block holds, the whole of it as ``<name>.csv``; returns the spec's path. A named or non-default index is
    kept as the first column."""
    spec_path = path or _free_path(title, TABLE_SUFFIX)
    if index is None:
        index = any(n is not None for n in getattr(frame.index, "names", [None])) or \
            type(frame.index).__name__ not in ("RangeIndex",)
    shown = frame.reset_index() if index else frame
    columns = [_label(c) for c in shown.columns]
    rows = [[_cell(v) for v in row] for row in shown.head(TABLE_ROWS).itertuples(index=False, name=None)]
    chars = sum(len(c) for c in columns[:TABLE_COLUMNS]) + sum(
        len(_label(v)) if v is not None else 1 for row in rows for v in row[:TABLE_COLUMNS])
    whole = len(shown) <= TABLE_ROWS and len(columns) <= TABLE_COLUMNS and chars <= TABLE_CHARS
    stem = spec_path[: -len(TABLE_SUFFIX)] if spec_path.endswith(TABLE_SUFFIX) else spec_path
    csv_path = None if whole else stem + ".csv"
    if csv_path is not None:
        shown.to_csv(csv_path, index=False)
    numeric = [all(isinstance(r[i], float) or r[i] is None for r in rows) and any(r[i] is not None for r in rows)
               for i in range(len(columns))]
    _write(spec_path, {"version": SPEC_VERSION, "kind": "table", "title": str(title), "columns": columns,
                       "numeric": numeric, "rows": rows, "total_rows": len(shown),
                       "csv": os.path.basename(csv_path) if csv_path else None})
    return spec_path


def angles(items: Sequence[tuple[str, str]]) -> str:
    """Up to three story angles worth a full write-up, each ``(title, one line)``, offered as buttons under the
    answer (``story.angles.json``); returns the file's path."""
    chosen = [{"title": " ".join(str(t).split())[:75], "line": " ".join(str(line).split())[:200]}
              for t, line in list(items)[:ANGLES_MAX] if str(t).strip()]
    _write(ANGLES_FILE, {"version": SPEC_VERSION, "kind": "angles", "angles": chosen})
    return ANGLES_FILE
