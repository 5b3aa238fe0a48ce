"""File checks: before any download (type, size, mode) and while streaming Slack → sandbox (what is inside).

Every file a user shares is either analysed or gets a reason the thread is told; nothing is dropped silently.

1. :func:`rejection_reason` looks at Slack's metadata only: deleted or external files, unsupported types, files
   over ``DATASTORY_MAX_FILE_MB``.
2. :func:`inspect_stream` reads only the first chunks of the download (``head_bytes``, 256 KiB by default, plus at
   most one more chunk), decides what the file is, and hands back a :class:`FileProfile` and an iterator that
   yields the peeked bytes and then the rest of the stream *unchanged*: files go into the sandbox byte for byte as
   Slack served them, in constant memory. What was detected (encoding, delimiter, decimal comma, header, column
   types, rows) is told to the analysis (:meth:`FileProfile.facts`) and shown in the thread
   (:meth:`FileProfile.preview`); the file is never rewritten. Empty, header-only, binary, HTML and undecodable
   files raise :class:`FileRejected` with a reason for the thread. gzip files are decompressed only for the head.
3. :func:`neutralise_csv` defuses spreadsheet formulas in CSV/TSV files the bot itself posts back to Slack.

Encodings: a byte-order mark decides (UTF-8 with BOM, UTF-16 LE/BE); else strict UTF-8; else a single-byte
code page: Windows-1252 when the head has bytes 0x80–0x9F that Windows-1252 defines (``€``, curly quotes,
dashes: in Latin-1 they are control characters no text uses), Latin-1 otherwise (the two agree on every other
byte). UTF-16 without a BOM is refused, and so is text full of control characters.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import re
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from bot.formatting import human_size
from bot.poster import SlackFile

logger = logging.getLogger(__name__)

DATA_EXTENSIONS = (".csv", ".tsv", ".txt", ".tab", ".psv")
COMPRESSED_SUFFIX = ".gz"
PASS_THROUGH_EXTENSIONS = (".xlsx", ".json")
"""Read by pandas inside the sandbox; only their first bytes are checked on our side."""
DATA_FILETYPES = frozenset({"csv", "tsv", "text", "gzip", "xlsx", "json"})
ACCEPTED_HINT = "`.csv`, `.tsv`, delimited `.txt` (also gzip-compressed, e.g. `.csv.gz`), `.xlsx` and `.json`"
HEAD_BYTES = 256 * 1024
"""How much of a file (decompressed, for gzip) :func:`inspect_stream` looks at."""
DELIMITERS = (",", ";", "\t", "|")
SAMPLE_RECORDS = 1000
"""Records used to infer column types and the delimiter's consistency."""
FACT_COLUMNS = 40
PREVIEW_COLUMNS = 8

ColumnType = Literal["integer", "number", "date", "boolean", "text"]
FileKind = Literal["table", "excel", "json"]


# --------------------------------------------------------------------------------------------- pre-download


def extension(name: str) -> str:
    """The data extension of ``name``: ``.csv`` for ``sales.csv`` and for ``sales.csv.gz``; lower case."""
    lower = name.lower()
    if lower.endswith(COMPRESSED_SUFFIX):
        lower = lower[: -len(COMPRESSED_SUFFIX)]
    dot = lower.rfind(".")
    return lower[dot:] if dot > 0 else ""


def is_compressed_name(name: str) -> bool:
    """True for ``*.gz`` names."""
    return name.lower().endswith(COMPRESSED_SUFFIX)


def is_supported_name(name: str) -> bool:
    """True for names the bot reads (``.csv``, ``.tsv.gz``, ``.xlsx``...)."""
    ext = extension(name)
    return ext in DATA_EXTENSIONS or (ext in PASS_THROUGH_EXTENSIONS and not is_compressed_name(name))


