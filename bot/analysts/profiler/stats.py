"""The numbers of a profile: distributions of the measures, top categories (by rows and by the main measure),
relationships between measures, durations between two timestamps, and anomalies (extreme values).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .kinds import is_additive

TOP_CATEGORIES = 8


def num(value: Any) -> float | None:
    """A JSON-safe float (``None`` for NaN/inf/missing)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def numeric_stats(df: Any, numeric: list[str]) -> list[dict[str, Any]]:
    """min/median/max/mean/std/sum, skew and outliers (beyond 3 IQR) of every numeric column."""
    out: list[dict[str, Any]] = []
    for name in numeric:
        values = df[name].dropna().astype(float)
        q1, q3 = values.quantile(0.25), values.quantile(0.75)
        iqr = q3 - q1
        outliers = int(((values < q1 - 3 * iqr) | (values > q3 + 3 * iqr)).sum()) if iqr > 0 else 0
        out.append({"name": str(name), "count": len(values), "min": num(values.min()),
                    "median": num(values.median()), "max": num(values.max()), "mean": num(values.mean()),
                    "std": num(values.std()), "sum": num(values.sum()),
                    "skew": num(values.skew()) if len(values) >= 3 else None, "outliers": outliers,
                    "additive": is_additive(name, df[name]),
                    "integer": bool(pd.api.types.is_integer_dtype(df[name]) or (values % 1 == 0).all())})
    return out


def category_stats(df: Any, categories: list[str], main: str | None, additive: bool) -> list[dict[str, Any]]:
    """The top values of each categorical column by rows, and by the main measure: its total when it adds up, its
    average otherwise (``agg``)."""
    out: list[dict[str, Any]] = []
    rows = max(1, len(df))
    for name in categories:
        counts = df[name].astype(str).where(df[name].notna()).value_counts()
        entry: dict[str, Any] = {
            "name": str(name), "unique": int(df[name].nunique(dropna=True)),
            "top": [[str(k), int(v), float(v) / rows] for k, v in counts.head(TOP_CATEGORIES).items()],
        }
        if main is not None and main != name:
            groups = df.groupby(df[name].astype(str).where(df[name].notna()))[main]
            sums = (groups.sum() if additive else groups.mean()).dropna().sort_values(ascending=False)
            total = float(sums.sum()) if additive else 0.0
            total = total or 1.0
            entry["by_value"] = {"column": str(main), "agg": "sum" if additive else "mean",
                                 "top": [[str(k), float(v), float(v) / total]
                                         for k, v in sums.head(TOP_CATEGORIES).items()],
                                 "bottom": [[str(k), float(v), float(v) / total] for k, v in sums.tail(1).items()]}
        out.append(entry)
    return out


def correlations(df: Any, numeric: list[str]) -> list[dict[str, Any]]:
    """The strongest pairwise Pearson correlations (up to 3), strongest first."""
    if len(numeric) < 2:
        return []
    matrix = df[numeric].astype(float).corr(min_periods=3)
    pairs: list[dict[str, Any]] = []
    for i, a in enumerate(numeric):
        for b in numeric[i + 1:]:
            r = num(matrix.loc[a, b])
            if r is not None:
                pairs.append({"a": str(a), "b": str(b), "r": r})
    pairs.sort(key=lambda p: -abs(p["r"]))
    return pairs[:3]


def durations(df: Any, dates: list[str]) -> list[dict[str, Any]]:
    """Time between two timestamp columns where one always follows the other (e.g. opened → resolved)."""
    out: list[dict[str, Any]] = []
    for i, start in enumerate(dates):
        for end in dates[i + 1:]:
            delta = (df[end] - df[start]).dropna()
            if len(delta) < 3 or not (delta >= pd.Timedelta(0)).all() or float(delta.max().total_seconds()) <= 0:
                continue
            hours = delta.dt.total_seconds() / 3600
            out.append({"start": str(start), "end": str(end), "count": len(hours),
                        "missing_end": int((df[start].notna() & df[end].isna()).sum()),
                        "median_hours": num(hours.median()), "mean_hours": num(hours.mean()),
                        "p90_hours": num(hours.quantile(0.9)), "max_hours": num(hours.max())})
    return out[:1]




def anomalies(df: Any, numeric: list[str], limit: int = 3) -> list[dict[str, Any]]:
    """The most extreme values (beyond 3 interquartile ranges of their column), with the row they are on."""
    found: list[dict[str, Any]] = []
    for name in numeric:
        values = df[name].dropna().astype(float)
        if len(values) < 10:
            continue
        q1, q3 = values.quantile(0.25), values.quantile(0.75)
        iqr = q3 - q1
        if iqr <= 0:
            continue
        distance = ((values - values.median()).abs() / iqr)
        extreme = distance[(values < q1 - 3 * iqr) | (values > q3 + 3 * iqr)]
        for row, score in extreme.sort_values(ascending=False).head(2).items():
            found.append({"column": str(name), "row": int(row) + 1 if isinstance(row, int) else str(row),
                          "value": num(values[row]), "median": num(values.median()), "iqrs": num(score)})
    found.sort(key=lambda a: -(a["iqrs"] or 0))
    return found[:limit]
