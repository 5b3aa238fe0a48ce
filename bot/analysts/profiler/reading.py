"""Reading a file in the kernel exactly as the bot decided (no sniffing here), then tidying what pandas cannot.

The spec of each file carries the pandas reader and its keyword arguments (:meth:`bot.files.ReadOptions.pandas`):
the same call the model is told and the user is shown. After reading: a first field pandas made the index (a
header one name short) becomes a column again, names are made strings and unique, and text columns whose values
are numbers with currency signs, percent signs or thousands separators (``$1,234.50``, ``12.5%``) become numbers,
with their unit remembered for the charts.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

_MONEY = re.compile(r"^\s*(?P<sign>[-+]?)\s*(?P<pre>[$€£¥₹])?\s*(?P<num>\d[\d,.\s\u00a0\u202f]*)\s*"
                    r"(?P<post>[$€£¥₹%])?\s*$")
MIN_SHARE = 0.9
"""Share of a text column's values that must parse as marked numbers for the column to become numeric."""


def read_frame(path: str, reader: str, kwargs: dict[str, Any]) -> tuple[Any, list[str]]:
    """The file as a DataFrame and warnings for the narrative; a decoding failure is retried with replacement
    characters (and said), anything else propagates."""
    warnings: list[str] = []
    read = getattr(pd, reader)
    try:
        frame = read(path, **kwargs)
    except UnicodeDecodeError:
        if reader not in ("read_csv", "read_fwf"):
            raise
        frame = read(path, **{**kwargs, "encoding_errors": "replace"})
        warnings.append("some bytes did not match the detected encoding and were read as �")
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    return tidy(frame), warnings


def tidy(df: Any) -> Any:
    """Index back to a column, string and unique column names, marked numbers converted (see the module doc)."""
    if not isinstance(df.index, pd.RangeIndex):
        df = df.reset_index()
        first = df.columns[0]
        if str(first) in ("index", "level_0"):
            df = df.rename(columns={first: "label"})
    names: list[str] = []
    for i, column in enumerate(df.columns):
        name = str(column).strip()
        if not name or name.startswith("Unnamed: "):
            name = f"column {i + 1}"
        base, n = name, 2
        while name in names:
            name, n = f"{base} ({n})", n + 1
        names.append(name)
    df.columns = names
    df = df.dropna(axis=1, how="all") if len(df) else df
    units: dict[str, str] = {}
    for name in df.columns:
        series = df[name]
        if pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series):
            converted = marked_numbers(series)
            if converted is not None:
                df[name], units[name] = converted
    df.attrs["units"] = units
    return df


def marked_numbers(series: Any) -> tuple[Any, str] | None:
    """``series`` as floats when most values are numbers written with a currency or percent sign or thousands
    separators, with the sign; ``None`` otherwise."""
    values = series.dropna().astype(str)
    values = values[values.str.strip() != ""]
    if values.empty:
        return None
    sample = values.head(2000)
    parsed = sample.map(_marked)
    ok = parsed.dropna()
    if len(ok) < MIN_SHARE * len(sample):
        return None
    units = {u for _, u in ok if u}
    if len(units) > 1 or not any(u or "," in s or " " in s.strip() for (_, u), s in zip(ok, sample[ok.index],
                                                                                        strict=False)):
        return None
    unit = units.pop() if units else ""
    full = series.astype(str).map(_marked)
    return full.map(lambda p: None if p is None else p[0]).astype(float), unit


def _marked(text: str) -> tuple[float, str] | None:
    match = _MONEY.match(text)
    if not match:
        return None
    number = re.sub(r"[\s\u00a0\u202f]", "", match.group("num"))
    if number.count(",") and number.count("."):
        number = number.replace(",", "") if number.rfind(".") > number.rfind(",") else \
            number.replace(".", "").replace(",", ".")
    elif number.count(",") == 1 and not re.fullmatch(r"\d{1,3},\d{3}", number):
        number = number.replace(",", ".")
    else:
        number = number.replace(",", "")
    try:
        value = float(number)
    except ValueError:
        return None
    unit = match.group("pre") or match.group("post") or ""
    return (-value if match.group("sign") == "-" else value), unit
