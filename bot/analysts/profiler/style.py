"""The house chart style: charts a data team would publish, the same in every first look and every answer.

Standalone on purpose: it imports only the standard library and matplotlib, so it runs inside any sandbox kernel
(the offline profiler ships it there; the model prompts ask for the same rules). The rules:

- plain numbers: thousands separators, ``1.2M``/``3.4B`` for large values, never a ``1e6`` offset or
  ``1.413e+04``; percent and currency signs where the unit is known;
- natural titles (``Total revenue by region``) and labelled axes, with units where known (``Body mass (g)``);
- bars start at zero and carry their values; horizontal bars for long category names, largest first;
- readable date ticks (concise, automatic); a light horizontal grid, no top or right frame;
- one palette, one font size scale, white background, saved at 120 dpi with a tight box.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from cycler import cycler
from matplotlib.ticker import FuncFormatter, MaxNLocator

PALETTE = ("#2f6db5", "#e07b39", "#3a9e6f", "#c44e52", "#8172b2", "#937860", "#da8bc3", "#8c8c8c")
ACCENT = "#c44e52"
INK = "#262626"
MUTED = "#6b6b6b"
GRID = "#e3e3e3"
DPI = 120
WIDE = (9.0, 4.8)
SQUARE = (7.0, 5.5)
_UNITS = {"mm": "mm", "cm": "cm", "km": "km", "kg": "kg", "g": "g", "lbs": "lbs", "lb": "lb", "usd": "USD",
          "eur": "EUR", "gbp": "GBP", "pct": "%", "percent": "%", "perc": "%", "ms": "ms", "sec": "s",
          "secs": "s", "seconds": "s", "minutes": "min", "mins": "min", "hours": "h", "hrs": "h", "days": "days",
          "ppm": "ppm", "ppmv": "ppmv", "mph": "mph", "kmh": "km/h", "kwh": "kWh", "mwh": "MWh", "gwh": "GWh"}
_CURRENCY = {"$": "$", "€": "€", "£": "£", "¥": "¥", "₹": "₹", "USD": "$", "EUR": "€", "GBP": "£"}


def apply() -> None:
    """Set matplotlib's defaults to the house style (idempotent)."""
    plt.rcParams.update({
        "figure.facecolor": "white", "axes.facecolor": "white", "savefig.facecolor": "white",
        "font.size": 10, "axes.titlesize": 13, "axes.titleweight": "bold", "axes.titlelocation": "left",
        "axes.titlepad": 12, "axes.labelsize": 10, "axes.labelcolor": INK, "text.color": INK,
        "xtick.color": MUTED, "ytick.color": MUTED, "xtick.labelsize": 9, "ytick.labelsize": 9,
        "axes.edgecolor": "#bdbdbd", "axes.spines.top": False, "axes.spines.right": False,
        "axes.grid": True, "axes.grid.axis": "y", "grid.color": GRID, "grid.linewidth": 0.8,
        "axes.axisbelow": True, "axes.prop_cycle": cycler(color=list(PALETTE)),
        "axes.formatter.useoffset": False, "axes.formatter.limits": (-7, 15),
        "legend.frameon": False, "legend.fontsize": 9, "lines.linewidth": 1.8,
        "figure.dpi": DPI, "savefig.dpi": DPI, "savefig.bbox": "tight",
    })


# ------------------------------------------------------------------------------------------------- words


def humanize(name: object) -> str:
    """A column name as a reader says it: ``total_revenue`` → ``Total revenue``, ``bill_length_mm`` →
    ``Bill length (mm)``, ``sepalLength`` → ``Sepal length``; names in capitals (``GNP``) stay as they are."""
    text = str(name).strip()
    if not text:
        return "Value"
    unit = unit_of(text)
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    parts = [p for p in re.split(r"[_\s]+", words.replace("-", " ")) if p]
    if unit and parts and parts[-1].lower() in _UNITS:
        parts = parts[:-1]
    if not parts:
        parts = [text]
    if all(p.isupper() or not p.isalpha() for p in parts) and len(parts) == 1:
        phrase = parts[0]
    else:
        phrase = " ".join(p if p.isupper() and len(p) > 1 else p.lower() for p in parts)
        phrase = phrase[:1].upper() + phrase[1:]
    return f"{phrase} ({unit})" if unit and unit != "%" else (f"{phrase} (%)" if unit == "%" else phrase)


def lower_first(phrase: str) -> str:
    """``Total revenue`` → ``total revenue`` (to go inside a sentence); ``GNP`` stays ``GNP``."""
    return phrase if phrase[:2].isupper() else phrase[:1].lower() + phrase[1:]


