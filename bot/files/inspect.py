"""The stream inspection: a download's first bytes decide what the file is and how to read it, and every byte
then goes on to the sandbox unchanged.

:func:`inspect_stream` reads only the first chunks of the download (``head_bytes``, 256 KiB by default, plus at
most one more chunk; a whole small Excel workbook), decides what the file is (:func:`inspect_head`, run in a
worker thread so the event loop stays free whatever the file holds), and hands back an :class:`InspectedStream`:
the peeked bytes, then the rest of the stream *unchanged*, with the file's :class:`~bot.files.profile.FileProfile`.
Files go into the sandbox byte for byte as Slack served them, in constant memory; the file is never rewritten.
Empty, header-only, binary, HTML and undecodable files raise :class:`~bot.files.refusals.FileRejected` with a
reason for the thread. A gzip file's head is decompressed to inspect it; the rest is inflated as it streams past
(in a worker thread, in bounded pieces) only to check its encoding, and goes on compressed.
"""

from __future__ import annotations

import asyncio
import codecs
import io
import json
import logging
import zlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from bot.files.encoding import decode_head, non_ascii_sample, single_byte_codec
from bot.files.options import ReadOptions
from bot.files.profile import FileProfile
from bot.files.readahead import ReadAhead
from bot.files.refusals import FileRejected, extension, is_compressed_name
from bot.files.tables import SAMPLE_RECORDS, Column, sniff_table
from bot.files.values import MAX_COLUMNS, ColumnType, column_type

logger = logging.getLogger(__name__)

HEAD_BYTES = 256 * 1024
"""How much of a file (decompressed, for gzip) :func:`inspect_stream` looks at."""
EXCEL_HEAD_BYTES = 16 * 1024 * 1024
"""A workbook is a ZIP archive read from its end: one up to this size is held whole to list its sheets."""
LEGACY_SAMPLE = 64 * 1024
"""Bytes around the non-ASCII characters of a stream kept to name its code page once it turns out not UTF-8."""
INFLATE_PIECE = 1024 * 1024
"""At most this much of a gzip stream is decompressed at once to check its encoding (memory stays bounded)."""
GZIP_WBITS = 16 + zlib.MAX_WBITS


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
    on row 90,000) is re-labelled with the code page its non-ASCII lines show (named off the event loop); a text
    that already had UTF-8 characters or a UTF-8 byte-order mark stays UTF-8, with its few stray bytes read as ``�``.
    """

    def __init__(self, profile: FileProfile, peeked: list[bytes], source: AsyncIterator[bytes]) -> None:
        self.profile = profile
        self._peeked = peeked
        self._source = source
        checked = profile.kind == "table" and profile.encoding in ("utf-8", "utf-8-sig")
        self._utf8 = codecs.getincrementaldecoder("utf-8")() if checked else None
        self._inflater = zlib.decompressobj(GZIP_WBITS) if checked and profile.compressed else None
        """A gzip file's text is checked as it inflates."""
        self._multibyte = profile.encoding == "utf-8-sig"  # UTF-8 characters seen (or a BOM): UTF-8 for sure
        self._legacy: list[bytes] | None = None
        """Once an ASCII text turned out not to be UTF-8: lines with its non-ASCII bytes, to name the code page."""

    def __aiter__(self) -> InspectedStream:
        return self

    async def __anext__(self) -> bytes:
        if self._peeked:
            chunk = self._peeked.pop(0)
        else:
            try:
                chunk = await anext(self._source)
            except StopAsyncIteration:
                if self._inflater is None or self._checking:
                    self._check(b"", final=True)
                if self._legacy is not None:
                    await self._relabel()
                await self.aclose()
                raise
        if self._inflater is None:
            self._check(chunk)
        elif self._checking:
            await asyncio.to_thread(self._inflate, chunk)  # zlib lets go of the GIL: the event loop stays free
        return chunk

    async def aclose(self) -> None:
        """Release the head and close the source (idempotent)."""
        self._peeked.clear()
        await _close(self._source)

    @property
    def _checking(self) -> bool:
        """Whether the text is still being checked (UTF-8 so far, or a code page sample still short)."""
        return self._utf8 is not None or (
            self._legacy is not None and sum(len(part) for part in self._legacy) < LEGACY_SAMPLE)

    def _inflate(self, chunk: bytes) -> None:
        """Check the text that ``chunk`` of a gzip stream holds, decompressed a bounded piece at a time."""
        data = chunk
        while data and self._checking and self._inflater is not None:
            inflater = self._inflater
            try:
                piece = inflater.decompress(data, INFLATE_PIECE)
            except zlib.error:  # damaged past its head: reading it in the sandbox says so
                self._inflater, self._utf8, self._legacy = None, None, None
                logger.info("gzip data damaged past its head; encoding check stopped")
                return
            self._check(piece)
            data = inflater.unconsumed_tail
            if inflater.eof:  # a multi-member gzip goes on with its next member
                data = inflater.unused_data
                self._inflater = zlib.decompressobj(GZIP_WBITS) if data else inflater

    async def _relabel(self) -> None:
        sample = b"".join(self._legacy or ())
        self._legacy = None
        codec, certain = await asyncio.to_thread(single_byte_codec, sample)
        options = replace(self.profile.options, encoding=codec)
        self.profile = replace(self.profile, encoding=codec, encoding_certain=certain, options=options)
        logger.info("text is not utf-8 past its head encoding=%s certain=%s", codec, certain)

    def _check(self, chunk: bytes, *, final: bool = False) -> None:
        if self._legacy is not None:
            held = sum(len(part) for part in self._legacy)
            if held < LEGACY_SAMPLE and not chunk.isascii():
                self._legacy.append(non_ascii_sample(chunk, LEGACY_SAMPLE - held))
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
                self.profile = replace(self.profile, options=replace(self.profile.options, encoding_errors="replace"))
                logger.info("utf-8 text has stray bytes past its head")
            else:
                self._legacy = []
                self._check(pending + chunk, final=final)
            return
        self._multibyte = self._multibyte or not text.isascii()


