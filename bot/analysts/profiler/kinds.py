"""What each column is: a measure, a date, a category, an identifier or code, free text...

Dates are parsed from text in the common formats (ISO, day-first and month-first, ``Jan-1-1995``, ``1995Q1``),
from ``yyyymmdd`` integers in a column named like a date, and from integer years in a column named like a year
(``YEAR``, ``yr``). Identifiers and codes (``id``, ``CDS_CODE``, ``Country Code``, IATA codes, a row number)
are recognised as such and never summed or averaged.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import pandas as pd

MAX_CATEGORY_UNIQUE = 50
AMOUNT_HINTS = ("revenue", "sales", "amount", "profit", "income", "spend", "cost", "total", "value", "sessions",
                "visits", "views", "orders", "quantity", "qty", "units", "volume", "count", "signups", "deaths",
                "cases", "births", "generation", "consumption", "employment", "population", "miles")
MEAN_HINTS = ("rate", "ratio", "pct", "percent", "share", "score", "rating", "satisfaction", "avg", "mean",
              "median", "temperature", "temp", "price", "prix", "preis", "precio", "age", "latitude", "longitude",
              "lat", "lon", "index", "level", "concentration", "ppm", "weight", "height", "length", "width", "depth",
              "mass", "speed", "wind", "pressure", "humidity", "y")
DATE_HINTS = ("date", "time", "month", "day", "week", "_at", "period", "timestamp", "created", "updated", "ds")
YEAR_NAMES = ("year", "yr", "yyyy", "jahr", "annee", "año", "anno")
SUBJECT_NAMES = frozenset({"subject", "subj", "ss", "individual", "person", "patient", "participant", "respondent",
                           "household", "customer"})
CODE_HINTS = ("code", "_id", " id", "-id", "uuid", "guid", "zip", "postcode", "postal", "iata", "icao", "sku",
              "isbn", "fips", "cds", "key", "identifier")
_DATE_LIKE = re.compile(
    r"^\s*(\d{4}[-/.]\d{1,2}([-/.]\d{1,2})?|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{1,2}[\s-][A-Za-z]{3,9}[\s-]\d{2,4}|"
    r"[A-Za-z]{3,9}\.?[\s-]\d{1,2}(,?\s|-)\d{2,4}|[A-Za-z]{3,9}[-\s]\d{4}|\d{4}-?[Qq][1-4]|\d{4}[Mm]\d{1,2})"
    r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*([AaPp][Mm])?\s*(Z|[+-]\d{2}:?\d{2})?)?\s*$")


def _name_has(name: str, hints: tuple[str, ...]) -> bool:
    lowered = f" {str(name).lower()} "
    return any(h in lowered for h in hints)


def is_textual(series: Any) -> bool:
    """Strings or Python objects (what pandas reads text as)."""
    return bool(pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series))


def parse_dates(series: Any) -> Any | None:
    """``series`` parsed as datetimes when at least 90% of its non-missing values look like and parse as dates."""
    values = series.dropna().astype(str)
    if values.empty:
        return None
    sample = values.head(500)
    if sample.map(lambda v: bool(_DATE_LIKE.match(v))).mean() < 0.9:
        return None
    quarters = sample.str.fullmatch(r"\s*\d{4}-?[Qq][1-4]\s*").mean() >= 0.9
    if quarters:
        text = series.astype("string").str.replace(r"\s*(\d{4})-?[Qq]([1-4])\s*", r"\1Q\2", regex=True)
        return pd.PeriodIndex(text.where(series.notna()), freq="Q").to_timestamp().to_series(index=series.index)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dayfirst = _day_first(sample)
        for kwargs in ({"format": "ISO8601"}, {"dayfirst": dayfirst}, {"format": "mixed", "dayfirst": dayfirst}):
            try:
                parsed = pd.to_datetime(series, errors="coerce", **kwargs)
            except (ValueError, TypeError):
                continue
            if parsed.notna().sum() >= 0.9 * series.notna().sum():
                if getattr(parsed.dt, "tz", None) is not None:
                    parsed = parsed.dt.tz_convert(None)
                return parsed
    return None


def _day_first(sample: Any) -> bool:
    """``31/01/2024`` style: some first number is above 12 while no second number is."""
    parts = sample.str.extract(r"^\s*(\d{1,2})[-/.](\d{1,2})[-/.]\d{2,4}")
    if parts.dropna().empty:
        return False
    first, second = parts[0].dropna().astype(int), parts[1].dropna().astype(int)
    return bool((first > 12).any() and not (second > 12).any())


def integer_dates(name: str, series: Any) -> Any | None:
    """Years (``YEAR`` 1700–2100) or ``yyyymmdd`` integers in a column named like a date, as datetimes."""
    if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
        return None
    values = series.dropna()
    if values.empty or not (values % 1 == 0).all():
        return None
    low, high = float(values.min()), float(values.max())
    lowered = str(name).strip().lower()
    if lowered in YEAR_NAMES or lowered.endswith(("_year", " year")):
        if 1700 <= low and high <= 2100:
            return pd.to_datetime(series.astype("Int64").astype(str).where(series.notna()), format="%Y",
                                  errors="coerce")
    if _name_has(lowered, ("date", "day", "ds")) and 17000101 <= low and high <= 21001231:
        parsed = pd.to_datetime(series.astype("Int64").astype(str).where(series.notna()), format="%Y%m%d",
                                errors="coerce")
        if parsed.notna().sum() >= 0.9 * len(values):
            return parsed
    return None


def looks_like_id(name: str, series: Any, rows: int) -> bool:
    """Identifiers and codes: named so and (nearly) unique or of fixed length, or a row number 1..n."""
    lowered = str(name).strip().lower()
    if lowered in SUBJECT_NAMES and not pd.api.types.is_float_dtype(series):
        return True  # who a row is about, repeated in long tables (one row per subject and condition)
    named = lowered in ("id", "key", "code", "obs", "index", "no", "nr") or _name_has(lowered, CODE_HINTS) or \
        lowered.startswith("id_")
    non_null = int(series.notna().sum())
    unique = int(series.nunique(dropna=True))
    if named and (unique >= 0.9 * max(1, non_null) or _fixed_length_code(series)):
        return True
    if rows >= 20 and unique == rows and pd.api.types.is_integer_dtype(series):
        return bool(series.is_monotonic_increasing and int(series.iloc[-1]) - int(series.iloc[0]) == rows - 1)
    if is_textual(series) and rows >= 20 and unique >= 0.95 * non_null and _fixed_length_code(series):
        return True
    return False


def _fixed_length_code(series: Any) -> bool:
    values = series.dropna().astype(str).head(500)
    if values.empty:
        return False
    lengths = values.str.len()
    return bool(lengths.nunique() == 1 and int(lengths.iloc[0]) <= 12 and
                values.str.fullmatch(r"[A-Z0-9][A-Z0-9._-]*").all())


PART_NAMES = {"quarter": 4, "qtr": 4, "q": 4, "month": 12, "mon": 12, "mo": 12}
"""Integer columns that number a period inside a year column's year, and their largest value."""
SMALL_CODES = 8
"""An integer column named like a kind of thing (``mode``, ``type``...) with this many distinct values or fewer
is a code for categories, not a measure."""
CODE_WORDS = ("mode", "type", "class", "group", "category", "kind", "status", "gender", "sex", "race", "treatment",
              "condition", "choice", "segment", "tier", "site", "plan", "region", "dept", "department")