def unit_of(name: object) -> str | None:
    """The unit a column name states in its last word (``_mm``, ``_usd``, ``_pct``...), if any."""
    words = [w for w in re.split(r"[_\s\-()\[\]]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", str(name))) if w]
    if len(words) < 2:
        return None
    return _UNITS.get(words[-1].lower())


def format_number(value: float, unit: str | None = None, *, decimals: int | None = None) -> str:
    """``1234567`` → ``1.23M``, ``14127`` → ``14,127``, ``0.4567`` → ``0.457``; with ``unit`` ``%`` → ``12.5%``,
    ``$`` → ``$1,234``. ``decimals`` fixes the decimals (ticks of one axis, labels of one chart agree)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    size = abs(value)
    if size >= 1e9:
        text = _trim(f"{value / 1e9:,.2f}") + "B"
    elif size >= 1e6:
        text = _trim(f"{value / 1e6:,.2f}") + "M"
    else:
        if decimals is None:
            decimals = 0 if value == int(value) or size >= 1000 else 1 if size >= 100 else 2 if size >= 1 else 3
            text = _trim(f"{value:,.{decimals}f}")
        else:
            text = f"{value:,.{decimals}f}"
    if unit == "%":
        return text + "%"
    symbol = _CURRENCY.get(unit or "")
    if symbol:
        return ("-" + symbol + text[1:]) if text.startswith("-") else symbol + text
    return text


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def shared_decimals(values: Sequence[float]) -> int:
    """The decimals that show every value of ``values`` exactly (ticks), at most 6."""
    for decimals in range(7):
        if all(abs(round(v, decimals) - v) <= 1e-9 * max(1.0, abs(v)) for v in values):
            return decimals
    return 6


def label_decimals(values: Sequence[float]) -> int:
    """One number of decimals for the value labels of one chart: none for whole numbers or values in the
    thousands, one from 10, two from 1, three below."""
    largest = max((abs(v) for v in values), default=0.0)
    if all(float(v).is_integer() for v in values) or largest >= 1000:
        return 0
    return 1 if largest >= 10 else 2 if largest >= 1 else 3


# ------------------------------------------------------------------------------------------------- axes


def number_axis(ax: Any, axis: str = "y", unit: str | None = None, *, integer: bool = False) -> None:
    """Plain tick labels on ``axis`` (``x`` or ``y``): round steps, thousands separators, M/B, the unit's sign;
    ``integer`` for counts (no tick between two whole numbers)."""
    target = ax.yaxis if axis == "y" else ax.xaxis

    def label(value: float, _pos: object) -> str:
        ticks = [t for t in target.get_majorticklocs() if abs(t) < 1e6]
        return format_number(value, unit, decimals=shared_decimals(ticks) if abs(value) < 1e6 else None)

    target.set_major_formatter(FuncFormatter(label))
    target.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10], integer=integer))


def date_axis(ax: Any, axis: str = "x") -> None:
    """Concise automatic date ticks (``Jan``, ``Feb``... with the year once)."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    locator = mdates.AutoDateLocator(minticks=4, maxticks=9)  # type: ignore[no-untyped-call]
    target.set_major_locator(locator)
    target.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def titles(ax: Any, title: str, *, xlabel: str = "", ylabel: str = "", subtitle: str = "") -> None:
    """The title (left, bold), an optional grey subtitle under it, and the axis labels."""
    if subtitle:
        ax.set_title(title, loc="left", pad=24)
        ax.text(0, 1.02, subtitle, transform=ax.transAxes, color=MUTED, fontsize=10, va="bottom", ha="left")
    else:
        ax.set_title(title, loc="left")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)


def figure(size: tuple[float, float] = WIDE) -> tuple[Any, Any]:
    """A new figure and axes in the house style."""
    apply()
    return plt.subplots(figsize=size)


