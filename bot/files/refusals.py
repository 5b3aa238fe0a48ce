"""Which files the bot reads, and how it says no: the checks on Slack's metadata before any download, the
:class:`FileRejected` refusal every later check raises, and the sentences the thread gets.

Every file a user shares is either analysed or gets a reason the thread is told; nothing is dropped silently. A
refusal is an expected outcome, not a failure of the bot: it is logged at INFO, without a stack trace.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.formatting import human_size
from bot.poster import SlackFile

DATA_EXTENSIONS = (".csv", ".tsv", ".txt", ".tab", ".psv", ".dat")
COMPRESSED_SUFFIX = ".gz"
PASS_THROUGH_EXTENSIONS = (".xlsx", ".xlsm", ".json", ".jsonl", ".ndjson")
"""Read by pandas inside the sandbox (JSON Lines may also be gzip-compressed)."""
DATA_FILETYPES = frozenset({"csv", "tsv", "text", "gzip", "xlsx", "json"})
ACCEPTED_HINT = ("`.csv`, `.tsv`, delimited or fixed-width `.txt` and `.dat` (also gzip-compressed, e.g. `.csv.gz`), "
                 "`.xlsx`, `.json` and `.jsonl`")


def extension(name: str) -> str:
    """The data extension of ``name``: ``.csv`` for ``sales.csv`` and for ``sales.csv.gz``; lower case."""
    lower = name.lower()
    if lower.endswith(COMPRESSED_SUFFIX):
        lower = lower[: -len(COMPRESSED_SUFFIX)]
    dot = lower.rfind(".")
    return lower[dot:] if dot > 0 else ""


def is_compressed_name(name: str) -> bool:
    """True for ``*.gz`` names."""
    return name.lower().endswith(COMPRESSED_SUFFIX)


def is_supported_name(name: str) -> bool:
    """True for names the bot reads (``.csv``, ``.tsv.gz``, ``.xlsx``...)."""
    ext = extension(name)
    if ext in DATA_EXTENSIONS or ext in (".jsonl", ".ndjson"):
        return True
    return ext in PASS_THROUGH_EXTENSIONS and not is_compressed_name(name)


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


class FileRejected(Exception):
    """A file cannot be analysed. ``reason`` is a clause for the thread (no file contents, safe to log)."""

    def __init__(self, reason: str, *, name: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.name = name

    @property
    def message(self) -> str:
        """The sentence the thread gets."""
        what = f"`{self.name}`" if self.name else "this file"
        return f"I can't analyse {what}: {self.reason}."


class FilesRefused(FileRejected):
    """Every file a turn brought was refused (or the thread has no readable data at all): the turn ends here."""

    def __init__(self, refusals: Sequence[tuple[str, str]]) -> None:
        self.refusals = tuple(refusals)
        super().__init__("; ".join(f"{name}: {reason}" for name, reason in self.refusals) or "no readable data")

    @property
    def message(self) -> str:
        """One line for one file, a bullet per file for several, a hint when the thread has nothing readable."""
        if not self.refusals:
            return f"There is no data in this thread that I could read. Share a file: I read {ACCEPTED_HINT}."
        if len(self.refusals) == 1:
            name, reason = self.refusals[0]
            return f"I can't analyse `{name}`: {reason}."
        return "I can't analyse these files:\n" + "\n".join(f"• `{n}`: {r}" for n, r in self.refusals)


ACCESS_DENIED_REASON = ("Slack served its sign-in page instead of the file, so the app lacks the `files:read` scope "
                        "or the file is not shared in a conversation I'm in")
FOREIGN_HOST_REASON = "it is hosted outside Slack, so I did not download it with my token"
NOT_FOUND_REASON = "Slack no longer has it (deleted?)"


def refusals_text(refusals: Sequence[tuple[str, str]], *, lead: str = "I'm skipping") -> str:
    """``I'm skipping this file:\\n• `a.csv`: reason`` (the same shape as the pre-download refusals)."""
    what = "this file" if len(refusals) == 1 else "these files"
    return f"{lead} {what}:\n" + "\n".join(f"• `{name}`: {reason}" for name, reason in refusals)