async def inspect_stream(
    chunks: AsyncIterator[bytes], *, name: str, size: int, head_bytes: int = HEAD_BYTES,
) -> InspectedStream:
    """Read the first chunks of ``chunks`` (until ``head_bytes`` are in hand: at most one chunk more; a small Excel
    workbook whole), detect what the file is, and return an iterator over *all* the bytes, unchanged, that carries
    the file's profile. The detection runs in a worker thread: a file built to be slow to inspect (110,000 header
    cells) never holds the event loop. ``chunks`` is pulled by a :class:`~bot.files.readahead.ReadAhead`, so the
    download runs ahead of the upload by about a MB at most.

    Raises :class:`FileRejected` (after closing ``chunks``) for files the analysis cannot read; errors of the
    source itself (``FileAccessDenied``...) propagate. ``size`` is Slack's byte count (0 when unknown), used to
    estimate the rows of large files.
    """
    source = ReadAhead(aiter(chunks))
    peeked: list[bytes] = []
    held = 0
    complete = False
    excel = extension(name) in (".xlsx", ".xlsm") and 0 < size <= EXCEL_HEAD_BYTES
    limit = max(head_bytes, size) if excel else head_bytes
    try:
        while held < limit:
            try:
                chunk = await anext(source)
            except StopAsyncIteration:
                complete = True
                break
            if chunk:
                peeked.append(chunk)
                held += len(chunk)
        complete = complete or 0 < size <= held
        profile = await asyncio.to_thread(inspect_head, b"".join(peeked), name=name, size=size or held,
                                          complete=complete, head_bytes=head_bytes)
    except BaseException:
        await _close(source)
        raise
    return InspectedStream(profile, peeked, source)


def inspect_head(raw: bytes, *, name: str, size: int, complete: bool, head_bytes: int = HEAD_BYTES) -> FileProfile:
    """Profile a file from its first bytes ``raw`` (the whole file when ``complete``); see :func:`inspect_stream`.
    CPU-bound (bounded by ``head_bytes`` and the caps of :mod:`bot.files.tables`): call it off the event loop."""
    compressed = is_compressed_name(name)
    if not raw:
        raise FileRejected("it is empty (0 bytes)")
    ext = extension(name)
    if ext in (".xlsx", ".xlsm"):
        return _excel_profile(raw, complete=complete)
    if compressed:
        data, whole, ratio = _gunzip_head(raw, complete=complete, limit=head_bytes)
        if not data:
            raise FileRejected("it is empty once decompressed")
        total = int(size * ratio)
    else:
        whole = complete
        data = raw if complete else raw[:head_bytes]
        total = size
    gzip = "gzip" if compressed else None
    if ext in (".json", ".jsonl", ".ndjson"):
        return _json_profile(data, whole=whole, compression=gzip, lines_name=ext != ".json")
    decoded = decode_head(data, whole=whole)
    table = sniff_table(decoded.text, ext=ext, whole=whole)
    rows = table.rows
    if not whole:
        usable = len(data)
        rows = max(rows, round(rows * total / usable)) if usable else rows
    options = ReadOptions(
        format="fwf" if table.colspecs else "csv", encoding=_pandas_codec(decoded.encoding),
        sep=table.sep if not table.colspecs else ",", decimal=table.decimal, thousands=table.thousands,
        quotechar=table.quotechar, header=0 if table.has_header else None, skiprows=table.skiprows,
        skipfooter=table.skipfooter, colspecs=table.colspecs, compression=gzip,
    )
    return FileProfile(
        kind="table", options=options, encoding=decoded.encoding, encoding_certain=decoded.certain,
        columns=table.columns, width=table.width, rows=rows, rows_exact=whole, quoted_newlines=table.quoted_newlines,
        ragged=table.ragged, index_column=table.index_column,
    )


def _pandas_codec(encoding: str) -> str:
    """``utf-16`` reads either byte order from the BOM."""
    return "utf-16" if encoding.startswith("utf-16") else encoding


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


# ------------------------------------------------------------------------------------------------- Excel