def save(fig: Any, path: str) -> None:
    """Write the PNG (120 dpi, tight box, white) and free the figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(fig)


# ------------------------------------------------------------------------------------------------- charts


def bar_chart(path: str, labels: Sequence[str], values: Sequence[float], *, title: str, value_label: str,
              category_label: str = "", unit: str | None = None, subtitle: str = "") -> None:
    """Horizontal bars, largest on top, from zero, each with its value written at its end."""
    pairs = list(zip([_short(str(label)) for label in labels], [float(v) for v in values], strict=False))
    fig, ax = figure((8.0, max(3.0, 0.42 * len(pairs) + 1.6)))
    names = [p[0] for p in pairs][::-1]
    numbers = [p[1] for p in pairs][::-1]
    bars = ax.barh(names, numbers, color=PALETTE[0], height=0.65)
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", visible=True)
    low, high = min([0.0, *numbers]), max([0.0, *numbers])
    ax.set_xlim(low * 1.15 if low < 0 else 0, high * 1.15 if high > 0 else 0.0 or 1.0)
    number_axis(ax, "x", unit)
    decimals = label_decimals(numbers)
    for bar, number in zip(bars, numbers, strict=False):
        inside = number < 0
        where = (bar.get_width(), bar.get_y() + bar.get_height() / 2)
        ax.annotate(format_number(number, unit, decimals=decimals), where, xytext=(-4 if inside else 4, 0),
                    textcoords="offset points", va="center",
                    ha="right" if inside else "left", fontsize=9, color=INK)
    titles(ax, title, xlabel=value_label, ylabel=category_label, subtitle=subtitle)
    save(fig, path)


def line_chart(path: str, x: Sequence[Any], series: dict[str, Sequence[float]], *, title: str, ylabel: str,
               xlabel: str = "", unit: str | None = None, dates: bool = True, subtitle: str = "",
               markers: bool = False, background: tuple[Sequence[Any], Sequence[float]] | None = None) -> None:
    """One line per series over ``x`` (dates by default), labelled in a legend when there are several (in the
    order of their last values, so the legend reads like the lines); ``background`` is drawn thin and light
    under them (the raw readings under their average)."""
    fig, ax = figure(WIDE)
    if background is not None:
        ax.plot(list(background[0]), list(background[1]), color=PALETTE[0], alpha=0.25, linewidth=0.8)
    def last(values: Sequence[float]) -> float:
        finite = [v for v in values if v is not None and math.isfinite(v)]
        return finite[-1] if finite else -math.inf

    ordered = sorted(series.items(), key=lambda kv: -last(kv[1])) if len(series) > 1 else list(series.items())
    for i, (name, values) in enumerate(ordered):
        ax.plot(list(x), list(values), label=_short(name), color=PALETTE[i % len(PALETTE)],
                marker="o" if markers else None, markersize=3.5)
    if dates:
        date_axis(ax)
    number_axis(ax, "y", unit)
    if len(series) > 1:
        ax.legend(loc="best")
    titles(ax, title, xlabel=xlabel, ylabel=ylabel, subtitle=subtitle)
    save(fig, path)


def histogram(path: str, values: Sequence[float], *, title: str, xlabel: str, unit: str | None = None,
              marker: float | None = None, marker_label: str = "median") -> None:
    """A histogram with a dashed line at ``marker`` (the median), labelled with its plain value."""
    fig, ax = figure((8.0, 4.5))
    distinct = sorted(set(values))
    whole = all(float(v).is_integer() for v in distinct)
    if whole and len(distinct) <= 40 and distinct[-1] - distinct[0] <= 60:
        bins: Any = [v - 0.5 for v in range(int(distinct[0]), int(distinct[-1]) + 2)]  # one bar per whole number
    else:
        bins = min(30, len(distinct), max(5, round(1.5 * math.sqrt(len(values)))))
    counts, _, _ = ax.hist(list(values), bins=bins, color=PALETTE[0], edgecolor="white", linewidth=0.6)
    if marker is not None:
        ax.axvline(marker, color=ACCENT, linestyle="--", linewidth=1.4,
                   label=f"{marker_label} {format_number(marker, unit)}")
        ax.set_ylim(0, max(counts) * 1.22)  # headroom: the legend never sits on a bar
        ax.legend(loc="upper right")
    number_axis(ax, "x", unit, integer=whole)
    number_axis(ax, "y", integer=True)
    titles(ax, title, xlabel=xlabel, ylabel="Rows")
    save(fig, path)


def scatter(path: str, x: Sequence[float], y: Sequence[float], *, title: str, xlabel: str, ylabel: str,
            subtitle: str = "") -> None:
    """Points (transparent when many) with a least-squares line."""
    fig, ax = figure((7.5, 5.0))
    xs, ys = [float(v) for v in x], [float(v) for v in y]
    ax.scatter(xs, ys, s=14 if len(xs) > 500 else 22, alpha=0.35 if len(xs) > 500 else 0.7, color=PALETTE[0],
               edgecolors="none")
    if len(xs) >= 3 and len(set(xs)) > 1:
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((a - mean_x) * (b - mean_y) for a, b in zip(xs, ys, strict=False)) / \
            sum((a - mean_x) ** 2 for a in xs)
        ends = [min(xs), max(xs)]
        ax.plot(ends, [mean_y + slope * (e - mean_x) for e in ends], color=ACCENT, linewidth=1.4)
    ax.grid(axis="x", visible=True)
    number_axis(ax, "x")
    number_axis(ax, "y")
    titles(ax, title, xlabel=xlabel, ylabel=ylabel, subtitle=subtitle)
    save(fig, path)


def _short(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
