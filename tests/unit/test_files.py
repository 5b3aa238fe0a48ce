"""File checks before any download: accepted types, size limit, external and deleted files."""

from __future__ import annotations

import pytest

from bot.files import extension, is_supported_name, rejection_reason
from bot.poster import SlackFile

MB = 1024 * 1024


def slack_file(name: str, *, size: int = 100, mode: str = "hosted") -> SlackFile:
    return SlackFile(id="F1", name=name, title=name, mimetype="text/csv", filetype="csv", size=size, mode=mode,
                     url_private_download="https://files.slack.com/x")


@pytest.mark.parametrize("name", ["sales.csv", "SALES.CSV", "t.tsv", "notes.txt", "sales.csv.gz", "a.tsv.gz",
                                  "book.xlsx", "rows.json"])
def test_supported_names(name: str) -> None:
    assert is_supported_name(name)
    assert rejection_reason(slack_file(name), max_bytes=MB) is None


@pytest.mark.parametrize("name", ["report.pdf", "image.png", "archive.zip", "README", "book.xlsx.gz"])
def test_unsupported_names_say_what_is_accepted(name: str) -> None:
    reason = rejection_reason(slack_file(name), max_bytes=MB)
    assert reason is not None and "`.csv`" in reason and "not a type I read" in reason


def test_extension_ignores_gzip() -> None:
    assert extension("sales.csv.gz") == ".csv"
    assert extension("noext") == ""


def test_too_large_names_the_size_and_the_limit() -> None:
    reason = rejection_reason(slack_file("big.csv", size=700 * MB), max_bytes=512 * MB)
    assert reason == "it is 700.0 MB, over the limit of 512.0 MB (`DATASTORY_MAX_FILE_MB`)"


def test_external_and_deleted_files_are_explained() -> None:
    external = rejection_reason(slack_file("drive.csv", mode="external"), max_bytes=MB)
    deleted = rejection_reason(slack_file("gone.csv", mode="tombstone"), max_bytes=MB)
    assert external is not None and "external file" in external
    assert deleted == "it was deleted before I could read it"
