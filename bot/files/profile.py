"""What the inspection found in a file: :class:`FileProfile`, told to the analysis (:meth:`FileProfile.facts`) and
shown in the thread (:meth:`FileProfile.preview`); its :attr:`FileProfile.options` are how every analyst reads it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from bot.files.encoding import label
from bot.files.options import WHITESPACE, ReadOptions
from bot.files.tables import Column
from bot.formatting import human_size

FileKind = Literal["table", "excel", "json"]
FACT_COLUMNS = 40
PREVIEW_COLUMNS = 8
_SEP_WORDS = {",": "`,`-separated", ";": "`;`-separated", "\t": "tab-separated", "|": "`|`-separated",
              WHITESPACE: "separated by blanks"}


def _about(rows: int, exact: bool) -> str:
    if exact:
        return f"{rows:,} row{'s' * (rows != 1)}"
    if rows >= 100:
        digits = len(str(rows)) - 2
        rows = round(rows, -digits)
    return f"about {rows:,} rows"


def _mrkdwn_safe(text: str) -> str:
    cleaned = re.sub(r"\s+", " ", text).replace("`", "'").replace("<", "‹").replace(">", "›").strip()
    return (cleaned[:40] + "…") if len(cleaned) > 41 else (cleaned or "(blank)")


@dataclass(frozen=True, slots=True)
class FileProfile:
    """What :func:`bot.files.inspect_stream` found in a file's first bytes (or, once streamed, in all of it)."""

    kind: FileKind = "table"
    options: ReadOptions = field(default_factory=ReadOptions)
    encoding: str = "utf-8"
    """The detected codec: ``utf-8``, ``utf-8-sig``, ``utf-16-le``, ``utf-16-be`` (both with a BOM), ``cp1252``,
    ``latin-1``, ``cp1251``... (``options.encoding`` is what pandas is given: ``utf-16`` for both UTF-16s)."""
    encoding_certain: bool = True
    columns: tuple[Column, ...] = ()
    """The first columns (at most :data:`bot.files.tables.MAX_COLUMNS`), typed."""
    width: int = 0
    """How many columns the table has (more than :attr:`columns` when the inspection was capped)."""
    rows: int = 0
    """Data rows (the header excluded): exact when :attr:`rows_exact`, else estimated from the head and the size."""
    rows_exact: bool = False
    quoted_newlines: bool = False
    """Some quoted fields span several lines (so the file must not be read line by line)."""
    ragged: bool = False
    """Rows do not all have the same number of fields."""
    index_column: bool = False
    """The header has one field fewer than the rows: pandas makes the first field the index."""
    sheets: tuple[str, ...] = ()
    """An Excel workbook's sheets, when the whole workbook was inspected."""

    @property
    def delimiter(self) -> str:
        """The field separator (``\\s+`` for blanks, ``fwf`` for fixed-width columns)."""
        return "fwf" if self.options.format == "fwf" else self.options.sep

    @property
    def decimal(self) -> str:
        """The decimal mark."""
        return self.options.decimal

    @property
    def has_header(self) -> bool:
        """Whether the first row of the table names the columns."""
        return self.options.header is not None

    @property
    def compressed(self) -> bool:
        """gzip-compressed."""
        return self.options.compression == "gzip"

    @property
    def stray_bytes(self) -> bool:
        """A UTF-8 text has a few bytes that are not UTF-8 (read with ``encoding_errors='replace'``)."""
        return self.options.encoding_errors == "replace"

    @property
    def capped(self) -> bool:
        """The table is wider than what the inspection typed."""
        return self.width > len(self.columns)

    @property
    def encoding_label(self) -> str:
        """``Windows-1252``, ``UTF-16 LE``..."""
        return label(self.encoding)

    def read_call(self, path: str = "<path>") -> str:
        """The pandas call that reads the file right, e.g. ``pandas.read_csv('/mnt/data/x.csv', sep=';')``."""
        return self.options.call(path)

    def facts(self, path: str = "<path>") -> str:
        """The sentence told to the model: how to read the file, its columns and its size in rows."""
        parts = [f"read with {self.read_call(path)}"]
        if self.kind == "excel":
            sheets = f" (sheets: {', '.join(self.sheets[:10])})" if len(self.sheets) > 1 else ""
            parts.append(f"an Excel workbook{sheets}")
        elif self.kind == "json":
            parts.append("JSON lines, one record per line" if self.options.lines else "a JSON document")
        if self.kind != "table" and not self.columns:
            return "; ".join(parts)
        parts += self._reading_notes()
        cols = ", ".join(_column_fact(c) for c in self.columns[:FACT_COLUMNS])
        more = f", and {self.width - FACT_COLUMNS:,} more" if self.width > FACT_COLUMNS else ""
        head = "" if self.has_header else "no header row; "
        parts.append(f"{head}{self.width:,} column{'s' * (self.width != 1)}: {cols}{more}")
        if self.capped:
            parts.append(f"only the first {len(self.columns):,} columns were inspected; pandas reads a table this "
                         f"wide slowly (minutes when names repeat): pass usecols=range({len(self.columns)}) to read "
                         "the first columns")
        parts.append(_about(self.rows, self.rows_exact))
        return "; ".join(parts)

    def _reading_notes(self) -> list[str]:
        notes: list[str] = []
        o = self.options
        if self.compressed:
            notes.append("gzip-compressed")
        if self.encoding != "utf-8":
            notes.append(f"text encoding {self.encoding_label}")
        if not self.encoding_certain:
            notes.append("the encoding is a best guess: if the text reads garbled, try another code page")
        if self.stray_bytes:
            notes.append("a few bytes are not valid UTF-8 and read as �")
        skipped = len(o.skiprows) if isinstance(o.skiprows, tuple) else o.skiprows
        if skipped:
            notes.append(f"{skipped} line{'s' * (skipped != 1)} of notes or rules around the header are skipped")
        if o.skipfooter:
            notes.append(f"the last {o.skipfooter} line{'s' * (o.skipfooter != 1)} after the table are skipped")
        if self.index_column:
            notes.append("the header has one name fewer than the rows, so pandas makes the first field the index "
                         "(call .reset_index() to get it as a column)")
        if self.quoted_newlines:
            notes.append("some quoted fields contain line breaks, so do not read it line by line")
        if self.ragged:
            notes.append("some rows have a different number of fields")
        marked = [c for c in self.columns if c.unit]
        if marked:
            shown = ", ".join(f"{c.name} ({c.unit})" for c in marked[:10])
            notes.append(f"numbers written with a sign that pandas reads as text: {shown}; strip the sign "
                         "(and thousands separators) before converting")
        return notes

    def _layout_words(self) -> list[str]:
        if self.kind == "excel":
            sheet = self.options.sheet_name
            return ["Excel workbook" + (f", sheet `{_mrkdwn_safe(str(sheet))}`" if sheet != 0 else "")]
        if self.kind == "json":
            return ["JSON lines" if self.options.lines else "JSON records"]
        words = []
        if self.options.format == "fwf":
            words.append("fixed-width columns")
        elif self.width > 1:
            words.append(_SEP_WORDS.get(self.options.sep, f"`{self.options.sep}`-separated"))
        return [*words, self.encoding_label + ("" if self.encoding_certain else " (a best guess)")]

    def preview(self, name: str, size: int) -> str:
        """The mrkdwn line shown in the thread's status once the file is loaded (with the read call under it)."""
        call = f"\n      read with `{self.read_call(name)}`"
        if self.kind == "excel" and not self.columns:
            return f"`{name}` ({human_size(size)}): Excel workbook, read with pandas in the sandbox" + call
        if self.kind == "json" and not self.columns:
            what = "JSON lines" if self.options.lines else "JSON"
            return f"`{name}` ({human_size(size)}): {what}, read with pandas in the sandbox" + call
        n = self.width
        bits = [f"{_about(self.rows, self.rows_exact)} × {n:,} column{'s' * (n != 1)}", *self._layout_words()]
        if self.stray_bytes:
            bits.append("a few bytes not UTF-8")
        if self.compressed:
            bits.append("gzip")
        if self.decimal != ".":
            bits.append(f"decimal `{self.decimal}`")
        skipped = self.options.skipfooter + (len(self.options.skiprows) if isinstance(self.options.skiprows, tuple)
                                             else self.options.skiprows)
        if skipped:
            bits.append(f"{skipped} line{'s' * (skipped != 1)} of notes skipped")
        if self.quoted_newlines:
            bits.append("quoted line breaks")
        shown = ", ".join(f"`{_mrkdwn_safe(c.name)}` ({c.type})" for c in self.columns[:PREVIEW_COLUMNS])
        if n > PREVIEW_COLUMNS:
            shown += f", … ({n - PREVIEW_COLUMNS:,} more)"
        lead = "columns: " if self.kind != "table" else "header row: " if self.has_header else "no header row: "
        bits.append(lead + shown)
        if self.capped:
            bits.append(f"only the first {len(self.columns):,} columns inspected")
        return f"`{name}`: " + ", ".join(bits) + call


def _column_fact(c: Column) -> str:
    return f"{c.name} ({c.type}{', ' + c.unit if c.unit else ''})"
