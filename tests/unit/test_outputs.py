"""The formula scan that lets clean CSV outputs skip neutralising: it may say "maybe" too often, never "clean" for a
file that :func:`bot.files.neutralise_csv` would change, whichever way the file is cut into pieces."""

from __future__ import annotations

import random

import pytest

from bot import outputs
from bot.files import neutralise_csv
from bot.outputs import Outputs, may_hold_formula

ALPHABET = ['a', '1', '2', '-', '+', '=', '@', ',', '"', ' ', '\t', '\r', '\n', '.', 'e', '%', '5']


def cases(n: int, longest: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randrange(longest))).encode() for _ in range(n)]


@pytest.mark.parametrize("delimiter", [",", "\t"])
@pytest.mark.parametrize("piece", [outputs.SCAN_PIECE, 1, 7])
def test_a_file_called_clean_is_one_neutralising_would_not_change(
    delimiter: str, piece: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outputs, "SCAN_PIECE", piece)
    clean = 0
    for data in cases(6000, 40, seed=len(delimiter) * 100 + piece):
        if not may_hold_formula(data, delimiter=delimiter):
            clean += 1
            assert neutralise_csv(data, delimiter=delimiter) == data, data
    assert clean > 600  # the scan is worth running: it clears a good share of files


def test_typical_files() -> None:
    assert not may_hold_formula(b"region,month,revenue\nNorth,2025-01,-12.5\nSouth,2025-02,+3e5\n")
    assert not may_hold_formula(b'a,b\n"x, y",-4%\n')
    assert may_hold_formula(b"a,b\n1,=SUM(A1:A2)\n")
    assert may_hold_formula(b'a,b\n1,"  @cmd"\n')
    assert may_hold_formula(b"\xef\xbb\xbf=1,2\n")  # after a BOM
    assert may_hold_formula("a\n1\n".encode("utf-16"))  # not scanned
    assert not may_hold_formula(b"a\tb\n-1\t2\n", delimiter="\t")


def test_what_is_left_out_is_named() -> None:
    assert Outputs().note() == ""
    note = Outputs(left_out=(("big\n.csv", "60.0 MB, over the 50.0 MB limit per file"),)).note()
    assert note == "_Not attached: `big .csv` (60.0 MB, over the 50.0 MB limit per file)._"
