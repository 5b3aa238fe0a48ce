"""Chart and table specs from the charting helper become Slack's data visualization and data table blocks only
when they fit: every block built here is checked by the emulator's own reading of Slack's limits
(:mod:`bot.demo.block_rules`), and the PNG is always there beside a spec."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from bot.analysts.profiler import build_report, chartkit
from bot.demo.block_rules import block_errors
from bot.files import inspect_head
from bot.native_blocks import ChartSpec, TableSpec, chart_block, is_spec, table_block
from tests.corpus.build import real_files

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        yield tmp_path
    finally:
        os.chdir(old)


def spec_of(png: str) -> ChartSpec:
    spec = ChartSpec.parse(Path(png[:-4] + ".chart.json").read_bytes())
    assert spec is not None
    return spec


def assert_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 200 and image.size[1] > 150


def test_bar_chart_fits_as_a_native_bar(workdir: Path) -> None:
    png = chartkit.bar(["North", "South", "East"], [130, 82, 40.5], title="Revenue by region",
                       value_label="Revenue ($)", category_label="Region", unit="$")
    assert png == "revenue_by_region.png"
    assert_png(workdir / png)
    block = chart_block(spec_of(png), block_id="chart-1")
    assert block == {
        "type": "data_visualization", "title": "Revenue by region", "block_id": "chart-1",
        "chart": {"type": "bar", "axis_config": {"categories": ["North", "South", "East"], "x_label": "Region",
                                                 "y_label": "Revenue ($)"},
                  "series": [{"name": "Revenue ($)", "data": [{"label": "North", "value": 130.0},
                                                              {"label": "South", "value": 82.0},
                                                              {"label": "East", "value": 40.5}]}]},
    }
    assert block_errors([block]) == []


def test_line_and_area_with_dates_and_two_series(workdir: Path) -> None:
    months = pd.date_range("2025-01-01", periods=6, freq="MS")
    series = {"North": [100, 130, 120, 150, 160, 170], "South": [80, 82, 90, 85, 99, 101]}
    for draw, kind in ((chartkit.line, "line"), (chartkit.area, "area")):
        png = draw(months, series, title=f"Revenue per month ({kind})", ylabel="Revenue")
        assert_png(workdir / png)
        block = chart_block(spec_of(png))
        assert block is not None and block["chart"]["type"] == kind
        assert block["chart"]["axis_config"]["categories"][0] == "2025-01-01"
        assert [s["name"] for s in block["chart"]["series"]] == ["North", "South"]
        assert block_errors([block]) == []


def test_pie_fits_up_to_six_positive_segments(workdir: Path) -> None:
    png = chartkit.pie(["organic", "paid", "email"], [50, 30, 20], title="Sessions by channel")
    assert_png(workdir / png)
    block = chart_block(spec_of(png))
    assert block is not None and block["chart"] == {"type": "pie", "segments": [
        {"label": "organic", "value": 50.0}, {"label": "paid", "value": 30.0}, {"label": "email", "value": 20.0}]}
    assert block_errors([block]) == []
    seven = chartkit.pie([f"c{i}" for i in range(7)], [1] * 7, title="Seven shares")
    assert chart_block(spec_of(seven)) is None  # the official limit is 6 (others say 12): PNG only
    zero = chartkit.pie(["a", "b"], [3, 0], title="A zero share")
    assert chart_block(spec_of(zero)) is None


def test_what_does_not_fit_stays_a_png(workdir: Path) -> None:
    long_series = chartkit.line(list(range(30)), {"Value": [float(i) for i in range(30)]}, title="Thirty points",
                                dates=False)
    assert chart_block(spec_of(long_series)) is None  # 30 categories > 20
    gaps = chartkit.line(list(range(5)), {"Value": [1, float("nan"), 3, 4, 5]}, title="With a gap", dates=False)
    assert chart_block(spec_of(gaps)) is None  # every category needs a finite value
    seven = chartkit.line(list(range(3)), {f"s{i}": [1, 2, 3] for i in range(7)}, title="Seven series", dates=False)
    assert chart_block(spec_of(seven)) is None
    clash = chartkit.bar(["A very long region name number 1", "A very long region name number 2"], [2, 1],
                         title="Clashing labels")
    assert chart_block(spec_of(clash)) is None  # the labels are the same once cut to 20 characters
    for png in (long_series, gaps, seven, clash):
        assert_png(workdir / png)


def test_long_titles_and_labels_are_cut_to_the_limits(workdir: Path) -> None:
    title = "Total revenue by sales region across every quarter of the fiscal years 2024 and 2025"
    png = chartkit.bar(["Northern territories 2", "S"], [2, 1], title=title, value_label="Revenue in thousands of US "
                       "dollars", category_label="Region")
    block = chart_block(spec_of(png))
    assert block is not None and len(block["title"]) == 50 and block["title"].endswith("…")
    assert block["chart"]["axis_config"]["categories"] == ["Northern territorie…", "S"]
    assert block["chart"]["series"][0]["name"] == "Revenue in thousand…"
    assert block_errors([block]) == []


def test_a_spec_that_cannot_be_read_is_ignored() -> None:
    assert ChartSpec.parse(b"not json") is None
    assert ChartSpec.parse(json.dumps({"version": 2, "kind": "bar"}).encode()) is None
    assert ChartSpec.parse(json.dumps({"version": 1, "kind": "scatter"}).encode()) is None
    assert TableSpec.parse(json.dumps({"version": 1, "kind": "table", "title": "t", "columns": ["a"],
                                       "rows": [[1, 2]]}).encode()) is None
    assert is_spec("x.chart.json") and is_spec("x.table.json") and not is_spec("x.json")


def test_small_table_is_whole_in_a_data_table_block(workdir: Path) -> None:
    frame = pd.DataFrame({"region": ["North", "South", None], "revenue": [1234.5, 80, 12], "units": [3, 4, None]})
    path = chartkit.table(frame, title="Revenue by region")
    assert path == "revenue_by_region.table.json" and not (workdir / "revenue_by_region.csv").exists()
    spec = TableSpec.parse(Path(path).read_bytes())
    assert spec is not None and spec.csv is None and spec.total_rows == 3
    built = table_block(spec, block_id="t1")
    assert built is not None and built.shown_rows == 3
    rows = built.block["rows"]
    assert rows[0] == [{"type": "raw_text", "text": "region"}, {"type": "raw_text", "text": "revenue"},
                       {"type": "raw_text", "text": "units"}]
    assert rows[1] == [{"type": "raw_text", "text": "North"}, {"type": "raw_number", "value": 1234.5,
                                                                "text": "1,234.5"},
                       {"type": "raw_number", "value": 3.0, "text": "3"}]
    assert rows[3][0] == {"type": "raw_text", "text": "–"} and rows[3][2] == {"type": "raw_text", "text": "–"}
    assert built.block["caption"] == "Revenue by region" and built.block["page_size"] == 3
    assert block_errors([built.block]) == []


def test_large_table_shows_its_first_rows_and_keeps_the_csv(workdir: Path) -> None:
    rng = random.Random(3)
    frame = pd.DataFrame({"id": range(250), "name": [f"customer {i}" for i in range(250)],
                          "spend": [round(rng.uniform(0, 5000), 2) for _ in range(250)]}).set_index("id")
    path = chartkit.table(frame, title="Customers by spend")
    spec = TableSpec.parse(Path(path).read_bytes())
    assert spec is not None and spec.csv == "customers_by_spend.csv" and spec.total_rows == 250
    assert spec.columns == ("id", "name", "spend")  # a named index is kept as a column
    assert pd.read_csv(workdir / spec.csv).shape == (250, 3)
    built = table_block(spec)
    assert built is not None and built.shown_rows == 100 and len(built.block["rows"]) == 101
    assert block_errors([built.block]) == []
    wide = "x" * 150
    chars = TableSpec(title="Wide", columns=("a",), rows=tuple((wide,) for _ in range(100)), total_rows=100)
    cut = table_block(chars)
    assert cut is not None and cut.shown_rows == 66 and cut.chars <= 10_000  # 1 + 66 × 150 characters
    assert block_errors([cut.block]) == []
    too_wide = TableSpec(title="t", columns=tuple(f"c{i}" for i in range(21)), rows=((1.0,) * 21,), total_rows=1)
    assert table_block(too_wide) is None


def _profile(workdir: Path, path: Path) -> list[str]:
    data = path.read_bytes()
    profile = inspect_head(data, name=path.name, size=len(data), complete=True)
    reader, kwargs = profile.options.pandas()
    build_report([{"name": path.name, "path": str(path), "reader": reader, "kwargs": kwargs}])
    return sorted(p.name for p in workdir.iterdir() if p.suffix == ".png" or is_spec(p.name))


def _sample_of_the_corpus() -> list[Path]:
    files = [c.path for c in real_files() if c.path.suffix == ".csv" and c.path.stat().st_size < 2_000_000]
    return random.Random(21).sample(files, min(12, len(files)))


def test_examples_and_a_corpus_sample_give_valid_blocks_and_always_the_png(workdir: Path) -> None:
    """The offline first look's charts: each spec names a PNG that exists, and its block, when it fits, is one
    Slack would take; at least a few of the example charts are native."""
    native = total = 0
    for path in [*sorted(EXAMPLES.glob("*.csv")), *_sample_of_the_corpus()]:
        for old in workdir.iterdir():
            old.unlink()
        names = _profile(workdir, path)
        for name in [n for n in names if n.endswith(".chart.json")]:
            spec = ChartSpec.parse((workdir / name).read_bytes())
            assert spec is not None and spec.png in names, (path.name, name)
            assert_png(workdir / spec.png)
            total += 1
            block = chart_block(spec)
            if block is not None:
                native += 1
                assert block_errors([block]) == [], (path.name, name, block)
    assert total >= 6 and native >= 2, (native, total)