def _excel_profile(data: bytes, *, complete: bool) -> FileProfile:
    """A workbook held whole: its sheets, the first one with a table, the row its header is on, its columns."""
    if not data.startswith(b"PK\x03\x04"):
        raise FileRejected("it is named `.xlsx` but is not an Excel workbook")
    if not complete:
        return FileProfile(kind="excel", options=ReadOptions(format="excel"), encoding="")
    import openpyxl  # a dependency; imported here because only workbooks need it

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, KeyError, InvalidFileException...: not a readable workbook
        raise FileRejected("it is named `.xlsx` but is not an Excel workbook I can open") from exc
    try:
        sheets = tuple(str(s) for s in book.sheetnames)
        for sheet in sheets:
            rows = [list(r[:MAX_COLUMNS]) for r in book[sheet].iter_rows(max_row=SAMPLE_RECORDS, values_only=True)]
            start = next((i for i, r in enumerate(rows) if sum(v is not None for v in r) >= 2), None)
            if start is None:
                continue
            header, body = rows[start], rows[start + 1:]
            if not body:
                continue
            options = ReadOptions(format="excel", sheet_name=sheet if sheet != sheets[0] else 0, skiprows=start)
            columns = tuple(Column(str(h) if h is not None else f"column {i + 1}", _excel_type([r[i] for r in body
                                   if i < len(r)])) for i, h in enumerate(header))
            return FileProfile(kind="excel", options=options, encoding="", columns=columns, width=len(header),
                               rows=book[sheet].max_row - start - 1 if book[sheet].max_row else len(body),
                               rows_exact=True, sheets=sheets)
    finally:
        book.close()
    raise FileRejected("its sheets hold no table (no sheet has a row of names with rows of values below)")


def _excel_type(values: list[Any]) -> ColumnType:
    kinds = set()
    for v in values:
        if v is None:
            continue
        if isinstance(v, bool):
            kinds.add("boolean")
        elif isinstance(v, int):
            kinds.add("integer")
        elif isinstance(v, float):
            kinds.add("number")
        elif isinstance(v, datetime | date):
            kinds.add("date")
        else:
            return column_type([str(x) for x in values if x is not None])[0]
    if kinds <= {"integer", "number"} and kinds:
        return "number" if "number" in kinds else "integer"
    return kinds.pop() if len(kinds) == 1 else "text"  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------------- JSON


def _json_profile(data: bytes, *, whole: bool, compression: str | None, lines_name: bool) -> FileProfile:
    """JSON records (an array of objects, or an object of columns) or JSON Lines; anything else is refused when the
    whole document is in hand."""
    body = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    start = body[:1]
    if start not in (b"{", b"["):
        raise FileRejected("it is named `.json` but does not start like JSON (`{` or `[`)")
    first, _, rest = body.partition(b"\n")
    lines = lines_name and start == b"{"
    if start == b"{" and not lines:
        try:
            lines = isinstance(json.loads(first), dict) and rest.lstrip()[:1] == b"{"
        except ValueError:
            lines = False
    options = ReadOptions(format="json", lines=lines, compression=compression)
    records = _json_records(body, lines=lines, whole=whole)
    if records is None:
        return FileProfile(kind="json", options=options, encoding="")
    if not records:
        raise FileRejected("it is JSON but not a table: I read a list of records (objects) or JSON Lines")
    names: dict[str, None] = {}
    for record in records[:SAMPLE_RECORDS]:
        names.update(dict.fromkeys(str(k) for k in record))
    columns = tuple(Column(n, _json_type([r.get(n) for r in records[:SAMPLE_RECORDS]]))
                    for n in list(names)[:MAX_COLUMNS])
    return FileProfile(kind="json", options=options, encoding="", columns=columns, width=len(names),
                       rows=len(records), rows_exact=whole)


def _json_records(body: bytes, *, lines: bool, whole: bool) -> list[dict[str, Any]] | None:
    """The records of a JSON head (``None`` when they cannot be told from the head); ``[]`` for no table."""
    if lines:
        text = body.decode("utf-8", errors="replace")
        if not whole:
            text = text[: text.rfind("\n") + 1]
        out: list[dict[str, Any]] = []
        for line in text.splitlines():
            if line.strip():
                try:
                    value = json.loads(line)
                except ValueError:
                    raise FileRejected("it is named as JSON Lines but a line is not JSON") from None
                if isinstance(value, dict):
                    out.append(value)
        return out
    if not whole:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        raise FileRejected("it is named `.json` but is not valid JSON") from None
    if isinstance(document, list) and document and all(isinstance(r, dict) for r in document[:SAMPLE_RECORDS]):
        return document
    if isinstance(document, dict) and document and all(isinstance(v, dict | list) for v in document.values()):
        columns = {str(k): (list(v.values()) if isinstance(v, dict) else v) for k, v in document.items()}
        length = max(len(v) for v in columns.values())
        return [{k: (v[i] if i < len(v) else None) for k, v in columns.items()} for i in range(length)]
    return []


def _json_type(values: list[Any]) -> ColumnType:
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return "boolean"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "integer"
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return "number"
    return column_type([str(v) for v in present])[0] if present else "text"

