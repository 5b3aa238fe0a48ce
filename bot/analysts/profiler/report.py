"""The entry point the kernel calls: read every file as the bot decided, profile it, draw the charts, print one
JSON report after :data:`SENTINEL`.

Whatever the file, the report stays within :data:`REPORT_BUDGET` characters (a file of 20,190 columns is
profiled on its first :data:`MAX_PROFILED_COLUMNS` and said so), and a file that cannot be read or profiled gets
an ``error`` entry instead of failing the others.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import numpy as np

from .charts import draw_charts
from .kinds import classify, is_additive, pick_main_numeric
from .reading import read_frame
from .stats import anomalies, category_stats, correlations, durations, num, numeric_stats
from .trend import time_trend

SENTINEL = "@@DATASTORY-PROFILE-JSON@@"
"""The line printed just before the JSON document."""
MAX_PROFILED_COLUMNS = 300
MAX_CORRELATED = 30
MAX_GROUPS = 6
REPORT_BUDGET = 300_000
"""Characters of JSON at most (the kernel's output is read back whole)."""


def profile_frame(df: Any, name: str) -> dict[str, Any]:
    """The facts of one DataFrame: shape, column kinds, missing values, measures, categories, dates, the trend,
    relationships, durations, anomalies."""
    total_columns = int(df.attrs.get("columns_total", len(df.columns)))
    warnings: list[str] = []
    units: dict[str, str] = dict(df.attrs.get("units", {}))
    if len(df.columns) > MAX_PROFILED_COLUMNS:
        df = df.iloc[:, :MAX_PROFILED_COLUMNS].copy()
        warnings.append(f"only the first {MAX_PROFILED_COLUMNS:,} of {total_columns:,} columns were profiled")
    df, kinds = classify(df)
    rows = len(df)
    columns = [{"name": c, "kind": kinds[c], "dtype": str(df[c].dtype), "missing": int(df[c].isna().sum()),
                "missing_pct": float(df[c].isna().mean() * 100) if rows else 0.0,
                "unique": int(df[c].nunique(dropna=True))} for c in df.columns]
    numeric = [c for c in df.columns if kinds[c] == "numeric"]
    dates = [c for c in df.columns if kinds[c] == "datetime"]
    cats = [c for c in df.columns if kinds[c] in ("category", "boolean")]
    main = pick_main_numeric(df, numeric)
    additive = main is not None and is_additive(main, df[main])
    facts: dict[str, Any] = {
        "name": name, "rows": rows, "columns_total": total_columns, "columns": columns, "main_numeric": main,
        "main_additive": additive, "units": units,
        "numeric": numeric_stats(df, numeric), "categories": category_stats(df, cats, main, additive),
        "dates": [{"name": c, "min": str(df[c].min()), "max": str(df[c].max()),
                   "span_days": num((df[c].max() - df[c].min()).total_seconds() / 86400)} for c in dates],
        "correlations": correlations(df, numeric[:MAX_CORRELATED]), "durations": durations(df, dates[:5]),
        "anomalies": anomalies(df, numeric[:MAX_CORRELATED]), "trend": None, "trend_group": None,
        "duplicates": int(df.duplicated().sum()) if rows else 0, "charts": [], "warnings": warnings,
    }
    if dates and rows >= 3:
        agg = "count" if main is None else "sum" if additive else "mean"
        facts["trend"] = time_trend(df, dates[0], main, agg)
        facts["trend_group"] = _trend_group(df, dates[0], cats, main)
    return facts


def _trend_group(df: Any, date: str, cats: list[str], main: str | None) -> str | None:
    """A small category that splits the series (``symbol`` in a table of prices of a few stocks over time)."""
    if main is None or df[date].nunique() >= 0.8 * len(df):
        return None
    for name in cats:
        groups = int(df[name].nunique())
        if 2 <= groups <= MAX_GROUPS and df.groupby(name)[date].nunique().min() >= 3:
            return str(name)
    return None


def profile_file(spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Read and profile one file ``{"name", "path", "reader", "kwargs"}``; a file that cannot be read or profiled
    gets an ``error`` (the others go on)."""
    name, path = str(spec["name"]), str(spec["path"])
    reader, kwargs = str(spec.get("reader") or "read_csv"), dict(spec.get("kwargs") or {})
    try:
        df, read_warnings = read_frame(path, reader, kwargs)
    except Exception as exc:
        return None, {"name": name, "error": f"{type(exc).__name__}: {exc}"[:300]}
    if df.empty:
        return None, {"name": name, "error": "the file has no data rows"}
    try:
        facts = profile_frame(df, name)
    except Exception as exc:  # a profile that fails on odd data says so instead of losing the other files
        return None, {"name": name, "error": f"profiling failed ({type(exc).__name__}: {exc})"[:300]}
    facts["warnings"] = read_warnings + facts["warnings"]
    facts["read"] = {"reader": reader, **kwargs}
    return df, facts


def jsonable(value: Any) -> Any:
    """``value`` with NaN/inf floats as ``None`` and numpy scalars as Python ones."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return num(value)
    if value is None or isinstance(value, str):
        return value
    return str(value)


def within_budget(report: dict[str, Any], budget: int = REPORT_BUDGET) -> dict[str, Any]:
    """The report cut to ``budget`` characters of JSON: long lists shortened first, then trend points dropped."""
    if len(json.dumps(report)) <= budget:
        return report
    for limit in (100, 40, 10):
        for f in report["files"]:
            for key in ("columns", "numeric", "categories"):
                if isinstance(f.get(key), list) and len(f[key]) > limit:
                    f[key] = f[key][:limit]
                    f["truncated"] = True
            if f.get("trend"):
                f["trend"]["points"] = f["trend"]["points"][-limit:]
        if len(json.dumps(report)) <= budget:
            return report
    return {"files": [{"name": f.get("name"), "error": "the profile was too large to report"} for f in report["files"]]}


def build_report(files: list[dict[str, Any]], charts: bool = True) -> dict[str, Any]:
    """Profile every file and (unless ``charts`` is False) draw the charts in the current directory; the JSON-ready
    report."""
    results: list[dict[str, Any]] = []
    profiles: list[tuple[Any, dict[str, Any], str]] = []
    for spec in files:
        df, facts = profile_file(spec)
        results.append(facts)
        if df is not None:
            stem = re.sub(r"\.(csv|tsv|txt|tab|psv|dat|json|jsonl|ndjson|xlsx|xlsm)(\.gz)?$", "", facts["name"],
                          flags=re.IGNORECASE)
            profiles.append((df, facts, stem))
    if charts:
        draw_charts(profiles)
    return within_budget({"files": jsonable(results)})


def run_profile(files: list[dict[str, Any]], charts: bool = True) -> None:
    """:func:`build_report`, then print :data:`SENTINEL` and the report as one line of JSON (returns nothing, so
    a notebook kernel shows no extra result)."""
    report = build_report(files, charts)
    out = io.StringIO()
    out.write("\n" + SENTINEL + "\n")
    out.write(json.dumps(report, allow_nan=False) + "\n")
    print(out.getvalue(), end="")

