"""The data profile the ``offline`` analyst runs *inside* the sandbox (its source is sent to the kernel as is).

This module is self-contained on purpose: it imports only the standard library, pandas, numpy and matplotlib, so
:mod:`bot.analysts.offline` can read its source with :func:`inspect.getsource` and execute it in the thread's
container, followed by one call of :func:`run_profile`. It is also an ordinary module, so it is type-checked and
unit-tested like the rest of ``bot``.

:func:`run_profile` reads every data file (read options from the bot's facts when given, else sniffed: encoding,
delimiter, decimal comma, gzip, ``.tsv``, ``.xlsx``, ``.json``), profiles it (shape, column kinds with parsed
dates, missing values, numeric distributions, top categories, correlations, durations between two timestamp
columns, a time trend resampled by a sensible period), writes 2–4 charts chosen from the data as PNG files in the
current directory, and prints :data:`SENTINEL` on a line of its own followed by one line of JSON: the facts the
narrative is written from. Nothing else is printed.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import os
import re
import unicodedata
import warnings
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import StrMethodFormatter

SENTINEL = "@@DATASTORY-PROFILE-JSON@@"
"""The line printed just before the JSON document."""

SAMPLE_BYTES = 64 * 1024
MAX_CHARTS = 4
MAX_CATEGORY_UNIQUE = 50
TOP_CATEGORIES = 5
MAX_PERIODS = 60
DELIMITERS = (",", ";", "\t", "|")
AMOUNT_HINTS = ("revenue", "sales", "amount", "profit", "income", "spend", "cost", "total", "value", "sessions",
                "visits", "views", "orders", "quantity", "qty", "units", "volume", "count", "signups")
MEAN_HINTS = ("rate", "ratio", "pct", "percent", "share", "score", "rating", "satisfaction", "avg", "mean",
              "median", "temperature", "temp", "price", "prix", "preis", "precio", "age", "latitude", "longitude",
              "lat", "lon", "year")
DATE_HINTS = ("date", "time", "month", "day", "week", "year", "_at", "period", "timestamp", "created", "updated")
_DATE_LIKE = re.compile(r"^\s*(\d{4}[-/.]\d{1,2}([-/.]\d{1,2})?|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|"
                        r"\d{1,2}\s+[A-Za-z]{3,9}\s+\d{2,4}|[A-Za-z]{3,9}\.?\s+\d{1,2},?\s+\d{2,4}|"
                        r"[A-Za-z]{3,9}[-\s]\d{4})([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?)?\s*$")
_PERIODS = (  # (pandas alias, word, approximate days)
    ("h", "hour", 1 / 24), ("D", "day", 1.0), ("W-MON", "week", 7.0), ("MS", "month", 30.44),
    ("QS", "quarter", 91.3), ("YS", "year", 365.25),
)


# ------------------------------------------------------------------------------------------------- reading


def detect_encoding(raw: bytes, *, truncated: bool) -> str:
    """``utf-8-sig``/``utf-8`` when the bytes decode as UTF-8, else ``latin-1`` or ``cp1252``."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    try:
        raw.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if truncated and exc.start >= len(raw) - 3:
            return "utf-8"  # a character cut by the end of the sample
    return "cp1252" if any(0x80 <= b <= 0x9F for b in raw) else "latin-1"


def _field_counts(lines: list[str], delimiter: str) -> list[int]:
    return [len(row) for row in csv.reader(lines, delimiter=delimiter)]


def _consistent(counts: list[int]) -> bool:
    if not counts or counts[0] < 2:
        return False
    same = sum(1 for c in counts if c == counts[0])
    return same >= 0.9 * len(counts)


