"""``datastory try``: the README's first command, offline, no keys, on the local kernel sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import cli
from bot.config import Settings

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.e2e


def offline_settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


async def test_try_analyses_a_csv_offline_and_writes_the_answer_and_charts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = await cli.amain(["try", str(ROOT / "examples" / "sales.csv"), "--out", str(out)],
                           settings=offline_settings(tmp_path))
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "sales.csv" in printed.out and "288 rows × 6 columns" in printed.out
    answer = (out / "answer.md").read_text(encoding="utf-8")
    assert "Trend" in answer and "North" in answer
    charts = sorted(p for p in out.iterdir() if p.suffix == ".png")
    assert 2 <= len(charts) <= 4
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in charts)
    assert all(str(p) in printed.out for p in charts)
    assert "✅ Done" in printed.err
    # the user's own file on the user's own machine: relaxed isolation, said in one line
    [note] = [line for line in printed.err.splitlines() if "sandbox isolation" in line]
    assert note.startswith("datastory: sandbox isolation relaxed (the default for `try`; DATASTORY_LOCAL_ISOLATION")


async def test_try_explains_files_it_cannot_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(b"%PDF-1.7")
    code = await cli.amain(["try", str(pdf), str(tmp_path / "missing.csv"), "--out", str(tmp_path / "out")],
                           settings=offline_settings(tmp_path))
    err = capsys.readouterr().err
    assert code == 2
    assert "report.pdf: .pdf is not a type I read" in err
    assert "missing.csv: no such file" in err


async def test_a_question_without_a_model_is_answered_honestly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await cli.amain(["try", str(ROOT / "examples" / "sales.csv"), "--question", "which region grew fastest?",
                            "--out", str(tmp_path / "out")], settings=offline_settings(tmp_path))
    out = capsys.readouterr().out
    assert code == 0
    assert "OPENAI_API_KEY" in out
