"""The README keeps its promises: every setting documented, the two set-up commands present and run by CI."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from bot.config import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_command(name: str) -> str:
    """The command ``.ci/run`` reads from the README (the same shell function, so the two cannot differ)."""
    result = subprocess.run(["bash", "-c", f". .ci/readme.sh && readme_command {name}"], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_every_setting_is_in_the_readme_table() -> None:
    for name in Settings.model_fields:
        env = Settings.env_name(name)
        assert f"| `{env}` |" in README, env


def test_the_two_commands_are_there_and_make_their_own_virtual_environment() -> None:
    venv = "python3 -m venv .venv && . .venv/bin/activate && "
    assert readme_command("try") == venv + "pip install . && datastory try examples/sales.csv --out datastory-out"
    assert readme_command("test") == venv + 'pip install -e ".[test]" && pytest'
    assert (ROOT / "examples" / "sales.csv").is_file()


def test_ci_runs_the_readme_commands() -> None:
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert 'test_cmd="$(readme_command test)"' in run and 'bash -euo pipefail -c "$test_cmd"' in run
    assert 'try_cmd="$(readme_command try)"' in run and '.ci/smoke "$try_cmd"' in run
    assert "pip install -e" not in run  # CI installs only what the README says


def test_a_missing_block_fails_the_extraction() -> None:
    result = subprocess.run(["bash", "-c", ". .ci/readme.sh && readme_command no-such-block"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 1 and "no code block" in result.stderr


def test_links_stay_inside_the_repository() -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        assert not target.startswith(".."), target
        assert (ROOT / target).exists(), target


def test_anchors_point_at_headings() -> None:
    slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
             for h in re.findall(r"^#+ (.+)$", README, re.MULTILINE)}
    anchors = set(re.findall(r"\]\(#([^)]+)\)", README))
    assert anchors and anchors <= slugs, anchors - slugs