def sniff_delimiter(text: str) -> str:
    """The delimiter of a CSV sample: :class:`csv.Sniffer` checked for a consistent column count, else the
    candidate giving the most columns consistently; ``,`` for a single column."""
    lines = [ln for ln in text.splitlines() if ln.strip()][:50]
    if len(lines) > 1 and not text.endswith("\n"):
        lines = lines[:-1]  # the last line of a sample may be cut
    if not lines:
        return ","
    try:
        sniffed = csv.Sniffer().sniff("\n".join(lines), delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        sniffed = ""
    if sniffed and _consistent(_field_counts(lines, sniffed)):
        return sniffed
    best, best_columns = ",", 1
    for delimiter in DELIMITERS:
        counts = _field_counts(lines, delimiter)
        if _consistent(counts) and counts[0] > best_columns:
            best, best_columns = delimiter, counts[0]
    return best


def detect_number_format(text: str, delimiter: str) -> tuple[str, str | None]:
    """``(decimal, thousands)`` of a sample: ``(",", ".")`` for ``1.234,5``-style numbers, else ``(".", None)``."""
    if delimiter == ",":
        return ".", None
    cells = [c.strip().strip('"') for row in csv.reader(text.splitlines()[1:200], delimiter=delimiter) for c in row]
    comma = sum(1 for c in cells if re.fullmatch(r"-?(\d{1,3}(\.\d{3})+|\d+),\d+", c))
    dot = sum(1 for c in cells if re.fullmatch(r"-?(\d{1,3}(,\d{3})+|\d+)\.\d+", c))
    if comma > dot:
        grouped = any(re.fullmatch(r"-?\d{1,3}(\.\d{3})+,\d+", c) for c in cells)
        return ",", "." if grouped else None
    return ".", None


def _read_sample(path: str, compressed: bool) -> tuple[bytes, bool]:
    opener: Callable[[], Any] = (lambda: gzip.open(path, "rb")) if compressed else (lambda: open(path, "rb"))
    with opener() as fh:
        raw: bytes = fh.read(SAMPLE_BYTES + 1)
    return raw[:SAMPLE_BYTES], len(raw) > SAMPLE_BYTES


def read_options(path: str, given: dict[str, str]) -> dict[str, Any]:
    """How to read ``path``: the ``given`` options (from the bot's facts) completed by sniffing the first bytes."""
    lower = path.lower()
    compressed = lower.endswith(".gz")
    base = lower[:-3] if compressed else lower
    if base.endswith((".xlsx", ".xlsm", ".xls")):
        return {"format": "excel"}
    if base.endswith((".json", ".jsonl", ".ndjson")):
        lines = given["lines"] == "true" if "lines" in given else not base.endswith(".json")
        return {"format": "json", "compression": "gzip" if compressed else None, "lines": lines}
    raw, truncated = _read_sample(path, compressed)
    encoding = given.get("encoding") or detect_encoding(raw, truncated=truncated)
    text = raw.decode(encoding, errors="replace")
    if given.get("sep"):
        sep = given["sep"]
    elif base.endswith((".tsv", ".tab")):
        sep = "\t"
    else:
        sep = sniff_delimiter(text)
    decimal, thousands = detect_number_format(text, sep)
    if given.get("decimal"):
        decimal = given["decimal"]
        thousands = given.get("thousands") or ("." if decimal == "," and thousands else None)
    elif given.get("thousands"):
        thousands = given["thousands"]
    return {"format": "csv", "sep": sep, "encoding": encoding, "decimal": decimal, "thousands": thousands,
            "quotechar": given.get("quotechar"), "no_header": given.get("header") == "none" or None,
            "compression": "gzip" if compressed else None}


def read_table(path: str, options: dict[str, Any]) -> Any:
    """The file as a DataFrame, read with ``options`` (a failed decode falls back to cp1252, then latin-1)."""
    if options["format"] == "excel":
        return pd.read_excel(path)
    if options["format"] == "json":
        try:
            return pd.read_json(path, lines=bool(options.get("lines")), compression=options.get("compression"))
        except ValueError:
            return pd.read_json(path, lines=not options.get("lines"), compression=options.get("compression"))
    encodings = [options["encoding"]] + [e for e in ("cp1252", "latin-1") if e != options["encoding"]]
    for encoding in encodings:
        try:
            frame = pd.read_csv(path, sep=options["sep"], encoding=encoding, decimal=options["decimal"],
                                thousands=options.get("thousands"), compression=options.get("compression"),
                                quotechar=options.get("quotechar") or '"',
                                header=None if options.get("no_header") else "infer", skipinitialspace=True)
        except UnicodeDecodeError:
            continue
        options["encoding"] = encoding
        return frame
    raise ValueError("the file could not be decoded as text")  # pragma: no cover - latin-1 decodes any byte


# ------------------------------------------------------------------------------------------------- helpers


def _num(value: Any) -> float | None:
    """A JSON-safe float (``None`` for NaN/inf/missing)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _hint(name: str, hints: tuple[str, ...]) -> bool:
    lowered = str(name).lower()
    return any(h in lowered for h in hints)


def _is_textual(series: Any) -> bool:
    return bool(pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series))


def parse_dates(series: Any) -> Any | None:
    """``series`` parsed as datetimes when at least 90% of its non-missing values look like and parse as dates."""
    values = series.dropna().astype(str)
    if values.empty:
        return None
    sample = values.head(500)
    if sample.map(lambda v: bool(_DATE_LIKE.match(v))).mean() < 0.9:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kwargs in ({"format": "ISO8601"}, {}, {"dayfirst": True}):
            try:
                parsed = pd.to_datetime(series, errors="coerce", **kwargs)
            except (ValueError, TypeError):
                continue
            if parsed.notna().sum() >= 0.9 * series.notna().sum():
                if getattr(parsed.dt, "tz", None) is not None:
                    parsed = parsed.dt.tz_localize(None)
                return parsed
    return None


def _looks_like_id(name: str, series: Any, rows: int) -> bool:
    lowered = str(name).lower()
    named = lowered == "id" or lowered.endswith(("_id", " id", "-id", "uuid", "guid")) or lowered.startswith("id_")
    unique = int(series.nunique(dropna=True))
    if named and unique >= 0.9 * max(1, int(series.notna().sum())):
        return True
    if rows >= 20 and unique == rows and pd.api.types.is_integer_dtype(series):
        return bool(series.is_monotonic_increasing and int(series.iloc[-1]) - int(series.iloc[0]) == rows - 1)
    return False


def classify(df: Any) -> tuple[Any, dict[str, str]]:
    """``(frame with date columns parsed, {column: kind})``; kinds: numeric, datetime, boolean, category, text,
    id, constant, empty."""
    kinds: dict[str, str] = {}
    rows = len(df)
    for name in df.columns:
        series = df[name]
        non_null = int(series.notna().sum())
        if non_null == 0:
            kinds[name] = "empty"
            continue
        if _is_textual(series) and (parsed := parse_dates(series)) is not None:
            df[name] = series = parsed
        unique = int(series.nunique(dropna=True))
        if pd.api.types.is_bool_dtype(series):
            kinds[name] = "boolean"
        elif pd.api.types.is_datetime64_any_dtype(series):
            kinds[name] = "datetime"
        elif _looks_like_id(name, series, rows):
            kinds[name] = "id"
        elif unique == 1:
            kinds[name] = "constant"
        elif pd.api.types.is_numeric_dtype(series):
            kinds[name] = "numeric"
        elif unique <= MAX_CATEGORY_UNIQUE and (unique <= 0.5 * non_null or non_null < 20):
            kinds[name] = "category"
        else:
            kinds[name] = "text"
    return df, kinds


def _pick_main_numeric(df: Any, numeric: list[str]) -> str | None:
    for hint in AMOUNT_HINTS:
        for name in numeric:
            if hint in str(name).lower() and not _hint(name, MEAN_HINTS):
                return name
    additive = [n for n in numeric if is_additive(n, df[n])]
    if additive:
        return max(additive, key=lambda n: float(df[n].abs().sum()))
    return numeric[0] if numeric else None


def is_additive(name: str, series: Any) -> bool:
    """True when summing the column makes sense (amounts, counts), False for rates, scores, prices."""
    if _hint(name, MEAN_HINTS):
        return False
    values = series.dropna()
    if values.empty or float(values.min()) < 0:
        return bool(not values.empty and _hint(name, AMOUNT_HINTS))
    if not pd.api.types.is_integer_dtype(values) and float(values.max()) <= 1.0:
        return False
    return True


def _label(ts: Any, word: str) -> str:
    stamp = pd.Timestamp(ts)
    if word == "hour":
        return str(stamp.strftime("%Y-%m-%d %H:00"))
    if word == "day":
        return str(stamp.strftime("%Y-%m-%d"))
    if word == "week":
        return "week of " + str(stamp.strftime("%Y-%m-%d"))
    if word == "month":
        return str(stamp.strftime("%b %Y"))
    if word == "quarter":
        return f"{stamp.year} Q{(stamp.month - 1) // 3 + 1}"
    return str(stamp.year)


def choose_period(dates: Any) -> tuple[str, str] | None:
    """``(pandas alias, word)``: the finest period giving at most :data:`MAX_PERIODS` periods that is not finer
    than the data itself; ``None`` when the dates span less than two periods of any kind."""
    values = dates.dropna()
    if values.nunique() < 2:
        return None
    span_days = (values.max() - values.min()).total_seconds() / 86400
    steps = values.drop_duplicates().sort_values().diff().dropna().dt.total_seconds() / 86400
    typical_step = float(steps.median()) if len(steps) else 0.0
    for alias, word, days in _PERIODS:
        if span_days / days + 1 > MAX_PERIODS or days < typical_step * 0.8:
            continue
        if span_days / days >= 1:
            return alias, word
    return None


# ------------------------------------------------------------------------------------------------- profile parts


def numeric_stats(df: Any, numeric: list[str]) -> list[dict[str, Any]]:
    """min/median/max/mean/std/sum, skew and outliers (beyond 3 IQR) of every numeric column."""
    out: list[dict[str, Any]] = []
    for name in numeric:
        values = df[name].dropna().astype(float)
        q1, q3 = values.quantile(0.25), values.quantile(0.75)
        iqr = q3 - q1
        outliers = int(((values < q1 - 3 * iqr) | (values > q3 + 3 * iqr)).sum()) if iqr > 0 else 0
        out.append({"name": str(name), "count": len(values), "min": _num(values.min()),
                    "median": _num(values.median()), "max": _num(values.max()), "mean": _num(values.mean()),
                    "std": _num(values.std()), "sum": _num(values.sum()),
                    "skew": _num(values.skew()) if len(values) >= 3 else None, "outliers": outliers,
                    "additive": is_additive(name, df[name]),
                    "integer": bool(pd.api.types.is_integer_dtype(df[name]) or (values % 1 == 0).all())})
    return out


def category_stats(df: Any, categories: list[str], main: str | None, additive: bool) -> list[dict[str, Any]]:
    """The top values of each categorical column by rows, and by the main numeric column's total when additive."""
    out: list[dict[str, Any]] = []
    rows = max(1, len(df))
    for name in categories:
        counts = df[name].astype(str).where(df[name].notna()).value_counts()
        entry: dict[str, Any] = {
            "name": str(name), "unique": int(df[name].nunique(dropna=True)),
            "top": [[str(k), int(v), float(v) / rows] for k, v in counts.head(TOP_CATEGORIES).items()],
        }
        if main is not None and additive:
            sums = df.groupby(df[name].astype(str).where(df[name].notna()))[main].sum().sort_values(ascending=False)
            total = float(sums.sum()) or 1.0
            entry["by_value"] = {"column": str(main), "top": [[str(k), float(v), float(v) / total]
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
            r = _num(matrix.loc[a, b])
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
                        "median_hours": _num(hours.median()), "mean_hours": _num(hours.mean()),
                        "p90_hours": _num(hours.quantile(0.9)), "max_hours": _num(hours.max())})
    return out[:1]


def _partial(counts: Any, dates: Any, alias: str, how: dict[str, Any], first: bool) -> bool:
    """True when the first (or last) period is only partly covered by the data: far fewer rows than a typical
    period, or (for data finer than the period) less than 90% of its time span."""
    index = 0 if first else -1
    if len(counts) >= 4 and float(counts.iloc[index]) < 0.5 * float(counts.median()):
        return True
    values = dates.dropna().drop_duplicates().sort_values()
    step = values.diff().dropna().median() if len(values) > 1 else pd.Timedelta(0)
    start = counts.index[index]
    end = pd.Series([0], index=[start]).resample(alias, **how).size().index[0] + pd.tseries.frequencies.to_offset(
        alias)
    length = end - start
    if length <= pd.Timedelta(0) or step >= length / 2:
        return False
    covered = (end - values.iloc[0]) if first else (values.iloc[-1] + step - start)
    return bool(covered < 0.9 * length)


def time_trend(df: Any, date: str, value: str | None, agg: str) -> dict[str, Any] | None:
    """The main value (sum or mean, or the row count) per period of ``date``, with first/last/peak/low, the
    change over the period and a fitted direction; an incomplete first or last period is left out of both."""
    period = choose_period(df[date])
    if period is None:
        return None
    alias, word = period
    frame = df[[date] + ([value] if value else [])].dropna(subset=[date]).set_index(date).sort_index()
    how: dict[str, Any] = {"closed": "left", "label": "left"} if word == "week" else {}
    counts = frame.resample(alias, **how).size()
    series = counts if value is None else getattr(frame[value].resample(alias, **how), agg)()
    series = series.astype(float)
    if agg == "sum" and value is not None:
        series = series.where(counts > 0)
    full = series.copy()
    first_partial = _partial(counts, df[date], alias, how, first=True)
    last_partial = len(counts) > 1 and _partial(counts, df[date], alias, how, first=False)
    if first_partial:
        full = full.iloc[1:]
    if last_partial:
        full = full.iloc[:-1]
    full = full.dropna()
    if len(full) < 2:
        return None
    xs = np.arange(len(full), dtype=float)
    slope = float(np.polyfit(xs, full.to_numpy(dtype=float), 1)[0])
    mean = float(full.mean()) or 1.0
    first, last = float(full.iloc[0]), float(full.iloc[-1])
    return {
        "date": str(date), "value": None if value is None else str(value), "agg": agg if value else "count",
        "period": word, "periods": len(series),
        "first": [_label(full.index[0], word), first], "last": [_label(full.index[-1], word), last],
        "peak": [_label(full.idxmax(), word), float(full.max())],
        "low": [_label(full.idxmin(), word), float(full.min())],
        "change_pct": None if first == 0 else (last - first) / abs(first) * 100,
        "fit_change_pct": slope * (len(full) - 1) / abs(mean) * 100,
        "partial": [_label(series.index[0], word)] * first_partial + [_label(series.index[-1], word)] * last_partial,
        "points": [[_label(k, word), _num(v)] for k, v in series.items()],
    }


# ------------------------------------------------------------------------------------------------- charts


def _safe(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9]+", "_", ascii_text).strip("_").lower()[:40] or "data"


def _free_name(stem: str, what: str) -> str:
    base = f"{_safe(stem)}_{_safe(what)}"
    name, n = f"{base}.png", 2
    while os.path.exists(name):
        name, n = f"{base}_{n}.png", n + 1
    return name


def _save(fig: Any, name: str) -> None:
    fig.tight_layout()
    fig.savefig(name, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _chart_trend(df: Any, facts: dict[str, Any], name: str) -> None:
    trend = facts["trend"]
    labels = [p[0] for p in trend["points"]]
    values = [p[1] if p[1] is not None else float("nan") for p in trend["points"]]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(range(len(values)), values, marker="o", markersize=3, color="#1f77b4")
    step = max(1, len(labels) // 12)
    ax.set_xticks(range(0, len(labels), step))
    ax.set_xticklabels([lb.replace("week of ", "") for lb in labels[::step]], rotation=45, ha="right")
    what = trend["value"] or "rows"
    how = {"sum": "total", "mean": "average", "count": "number of"}[trend["agg"]]
    ax.set_title(f"{how.capitalize()} {what} per {trend['period']}")
    ax.set_xlabel(trend["period"])
    ax.set_ylabel(f"{how} {what}")
    if max((abs(v) for v in values if not math.isnan(v)), default=0.0) >= 1000:
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.grid(alpha=0.3)
    _save(fig, name)


def _chart_histogram(df: Any, column: str, name: str) -> None:
    values = df[column].dropna().astype(float)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    bins = min(30, max(5, int(values.nunique())))
    ax.hist(values, bins=bins, color="#4c72b0", edgecolor="white")
    ax.axvline(float(values.median()), color="#c44e52", linestyle="--", label=f"median {values.median():,.4g}")
    ax.set_title(f"Distribution of {column}")
    ax.set_xlabel(str(column))
    ax.set_ylabel("rows")
    ax.legend()
    _save(fig, name)


def _chart_categories(df: Any, entry: dict[str, Any], name: str) -> None:
    by_value = entry.get("by_value")
    top = by_value["top"] if by_value else entry["top"]
    labels = [t[0] for t in top][::-1]
    values = [t[1] for t in top][::-1]
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.5 * len(labels) + 1.5)))
    ax.barh(labels, values, color="#55a868")
    measure = f"total {by_value['column']}" if by_value else "rows"
    shown = "Top " if entry["unique"] > len(top) else ""
    ax.set_title(f"{shown}{entry['name']} by {measure}")
    ax.set_xlabel(measure)
    ax.set_ylabel(entry["name"])
    _save(fig, name)


