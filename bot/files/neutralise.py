"""Spreadsheet formulas defused in the CSV/TSV files the bot itself posts back to Slack (the OWASP advice)."""

from __future__ import annotations

import codecs
import csv
import io
import re

_PLAIN_NUMBER = re.compile(r"[-+]?(\d+([.,]\d*)?|[.,]\d+)([eE][-+]?\d+)?%?")
_TRIGGERS = ("=", "+", "-", "@")


def is_dangerous_cell(cell: str) -> bool:
    """A cell a spreadsheet would run as a formula: it starts with ``=``, ``+``, ``-`` or ``@`` (also after leading
    spaces or line breaks), or with a tab or a carriage return. Plain numbers (``-12.5``, ``+3``, ``-1e5``) are
    data, not formulas, and are left alone."""
    if not cell:
        return False
    if cell[0] in "\t\r":
        return True
    stripped = cell.lstrip(" \t\r\n")
    if not stripped.startswith(_TRIGGERS):
        return False
    return not _PLAIN_NUMBER.fullmatch(stripped.strip())


def neutralise_csv(data: bytes, *, delimiter: str = ",") -> bytes:
    """Defuse spreadsheet formulas in a CSV/TSV the bot posts to Slack.

    Rule: every cell for which :func:`is_dangerous_cell` is true gets a leading ``'`` (the OWASP advice: Excel,
    LibreOffice and Google Sheets then show the text instead of evaluating it). Plain numbers such as ``-12.5``
    stay as they are. A file without such a cell is returned unchanged (same bytes); otherwise it is written back
    with the same encoding (BOM kept), delimiter and line ending, quoting only where CSV needs it.
    """
    text, codec, bom = _decode_output(data)
    newline = "\r\n" if "\r\n" in text else "\n"
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False))
    if not any(is_dangerous_cell(cell) for row in rows for cell in row):
        return data
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline)
    for row in rows:
        writer.writerow(["'" + cell if is_dangerous_cell(cell) else cell for cell in row])
    written = out.getvalue()
    if not text.endswith(("\n", "\r")) and written.endswith(newline):
        written = written[: -len(newline)]
    return bom + written.encode(codec)


def _decode_output(data: bytes) -> tuple[str, str, bytes]:
    """Text, codec and BOM of a file the code wrote; Latin-1 as the lossless fallback (formula marks are ASCII)."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                       (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(codec), codec, bom
            except UnicodeDecodeError:
                break
    try:
        return data.decode("utf-8"), "utf-8", b""
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1", b""
