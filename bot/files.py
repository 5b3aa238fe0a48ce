"""File checks made before any download: is this a file the bot can analyse, and if not, why not.

Every file a user shares is either accepted or gets a reason the thread is told (type, size with the limit,
external or deleted file); nothing is dropped silently.
"""

from __future__ import annotations

from bot.formatting import human_size
from bot.poster import SlackFile

DATA_EXTENSIONS = (".csv", ".tsv", ".txt", ".tab", ".psv")
COMPRESSED_SUFFIX = ".gz"
PASS_THROUGH_EXTENSIONS = (".xlsx", ".json")
"""Read by pandas inside the sandbox; no sniffing on our side."""
DATA_FILETYPES = frozenset({"csv", "tsv", "text", "gzip", "xlsx", "json"})
ACCEPTED_HINT = "`.csv`, `.tsv`, delimited `.txt` (also gzip-compressed, e.g. `.csv.gz`), `.xlsx` and `.json`"


def extension(name: str) -> str:
    """The data extension of ``name``: ``.csv`` for ``sales.csv`` and for ``sales.csv.gz``; lower case."""
    lower = name.lower()
    if lower.endswith(COMPRESSED_SUFFIX):
        lower = lower[: -len(COMPRESSED_SUFFIX)]
    dot = lower.rfind(".")
    return lower[dot:] if dot > 0 else ""


def is_supported_name(name: str) -> bool:
    """True for names the bot reads (``.csv``, ``.tsv.gz``, ``.xlsx``...)."""
    ext = extension(name)
    compressed = name.lower().endswith(COMPRESSED_SUFFIX)
    return ext in DATA_EXTENSIONS or (ext in PASS_THROUGH_EXTENSIONS and not compressed)


def rejection_reason(file: SlackFile, *, max_bytes: int) -> str | None:
    """Why ``file`` cannot be analysed, in words for the thread; ``None`` when it is accepted."""
    if file.mode == "tombstone":
        return "it was deleted before I could read it"
    if file.mode == "external":
        return ("it is an external file (Google Drive, Dropbox, …) that Slack only links to; "
                "upload the file itself to Slack")
    if not is_supported_name(file.name):
        shown = extension(file.name) or "files without an extension"
        return f"`{shown}` is not a type I read; I read {ACCEPTED_HINT}"
    if file.size > max_bytes:
        return (f"it is {human_size(file.size)}, over the limit of {human_size(max_bytes)} "
                "(`DATASTORY_MAX_FILE_MB`)")
    return None
