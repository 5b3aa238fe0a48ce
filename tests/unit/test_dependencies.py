"""Every third-party module the code imports is declared in ``pyproject.toml``, where a fresh install will get it.

A module that only arrives as someone else's dependency (``yarl`` through aiohttp, ``zmq`` through jupyter-client)
works until that dependency stops needing it; a regular ``pip install .`` on a fresh machine then fails at import.
The bot's and handlers' imports must be runtime dependencies; the tests' and benchmarks' may also be test extras.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
OWN = {"bot", "handlers", "tests", "bench", "examples"}


def _name(requirement: str) -> str:
    """``"SQLAlchemy[asyncio]>=2.0; python_version > '3'"`` → ``"sqlalchemy"`` (PEP 503 normalised)."""
    bare = re.split(r"[\[<>=!~;\s]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", bare).lower()


RUNTIME = {_name(r) for r in PYPROJECT["project"]["dependencies"]}
TEST = RUNTIME | {_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["test"]}


def imported_modules(*folders: str) -> dict[str, set[str]]:
    """Top-level third-party modules imported anywhere (functions included) under ``folders``, with their files."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in OWN and top != "__future__":
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def undeclared(modules: dict[str, set[str]], declared: set[str]) -> list[str]:
    dists = packages_distributions()
    problems = []
    for module, files in sorted(modules.items()):
        names = {_name(d) for d in dists.get(module, [])}
        if not names:
            problems.append(f"{module} (imported by {', '.join(sorted(files))}) is not installed at all")
        elif not names & declared:
            problems.append(f"{module} comes from {', '.join(sorted(names))}, which pyproject.toml does not declare "
                            f"(imported by {', '.join(sorted(files))})")
    return problems


def test_the_bot_imports_only_declared_runtime_dependencies() -> None:
    modules = imported_modules("bot", "handlers")
    assert {"yarl", "zmq", "aiohttp", "openai", "prometheus_client"} <= modules.keys()  # the scan sees imports
    assert undeclared(modules, RUNTIME) == []


def test_tests_and_benchmarks_import_only_declared_dependencies() -> None:
    assert undeclared(imported_modules("tests", "bench", "examples"), TEST) == []


def test_a_module_that_only_comes_in_transitively_is_caught() -> None:
    assert undeclared({"yarl": {"bot/slack_gateway.py"}}, RUNTIME - {"yarl"}) != []


@pytest.mark.parametrize("name", ["slack-bolt", "slack-sdk", "openai"])
def test_sdks_stay_below_their_next_major(name: str) -> None:
    spec = next(r for r in PYPROJECT["project"]["dependencies"] if _name(r) == name)
    assert "<" in spec, spec


def test_the_internet_facing_server_excludes_parsers_with_advisories() -> None:
    spec = next(r for r in PYPROJECT["project"]["dependencies"] if _name(r) == "aiohttp")
    lower = tuple(int(x) for x in re.search(r">=([\d.]+)", spec).group(1).split("."))  # type: ignore[union-attr]
    assert lower >= (3, 14, 5)
