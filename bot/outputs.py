"""What the code wrote, read to attach to the answer: within caps, cited files first, CSV formulas defused off the loop.

The files an analysis created are read in order (the ones the model cited, then by creation) until a cap is hit:
:attr:`OutputLimits.files` files, :attr:`OutputLimits.file_bytes` per file and :attr:`OutputLimits.turn_bytes` for
all of them (``DATASTORY_MAX_OUTPUT_MB``). A file left out is named in the answer with the reason
(:meth:`Outputs.note`), never dropped silently.

A CSV/TSV gets its spreadsheet formulas defused (:func:`bot.files.neutralise_csv`). That is CPU work on up to tens
of megabytes, so it never runs on the event loop: a quick scan (:func:`may_hold_formula`, a regular expression run
in 64 KiB pieces in a worker thread, each piece a short hold of the interpreter lock) proves most files clean, and
the others are neutralised in a worker *process*, at most :data:`CPU_SLOTS` at once (a worker thread would not do:
neutralising is Python code that holds the interpreter lock, and the event loop waited on it for seconds). A file
that cannot be checked is not attached, and the answer says so.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context

from bot.files import neutralise_csv
from bot.formatting import human_size
from bot.native_blocks import SPEC_BYTES, is_spec
from bot.poster import Upload
from bot.sandbox.base import SandboxBackend, SandboxFile
from bot.slack_text import one_line

logger = logging.getLogger(__name__)

MB = 1024 * 1024
CPU_SLOTS = 2
"""Outputs neutralised at once (each takes a core for seconds on a large file)."""
SCAN_PIECE = 64 * 1024
"""Bytes the formula scan looks at per step (the expression engine holds the interpreter lock while it runs: a
step must stay short, or the event loop waits for it)."""
_PLAIN_NUMBER = r"[-+]?(?:\d+(?:{dec}\d*)?|{dec}\d+)(?:[eE][-+]?\d+)?%?"
""":data:`bot.files._PLAIN_NUMBER` with ``{dec}`` the decimal marks that are not the delimiter."""


@dataclass(frozen=True, slots=True)
class OutputLimits:
    """How much of what the code wrote one answer attaches."""

    files: int = 10
    file_bytes: int = 50 * MB
    turn_bytes: int = 100 * MB


@dataclass(frozen=True, slots=True)
class Outputs:
    """The files to attach, and the ones left out with the reason."""

    uploads: tuple[Upload, ...] = ()
    left_out: tuple[tuple[str, str], ...] = ()
    specs: tuple[tuple[str, bytes], ...] = ()
    """Chart and table specs the charting helper wrote (name, content): turned into blocks, never attached."""
    attached: tuple[str, ...] = ()
    """The sandbox file id of each upload, in order (a resumed turn reads them again: :meth:`OutputReader.reread`)."""

    def note(self) -> str:
        """One line for the answer naming what was not attached and why; empty when nothing was left out."""
        if not self.left_out:
            return ""
        listed = "; ".join(f"`{one_line(name)}` ({why})" for name, why in self.left_out)
        return f"_Not attached: {listed}._"


def _scanner(delimiter: bytes) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """Where a cell may start with a formula (the rule of :func:`bot.files.is_dangerous_cell`, widened): at the
    start of the file (after a UTF-8 BOM), and after a delimiter or a line break.

    At each place a cell can start, a cell that is
    certainly a plain number (``-12.5``, quoted or not, spaces around it) is passed; otherwise any run of quotes
    and whitespace followed by ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a match. Where quotes open
    and close is not tracked, so a match inside a quoted field is a false alarm, never a miss.
    """
    d = re.escape(delimiter)
    decimal = "[.]" if delimiter == b"," else "[.,]"
    number = b"[ ]*" + _PLAIN_NUMBER.format(dec=decimal).encode() + b"[ \t]*"
    cell_end = rb"(?:" + d + rb"|[\r\n]|\Z)"
    plain = rb"(?:" + number + cell_end + rb'|"' + number + rb'"' + cell_end + rb")"
    body = rb"(?!" + plain + rb')[" \t\r\n]*[\t\r=+\-@]'
    return re.compile(rb"\A(?:\xef\xbb\xbf)?" + body), re.compile(rb"[" + d + rb"\r\n]" + body)


_SCANNERS = {b",": _scanner(b","), b"\t": _scanner(b"\t")}


def may_hold_formula(data: bytes, *, delimiter: str = ",") -> bool:
    """False only when no cell of the CSV can start a formula, so :func:`bot.files.neutralise_csv` would return it
    unchanged; True when it may (UTF-16 text is not scanned: True). Scans in :data:`SCAN_PIECE` pieces cut before a
    line break (a line break starts a cell, and begins the next piece, so no match is lost at a cut)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    first, anywhere = _SCANNERS[delimiter.encode()]
    if first.match(data):
        return True
    start = 0
    while start < len(data):
        cut = data.find(b"\n", start + SCAN_PIECE)
        end = len(data) if cut < 0 else cut
        if anywhere.search(data, start, end):
            return True
        start = end
    return False


