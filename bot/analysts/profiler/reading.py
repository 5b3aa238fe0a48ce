"""Reading a file in the kernel exactly as the bot decided (no sniffing here), then tidying what pandas cannot.

The spec of each file carries the pandas reader and its keyword arguments (:meth:`bot.files.ReadOptions.pandas`):
the same call the model is told and the user is shown. After reading: a first field pandas made the index (a
header one name short) becomes a column again, names are made strings and unique, and text columns whose values
are numbers with currency signs, percent signs or thousands separators (``$1,234.50``, ``12.5%``) become numbers,
with their unit remembered for the charts.
"""

from __future__ import annotations

import csv
import gzip
import re
from typing import Any

import pandas as pd

_MONEY = re.compile(r"^\s*(?P<sign>[-+]?)\s*(?P<pre>[$€£¥₹])?\s*(?P<num>\d[\d,.\s\u00a0\u202f]*)\s*"
                    r"(?P<post>[$€£¥₹%])?\s*$")
MAX_READ_COLUMNS = 1000
MAX_CONVERTED = 300
"""Columns looked at for marked numbers (a wider file is only profiled on its first columns anyway)."""
MIN_SHARE = 0.9
"""Share of a text column's values that must parse as marked numbers for the column to become numeric."""


def read_frame(path: str, reader: str, kwargs: dict[str, Any]) -> tuple[Any, list[str]]:
    """The file as a DataFrame and warnings for the narrative; a decoding failure is retried with replacement
    characters (and said), anything else propagates. A table wider than :data:`MAX_READ_COLUMNS` is read on its
    first columns only (pandas takes minutes over 100,000 header cells, most of it renaming duplicates)."""
    warnings: list[str] = []
    read = getattr(pd, reader)
    kwargs, names, width = _capped(path, reader, kwargs)
    if names is not None or width:
        warnings.append(f"only the first {MAX_READ_COLUMNS:,} of {width:,} columns were read")
    try:
        frame = read(path, **kwargs)
    except UnicodeDecodeError:
        if reader not in ("read_csv", "read_fwf"):
            raise
        frame = read(path, **{**kwargs, "encoding_errors": "replace"})
        warnings.append("some bytes did not match the detected encoding and were read as �")
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    if names is not None:
        frame.columns = names[: len(frame.columns)]
    frame = tidy(frame)
    frame.attrs["columns_total"] = width or len(frame.columns)
    return frame, warnings


def _capped(path: str, reader: str, kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[str] | None, int]:
    """``(kwargs, header names, width)``: for a CSV wider than :data:`MAX_READ_COLUMNS`, the arguments that read
    its first columns, with the header read here (``header=None``: pandas does not rename 100,000 names); else
    ``kwargs`` unchanged, ``None`` and 0."""
    skip = kwargs.get("skiprows", 0)
    if reader != "read_csv" or not isinstance(skip, int):
        return kwargs, None, 0
    opener: Any = gzip.open if kwargs.get("compression") == "gzip" else open
    with opener(path, "rt", encoding=kwargs.get("encoding", "utf-8"), errors="replace", newline="") as fh:
        for _ in range(skip):
            fh.readline()
        line = fh.readline(8 * 1024 * 1024)
    sep = kwargs.get("sep", ",")
    if sep == r"\s+":
        fields = line.split()
    else:
        fields = next(csv.reader([line.rstrip("\r\n")], delimiter=sep, quotechar=kwargs.get("quotechar", '"')), [])
    if len(fields) <= MAX_READ_COLUMNS:
        return kwargs, None, 0
    capped = {**kwargs, "usecols": list(range(MAX_READ_COLUMNS))}
    if kwargs.get("header", 0) is None:
        return capped, None, len(fields)
    capped.update(header=None, skiprows=skip + 1)
    return capped, [f.strip() for f in fields[:MAX_READ_COLUMNS]], len(fields)


def tidy(df: Any) -> Any:
    """Index back to a column, string and unique column names, marked numbers converted (see the module doc)."""
    if not isinstance(df.index, pd.RangeIndex):
        df = df.reset_index()
        first = df.columns[0]
        if str(first) in ("index", "level_0"):
            df = df.rename(columns={first: "label"})
    names: list[str] = []
    seen: set[str] = set()
    for i, column in enumerate(df.columns):
        name = str(column).strip()
        if not name or name.startswith("Unnamed: "):
            name = f"column {i + 1}"
        base, n = name, 2
        while name in seen:
            name, n = f"{base} ({n})", n + 1
        names.append(name)
        seen.add(name)
    df.columns = names
    df = df.dropna(axis=1, how="all") if len(df) else df
    units: dict[str, str] = {}
    for name in df.columns[:MAX_CONVERTED]:
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
