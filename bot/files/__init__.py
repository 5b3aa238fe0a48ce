"""File checks: before any download (type, size, mode), while streaming Slack → sandbox (what is inside and how
to read it), and on the way back (formulas defused in CSVs the bot posts).

- :mod:`bot.files.refusals`: the names the bot reads, the checks on Slack's metadata, :class:`FileRejected`.
- :mod:`bot.files.inspect`: :func:`inspect_stream`, the head of a download decides, every byte passes unchanged.
- :mod:`bot.files.readahead`: the bounded read-ahead that lets the download run while the upload sends.
- :mod:`bot.files.encoding`: bytes → text (byte-order marks, UTF-8, single-byte code pages, binary signatures).
- :mod:`bot.files.tables`: text → table (delimiter or blanks or fixed width, preamble, footer, rule lines).
- :mod:`bot.files.values`: cell values → column types, number marks, the header.
- :mod:`bot.files.options`: :class:`ReadOptions`, the one reading of a file every analyst uses.
- :mod:`bot.files.profile`: :class:`FileProfile`, what is told to the analysis and shown in the thread.
- :mod:`bot.files.neutralise`: :func:`neutralise_csv` for the CSV/TSV files the bot posts back to Slack.
"""

from __future__ import annotations

from bot.files.inspect import HEAD_BYTES, InspectedStream, inspect_head, inspect_stream
from bot.files.neutralise import is_dangerous_cell, neutralise_csv
from bot.files.options import ReadOptions
from bot.files.profile import FileProfile
from bot.files.refusals import (
    ACCEPTED_HINT,
    ACCESS_DENIED_REASON,
    DATA_EXTENSIONS,
    FOREIGN_HOST_REASON,
    NOT_FOUND_REASON,
    FileRejected,
    FilesRefused,
    extension,
    is_compressed_name,
    is_supported_name,
    refusals_text,
    rejection_reason,
)
from bot.files.tables import Column

__all__ = [
    "ACCEPTED_HINT", "ACCESS_DENIED_REASON", "DATA_EXTENSIONS", "FOREIGN_HOST_REASON", "HEAD_BYTES",
    "NOT_FOUND_REASON", "Column", "FileProfile", "FileRejected", "FilesRefused", "InspectedStream", "ReadOptions",
    "extension", "inspect_head", "inspect_stream", "is_compressed_name", "is_dangerous_cell", "is_supported_name",
    "neutralise_csv", "refusals_text", "rejection_reason",
]