def year_periods(df: Any) -> tuple[str, str] | None:
    """``(year column, quarter or month column)`` when a table dates its rows by year and period number."""
    lowered = {str(c).strip().lower(): c for c in df.columns}
    year = next((lowered[n] for n in YEAR_NAMES if n in lowered), None)
    if year is None or not pd.api.types.is_numeric_dtype(df[year]):
        return None
    for name, top in PART_NAMES.items():
        part = lowered.get(name)
        if part is not None and pd.api.types.is_numeric_dtype(df[part]):
            values = df[part].dropna()
            if not values.empty and (values % 1 == 0).all() and 1 <= values.min() and values.max() <= top:
                return str(year), str(part)
    return None


def classify(df: Any) -> tuple[Any, dict[str, str]]:
    """``(frame with date columns parsed, {column: kind})``; kinds: numeric, datetime, boolean, category, text,
    id, period (a quarter or month number folded into a date), constant, empty. A year and a quarter (or month)
    column become one ``period`` date column, first."""
    kinds: dict[str, str] = {}
    rows = len(df)
    parts = year_periods(df)
    if parts is not None:
        year, part = parts
        months = df[part] if PART_NAMES[part.strip().lower()] == 12 else (df[part] - 1) * 3 + 1
        stamp = pd.to_datetime({"year": df[year], "month": months, "day": 1}, errors="coerce")
        df.insert(0, "period", stamp)
        kinds[year] = kinds[part] = "period"
    for name in df.columns:
        if name in kinds:
            continue
        series = df[name]
        non_null = int(series.notna().sum())
        if non_null == 0:
            kinds[name] = "empty"
            continue
        parsed = parse_dates(series) if is_textual(series) else integer_dates(name, series)
        if parsed is not None:
            df[name] = series = parsed
        unique = int(series.nunique(dropna=True))
        if pd.api.types.is_bool_dtype(series):
            kinds[name] = "boolean"
        elif pd.api.types.is_datetime64_any_dtype(series):
            kinds[name] = "datetime"
        elif looks_like_id(name, series, rows):
            kinds[name] = "id"
        elif unique == 1 and rows > 1:
            kinds[name] = "constant"
        elif pd.api.types.is_numeric_dtype(series):
            whole = bool((series.dropna() % 1 == 0).all())
            flag = unique == 2 and set(series.dropna().unique()) <= {0, 1}
            small = flag or (rows >= 20 and unique <= SMALL_CODES and whole and has_word(name, CODE_WORDS))
            kinds[name] = "category" if small else "numeric"
        elif unique <= MAX_CATEGORY_UNIQUE and (unique <= 0.5 * non_null or non_null < 20):
            kinds[name] = "category"
        else:
            kinds[name] = "text"
    return df, kinds