def _chart_correlations(df: Any, numeric: list[str], name: str) -> None:
    matrix = df[numeric].astype(float).corr(min_periods=3)
    fig, ax = plt.subplots(figsize=(1.2 * len(numeric) + 3, 1.0 * len(numeric) + 2.5))
    image = ax.imshow(matrix.to_numpy(dtype=float), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(numeric)))
    ax.set_xticklabels([str(n) for n in numeric], rotation=45, ha="right")
    ax.set_yticks(range(len(numeric)))
    ax.set_yticklabels([str(n) for n in numeric])
    for i in range(len(numeric)):
        for j in range(len(numeric)):
            r = matrix.iloc[i, j]
            if not pd.isna(r):
                ax.text(j, i, f"{r:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if abs(r) > 0.6 else "black")
    fig.colorbar(image, ax=ax, label="Pearson r")
    ax.set_title("Correlations between numeric columns")
    _save(fig, name)


def _chart_missing(df: Any, name: str) -> None:
    share = (df.isna().mean() * 100).sort_values()
    share = share[share > 0]
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.4 * len(share) + 1.5)))
    ax.barh([str(c) for c in share.index], share.to_numpy(dtype=float), color="#dd8452")
    ax.set_xlim(0, 100)
    ax.set_title("Missing values by column")
    ax.set_xlabel("% of rows missing")
    _save(fig, name)