def _delimiter(name: str) -> str | None:
    lower = name.lower()
    if lower.endswith(".csv"):
        return ","
    if lower.endswith((".tsv", ".tab")):
        return "\t"
    return None


class OutputReader:
    """Reads a turn's outputs within :class:`OutputLimits`, defusing CSVs off the event loop (see the module)."""

    def __init__(self, *, sandbox: SandboxBackend, limits: OutputLimits, cpu_slots: int = CPU_SLOTS) -> None:
        self._sandbox = sandbox
        self._limits = limits
        self._slots = cpu_slots
        self._cpu = asyncio.Semaphore(cpu_slots)
        self._pool: ProcessPoolExecutor | None = None

    async def read(self, container_id: str, created: Sequence[SandboxFile], cited: Sequence[str]) -> Outputs:
        """The files to attach: cited ones first, then by creation, until a cap is hit; the rest named."""
        order = {file_id: i for i, file_id in enumerate(cited)}
        ranked = sorted(created, key=lambda f: (order.get(f.id, len(order)), f.created_at, f.path))
        uploads: list[Upload] = []
        attached: list[str] = []
        left_out: list[tuple[str, str]] = []
        specs: list[tuple[str, bytes]] = []
        total = 0
        for f in ranked:
            if is_spec(f.name):
                if f.size <= SPEC_BYTES:
                    data = await self._sandbox.read_file(container_id, f.id)
                    if len(data) <= SPEC_BYTES:
                        specs.append((f.name, data))
                continue
            why = self._too_much(f.size, len(uploads), total)
            if why is None:
                data = await self._sandbox.read_file(container_id, f.id)
                why = self._too_much(len(data), len(uploads), total)  # a size the listing did not know
            if why is None:
                try:
                    uploads.append(Upload(filename=f.name, data=await self._defuse(f.name, data), title=f.name))
                    attached.append(f.id)
                    total += len(data)
                    continue
                except Exception as exc:  # a worker process that died (memory): the file is not posted unchecked
                    logger.error("output not defused file=%s error=%s", f.name, type(exc).__name__)
                    self._reset_pool()
                    why = "it could not be checked for spreadsheet formulas"
            logger.info("output not attached file=%s bytes=%d reason=%s", f.name, f.size, why)
            left_out.append((f.name, why))
        return Outputs(uploads=tuple(uploads), left_out=tuple(left_out), attached=tuple(attached),
                       specs=tuple(specs))

    async def reread(self, container_id: str, files: Sequence[tuple[str, str]]) -> tuple[Upload, ...]:
        """The uploads of ``(sandbox file id, name)`` read again (within the limits they passed before) and
        defused again: what a resumed turn attaches without running the analysis again."""
        uploads = []
        for file_id, name in files:
            data = await self._sandbox.read_file(container_id, file_id)
            uploads.append(Upload(filename=name, data=await self._defuse(name, data), title=name))
        return tuple(uploads)

    def _too_much(self, size: int, count: int, total: int) -> str | None:
        limits = self._limits
        if size > limits.file_bytes:
            return f"{human_size(size)}, over the {human_size(limits.file_bytes)} limit per file"
        if total + size > limits.turn_bytes:
            return (f"{human_size(size)}, past the {human_size(limits.turn_bytes)} one answer attaches "
                    "(`DATASTORY_MAX_OUTPUT_MB`)")
        if count >= limits.files:
            return f"only {limits.files} files are attached to one answer"
        return None

    async def _defuse(self, name: str, data: bytes) -> bytes:
        """The scan in a thread (short lock holds); neutralising, when needed, in a worker process: it is Python
        code that would otherwise hold the interpreter lock against the event loop for seconds."""
        delimiter = _delimiter(name)
        if delimiter is None or not await asyncio.to_thread(may_hold_formula, data, delimiter=delimiter):
            return data
        async with self._cpu:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._processes(), partial(neutralise_csv, delimiter=delimiter), data)

    def _processes(self) -> ProcessPoolExecutor:
        if self._pool is None:  # spawned, not forked: the bot's process has threads (a fork could copy a held lock)
            self._pool = ProcessPoolExecutor(max_workers=self._slots, mp_context=get_context("spawn"))
        return self._pool

    def _reset_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the worker processes (at shutdown)."""
        self._reset_pool()
