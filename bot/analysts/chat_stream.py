"""A chat completion read as it streams (``stream=True``): its text handed on while the model writes it, and the
same :class:`~openai.types.chat.ChatCompletion` a plain call answers, put together from the chunks (content,
refusal, the tool calls from their deltas by ``index``, the finish reason, and the usage of the last chunk, asked
for with ``stream_options={"include_usage": True}``).

Only an answer is handed on, not what a model says before it calls a tool ("Let me look at the data first."):
the first :data:`HOLD_CHARS` characters of a completion that may still call a tool are held, and dropped when a
tool call follows; a longer text, or one the stream ends without a tool call, is the answer, handed on at once
from there. A completion that may not call tools (``tool_choice="none"``, the last one) holds nothing. Should a
model call a tool after more than that, what was shown stays, and the next text shown starts a new paragraph.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal

from openai.types import CompletionUsage
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionMessageToolCallUnion,
)
from openai.types.chat.chat_completion import Choice
from openai.types.chat.chat_completion_message_function_tool_call import ChatCompletionMessageFunctionToolCall, Function

from bot.analysts.base import TextSink, report_text

HOLD_CHARS = 100
"""Characters of a completion held back while it may still turn out to be a tool call's preamble."""
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


@dataclass(slots=True)
class _Call:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(slots=True)
class _Completion:
    """What the chunks of one completion said so far."""

    id: str = ""
    created: int = 0
    model: str = ""
    content: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    calls: dict[int, _Call] = field(default_factory=dict)
    finish: FinishReason | None = None
    usage: CompletionUsage | None = None

    def add(self, chunk: ChatCompletionChunk) -> str:
        """Take in one chunk; its text (of the first choice)."""
        self.id, self.created, self.model = chunk.id or self.id, chunk.created or self.created, \
            chunk.model or self.model
        if chunk.usage is not None:
            self.usage = chunk.usage
        text = ""
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            text += delta.content or ""
            if delta.refusal:
                self.refusal.append(delta.refusal)
            for d in delta.tool_calls or []:
                call = self.calls.setdefault(d.index, _Call())
                call.id = d.id or call.id
                if d.function is not None:
                    call.name += d.function.name or ""
                    call.arguments += d.function.arguments or ""
            self.finish = choice.finish_reason or self.finish
        self.content.append(text)
        return text

    def completion(self) -> ChatCompletion:
        calls: list[ChatCompletionMessageToolCallUnion] = [
            ChatCompletionMessageFunctionToolCall(id=c.id, type="function",
                                                  function=Function(name=c.name, arguments=c.arguments))
            for _, c in sorted(self.calls.items())]
        message = ChatCompletionMessage(role="assistant", content="".join(self.content) if any(self.content) else None,
                                        refusal="".join(self.refusal) or None, tool_calls=calls or None)
        return ChatCompletion(id=self.id, created=self.created, model=self.model, object="chat.completion",
                              choices=[Choice(index=0, message=message, finish_reason=self.finish or "stop")],
                              usage=self.usage)


class TextRelay:
    """A turn's completions read as they stream, their answer text handed to ``on_text`` (see the module
    docstring)."""

    def __init__(self, on_text: TextSink) -> None:
        self._on_text = on_text
        self.shown = False
        """Some text was handed on (by any completion of the turn)."""

    async def read(self, chunks: AsyncIterator[ChatCompletionChunk], *, tools: bool) -> ChatCompletion:
        """The completion the ``chunks`` make; its text handed on as it comes (held while ``tools`` may follow)."""
        got = _Completion()
        held = ""
        releasing = not tools
        started = False
        async for chunk in chunks:
            text = got.add(chunk)
            if not text or got.calls:
                continue
            if not releasing:
                held += text
                if len(held) < HOLD_CHARS:
                    continue
                text, held, releasing = held, "", True
            await self._show(text, first=not started)
            started = True
        if held and not got.calls:
            await self._show(held, first=not started)
        return got.completion()

    async def show(self, text: str) -> None:
        """Hand on more text after a completion's (a note on an answer cut short)."""
        if self.shown:
            await report_text(self._on_text, text)

    async def _show(self, text: str, *, first: bool) -> None:
        if first and self.shown:
            text = "\n\n" + text.lstrip()  # an earlier completion's text is on show: a new paragraph
        self.shown = True
        await report_text(self._on_text, text)
