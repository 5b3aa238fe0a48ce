"""Bytes → text: what a file's bytes are (a table's text, or an image, an archive, a program...) and its encoding.

The fast checks decide most files: a byte-order mark (UTF-8, UTF-16 LE/BE), else strict UTF-8. A text that is
not UTF-8 is in a single-byte code page, among those a table plausibly comes in (:data:`SINGLE_BYTE`). Each
one's reading is judged word by word (a word that mixes Latin and Cyrillic letters, a Latin word made only of
accented letters, a lower-case letter followed by a capital are what a wrong code page produces); between code
pages that read the text identically the more common one is named (Windows-1252, or Latin-1 when the text has
no byte that only Windows-1252 defines). When plausible code pages read the text differently,
`charset-normalizer`_ (restricted to the same code pages) decides by the language its reading makes; unless it
clearly prefers one, the choice is reported as uncertain (the preview says so). UTF-16 without a byte-order
mark and text full of control characters are refused.

.. _charset-normalizer: https://github.com/jawah/charset_normalizer
"""

from __future__ import annotations

import codecs
import itertools
import re
import unicodedata
from dataclasses import dataclass

import charset_normalizer

from bot.files.refusals import FileRejected

LABELS = {
    "utf-8": "UTF-8", "utf-8-sig": "UTF-8 with BOM", "utf-16-le": "UTF-16 LE", "utf-16-be": "UTF-16 BE",
    "cp1252": "Windows-1252", "latin-1": "Latin-1", "cp1250": "Windows-1250 (Central European)",
    "cp1251": "Windows-1251 (Cyrillic)", "cp1253": "Windows-1253 (Greek)", "cp1254": "Windows-1254 (Turkish)",
    "cp1255": "Windows-1255 (Hebrew)", "cp1256": "Windows-1256 (Arabic)", "cp1257": "Windows-1257 (Baltic)",
    "koi8-r": "KOI8-R (Cyrillic)",
}
SINGLE_BYTE = ("cp1252", "latin-1", "cp1250", "cp1251", "cp1253", "cp1254", "cp1257", "koi8-r", "cp1255", "cp1256")
"""The code pages considered for a text that is not UTF-8, most common first (the order breaks ties)."""
LANGUAGE_PAGES = {
    **dict.fromkeys(("English", "French", "German", "Spanish", "Portuguese", "Italian", "Dutch", "Danish",
                     "Swedish", "Norwegian", "Finnish", "Catalan", "Icelandic"), "cp1252"),
    **dict.fromkeys(("Czech", "Polish", "Slovak", "Hungarian", "Slovene", "Croatian", "Romanian"), "cp1250"),
    **dict.fromkeys(("Russian", "Ukrainian", "Bulgarian", "Serbian", "Belarusian", "Macedonian"), "cp1251"),
    "Greek": "cp1253", "Turkish": "cp1254", "Hebrew": "cp1255", "Arabic": "cp1256", "Farsi": "cp1256",
    **dict.fromkeys(("Lithuanian", "Latvian", "Estonian"), "cp1257"),
}
"""The Windows code page of each language charset-normalizer names."""
DETECT_BYTES = 64 * 1024
MIN_EVIDENCE = 20
"""Non-ASCII bytes below which no language can be told: the most common plausible code page is named, uncertain."""
UTF8_HINT = "save it as CSV UTF-8 and share it again"
UNREADABLE = ("its text is not in an encoding I can read (UTF-8, UTF-16 with a byte-order mark, or a single-byte "
              f"code page such as Windows-1252 or Windows-1251); {UTF8_HINT}")

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive (an Excel or Word file, maybe, renamed)"),
    (b"\x7fELF", "a program (ELF executable)"), (b"MZ\x90\x00", "a Windows program"),
    (b"\x1f\x8b", "a gzip archive (name it `.csv.gz` and I'll read it)"), (b"PAR1", "a Parquet file"),
    (b"SQLite format 3\x00", "an SQLite database"), (b"\xd0\xcf\x11\xe0", "an old Office file (`.xls`/`.doc`)"),
    (b"Rar!\x1a\x07", "a RAR archive"), (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
)
_CP1252_ONLY = frozenset(range(0x80, 0xA0)) - {0x81, 0x8D, 0x8F, 0x90, 0x9D}
OUTSIDE_C1 = bytes(range(0x80)) + bytes(range(0xA0, 0x100))
"""``bytes.translate(None, OUTSIDE_C1)`` keeps only the bytes 0x80–0x9F."""
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_WORD = re.compile(r"[^\W\d_]+")
_NON_ASCII = re.compile(rb"[\x80-\xff]")


