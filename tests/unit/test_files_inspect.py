"""Streaming inspection of files (bot.files.inspect_stream) over the generated corpus, and neutralise_csv."""

from __future__ import annotations

import asyncio
import codecs
import gzip
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.files import (
    Column,
    FileProfile,
    FileRejected,
    FilesRefused,
    inspect_head,
    inspect_stream,
    is_dangerous_cell,
    neutralise_csv,
)
from bot.files.readahead import READ_AHEAD_BYTES, ReadAhead
from bot.poster import FileAccessDenied
from tests.data.generate import BAD, GOOD, UNSUPPORTED, ensure_corpus

MB = 1024 * 1024


@pytest.fixture(scope="session")
def corpus() -> Path:
    return ensure_corpus()


async def chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


# name: (encoding, delimiter, decimal, has_header, columns, rows, column types of the first columns)
TABLES: dict[str, tuple[str, str, str, bool, int, int, tuple[str, ...]]] = {
    "comma.csv": ("utf-8", ",", ".", True, 5, 40, ("text", "date", "integer", "number", "boolean")),
    "crlf.csv": ("utf-8", ",", ".", True, 5, 12, ("text", "date", "integer", "number", "boolean")),
    "semicolon_decimal_comma.csv": ("utf-8", ";", ",", True, 4, 30, ("text", "date", "number", "number")),
    "tabs.tsv": ("utf-8", "\t", ".", True, 5, 20, ("text", "date", "integer")),
    "pipes.csv": ("utf-8", "|", ".", True, 5, 20, ("text", "date", "integer")),
    "delimited.txt": ("utf-8", ";", ".", True, 5, 15, ("text", "date", "integer")),
    "compressed.csv.gz": ("utf-8", ",", ".", True, 5, 2000, ("text", "date", "integer")),
    "bom_utf8.csv": ("utf-8-sig", ",", ".", True, 2, 2, ("text", "integer")),
    "utf16le.csv": ("utf-16-le", "\t", ".", True, 2, 2, ("text", "integer")),
    "utf16be.csv": ("utf-16-be", ",", ".", True, 2, 2, ("text", "integer")),
    "latin1.csv": ("latin-1", ";", ".", True, 3, 24, ("text", "text", "integer")),
    "cp1252.csv": ("cp1252", ",", ".", True, 3, 24, ("text", "text", "number")),  # €2.50: a number with a sign
    "quoted_newlines.csv": ("utf-8", ",", ".", True, 3, 12, ("integer", "text", "number")),
    "no_header.csv": ("utf-8", ",", ".", False, 3, 30, ("integer", "integer", "number")),
    "single_column.csv": ("utf-8", ",", ".", True, 1, 8, ("text",)),
    "wide.csv": ("utf-8", ",", ".", True, 300, 10, ("integer", "integer")),
}

REASONS: dict[str, str] = {
    "empty.csv": "it is empty (0 bytes)",
    "blank_lines.csv": "it has no data, only blank lines",
    "header_only.csv": "it has only a header row and no data rows",
    "png_disguised.csv": "it is a PNG image, not a text table",
    "zip_disguised.csv": "it is a ZIP archive (an Excel or Word file, maybe, renamed), not a text table",
    "elf_disguised.csv": "it is a program (ELF executable), not a text table",
    "random_bytes.csv": "it looks like binary data, not a text table",
    "page.csv": "it is a web page (HTML), not a table: export the data itself as CSV and share that",
    "utf16_nobom.csv": "it looks like UTF-16 text without a byte-order mark; save it as CSV UTF-8 and share it again",
    "shift_jis.csv": ("its text is not in an encoding I can read (UTF-8, UTF-16 with a byte-order mark, or a "
                      "single-byte code page such as Windows-1252 or Windows-1251); save it as CSV UTF-8 and share "
                      "it again"),
    "prose.txt": ("it is plain text without columns: I read `.txt` files only when their values are separated by "
                  "`,`, `;`, tab, `|` or blanks, or aligned in columns"),
    "fake.xlsx": "it is named `.xlsx` but is not an Excel workbook",
    "broken.json": "it is named `.json` but does not start like JSON (`{` or `[`)",
    "not_gzip.csv.gz": "it is named `.gz` but is not a gzip file",
    "empty_inside.csv.gz": "it is empty once decompressed",
}


