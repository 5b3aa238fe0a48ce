"""Which charts a first look draws, best first, and how: every chart goes through :mod:`.style` (the house style).

In order of interest: the main measure over time (at the data's own resolution when it is a regular series of a
readable length, per period otherwise; one line per group when a small category splits it), the main measure by
the first category, the strongest relationship between two measures, durations between two timestamps, the
distribution of the main measure, a correlation matrix, missing values.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable
from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from . import chartkit, style
from .trend import period_label

MAX_CHARTS = 4
RAW_POINTS = 3000
"""A regular series up to this many points is drawn as it is, at its own resolution."""
SMOOTH_POINTS = 240
"""Beyond this many points a raw series is drawn light, under its average (or total) per period."""
MAX_GROUP_LINES = 6
MAX_MATRIX = 12

ChartPlan = tuple[str, str, Callable[[str], None]]
"""``(kind, name stem, draw(file name))``."""


def _safe(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]+", "_", ascii_text).strip("_").lower()[:40] or "data"


def free_name(stem: str, what: str) -> str:
    """``sales_revenue_by_month.png`` in the current directory, never overwriting a file."""
    base = f"{_safe(stem)}_{_safe(what)}"
    name, n = f"{base}.png", 2
    while os.path.exists(name):
        name, n = f"{base}_{n}.png", n + 1
    return name


def _measure(agg: str, column: str | None, units: dict[str, str]) -> tuple[str, str | None]:
    """``("Total revenue", "$")``, ``("Average temp", None)``, ``("Rows", None)``."""
    if column is None or agg == "count":
        return "Rows", None
    name = style.lower_first(style.humanize(column))
    lead = {"sum": "Total", "mean": "Average"}.get(agg, "")
    if lead and name.lower().startswith(("total", "average", "avg", "mean", "sum")):
        lead = ""  # "Total bill", not "Total total bill"
    return (f"{lead} {name}" if lead else style.humanize(column)), units.get(column) or style.unit_of(column)


def _trend(df: Any, facts: dict[str, Any], path: str) -> None:
    trend = facts["trend"]
    date, value, agg, period = trend["date"], trend["value"], trend["agg"], trend["period"]
    units = facts.get("units", {})
    measure, unit = _measure(agg, value, units)
    frame = df[[date] + ([value] if value else [])].dropna(subset=[date]).sort_values(date)
    group = facts.get("trend_group")
    step = trend.get("step")
    if group and value:
        keep = df[group].astype(str).value_counts().head(MAX_GROUP_LINES).index
        every = step if step in _ALIASES and len(frame) / len(keep) <= SMOOTH_POINTS else period
        series: dict[str, Any] = {}
        for key in keep:
            part = df[df[group].astype(str) == key].set_index(date)[value].sort_index()
            series[str(key)] = getattr(part.resample(_ALIASES[every]), agg)()
        index = sorted(set().union(*[s.index for s in series.values()]))
        lead = measure if every == period or agg != "mean" else style.humanize(value)
        chartkit.line(index, {k: s.reindex(index).to_numpy(dtype=float) for k, s in series.items()},
                         title=f"{lead} per {every} by {style.lower_first(style.humanize(group))}",
                         ylabel=lead, unit=unit, path=path)
        return
    regular = value and frame[date].is_unique and len(frame) <= RAW_POINTS and step
    if regular:
        label = style.humanize(value)
        raw = (frame[date].tolist(), frame[value].to_numpy(dtype=float))
        title = f"{label} by {step}" if step != "moment" else label
        if len(frame) <= SMOOTH_POINTS or period == step:
            chartkit.line(raw[0], {label: raw[1]}, title=title, ylabel=label, unit=unit,
                             markers=len(frame) <= 40, path=path)
            return
        points = getattr(frame.set_index(date)[value].resample(_ALIASES[period]), agg)()
        partial = set(trend.get("partial") or ())
        points = points[[period_label(k, period) not in partial for k in points.index]]  # incomplete periods
        chartkit.line(points.index.tolist(), {measure: points.to_numpy(dtype=float)}, ylabel=label,
                         title=f"{title}, with the {agg_word(agg)} per {period}", unit=unit, background=raw, path=path)
        return
    indexed = frame.set_index(date)
    how = {"closed": "left", "label": "left"} if period == "week" else {}
    resampled = indexed.resample(_alias(period), **how)
    points = resampled.size() if not value else getattr(resampled[value], agg)()
    chartkit.line(points.index.tolist(), {measure: points.to_numpy(dtype=float)},
                     title=f"{measure} per {period}", ylabel=measure, unit=unit, markers=len(points) <= 40, path=path)


_ALIASES = {"hour": "h", "day": "D", "week": "W-MON", "month": "MS", "quarter": "QS", "year": "YS"}


def _trend_word(df: Any, facts: dict[str, Any]) -> str:
    """The period the trend chart is drawn at: the data's own step for a short regular series, else the trend's."""
    trend = facts["trend"]
    step, value, date = trend.get("step"), trend["value"], trend["date"]
    if facts.get("trend_group") or not value or step not in _ALIASES:
        return str(trend["period"])
    dates = df[date].dropna()
    if dates.is_unique and len(dates) <= SMOOTH_POINTS:
        return str(step)
    return str(trend["period"])


def _alias(period: str) -> str:
    return _ALIASES[period]


def agg_word(agg: str) -> str:
    """``sum`` → ``total``, ``mean`` → ``average``."""
    return {"sum": "total", "mean": "average"}.get(agg, "count")


def _categories(entry: dict[str, Any], facts: dict[str, Any], path: str, *, by_value: bool) -> None:
    values = entry.get("by_value") if by_value else None
    top = values["top"] if values else entry["top"]
    units = facts.get("units", {})
    measure, unit = _measure(values["agg"], values["column"], units) if values else ("Rows", None)
    shown = "Top " if entry["unique"] > len(top) else ""
    category = style.humanize(entry["name"])
    title = f"{measure} by {style.lower_first(category)}" if not shown else \
        f"{shown}{len(top)} {style.lower_first(category)} values by {style.lower_first(measure)}"
    chartkit.bar([t[0] for t in top], [t[1] for t in top], title=title, value_label=measure,
                    category_label=category, unit=unit, path=path)


def _histogram(df: Any, column: str, facts: dict[str, Any], path: str) -> None:
    values = df[column].dropna().astype(float)
    unit = facts.get("units", {}).get(column) or style.unit_of(column)
    label = style.humanize(column)
    style.histogram(path, values.tolist(), title=f"Distribution of {style.lower_first(label)}", xlabel=label,
                    unit=unit, marker=float(values.median()))


def _scatter(df: Any, pair: dict[str, Any], path: str) -> None:
    both = df[[pair["a"], pair["b"]]].dropna().astype(float)
    if len(both) > 5000:
        both = both.sample(5000, random_state=0)
    a, b = style.humanize(pair["a"]), style.humanize(pair["b"])
    style.scatter(path, both[pair["a"]].tolist(), both[pair["b"]].tolist(),
                  title=f"{b} against {style.lower_first(a)}", xlabel=a, ylabel=b,
                  subtitle=f"Pearson r = {pair['r']:.2f}, {len(both):,} rows")


def _correlations(df: Any, numeric: list[str], path: str) -> None:
    chosen = numeric[:MAX_MATRIX]
    matrix = df[chosen].astype(float).corr(min_periods=3).to_numpy(dtype=float)
    size = len(chosen)
    shown = np.where(np.tril(np.ones((size, size), dtype=bool), k=-1), matrix, np.nan)[1:, :-1]  # each pair once
    fig, ax = style.figure((0.75 * size + 3.0, 0.6 * size + 2.4))
    ax.grid(False)
    ax.spines[["left", "bottom"]].set_visible(False)
    image = ax.imshow(shown, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(size - 1), [style.humanize(n) for n in chosen[:-1]], rotation=40, ha="right")
    ax.set_yticks(range(size - 1), [style.humanize(n) for n in chosen[1:]])
    for i in range(size - 1):
        for j in range(size - 1):
            r = shown[i, j]
            if not np.isnan(r):
                ax.text(j, i, f"{r:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if abs(r) > 0.6 else style.INK)
    fig.colorbar(image, ax=ax, label="Pearson r", shrink=0.8)
    style.titles(ax, "How the measures move together")
    style.save(fig, path)


def _missing(df: Any, path: str) -> None:
    share = (df.isna().mean() * 100).sort_values(ascending=False)
    share = share[share > 0].head(15)
    chartkit.bar([style.humanize(c) for c in share.index], share.to_numpy(dtype=float).tolist(),
                    title="Missing values by column", value_label="Rows missing (%)", unit="%", path=path)


def _durations(df: Any, entry: dict[str, Any], path: str) -> None:
    hours = (df[entry["end"]] - df[entry["start"]]).dropna().dt.total_seconds() / 3600
    start, end = style.humanize(entry["start"]), style.lower_first(style.humanize(entry["end"]))
    style.histogram(path, hours.tolist(), title=f"Hours from {style.lower_first(start)} to {end}", xlabel="Hours",
                    marker=float(hours.median()))


def _sequence(df: Any, column: str, facts: dict[str, Any], path: str) -> None:
    values = df[column].astype(float).reset_index(drop=True)
    unit = facts.get("units", {}).get(column) or style.unit_of(column)
    chartkit.line(values.index.tolist(), {style.humanize(column): values.to_numpy(dtype=float)},
                     title=f"{style.humanize(column)} in file order", ylabel=style.humanize(column),
                     xlabel="Row", unit=unit, dates=False, path=path)


def _single_row(df: Any, numeric: list[str], path: str) -> None:
    values = df[numeric].iloc[0].astype(float)
    if len(values) > 12:
        style.histogram(path, values.dropna().tolist(), title=f"The {len(values):,} values of the only row",
                        xlabel="Value", marker=float(values.median()))
        return
    ordered = values.sort_values(ascending=False)
    chartkit.bar([style.humanize(n) for n in ordered.index], ordered.tolist(),
                    title="Values of the only row", value_label="Value", path=path)


def chart_candidates(df: Any, facts: dict[str, Any]) -> list[ChartPlan]:
    """The charts worth drawing for one file, best first."""
    plans: list[ChartPlan] = []
    numeric = [n["name"] for n in facts["numeric"]]
    if facts["rows"] == 1 and numeric:
        return [("row", "only_row", lambda path: _single_row(df, numeric, path))]
    main = str(facts.get("main_numeric"))
    trend = facts.get("trend")
    cats = facts["categories"]
    distributable = [str(n["name"]) for n in facts["numeric"] if n["count"] >= 5 and df[n["name"]].nunique() >= 3]
    if trend is not None:
        what = f"{trend['value'] or 'rows'}_by_{_trend_word(df, facts)}"
        plans.append(("trend", what, lambda path: _trend(df, facts, path)))
    if cats:
        first = cats[0]
        measure = first["by_value"]["column"] if first.get("by_value") else "rows"
        plans.append(("categories", f"{measure}_by_{first['name']}",
                      lambda path: _categories(first, facts, path, by_value=True)))
    strong = [p for p in facts["correlations"] if abs(p["r"]) >= 0.5]
    if strong:
        plans.append(("relationship", f"{strong[0]['b']}_vs_{strong[0]['a']}",
                      lambda path: _scatter(df, strong[0], path)))
    if facts["durations"]:
        d = facts["durations"][0]
        plans.append(("durations", f"hours_{d['start']}_to_{d['end']}", lambda path: _durations(df, d, path)))
    ordered = ([main] if main in distributable else []) + [n for n in distributable if n != main]
    if ordered:
        plans.append(("distribution", f"{ordered[0]}_distribution",
                      lambda path: _histogram(df, ordered[0], facts, path)))
    if len(numeric) >= 3:
        plans.append(("correlations", "correlations", lambda path: _correlations(df, numeric, path)))
    if any(c["missing_pct"] >= 5 for c in facts["columns"]):
        plans.append(("missing", "missing_values", lambda path: _missing(df, path)))
    if trend is None and len(ordered) == 1 and facts["rows"] >= 5:
        plans.append(("sequence", f"{ordered[0]}_in_order", lambda path: _sequence(df, ordered[0], facts, path)))
    if len(cats) > 1:
        plans.append(("categories", f"rows_by_{cats[1]['name']}",
                      lambda path: _categories(cats[1], facts, path, by_value=False)))
    if len(ordered) > 1:
        plans.append(("distribution", f"{ordered[1]}_distribution",
                      lambda path: _histogram(df, ordered[1], facts, path)))
    return plans


def draw_charts(profiles: list[tuple[Any, dict[str, Any], str]]) -> None:
    """Draw up to :data:`MAX_CHARTS` charts, taking the files' best candidates in turn; records them in the facts."""
    queues = [(facts, chart_candidates(df, facts), stem) for df, facts, stem in profiles]
    drawn = 0
    while drawn < MAX_CHARTS and any(plans for _, plans, _ in queues):
        for facts, plans, stem in queues:
            if not plans or drawn >= MAX_CHARTS:
                continue
            kind, what, draw = plans.pop(0)
            name = free_name(stem, what)
            try:
                draw(name)
            except Exception as exc:  # one failed chart must not lose the profile
                plt.close("all")
                facts["warnings"].append(f"the {kind} chart could not be drawn ({type(exc).__name__}: {exc})"[:300])
                continue
            facts["charts"].append({"file": name, "kind": kind})
            drawn += 1
