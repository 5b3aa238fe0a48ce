"""How to read one file: the :class:`ReadOptions` value that the stream inspection decides once, for everyone.

The same value is stored with the file (as JSON), rendered as the exact pandas call in the model prompts and in
the thread's preview (:meth:`ReadOptions.call`), and handed to the offline profiler as a reader name and keyword
arguments (:meth:`ReadOptions.pandas`), so every analyst reads the file the same way and nothing re-sniffs it.
This module imports nothing from the rest of the bot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any, Literal

Format = Literal["csv", "fwf", "excel", "json"]
WHITESPACE = r"\s+"
"""The ``sep`` of a whitespace-separated text (runs of spaces and tabs)."""

READERS: dict[str, str] = {"csv": "read_csv", "fwf": "read_fwf", "excel": "read_excel", "json": "read_json"}


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """The pandas reading of one file; defaults are pandas' own, so only what differs is ever written out."""

    format: Format = "csv"
    encoding: str = "utf-8"
    """A Python codec name as pandas takes it (``utf-8``, ``utf-8-sig``, ``utf-16``, ``cp1251``...)."""
    encoding_errors: Literal["strict", "replace"] = "strict"
    sep: str = ","
    """One character, or :data:`WHITESPACE` for text whose columns are separated by runs of blanks."""
    decimal: str = "."
    thousands: str | None = None
    quotechar: str = '"'
    header: int | None = 0
    """``None``: the file has no header row (pandas numbers the columns)."""
    skiprows: int | tuple[int, ...] = 0
    """Lines before the table (a title, notes, comment lines) that are skipped: a count, or the line numbers (from
    0) when rule lines (``-----``) inside the table are skipped too."""
    skipfooter: int = 0
    """Lines after the table (totals, notes) that are skipped; needs pandas' python engine."""
    colspecs: tuple[tuple[int, int], ...] = ()
    """The character spans of a fixed-width table (``format='fwf'``)."""
    sheet_name: str | int = 0
    lines: bool = False
    """JSON Lines: one record per line."""
    compression: str | None = None

    def pandas(self) -> tuple[str, dict[str, Any]]:
        """``(reader, keyword arguments)``: e.g. ``("read_csv", {"sep": ";", "decimal": ","})``."""
        kwargs: dict[str, Any] = {}
        if self.format == "excel":
            _put(kwargs, "sheet_name", self.sheet_name, 0)
            _put(kwargs, "header", self.header, 0)
            _put(kwargs, "skiprows", _plain(self.skiprows) or None, None)
            return READERS["excel"], kwargs
        if self.format == "json":
            _put(kwargs, "lines", self.lines, False)
            _put(kwargs, "encoding", self.encoding, "utf-8")
            _put(kwargs, "compression", self.compression, None)
            return READERS["json"], kwargs
        if self.format == "fwf":
            kwargs["colspecs"] = [list(span) for span in self.colspecs]
        else:
            _put(kwargs, "sep", self.sep, ",")
        _put(kwargs, "decimal", self.decimal, ".")
        _put(kwargs, "thousands", self.thousands, None)
        _put(kwargs, "encoding", self.encoding, "utf-8")
        _put(kwargs, "encoding_errors", self.encoding_errors, "strict")
        _put(kwargs, "quotechar", self.quotechar, '"')
        _put(kwargs, "header", self.header, 0)
        _put(kwargs, "skiprows", _plain(self.skiprows), 0)
        if self.skipfooter:
            kwargs["skipfooter"] = self.skipfooter
            if self.format == "csv":
                kwargs["engine"] = "python"
        _put(kwargs, "compression", self.compression, None)
        return READERS[self.format], kwargs

    def call(self, path: str = "<path>") -> str:
        """The exact pandas call, e.g. ``pandas.read_csv('/mnt/data/x.csv', sep=';', decimal=',')``."""
        reader, kwargs = self.pandas()
        args = [repr(path)] + [f"{k}={v!r}" for k, v in kwargs.items()]
        return f"pandas.{reader}({', '.join(args)})"

    def to_json(self) -> str:
        """The options that differ from the defaults, as a JSON object (what the store keeps)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                out[f.name] = [list(span) for span in value] if f.name == "colspecs" else _plain(value)
        return json.dumps(out, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str | None) -> ReadOptions | None:
        """The options stored by :meth:`to_json`; ``None`` for nothing or anything unreadable (an older row)."""
        if not text:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        known = {f.name: type(f.default) for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if any(not _fits(k, v, known[k]) for k, v in values.items()):
            return None
        if isinstance(values.get("skiprows"), list):
            values["skiprows"] = tuple(int(n) for n in values["skiprows"])
        if "colspecs" in values:
            values["colspecs"] = tuple((int(a), int(b)) for a, b in values["colspecs"])
        try:
            return cls(**values)
        except TypeError:
            return None

    @classmethod
    def for_name(cls, name: str) -> ReadOptions:
        """The options a file's name alone suggests (for records stored before the inspection kept them)."""
        lower = name.lower()
        compression = "gzip" if lower.endswith(".gz") else None
        base = lower.removesuffix(".gz")
        if base.endswith((".xlsx", ".xlsm")):
            return cls(format="excel")
        if base.endswith((".json", ".jsonl", ".ndjson")):
            return cls(format="json", lines=not base.endswith(".json"), compression=compression)
        sep = "\t" if base.endswith((".tsv", ".tab")) else "|" if base.endswith(".psv") else ","
        return cls(sep=sep, compression=compression)


def _fits(name: str, value: Any, default_type: type) -> bool:
    """A stored value of the field's kind (strings for strings, whole numbers or lists of them for line counts...)."""
    if name in ("thousands", "compression"):
        return value is None or isinstance(value, str)
    if name == "header":
        return value is None or (isinstance(value, int) and not isinstance(value, bool))
    if name == "sheet_name":
        return isinstance(value, str | int) and not isinstance(value, bool)
    if name in ("skiprows", "colspecs"):
        return isinstance(value, int | list) and not isinstance(value, bool)
    return isinstance(value, default_type) and (default_type is bool or not isinstance(value, bool))


def _plain(value: Any) -> Any:
    """Tuples as lists (what JSON and a printed call show)."""
    return list(value) if isinstance(value, tuple) else value


def _put(kwargs: dict[str, Any], key: str, value: Any, default: Any) -> None:
    if value != default:
        kwargs[key] = value

