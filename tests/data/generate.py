"""The file corpus of the file-handling tests: good and bad files, generated (never checked in).

``python -m tests.data.generate [DIR]`` writes every file into ``DIR`` (default ``tests/data/corpus/``, which is
gitignored); the tests call :func:`ensure_corpus`. Every file is small (a few KB) and deterministic, so the
expected detections can be asserted exactly. Cases that only need Slack metadata (too large, external, deleted,
the sign-in page) are made by the tests with FakeSlack options instead.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import struct
import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parent / "corpus"

REGIONS = ("North", "South", "East", "West")


def _sales(rows: int = 40, *, sep: str = ",", newline: str = "\n") -> str:
    lines = [sep.join(("region", "month", "revenue", "price", "active"))]
    for i in range(rows):
        lines.append(sep.join((REGIONS[i % 4], f"2025-{i % 12 + 1:02d}", str(100 + i * 7), f"{9.5 + i / 4:.2f}",
                               "true" if i % 3 else "false")))
    return newline.join(lines) + newline


def _decimal_comma() -> bytes:
    lines = ["Region;Datum;Umsatz;Anteil"]
    for i in range(30):
        amount = f"{1234.56 + i * 1371.25:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".")
        lines.append(f"Nord {i % 3};{i % 28 + 1:02d}.03.2025;{amount};{i % 20},{i % 10}")
    return ("\n".join(lines) + "\n").encode()


def _latin1() -> bytes:
    names = ("Müller", "Señor", "Chloé", "Ørsted", "Ångström", "Façade")
    lines = ["name;ville;montant"] + [f"{names[i % 6]};Besançon;{i * 3}" for i in range(24)]
    return ("\n".join(lines) + "\n").encode("latin-1")


def _cp1252() -> bytes:
    lines = ["product,label,price_eur"]
    for i in range(24):
        lines.append(f"P{i},\u201cBest\u201d offer \u2013 {i},\u20ac{i * 2}.50")
    return ("\r\n".join(lines) + "\r\n").encode("cp1252")


def _quoted_newlines() -> bytes:
    lines = ["id,comment,score"]
    for i in range(12):
        lines.append(f'{i},"Line one of {i}\nline two, with a comma",{i * 1.5}')
    return ("\n".join(lines) + "\n").encode()


def _no_header() -> bytes:
    return "".join(f"{i},{i * i},{i / 3:.4f}\n" for i in range(1, 31)).encode()


def _single_column() -> bytes:
    cities = ("Paris", "Berlin", "Madrid", "Rome", "Lisbon", "Vienna", "Prague", "Dublin")
    return ("city\n" + "".join(f"{c}\n" for c in cities)).encode()


def _wide() -> bytes:
    header = ",".join(f"m{i}" for i in range(300))
    rows = [",".join(str((r * 300 + c) % 97) for c in range(300)) for r in range(10)]
    return ("\n".join([header, *rows]) + "\n").encode()


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes([(x * y) % 256 for x in range(16)]) for y in range(16))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("data.csv", _sales(20))
    return buf.getvalue()


def _elf() -> bytes:
    rng = random.Random(7)
    return b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + rng.randbytes(2048)


def _xlsx() -> bytes:
    """A minimal valid workbook (one sheet, inline strings), the parts Excel and openpyxl need."""
    rows = [("region", "revenue"), *((REGIONS[i % 4], i * 10) for i in range(1, 11))]

    def cell(ref: str, value: object) -> str:
        if isinstance(value, int):
            return f'<c r="{ref}"><v>{value}</v></c>'
        return f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>'

    sheet_rows = "".join(
        f'<row r="{n}">' + cell(f"A{n}", a) + cell(f"B{n}", b) + "</row>" for n, (a, b) in enumerate(rows, 1)
    )
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    parts = {
        "[Content_Types].xml": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
            "</Types>"),
        "_rels/.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/>'
            "</Relationships>"),
        "xl/workbook.xml": (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><workbook {ns} xmlns:r="{rel}">'
            '<sheets><sheet name="Sales" sheetId="1" r:id="rId1"/></sheets></workbook>'),
        "xl/_rels/workbook.xml.rels": (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/>'
            "</Relationships>"),
        "xl/worksheets/sheet1.xml": (
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet {ns}>'
            f"<sheetData>{sheet_rows}</sheetData></worksheet>"),
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, xml in parts.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0)), xml)
    return buf.getvalue()


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _html() -> bytes:
    return (b"<!DOCTYPE html>\n<html><head><title>Report</title></head>\n"
            b"<body><table><tr><td>a</td><td>b</td></tr></table></body></html>\n")


GOOD: dict[str, Callable[[], bytes]] = {
    "comma.csv": lambda: _sales().encode(),
    "crlf.csv": lambda: _sales(12, newline="\r\n").encode(),
    "semicolon_decimal_comma.csv": _decimal_comma,
    "tabs.tsv": lambda: _sales(20, sep="\t").encode(),
    "pipes.csv": lambda: _sales(20, sep="|").encode(),
    "delimited.txt": lambda: _sales(15, sep=";").encode(),
    "compressed.csv.gz": lambda: _gzip(_sales(2000).encode()),
    "bom_utf8.csv": lambda: b"\xef\xbb\xbf" + "city,café\nLyon,3\nNîmes,4\n".encode(),
    "utf16le.csv": lambda: "\ufeffname\tvalue\nZoë\t1\nJosé\t2\n".encode("utf-16-le"),
    "utf16be.csv": lambda: "\ufeffname,value\nZoë,1\nJosé,2\n".encode("utf-16-be"),
    "latin1.csv": _latin1,
    "cp1252.csv": _cp1252,
    "quoted_newlines.csv": _quoted_newlines,
    "no_header.csv": _no_header,
    "single_column.csv": _single_column,
    "wide.csv": _wide,
    "workbook.xlsx": _xlsx,
    "records.json": lambda: json.dumps([{"region": r, "revenue": i} for i, r in enumerate(REGIONS)]).encode(),
    "lines.json": lambda: "".join(json.dumps({"id": i, "ok": i % 2 == 0}) + "\n" for i in range(5)).encode(),
}

BAD: dict[str, Callable[[], bytes]] = {
    "empty.csv": lambda: b"",
    "blank_lines.csv": lambda: b"\n\n   \n\r\n",
    "header_only.csv": lambda: b"region,month,revenue\n",
    "png_disguised.csv": _png,
    "zip_disguised.csv": _zip,
    "elf_disguised.csv": _elf,
    "random_bytes.csv": lambda: random.Random(42).randbytes(4096),
    "page.csv": _html,
    "utf16_nobom.csv": lambda: "name,value\nZoe,1\nJose,2\n".encode("utf-16-le"),
    "shift_jis.csv": lambda: "".join(f"商品{i},東京都,価格{i}\n" for i in range(30)).encode("shift_jis"),
    "prose.txt": lambda: b"Dear team,\nthe numbers are in the attachment.\nBest regards\n",
    "fake.xlsx": lambda: b"region,revenue\nNorth,1\n",
    "broken.json": lambda: b"hello: world\n",
    "not_gzip.csv.gz": lambda: _sales(5).encode(),
    "empty_inside.csv.gz": lambda: _gzip(b""),
}

UNSUPPORTED: dict[str, Callable[[], bytes]] = {
    "report.pdf": lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
    "image.png": _png,
    "letter.docx": _zip,
}
"""Refused by name before any download."""


def corpus() -> dict[str, bytes]:
    """Every corpus file by name."""
    return {name: make() for name, make in (GOOD | BAD | UNSUPPORTED).items()}


def write(out: Path = CORPUS_DIR) -> dict[str, Path]:
    """Write the corpus into ``out`` (rewriting only files whose bytes changed); returns the paths by name."""
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, data in corpus().items():
        path = out / name
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)
        paths[name] = path
    return paths


def ensure_corpus() -> Path:
    """The corpus directory, generated if needed."""
    write(CORPUS_DIR)
    return CORPUS_DIR


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS_DIR
    for name, path in write(target).items():
        print(f"{path.stat().st_size:>8}  {name}")