def rejection_reason(file: SlackFile, *, max_bytes: int) -> str | None:
    """Why ``file`` cannot be analysed, in words for the thread; ``None`` when it is accepted."""
    if file.mode == "tombstone":
        return "it was deleted before I could read it"
    if file.mode == "external":
        return ("it is an external file (Google Drive, Dropbox, …) that Slack only links to; "
                "upload the file itself to Slack")
    if not is_supported_name(file.name):
        shown = extension(file.name) or "files without an extension"
        return f"`{shown}` is not a type I read; I read {ACCEPTED_HINT}"
    if file.size > max_bytes:
        return (f"it is {human_size(file.size)}, over the limit of {human_size(max_bytes)} "
                "(`DATASTORY_MAX_FILE_MB`)")
    return None


# --------------------------------------------------------------------------------------------- refusals


class FileRejected(Exception):
    """A file cannot be analysed. ``reason`` is a clause for the thread (no file contents, safe to log)."""

    def __init__(self, reason: str, *, name: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.name = name

    @property
    def message(self) -> str:
        """The sentence the thread gets."""
        what = f"`{self.name}`" if self.name else "this file"
        return f"I can't analyse {what}: {self.reason}."


class FilesRefused(FileRejected):
    """Every file a turn brought was refused (or the thread has no readable data at all): the turn ends here."""

    def __init__(self, refusals: Sequence[tuple[str, str]]) -> None:
        self.refusals = tuple(refusals)
        super().__init__("; ".join(f"{name}: {reason}" for name, reason in self.refusals) or "no readable data")

    @property
    def message(self) -> str:
        """One line for one file, a bullet per file for several, a hint when the thread has nothing readable."""
        if not self.refusals:
            return f"There is no data in this thread that I could read. Share a file: I read {ACCEPTED_HINT}."
        if len(self.refusals) == 1:
            name, reason = self.refusals[0]
            return f"I can't analyse `{name}`: {reason}."
        return "I can't analyse these files:\n" + "\n".join(f"• `{n}`: {r}" for n, r in self.refusals)


ACCESS_DENIED_REASON = ("Slack served its sign-in page instead of the file, so the app lacks the `files:read` scope "
                        "or the file is not shared in a conversation I'm in")
FOREIGN_HOST_REASON = "it is hosted outside Slack, so I did not download it with my token"
NOT_FOUND_REASON = "Slack no longer has it (deleted?)"


def refusals_text(refusals: Sequence[tuple[str, str]], *, lead: str = "I'm skipping") -> str:
    """``I'm skipping this file:\\n• `a.csv`: reason`` (the same shape as the pre-download refusals)."""
    what = "this file" if len(refusals) == 1 else "these files"
    return f"{lead} {what}:\n" + "\n".join(f"• `{name}`: {reason}" for name, reason in refusals)


# --------------------------------------------------------------------------------------------- the profile


@dataclass(frozen=True, slots=True)
class Column:
    """One column as detected: its header (or ``column N``) and the type its values look like."""

    name: str
    type: ColumnType


_ENCODING_LABELS = {
    "utf-8": "UTF-8", "utf-8-sig": "UTF-8 with BOM", "utf-16-le": "UTF-16 LE", "utf-16-be": "UTF-16 BE",
    "cp1252": "Windows-1252", "latin-1": "Latin-1",
}
_DELIMITER_WORDS = {",": "`,`-separated", ";": "`;`-separated", "\t": "tab-separated", "|": "`|`-separated"}


def _about(rows: int, exact: bool) -> str:
    if exact:
        return f"{rows:,} row{'s' * (rows != 1)}"
    if rows >= 100:
        digits = len(str(rows)) - 2
        rows = round(rows, -digits)
    return f"about {rows:,} rows"


@dataclass(frozen=True, slots=True)
class FileProfile:
    """What :func:`inspect_stream` found in a file's first bytes; told to the analysis, shown to the user."""

    kind: FileKind = "table"
    encoding: str = "utf-8"
    """The detected codec: ``utf-8``, ``utf-8-sig``, ``utf-16-le``, ``utf-16-be`` (both with a BOM), ``cp1252``,
    ``latin-1``."""
    stray_bytes: bool = False
    """A UTF-8 text has a few bytes that are not UTF-8 (read with ``encoding_errors='replace'``)."""
    delimiter: str = ","
    decimal: str = "."
    thousands: str | None = None
    quotechar: str = '"'
    quoted_newlines: bool = False
    """Some quoted fields span several lines (so the file must not be read line by line)."""
    ragged: bool = False
    """Rows do not all have the same number of fields."""
    has_header: bool = True
    columns: tuple[Column, ...] = ()
    rows: int = 0
    """Data rows (the header excluded): exact when :attr:`rows_exact`, else estimated from the head and the size."""
    rows_exact: bool = False
    compressed: bool = False
    json_lines: bool = False

    @property
    def pandas_encoding(self) -> str:
        """The ``encoding=`` for pandas (``utf-16`` reads either byte order from the BOM)."""
        return "utf-16" if self.encoding.startswith("utf-16") else self.encoding

    @property
    def encoding_label(self) -> str:
        """``Windows-1252``, ``UTF-16 LE``..."""
        return _ENCODING_LABELS.get(self.encoding, self.encoding)

    def read_call(self, path: str = "<path>") -> str:
        """The pandas call that reads the file right, e.g. ``pandas.read_csv('/mnt/data/x.csv', sep=';')``."""
        if self.kind == "excel":
            return f"pandas.read_excel({path!r})"
        if self.kind == "json":
            return f"pandas.read_json({path!r}{', lines=True' if self.json_lines else ''})"
        args = [repr(path)]
        if self.delimiter != ",":
            args.append(f"sep={self.delimiter!r}")
        if self.decimal != ".":
            args.append(f"decimal={self.decimal!r}")
        if self.thousands:
            args.append(f"thousands={self.thousands!r}")
        if self.pandas_encoding != "utf-8":
            args.append(f"encoding={self.pandas_encoding!r}")
        if self.stray_bytes:
            args.append("encoding_errors='replace'")
        if self.quotechar != '"':
            args.append(f"quotechar={self.quotechar!r}")
        if not self.has_header:
            args.append("header=None")
        if self.compressed:
            args.append("compression='gzip'")
        return f"pandas.read_csv({', '.join(args)})"

    def facts(self, path: str = "<path>") -> str:
        """The sentence told to the model: how to read the file, its columns and its size in rows."""
        parts = [f"read with {self.read_call(path)}"]
        if self.kind == "excel":
            parts.append("an Excel workbook (list its sheets with pandas.ExcelFile first)")
        elif self.kind == "json":
            parts.append("JSON lines, one record per line" if self.json_lines else "a JSON document")
        if self.kind != "table":
            return "; ".join(parts)
        if self.compressed:
            parts.append("gzip-compressed")
        if self.encoding != "utf-8":
            parts.append(f"text encoding {self.encoding_label}")
        if self.stray_bytes:
            parts.append("a few bytes are not valid UTF-8 and read as �")
        if self.quoted_newlines:
            parts.append("some quoted fields contain line breaks, so do not read it line by line")
        if self.ragged:
            parts.append("some rows have a different number of fields")
        cols = ", ".join(f"{c.name} ({c.type})" for c in self.columns[:FACT_COLUMNS])
        more = f", and {len(self.columns) - FACT_COLUMNS} more" if len(self.columns) > FACT_COLUMNS else ""
        head = "" if self.has_header else "no header row; "
        parts.append(f"{head}{len(self.columns)} column{'s' * (len(self.columns) != 1)}: {cols}{more}")
        parts.append(_about(self.rows, self.rows_exact))
        return "; ".join(parts)

    def preview(self, name: str, size: int) -> str:
        """The mrkdwn line shown in the thread's status once the file is loaded."""
        if self.kind == "excel":
            return f"`{name}` ({human_size(size)}): Excel workbook, read with pandas in the sandbox"
        if self.kind == "json":
            what = "JSON lines" if self.json_lines else "JSON"
            return f"`{name}` ({human_size(size)}): {what}, read with pandas in the sandbox"
        n = len(self.columns)
        bits = [f"{_about(self.rows, self.rows_exact)} × {n} column{'s' * (n != 1)}"]
        if n > 1:
            bits.append(_DELIMITER_WORDS.get(self.delimiter, f"`{self.delimiter}`-separated"))
        bits.append(self.encoding_label)
        if self.stray_bytes:
            bits.append("a few bytes not UTF-8")
        if self.compressed:
            bits.append("gzip")
        if self.decimal != ".":
            bits.append(f"decimal `{self.decimal}`")
        if self.quoted_newlines:
            bits.append("quoted line breaks")
        shown = ", ".join(f"`{_mrkdwn_safe(c.name)}` ({c.type})" for c in self.columns[:PREVIEW_COLUMNS])
        if n > PREVIEW_COLUMNS:
            shown += f", … ({n - PREVIEW_COLUMNS} more)"
        bits.append(("header row: " if self.has_header else "no header row: ") + shown)
        return f"`{name}`: " + ", ".join(bits)


def _mrkdwn_safe(text: str) -> str:
    cleaned = re.sub(r"\s+", " ", text).replace("`", "'").replace("<", "‹").replace(">", "›").strip()
    return (cleaned[:40] + "…") if len(cleaned) > 41 else (cleaned or "(blank)")


# --------------------------------------------------------------------------------------------- streaming


async def _close(iterator: AsyncIterator[bytes]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


class InspectedStream:
    """Every byte of an inspected file, unchanged and in order: an async iterator that releases the peeked head as
    it goes and closes its source at the end (or on :meth:`aclose`).

    :attr:`profile` is what the head showed. A text judged UTF-8 from its head is checked as it streams past (pure
    ASCII chunks cost one ``isascii``); once the stream has passed, the profile covers the whole file, so the
    analysis is told how to read all of it. When a later byte is not UTF-8: an ASCII text so far (a Latin-1 ``ü``
    on row 90,000) is re-labelled Windows-1252 or Latin-1; a text that already had UTF-8 characters or a UTF-8
    byte-order mark stays UTF-8, with its few stray bytes read as ``�``.
    """

    def __init__(self, profile: FileProfile, peeked: list[bytes], source: AsyncIterator[bytes]) -> None:
        self.profile = profile
        self._peeked = peeked
        self._source = source
        checked = profile.kind == "table" and not profile.compressed and profile.encoding in ("utf-8", "utf-8-sig")
        self._utf8 = codecs.getincrementaldecoder("utf-8")() if checked else None
        self._multibyte = profile.encoding == "utf-8-sig"  # UTF-8 characters seen (or a BOM): UTF-8 for sure
        self._c1: set[int] | None = None
        """Once an ASCII text turned out not to be UTF-8: its bytes 0x80–0x9F, which choose the legacy codec."""

    def __aiter__(self) -> InspectedStream:
        return self

    async def __anext__(self) -> bytes:
        if self._peeked:
            chunk = self._peeked.pop(0)
        else:
            try:
                chunk = await anext(self._source)
            except StopAsyncIteration:
                self._check(b"", final=True)
                await self.aclose()
                raise
        self._check(chunk)
        return chunk

    async def aclose(self) -> None:
        """Release the head and close the source (idempotent)."""
        self._peeked.clear()
        await _close(self._source)

    def _check(self, chunk: bytes, *, final: bool = False) -> None:
        if self._c1 is not None:
            self._c1.update(chunk.translate(None, _OUTSIDE_C1))
            if final:
                self.profile = replace(self.profile, encoding=_legacy_codec(self._c1))
                logger.info("text is not utf-8 past its head encoding=%s", self.profile.encoding)
            return
        decoder = self._utf8
        if decoder is None or (chunk.isascii() and not final and not decoder.getstate()[0]):
            return
        pending = decoder.getstate()[0]
        try:
            text = decoder.decode(chunk, final=final)
        except UnicodeDecodeError as exc:
            self._utf8 = None
            if self._multibyte or not (pending + chunk)[: exc.start].isascii():
                self.profile = replace(self.profile, stray_bytes=True)
                logger.info("utf-8 text has stray bytes past its head")
            else:
                self._c1 = set()
                self._check(chunk, final=final)
            return
        self._multibyte = self._multibyte or not text.isascii()


async def inspect_stream(
    chunks: AsyncIterator[bytes], *, name: str, size: int, head_bytes: int = HEAD_BYTES,
) -> InspectedStream:
    """Read the first chunks of ``chunks`` (until ``head_bytes`` are in hand: at most one chunk more), detect what
    the file is, and return an iterator over *all* the bytes, unchanged, that carries the file's profile.

    Raises :class:`FileRejected` (after closing ``chunks``) for files the analysis cannot read; errors of the
    source itself (``FileAccessDenied``...) propagate. ``size`` is Slack's byte count (0 when unknown), used to
    estimate the rows of large files.
    """
    source = aiter(chunks)
    peeked: list[bytes] = []
    held = 0
    complete = False
    try:
        while held < head_bytes:
            try:
                chunk = await anext(source)
            except StopAsyncIteration:
                complete = True
                break
            if chunk:
                peeked.append(chunk)
                held += len(chunk)
        complete = complete or 0 < size <= held
        profile = inspect_head(b"".join(peeked), name=name, size=size or held, complete=complete,
                               head_bytes=head_bytes)
    except BaseException:
        await _close(source)
        raise
    return InspectedStream(profile, peeked, source)


def inspect_head(raw: bytes, *, name: str, size: int, complete: bool, head_bytes: int = HEAD_BYTES) -> FileProfile:
    """Profile a file from its first bytes ``raw`` (the whole file when ``complete``); see :func:`inspect_stream`."""
    compressed = is_compressed_name(name)
    if not raw:
        raise FileRejected("it is empty (0 bytes)")
    if compressed:
        data, whole, ratio = _gunzip_head(raw, complete=complete, limit=head_bytes)
        if not data:
            raise FileRejected("it is empty once decompressed")
        total = int(size * ratio)
    else:
        whole = complete
        data = raw if complete else raw[:head_bytes]
        total = size
    ext = extension(name)
    if ext == ".xlsx":
        return _excel_profile(data)
    if ext == ".json":
        return _json_profile(data)
    text, encoding = _decode(data, whole=whole)
    profile = _table_profile(text, encoding=encoding, ext=ext, whole=whole, sample_bytes=len(data), total=total)
    return replace(profile, compressed=True) if compressed else profile


def _gunzip_head(raw: bytes, *, complete: bool, limit: int) -> tuple[bytes, bool, float]:
    """Decompress at most ``limit`` bytes of a gzip head; returns them, whether that is the whole content, and
    the decompressed/compressed ratio seen so far (to estimate the full size)."""
    if not raw.startswith(b"\x1f\x8b"):
        raise FileRejected("it is named `.gz` but is not a gzip file")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(raw, limit)
    except zlib.error as exc:
        raise FileRejected("it is named `.gz` but its gzip data is damaged") from exc
    consumed = len(raw) - len(inflater.unconsumed_tail)
    whole = complete and inflater.eof
    ratio = len(data) / consumed if consumed else 1.0
    return data, whole, ratio


def _excel_profile(data: bytes) -> FileProfile:
    if not data.startswith(b"PK\x03\x04"):
        raise FileRejected("it is named `.xlsx` but is not an Excel workbook")
    return FileProfile(kind="excel", encoding="", rows_exact=False)


def _json_profile(data: bytes) -> FileProfile:
    start = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start not in (b"{", b"["):
        raise FileRejected("it is named `.json` but does not start like JSON (`{` or `[`)")
    lines = False
    if start == b"{":
        first, _, rest = data.lstrip(b"\xef\xbb\xbf \t\r\n").partition(b"\n")
        try:
            lines = isinstance(json.loads(first), dict) and rest.lstrip()[:1] == b"{"
        except ValueError:
            lines = False
    return FileProfile(kind="json", encoding="", json_lines=lines)


# --------------------------------------------------------------------------------------------- bytes → text

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive (an Excel or Word file, maybe, renamed)"),
    (b"\x7fELF", "a program (ELF executable)"), (b"MZ\x90\x00", "a Windows program"),
    (b"\x1f\x8b", "a gzip archive (name it `.csv.gz` and I'll read it)"), (b"PAR1", "a Parquet file"),
    (b"SQLite format 3\x00", "an SQLite database"), (b"\xd0\xcf\x11\xe0", "an old Office file (`.xls`/`.doc`)"),
    (b"Rar!\x1a\x07", "a RAR archive"), (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
)
_UTF8_HINT = "save it as CSV UTF-8 and share it again"
_CP1252_ONLY = frozenset(range(0x80, 0xA0)) - {0x81, 0x8D, 0x8F, 0x90, 0x9D}
_OUTSIDE_C1 = bytes(range(0x80)) + bytes(range(0xA0, 0x100))
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_HTML_START = re.compile(r"\s*(<!doctype\s+html|<html|<head|<body)", re.IGNORECASE)


def _binary_kind(data: bytes) -> str | None:
    for magic, what in _MAGIC:
        if data.startswith(magic):
            return what
    return None


def _decode(data: bytes, *, whole: bool) -> tuple[str, str]:
    """The text of ``data`` and its codec; raises :class:`FileRejected` for binary or undecodable bytes."""
    if data.startswith(codecs.BOM_UTF8):
        return _strict(data[3:], "utf-8", whole=whole, label="utf-8-sig"), "utf-8-sig"
    for bom, codec in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            return _strict(data[2:], codec, whole=whole, label=codec), codec
    what = _binary_kind(data)
    if what is not None:
        raise FileRejected(f"it is {what}, not a text table")
    if b"\x00" in data:
        even, odd = data[0::2].count(0), data[1::2].count(0)
        if max(even, odd) > len(data) // 4 and min(even, odd) < max(even, odd) // 10:
            raise FileRejected(f"it looks like UTF-16 text without a byte-order mark; {_UTF8_HINT}")
        raise FileRejected("it looks like binary data, not a text table")
    try:
        text, encoding = codecs.getincrementaldecoder("utf-8")().decode(data, final=whole), "utf-8"
    except UnicodeDecodeError:
        encoding = "cp1252" if _is_cp1252(data) else "latin-1"
        text = data.decode(encoding)
    _check_controls(text)
    return text, encoding


def _strict(data: bytes, codec: str, *, whole: bool, label: str) -> str:
    try:
        text: str = codecs.getincrementaldecoder(codec)().decode(data, final=whole)
    except UnicodeDecodeError as exc:
        shown = _ENCODING_LABELS.get(label, label)
        raise FileRejected(f"it starts with a {shown} marker but is not valid {shown} text; {_UTF8_HINT}") from exc
    _check_controls(text)
    return text


def _is_cp1252(data: bytes) -> bool:
    return _legacy_codec(set(data.translate(None, _OUTSIDE_C1))) == "cp1252"


def _legacy_codec(c1: set[int]) -> str:
    """Bytes 0x80–0x9F (``c1``) are printable in Windows-1252 (``€``, curly quotes) and control codes in Latin-1."""
    return "cp1252" if c1 and c1 <= _CP1252_ONLY else "latin-1"


def _check_controls(text: str) -> None:
    """Text with more than a trace of control characters is binary, or in an encoding we do not know."""
    sample = text[:65536]
    controls = len(_CONTROLS.findall(sample))
    if controls > max(2, len(sample) // 200):
        raise FileRejected("its text is not in an encoding I can read (UTF-8, UTF-16 with a byte-order mark, "
                           f"Windows-1252 or Latin-1); {_UTF8_HINT}")


# --------------------------------------------------------------------------------------------- text → table


def _complete_text(text: str, whole: bool) -> str:
    """The text up to its last line break (the last line of a head may be cut), or all of it when whole."""
    if whole:
        return text
    cut = max(text.rfind("\n"), text.rfind("\r"))
    return text[: cut + 1] if cut >= 0 else text


def _records(text: str, delimiter: str, quotechar: str = '"', limit: int | None = None) -> list[list[str]]:
    """Non-blank records of ``text`` parsed with ``delimiter`` (at most ``limit``)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar=quotechar, strict=False)
    out: list[list[str]] = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                out.append(row)
                if limit is not None and len(out) >= limit:
                    break
    except csv.Error:  # pragma: no cover - csv in non-strict mode hardly raises
        pass
    return out


def _consistency(records: list[list[str]]) -> tuple[float, int]:
    """The share of records that have the most common field count, and that count."""
    if not records:
        return 0.0, 0
    counts = Counter(len(r) for r in records)
    width, seen = counts.most_common(1)[0]
    return seen / len(records), width


def _sniffed(sample: str) -> str | None:
    try:
        return csv.Sniffer().sniff(sample[:32768], delimiters="".join(DELIMITERS)).delimiter
    except csv.Error:
        return None


def _choose_delimiter(text: str) -> tuple[str, float, int]:
    """The delimiter whose records have the most consistent field count (≥ 2 fields); ``csv.Sniffer`` breaks
    ties. Returns the delimiter, the consistency and the width; width 1 means no delimiter was found."""
    scored: list[tuple[float, int, str]] = []
    for delimiter in DELIMITERS:
        share, width = _consistency(_records(text, delimiter, limit=SAMPLE_RECORDS))
        if width >= 2:
            scored.append((round(share, 2), width, delimiter))
    if not scored:
        return ",", 1.0, 1
    best = max(share for share, _, _ in scored)
    ties = [s for s in scored if s[0] == best]
    sniffed = _sniffed(text)
    pick = next((s for s in ties if s[2] == sniffed), ties[0])
    return pick[2], pick[0], pick[1]


_MISSING = frozenset({"", "na", "n/a", "nan", "null", "none", "-", "--", "?"})
_BOOLEANS = frozenset({"true", "false", "yes", "no", "t", "f", "y", "n"})
_INT = {".": re.compile(r"[-+]?(\d{1,3}(,\d{3})+|\d+)"), ",": re.compile(r"[-+]?(\d{1,3}(\.\d{3})+|\d+)")}
_NUM = {
    ".": re.compile(r"[-+]?(\d{1,3}(,\d{3})+|\d+)?\.?\d+([eE][-+]?\d+)?%?"),
    ",": re.compile(r"[-+]?(\d{1,3}(\.\d{3})+|\d+)?,?\d+([eE][-+]?\d+)?%?"),
}
_COMMA_DECIMAL = re.compile(r"[-+]?(\d{1,3}(\.\d{3})+|\d+),\d+")
_DOT_DECIMAL = re.compile(r"[-+]?\d+\.\d+")
_DOT_THOUSANDS = re.compile(r"\d\.\d{3}(?!\d)")
_DATE = re.compile(
    r"(\d{4}[-/.]\d{1,2}([-/.]\d{1,2})?|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{1,2} [A-Za-z]{3,9} \d{4})"
    r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*([AaPp][Mm])?(Z|[-+]\d{2}:?\d{2})?)?"
)


def _cell_type(cell: str, decimal: str) -> ColumnType | None:
    value = cell.strip()
    if value.lower() in _MISSING:
        return None
    if value.lower() in _BOOLEANS:
        return "boolean"
    if _INT[decimal].fullmatch(value):
        return "integer"
    if _NUM[decimal].fullmatch(value):
        return "number"
    if _DATE.fullmatch(value):
        return "date"
    return "text"


def _column_type(cells: Sequence[str], decimal: str) -> ColumnType:
    kinds = {k for k in (_cell_type(c, decimal) for c in cells) if k is not None}
    if not kinds:
        return "text"
    if len(kinds) == 1:
        return kinds.pop()
    return "number" if kinds <= {"integer", "number"} else "text"


def _decimal_marks(body: list[list[str]], delimiter: str) -> tuple[str, str | None]:
    """``(',', '.')`` when numbers look like ``1.234,56`` or ``12,5`` (only when ``,`` is not the delimiter)."""
    if delimiter == ",":
        return ".", None
    cells = [c.strip() for row in body for c in row]
    comma = [c for c in cells if _COMMA_DECIMAL.fullmatch(c)]
    dot = sum(1 for c in cells if _DOT_DECIMAL.fullmatch(c) and not _DOT_THOUSANDS.search(c))
    if not comma or dot > len(comma):
        return ".", None
    thousands = "." if any(_DOT_THOUSANDS.search(c) for c in comma) else None
    return ",", thousands


def _header_row(first: list[str], body: list[list[str]], types: list[ColumnType], decimal: str) -> bool:
    """The first record is a header when none of its cells is a number, date or boolean, and either some column
    below it is typed or its cells are all filled in and distinct (like names)."""
    cells = [c.strip() for c in first]
    if any(_cell_type(c, decimal) not in (None, "text") for c in cells):
        return False
    if any(t != "text" for t in types) or not body:
        return True
    return all(cells) and len(set(cells)) == len(cells)


def _table_profile(text: str, *, encoding: str, ext: str, whole: bool, sample_bytes: int, total: int) -> FileProfile:
    if _HTML_START.match(text):
        raise FileRejected("it is a web page (HTML), not a table: export the data itself as CSV and share that")
    if not text.strip():
        raise FileRejected("it has no data, only blank lines")
    usable = _complete_text(text, whole) or text
    delimiter, share, width = _choose_delimiter(usable)
    if width < 2 and ext in (".txt", ".tab", ".psv"):
        raise FileRejected(f"it is plain text without columns: I read `{ext}` files only when their values are "
                           "separated by `,`, `;`, tab or `|`")
    records = _records(usable, delimiter)
    if not records:
        raise FileRejected("it has no data, only blank lines")
    sample = records[: SAMPLE_RECORDS + 1]
    decimal, thousands = _decimal_marks(sample[1:], delimiter)
    width = max(width, len(sample[0]))
    provisional = [_column_type([r[i] for r in sample[1:] if i < len(r)], decimal) for i in range(width)]
    header = _header_row(sample[0], sample[1:], provisional, decimal)
    body = sample[1:] if header else sample
    types = provisional if header else [_column_type([r[i] for r in body if i < len(r)], decimal)
                                        for i in range(width)]
    data_rows = len(records) - (1 if header else 0)
    if data_rows == 0 and whole:
        raise FileRejected("it has only a header row and no data rows")
    names = ([c.strip() or f"column {i + 1}" for i, c in enumerate(sample[0])] if header else [])
    names += [f"column {i + 1}" for i in range(len(names), width)]
    rows = data_rows
    if not whole:
        parsed = len(usable.encode(_codec_for_length(encoding), errors="replace"))
        rows = max(data_rows, round(len(records) * total / parsed) - (1 if header else 0)) if parsed else data_rows
    return FileProfile(
        kind="table", encoding=encoding, delimiter=delimiter, decimal=decimal, thousands=thousands,
        quoted_newlines=any("\n" in c or "\r" in c for r in records for c in r), ragged=share < 1.0,
        has_header=header, columns=tuple(Column(n, t) for n, t in zip(names, types, strict=False)),
        rows=rows, rows_exact=whole,
    )


def _codec_for_length(encoding: str) -> str:
    return "utf-8" if encoding == "utf-8-sig" else encoding


# --------------------------------------------------------------------------------------------- formula injection

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

    Rows are streamed, twice, never held in a list: a list of millions of rows costs garbage-collection pauses of
    seconds, and building it in one C call holds the interpreter lock throughout (this runs in a worker thread).
    """
    text, codec, bom = _decode_output(data)
    newline = "\r\n" if "\r\n" in text else "\n"

    def rows() -> Iterator[list[str]]:
        return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)

    if not any(is_dangerous_cell(cell) for row in rows() for cell in row):
        return data
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator=newline)
    for row in rows():
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
