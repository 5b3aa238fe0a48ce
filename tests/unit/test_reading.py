"""One reading of each file: ReadOptions (the pandas call, JSON), single-byte code pages, layouts and headers.

pandas itself reads every case with the options the inspection decides, and must get the expected columns.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from bot.files import ReadOptions, inspect_head
from bot.files.encoding import single_byte_codec


def test_read_options_render_the_exact_call_and_survive_json() -> None:
    options = ReadOptions(sep=";", decimal=",", thousands=".", encoding="cp1251", header=None, skiprows=(0, 1, 3),
                          skipfooter=2)
    assert options.call("/d/x.csv") == (
        "pandas.read_csv('/d/x.csv', sep=';', decimal=',', thousands='.', encoding='cp1251', header=None, "
        "skiprows=[0, 1, 3], skipfooter=2, engine='python')")
    assert ReadOptions.from_json(options.to_json()) == options
    assert ReadOptions().to_json() == "{}" and ReadOptions.from_json("{}") == ReadOptions()
    assert ReadOptions.from_json("not json") is None and ReadOptions.from_json('{"sep": 1, "nope": 2}') is None
    fixed = ReadOptions(format="fwf", colspecs=((0, 8), (9, 14)))
    assert fixed.call("f.txt") == "pandas.read_fwf('f.txt', colspecs=[[0, 8], [9, 14]])"
    assert ReadOptions.from_json(fixed.to_json()) == fixed
    assert ReadOptions(format="excel", sheet_name="Data", skiprows=2).call("w.xlsx") == (
        "pandas.read_excel('w.xlsx', sheet_name='Data', skiprows=2)")
    assert ReadOptions.for_name("e.jsonl.gz").call("p") == "pandas.read_json('p', lines=True, compression='gzip')"


CITIES_1251 = "Город;Население\n" + "".join(f"{c};{n}\n" for c, n in [("Москва", 13010112), ("Казань", 1308660),
                                                                          ("Новосибирск", 1633595)] * 5)
MESTA_1250 = "Město;Obyvatelé\n" + "".join(f"{c};{n}\n" for c, n in [("Plzeň", 175219), ("Brno", 382405),
                                                                        ("České Budějovice", 94463)] * 5)


@pytest.mark.parametrize(("text", "codec"), [(CITIES_1251, "cp1251"), (MESTA_1250, "cp1250"),
                                             (CITIES_1251, "koi8-r"), ("Straße;Köln;Zürich\n" * 20, "latin-1")])
def test_single_byte_code_pages_are_told_apart(text: str, codec: str) -> None:
    found, certain = single_byte_codec(text.encode(codec))
    assert found == codec and certain


def test_too_little_text_to_tell_is_a_best_guess_and_the_preview_says_so() -> None:
    data = b"name,city\n" + "Ærø,x\n".encode("latin-1")
    profile = inspect_head(data, name="p.csv", size=len(data), complete=True)
    assert not profile.encoding_certain and "(a best guess)" in profile.preview("p.csv", len(data))
    assert "the encoding is a best guess" in profile.facts()


LAYOUTS: dict[str, tuple[str, list[str]]] = {
    "quoted_blanks.csv": ("'OBS' 'GPA' 'TUCE'\n1 2.66 20\n2 2.89 22\n3 3.28 24\n", ["OBS", "GPA", "TUCE"]),
    "short_header.csv": ("ds,y\n" + "".join(f"2024-01-01 {h:02d}:00:00,{h * 1.5}\n" for h in range(24)), ["ds", "y"]),
    "preamble.csv": ("Sales report\nMade by finance\n\nregion,revenue\nNorth,10\nSouth,20\nEast,30\n\nTotal,60\n",
                     ["region", "revenue"]),
    "ruled.dat": ("      TITLE\n=====\nYear  Jan  Feb\n-----\n1749  58.0  62.6\n1750  73.3  75.9\n1751  70.0  43.5\n",
                  ["Year", "Jan", "Feb"]),
    "years.csv": ("country,2019,2020\nChile,1.5,2.5\nPeru,1.2,1.9\n", ["country", "2019", "2020"]),
    "grouped.csv": ('city,people\nA,"1,234,567"\nB,"2,345"\nC,"12,000"\n', ["city", "people"]),
    "index.txt": ("   SIZE SUBS\nAlpha   58 13\nBeta 42 0\nGamma 3 1\n", ["SIZE", "SUBS"]),
    "fixed.txt": ("name       value\n" + "".join(f"{n:<11}{v:>5}\n" for n, v in
                                                 [("New York", 12), ("Paris", 3), ("San Jose", 44), ("Rome", 5),
                                                  ("El Paso", 8)]), ["name", "value"]),
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_pandas_reads_each_layout_with_the_decided_options(name: str, tmp_path: Path) -> None:
    text, columns = LAYOUTS[name]
    path = tmp_path / name
    path.write_text(text)
    profile = inspect_head(text.encode(), name=name, size=len(text), complete=True)
    reader, kwargs = profile.options.pandas()
    frame = getattr(pd, reader)(path, **kwargs)
    assert [str(c) for c in frame.columns] == columns, profile.read_call(name)
    assert len(frame) == profile.rows
    assert not frame.empty and not any(str(c).startswith("Unnamed") for c in frame.columns)
    if name == "grouped.csv":
        assert frame["people"].tolist() == [1234567, 2345, 12000]


def test_currency_and_percent_signs_are_typed_as_numbers_with_their_unit() -> None:
    data = b'item,price,off\na,"$1,234.50",10%\nb,$12.00,5%\nc,$7.25,0%\n'
    profile = inspect_head(data, name="p.csv", size=len(data), complete=True)
    assert [(c.name, c.type, c.unit) for c in profile.columns] == [
        ("item", "text", None), ("price", "number", "$"), ("off", "number", "%")]
    assert "numbers written with a sign that pandas reads as text: price ($), off (%)" in profile.facts()
    frame = pd.read_csv(io.BytesIO(data), **profile.options.pandas()[1])
    assert frame["price"].tolist() == ["$1,234.50", "$12.00", "$7.25"]  # hence the note for the model


def test_every_engine_is_told_the_same_reading_and_the_house_style() -> None:
    from bot.analysts.base import DataFile
    from bot.analysts.chat_tools import CHAT_INSTRUCTIONS
    from bot.analysts.prompts import CHART_STYLE, INSTRUCTIONS, READ_RULE, describe_file

    data = b"a;b\n1,5;x\n2,5;y\n"
    profile = inspect_head(data, name="s.csv", size=len(data), complete=True)
    told = DataFile(name="s.csv", path="/mnt/data/s.csv", size=len(data), facts=profile.facts("/mnt/data/s.csv"),
                    read_options=profile.options)
    assert "read with pandas.read_csv('/mnt/data/s.csv', sep=';', decimal=',')" in describe_file(told)
    legacy = DataFile(name="t.tsv", path="/mnt/data/t.tsv", size=3)  # stored before the options were kept
    assert describe_file(legacy).endswith("; read with pandas.read_csv('/mnt/data/t.tsv', sep='\\t')")
    for instructions in (INSTRUCTIONS, CHAT_INSTRUCTIONS):
        assert READ_RULE in instructions and CHART_STYLE in instructions
    assert "never a 1e6 offset" in CHART_STYLE and "ax.bar_label" in CHART_STYLE
