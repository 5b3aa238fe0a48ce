"""Text → table: where a text's table starts and ends, how its fields are separated, whether it has a header, how
its numbers are written and what its columns hold.

Layouts tried, in order: a one-character delimiter (``,`` ``;`` tab ``|``) whose records have a consistent field
count; runs of blanks (``sep=r'\\s+'``, with ``'`` or ``"`` quotes); fixed-width columns (character spans that are
blank on every line). Lines before the table (a title, notes, ``#`` or ``*`` comments) are skipped, and so are
lines after it (totals, notes) when the whole file is in hand. The header is decided column by column: a first
cell that is not what its column holds (``ds`` over dates, ``y`` over numbers) votes for a header. Numbers may use
a decimal comma, thousands separators (``1,234``, ``1.234,5``, ``1 234``), currency signs and percent signs.

The work is bounded whatever the file: at most :data:`SAMPLE_RECORDS` records and :data:`TYPED_CELLS` cells are
looked at, and at most :data:`MAX_COLUMNS` columns are typed (the rest are counted).
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from bot.files.options import WHITESPACE
from bot.files.refusals import FileRejected
from bot.files.values import MAX_COLUMNS, ColumnType, column_type, has_header, number_marks

DELIMITERS = (",", ";", "\t", "|")
SAMPLE_RECORDS = 1000
"""Records used to find the layout and the header."""
TYPED_CELLS = 100_000
"""Cells typed at most (fewer rows of a wide file are looked at)."""
MAX_PREAMBLE = 40
"""Records before the table that may be skipped (a title block, notes)."""
MAX_FOOTER = 5
MIN_FIXED_LINES = 5

_HTML_START = re.compile(r"\s*(<!doctype\s+html|<html|<head|<body)", re.IGNORECASE)
_RULE = re.compile(r"[-=_*~+| ]{3,}")
"""A line that only draws a rule (``-----``, ``=====``) between a header and its rows."""
_TOKEN = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"|\S+")


@dataclass(frozen=True, slots=True)
class Column:
    """One column as detected: its header (or ``column N``), the type its values look like, and the sign its
    numbers carry (``$``, ``€``, ``%``...), if any."""

    name: str
    type: ColumnType
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class Table:
    """The layout and the columns of a text table."""

    sep: str
    quotechar: str = '"'
    decimal: str = "."
    thousands: str | None = None
    has_header: bool = True
    skiprows: int | tuple[int, ...] = 0
    skipfooter: int = 0
    colspecs: tuple[tuple[int, int], ...] = ()
    columns: tuple[Column, ...] = ()
    """The first :data:`MAX_COLUMNS` columns."""
    width: int = 0
    """Every column, typed or not."""
    rows: int = 0
    """Data rows in the text looked at."""
    ragged: bool = False
    quoted_newlines: bool = False
    index_column: bool = False
    """The header has one field fewer than the rows: the first field of each row labels it (pandas' index)."""


@dataclass(frozen=True, slots=True)
class _Layout:
    sep: str
    records: list[tuple[int, list[str]]]
    """(first physical line, fields) of every non-blank record looked at."""
    width: int
    start: int
    """Index in ``records`` of the header (or first data record)."""
    end: int
    """Index in ``records`` after the last record of the table."""
    share: float
    quotechar: str = '"'
    colspecs: tuple[tuple[int, int], ...] = ()


# ------------------------------------------------------------------------------------------------- records


def complete_text(text: str, whole: bool) -> str:
    """The text up to its last line break (the last line of a head may be cut), or all of it when whole."""
    if whole:
        return text
    cut = max(text.rfind("\n"), text.rfind("\r"))
    return text[: cut + 1] if cut >= 0 else text


def delimited_records(text: str, sep: str, quotechar: str = '"', limit: int | None = SAMPLE_RECORDS,
                      ) -> list[tuple[int, list[str]]]:
    """Non-blank records of ``text`` with the physical line each starts on (at most ``limit``)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quotechar=quotechar, strict=False)
    out: list[tuple[int, list[str]]] = []
    line = 0
    try:
        for row in reader:
            if "".join(row).strip():  # a cell that is not blank
                out.append((line, row))
                if limit is not None and len(out) >= limit:
                    break
            line = reader.line_num
    except csv.Error:  # pragma: no cover - csv in non-strict mode hardly raises
        pass
    return out


def _physical_lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines()):
        if line.strip():
            yield number, line


def whitespace_records(text: str, limit: int | None = SAMPLE_RECORDS) -> tuple[list[tuple[int, list[str]]], str]:
    """Records of a blank-separated text (quoted tokens kept whole) and the quote character its cells use."""
    out: list[tuple[int, list[str]]] = []
    quotes: Counter[str] = Counter()
    for number, line in _physical_lines(text):
        if "'" not in line and '"' not in line:  # no quoted token: the tokens are what str.split gives
            out.append((number, line.split()))
            if limit is not None and len(out) >= limit:
                break
            continue
        tokens = _TOKEN.findall(line)
        for token in tokens:
            if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
                quotes[token[0]] += 1
        out.append((number, [t[1:-1] if len(t) >= 2 and t[0] == t[-1] and t[0] in "'\"" else t for t in tokens]))
        if limit is not None and len(out) >= limit:
            break
    quote = quotes.most_common(1)[0][0] if quotes else '"'
    return out, quote


def _layout(sep: str, records: list[tuple[int, list[str]]], quotechar: str = '"') -> _Layout:
    """Where the table is among ``records``: its most common width, the first record that starts it (a header
    may have one field fewer), the end of it (a few different records at the end are a footer)."""
    widths = [len(fields) for _, fields in records]
    if not widths:
        return _Layout(sep, records, 0, 0, 0, 0.0, quotechar)
    counts = Counter(widths)
    width = max(counts, key=lambda w: (counts[w], w))
    start = 0
    for i, w in enumerate(widths[: MAX_PREAMBLE + 1]):
        following = widths[i + 1: i + 4]
        trailing = w == width + 1 and not records[i][1][-1].strip()  # "a,b,c," over "1,2,3"
        short = sep == WHITESPACE and w == width - 1 and following[:1] == [width]  # R's write.table: no name
        if (w == width or trailing or short) and \
                (not following or sum(f == width for f in following) >= (len(following) + 1) // 2):
            start = i
            break
    end = len(widths)
    tail = 0
    complete = len(records) < SAMPLE_RECORDS  # the footer is only known when the last records are in hand
    while complete and end - 1 > start and widths[end - 1] != width and tail < MAX_FOOTER:
        end, tail = end - 1, tail + 1
    if end < len(widths) and widths[end - 1] != width:
        end = len(widths)  # more than a footer differs: the rows are ragged, not followed by notes
    body = widths[start + 1: end] or widths[start:end]
    share = sum(1 for w in body if w == width) / len(body) if body else 0.0
    return _Layout(sep, records, width, start, end, share, quotechar)


def _sniffed(sample: str) -> str | None:
    try:
        return csv.Sniffer().sniff(sample[:32768], delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        return None


def choose_layout(text: str) -> _Layout:
    """The layout that makes the most of the text one consistent table: each delimiter and runs of blanks are
    scored by the share of the records looked at that the table covers, times its consistency (a delimiter beats
    blanks on a tie, ``csv.Sniffer`` breaks ties between delimiters); fixed-width columns when none is good;
    width 1 (one column) when nothing is."""
    layouts = [_layout(sep, delimited_records(text, sep)) for sep in DELIMITERS]
    records, quote = whitespace_records(text)
    layouts.append(_layout(WHITESPACE, records, quote))
    scored = [(_quality(layout), layout.sep != WHITESPACE, layout) for layout in layouts if layout.width >= 2]
    if scored:
        top = max(s[:2] for s in scored)
        ties = [s[2] for s in scored if s[:2] == top]
        best = ties[0]
        if len(ties) > 1:
            sniffed = _sniffed(text)
            best = next((layout for layout in ties if layout.sep == sniffed), best)
        if top[0] >= 0.85:
            return best
    fixed = fixed_width_layout(text)
    if fixed is not None:
        return fixed
    delimited = [s for s in scored if s[1]]  # words of prose are separated by blanks too: no fallback to blanks
    if delimited and max(s[0] for s in delimited) >= 0.5:
        return max(delimited, key=lambda s: s[:2])[2]
    single = delimited_records(text, ",")
    return _Layout(",", single, 1, 0, len(single), 1.0)


def _quality(layout: _Layout) -> float:
    covered = (layout.end - layout.start) / len(layout.records) if layout.records else 0.0
    return round(layout.share * covered, 2)


def fixed_width_layout(text: str) -> _Layout | None:
    """Columns made by character positions that are blank on every line of the table (``pandas.read_fwf``)."""
    numbered = list(_physical_lines(text))[:SAMPLE_RECORDS]
    if len(numbered) < MIN_FIXED_LINES:
        return None
    lines = [line.expandtabs(8).rstrip() for _, line in numbered]
    start = next((i for i, ln in enumerate(lines[: MAX_PREAMBLE + 1]) if len(_TOKEN.findall(ln)) >= 2), 0)
    body = lines[start:]
    longest = max(len(ln) for ln in body)
    filled = [False] * longest
    for ln in body:
        for pos, ch in enumerate(ln):
            if ch != " ":
                filled[pos] = True
    spans: list[tuple[int, int]] = []
    pos = 0
    while pos < longest:
        if filled[pos]:
            end = pos
            while end < longest and filled[end]:
                end += 1
            spans.append((pos, end))
            pos = end
        else:
            pos += 1
    if len(spans) < 2 or "\t" in text[:4096]:
        return None
    fields = [(numbered[start + i][0], [ln[a:b].strip() for a, b in spans]) for i, ln in enumerate(body)]
    share = sum(1 for _, row in fields if sum(bool(c) for c in row) >= len(spans) - 1) / len(fields)
    typed = any(column_type([row[i] for _, row in fields[1:]])[0] != "text" for i in range(len(spans)))
    if share < 0.8 or not typed:  # aligned words without a column of numbers or dates are prose
        return None
    return _Layout("fwf", fields, len(spans), 0, len(fields), share, colspecs=tuple(spans))


# ------------------------------------------------------------------------------------------------- the table


def sniff_table(text: str, *, ext: str, whole: bool) -> Table:
    """The table in ``text`` (a head of the file unless ``whole``); raises :class:`FileRejected` for text that is
    no table (a web page, blank lines, prose, a header without rows)."""
    if _HTML_START.match(text):
        raise FileRejected("it is a web page (HTML), not a table: export the data itself as CSV and share that")
    if not text.strip():
        raise FileRejected("it has no data, only blank lines")
    usable = complete_text(text, whole) or text
    layout = choose_layout(usable)
    if layout.width < 2 and ext in (".txt", ".tab", ".psv", ".dat") and not _one_typed_column(layout):
        raise FileRejected(f"it is plain text without columns: I read `{ext}` files only when their values are "
                           "separated by `,`, `;`, tab, `|` or blanks, or aligned in columns")
    table = layout.records[layout.start: layout.end]
    rules = tuple(line for line, fields in table if _RULE.fullmatch(" ".join(fields)))
    records = [fields for line, fields in table if line not in rules]
    if not records:
        raise FileRejected("it has no data, only blank lines")
    width = max(layout.width, len(records[0]))
    typed_rows = max(1, min(SAMPLE_RECORDS, TYPED_CELLS // max(1, min(width, MAX_COLUMNS))))
    sample = records[: typed_rows + 1]
    decimal, thousands = number_marks([row[:MAX_COLUMNS] for row in sample[1:]], layout.sep)
    typed = min(width, MAX_COLUMNS)
    below = [column_type([row[i] for row in sample[1:] if i < len(row)], decimal) for i in range(typed)]
    header = has_header(sample[0], sample[1:], layout.width, decimal, columns=below)
    types = below if header else [column_type([row[i] for row in sample if i < len(row)], decimal)
                                  for i in range(typed)]
    names = _names(sample[0], typed, header=header, index=header and len(sample[0]) == layout.width - 1)
    skipfooter = len(layout.records) - layout.end if whole and layout.end < len(layout.records) else 0
    rows = _row_count(usable, layout, whole) - (1 if header else 0) - len(rules)
    if rows <= 0 and whole:
        raise FileRejected("it has only a header row and no data rows")
    return Table(
        sep=layout.sep, quotechar=layout.quotechar, decimal=decimal, thousands=thousands, has_header=header,
        skiprows=(tuple(range(table[0][0])) + rules) if rules else table[0][0], skipfooter=skipfooter,
        colspecs=layout.colspecs,
        columns=tuple(Column(n, t, u) for n, (t, u) in zip(names, types, strict=False)), width=width,
        rows=max(rows, 0), ragged=layout.share < 1.0,
        quoted_newlines=layout.sep not in ("fwf", WHITESPACE) and any(
            "\n" in c or "\r" in c for row in records for c in row),
        index_column=header and len(sample[0]) == layout.width - 1,
    )


def _one_typed_column(layout: _Layout) -> bool:
    """One column of numbers or dates (under a header or not): a table, not prose."""
    cells = [fields[0] for _, fields in layout.records[1:] if len(fields) == 1]
    return len(cells) >= 2 and len(cells) == len(layout.records) - 1 and column_type(cells)[0] != "text"


def _names(first: Sequence[str], count: int, *, header: bool, index: bool) -> list[str]:
    names = [c.strip() or f"column {i + 1}" for i, c in enumerate(first[:count])] if header else []
    if index:
        names.insert(0, "(row label)")
    return (names + [f"column {i + 1}" for i in range(len(names), count)])[:count]


def _plain_lines(text: str, quotechar: str) -> list[str] | None:
    """The lines of a text that ``csv`` reads one record per line (no quote character, no field over its size
    limit), split as ``csv`` splits them; ``None`` for any other text. Counting these lines' non-blank ones gives
    what :func:`delimited_records` would count, for a fraction of the cost."""
    if quotechar in text:
        return None
    lines = io.StringIO(text, newline="").readlines()
    return lines if max(map(len, lines), default=0) <= csv.field_size_limit() else None


def _count_records(text: str, sep: str, quotechar: str) -> int:
    """How many records :func:`delimited_records` would give without a limit (without keeping them)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quotechar=quotechar, strict=False)
    count = 0
    try:
        for row in reader:
            if "".join(row).strip():
                count += 1
    except csv.Error:  # pragma: no cover - as in delimited_records
        pass
    return count


def _row_count(text: str, layout: _Layout, whole: bool) -> int:
    """Records of the table in ``text`` (the header included): all of them, not only the sample."""
    if len(layout.records) < SAMPLE_RECORDS:
        return layout.end - layout.start
    if layout.sep in ("fwf", WHITESPACE):
        total = sum(1 for _ in _physical_lines(text)) - layout.start
    elif (lines := _plain_lines(text, layout.quotechar)) is not None:
        total = sum(1 for line in lines if line.replace(layout.sep, "").strip()) - layout.start
    else:
        total = _count_records(text, layout.sep, layout.quotechar) - layout.start
    footer = len(layout.records) - layout.end if whole else 0
    return total - footer