@dataclass(frozen=True, slots=True)
class Decoded:
    """The text of a head and how it was decoded."""

    text: str
    encoding: str
    """``utf-8``, ``utf-8-sig``, ``utf-16-le``, ``utf-16-be``, ``cp1252``, ``latin-1``, ``cp1251``..."""
    certain: bool = True
    """False when another plausible code page reads the text differently."""


def label(encoding: str) -> str:
    """``Windows-1251 (Cyrillic)``, ``UTF-16 LE``..."""
    return LABELS.get(encoding, encoding)


def binary_kind(data: bytes) -> str | None:
    """``"a PNG image"`` for a PNG's bytes...; ``None`` when no known signature starts ``data``."""
    for magic, what in _MAGIC:
        if data.startswith(magic):
            return what
    return None


def decode_head(data: bytes, *, whole: bool) -> Decoded:
    """The text of ``data`` and its codec; raises :class:`FileRejected` for binary or undecodable bytes."""
    if data.startswith(codecs.BOM_UTF8):
        return Decoded(_strict(data[3:], "utf-8", whole=whole, shown="UTF-8 with BOM"), "utf-8-sig")
    for bom, codec in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            return Decoded(_strict(data[2:], codec, whole=whole, shown=label(codec)), codec)
    what = binary_kind(data)
    if what is not None:
        raise FileRejected(f"it is {what}, not a text table")
    if b"\x00" in data:
        even, odd = data[0::2].count(0), data[1::2].count(0)
        if max(even, odd) > len(data) // 4 and min(even, odd) < max(even, odd) // 10:
            raise FileRejected(f"it looks like UTF-16 text without a byte-order mark; {UTF8_HINT}")
        raise FileRejected("it looks like binary data, not a text table")
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(data, final=whole)
    except UnicodeDecodeError:
        encoding, certain = single_byte_codec(data)
        text = data.decode(encoding)
        check_controls(text)
        return Decoded(text, encoding, certain)
    check_controls(text)
    return Decoded(text, "utf-8")


def _strict(data: bytes, codec: str, *, whole: bool, shown: str) -> str:
    try:
        text: str = codecs.getincrementaldecoder(codec)().decode(data, final=whole)
    except UnicodeDecodeError as exc:
        raise FileRejected(f"it starts with a {shown} marker but is not valid {shown} text; {UTF8_HINT}") from exc
    check_controls(text)
    return text