def test_the_corpus_covers_every_case(corpus: Path) -> None:
    assert set(TABLES) | {"workbook.xlsx", "records.json", "lines.json"} == set(GOOD)
    assert set(REASONS) == set(BAD)
    assert len(GOOD) + len(BAD) + len(UNSUPPORTED) >= 25
    assert all((corpus / name).stat().st_size < 64 * 1024 for name in GOOD | BAD | UNSUPPORTED)


@pytest.mark.parametrize("name", sorted(TABLES))
@pytest.mark.parametrize("chunk", [1, 7, 64 * 1024])
async def test_good_tables_are_detected_and_passed_through_byte_for_byte(corpus: Path, name: str, chunk: int) -> None:
    data = (corpus / name).read_bytes()
    stream = await inspect_stream(chunked(data, chunk), name=name, size=len(data))
    profile = stream.profile
    assert await collect(stream) == data
    encoding, delimiter, decimal, header, width, rows, types = TABLES[name]
    assert (profile.kind, profile.encoding, profile.delimiter, profile.decimal) == ("table", encoding, delimiter,
                                                                                   decimal)
    assert (profile.has_header, len(profile.columns), profile.rows, profile.rows_exact) == (header, width, rows, True)
    assert tuple(c.type for c in profile.columns[: len(types)]) == types
    assert profile.compressed == name.endswith(".gz")


@pytest.mark.parametrize("name", ["workbook.xlsx", "records.json", "lines.json"])
async def test_workbooks_and_json_held_whole_get_their_columns(corpus: Path, name: str) -> None:
    data = (corpus / name).read_bytes()
    stream = await inspect_stream(chunked(data, 100), name=name, size=len(data))
    profile = stream.profile
    assert await collect(stream) == data
    expected = {"workbook.xlsx": "pandas.read_excel('/d/x')", "records.json": "pandas.read_json('/d/x')",
                "lines.json": "pandas.read_json('/d/x', lines=True)"}[name]
    assert profile.read_call("/d/x") == expected
    assert profile.columns and profile.rows_exact and profile.rows > 0


@pytest.mark.parametrize("name", ["workbook.xlsx", "records.json"])
async def test_workbooks_and_json_too_large_to_hold_get_a_minimal_profile(corpus: Path, name: str) -> None:
    data = (corpus / name).read_bytes()
    profile = inspect_head(data[:200], name=name, size=len(data) + 20 * MB, complete=False, head_bytes=200)
    assert profile.columns == () and profile.kind == ("excel" if name.endswith(".xlsx") else "json")


@pytest.mark.parametrize("name", sorted(REASONS))
async def test_bad_files_are_refused_with_a_reason_and_the_source_is_closed(corpus: Path, name: str) -> None:
    data = (corpus / name).read_bytes()
    closed: list[bool] = []

    async def source() -> AsyncIterator[bytes]:
        try:
            for start in range(0, max(len(data), 1), 5):
                if data[start:start + 5]:
                    yield data[start:start + 5]
        finally:
            closed.append(True)

    with pytest.raises(FileRejected) as info:
        await inspect_stream(source(), name=name, size=len(data))
    assert info.value.reason == REASONS[name]
    assert closed == [True]