def _chart_durations(df: Any, entry: dict[str, Any], name: str) -> None:
    hours = ((df[entry["end"]] - df[entry["start"]]).dropna().dt.total_seconds() / 3600)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.hist(hours, bins=30, color="#8172b2", edgecolor="white")
    ax.axvline(float(hours.median()), color="#c44e52", linestyle="--", label=f"median {hours.median():.1f} h")
    ax.set_title(f"Hours from {entry['start']} to {entry['end']}")
    ax.set_xlabel("hours")
    ax.set_ylabel("rows")
    ax.legend()
    _save(fig, name)


def _chart_sequence(df: Any, column: str, name: str) -> None:
    values = df[column].astype(float).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(values.index, values.to_numpy(dtype=float), color="#1f77b4")
    ax.set_title(f"{column} in file order")
    ax.set_xlabel("row")
    ax.set_ylabel(str(column))
    ax.grid(alpha=0.3)
    _save(fig, name)


ChartPlan = tuple[str, str, Callable[[str], None]]
"""``(kind, name stem, draw(file name))``."""


def chart_candidates(df: Any, facts: dict[str, Any], stem: str) -> list[ChartPlan]:
    """The charts worth drawing for one file, best first."""
    plans: list[ChartPlan] = []
    numeric = [n["name"] for n in facts["numeric"]]
    main = str(facts.get("main_numeric"))
    trend = facts.get("trend")
    cats = facts["categories"]
    distributable = [str(n["name"]) for n in facts["numeric"] if n["count"] >= 5 and df[n["name"]].nunique() >= 3]
    if trend is not None:
        what = f"{trend['value'] or 'rows'}_by_{trend['period']}"
        plans.append(("trend", what, lambda path: _chart_trend(df, facts, path)))
    if cats:
        measure = cats[0]["by_value"]["column"] if "by_value" in cats[0] else "rows"
        plans.append(("categories", f"{measure}_by_{cats[0]['name']}",
                      lambda path: _chart_categories(df, cats[0], path)))
    if facts["durations"]:
        d = facts["durations"][0]
        plans.append(("durations", f"hours_{d['start']}_to_{d['end']}", lambda path: _chart_durations(df, d, path)))
    ordered = ([main] if main in distributable else []) + [n for n in distributable if n != main]
    if ordered:
        first = ordered[0]
        plans.append(("distribution", f"{first}_distribution", lambda path: _chart_histogram(df, first, path)))
    if len(numeric) >= 3:
        plans.append(("correlations", "correlations", lambda path: _chart_correlations(df, numeric, path)))
    if any(c["missing_pct"] >= 5 for c in facts["columns"]):
        plans.append(("missing", "missing_values", lambda path: _chart_missing(df, path)))
    if trend is None and len(ordered) == 1 and facts["rows"] >= 5:
        plans.append(("sequence", f"{ordered[0]}_in_order", lambda path: _chart_sequence(df, ordered[0], path)))
    if len(cats) > 1:
        plans.append(("categories", f"rows_by_{cats[1]['name']}",
                      lambda path: _chart_categories(df, {**cats[1], "by_value": None}, path)))
    if len(ordered) > 1:
        second = ordered[1]
        plans.append(("distribution", f"{second}_distribution", lambda path: _chart_histogram(df, second, path)))
    return plans


