"""Cell values: what a cell looks like (a number, possibly with a currency or percent sign and thousands
separators, a date in a common format, a yes/no, text), the type of a column, the decimal and thousands marks of
a table's numbers, and whether a first row names the columns below it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Literal

from bot.files.options import WHITESPACE

ColumnType = Literal["integer", "number", "date", "boolean", "text"]
MAX_COLUMNS = 1000
"""Columns typed and named; a wider file's other columns are only counted."""


_MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "-", "--", "?", ".", "#n/a", "missing"})
_BOOLEANS = frozenset({"true", "false", "yes", "no", "t", "f", "y", "n"})
_CURRENCY = "$€£¥₹"
_UNIT_SIGNS = _CURRENCY + "%"
_UNIT = re.compile(rf"^([-+]?)\s*([{_CURRENCY}])\s*(.+)$|^(.+?)\s*([{_CURRENCY}%])$")
_GROUP = {",": r"[.\s\u00a0\u202f]", ".": r"[,\s\u00a0\u202f]"}
_NUMBER = {
    d: re.compile(rf"[-+]?(\d{{1,3}}({g}\d{{3}})+|\d+)?(\{d}\d+)?([eE][-+]?\d+)?") for d, g in _GROUP.items()
}
_INTEGER = {d: re.compile(rf"[-+]?(\d{{1,3}}({g}\d{{3}})+|\d+)") for d, g in _GROUP.items()}
_COMMA_DECIMAL = re.compile(r"[-+]?(\d{1,3}([.\s\u00a0]\d{3})+|\d+),\d+")
_DOT_DECIMAL = re.compile(r"[-+]?\d+\.\d+")
_DOT_THOUSANDS = re.compile(r"\d\.\d{3}(?!\d)")
_COMMA_THOUSANDS = re.compile(r"[-+]?[$€£¥₹]?\d{1,3}(,\d{3})+(\.\d+)?%?")
_SPACE_THOUSANDS = re.compile(r"[-+]?\d{1,3}([\s\u00a0\u202f]\d{3})+([.,]\d+)?")
_DATE = re.compile(
    r"(\d{4}[-/.]\d{1,2}([-/.]\d{1,2})?|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{1,2}[ -][A-Za-z]{3,9}[ -]\d{2,4}|"
    r"[A-Za-z]{3,9}\.?[ -]\d{1,2}(,? |-)\d{4}|[A-Za-z]{3,9}[ -]\d{4}|\d{4}-?[Qq][1-4]|\d{4}[Mm]\d{1,2})"
    r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*([AaPp][Mm])?(Z|[-+]\d{2}:?\d{2})?)?"
)
_YEAR = re.compile(r"(1[89]|20)\d\d")
_DIGIT = re.compile(r"\d").search
"""Every number, integer and date pattern needs a decimal digit (``\\d``, as ``str.isdecimal``): a cell without
one is text, whatever the patterns; a cell of digits only is an integer. Both are told without the patterns."""


def cell_type(cell: str, decimal: str = ".") -> tuple[ColumnType | None, str | None]:
    """The type a cell looks like and the unit sign it carries: ``("number", "$")`` for ``$1,234.50``."""
    value = cell.strip()
    if value.isdecimal():
        return "integer", None
    lowered = value.lower()
    if lowered in _MISSING:
        return None, None
    if lowered in _BOOLEANS:
        return "boolean", None
    if _DIGIT(value) is None:
        return "text", None
    signed = value[1:] if value[0] in "+-" else value  # -12 and 3.25 as the patterns would type them
    if signed.isdecimal():
        return "integer", None
    whole, mark, fraction = signed.partition(decimal)
    if mark and whole.isdecimal() and fraction.isdecimal():
        return "number", None
    if value[0].isalpha() and value[0] not in "eE" and value[-1] not in _UNIT_SIGNS:
        # no unit sign, and no number starts with a letter (but e5 does): a date or text (g12, Jan 2024)
        return ("date", None) if _DATE.fullmatch(value) else ("text", None)
    unit = None
    marked = _UNIT.match(value)
    if marked:
        sign, symbol, rest = marked.group(1) or "", marked.group(2), marked.group(3)
        if symbol is None:
            rest, symbol = marked.group(4), marked.group(5)
        value, unit = sign + rest.strip(), symbol
    if _INTEGER[decimal].fullmatch(value):
        return ("integer" if unit is None else "number"), unit
    if _NUMBER[decimal].fullmatch(value) and any(ch.isdigit() for ch in value):
        return "number", unit
    if unit is None and _DATE.fullmatch(value):
        return "date", None
    return "text", None


