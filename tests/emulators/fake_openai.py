"""FakeOpenAI: an aiohttp emulator of the Containers, container files and Responses endpoints.

Built from ``/work/shared/reference/openai-containers-and-responses.md`` (§1, §2, §3, §5, §10) so that the real
``openai`` SDK with ``_strict_response_validation=True`` cannot tell it from the API:

- ``POST/GET /v1/containers``, ``GET/DELETE /v1/containers/{cid}``: exact cursor pagination (``after`` exclusive,
  ``limit`` 1..100 default 20, ``order`` default ``desc``, truthful ``has_more``, optional exact ``name`` filter);
  expiry computed from an injectable clock (``last_active_at + minutes*60 < now``).
- ``POST/GET /v1/containers/{cid}/files``, ``GET/DELETE /v1/containers/{cid}/files/{fid}``,
  ``GET …/content``: multipart field ``file`` (Content-Length or chunked bodies); uploads land at
  ``/mnt/data/<32 hex>-<original name>`` with ``source: "user"``.
- ``POST /v1/responses`` (JSON or SSE with the event order of §3.7), ``GET/DELETE /v1/responses/{id}``, and
  background responses (``background: true``: queued, polled, streamed and resumed, ``POST …/cancel``; see
  :mod:`tests.emulators.fake_openai_background`): the
  "model" is a *script* (:attr:`FakeOpenAI.script`) that returns the code it ran, the text it answers and the
  files it wrote; files are stored in the container with ``source: "assistant"`` and cited.
- ``POST /v1/chat/completions`` (JSON or SSE chunks ending with ``data: [DONE]``, reference §4): the "model" is a
  *chat script* (:attr:`FakeOpenAI.chat_script`) that takes the request body and returns a :class:`ChatReply`:
  tool calls or a final text. The emulator checks the message sequence like the API does (every assistant
  ``tool_calls`` answered by ``tool`` messages, no stray ``tool`` message) and answers 404 ``model_not_found``
  for a model outside :attr:`FakeOpenAI.chat_models` when that set is given.
- Everything else: 404 ``Invalid URL (METHOD /v1/…)``. ``Authorization: Bearer <api_key>`` is required.

The default script (:func:`default_script`) describes the user files in the container, keeps per-container
variables (``turns``, ``questions``) so tests can prove state persists, and writes a real PNG bar chart. The
default chat script (:func:`default_chat_script`) first calls the function tool with pandas code that reads the
data file paths named in the messages and saves a chart, then answers in Markdown quoting the tool output.
"""

from __future__ import annotations

import asyncio
import copy
import fnmatch
import inspect
import json
import logging
import re
import secrets
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from aiohttp import web

from bot.demo.pacing import LinkPacer
from bot.demo.recorder import RecordedRequest, Recorder
from tests.emulators import fake_openai_background as background

logger = logging.getLogger(__name__)

MAX_IDLE_MINUTES = 20
MEMORY_LIMITS = ("1g", "4g", "16g", "64g")
INCLUDE_CI_OUTPUTS = "code_interpreter_call.outputs"
_USER_PREFIX_RE = re.compile(r"^[0-9a-f]{32}-")
_UPLOAD_PATH_RE = re.compile(r"/v1/containers/[^/]+/files")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


# --------------------------------------------------------------------------------------------------- state


Pieces = list[bytes | memoryview]
"""A file's bytes as the pieces they arrived in (an upload is stored without copying it into one block)."""


@dataclass(slots=True)
class StoredFile:
    """A file inside an emulated container."""

    id: str
    path: str
    pieces: Pieces
    source: str
    """``user`` for uploads, ``assistant`` for files a script wrote."""
    created_at: int

    @property
    def data(self) -> bytes:
        """The file's bytes (the pieces are joined on first use)."""
        if len(self.pieces) != 1 or not isinstance(self.pieces[0], bytes):
            self.pieces = [b"".join(self.pieces)]
        return cast(bytes, self.pieces[0])

    @property
    def size(self) -> int:
        """Byte count."""
        return sum(len(piece) for piece in self.pieces)

    @property
    def name(self) -> str:
        """The base name of :attr:`path` (for uploads it carries the 32-hex prefix)."""
        return self.path.rsplit("/", 1)[-1]

    @property
    def original_name(self) -> str:
        """The name as uploaded (the ``<32 hex>-`` prefix of user uploads removed)."""
        return _USER_PREFIX_RE.sub("", self.name) if self.source == "user" else self.name


@dataclass(slots=True)
class ContainerState:
    """An emulated container; tests read and change it directly."""

    id: str
    name: str
    expires_after: dict[str, Any]
    memory_limit: str
    created_at: int
    last_active_at: int
    status: str = "running"
    files: dict[str, StoredFile] = field(default_factory=dict)
    deleted: bool = False
    variables: dict[str, Any] = field(default_factory=dict)
    """What the "python session" of the container holds; the default script keeps ``turns`` and ``questions``."""
    seq: int = 0
    """Creation order (a tie-breaker for equal ``created_at``)."""

    def user_files(self) -> list[StoredFile]:
        """Uploaded data files, oldest first (the bot's charting helper is in :meth:`helper_files`)."""
        return [f for f in self.files.values() if f.source == "user" and f not in self.helper_files()]

    def helper_files(self) -> list[StoredFile]:
        """The charting helper the bot uploads into every container it creates (``datastory_*.py``)."""
        return [f for f in self.files.values() if f.source == "user" and f.original_name.startswith("datastory_")
                and f.original_name.endswith(".py")]

    def file_by_name(self, name: str) -> StoredFile | None:
        """The newest file whose base name or original name is ``name``."""
        found = [f for f in self.files.values() if name in (f.name, f.original_name)]
        return found[-1] if found else None


@dataclass(slots=True)
class ResponseRecord:
    """A response the emulator produced, with the request that asked for it."""

    id: str
    container_id: str | None
    previous_response_id: str | None
    request: dict[str, Any]
    body: dict[str, Any]
    """The final response object, with ``code_interpreter_call.outputs`` always filled (hidden on render)."""
    streamed: bool = False

    @property
    def status(self) -> str:
        """``completed``, ``failed`` or ``incomplete``; a background response is ``queued`` or ``in_progress``
        first, and ``cancelled`` when a cancel stopped it."""
        return str(self.body.get("status"))


@dataclass(frozen=True, slots=True)
class ScriptUsage:
    """Token counts a script reports."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ResponseContext:
    """What a script sees when ``POST /v1/responses`` "runs"."""

    container: ContainerState | None
    """The container bound by the code_interpreter tool (``None`` when the request has no such tool)."""
    input_text: str
    """Every text of the request's ``input`` joined with newlines."""
    question: str
    """The text after the last ``Question:`` marker of :attr:`input_text`, else the whole input text."""
    request: dict[str, Any]
    previous: ResponseRecord | None
    chain: tuple[str, ...]
    """Ids of the earlier responses of the chain, oldest first (empty on a fresh chain)."""
    now: float

    @property
    def user_files(self) -> list[StoredFile]:
        """Uploaded files in the container, oldest first."""
        return self.container.user_files() if self.container is not None else []


@dataclass(frozen=True, slots=True)
class ScriptedTurn:
    """What a script returns: the code it "ran", the answer text and the files the code wrote."""

    code: str = ""
    """Empty means no code_interpreter call."""
    text: str = ""
    files: Sequence[tuple[str, bytes]] = ()
    """``(name, bytes)`` written to ``/mnt/data/<name>`` with ``source: "assistant"``."""
    logs: str = ""
    """Stdout of the code, shown in ``outputs`` when the request includes ``code_interpreter_call.outputs``."""
    usage: ScriptUsage | None = None
    """``None``: counted from the lengths of input and output."""
    status: Literal["completed", "failed", "incomplete"] = "completed"
    error_code: str = "server_error"
    error_message: str = "The model failed to generate a response."
    incomplete_reason: str = "max_output_tokens"
    cite_files: bool = True
    """Cite written files: images unmentioned in the text with span 0..0 and filename ``<cfile id>.png``,
    other files (a ``sandbox:`` link is appended when the text lacks one) with a span over the link."""