def draw_charts(profiles: list[tuple[Any, dict[str, Any], str]]) -> None:
    """Draw up to :data:`MAX_CHARTS` charts, taking the files' best candidates in turn; records them in the facts."""
    queues = [(facts, chart_candidates(df, facts, stem), stem) for df, facts, stem in profiles]
    drawn = 0
    while drawn < MAX_CHARTS and any(plans for _, plans, _ in queues):
        for facts, plans, stem in queues:
            if not plans or drawn >= MAX_CHARTS:
                continue
            kind, what, draw = plans.pop(0)
            name = _free_name(stem, what)
            try:
                draw(name)
            except Exception as exc:  # one failed chart must not lose the profile
                plt.close("all")
                facts["warnings"].append(f"the {kind} chart could not be drawn ({type(exc).__name__}: {exc})")
                continue
            facts["charts"].append({"file": name, "kind": kind})
            drawn += 1


# ------------------------------------------------------------------------------------------------- entry point


def profile_frame(df: Any, name: str) -> dict[str, Any]:
    """The facts of one DataFrame (see the module docstring)."""
    df.columns = [str(c).strip() or f"column_{i + 1}" for i, c in enumerate(df.columns)]
    df, kinds = classify(df)
    rows = len(df)
    columns = [{"name": c, "kind": kinds[c], "dtype": str(df[c].dtype), "missing": int(df[c].isna().sum()),
                "missing_pct": float(df[c].isna().mean() * 100) if rows else 0.0,
                "unique": int(df[c].nunique(dropna=True))} for c in df.columns]
    numeric = [c for c in df.columns if kinds[c] == "numeric"]
    dates = [c for c in df.columns if kinds[c] == "datetime"]
    cats = [c for c in df.columns if kinds[c] in ("category", "boolean")]
    main = _pick_main_numeric(df, numeric)
    additive = main is not None and is_additive(main, df[main])
    facts: dict[str, Any] = {
        "name": name, "rows": rows, "columns": columns, "main_numeric": main, "main_additive": additive,
        "numeric": numeric_stats(df, numeric), "categories": category_stats(df, cats, main, additive),
        "dates": [{"name": c, "min": str(df[c].min()), "max": str(df[c].max()),
                   "span_days": _num((df[c].max() - df[c].min()).total_seconds() / 86400)} for c in dates],
        "correlations": correlations(df, numeric), "durations": durations(df, dates),
        "trend": None, "duplicates": int(df.duplicated().sum()) if rows else 0, "charts": [], "warnings": [],
    }
    if dates and rows >= 3:
        if additive:
            facts["trend"] = time_trend(df, dates[0], main, "sum")
        else:
            facts["trend"] = time_trend(df, dates[0], None, "count")
    return facts