def words(name: object) -> list[str]:
    """``totalRevenue_usd`` → ``["total", "revenue", "usd"]``."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(name))
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def has_word(name: object, hints: tuple[str, ...]) -> bool:
    """A word of ``name`` is one of ``hints`` (or starts with a hint of four letters or more)."""
    return any(w == h or (len(h) >= 4 and w.startswith(h)) for w in words(name) for h in hints)


def is_additive(name: str, series: Any) -> bool:
    """True when summing the column makes sense (amounts, counts), False for rates, scores, prices, sizes."""
    if has_word(name, MEAN_HINTS):
        return False
    values = series.dropna()
    if values.empty or float(values.min()) < 0:
        return bool(not values.empty and has_word(name, AMOUNT_HINTS))
    return has_word(name, AMOUNT_HINTS)  # scores, sizes, readings: averaged unless named as an amount or count


def pick_main_numeric(df: Any, numeric: list[str]) -> str | None:
    """The measure a reader cares about first: a named amount, else the largest additive column, else the first."""
    for hint in AMOUNT_HINTS:
        for name in numeric:
            if has_word(name, (hint,)) and is_additive(name, df[name]):
                return name
    additive = [n for n in numeric if is_additive(n, df[n])]
    if additive:
        return max(additive, key=lambda n: float(df[n].abs().sum()))
    return numeric[0] if numeric else None