Script = Callable[[ResponseContext], "ScriptedTurn | Awaitable[ScriptedTurn]"]


@dataclass(slots=True)
class _Fault:
    method: str
    path: str
    status: int | None
    body: Any
    headers: dict[str, str]
    times: int
    delay: float


class _HTTPError(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


class ManualClock:
    """A clock tests move by hand: ``clock()`` is the time, ``clock.advance(seconds)`` moves it."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        """Move the time forward."""
        self.t += seconds


# --------------------------------------------------------------------------------------------------- PNG


def make_png(width: int, height: int, rows: Sequence[bytes]) -> bytes:
    """A valid 8-bit RGB PNG from ``height`` rows of ``width*3`` bytes (built with zlib and struct only)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    raw = b"".join(b"\x00" + row for row in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def bar_chart_png(values: Sequence[float], *, width: int = 320, height: int = 200) -> bytes:
    """A small bar chart of ``values`` (white background, an axis, blue bars) as PNG bytes."""
    white, axis, bar = b"\xff\xff\xff", b"\x33\x33\x33", b"\x1f\x77\xb4"
    grid = [bytearray(white * width) for _ in range(height)]
    margin = 10
    base = height - margin
    for x in range(margin, width - margin):
        grid[base][x * 3 : x * 3 + 3] = axis
    for y in range(margin, base):
        grid[y][margin * 3 : margin * 3 + 3] = axis
    vals = [max(0.0, float(v)) for v in values] or [1.0]
    top = max(vals) or 1.0
    slot = (width - 2 * margin - 2) / len(vals)
    for i, v in enumerate(vals):
        x0 = int(margin + 2 + i * slot + slot * 0.15)
        x1 = max(x0 + 1, int(margin + 2 + (i + 1) * slot - slot * 0.15))
        bar_h = int((base - margin - 2) * v / top)
        x1 = min(x1, width - margin)
        if x1 <= x0:
            continue
        span = bar * (x1 - x0)
        for y in range(base - bar_h, base):
            grid[y][x0 * 3 : x1 * 3] = span
    return make_png(width, height, [bytes(r) for r in grid])


# --------------------------------------------------------------------------------------------------- default script


def _decode_text(data: bytes) -> str | None:
    if b"\x00" in data[:4096]:
        return None
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


def _sniff_delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _to_float(value: str) -> float | None:
    try:
        return float(value.strip().strip('"').replace(",", ""))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What the default script learns about one user file."""

    name: str
    path: str
    size: int
    lines: int | None = None
    header: tuple[str, ...] = ()
    numeric_column: str | None = None
    values: tuple[float, ...] = ()


def describe_file(stored: StoredFile) -> FileFacts:
    """Name, size, and for text files: line count, header row and the values of the last numeric column."""
    text = _decode_text(stored.data)
    if text is None:
        return FileFacts(name=stored.original_name, path=stored.path, size=stored.size)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return FileFacts(name=stored.original_name, path=stored.path, size=stored.size, lines=0)
    delimiter = _sniff_delimiter(lines[0])
    header = tuple(h.strip().strip('"') for h in lines[0].split(delimiter))
    rows = [ln.split(delimiter) for ln in lines[1:]]
    numeric: str | None = None
    values: tuple[float, ...] = ()
    for index in reversed(range(len(header))):
        cells = [_to_float(r[index]) for r in rows if index < len(r)]
        if cells and all(c is not None for c in cells):
            numeric, values = header[index], tuple(c for c in cells if c is not None)
            break
    return FileFacts(name=stored.original_name, path=stored.path, size=stored.size, lines=len(lines),
                     header=header, numeric_column=numeric, values=values)


def default_script(ctx: ResponseContext) -> ScriptedTurn:
    """A useful fake analyst: summarises the user files, keeps state per container and draws one chart.

    Per container it increments ``variables["turns"]`` and appends the question to ``variables["questions"]``.
    With data files it writes ``chart_<turn>.png`` (a bar chart of the last numeric column of the first file,
    else of the line counts) and answers e.g. ``**Summary of sales.csv** — 12 rows, columns: region, month,
    revenue (345 bytes).`` followed by ``Question: <question>. Turn 2 in this container.``
    """
    if ctx.container is None:
        return ScriptedTurn(text=f"No python tool was available. Question: {ctx.question}.")
    variables = ctx.container.variables
    turn = int(variables.get("turns", 0)) + 1
    variables["turns"] = turn
    variables.setdefault("questions", []).append(ctx.question)
    facts = [describe_file(f) for f in ctx.user_files]
    code_lines = ["import pandas as pd", "import matplotlib.pyplot as plt"]
    logs: list[str] = []
    parts: list[str] = []
    for fact in facts:
        if fact.lines is None:
            parts.append(f"**Summary of {fact.name}** — binary file, {fact.size} bytes.")
            continue
        rows = max(fact.lines - 1, 0)
        code_lines.append(f"df = pd.read_csv({fact.path!r})")
        code_lines.append("print(df.shape)")
        logs.append(f"({rows}, {len(fact.header)})")
        parts.append(f"**Summary of {fact.name}** — {rows} rows, columns: {', '.join(fact.header)} "
                     f"({fact.size} bytes).")
    files: list[tuple[str, bytes]] = []
    if facts:
        chart = f"chart_{turn}.png"
        first = facts[0]
        if first.values:
            values: Sequence[float] = first.values[:24]
            code_lines.append(f"df[{first.numeric_column!r}].head(24).plot(kind='bar')")
        else:
            values = [float(f.lines or f.size) for f in facts]
            code_lines.append("plt.bar(range(len(sizes)), sizes)")
        code_lines += [f"plt.savefig('/mnt/data/{chart}')", "plt.close()"]
        files.append((chart, bar_chart_png(values)))
    else:
        parts.append("No data files in this container.")
        code_lines.append("print(sorted(__import__('os').listdir('/mnt/data')))")
        logs.append("[]")
    stop = "" if ctx.question.endswith((".", "?", "!")) else "."
    parts.append(f"Question: {ctx.question}{stop} Turn {turn} in this container.")
    return ScriptedTurn(code="\n".join(code_lines), text="\n\n".join(parts), files=files,
                        logs="\n".join(logs) + "\n")


# --------------------------------------------------------------------------------------------------- chat script


@dataclass(frozen=True, slots=True)
class ChatReply:
    """What a chat script returns: tool calls (``{"name", "arguments"}`` with arguments as a dict or a JSON
    string) or a final text, and optionally the usage and the finish reason."""

    text: str | None = None
    tool_calls: Sequence[dict[str, Any]] = ()
    usage: ScriptUsage | None = None
    """``None``: counted from the lengths of the messages and the reply."""
    finish_reason: str | None = None
    """``None``: ``tool_calls`` when there are tool calls, else ``stop``."""


ChatScript = Callable[[dict[str, Any]], "ChatReply | dict[str, Any] | Awaitable[ChatReply | dict[str, Any]]"]

_PATH_RE = re.compile(r"\bpath[:=]?\s+`?([^\s`;,()]*[/\\][^\s`;,()]*)")


def message_text(message: dict[str, Any]) -> str:
    """The text of a chat message (a string content, or the text parts of a list content)."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def data_paths(messages: Sequence[dict[str, Any]]) -> list[str]:
    """The data file paths named (``path /x/y.csv``; a path has a slash) in the system and user messages, in
    order, once each."""
    found: list[str] = []
    for message in messages:
        if message.get("role") in ("system", "developer", "user"):
            for match in _PATH_RE.finditer(message_text(message)):
                path = match.group(1).rstrip(".:")
                if path not in found:
                    found.append(path)
    return found


def default_chat_script(body: dict[str, Any]) -> ChatReply:
    """A useful fake model for the chat tool loop.

    When the last message is a user message and a function tool is offered (and ``tool_choice`` is not ``none``),
    it calls the first tool with ``{"code": ...}``: pandas code that reads every data file path named in the
    system/user messages, prints its shape and columns, the total of its first numeric column, and saves a bar
    chart ``chart_<n>.png`` in the current directory (``n`` counts the tool results so far, so names never repeat
    in a conversation). Otherwise it answers in Markdown, quoting the tool outputs since the last user message.
    """
    messages: list[dict[str, Any]] = list(body.get("messages") or [])
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    last = messages[-1] if messages else {}
    user_turns = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    question = message_text(messages[user_turns[-1]]).strip() if user_turns else ""
    question = question[question.rfind("Question:") + len("Question:"):].strip() if "Question:" in question \
        else question
    if last.get("role") == "user" and tools and body.get("tool_choice") != "none":
        n = sum(1 for m in messages if m.get("role") == "tool") + 1
        code = "\n".join([
            "import pandas as pd",
            "import matplotlib",
            "matplotlib.use('Agg')",
            "import matplotlib.pyplot as plt",
            f"for path in {data_paths(messages)!r}:",
            "    df = pd.read_csv(path, sep=None, engine='python')",
            "    name = path.replace('\\\\', '/').rsplit('/', 1)[-1]",
            "    print(f'{name}: {len(df)} rows x {len(df.columns)} columns: {\", \".join(map(str, df.columns))}')",
            "    numeric = df.select_dtypes('number')",
            "    if not numeric.empty:",
            "        col = numeric.columns[0]",
            "        print(f'{col} total: {numeric[col].sum():.2f}')",
            "        fig, ax = plt.subplots()",
            "        numeric[col].head(24).plot(kind='bar', ax=ax, title=f'{col} in {name}')",
            f"        fig.savefig('chart_{n}.png')",
            "        plt.close(fig)",
        ])
        name = str(tools[0].get("function", {}).get("name", "run_python"))
        return ChatReply(tool_calls=[{"name": name, "arguments": {"code": code}}])
    start = user_turns[-1] if user_turns else 0
    outputs = [message_text(m).strip() for m in messages[start:] if m.get("role") == "tool"]
    quoted = "\n\n".join(f"```\n{o}\n```" for o in outputs if o)
    text = f"**Answer** to: {question}"
    text += f"\n\nWhat the code printed:\n\n{quoted}" if quoted else "\n\nI ran no code for this."
    return ChatReply(text=text)


# --------------------------------------------------------------------------------------------------- helpers


def _hex(n: int) -> str:
    return secrets.token_hex(n // 2)


def error_body(message: str, *, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """The OpenAI error envelope."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _error(status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
           code: str | None = None, headers: dict[str, str] | None = None) -> _HTTPError:
    return _HTTPError(web.json_response(error_body(message, type=type, param=param, code=code), status=status,
                                        headers=headers))


def _default_fault_body(status: int) -> dict[str, Any]:
    if status == 429:
        return error_body("Rate limit reached for gpt-4.1 in organization org-test on requests per min (RPM): "
                          "Limit 3, Used 3, Requested 1. Please try again in 20s.", type="requests",
                          code="rate_limit_exceeded")
    if status == 503:
        return error_body("The engine is currently overloaded, please try again later.", type="server_error")
    if status >= 500:
        return error_body("The server had an error while processing your request. Sorry about that!",
                          type="server_error")
    return error_body(f"Injected failure ({status}).")


def _mask_key(key: str) -> str:
    if len(key) <= 8:
        return "*" * len(key)
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


def _unescape_form_param(value: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
        elif value[i] == "%" and re.fullmatch(r"[0-9A-Fa-f]{2}", value[i + 1 : i + 3]):
            out.append(chr(int(value[i + 1 : i + 3], 16)))
            i += 3
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


class MultipartScanner:
    """Splits a ``multipart/form-data`` body fed chunk by chunk into ``(disposition params + headers, payload)``
    parts. Delimiters are found with ``bytes.find`` on each chunk (plus the few bytes held back from the previous
    one); a payload is kept as views of the chunks it arrived in, so a 512 MB upload is never copied or buffered
    as one body (which costs the emulator more than the transfer: fresh memory faulted in page by page)."""

    _MAX_HEADERS = 16 * 1024

    def __init__(self, boundary: bytes) -> None:
        self._delimiter = b"\r\n--" + boundary
        self._held = b"\r\n"  # a virtual line break, so that a body starting with the delimiter matches
        self._pieces: Pieces = []
        self._state: Literal["preamble", "headers", "payload", "done"] = "preamble"
        self._headers = b""
        self._info: dict[str, str] = {}
        self.parts: list[tuple[dict[str, str], Pieces]] = []

    def feed(self, data: bytes) -> None:
        """Take the next chunk of the body."""
        while data and self._state != "done":
            data = self._scan(data) if self._state in ("preamble", "payload") else self._read_headers(data)

    def finish(self) -> list[tuple[dict[str, str], Pieces]]:
        """The parts, once the whole body was fed; a 400 error when the body was not a complete multipart body."""
        if self._state != "done" or not self.parts:
            raise _error(400, "Invalid multipart body.")
        return self.parts

    def _scan(self, data: bytes) -> bytes:
        """Pass payload bytes on up to the next delimiter; returns what follows it (empty when none was found)."""
        size = len(self._delimiter)
        if len(data) < size:  # a short chunk: join it to the held bytes (cheap) and scan the two as one
            data, self._held = self._held + data, b""
        probe = self._held + data[: size - 1]
        at = probe.find(self._delimiter)
        if 0 <= at < len(self._held):  # the delimiter starts in the held bytes
            self._take(self._held[:at])
            return self._end_payload(data[at + size - len(self._held):])
        self._take(self._held)
        at = data.find(self._delimiter)
        if at >= 0:
            self._take(memoryview(data)[:at])
            return self._end_payload(data[at + size:])
        cut = max(0, len(data) - (size - 1))
        self._take(memoryview(data)[:cut])
        self._held = data[cut:]
        return b""

    def _take(self, piece: bytes | memoryview) -> None:
        if self._state == "payload" and len(piece):
            self._pieces.append(piece)

    def _end_payload(self, rest: bytes) -> bytes:
        if self._state == "payload":
            self.parts.append((self._info, self._pieces))
        self._pieces, self._held, self._headers = [], b"", b""
        self._state = "headers"
        return rest

    def _read_headers(self, data: bytes) -> bytes:
        """After a delimiter: ``--`` closes the body, else a line break, the part's headers and a blank line."""
        self._headers += data
        if self._headers.startswith(b"--"):
            self._state = "done"
            return b""
        end = self._headers.find(b"\r\n\r\n")
        if end < 0:
            if len(self._headers) > self._MAX_HEADERS:
                raise _error(400, "Invalid multipart body.")
            return b""
        if not self._headers.startswith(b"\r\n") and end > 0:
            raise _error(400, "Invalid multipart body.")
        self._info = _part_info(self._headers[2:end])
        rest, self._held = self._headers[end + 4:], b""
        self._state = "payload"
        return rest


def _part_info(head: bytes) -> dict[str, str]:
    info: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").split("\r\n"):
        if ":" not in line:
            continue
        key, _, value = line.partition(":")
        info[key.strip().lower()] = value.strip()
        if key.strip().lower() == "content-disposition":
            for pm in re.finditer(r'(\w+\*?)=(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))', value):
                info[pm.group(1).lower()] = _unescape_form_param(pm.group(2) if pm.group(2) is not None
                                                                 else pm.group(3))
    return info


def _extract_input_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    texts: list[str] = []
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                content = item.get("content")
                if isinstance(content, str):
                    texts.append(content)
                elif isinstance(content, list):
                    texts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p)
                elif "text" in item:
                    texts.append(str(item["text"]))
    return "\n".join(texts)


def _chunks(text: str, size: int = 24) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


# --------------------------------------------------------------------------------------------------- the app


class FakeOpenAI:
    """The emulator. ``async with FakeOpenAI(api_key=...) as oai`` starts it on a random loopback port."""

    def __init__(self, *, api_key: str = "sk-test", clock: Callable[[], float] | Any = None,
                 script: Script | None = None, chat_script: ChatScript | None = None) -> None:
        self.api_key = api_key
        self._clock = clock
        self.script: Script = script or default_script
        self.chat_script: ChatScript = chat_script or default_chat_script
        """The "model" of ``POST /v1/chat/completions``: request body → :class:`ChatReply` (settable)."""
        self.chat_models: set[str] | None = None
        """When set, a chat request for another model gets 404 ``model_not_found``."""
        self.link_rate: float | None = None
        """When set, container-file uploads are read at this many bytes per second (a network link)."""
        self.response_latency: float = 0.0
        """Seconds each ``POST /v1/responses`` takes before it answers (an emulated model's thinking time)."""
        self.token_interval: float = 0.0
        """When set, a streamed answer's text comes at a fixed pace: one ``response.output_text.delta`` (or, for a
        streamed chat completion, one ``content`` delta) of :attr:`token_chars` characters every this many seconds
        (a model writing)."""
        self.token_chars: int = 24
        self.first_text_at: dict[str, float] = {}
        """Response or chat completion id → ``time.perf_counter()`` when its first text delta was written."""
        self.overlaps: list[tuple[str, float]] = []
        """``(container id, time)`` of every response that started while another one was running in the same
        container: two turns of one thread at once."""
        self.busiest: dict[str, int] = {}
        """The most responses ever running at once in each container."""
        self._running: dict[str, int] = {}
        self.chat_completions: list[tuple[dict[str, Any], dict[str, Any]]] = []
        """Every ``(request body, completion object)`` the chat endpoint answered, in order."""
        self.recorder = Recorder()
        self.containers: dict[str, ContainerState] = {}
        self.responses: dict[str, ResponseRecord] = {}
        self.background: dict[str, background.BackgroundRun] = {}
        """The background responses (``background: true``), by id: their events and their running task."""
        self.cancelled: list[str] = []
        """Ids of the background responses a cancel stopped while they ran, in order."""
        self._faults: list[_Fault] = []
        self._seq = 0
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.app = web.Application(client_max_size=1 << 34)
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind to 127.0.0.1 on a random port."""
        self._runner = web.AppRunner(self.app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Stop serving (background responses still running are cancelled)."""
        tasks = [run.task for run in self.background.values() if run.task is not None and not run.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, what ``AsyncOpenAI(base_url=...)`` takes."""
        return f"http://127.0.0.1:{self.port}/v1"

    # -- controls for tests -------------------------------------------------------------------------------

    def now(self) -> float:
        """The emulator's clock (the injected one, else ``time.time()``)."""
        if self._clock is None:
            return time.time()
        if callable(self._clock):
            return float(self._clock())
        return float(self._clock.now())

    def expire(self, container_id: str) -> None:
        """Make a container expired now."""
        c = self.containers[container_id]
        minutes = int(c.expires_after.get("minutes") or MAX_IDLE_MINUTES)
        c.last_active_at = int(self.now()) - minutes * 60 - 1
        c.status = "expired"

    def fail_next(self, method: str, path: str, *, status: int | None = 500, body: Any = None,
                  headers: dict[str, str] | None = None, times: int = 1, delay: float = 0.0) -> None:
        """Answer the next ``times`` matching requests with ``status`` (after ``delay`` seconds).

        ``path`` is exact or an fnmatch pattern (``/v1/containers/*/files``). ``body``: a dict (sent as JSON),
        a str (wrapped in the error envelope), bytes (sent raw), or ``None`` (a realistic body for the status).
        ``status=None`` with a ``delay`` makes a slow but normal answer.
        """
        self._faults.append(_Fault(method.upper(), path, status, body, dict(headers or {}), times, delay))

    def chain_of(self, response_id: str) -> list[str]:
        """The ids of the chain ending at ``response_id``, oldest first."""
        ids: list[str] = []
        current: str | None = response_id
        while current is not None and current in self.responses:
            ids.append(current)
            current = self.responses[current].previous_response_id
        return ids[::-1]

    def live_containers(self) -> list[ContainerState]:
        """Containers not deleted, oldest first."""
        return [c for c in self.containers.values() if not c.deleted]

    # -- dispatch ------------------------------------------------------------------------------------------

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        # a container-file upload is read as a stream by its handler (after the auth check, like the API);
        # its recorded body becomes the head of the uploaded file
        streamed = request.method == "POST" and _UPLOAD_PATH_RE.fullmatch(request.path.rstrip("/")) is not None
        body = b"" if streamed else await request.read()
        recorded = await self.recorder.record(request, body)
        request_id = "req_" + _hex(32)
        try:
            fault = await self._take_fault(request)
            if fault is not None:
                return fault
            self._check_auth(request)
            response = await self._route(request, body, recorded)
        except _HTTPError as err:
            response = err.response
        if not response.prepared:
            response.headers.setdefault("x-request-id", request_id)
        return response

    async def _take_fault(self, request: web.Request) -> web.StreamResponse | None:
        for fault in self._faults:
            if fault.times <= 0 or fault.method != request.method:
                continue
            pattern_match = "*" in fault.path and fnmatch.fnmatchcase(request.path, fault.path)
            if not (fault.path == request.path or pattern_match):
                continue
            fault.times -= 1
            self._faults = [f for f in self._faults if f.times > 0]
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status is None:
                return None
            if isinstance(fault.body, bytes):
                return web.Response(status=fault.status, body=fault.body, headers=fault.headers)
            if fault.status == 429:
                for name, value in (("x-ratelimit-limit-requests", "3"), ("x-ratelimit-remaining-requests", "0"),
                                    ("x-ratelimit-reset-requests", "20s"), ("x-ratelimit-limit-tokens", "40000"),
                                    ("x-ratelimit-remaining-tokens", "0"), ("x-ratelimit-reset-tokens", "6m0s")):
                    fault.headers.setdefault(name, value)
            payload = (fault.body if isinstance(fault.body, dict)
                       else error_body(fault.body) if isinstance(fault.body, str)
                       else _default_fault_body(fault.status))
            return web.json_response(payload, status=fault.status, headers=fault.headers)
        return None

    def _check_auth(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        if not header:
            raise _error(401, "You didn't provide an API key. You need to provide your API key in an Authorization "
                              "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password "
                              "field (with blank username) if you're accessing the API from your browser and are "
                              "prompted for a username and password. You can obtain an API key from "
                              "https://platform.openai.com/account/api-keys.")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or key.strip() != self.api_key:
            raise _error(401, f"Incorrect API key provided: {_mask_key(key.strip())}. You can find your API key at "
                              "https://platform.openai.com/account/api-keys.", code="invalid_api_key")

    async def _route(self, request: web.Request, body: bytes, recorded: RecordedRequest) -> web.StreamResponse:
        routes: list[tuple[str, str, Callable[..., Any]]] = [
            ("POST", r"/v1/containers", lambda: self._create_container(body)),
            ("GET", r"/v1/containers", lambda: self._list_containers(request)),
            ("GET", r"/v1/containers/([^/]+)", self._retrieve_container),
            ("DELETE", r"/v1/containers/([^/]+)", self._delete_container),
            ("POST", r"/v1/containers/([^/]+)/files", lambda cid: self._create_file(request, cid, recorded)),
            ("GET", r"/v1/containers/([^/]+)/files", lambda cid: self._list_files(request, cid)),
            ("GET", r"/v1/containers/([^/]+)/files/([^/]+)", self._retrieve_file),
            ("DELETE", r"/v1/containers/([^/]+)/files/([^/]+)", self._delete_file),
            ("GET", r"/v1/containers/([^/]+)/files/([^/]+)/content", self._file_content),
            ("POST", r"/v1/responses", lambda: self._create_response(request, body)),
            ("POST", r"/v1/chat/completions", lambda: self._create_chat_completion(request, body)),
            ("GET", r"/v1/responses/([^/]+)", lambda rid: self._retrieve_response(request, rid)),
            ("DELETE", r"/v1/responses/([^/]+)", self._delete_response),
            ("POST", r"/v1/responses/([^/]+)/cancel", self._cancel_response),
        ]
        path = request.path.rstrip("/")
        for method, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if method == request.method and match:
                result = handler(*match.groups())
                return cast(web.StreamResponse, await result if inspect.isawaitable(result) else result)
        raise _error(404, f"Invalid URL ({request.method} {request.path})")

    # -- containers ----------------------------------------------------------------------------------------

    def _json(self, body: bytes) -> dict[str, Any]:
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            raise _error(400, "We could not parse the JSON body of your request. (HINT: This likely means you "
                              "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
                              "but what was sent was not valid JSON.") from None
        if not isinstance(parsed, dict):
            raise _error(400, "Invalid type for request body: expected an object.")
        return parsed

    def _container_obj(self, c: ContainerState) -> dict[str, Any]:
        return {"id": c.id, "object": "container", "created_at": c.created_at, "status": self._status(c),
                "expires_after": dict(c.expires_after), "last_active_at": c.last_active_at,
                "memory_limit": c.memory_limit, "name": c.name}

    def _status(self, c: ContainerState) -> str:
        minutes = int(c.expires_after.get("minutes") or MAX_IDLE_MINUTES)
        if c.status == "running" and c.last_active_at + minutes * 60 < self.now():
            c.status = "expired"
        return c.status

    def _get_container(self, cid: str) -> ContainerState:
        c = self.containers.get(cid)
        if c is None or c.deleted:
            raise _error(404, f"Container with id '{cid}' not found.")
        return c

    def _usable_container(self, cid: str) -> ContainerState:
        c = self._get_container(cid)
        if self._status(c) == "expired":
            raise _error(400, "Container is expired.")
        return c

    def _touch(self, c: ContainerState) -> None:
        if self._status(c) == "running":
            c.last_active_at = int(self.now())

    def _create_container(self, body: bytes) -> web.Response:
        params = self._json(body)
        name = params.get("name")
        if not isinstance(name, str) or not name:
            raise _error(400, "Missing required parameter: 'name'.", param="name", code="missing_required_parameter")
        expires = params.get("expires_after")
        if expires is None:
            expires = {"anchor": "last_active_at", "minutes": MAX_IDLE_MINUTES}
        if not isinstance(expires, dict):
            raise _error(400, "Invalid type for 'expires_after': expected an object.", param="expires_after",
                         code="invalid_type")
        anchor, minutes = expires.get("anchor"), expires.get("minutes")
        if anchor is None or minutes is None:
            missing = "anchor" if anchor is None else "minutes"
            raise _error(400, f"Missing required parameter: 'expires_after.{missing}'.",
                         param=f"expires_after.{missing}", code="missing_required_parameter")
        if anchor != "last_active_at":
            raise _error(400, f"Invalid value: '{anchor}'. Supported values are: 'last_active_at'.",
                         param="expires_after.anchor", code="invalid_value")
        if not isinstance(minutes, int) or isinstance(minutes, bool):
            raise _error(400, "Invalid type for 'expires_after.minutes': expected an integer.",
                         param="expires_after.minutes", code="invalid_type")
        if minutes > MAX_IDLE_MINUTES:
            raise _error(400, f"Invalid 'expires_after.minutes': integer above maximum value. Expected a value less "
                              f"than or equal to {MAX_IDLE_MINUTES}, but got {minutes} instead.",
                         param="expires_after.minutes", code="integer_above_max_value")
        if minutes < 1:
            raise _error(400, f"Invalid 'expires_after.minutes': integer below minimum value. Expected a value "
                              f"greater than or equal to 1, but got {minutes} instead.",
                         param="expires_after.minutes", code="integer_below_min_value")
        memory = params.get("memory_limit", "1g")
        if memory not in MEMORY_LIMITS:
            raise _error(400, f"Invalid value: '{memory}'. Supported values are: '1g', '4g', '16g', and '64g'.",
                         param="memory_limit", code="invalid_value")
        now = int(self.now())
        self._seq += 1
        c = ContainerState(id="cntr_" + _hex(48), name=name, expires_after={"anchor": anchor, "minutes": minutes},
                           memory_limit=memory, created_at=now, last_active_at=now, seq=self._seq)
        self.containers[c.id] = c
        return web.json_response(self._container_obj(c))

    def _page(self, request: web.Request, items: list[Any], key: Callable[[Any], Any],
              lookup: Callable[[str], Any | None], render: Callable[[Any], dict[str, Any]]) -> web.Response:
        query = request.query
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            raise _error(400, "Invalid 'limit': expected an integer.", param="limit", code="invalid_type") from None
        if limit < 1:
            raise _error(400, f"Invalid 'limit': integer below minimum value. Expected a value greater than or "
                              f"equal to 1, but got {limit} instead.", param="limit", code="integer_below_min_value")
        if limit > 100:
            raise _error(400, f"Invalid 'limit': integer above maximum value. Expected a value less than or equal to "
                              f"100, but got {limit} instead.", param="limit", code="integer_above_max_value")
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise _error(400, f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.", param="order",
                         code="invalid_value")
        ordered = sorted(items, key=key, reverse=order == "desc")
        after = query.get("after")
        if after:
            cursor = lookup(after)
            if cursor is None:
                raise _error(400, f"Invalid 'after': no object with id '{after}'.", param="after")
            ck = key(cursor)
            ordered = [i for i in ordered if (key(i) > ck if order == "asc" else key(i) < ck)]
        page = ordered[:limit]
        data = [render(i) for i in page]
        return web.json_response({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                                  "last_id": data[-1]["id"] if data else None, "has_more": len(ordered) > limit})

    def _list_containers(self, request: web.Request) -> web.Response:
        name = request.query.get("name")
        items = [c for c in self.containers.values() if not c.deleted and (name is None or c.name == name)]
        return self._page(request, items, key=lambda c: (c.created_at, c.seq), lookup=self.containers.get,
                          render=self._container_obj)

    def _retrieve_container(self, cid: str) -> web.Response:
        c = self._get_container(cid)
        self._touch(c)
        return web.json_response(self._container_obj(c))

    def _delete_container(self, cid: str) -> web.Response:
        c = self._get_container(cid)
        c.deleted = True
        return web.json_response({"id": cid, "object": "container.deleted", "deleted": True})

    # -- container files -----------------------------------------------------------------------------------

    def _file_obj(self, c: ContainerState, f: StoredFile) -> dict[str, Any]:
        return {"id": f.id, "object": "container.file", "bytes": f.size, "container_id": c.id,
                "created_at": f.created_at, "path": f.path, "source": f.source}

    def _add_file(self, c: ContainerState, path: str, data: bytes | Pieces, source: str) -> StoredFile:
        pieces: Pieces = [data] if isinstance(data, bytes) else data
        existing = next((f for f in c.files.values() if f.path == path), None)
        if existing is not None:
            existing.pieces = pieces
            return existing
        f = StoredFile(id="cfile_" + _hex(32), path=path, pieces=pieces, source=source, created_at=int(self.now()))
        c.files[f.id] = f
        return f

    async def _create_file(self, request: web.Request, cid: str, recorded: RecordedRequest) -> web.Response:
        """``POST …/files``: the multipart body is read as it streams in (see :class:`MultipartScanner`)."""
        c = self._usable_container(cid)
        ctype = request.headers.get("Content-Type", "")
        if ctype.startswith("application/json"):
            recorded.body = await request.read()
            params = self._json(recorded.body)
            file_id = params.get("file_id")
            raise _error(400, f"File {file_id!s} not found (this emulator hosts no /v1/files; upload the bytes).",
                         param="file_id")
        if not ctype.startswith("multipart/form-data"):
            raise _error(400, "Unsupported content type: expected multipart/form-data or application/json.")
        found = await self._read_file_part(request, recorded)
        if found is None:
            raise _error(400, "Missing required parameter: 'file'.", param="file", code="missing_required_parameter")
        info, data = found
        filename = (info.get("filename") or "upload").replace("/", "_")
        f = self._add_file(c, f"/mnt/data/{_hex(32)}-{filename}", data, "user")
        self._touch(c)
        return web.json_response(self._file_obj(c, f))

    async def _read_file_part(self, request: web.Request, recorded: RecordedRequest
                              ) -> tuple[dict[str, str], Pieces] | None:
        """The first part named ``file`` of the multipart body, read as it streams in; the recorded body becomes the
        body's first ``keep_body_bytes``."""
        match = re.search(r'boundary="?([^";]+)"?', request.headers.get("Content-Type", ""))
        if not match:
            raise _error(400, "Invalid multipart body: no boundary.")
        scanner = MultipartScanner(match.group(1).encode("latin-1"))
        keep = self.recorder.keep_body_bytes
        head = bytearray()
        pacer = LinkPacer(self.link_rate) if self.link_rate else None
        async for chunk in request.content.iter_any():
            if len(head) < keep:
                head += chunk[: keep - len(head)]
            scanner.feed(chunk)
            if pacer is not None:
                await pacer.take(len(chunk))
        recorded.body = bytes(head)
        await self.recorder.notify()
        parts = scanner.finish()
        return next(((info, data) for info, data in parts if info.get("name") == "file"), None)

    def _list_files(self, request: web.Request, cid: str) -> web.Response:
        c = self._usable_container(cid)
        self._touch(c)
        order_of = {fid: i for i, fid in enumerate(c.files)}
        return self._page(request, list(c.files.values()), key=lambda f: (f.created_at, order_of[f.id]),
                          lookup=c.files.get, render=lambda f: self._file_obj(c, f))

    def _get_file(self, c: ContainerState, fid: str) -> StoredFile:
        f = c.files.get(fid)
        if f is None:
            raise _error(404, f"File {fid} not found on container {c.id}.")
        return f

    def _retrieve_file(self, cid: str, fid: str) -> web.Response:
        c = self._usable_container(cid)
        f = self._get_file(c, fid)
        self._touch(c)
        return web.json_response(self._file_obj(c, f))

    def _delete_file(self, cid: str, fid: str) -> web.Response:
        c = self._usable_container(cid)
        self._get_file(c, fid)
        del c.files[fid]
        self._touch(c)
        return web.json_response({"id": fid, "object": "container.file.deleted", "deleted": True})

    def _file_content(self, cid: str, fid: str) -> web.Response:
        c = self._usable_container(cid)
        f = self._get_file(c, fid)
        self._touch(c)
        return web.Response(body=f.data, content_type="application/octet-stream")

    # -- responses -----------------------------------------------------------------------------------------

    def _resolve_container(self, tools: Any, response_id: str) -> ContainerState | None:
        if not isinstance(tools, list):
            return None
        for tool in tools:
            if not isinstance(tool, dict) or tool.get("type") != "code_interpreter":
                continue
            spec = tool.get("container")
            if isinstance(spec, str):
                return self._usable_container(spec)
            if isinstance(spec, dict) and spec.get("type") == "auto":
                now = int(self.now())
                self._seq += 1
                c = ContainerState(id="cntr_" + _hex(48), name=f"auto-{response_id}",
                                   expires_after={"anchor": "last_active_at", "minutes": MAX_IDLE_MINUTES},
                                   memory_limit=str(spec.get("memory_limit") or "1g"), created_at=now,
                                   last_active_at=now, seq=self._seq)
                self.containers[c.id] = c
                return c
            raise _error(400, "Missing required parameter: 'tools[0].container'.", param="tools[0].container",
                         code="missing_required_parameter")
        return None

    async def _create_response(self, request: web.Request, body: bytes) -> web.StreamResponse:
        params = self._json(body)
        if not params.get("model"):
            raise _error(400, "Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
        previous_id = params.get("previous_response_id")
        previous = None
        if previous_id is not None:
            previous = self.responses.get(previous_id)
            if previous is None:
                raise _error(400, f"Previous response with id '{previous_id}' not found.",
                             param="previous_response_id", code="previous_response_not_found")
        response_id = "resp_" + _hex(48)
        container = self._resolve_container(params.get("tools"), response_id)
        if container is not None:
            self._touch(container)
        input_text = _extract_input_text(params.get("input"))
        marker = input_text.rfind("Question:")
        question = (input_text[marker + len("Question:"):] if marker >= 0 else input_text).strip()
        ctx = ResponseContext(container=container, input_text=input_text, question=question, request=params,
                              previous=previous, chain=tuple(self.chain_of(previous_id)) if previous_id else (),
                              now=self.now())
        key = container.id if container is not None else ""
        if key:
            if self._running.get(key):
                self.overlaps.append((key, self.now()))
            self._running[key] = self._running.get(key, 0) + 1
            self.busiest[key] = max(self.busiest.get(key, 0), self._running[key])
        if params.get("background"):
            return await self._start_background(request, params, response_id, container, ctx, key, input_text)
        turn = await self._play(ctx, key)
        final = self._build_response(response_id, params, container, turn, input_text)
        record = ResponseRecord(id=response_id, container_id=container.id if container else None,
                                previous_response_id=previous_id, request=params, body=final,
                                streamed=bool(params.get("stream")))
        self.responses[response_id] = record
        await self.recorder.notify()
        include = params.get("include") or []
        if params.get("stream"):
            return await self._stream(request, final, include)
        return web.json_response(self._render(final, include))

    async def _play(self, ctx: ResponseContext, key: str) -> ScriptedTurn:
        """Run the script (the model), counting the responses running in the container ``key``."""
        try:
            if self.response_latency:
                await asyncio.sleep(self.response_latency)
            produced = self.script(ctx)
            return await produced if inspect.isawaitable(produced) else produced
        finally:
            if key:
                self._running[key] -= 1

    async def _start_background(self, request: web.Request, params: dict[str, Any], response_id: str,
                                container: ContainerState | None, ctx: ResponseContext, key: str,
                                input_text: str) -> web.StreamResponse:
        """A ``background: true`` response (:mod:`tests.emulators.fake_openai_background`): queued now, run by a
        task; streamed when asked, else answered at once with the queued response."""
        include = params.get("include") or []
        record = ResponseRecord(id=response_id, container_id=container.id if container else None,
                                previous_response_id=params.get("previous_response_id"), request=params,
                                body=background.queued_body(self._build_response(
                                    response_id, params, None, ScriptedTurn(), input_text)),
                                streamed=bool(params.get("stream")))
        self.responses[response_id] = record
        run = background.BackgroundRun(response_id)
        self.background[response_id] = run
        await run.send({"type": "response.created", "response": self._render(record.body, include)})
        await run.send({"type": "response.queued", "response": self._render(record.body, include)})

        def set_body(body: dict[str, Any]) -> None:
            record.body = body

        async def play() -> dict[str, Any]:
            turn = await self._play(ctx, key)
            return background.background_outputs(
                self._build_response(response_id, params, container, turn, input_text))

        async def emit(run: background.BackgroundRun, final: dict[str, Any]) -> None:
            await self._emit_output(run.send, self._render(final, include))
            await self.recorder.notify()

        run.task = asyncio.create_task(background.run_in_background(
            run, body=lambda: self._render(record.body, include), set_body=set_body, play=play, emit_output=emit))
        await self.recorder.notify()
        if params.get("stream"):
            return await background.serve_stream(request, run, -1)
        return web.json_response(self._render(record.body, include))

    def _cancel_response(self, response_id: str) -> web.Response:
        record = self.responses.get(response_id)
        if record is None:
            raise _error(404, f"Response with id '{response_id}' not found.", param="response_id")
        refusal = background.cancel_refusal(record.status, bool(record.request.get("background")))
        if refusal is not None:
            raise _error(400, refusal)
        run = self.background.get(response_id)
        if record.status in background.RUNNING and run is not None:
            record.body = {**record.body, "status": "cancelled"}
            if run.task is not None:
                run.task.cancel()
            run.end()
            self.cancelled.append(response_id)
        return web.json_response(self._render(record.body, []))

    def _build_response(self, response_id: str, params: dict[str, Any], container: ContainerState | None,
                        turn: ScriptedTurn, input_text: str) -> dict[str, Any]:
        now = int(self.now())
        output: list[dict[str, Any]] = []
        text = turn.text
        annotations: list[dict[str, Any]] = []
        if container is not None and turn.code:
            written = [self._add_file(container, f"/mnt/data/{name}", data, "assistant") for name, data in turn.files]
            container.last_active_at = int(self.now())
            status = "failed" if turn.status == "failed" else "completed"
            output.append({"id": "ci_" + _hex(48), "type": "code_interpreter_call", "status": status,
                           "code": turn.code, "container_id": container.id,
                           "outputs": [{"type": "logs", "logs": turn.logs}] if turn.logs else []})
            if turn.cite_files:
                for f in written:
                    url = f"sandbox:{f.path}"
                    if url not in text and not f.name.lower().endswith(_IMAGE_SUFFIXES):
                        text += f"\n\n[{f.name}]({url})"
                    start = text.find(url)
                    if start >= 0:
                        annotations.append({"type": "container_file_citation", "container_id": container.id,
                                            "file_id": f.id, "filename": f.name, "start_index": start,
                                            "end_index": start + len(url)})
                    else:
                        annotations.append({"type": "container_file_citation", "container_id": container.id,
                                            "file_id": f.id, "filename": f"{f.id}.png", "start_index": 0,
                                            "end_index": 0})
        if turn.status != "failed" and text:
            output.append({"id": "msg_" + _hex(48), "type": "message", "role": "assistant",
                           "status": "incomplete" if turn.status == "incomplete" else "completed",
                           "content": [{"type": "output_text", "text": text, "annotations": annotations,
                                        "logprobs": []}]})
        usage = turn.usage or ScriptUsage(input_tokens=max(1, len(input_text) // 4),
                                          output_tokens=max(1, (len(text) + len(turn.code)) // 4))
        return {
            "id": response_id, "object": "response", "created_at": now, "status": turn.status,
            "background": bool(params.get("background")), "billing": {"payer": "developer"},
            "completed_at": now if turn.status == "completed" else None,
            "error": ({"code": turn.error_code, "message": turn.error_message} if turn.status == "failed" else None),
            "incomplete_details": ({"reason": turn.incomplete_reason} if turn.status == "incomplete" else None),
            "instructions": params.get("instructions"), "max_output_tokens": params.get("max_output_tokens"),
            "max_tool_calls": params.get("max_tool_calls"), "model": params["model"], "output": output,
            "parallel_tool_calls": params.get("parallel_tool_calls", True),
            "previous_response_id": params.get("previous_response_id"),
            "prompt_cache_key": params.get("prompt_cache_key"),
            "reasoning": params.get("reasoning") or {"effort": None, "summary": None},
            "safety_identifier": params.get("safety_identifier"), "service_tier": "default",
            "store": params.get("store", True), "temperature": params.get("temperature", 1.0),
            "text": params.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": params.get("tool_choice", "auto"), "tools": params.get("tools") or [],
            "top_logprobs": params.get("top_logprobs", 0), "top_p": params.get("top_p", 1.0),
            "truncation": params.get("truncation", "disabled"),
            "usage": {"input_tokens": usage.input_tokens,
                      "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
                      "output_tokens": usage.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                      "total_tokens": usage.input_tokens + usage.output_tokens},
            "user": params.get("user"), "metadata": params.get("metadata") or {},
        }

    @staticmethod
    def _render(final: dict[str, Any], include: Sequence[str]) -> dict[str, Any]:
        out = copy.deepcopy(final)
        if INCLUDE_CI_OUTPUTS not in include:
            for item in out["output"]:
                if item["type"] == "code_interpreter_call":
                    item["outputs"] = None
        return out

    async def _stream(self, request: web.Request, final: dict[str, Any], include: Sequence[str]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-cache", "x-request-id": "req_" + _hex(32)})
        await resp.prepare(request)
        seq = 0

        async def send(event: dict[str, Any]) -> None:
            nonlocal seq
            event["sequence_number"] = seq
            seq += 1
            await resp.write(f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode())

        rendered = self._render(final, include)
        snapshot = {**copy.deepcopy(rendered), "status": "in_progress", "output": [], "usage": None,
                    "completed_at": None, "error": None, "incomplete_details": None}
        try:
            await send({"type": "response.created", "response": snapshot})
            await send({"type": "response.in_progress", "response": snapshot})
            await self._emit_output(send, rendered)
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            logger.debug("stream client went away response=%s", final["id"])
            raise
        return resp

    async def _emit_output(self, send: Callable[[dict[str, Any]], Awaitable[None]],
                           rendered: dict[str, Any]) -> None:
        """The output items' events of a finished response, then its terminal event."""
        for index, item in enumerate(rendered["output"]):
            if item["type"] == "code_interpreter_call":
                await self._stream_code_call(send, index, item)
            elif item["type"] == "message":
                await self._stream_message(send, index, item, rendered["id"])
        terminal = {"completed": "response.completed", "failed": "response.failed",
                    "incomplete": "response.incomplete"}[rendered["status"]]
        await send({"type": terminal, "response": rendered})

    @staticmethod
    async def _stream_code_call(send: Callable[[dict[str, Any]], Awaitable[None]], index: int,
                                item: dict[str, Any]) -> None:
        iid = item["id"]
        await send({"type": "response.output_item.added", "output_index": index,
                    "item": {**item, "status": "in_progress", "code": "", "outputs": None}})
        await send({"type": "response.code_interpreter_call.in_progress", "item_id": iid, "output_index": index})
        for piece in _chunks(item["code"] or ""):
            await send({"type": "response.code_interpreter_call_code.delta", "item_id": iid, "output_index": index,
                        "delta": piece})
        await send({"type": "response.code_interpreter_call_code.done", "item_id": iid, "output_index": index,
                    "code": item["code"] or ""})
        await send({"type": "response.code_interpreter_call.interpreting", "item_id": iid, "output_index": index})
        await send({"type": "response.code_interpreter_call.completed", "item_id": iid, "output_index": index})
        await send({"type": "response.output_item.done", "output_index": index, "item": item})

    async def _stream_message(self, send: Callable[[dict[str, Any]], Awaitable[None]], index: int,
                              item: dict[str, Any], response_id: str) -> None:
        iid = item["id"]
        part = item["content"][0]
        await send({"type": "response.output_item.added", "output_index": index,
                    "item": {**item, "status": "in_progress", "content": []}})
        await send({"type": "response.content_part.added", "item_id": iid, "output_index": index,
                    "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [],
                                                 "logprobs": []}})
        for n, piece in enumerate(_chunks(part["text"], self.token_chars)):
            if n and self.token_interval:
                await asyncio.sleep(self.token_interval)
            await send({"type": "response.output_text.delta", "item_id": iid, "output_index": index,
                        "content_index": 0, "delta": piece, "logprobs": []})
            self.first_text_at.setdefault(response_id, time.perf_counter())
        for a_index, annotation in enumerate(part["annotations"]):
            await send({"type": "response.output_text.annotation.added", "item_id": iid, "output_index": index,
                        "content_index": 0, "annotation_index": a_index, "annotation": annotation})
        await send({"type": "response.output_text.done", "item_id": iid, "output_index": index, "content_index": 0,
                    "text": part["text"], "logprobs": []})
        await send({"type": "response.content_part.done", "item_id": iid, "output_index": index,
                    "content_index": 0, "part": part})
        await send({"type": "response.output_item.done", "output_index": index, "item": item})

    async def _retrieve_response(self, request: web.Request, response_id: str) -> web.StreamResponse:
        record = self.responses.get(response_id)
        if record is None:
            raise _error(404, f"Response with id '{response_id}' not found.", param="response_id")
        if request.query.get("stream") == "true":
            run = self.background.get(response_id)
            if run is None:
                raise _error(400, "This response cannot be streamed because it was not created with "
                                  "background=true.", param="stream")
            return await background.serve_stream(request, run, int(request.query.get("starting_after", "-1")))
        include = request.query.getall("include[]", []) + request.query.getall("include", [])
        return web.json_response(self._render(record.body, include))

    def _delete_response(self, response_id: str) -> web.Response:
        if self.responses.pop(response_id, None) is None:
            raise _error(404, f"Response with id '{response_id}' not found.", param="response_id")
        return web.json_response({"id": response_id, "object": "response.deleted", "deleted": True})

    # -- chat completions ----------------------------------------------------------------------------------

    @staticmethod
    def _check_messages(messages: Any) -> None:
        """Reject what the API rejects: no messages, unknown roles, unanswered or stray tool calls."""
        if not isinstance(messages, list) or not messages:
            raise _error(400, "Missing required parameter: 'messages'.", param="messages",
                         code="missing_required_parameter")
        pending: list[str] = []
        for index, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if role not in ("system", "developer", "user", "assistant", "tool"):
                raise _error(400, f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                                  "'function', 'tool', and 'developer'.", param=f"messages[{index}].role",
                             code="invalid_value")
            if role == "tool":
                call_id = message.get("tool_call_id")
                if call_id not in pending:
                    raise _error(400, "Invalid parameter: messages with role 'tool' must be a response to a "
                                      "preceeding message with 'tool_calls'.", param=f"messages.[{index}].role")
                pending.remove(call_id)
                continue
            if pending:
                raise _error(400, "An assistant message with 'tool_calls' must be followed by tool messages "
                                  "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                                  f"response messages: {', '.join(pending)}", param=f"messages.[{index}].role")
            if role == "assistant":
                pending = [str(c.get("id")) for c in message.get("tool_calls") or [] if isinstance(c, dict)]
        if pending:
            raise _error(400, "An assistant message with 'tool_calls' must be followed by tool messages responding "
                              f"to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                              f"{', '.join(pending)}", param="messages")

    async def _create_chat_completion(self, request: web.Request, body: bytes) -> web.StreamResponse:
        params = self._json(body)
        model = params.get("model")
        if not model:
            raise _error(400, "you must provide a model parameter", param="model")
        if self.chat_models is not None and model not in self.chat_models:
            raise _error(404, f"The model `{model}` does not exist or you do not have access to it.",
                         code="model_not_found")
        self._check_messages(params.get("messages"))
        produced = self.chat_script(params)
        reply = await produced if inspect.isawaitable(produced) else produced
        if isinstance(reply, dict):
            reply = ChatReply(text=reply.get("text"), tool_calls=reply.get("tool_calls") or (),
                              usage=reply.get("usage"), finish_reason=reply.get("finish_reason"))
        completion = self._build_completion(params, reply)
        self.chat_completions.append((params, completion))
        await self.recorder.notify()
        if params.get("stream"):
            include_usage = bool((params.get("stream_options") or {}).get("include_usage"))
            return await self._stream_chat(request, completion, include_usage)
        content = completion["choices"][0]["message"]["content"]
        if content and self.token_interval:  # not streamed, the answer comes when the model has written it all
            self.first_text_at.setdefault(completion["id"], time.perf_counter())
            await asyncio.sleep(self.token_interval * (len(_chunks(content, self.token_chars)) - 1))
        return web.json_response(completion)

    def _build_completion(self, params: dict[str, Any], reply: ChatReply) -> dict[str, Any]:
        calls = [] if params.get("tool_choice") == "none" else list(reply.tool_calls)
        tool_calls: list[dict[str, Any]] = []
        for call in calls:
            arguments = call.get("arguments", {})
            tool_calls.append({"id": str(call.get("id") or "call_" + _hex(24)), "type": "function",
                               "function": {"name": str(call.get("name", "run_python")),
                                            "arguments": arguments if isinstance(arguments, str)
                                            else json.dumps(arguments)}})
        text = reply.text
        if not tool_calls and text is None:
            text = ""
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None, "annotations": []}
        if tool_calls:
            message["tool_calls"] = tool_calls
        finish = reply.finish_reason or ("tool_calls" if tool_calls else "stop")
        produced = len(text or "") + sum(len(c["function"]["arguments"]) for c in tool_calls)
        usage = reply.usage or ScriptUsage(input_tokens=max(1, len(json.dumps(params.get("messages"))) // 4),
                                           output_tokens=max(1, produced // 4))
        return {
            "id": "chatcmpl-" + _hex(30), "object": "chat.completion", "created": int(self.now()),
            "model": params["model"], "service_tier": "default", "system_fingerprint": None,
            "choices": [{"index": 0, "finish_reason": finish, "logprobs": None, "message": message}],
            "usage": {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                      "total_tokens": usage.input_tokens + usage.output_tokens,
                      "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                    "accepted_prediction_tokens": 0,
                                                    "rejected_prediction_tokens": 0}},
        }

    async def _stream_chat(self, request: web.Request, completion: dict[str, Any],
                           include_usage: bool) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8",
                                           "Cache-Control": "no-cache", "x-request-id": "req_" + _hex(32)})
        await resp.prepare(request)
        choice = completion["choices"][0]
        message = choice["message"]

        async def send(delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None) -> None:
            chunk = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
                     "model": completion["model"], "service_tier": "default", "system_fingerprint": None,
                     "choices": [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                                           "finish_reason": finish}],
                     "usage": usage}
            await resp.write(f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n".encode())

        try:
            await send({"role": "assistant", "content": "" if message["content"] is not None else None,
                        "refusal": None})
            for n, piece in enumerate(_chunks(message["content"], self.token_chars) if message["content"] else []):
                if n and self.token_interval:
                    await asyncio.sleep(self.token_interval)
                await send({"content": piece})
                self.first_text_at.setdefault(completion["id"], time.perf_counter())
            for index, call in enumerate(message.get("tool_calls") or []):
                await send({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                            "function": {"name": call["function"]["name"], "arguments": ""}}]})
                for piece in _chunks(call["function"]["arguments"]):
                    await send({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
            await send({}, finish=choice["finish_reason"])
            if include_usage:
                await send(None, usage=completion["usage"])
            await resp.write(b"data: [DONE]\n\n")
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            logger.debug("chat stream client went away completion=%s", completion["id"])
            raise
        return resp
