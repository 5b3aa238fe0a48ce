"""Measures over time: the period a trend is told in (the finest of hour, day, week, month, quarter, year that
the data is not finer than and that gives at most :data:`MAX_PERIODS` periods), the main measure per period
(its total when it adds up, its average otherwise, the row count only when there is no measure), first, last,
peak, low, change, fitted direction, unusual periods, and the data's own step (hourly, daily...), which the
trend chart is drawn at.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .stats import num

MAX_PERIODS = 60
_PERIODS = (  # (pandas alias, word, approximate days)
    ("h", "hour", 1 / 24), ("D", "day", 1.0), ("W-MON", "week", 7.0), ("MS", "month", 30.44),
    ("QS", "quarter", 91.3), ("YS", "year", 365.25),
)
_STEPS = ((1 / 1440, "minute"), (1 / 24, "hour"), (1.0, "day"), (7.0, "week"), (28.0, "month"),
          (89.0, "quarter"), (360.0, "year"))


def step_word(dates: Any) -> str | None:
    """The data's own resolution: ``hour`` for hourly readings, ``month`` for monthly figures..."""
    values = dates.dropna().drop_duplicates().sort_values()
    if len(values) < 2:
        return None
    step = float(values.diff().dropna().dt.total_seconds().median()) / 86400
    word = None
    for days, name in _STEPS:
        if step >= days * 0.9:
            word = name
    return word or "moment"


def period_label(ts: Any, word: str) -> str:
    """``Jan 2024``, ``week of 2024-01-01``, ``2024 Q1``... (the trend's labels)."""
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
    if span_days >= 2 * 365 and typical_step <= 400:
        return "YS", "year"  # a long yearly series: every year, however many
    return None



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
    median = float(full.median())
    spread = float((full - median).abs().median())
    unusual = full[(full - median).abs() > 5 * spread] if spread > 0 and len(full) >= 8 else full.iloc[:0]
    return {
        "date": str(date), "value": None if value is None else str(value), "agg": agg if value else "count",
        "period": word, "periods": len(series),
        "first": [period_label(full.index[0], word), first], "last": [period_label(full.index[-1], word), last],
        "peak": [period_label(full.idxmax(), word), float(full.max())],
        "low": [period_label(full.idxmin(), word), float(full.min())],
        "change_pct": None if first == 0 else (last - first) / abs(first) * 100,
        "fit_change_pct": slope * (len(full) - 1) / abs(mean) * 100,
        "partial": [period_label(series.index[0], word)] * first_partial
        + [period_label(series.index[-1], word)] * last_partial,
        "points": [[period_label(k, word), num(v)] for k, v in series.items()],
        "unusual": [[period_label(k, word), float(v)] for k, v in
                    unusual.reindex(unusual.sub(median).abs().sort_values(ascending=False).index).head(3).items()],
        "step": step_word(df[date]),
    }


