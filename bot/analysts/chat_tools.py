"""The ``chat_tools`` engine: Chat Completions with one ``run_python`` function tool over a code runner.

Works with any OpenAI-compatible endpoint (``OPENAI_BASE_URL`` + ``DATASTORY_MODEL``) whose model can call
functions. One turn is a loop: call the model; run each ``run_python`` call in the thread's kernel through the
:class:`~bot.sandbox.base.CodeRunner` and feed stdout, stderr and the error back as ``tool`` messages (clipped to
:data:`MAX_TOOL_OUTPUT` characters, with timeouts and restarts explained to the model); stop when the model
answers without tool calls. After ``max_tool_calls`` runs the model is asked once more with ``tool_choice="none"``
for its final answer. Charts are what the code wrote in the working directory (the turn worker diffs the files).

Chat Completions are stateless, so the engine keeps each thread's messages itself, in memory, under a generated
id it returns as ``response_id`` (a bounded LRU; older turns are compacted to question and answer). A turn that
names an unknown id (the bot restarted, or the entry was evicted) starts fresh with ``request.history``.
API errors become :class:`~bot.analysts.base.AnalysisFailed` with a reason a user can read
(:mod:`bot.analysts.chat_errors`); the API key is never part of it. Given ``on_text``, each completion is streamed
and the answer's text handed on as the model writes it (:mod:`bot.analysts.chat_stream`).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam, ChatCompletionToolParam

from bot.analysts.base import (
    AnalysisFailed,
    AnalysisRequest,
    AnalysisResult,
    Progress,
    TextSink,
    Usage,
    report_progress,
)
from bot.analysts.chat_errors import api_reason
from bot.analysts.chat_stream import TextRelay
from bot.analysts.prompts import CHART_HELPER, CHART_STYLE, READ_RULE, describe_files
from bot.sandbox.base import CodeRunner, ExecResult

logger = logging.getLogger(__name__)

RUNNING_CODE = "running code…"
WRITING_ANSWER = "writing the answer…"
TOOL_NAME = "run_python"
MAX_TOOL_OUTPUT = 8000
"""Characters of one tool result sent back to the model."""
KEPT_FULL_TURNS = 2
"""Turns kept with their tool calls; older ones are compacted to question and answer."""
MAX_TURNS = 40
"""Turns a conversation keeps at most (the oldest are dropped)."""

CHAT_INSTRUCTIONS = f"""\
You are a careful data analyst answering questions in a Slack thread about the data files the user shared.

You have one tool, run_python, that runs Python code in a persistent session: variables, imports and files are
kept between calls and between questions in this thread. pandas, numpy and matplotlib are installed; there is no
internet access.

How to work:
- Use run_python for every number you report, and print() what you need to see: only printed output comes back.
{READ_RULE}
- Look at the data before answering: shape, column names and types, a few rows, missing values.
- The working directory is the current directory of your code. When a chart helps, make it with matplotlib
  (non-interactive backend, e.g. matplotlib.use("Agg")) and save every chart as a PNG file in the current
  directory with a short descriptive file name, e.g. plt.savefig("revenue_by_month.png", dpi=120,
  bbox_inches="tight"), then plt.close(). Never call plt.show(). Saved charts are shown to the user automatically.
{CHART_HELPER.format(where="")}
{CHART_STYLE}
- If the code fails, read the error, fix the code and run it again.

How to answer (when you are done with the tool):
- Reply concisely in Markdown: a short answer first, then the key numbers (a few bullet points or a small table),
  then one line on caveats if any (missing values, small samples, assumptions).
- Report only numbers your code computed. Never invent or guess numbers; if something cannot be computed from
  the data, say so plainly.