def test_facts_and_preview_say_how_to_read_the_file(corpus: Path) -> None:
    data = (corpus / "semicolon_decimal_comma.csv").read_bytes()
    profile = inspect_head(data, name="umsatz.csv", size=len(data), complete=True)
    assert profile.facts("/mnt/data/u.csv") == (
        "read with pandas.read_csv('/mnt/data/u.csv', sep=';', decimal=',', thousands='.'); 4 columns: "
        "Region (text), Datum (date), Umsatz (number), Anteil (number); 30 rows")
    assert profile.preview("umsatz.csv", len(data)) == (
        "`umsatz.csv`: 30 rows × 4 columns, `;`-separated, UTF-8, decimal `,`, header row: `Region` (text), "
        "`Datum` (date), `Umsatz` (number), `Anteil` (number)\n"
        "      read with `pandas.read_csv('umsatz.csv', sep=';', decimal=',', thousands='.')`")
    cp = (corpus / "cp1252.csv").read_bytes()
    facts = inspect_head(cp, name="p.csv", size=len(cp), complete=True).facts("/p.csv")
    assert facts.startswith("read with pandas.read_csv('/p.csv', encoding='cp1252'); text encoding Windows-1252;")
    tsv = (corpus / "utf16le.csv").read_bytes()
    assert inspect_head(tsv, name="u.csv", size=len(tsv), complete=True).read_call("/u.csv") == (
        "pandas.read_csv('/u.csv', sep='\\t', encoding='utf-16')")
    nohead = (corpus / "no_header.csv").read_bytes()
    assert "header=None" in inspect_head(nohead, name="n.csv", size=len(nohead), complete=True).facts()
    quoted = (corpus / "quoted_newlines.csv").read_bytes()
    assert "quoted fields contain line breaks" in inspect_head(quoted, name="q.csv", size=99, complete=True).facts()


def test_a_wide_file_lists_the_first_columns_and_counts_the_rest(corpus: Path) -> None:
    data = (corpus / "wide.csv").read_bytes()
    profile = inspect_head(data, name="wide.csv", size=len(data), complete=True)
    assert "m39 (integer), and 260 more; 10 rows" in profile.facts()
    assert profile.preview("wide.csv", len(data)).splitlines()[0].endswith("`m7` (integer), … (292 more)")


