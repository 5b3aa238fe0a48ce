"""The offline analyst on real data, with real code execution in a subprocess kernel and real PNG charts.

Every number the narrative should quote is computed here independently with pandas, then formatted with the
analyst's own number format.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bot.analysts.base import DEFAULT_QUESTION, AnalysisFailed, AnalysisRequest, AnalysisResult, DataFile
from bot.analysts.offline import OfflineAnalyst, file_specs, format_number, format_pct
from bot.analysts.profiler.trend import choose_period
from bot.files import ReadOptions, inspect_head
from tests.runners import SubprocessRunner

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[SubprocessRunner]:
    r = SubprocessRunner(tmp_path / "containers")
    yield r
    await r.close()


def put(runner: SubprocessRunner, container: str, name: str, data: bytes,
        options: ReadOptions | None = None) -> DataFile:
    """'Upload' a file into the container's working directory, with the read options the stream inspection
    decides for it (or ``options``)."""
    path = runner.workdir(container) / name
    path.write_bytes(data)
    profile = inspect_head(data, name=name, size=len(data), complete=True)
    return DataFile(name=name, path=str(path), size=len(data), facts=profile.facts(str(path)),
                    read_options=options or profile.options)


async def first_look(runner: SubprocessRunner, container: str, *files: DataFile, timeout: float = 120,
                     question: str = DEFAULT_QUESTION) -> tuple[AnalysisResult, list[Path], list[str]]:
    before = {p.name for p in runner.workdir(container).iterdir()}
    lines: list[str] = []

    async def progress(line: str) -> None:
        lines.append(line)

    result = await OfflineAnalyst(runner=runner, timeout=timeout).run(
        AnalysisRequest(question=question, container_id=container, files=files,
                        new_files=tuple(f.name for f in files)), progress=progress)
    created = sorted(p for p in runner.workdir(container).iterdir() if p.name not in before)
    return result, created, lines


def assert_valid_pngs(paths: list[Path], *, low: int = 2, high: int = 4) -> None:
    """2–4 PNGs, and beside a bar or line chart its spec (the data behind it, for Slack's chart block)."""
    pngs = [p for p in paths if p.suffix == ".png"]
    specs = [p for p in paths if p.name.endswith(".chart.json")]
    assert len(pngs) + len(specs) == len(paths), [p.name for p in paths]
    assert low <= len(pngs) <= high, [p.name for p in paths]
    for spec in specs:
        data = json.loads(spec.read_text(encoding="utf-8"))
        assert spec.parent / data["png"] in pngs and spec.name == data["png"][:-4] + ".chart.json"
        assert data["kind"] in ("bar", "line") and data["title"] and data["categories"]
        assert all(len(s["values"]) == len(data["categories"]) for s in data["series"])
    for path in pngs:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 200 and image.size[1] > 150
            image.verify()


def strongest_pair(df: pd.DataFrame, columns: list[str]) -> tuple[str, str, float]:
    corr = df[columns].corr()
    pairs = [(a, b, float(corr.loc[a, b])) for i, a in enumerate(columns) for b in columns[i + 1:]]
    return max(pairs, key=lambda p: abs(p[2]))


# ------------------------------------------------------------------------------------------------- examples


async def test_sales_first_look_quotes_real_numbers_and_draws_charts(runner: SubprocessRunner) -> None:
    data = (EXAMPLES / "sales.csv").read_bytes()
    f = put(runner, "sales", "sales.csv", data)
    result, created, lines = await first_look(runner, "sales", f)
    text = result.text
    df = pd.read_csv(EXAMPLES / "sales.csv", parse_dates=["month"])

    assert f"{len(df)} rows × {len(df.columns)} columns" in text and "288 rows × 6 columns" in text
    assert f"total {format_number(df['revenue'].sum())}" in text
    assert f"per row median {format_number(df['revenue'].median())}" in text
    by_region = df.groupby("region")["revenue"].sum().sort_values(ascending=False)
    top, share = by_region.index[0], by_region.iloc[0] / by_region.sum() * 100
    assert f"{top} brings the most revenue, {format_pct(share)}" in text
    low = by_region.index[-1]
    assert f"{low} the least, {format_pct(by_region.iloc[-1] / by_region.sum() * 100)}" in text
    monthly = df.groupby("month")["revenue"].sum()
    change = (monthly.iloc[-1] - monthly.iloc[0]) / monthly.iloc[0] * 100
    assert (f"{format_number(monthly.iloc[0])} in Jan 2024 → {format_number(monthly.iloc[-1])} in Dec 2025, "
            f"{change:+.1f}%") in text
    assert f"peak {format_number(monthly.max())} in {monthly.idxmax():%b %Y}" in text
    assert "total revenue per month trended up over 24 months" in text
    a, b, r = strongest_pair(df, ["revenue", "units", "returns"])
    assert f"{a} and {b}, r = {r:.2f}" in text
    assert "No missing values." in text and "OPENAI_API_KEY" in text

    assert_valid_pngs(created)
    names = [p.name for p in created if p.suffix == ".png"]
    assert "sales_revenue_by_month.png" in names and "sales_revenue_by_region.png" in names
    for name in names:
        assert f"`{name}`" in text
    regions = json.loads(next(p for p in created if p.name == "sales_revenue_by_region.chart.json").read_text())
    assert regions["kind"] == "bar" and regions["categories"] == list(by_region.index)
    assert regions["series"][0]["values"] == pytest.approx(list(by_region.to_numpy(dtype=float)))
    assert result.response_id is None and result.model == "offline" and len(result.code) == 1
    assert "def run_profile" in result.code[0] and result.usage.input_tokens == 0
    assert lines == ["running code…", "writing the answer…"]


async def test_web_traffic_weekly_trend_channels_and_correlation(runner: SubprocessRunner) -> None:
    f = put(runner, "web", "web_traffic.csv", (EXAMPLES / "web_traffic.csv").read_bytes())
    result, created, _ = await first_look(runner, "web", f)
    text = result.text
    df = pd.read_csv(EXAMPLES / "web_traffic.csv", parse_dates=["date"])
    assert "460 rows × 5 columns" in text
    sessions = df.groupby("channel")["sessions"].sum().sort_values(ascending=False)
    assert f"organic brings the most sessions, {format_pct(sessions['organic'] / sessions.sum() * 100)}" in text
    r = df["sessions"].corr(df["signups"])
    assert f"sessions and signups have a very strong positive correlation (r = {r:.2f})" in text
    weekly = df.set_index("date")["sessions"].resample("W-MON", closed="left", label="left").sum()
    # 2025-07-01 is a Tuesday and 2025-09-30 ends two days into a week: both edge weeks are partial
    assert f"{format_number(weekly.iloc[1])} in the week of {weekly.index[1]:%Y-%m-%d}" in text
    assert f"{format_number(weekly.iloc[-2])} in the week of {weekly.index[-2]:%Y-%m-%d}" in text
    assert "incomplete: week of 2025-06-30 and week of 2025-09-29" in text
    assert f"**bounce_rate**: average {format_number(df['bounce_rate'].mean())}" in text
    assert_valid_pngs(created)
    assert "web_traffic_sessions_by_week.png" in [p.name for p in created]


async def test_support_tickets_missing_values_durations_and_categories(runner: SubprocessRunner) -> None:
    f = put(runner, "support", "support_tickets.csv", (EXAMPLES / "support_tickets.csv").read_bytes())
    result, created, _ = await first_look(runner, "support", f)
    text = result.text
    df = pd.read_csv(EXAMPLES / "support_tickets.csv", parse_dates=["opened_at", "resolved_at"])
    missing = int(df["resolved_at"].isna().sum())
    assert f"resolved_at {format_pct(missing / len(df) * 100)} ({missing})" in text
    hours = (df["resolved_at"] - df["opened_at"]).dropna().dt.total_seconds() / 3600
    assert f"median {hours.median():.1f} hours, 90% within {hours.quantile(0.9):.1f} hours" in text
    assert f"{missing} rows have no resolved_at yet" in text
    priority = df["priority"].value_counts()
    assert (f"{priority.index[0]} is the most common of 4 values, {format_pct(priority.iloc[0] / len(df) * 100)} "
            f"of rows ({priority.iloc[0]})") in text
    assert "ticket_id (identifier)" in text
    assert f"**satisfaction**: average {format_number(df['satisfaction'].mean())}" in text
    assert "average satisfaction per week" in text  # the measure over time, not the row count
    assert_valid_pngs(created)


# ------------------------------------------------------------------------------------------------- edge cases


async def test_semicolon_and_decimal_comma(runner: SubprocessRunner) -> None:
    rows = ["region;month;revenue;margin"] + [
        f"{r};2024-{m:02d}-01;{1000 + 137 * m + 11 * i:,.2f};{0.1 + m / 100:.2f}".replace(",", " ")
        .replace(".", ",").replace(" ", ".")
        for m in range(1, 13) for i, r in enumerate(["Nord", "Süd", "Ost"])
    ]
    data = ("\n".join(rows) + "\n").encode()
    f = put(runner, "semi", "umsatz.csv", data)
    result, created, _ = await first_look(runner, "semi", f)
    df = pd.read_csv(runner.workdir("semi") / "umsatz.csv", sep=";", decimal=",", thousands=".")
    assert df["revenue"].dtype == float and df["revenue"].sum() > 36000
    assert "36 rows × 4 columns" in result.text
    assert "read as semicolon-separated, decimal comma" in result.text
    assert f"**revenue**: total {format_number(df['revenue'].sum())}" in result.text
    assert f"**margin**: average {format_number(df['margin'].mean())}" in result.text
    assert_valid_pngs(created)


async def test_many_missing_values_are_flagged(runner: SubprocessRunner) -> None:
    rng = np.random.default_rng(7)
    df = pd.DataFrame({"city": rng.choice(["Lyon", "Nantes", "Lille"], 200),
                       "price": rng.normal(300, 40, 200).round(2),
                       "rooms": rng.integers(1, 6, 200).astype(float),
                       "floor": rng.integers(0, 10, 200).astype(float)})
    df.loc[rng.random(200) < 0.55, "floor"] = np.nan
    df.loc[rng.random(200) < 0.1, "price"] = np.nan
    f = put(runner, "missing", "flats.csv", df.to_csv(index=False).encode())
    result, created, _ = await first_look(runner, "missing", f)
    floor_missing = int(df["floor"].isna().sum())
    assert f"floor {format_pct(floor_missing / 200 * 100)} ({floor_missing})" in result.text
    assert f"⚠️ Mostly or largely empty: floor ({format_pct(floor_missing / 200 * 100)})" in result.text
    assert "flats_missing_values.png" in [p.name for p in created] or len(created) == 4
    assert_valid_pngs(created)


async def test_single_column_file(runner: SubprocessRunner) -> None:
    values = [round(20 + 5 * np.sin(i / 5) + i * 0.1, 2) for i in range(60)]
    f = put(runner, "single", "readings.txt", ("reading\n" + "\n".join(map(str, values)) + "\n").encode())
    result, created, _ = await first_look(runner, "single", f)
    series = pd.Series(values)
    assert "60 rows × 1 column" in result.text and "reading (number)" in result.text
    assert f"median {format_number(series.median())}" in result.text
    assert f"{format_number(series.min())} to {format_number(series.max())}" in result.text
    assert sorted(p.name for p in created) == [
        "readings_reading_distribution.png", "readings_reading_in_order.chart.json",
        "readings_reading_in_order.png"]
    assert_valid_pngs(created)


async def test_tiny_file_with_two_rows(runner: SubprocessRunner) -> None:
    f = put(runner, "tiny", "tiny.csv", b"name,score\nalpha,3.5\nbeta,4.25\n")
    result, created, _ = await first_look(runner, "tiny", f)
    assert "2 rows × 2 columns" in result.text
    assert "Only 2 rows: the numbers below describe these rows" in result.text
    assert "average 3.88, median 3.88 (3.5 to 4.25)" in result.text
    assert_valid_pngs(created, low=0, high=4)


async def test_latin1_file(runner: SubprocessRunner) -> None:
    rows = ["produit,catégorie,prix"] + [f"article {i},{'Café' if i % 3 else 'Thé'},{2 + i % 5}.5" for i in range(30)]
    f = put(runner, "latin", "ventes.csv", ("\n".join(rows) + "\n").encode("latin-1"))
    result, created, _ = await first_look(runner, "latin", f)
    assert "read as latin-1 encoding" in result.text
    assert "**catégorie**: Café is the most common of 2 values, 66.7% of rows (20)" in result.text
    assert "**prix**: average 4.5" in result.text  # a price is averaged, never summed
    assert "ventes_prix_by_categorie.png" in [p.name for p in created]
    assert_valid_pngs(created)


async def test_gzipped_csv(runner: SubprocessRunner) -> None:
    data = gzip.compress((EXAMPLES / "sales.csv").read_bytes())
    f = put(runner, "gz", "sales.csv.gz", data)
    result, created, _ = await first_look(runner, "gz", f)
    df = pd.read_csv(EXAMPLES / "sales.csv")
    assert "**sales.csv.gz**: 288 rows × 6 columns" in result.text and "gzip-compressed" in result.text
    assert f"total {format_number(df['revenue'].sum())}" in result.text
    assert_valid_pngs(created)
    assert "sales_revenue_by_month.png" in [p.name for p in created]


async def test_the_profile_reads_with_the_bots_options_and_sniffs_nothing(runner: SubprocessRunner) -> None:
    data = "a|b\n1,5|x\n2,5|y\n3,5|x\n".encode("cp1252")
    told = put(runner, "told", "pipes.txt", data)  # the options inspect_head decides
    assert told.read_options == ReadOptions(sep="|", decimal=",")
    result, _, _ = await first_look(runner, "told", told)
    assert "pipe-separated, decimal comma" in result.text and "**a**: average 2.5" in result.text
    wrong = put(runner, "wrong", "semi.csv", b"a;b\n1;2\n3;4\n", options=ReadOptions())  # told a comma
    result, _, _ = await first_look(runner, "wrong", wrong)
    assert "**semi.csv**: 2 rows × 1 column" in result.text  # read as told: the profiler has no sniffer


def test_file_specs_carry_the_pandas_call_and_fall_back_on_the_name() -> None:
    stored = DataFile(name="x.csv", path="/d/x.csv", size=1, read_options=ReadOptions(sep=";", skiprows=3))
    legacy = DataFile(name="y.tsv.gz", path="/d/y.tsv.gz", size=1)
    assert file_specs([stored, legacy]) == [
        {"name": "x.csv", "path": "/d/x.csv", "reader": "read_csv", "kwargs": {"sep": ";", "skiprows": 3}},
        {"name": "y.tsv.gz", "path": "/d/y.tsv.gz", "reader": "read_csv",
         "kwargs": {"sep": "\t", "compression": "gzip"}},
    ]


async def test_two_files_share_the_chart_budget_and_names_never_collide(runner: SubprocessRunner) -> None:
    a = put(runner, "two", "sales.csv", (EXAMPLES / "sales.csv").read_bytes())
    b = put(runner, "two", "web_traffic.csv", (EXAMPLES / "web_traffic.csv").read_bytes())
    result, created, _ = await first_look(runner, "two", a, b)
    assert "**sales.csv**" in result.text and "**web_traffic.csv**" in result.text
    assert_valid_pngs(created, low=4, high=4)
    assert {p.name.split("_")[0] for p in created} == {"sales", "web"}
    _, created_again, _ = await first_look(runner, "two", a)
    assert created_again and not {p.name for p in created_again} & {p.name for p in created}
    assert "sales_revenue_by_month_2.png" in [p.name for p in created_again]


# ------------------------------------------------------------------------------------------------- follow-ups, failures


async def test_follow_up_question_needs_a_model(runner: SubprocessRunner) -> None:
    f = put(runner, "follow", "sales.csv", (EXAMPLES / "sales.csv").read_bytes())
    result = await OfflineAnalyst(runner=runner, timeout=60).run(
        AnalysisRequest(question="Which region grows fastest?", container_id="follow", files=(f,)))
    assert "OPENAI_API_KEY" in result.text and "OPENAI_BASE_URL" in result.text and "DATASTORY_MODEL" in result.text
    assert "Which region grows fastest?" in result.text
    assert result.code == () and result.response_id is None and runner.runs == []
    assert [p.name for p in runner.workdir("follow").iterdir()] == ["sales.csv"]


async def test_question_with_a_new_file_gets_the_first_look_and_an_honest_note(runner: SubprocessRunner) -> None:
    f = put(runner, "asked", "sales.csv", (EXAMPLES / "sales.csv").read_bytes())
    result, created, _ = await first_look(runner, "asked", f, question="Which product sells best?")
    assert result.text.startswith("I can't answer “Which product sells best?” without a language model")
    assert "Hardware brings the most revenue" in result.text
    assert_valid_pngs(created)


async def test_unreadable_file_is_reported_in_the_narrative(runner: SubprocessRunner) -> None:
    good = put(runner, "bad", "tiny.csv", b"x,y\n1,2\n3,4\n5,7\n")
    gone = DataFile(name="gone.csv", path=str(runner.workdir("bad") / "gone.csv"), size=10)
    result, _, _ = await first_look(runner, "bad", good, gone)
    assert "**gone.csv**: I could not read this file (FileNotFoundError" in result.text
    assert "**tiny.csv**: 3 rows × 2 columns" in result.text


async def test_code_error_raises_analysis_failed(runner: SubprocessRunner) -> None:
    f = put(runner, "broken", "tiny.csv", b"x,y\n1,2\n3,4\n")
    await runner.execute("broken", "import sys\nsys.modules['pandas'] = None", timeout=30)
    with pytest.raises(AnalysisFailed) as err:
        await first_look(runner, "broken", f)
    assert err.value.reason.startswith("The data profile failed: ") and "pandas" in err.value.reason


async def test_timeout_raises_analysis_failed(runner: SubprocessRunner) -> None:
    f = put(runner, "slow", "sales.csv", (EXAMPLES / "sales.csv").read_bytes())
    await runner.execute("slow", "x = 1", timeout=30)  # the interpreter is up; the profile itself is too slow
    with pytest.raises(AnalysisFailed) as err:
        await first_look(runner, "slow", f, timeout=0.01)
    assert "took longer than 0.01 s" in err.value.reason


# ------------------------------------------------------------------------------------------------- profiler parts


def test_profiler_periods() -> None:
    def period(start: str, periods: int, freq: str) -> str | None:
        chosen = choose_period(pd.Series(pd.date_range(start, periods=periods, freq=freq)))
        return chosen[1] if chosen else None

    assert period("2024-01-01", 24, "MS") == "month"
    assert period("2025-07-01", 92, "D") == "week"
    assert period("2025-07-01", 30, "D") == "day"
    assert period("2025-07-01", 48, "h") == "hour"
    assert period("2010-01-01", 15, "YS") == "year"
    assert period("2024-01-01", 1, "D") is None


async def test_example_copy_is_untouched(runner: SubprocessRunner, tmp_path: Path) -> None:
    copy = tmp_path / "sales.csv"
    shutil.copy(EXAMPLES / "sales.csv", copy)
    f = DataFile(name="sales.csv", path=str(copy), size=copy.stat().st_size)
    await first_look(runner, "outside", f)
    assert copy.read_bytes() == (EXAMPLES / "sales.csv").read_bytes()