- Do not paste the code or long raw outputs into the answer; mention the charts you saved by name.
"""
"""The fixed part of the system message; the data files are appended every turn."""

RUN_PYTHON_TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": TOOL_NAME,
        "description": ("Run Python code in the thread's persistent session (working directory = the current "
                        "directory, where charts are saved as PNG files). Returns stdout, stderr and any error."),
        "parameters": {
            "type": "object",
            "properties": {"code": {"type": "string", "description": "The Python code to run."}},
            "required": ["code"],
            "additionalProperties": False,
        },
    },
}

_FINISH_REASONS = {
    "length": "the answer hit the model's output token limit before it was finished",
    "content_filter": "the answer was stopped by the content filter",
}


# ------------------------------------------------------------------------------------------------- messages


def system_message(request: AnalysisRequest) -> str:
    """The instructions plus the data files of the thread (name, path, size, facts)."""
    if request.files:
        files = ("Data files (read them from these exact paths):\n" + describe_files(request.files))
    else:
        files = "There are no data files in the session yet."
    return f"{CHAT_INSTRUCTIONS}\n{files}"


def user_message(request: AnalysisRequest, *, fresh: bool) -> str:
    """The turn's user message: new files, the thread's history when a conversation restarts, the question."""
    sections: list[str] = []
    if request.new_files:
        sections.append("New data files were added; look at them first: " + ", ".join(request.new_files) + ".")
    if fresh and request.history.strip():
        sections.append("The thread so far (your earlier session may have been reset: recompute what you need; "
                        "earlier charts may be gone):\n" + request.history.strip())
    sections.append(f"Question: {request.question.strip()}")
    return "\n\n".join(sections)


def clip(text: str, limit: int = MAX_TOOL_OUTPUT) -> str:
    """``text`` cut to about ``limit`` characters, keeping its start and its end, with a note saying so."""
    if len(text) <= limit:
        return text
    head, tail = limit * 3 // 4, limit // 4
    cut = len(text) - head - tail
    return f"{text[:head]}\n… [{cut:,} characters cut; print less, e.g. head() or a summary] …\n{text[-tail:]}"


def tool_result_text(result: ExecResult, *, timeout: float) -> str:
    """What the model sees of one run: notes on timeouts and restarts, then stdout, stderr and the error."""
    parts: list[str] = []
    if result.timed_out:
        parts.append(f"[timeout] The code ran longer than {timeout:g} s and was interrupted. Make it faster "
                     "(vectorise, sample the data) or split it into smaller steps.")
    if result.restarted:
        parts.append("[restarted] The Python session had to be restarted: all variables and imports are lost, "
                     "files in the working directory are kept. Re-read the data before using it.")
    budget = MAX_TOOL_OUTPUT
    if result.error:
        error = clip(result.error.strip(), MAX_TOOL_OUTPUT // 2)
        parts.append(f"[error]\n{error}")
        budget -= len(error)
    if result.stderr.strip():
        stderr = clip(result.stderr.strip(), max(500, budget // 3))
        parts.append(f"[stderr]\n{stderr}")
        budget -= len(stderr)
    if result.stdout.strip():
        parts.append(f"[stdout]\n{clip(result.stdout.rstrip(), max(1000, budget))}")
    if not parts:
        parts.append("The code ran without output. Use print() to see values.")
    return "\n\n".join(parts)


# ------------------------------------------------------------------------------------------------- conversations


@dataclass(slots=True)
class Conversation:
    """The messages of one thread, turn by turn (the system message is rebuilt every turn)."""

    turns: list[list[ChatCompletionMessageParam]] = field(default_factory=list)

    def then(self, turn: list[ChatCompletionMessageParam]) -> Conversation:
        """This conversation followed by ``turn``: the last :data:`KEPT_FULL_TURNS` turns whole, older ones
        compacted to question and final answer, at most :data:`MAX_TURNS` turns."""
        turns = [*self.turns, turn][-MAX_TURNS:]
        keep_from = len(turns) - KEPT_FULL_TURNS
        return Conversation(turns=[t if i >= keep_from or len(t) <= 2 else [t[0], t[-1]]
                                   for i, t in enumerate(turns)])

    def messages(self) -> list[ChatCompletionMessageParam]:
        """Every message of every turn, oldest first."""
        return [m for turn in self.turns for m in turn]


class ConversationStore:
    """An in-memory LRU of conversations by id; ids are random and never reused."""

    def __init__(self, *, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[str, Conversation] = OrderedDict()

    def get(self, conversation_id: str | None) -> Conversation | None:
        """The conversation, or ``None`` when the id is unknown (restart) or evicted."""
        if not conversation_id or conversation_id not in self._items:
            return None
        self._items.move_to_end(conversation_id)
        return self._items[conversation_id]

    def save(self, conversation: Conversation, *, replaces: str | None) -> str:
        """Store ``conversation`` under a new id (dropping the id it continues) and return the new id."""
        if replaces:
            self._items.pop(replaces, None)
        new_id = "chat_" + secrets.token_hex(16)
        self._items[new_id] = conversation
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)
        return new_id

    def __len__(self) -> int:
        return len(self._items)


# ------------------------------------------------------------------------------------------------- the engine


@dataclass(slots=True)
class _Turn:
    """The state of one running turn."""

    messages: list[ChatCompletionMessageParam]
    code: list[str] = field(default_factory=list)
    runs: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    model: str = ""

    def add_usage(self, completion: ChatCompletion) -> None:
        if completion.model:
            self.model = completion.model
        usage = completion.usage
        if usage is None:
            return
        self.input_tokens += usage.prompt_tokens
        self.output_tokens += usage.completion_tokens
        details = usage.prompt_tokens_details
        self.cached_tokens += (details.cached_tokens or 0) if details is not None else 0


class ChatToolsAnalyst:
    """:class:`bot.analysts.base.Analyst` over Chat Completions with a ``run_python`` tool and a code runner."""

    def __init__(self, *, client: AsyncOpenAI, model: str, runner: CodeRunner, exec_timeout: float,
                 max_tool_calls: int, max_conversations: int = 512) -> None:
        self._client = client
        self._model = model
        self._runner = runner
        self._exec_timeout = exec_timeout
        self._max_tool_calls = max(0, max_tool_calls)
        self._conversations = ConversationStore(capacity=max_conversations)

    async def run(self, request: AnalysisRequest, *, progress: Progress | None = None,
                  on_text: TextSink | None = None) -> AnalysisResult:
        """Answer ``request``; see the module docstring for the loop, state and errors."""
        previous = self._conversations.get(request.previous_response_id)
        if request.previous_response_id and previous is None:
            logger.info("chat conversation unknown, starting fresh container=%s previous=%s",
                        request.container_id, request.previous_response_id)
        history = previous.messages() if previous is not None else []
        question: ChatCompletionMessageParam = {"role": "user",
                                                "content": user_message(request, fresh=previous is None)}
        turn = _Turn(messages=[{"role": "system", "content": system_message(request)}, *history, question],
                     model=self._model)
        answer = await self._loop(request, turn, progress, TextRelay(on_text) if on_text is not None else None)
        conversation = (previous or Conversation()).then([question, *turn.messages[len(history) + 2:]])
        conversation_id = self._conversations.save(conversation, replaces=request.previous_response_id)
        usage = Usage(input_tokens=turn.input_tokens, output_tokens=turn.output_tokens,
                      cached_tokens=turn.cached_tokens)
        logger.info("chat analysis done container=%s conversation=%s code_runs=%d input_tokens=%d "
                    "output_tokens=%d", request.container_id, conversation_id, turn.runs, usage.input_tokens,
                    usage.output_tokens)
        return AnalysisResult(text=answer, response_id=conversation_id, code=tuple(turn.code), usage=usage,
                              model=turn.model)

    async def _loop(self, request: AnalysisRequest, turn: _Turn, progress: Progress | None,
                    relay: TextRelay | None) -> str:
        while True:
            final = turn.runs >= self._max_tool_calls
            if final:
                await report_progress(progress, WRITING_ANSWER)
            completion = await self._complete(turn.messages, final=final, relay=relay)
            turn.add_usage(completion)
            if not completion.choices:
                raise AnalysisFailed("The model returned no answer.")
            choice = completion.choices[0]
            message = choice.message
            calls = [c for c in message.tool_calls or [] if c.type == "function"]
            if not calls or final:
                text = (message.content or "").strip()
                if not text:
                    raise AnalysisFailed(_empty_reason(choice.finish_reason, message.refusal, final=final,
                                                       limit=self._max_tool_calls))
                if not final:
                    await report_progress(progress, WRITING_ANSWER)
                if choice.finish_reason in _FINISH_REASONS:
                    note = f"\n\n_(The answer may be cut short: {_FINISH_REASONS[choice.finish_reason]}.)_"
                    text += note
                    if relay is not None:
                        await relay.show(note)
                turn.messages.append({"role": "assistant", "content": text})
                return text
            turn.messages.append({
                "role": "assistant", "content": message.content,
                "tool_calls": [{"id": c.id, "type": "function",
                                "function": {"name": c.function.name, "arguments": c.function.arguments}}
                               for c in calls],
            })
            for call in calls:
                content = await self._run_call(request, turn, call.function.name, call.function.arguments,
                                               progress)
                turn.messages.append({"role": "tool", "tool_call_id": call.id, "content": content})

    async def _run_call(self, request: AnalysisRequest, turn: _Turn, name: str, arguments: str,
                        progress: Progress | None) -> str:
        """Run one tool call (it counts against the limit even when it is malformed) and return the tool text."""
        if turn.runs >= self._max_tool_calls:
            return (f"Not run: the limit of {self._max_tool_calls} code runs for this question is reached. "
                    "Answer with what you have.")
        turn.runs += 1
        if name != TOOL_NAME:
            return f"Error: there is no tool named {name!r}; the only tool is {TOOL_NAME}(code)."
        code = _code_argument(arguments)
        if code is None:
            return ('Error: the arguments must be a JSON object with a "code" string, e.g. '
                    '{"code": "print(1 + 1)"}.')
        await report_progress(progress, RUNNING_CODE)
        turn.code.append(code)
        result = await self._runner.execute(request.container_id, code, timeout=self._exec_timeout)
        if not result.ok:
            logger.info("chat tool run failed container=%s timed_out=%s restarted=%s", request.container_id,
                        result.timed_out, result.restarted)
        return tool_result_text(result, timeout=self._exec_timeout)

    async def _complete(self, messages: list[ChatCompletionMessageParam], *, final: bool,
                        relay: TextRelay | None) -> ChatCompletion:
        """One completion; streamed when the text is handed on (:mod:`bot.analysts.chat_stream`)."""
        choice: Literal["none", "auto"] = "none" if final else "auto"
        try:
            if relay is None:
                return await self._client.chat.completions.create(
                    model=self._model, messages=messages, tools=[RUN_PYTHON_TOOL], tool_choice=choice)
            stream = await self._client.chat.completions.create(
                model=self._model, messages=messages, tools=[RUN_PYTHON_TOOL], tool_choice=choice, stream=True,
                stream_options={"include_usage": True})
            async with stream:
                return await relay.read(stream, tools=not final)
        except openai.OpenAIError as exc:
            reason = self._scrub(api_reason(exc, self._model))
            logger.warning("chat completion failed model=%s error=%s", self._model, type(exc).__name__)
            raise AnalysisFailed(reason) from exc

    def _scrub(self, text: str) -> str:
        key = self._client.api_key
        return text.replace(key, "***") if isinstance(key, str) and len(key) >= 4 else text


def _code_argument(arguments: str) -> str | None:
    try:
        parsed = json.loads(arguments) if arguments else None
    except ValueError:
        return None
    code = parsed.get("code") if isinstance(parsed, dict) else None
    return code if isinstance(code, str) and code.strip() else None


def _empty_reason(finish_reason: str | None, refusal: str | None, *, final: bool, limit: int) -> str:
    if refusal:
        return f"The model refused to answer: {refusal}"
    if finish_reason in _FINISH_REASONS:
        return f"The model gave no answer: {_FINISH_REASONS[finish_reason]}."
    if final:
        return f"The model gave no final answer after {limit} code runs."
    return "The model returned an empty answer."
