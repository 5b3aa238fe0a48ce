"""A regular (non-editable) install has everything ``datastory demo`` serves: the page's files and the examples.

The wheel is built the way ``pip install .`` builds it, from a copy of the tree (symlinks kept, no earlier ``build/``),
and its contents are compared with the source (the packaged examples are links to ``examples/`` in a checkout; the
wheel must hold their bytes).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "bot" / "demo"

pytestmark = pytest.mark.e2e


def test_the_wheel_holds_the_page_and_the_examples(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT, tree, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "corpus", "*.db"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path),
                    str(tree)], check=True, timeout=300, capture_output=True)
    [wheel] = tmp_path.glob("datastory-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        expected = {f"bot/demo/{p.relative_to(DEMO).as_posix()}": p for folder in ("static", "examples")
                    for p in sorted((DEMO / folder).iterdir())}
        assert {"bot/demo/static/index.html", "bot/demo/static/app.js", "bot/demo/examples/sales.csv"} <= set(expected)
        assert set(expected) <= names
        for name, source in expected.items():
            assert z.read(name) == source.read_bytes(), name
        assert (DEMO / "examples" / "sales.csv").read_bytes() == (ROOT / "examples" / "sales.csv").read_bytes()