def profile_file(spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Read and profile one file ``{"name", "path", "options"}``; a file that cannot be read gets an ``error``."""
    name, path = str(spec["name"]), str(spec["path"])
    try:
        options = read_options(path, dict(spec.get("options") or {}))
        df = read_table(path, options)
    except Exception as exc:
        return None, {"name": name, "error": f"{type(exc).__name__}: {exc}"[:300]}
    facts = profile_frame(df, name)
    facts["read"] = {k: v for k, v in options.items() if v is not None}
    return df, facts


def _jsonable(value: Any) -> Any:
    """``value`` with NaN/inf floats as ``None`` and numpy scalars as Python ones."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _num(value)
    if value is None or isinstance(value, str):
        return value
    return str(value)


def build_report(files: list[dict[str, Any]]) -> dict[str, Any]:
    """Profile every file and draw the charts in the current directory; the JSON-ready report."""
    results: list[dict[str, Any]] = []
    profiles: list[tuple[Any, dict[str, Any], str]] = []
    for spec in files:
        df, facts = profile_file(spec)
        results.append(facts)
        if df is not None:
            stem = re.sub(r"\.(csv|tsv|txt|tab|psv|json|jsonl|ndjson|xlsx|xlsm|xls)(\.gz)?$", "", facts["name"],
                          flags=re.IGNORECASE)
            profiles.append((df, facts, stem))
    draw_charts(profiles)
    return {"files": _jsonable(results)}


def run_profile(files: list[dict[str, Any]]) -> None:
    """:func:`build_report`, then print :data:`SENTINEL` and the report as one line of JSON (returns nothing, so
    a notebook kernel shows no extra result)."""
    report = build_report(files)
    out = io.StringIO()
    out.write("\n" + SENTINEL + "\n")
    out.write(json.dumps(report, allow_nan=False) + "\n")
    print(out.getvalue(), end="")
