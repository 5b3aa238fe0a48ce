"""Markdown to mrkdwn, escaping, and splitting long answers."""

from __future__ import annotations

import pytest

from bot.formatting import human_size, names_list, seconds, split_message, to_mrkdwn


def test_bold_headings_lists_and_links_become_mrkdwn() -> None:
    out = to_mrkdwn("# Revenue\n\n**North** grew *fast*.\n\n- one\n- two [docs](https://example.com)")
    assert "*Revenue*" in out
    assert "*North* grew _fast_." in out
    assert "• one" in out
    assert "docs (https://example.com)" in out  # a reader sees where a link goes: never a masked link


@pytest.mark.parametrize("evil", ["<!channel>", "<!here>", "<@U123>", "<#C1|general>", "<https://evil|click>"])
def test_model_text_cannot_mention_or_link(evil: str) -> None:
    out = to_mrkdwn(f"Note {evil} please")
    assert evil not in out
    assert "&lt;" in out


def test_ampersands_and_comparisons_are_escaped_even_in_code() -> None:
    out = to_mrkdwn("a & b, x < 3 > 2\n\n```\nif a<b: pass\n```")
    assert "a &amp; b" in out and "x &lt; 3 &gt; 2" in out
    assert "if a&lt;b: pass" in out


def test_sandbox_links_become_file_names() -> None:
    out = to_mrkdwn("See [the chart](sandbox:/mnt/data/chart.png) and sandbox:/mnt/data/table.csv.")
    assert "sandbox:" not in out
    assert "`the chart`" in out and "`table.csv`" in out


def test_tables_are_fenced_as_code() -> None:
    out = to_mrkdwn("Totals:\n\n| region | revenue |\n|---|---|\n| North | 10 |\n\nDone.")
    lines = out.splitlines()
    start = lines.index("```")
    assert lines[start + 1].startswith("| region")
    assert "```" in lines[start + 2:]
    assert out.strip().endswith("Done.")


def test_empty_answer_stays_empty() -> None:
    assert to_mrkdwn("   ") == ""


def test_short_text_is_one_message() -> None:
    assert split_message("hello") == ["hello"]


def test_long_text_splits_at_paragraphs_under_the_limit() -> None:
    paragraphs = [f"Paragraph {i} " + "word " * 150 for i in range(12)]
    parts = split_message("\n\n".join(paragraphs), limit=2000)
    assert len(parts) > 1
    assert all(len(p) <= 2000 for p in parts)
    assert all(p.startswith("Paragraph") for p in parts)
    assert "".join(parts).replace(" ", "").replace("\n", "") == "".join(paragraphs).replace(" ", "").replace("\n", "")


def test_code_blocks_split_across_messages_stay_balanced() -> None:
    text = "Intro\n\n```\n" + "\n".join(f"row {i}" for i in range(400)) + "\n```\nEnd"
    parts = split_message(text, limit=1000)
    assert len(parts) > 2
    assert all(p.count("```") % 2 == 0 for p in parts)
    assert all(len(p) <= 1000 for p in parts)


def test_a_word_longer_than_the_limit_is_cut() -> None:
    parts = split_message("x" * 2500, limit=1000)
    assert all(len(p) <= 1000 for p in parts) and sum(len(p) for p in parts) == 2500


def test_small_helpers() -> None:
    assert human_size(512) == "512 bytes"
    assert human_size(1536) == "1.5 KB"
    assert human_size(3 * 1024 * 1024) == "3.0 MB"
    assert names_list(["a.csv"]) == "`a.csv`"
    assert names_list(["a.csv", "b.csv", "c.csv"]) == "`a.csv`, `b.csv` and `c.csv`"
    assert seconds(12.34) == "12.3 s"
    assert seconds(75) == "1 min 15 s"
