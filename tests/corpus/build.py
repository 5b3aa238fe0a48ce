"""The real-data corpus: public data files that pinned PyPI packages ship (the test extras of ``pyproject.toml``),
copied from the installed packages at test time (never committed), plus hand-made hard cases, one per way a
real file goes wrong.

:func:`real_files` finds the packaged files; :func:`hard_cases` writes the hand-made ones and says what each must
give: the column names the narrative must name, or the reason of the one-line refusal.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import random
from dataclasses import dataclass
from pathlib import Path

from bot.files import is_supported_name

PACKAGED = {
    "statsmodels": ("datasets/*/*.csv", "datasets/*/src/*"),
    "pingouin": ("datasets/*.csv",),
    "vega_datasets": ("_data/*.csv", "_data/*.json"),
    "palmerpenguins": ("data/*.csv",),
    "sklearn": ("datasets/data/*.csv", "datasets/data/*.csv.gz"),
}
"""Packages (all in the ``test`` extra, pinned) and the globs of their data files."""
PROSE = frozenset({"names.txt", "randdesc.txt"})
"""Packaged ``.txt`` files that describe a dataset in sentences: each must get the one-line refusal."""
PROSE_REFUSAL = ("it is plain text without columns: I read `.txt` files only when their values are separated by "
                 "`,`, `;`, tab, `|` or blanks, or aligned in columns")


@dataclass(frozen=True, slots=True)
class Case:
    """One file of the corpus and what it must give."""

    path: Path
    columns: tuple[str, ...] = ()
    """Names the narrative must contain (hand-made cases); empty for packaged files (checked against pandas)."""
    refusal: str = ""
    """The reason a refused file must be given (empty when the file must be analysed)."""
    source: str = "hand-made"


def real_files() -> list[Case]:
    """Every data file the packaged datasets hold (only names the bot accepts), sorted."""
    cases: list[Case] = []
    for package, globs in PACKAGED.items():
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"{package} is not installed: pip install -e '.[test]'")
        root = Path(next(iter(spec.submodule_search_locations)))
        for pattern in globs:
            for path in sorted(root.glob(pattern)):
                if path.is_file() and is_supported_name(path.name) and path.stat().st_size > 0:
                    refusal = PROSE_REFUSAL if path.name in PROSE else ""
                    cases.append(Case(path=path, source=package, refusal=refusal))
    return cases


def _write(out: Path, name: str, data: bytes | str, encoding: str = "utf-8") -> Path:
    path = out / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return path


def _workbook(path: Path) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    notes = book.active
    assert notes is not None
    notes.title = "Notes"
    notes["A1"] = "Regional sales export"
    data = book.create_sheet("Data")
    data["A1"] = "Sales by region, 2024"
    data.append([])
    data.append(["region", "month", "revenue", "orders"])
    rng = random.Random(3)
    for month in range(1, 13):
        for region in ("North", "South", "East"):
            data.append([region, f"2024-{month:02d}-01", round(rng.uniform(1000, 9000), 2), rng.randint(5, 90)])
    book.save(path)
    return path


def hard_cases(out: Path) -> list[Case]:
    """Write the hand-made cases into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(19)
    cases: list[Case] = []

    def add(name: str, data: bytes | str, *columns: str, encoding: str = "utf-8", refusal: str = "") -> None:
        cases.append(Case(path=_write(out, name, data, encoding), columns=columns, refusal=refusal))

    # whitespace-separated with a quoted header (statsmodels' spector), as .csv, .dat and .txt
    rows = "".join(f"{i} {rng.uniform(2, 4):.2f} {rng.randint(12, 29)} {rng.randint(0, 1)}\n" for i in range(1, 33))
    add("grades.csv", "'OBS' 'GPA' 'TUCE' 'PSI'\n" + rows, "GPA", "TUCE")
    add("grades.dat", "OBS GPA TUCE PSI\n" + rows, "GPA", "TUCE")
    # fixed-width text: names with blanks, a blank cell
    lines = ["city            population  area_km2", *[
        f"{name:<16}{pop:>10}  {area:>8}" for name, pop, area in
        [("New York", 8336817, "783.8"), ("Los Angeles", 3979576, "1213.9"), ("San Antonio", 1547253, ""),
         ("Chicago", 2693976, "606.1"), ("Salt Lake City", 200567, "285.9"), ("San Diego", 1423851, "964.5"),
         ("Fort Worth", 935508, "916.0"), ("El Paso", 678815, "")]]]
    add("cities.txt", "\n".join(lines) + "\n", "population", "area_km2")
    # a two-column hourly series with a short header
    start = 1_700_000_000 - 1_700_000_000 % 3600
    from datetime import UTC, datetime

    series = "".join(f"{datetime.fromtimestamp(start + 3600 * i, UTC):%Y-%m-%d %H:%M:%S},"
                     f"{50 + 10 * ((i % 24) / 24) + rng.uniform(-2, 2):.3f}\n" for i in range(24 * 21))
    add("hourly.csv", "ds,y\n" + series, "y", "ds")
    # a preamble and a footer around the table
    body = "".join(f"{m},{rng.randint(100, 900)},{rng.randint(1, 40)}\n" for m in
                   ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"))
    add("report.csv", "Monthly report\nGenerated 2024-12-31 by the finance team\n\nmonth,visits,signups\n" + body
        + "\nTotal,5000,200\nSource: internal\n", "visits", "signups")
    # JSON records and JSON Lines
    records = [{"id": i, "team": rng.choice(["red", "blue", "green"]), "score": round(rng.uniform(0, 100), 1),
                "joined": f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"} for i in range(120)]
    add("players.json", json.dumps(records, indent=1), "score", "team")
    add("events.jsonl", "".join(json.dumps({"event": rng.choice(["open", "click", "buy"]),
                                            "amount": rng.randint(1, 50), "day": f"2024-05-{d % 28 + 1:02d}"}) + "\n"
                                for d in range(200)), "amount", "event")
    cases.append(Case(path=_workbook(out / "regions.xlsx"), columns=("revenue", "region")))
    # thousands separators, currency and percent signs
    add("population.csv", "country,population,gdp_usd\n" + "".join(
        f'{c},"{rng.randint(1_000_000, 90_000_000):,}","{rng.randint(10**9, 9 * 10**11):,}"\n'
        for c in ("France", "Spain", "Italy", "Poland", "Greece", "Portugal", "Austria", "Ireland")),
        "population", "gdp_usd")
    add("umsatz.csv", "Filiale;Umsatz;Anteil\n" + "".join(
        f"Filiale {i};{rng.randint(1000, 999999):,}.{rng.randint(10, 99)};{rng.uniform(0, 30):.1f}\n"
        .replace(",", "X").replace(".", ",").replace("X", ".") for i in range(30)), "Umsatz", "Anteil")
    add("prices.csv", "product,price,discount\n" + "".join(
        f"item {i},\"${rng.randint(1, 4000):,}.{rng.randint(0, 99):02d}\",{rng.randint(0, 40)}%\n" for i in range(40)),
        "price", "discount")
    # dates in common formats
    add("dates.csv", "day_first,us_style,long_form,amount\n" + "".join(
        f"{d:02d}/{m:02d}/2024,{m}/{d}/2024,\"{['Jan', 'Feb', 'Mar', 'Apr'][m - 1]} {d}, 2024\",{rng.randint(1, 99)}\n"
        for m in range(1, 5) for d in range(1, 29)), "amount")
    add("stamps.csv", "date,sales\n" + "".join(f"2024{m:02d}{d:02d},{rng.randint(10, 99)}\n"
                                                for m in range(1, 7) for d in (1, 15)), "sales")
    add("years.csv", "country,2019,2020,2021,2022\n" + "".join(
        f"{c},{rng.uniform(1, 3):.2f},{rng.uniform(1, 3):.2f},{rng.uniform(1, 3):.2f},{rng.uniform(1, 3):.2f}\n"
        for c in ("Chile", "Peru", "Brazil", "Mexico", "Cuba")), "2019", "country")
    # very wide, one row, one column
    add("wide.csv", ",".join(f"g{i}" for i in range(20_190)) + "\n" + ",".join(
        f"{rng.uniform(0, 10):.3f}" for _ in range(20_190)) + "\n", "g0")
    add("header_cells.csv", ",".join("x" for _ in range(110_000)) + "\n" + ",".join(
        str(i % 10) for i in range(110_000)) + "\n", "x")
    add("one_row.csv", "store,revenue,visits\nDowntown,12500.5,340\n", "revenue", "visits")
    add("one_column.csv", "temperature\n" + "".join(f"{rng.uniform(-5, 30):.1f}\n" for _ in range(50)),
        "temperature")
    add("gzipped.csv.gz", gzip.compress(b"k,v\n" + b"".join(b"%d,%d\n" % (i, i * i % 97) for i in range(300)),
                                        mtime=0), "v")
    # single-byte encodings beyond Western Europe
    add("cities_cp1251.csv", "Город;Население;Регион\n" + "".join(
        f"{c};{rng.randint(100000, 12000000)};{r}\n" for c, r in
        [("Москва", "Центральный"), ("Санкт-Петербург", "Северо-Западный"), ("Новосибирск", "Сибирский"),
         ("Екатеринбург", "Уральский"), ("Казань", "Приволжский"), ("Нижний Новгород", "Приволжский")] * 4),
        "Население", "Город", encoding="cp1251")
    add("mesta_cp1250.csv", "Město;Obyvatelé;Kraj\n" + "".join(
        f"{c};{rng.randint(10000, 1300000)};{r}\n" for c, r in
        [("Praha", "Hlavní město"), ("Brno", "Jihomoravský"), ("Ostrava", "Moravskoslezský"), ("Plzeň", "Plzeňský"),
         ("Liberec", "Liberecký"), ("Olomouc", "Olomoucký"), ("České Budějovice", "Jihočeský")] * 3),
        "Obyvatelé", "Město", encoding="cp1250")
    # expected refusals: one clear line each
    add("empty.csv", b"", refusal="it is empty (0 bytes)")
    add("photo.csv", b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(2000)),
        refusal="it is a PNG image, not a text table")
    add("header_only.csv", "region,month,revenue\n", refusal="it has only a header row and no data rows")
    return cases
