"""The house chart style: plain numbers, natural names, charts that open as PNGs."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from bot.analysts.profiler import style


def test_numbers_are_plain() -> None:
    assert style.format_number(14127) == "14,127"
    assert style.format_number(1_413_000) == "1.41M" and style.format_number(2.5e9) == "2.5B"
    assert style.format_number(0.4567) == "0.457" and style.format_number(70.5) == "70.5"
    assert style.format_number(12.5, "%") == "12.5%" and style.format_number(-1234, "$") == "-$1,234"
    assert style.format_number(2.5, decimals=2) == "2.50"
    assert style.shared_decimals([0, 0.25, 0.5]) == 2 and style.shared_decimals([0, 500, 1000]) == 0
    assert style.label_decimals([415.9, 91.26]) == 1 and style.label_decimals([3, 4]) == 0


def test_names_read_naturally() -> None:
    assert style.humanize("total_revenue") == "Total revenue"
    assert style.humanize("bill_length_mm") == "Bill length (mm)"
    assert style.humanize("sepalLength") == "Sepal length"
    assert style.humanize("GNP") == "GNP" and style.humanize("share_pct") == "Share (%)"
    assert style.lower_first("Total revenue") == "total revenue" and style.lower_first("GNP") == "GNP"


def test_charts_are_pngs_without_offsets(tmp_path: Path) -> None:
    bar = tmp_path / "bar.png"
    style.bar_chart(str(bar), ["North", "South"], [1_250_000.0, 830_000.0], title="Total revenue by region",
                    value_label="Total revenue", unit="$")
    line = tmp_path / "line.png"
    style.line_chart(str(line), [1, 2, 3], {"a": [1e6, 2e6, 3e6]}, title="A", ylabel="A", dates=False)
    hist = tmp_path / "hist.png"
    style.histogram(str(hist), [1, 2, 2, 3, 3, 3], title="Distribution of x", xlabel="X", marker=2.5)
    for path in (bar, line, hist):
        with Image.open(path) as image:
            image.verify()
            assert image.format == "PNG" and image.size[0] > 500
