"""The layering rules of DESIGN.md §3, checked by parsing every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the pace and the streaming calls are the gateway's
SLACK_ALLOWED = {"bot/app.py", "bot/slack_gateway.py", "bot/slack_pace.py", "bot/slack_stream.py"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def core_modules() -> list[Path]:
    return sorted((ROOT / "bot").rglob("*.py"))


def test_core_never_imports_handlers_except_the_composition_root() -> None:
    offenders = [
        str(p.relative_to(ROOT)) for p in core_modules()
        if str(p.relative_to(ROOT)) != "bot/app.py"
        and any(name == "handlers" or name.startswith("handlers.") for name in imports_of(p))
    ]
    assert offenders == []


def test_only_the_gateway_and_the_root_import_slack_libraries() -> None:
    offenders = [
        str(p.relative_to(ROOT)) for p in core_modules()
        if str(p.relative_to(ROOT)) not in SLACK_ALLOWED
        and any(name.split(".")[0] in ("slack_bolt", "slack_sdk") for name in imports_of(p))
    ]
    assert offenders == []


def test_the_core_never_imports_the_demo() -> None:
    # bot/demo/ (the Slack emulator and the demo page) sits beside the core: only the CLI starts it.
    offenders = [
        str(p.relative_to(ROOT)) for p in core_modules()
        if str(p.relative_to(ROOT)) != "bot/cli.py" and not p.is_relative_to(ROOT / "bot" / "demo")
        and any(name == "bot.demo" or name.startswith("bot.demo.") for name in imports_of(p))
    ]
    assert offenders == []


def test_the_emulator_stands_apart_from_the_bot() -> None:
    # The emulator is Slack's side of the wire: it shares no code with the bot it is used to test (the layering
    # rule above already keeps slack_bolt/slack_sdk out of it). Only the demo's runner builds the bot.
    emulator = [p for p in (ROOT / "bot" / "demo").glob("*.py") if p.name != "runner.py"]
    assert len(emulator) > 3, "bot/demo/ has moved: update this test"
    offenders = [
        str(p.relative_to(ROOT)) for p in emulator
        if any(name.split(".")[0] in ("bot", "handlers") and not name.startswith("bot.demo")
               for name in imports_of(p))
    ]
    assert offenders == []


def test_only_config_reads_the_environment() -> None:
    offenders = []
    for p in [*core_modules(), *sorted((ROOT / "handlers").rglob("*.py"))]:
        rel = str(p.relative_to(ROOT))
        text = p.read_text(encoding="utf-8")
        if rel != "bot/config.py" and ("os.environ" in text or "os.getenv" in text):
            offenders.append(rel)
    assert offenders == []


def test_every_module_has_a_docstring() -> None:
    missing = [
        str(p.relative_to(ROOT)) for p in [*core_modules(), *sorted((ROOT / "handlers").rglob("*.py"))]
        if p.stat().st_size and ast.get_docstring(ast.parse(p.read_text(encoding="utf-8"))) is None
    ]
    assert missing == []


def test_the_check_itself_sees_imports() -> None:
    assert "slack_bolt.async_app" in imports_of(ROOT / "handlers" / "__init__.py")