def check_controls(text: str) -> None:
    """Text with more than a trace of control characters is binary, or in an encoding we do not know."""
    sample = text[:65536]
    controls = len(_CONTROLS.findall(sample))
    if controls > max(2, len(sample) // 200):
        raise FileRejected(UNREADABLE)


def western_codec(c1: set[int]) -> str:
    """Bytes 0x80–0x9F (``c1``) are printable in Windows-1252 (``€``, curly quotes) and control codes in Latin-1."""
    return "cp1252" if c1 and c1 <= _CP1252_ONLY else "latin-1"


def non_ascii_sample(data: bytes, limit: int = DETECT_BYTES) -> bytes:
    """Up to ``limit`` bytes of ``data`` around its non-ASCII bytes (what tells code pages apart), whole lines."""
    if len(data) <= limit:
        return data
    parts: list[bytes] = []
    held, pos = 0, 0
    while held < limit:
        hit = _NON_ASCII.search(data, pos)
        if hit is None:
            break
        start = data.rfind(b"\n", 0, hit.start()) + 1
        end = data.find(b"\n", hit.start())
        end = len(data) if end < 0 else end + 1
        parts.append(data[start:end][: limit - held])
        held += end - start
        pos = end
    return b"".join(parts) or data[:limit]


def single_byte_codec(data: bytes) -> tuple[str, bool]:
    """The code page of a text that is not UTF-8, and whether that choice is certain (see the module doc)."""
    sample = non_ascii_sample(data)
    scored: list[tuple[float, str, str]] = []
    for codec in SINGLE_BYTE:
        if codec == "latin-1" and scored and scored[0][1] == "cp1252":
            continue  # Latin-1 only differs by reading 0x80-0x9F as control codes: never the better reading
        try:
            text = sample.decode(codec)
        except UnicodeDecodeError:
            continue
        scored.append((_implausibility(text), codec, text))
    if not scored:
        return western_codec(set(data.translate(None, OUTSIDE_C1))), False
    best_score = min(s[0] for s in scored)
    groups: dict[str, list[str]] = {}  # decoded text -> code pages reading it so, most common first
    for score, codec, text in scored:
        if score <= best_score + 0.05:
            groups.setdefault(text, []).append(codec)
    chosen = next(iter(groups.values()))
    certain = len(groups) == 1 and best_score < 0.5
    if not certain and len(_NON_ASCII.findall(sample)) >= MIN_EVIDENCE:
        found = list(charset_normalizer.from_bytes(sample, cp_isolation=list(SINGLE_BYTE)))
        matches = {_python_name(m.encoding): m.coherence for m in found}
        page = LANGUAGE_PAGES.get(found[0].language) if found else None
        spoken = [g for g in groups.values() if page in g]
        if spoken:  # the language the text reads as names its code page: Czech text is Windows-1250
            return _western(spoken[0][0], data), True
        def coherence(group: list[str]) -> float:
            return max(matches.get(c, -1.0) for c in group)

        ranked = sorted(groups.values(), key=lambda g: (-coherence(g), SINGLE_BYTE.index(g[0])))
        chosen = ranked[0]
        if len(ranked) > 1:
            first, second = coherence(ranked[0]), coherence(ranked[1])
            western = chosen[0] in ("cp1252", "latin-1")  # by far the most common: it wins a tie for sure
            certain = best_score < 0.5 and (first >= second + 0.1 or (western and first >= second))
    return _western(chosen[0], data), certain


def _western(codec: str, data: bytes) -> str:
    """Windows-1252 stays so only when the text has a byte that only Windows-1252 defines; else Latin-1."""
    return western_codec(set(data.translate(None, OUTSIDE_C1))) if codec == "cp1252" else codec


def _python_name(encoding: str) -> str:
    name = codecs.lookup(encoding).name
    return {"latin_1": "latin-1", "iso8859-1": "latin-1", "koi8_r": "koi8-r"}.get(name, name)


def _implausibility(text: str) -> float:
    """The share of words with non-ASCII letters that a wrong code page typically makes."""
    words = [w for w in _WORD.findall(text) if not w.isascii()]
    if not words:
        return 0.0
    bad = sum(1 for w in set(words) if _odd_word(w))
    return bad / len(set(words))


def _odd_word(word: str) -> bool:
    scripts = {_script(ch) for ch in word}
    if len(scripts) > 1:
        return True
    if any(a.islower() and b.isupper() for a, b in itertools.pairwise(word)):
        return True
    return scripts == {"LATIN"} and len(word) >= 3 and not any(ch.isascii() for ch in word)


def _script(ch: str) -> str:
    if ch.isascii():
        return "LATIN"
    return unicodedata.name(ch, "OTHER").split(" ", 1)[0]
