"""Checks what one ``datastory try`` run of the smoke stage left: a narrative and at least one valid PNG.

Run with the smoke environment's own interpreter (``.venv/bin/python``), so the checks also prove that the
install is a regular one (``bot`` imported from site-packages, not an editable link to the source) and that its
charts open with a real decoder (Pillow, which matplotlib brings). Prints one line; exits 1 with the reasons.
"""

from __future__ import annotations

import argparse
import json
import sys
import sysconfig
from importlib.metadata import distribution
from pathlib import Path

from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_WORDS = 40


def check_charts(out: Path) -> tuple[list[str], list[str]]:
    """Every PNG under ``out`` has the signature and decodes fully; returns descriptions and problems."""
    seen, problems = [], []
    for png in sorted(out.glob("*.png")):
        data = png.read_bytes()
        if not data.startswith(PNG_SIGNATURE):
            problems.append(f"{png.name}: no PNG signature")
            continue
        try:
            with Image.open(png) as image:
                image.verify()  # checksums of every chunk
            with Image.open(png) as image:
                image.load()  # decodes the pixels
                width, height, kind = image.width, image.height, image.format
        except Exception as exc:  # any decoder error is the finding
            problems.append(f"{png.name}: does not decode ({type(exc).__name__}: {exc})")
            continue
        if kind != "PNG" or width < 100 or height < 100:
            problems.append(f"{png.name}: {kind} {width}x{height} is not a chart")
            continue
        seen.append(f"{png.name} {width}x{height}")
    if not seen and not problems:
        problems.append(f"no PNG in {out}")
    return seen, problems


def check_narrative(out: Path, stdout: str) -> tuple[int, list[str]]:
    """``answer.md`` holds a narrative of some length, and the same text was printed on stdout."""
    answer = out / "answer.md"
    if not answer.is_file():
        return 0, [f"no {answer}"]
    text = answer.read_text(encoding="utf-8").strip()
    words = len(text.split())
    problems = []
    if words < MIN_WORDS:
        problems.append(f"the narrative has {words} words")
    if not text or text.splitlines()[0] not in stdout:
        problems.append("the narrative was not printed on stdout")
    return words, problems


def check_install(interpreter: str | None, venv: Path | None) -> list[str]:
    """A regular install: the package in this environment's site-packages, not an editable link."""
    problems = []
    import bot

    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    if site not in Path(bot.__file__).resolve().parents:
        problems.append(f"bot is imported from {bot.__file__}, not from {site}")
    direct = distribution("datastory").read_text("direct_url.json")
    if direct and json.loads(direct).get("dir_info", {}).get("editable"):
        problems.append("datastory is installed in editable mode")
    if venv is not None and interpreter is not None:
        cfg = dict(line.split(" = ", 1) for line in (venv / "pyvenv.cfg").read_text().splitlines() if " = " in line)
        if Path(cfg.get("home", "")) != Path(interpreter).parent:
            problems.append(f"the venv was made by {cfg.get('home')}, not by {interpreter}")
    return problems


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--label", required=True)
    p.add_argument("--out", type=Path, required=True, help="the --out directory of the run")
    p.add_argument("--stdout", type=Path, required=True)
    p.add_argument("--stderr", type=Path, required=True)
    p.add_argument("--interpreter", default=None, help="the interpreter that must have made --venv")
    p.add_argument("--venv", type=Path, default=None)
    p.add_argument("--only-output-in", type=Path, default=None,
                   help="a working directory that must hold nothing but --out afterwards")
    args = p.parse_args()
    stdout = args.stdout.read_text(encoding="utf-8")
    stderr = args.stderr.read_text(encoding="utf-8")
    words, problems = check_narrative(args.out, stdout)
    charts, chart_problems = check_charts(args.out)
    problems += chart_problems + check_install(args.interpreter, args.venv)
    if "Traceback" in stderr or "Traceback" in stdout:
        problems.append("a traceback was printed")
    if args.only_output_in is not None:
        extra = sorted(p.name for p in args.only_output_in.iterdir() if p.resolve() != args.out.resolve())
        if extra:
            problems.append(f"the run left {', '.join(extra)} in its working directory")
    if problems:
        print(f"smoke ({args.label}): FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1
    print(f"smoke ({args.label}): narrative of {words} words; {len(charts)} valid PNG(s): {', '.join(charts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
