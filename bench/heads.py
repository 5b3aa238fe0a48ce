"""Head inspection over the real-data corpus: what :func:`bot.files.inspect_head` decides for every file, and how
long it takes (not a test; prints numbers, writes the results as JSON so two versions can be diffed).

Files: every packaged dataset of the corpus (:func:`tests.corpus.build.real_files`), the hand-made hard cases
(:func:`tests.corpus.build.hard_cases`), the files of ``tests/data`` (:mod:`tests.data.generate`), each as the
stream would see it (whole when it fits in the head, else its first ``HEAD_BYTES`` and a chunk) and also as a head
that is not the whole file; plus synthetic 256 KB heads of ``examples/sales.csv``-like data in several dialects
(quoted fields, decimal commas, tabs, blanks, CRLF, blank and separator-only lines, a wide table).

Run: ``python bench/heads.py --out results.json`` (then ``diff`` two outputs: they must be identical).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from bot.files import inspect_head
from bot.files.inspect import HEAD_BYTES
from bot.files.refusals import FileRejected
from tests.corpus.build import hard_cases, real_files
from tests.data import generate

CHUNK = 64 * 1024
ROOT = Path(__file__).resolve().parent.parent


def _sales_rows(rng: random.Random, sep: str, decimal: str, quoted: bool) -> str:
    month = f"2024-{rng.randint(1, 12):02d}-01"
    region = rng.choice(("North", "South", "East", "West", "Central, Inner"))
    product = rng.choice(("Hardware", "Software", "Services", 'The "Pro" plan'))
    revenue = f"{rng.uniform(100, 90000):.2f}".replace(".", decimal)
    cells = [month, region, product, revenue, str(rng.randint(1, 99)), str(rng.randint(0, 3))]
    if quoted:
        cells = ['"' + c.replace('"', '""') + '"' if (sep in c or '"' in c or rng.random() < 0.2) else c
                 for c in cells]
    else:
        cells = [c.replace(sep, " ").replace('"', "'") for c in cells]
    return sep.join(cells)


def synthetic() -> dict[str, bytes]:
    """256 KB heads (and a bit more) of sales-like tables in several dialects."""
    out: dict[str, bytes] = {}
    header = ["month", "region", "product", "revenue", "units", "returns"]
    variants = {
        "sales-plain.csv": (",", ".", False, "\n", 0),
        "sales-quoted.csv": (",", ".", True, "\n", 0),
        "sales-semicolon.csv": (";", ",", False, "\r\n", 0),
        "sales-tab.tsv": ("\t", ".", False, "\n", 0),
        "sales-blank.txt": (" ", ".", False, "\n", 0),
        "sales-gaps.csv": (",", ".", False, "\n", 1),
    }
    for name, (sep, decimal, quoted, newline, gaps) in variants.items():
        rng = random.Random(name)
        lines = [sep.join(header)]
        size = 0
        while size < HEAD_BYTES + CHUNK:
            line = _sales_rows(rng, sep, decimal, quoted)
            if gaps and rng.random() < 0.05:
                lines.append(rng.choice(("", "  ", ",,,,,", " , ,")))
            lines.append(line)
            size += len(line) + len(newline)
        out[name] = newline.join(lines).encode()
    rng = random.Random(7)
    wide = [",".join(f"c{i}" for i in range(300))]
    while sum(len(x) for x in wide) < HEAD_BYTES + CHUNK:
        wide.append(",".join(str(rng.randint(0, 999)) for _ in range(300)))
    out["wide.csv"] = "\n".join(wide).encode()
    sales = (ROOT / "examples" / "sales.csv").read_bytes()
    out["examples-sales.csv"] = sales
    header_line, _, body = sales.partition(b"\n")
    repeated = header_line + b"\n" + body * (HEAD_BYTES // max(1, len(body)) + 2)
    out["examples-sales-256k.csv"] = repeated
    return out


def cases(tmp: Path) -> list[tuple[str, bytes]]:
    files: list[tuple[str, bytes]] = []
    for case in real_files():
        files.append((f"{case.source}/{case.path.name}", case.path.read_bytes()))
    for case in hard_cases(tmp / "hard"):
        files.append((f"hard/{case.path.name}", case.path.read_bytes()))
    for name, path in sorted(generate.write(tmp / "data").items()):
        files.append((f"data/{name}", path.read_bytes()))
    files.extend((f"synthetic/{name}", data) for name, data in synthetic().items())
    return files


def _inspect(name: str, data: bytes, *, partial: bool) -> tuple[object, float]:
    base = name.rsplit("/", 1)[-1]
    if partial:
        raw, complete = data[:HEAD_BYTES], False
    else:
        complete = len(data) <= HEAD_BYTES + CHUNK
        raw = data if complete else data[: HEAD_BYTES + CHUNK]
    started = time.perf_counter()
    try:
        profile = inspect_head(raw, name=base, size=len(data), complete=complete)
        result: object = dataclasses.asdict(profile)
    except FileRejected as exc:
        result = {"rejected": str(exc)}
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--times", type=Path, help="also write the best time per inspection (seconds) here")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per file (the best counts)")
    args = parser.parse_args()
    results: dict[str, object] = {}
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = cases(Path(tmp))
    for name, data in files:
        for partial in (False, True):
            if partial and name.endswith((".xlsx", ".xlsm")):
                continue
            key = f"{name}{' (head only)' if partial else ''}"
            best = float("inf")
            for _ in range(args.repeat):
                result, seconds = _inspect(name, data, partial=partial)
                best = min(best, seconds)
            results[key] = result
            times[key] = best
    args.out.write_text(json.dumps(results, indent=1, sort_keys=True, default=str) + "\n")
    if args.times:
        args.times.write_text(json.dumps(times, indent=1, sort_keys=True) + "\n")
    streamed = [t for k, t in times.items() if not k.endswith("(head only)")]
    print(f"{len(files)} files, {len(results)} inspections")
    print(f"median per file as streamed: {statistics.median(streamed) * 1000:.2f} ms, "
          f"mean {statistics.mean(streamed) * 1000:.2f} ms, max {max(streamed) * 1000:.2f} ms")
    print(f"median over all inspections: {statistics.median(times.values()) * 1000:.2f} ms")
    for key in sorted(k for k in times if k.startswith("synthetic/") and not k.endswith("(head only)")):
        print(f"  {key:<40} {times[key] * 1000:7.2f} ms")
    big = sorted(times.items(), key=lambda kv: -kv[1])[:5]
    print("slowest:", ", ".join(f"{k} {t * 1000:.1f} ms" for k, t in big))


if __name__ == "__main__":
    main()