def row_stream(total: int, chunk: int = MB) -> Iterator[bytes]:
    """A CSV of ``total`` bytes made lazily, a fresh ``chunk`` at a time (lines of exactly 32 bytes)."""
    header = b"id,region,value,month".ljust(31, b" ") + b"\n"
    block = b"".join(b"%07d,North,%9.3f,2025-%02d\n" % (i, i / 7, i % 12 + 1) for i in range(chunk // 32))
    yield header
    sent, n = len(header), 0
    while sent < total:
        fresh = block.replace(b"North", (b"South", b"North")[n % 2])[: total - sent]  # a new object every time
        sent, n = sent + len(fresh), n + 1
        yield fresh


async def lazy(blocks: Iterator[bytes]) -> AsyncIterator[bytes]:
    for block in blocks:
        yield block


async def test_a_large_stream_is_inspected_in_constant_memory_and_rows_are_estimated() -> None:
    total = 256 * MB
    pulled: list[int] = []

    async def source() -> AsyncIterator[bytes]:
        async for block in lazy(row_stream(total)):
            pulled.append(len(block))
            yield block

    tracemalloc.start()
    try:
        stream = await inspect_stream(source(), name="big.csv", size=total)
        profile = stream.profile
        # the head, the read-ahead's bound and at most one chunk more
        assert sum(pulled) <= max(256 * 1024, READ_AHEAD_BYTES) + MB + 32
        received = 0
        async for chunk in stream:
            received += len(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert received == sum(pulled) and received > 255 * MB
    assert peak < 12 * MB + READ_AHEAD_BYTES, f"peak {peak / MB:.1f} MB"  # constant: the read-ahead is bounded
    assert not profile.rows_exact and abs(profile.rows - total // 32) < total // 32 // 50
    assert profile.preview("big.csv", total).startswith("`big.csv`: about 8,400,000 rows × 4 columns")


async def test_gzip_is_decompressed_for_the_head_and_uploaded_as_it_is() -> None:
    raw = b"".join(row_stream(24 * MB))
    packed = gzip.compress(raw, compresslevel=1, mtime=0)
    del raw
    stream = await inspect_stream(chunked(packed, 256 * 1024), name="big.csv.gz", size=len(packed))
    profile = stream.profile
    assert await collect(stream) == packed
    assert profile.compressed and not profile.rows_exact
    assert abs(profile.rows - 24 * MB // 32) < 24 * MB // 32 // 10
    assert profile.read_call("/x.csv.gz") == "pandas.read_csv('/x.csv.gz', compression='gzip')"


async def test_a_small_head_estimates_and_the_whole_file_in_hand_counts_exactly(corpus: Path) -> None:
    data = (corpus / "comma.csv").read_bytes()
    stream = await inspect_stream(chunked(data, 100), name="comma.csv", size=len(data), head_bytes=300)
    profile = stream.profile
    assert await collect(stream) == data
    assert not profile.rows_exact and 30 <= profile.rows <= 50
    exact = (await inspect_stream(chunked(data, 100), name="comma.csv", size=len(data))).profile
    assert exact.rows_exact and exact.rows == 40


@pytest.mark.parametrize("chunk", [1, 1000, 64 * 1024])
@pytest.mark.parametrize(("tail", "encoding"), [
    (b"M\xfcnchen,\x80\n", "cp1252"),  # Windows-1252: "€" at 0x80
    (b"M\xfcnchen,\x81\n", "latin-1"),  # 0x81 is no character in Windows-1252
    (b"M\xc3\xbcnchen,\xe2\x82\xac\n", "utf-8"),  # real UTF-8, split across chunks when chunk is 1 or 1000
    (b"cut,\xe2\x82", "cp1252"),  # a UTF-8 sequence cut by the end of the file: "â‚" in Windows-1252
])
@pytest.mark.parametrize("name", ["late.csv", "late.csv.gz"])
async def test_the_encoding_covers_the_whole_stream_not_only_its_head(chunk: int, tail: bytes, encoding: str,
                                                                       name: str) -> None:
    data = b"id,city\n" + b"".join(b"%07d,Berlin\n" % i for i in range(10_000)) + tail  # 150 KB: chunks hold the head
    if name.endswith(".gz"):  # two gzip members, the tail in the second: the check goes on past the first
        data = gzip.compress(data[:-len(tail)], mtime=0) + gzip.compress(tail, mtime=0)
    stream = await inspect_stream(chunked(data, chunk), name=name, size=len(data), head_bytes=1024)
    assert stream.profile.encoding == "utf-8"  # all the head showed
    assert await collect(stream) == data
    assert stream.profile.encoding == encoding
    assert stream.profile.columns == (Column("id", "integer"), Column("city", "text"))


@pytest.mark.parametrize("chunk", [1, 100])
async def test_utf8_text_with_a_stray_byte_stays_utf8(chunk: int) -> None:
    body = b"1,x\n" * 500 + b"2,\xfc\n"
    cases = {"bom.csv": codecs.BOM_UTF8 + b"a,b\n" + body,  # a byte-order mark says UTF-8 for sure
             "umlaut.csv": "a,Straße\n".encode() + body,  # so does a UTF-8 character before the stray byte
             "umlaut.csv.gz": gzip.compress("a,Straße\n".encode() + body)}  # compressed: checked as it inflates
    for name, data in cases.items():
        stream = await inspect_stream(chunked(data, chunk), name=name, size=len(data), head_bytes=512)
        before = stream.profile
        assert await collect(stream) == data
        assert stream.profile == replace(before, options=replace(before.options, encoding_errors="replace"))
        assert "encoding_errors='replace'" in stream.profile.read_call("/p")
        assert "a few bytes are not valid UTF-8 and read as �" in stream.profile.facts()
        assert ", a few bytes not UTF-8, " in stream.profile.preview(name, len(data))


async def test_the_read_ahead_runs_ahead_of_the_consumer_within_its_bound_and_closes_its_source() -> None:
    pulled: list[int] = []
    closed: list[bool] = []

    async def source() -> AsyncIterator[bytes]:
        try:
            for _ in range(64):
                pulled.append(1)
                yield b"x" * 100_000
        finally:
            closed.append(True)

    ahead = ReadAhead(source(), limit=1_000_000)
    for _ in range(50):  # the consumer is slow: the download goes on meanwhile, up to the bound
        await asyncio.sleep(0)
    assert 10 <= len(pulled) <= 11 and ahead.held <= 1_000_000 + 100_000
    assert len(await anext(ahead)) == 100_000
    await ahead.aclose()
    assert closed == [True] and ahead.held == 0


async def test_the_read_ahead_hands_a_source_error_over_in_stream_order() -> None:
    async def failing() -> AsyncIterator[bytes]:
        yield b"first"
        raise FileAccessDenied("file_access_denied", method="download")

    ahead = ReadAhead(failing())
    assert await anext(ahead) == b"first"
    with pytest.raises(FileAccessDenied):
        await anext(ahead)
    await ahead.aclose()


async def test_a_file_built_to_be_slow_to_inspect_never_holds_the_event_loop() -> None:
    # 222 KB: 110,000 one-character header cells and one row (it held the loop 4.9 s when inspected on it)
    data = (",".join("x" for _ in range(110_000)) + "\n").encode() + (",".join("1" for _ in range(110_000))).encode()
    gaps: list[float] = []
    done = asyncio.Event()

    async def heartbeat() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    beat = asyncio.create_task(heartbeat())
    stream = await inspect_stream(chunked(data, 64 * 1024), name="cells.csv", size=len(data))
    assert await collect(stream) == data
    done.set()
    await beat
    assert max(gaps) < 0.25, f"the loop was held {max(gaps):.2f} s"
    profile = stream.profile
    assert profile.width == 110_000 and len(profile.columns) == 1000 and profile.capped
    assert "110,000 columns" in profile.preview("cells.csv", len(data))
    assert "only the first 1,000 columns inspected" in profile.preview("cells.csv", len(data))


async def test_errors_of_the_source_propagate() -> None:
    async def denied() -> AsyncIterator[bytes]:
        raise FileAccessDenied("file_access_denied", method="download")
        yield b""  # pragma: no cover

    with pytest.raises(FileAccessDenied):
        await inspect_stream(denied(), name="a.csv", size=10)


def test_refusal_messages() -> None:
    rejected = FileRejected("it is empty (0 bytes)", name="e.csv")
    assert rejected.message == "I can't analyse `e.csv`: it is empty (0 bytes)."
    assert FilesRefused([("e.csv", "it is empty")]).message == "I can't analyse `e.csv`: it is empty."
    assert FilesRefused([("a.csv", "x"), ("b.csv", "y")]).message == (
        "I can't analyse these files:\n• `a.csv`: x\n• `b.csv`: y")
    assert FilesRefused([]).message.startswith("There is no data in this thread that I could read.")


def test_profiles_are_frozen_values() -> None:
    profile = FileProfile()
    with pytest.raises(AttributeError):
        profile.rows = 3  # type: ignore[misc]


# ------------------------------------------------------------------------------------------ formula injection


@pytest.mark.parametrize(("cell", "dangerous"), [
    ("=SUM(A1:A2)", True), ("+cmd|' /C calc'!A0", True), ("-2+3", True), ("@SUM(1)", True),
    ("  =1+1", True), ("\n=1", True), ("\tx", True), ("\rx", True), ("-", True),
    ("-12.5", False), ("+3", False), ("-1e5", False), ("-0,5", False), ("12", False), ("", False),
    ("a=b", False), ("North", False), ("-12.5%", False),
])
def test_dangerous_cells(cell: str, dangerous: bool) -> None:
    assert is_dangerous_cell(cell) is dangerous


def test_neutralise_csv_prefixes_formulas_and_keeps_numbers() -> None:
    data = b'name,value,note\r\nA,-12.5,=HYPERLINK("http://x")\r\nB,+3,@SUM(1)\r\nC,4," -1+1"\r\n'
    assert neutralise_csv(data) == (b'name,value,note\r\nA,-12.5,"\'=HYPERLINK(""http://x"")"\r\n'
                                    b"B,+3,'@SUM(1)\r\nC,4,' -1+1\r\n")


def test_neutralise_csv_leaves_safe_files_byte_for_byte() -> None:
    data = b'"a","b"\n"1","-2.5"\n"x, y","z"'
    assert neutralise_csv(data) is data


def test_neutralise_tsv_keeps_bom_encoding_and_missing_final_newline() -> None:
    data = "\ufeffa\tb\n=1\tcafé".encode("utf-8-sig")
    assert neutralise_csv(data, delimiter="\t") == "\ufeffa\tb\n'=1\tcafé".encode("utf-8-sig")
    latin = "a;b\n=1;é\n".encode("latin-1")
    assert neutralise_csv(latin, delimiter=";") == "a;b\n'=1;é\n".encode("latin-1")
