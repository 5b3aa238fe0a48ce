"""The model's text released in safe pieces while it streams, and where a long reply may be split."""

from __future__ import annotations

from bot.turns.stream_text import ReleasedText, fit, paragraph_cuts, safe_end

TABLE = "| a | b |\n|---|---|\n| 1 | 2 |\n"


def test_prose_is_released_up_to_its_last_space_and_whole_lines_at_once() -> None:
    text = ReleasedText()
    text.add("Revenue rose by twel")
    assert text.take() == "Revenue rose by "
    text.add("ve percent.\nNext")
    assert text.take() == "twelve percent.\n"
    assert text.take(final=True) == "Next"


def test_a_table_is_released_only_whole_once_a_line_after_it_shows_it_ended() -> None:
    text = ReleasedText()
    text.add("Totals:\n\n" + TABLE[:-5])
    assert text.take() == "Totals:\n\n"
    text.add(TABLE[-5:])
    assert text.take() == ""  # the table may go on
    text.add("\nAfter")
    assert text.take() == TABLE + "\n"
    assert text.take(final=True) == "After"


def test_a_code_block_is_released_whole_and_links_only_on_complete_lines() -> None:
    assert safe_end("Code:\n```python\nx = 1\n") == len("Code:\n")
    assert safe_end("Code:\n```python\nx = 1\n```\n") == len("Code:\n```python\nx = 1\n```\n")
    text = ReleasedText()
    text.add("See [the chart](sandbox:/mnt/data/chart")
    assert text.take() == ""
    text.add(".png) here.\n")
    assert text.take() == "See `the chart` here.\n"


def test_a_long_reply_is_cut_at_a_paragraph_break_outside_tables_and_code() -> None:
    piece = "First paragraph.\n\n" + TABLE + "\n" + "Second paragraph.\n\n```\na\n\nb\n```\n\nThird."
    cuts = paragraph_cuts(piece)
    assert [piece[:c][-6:] for c in cuts] == ["aph.\n\n", " 2 |\n\n", "aph.\n\n", "\n```\n\n"]
    assert fit(piece, len(piece)) == len(piece)
    assert fit(piece, 40) == len("First paragraph.\n\n")
    assert fit(piece, 10) == 0