def column_type(cells: Sequence[str], decimal: str = ".") -> tuple[ColumnType, str | None]:
    """The type of a column's cells (``number`` for a mix of integers and numbers) and its common unit."""
    kinds: Counter[ColumnType] = Counter()
    units: Counter[str | None] = Counter()
    seen: dict[str, tuple[ColumnType | None, str | None]] = {}  # a column repeats its values: each typed once
    for cell in cells:
        found = seen.get(cell)
        if found is None:
            found = seen[cell] = cell_type(cell, decimal)
        kind, unit = found
        if kind is not None:
            kinds[kind] += 1
            units[unit] += 1
    if not kinds:
        return "text", None
    unit = max(units, key=lambda u: units[u])
    unit = unit if unit is not None and units[unit] >= 0.9 * sum(units.values()) else None
    if len(kinds) == 1:
        return next(iter(kinds)), unit
    if set(kinds) <= {"integer", "number"}:
        return "number", unit
    return "text", None


def number_marks(body: Sequence[Sequence[str]], sep: str) -> tuple[str, str | None]:
    """``(decimal, thousands)``: ``(',', '.')`` for ``1.234,56``, ``('.', ',')`` for ``1,234.5``, ``(',', ' ')``
    for ``1 234,5``..."""
    # every mark pattern needs a digit and a mark (a cell of digits only matches none of them); each distinct
    # value is matched once and counts as often as it occurs
    raw = Counter(c for row in body for c in row if not c.isdecimal() and _DIGIT(c) is not None)
    cells: Counter[str] = Counter()
    for c, n in raw.items():
        cells[c.strip().lstrip(_CURRENCY).rstrip("%" + _CURRENCY).strip()] += n
    comma = [c for c in cells if _COMMA_DECIMAL.fullmatch(c)] if sep != "," else []
    commas = sum(cells[c] for c in comma)
    dot = sum(n for c, n in cells.items() if _DOT_DECIMAL.fullmatch(c) and not _DOT_THOUSANDS.search(c))
    spaced = sep not in (" ", WHITESPACE) and any(_SPACE_THOUSANDS.fullmatch(c) for c in cells)
    if comma and dot <= commas:
        if any(_DOT_THOUSANDS.search(c) for c in comma):
            return ",", "."
        return ",", " " if spaced else None
    if any(_COMMA_THOUSANDS.fullmatch(c) for c in cells):
        return ".", ","
    return ".", " " if spaced else None


# ------------------------------------------------------------------------------------------------- header


def has_header(first: Sequence[str], body: Sequence[Sequence[str]], width: int, decimal: str, *,
               columns: Sequence[tuple[ColumnType, str | None]] | None = None) -> bool:
    """Whether ``first`` names the columns of ``body`` (see the module doc). ``columns``: the
    :func:`column_type` of ``body``'s columns when the caller has them already (at least as many as ``first``
    has cells, up to :data:`MAX_COLUMNS`)."""
    if len(first) == width - 1 and width >= 2:
        return True
    if not body:
        return True
    if _year_header([c.strip() for c in first], body):
        return True
    votes = 0
    cells = [c.strip() for c in first[:MAX_COLUMNS]]
    if columns is None:
        columns = [column_type([row[i] for row in body if i < len(row)], decimal) for i in range(len(cells))]
    for i, cell in enumerate(cells):
        kind, _ = cell_type(cell, decimal)
        column, _ = columns[i]
        if kind is None:
            continue
        if column in ("integer", "number", "date", "boolean"):
            fits = kind == column or (column == "number" and kind == "integer")
            votes += -1 if fits else 1
        elif kind == "text" and any(i < len(row) and row[i].strip() == cell for row in body[:200]):
            votes -= 1
    if votes:
        return votes > 0
    kinds = [cell_type(c, decimal)[0] for c in cells]
    return all(cells) and len(set(cells)) == len(cells) and all(k in ("text", None) for k in kinds)


def _year_header(cells: Sequence[str], body: Sequence[Sequence[str]]) -> bool:
    """Column names that are years (``region,2021,2022,2023``) over values that are not."""
    years = [c for c in cells if _YEAR.fullmatch(c)]
    named = set(years)
    if any(cell_type(c)[0] in ("integer", "number") for c in dict.fromkeys(cells) if c not in named):
        return False
    if len(years) < 2 or years != sorted(years) or len(set(years)) != len(years):
        return False
    below = [row[i].strip() for row in body for i, c in enumerate(cells) if c in years and i < len(row)]
    return not all(_YEAR.fullmatch(v) for v in below if v)
