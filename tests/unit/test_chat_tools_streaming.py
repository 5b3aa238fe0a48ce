"""The chat_tools analyst streams its answer: with ``on_text`` every completion is a streamed chat completion
(the real openai client against FakeOpenAI over loopback HTTP, real code execution), the answer's text is handed
on as the model writes it, what the model says before a tool call is not, and the result is the same as a plain
call's (text, tool runs, usage)."""

from __future__ import annotations

from typing import Any

from openai import AsyncOpenAI

from bot.analysts.chat_stream import HOLD_CHARS
from tests.emulators.fake_openai import ChatReply, FakeOpenAI, ScriptUsage
from tests.runners import SubprocessRunner
from tests.unit.test_chat_tools_analyst import analyst, ask, client, oai, runner, sales  # noqa: F401 (fixtures)

ANSWER = "**Revenue** totals the column the code summed.\n\n" + "\n".join(f"- finding {i}: " + " ".join(["word"] * 12)
                                                                         for i in range(10))


def preamble_then_answer(body: dict[str, Any]) -> ChatReply:
    """Says what it will do while calling the tool, then answers."""
    if not any(m["role"] == "tool" for m in body["messages"]) and body.get("tool_choice") != "none":
        return ChatReply(text="Let me look at the data first.", usage=ScriptUsage(input_tokens=100, output_tokens=10),
                         tool_calls=[{"name": "run_python", "arguments": {"code": "print(6 * 7)"}}])
    return ChatReply(text=ANSWER, usage=ScriptUsage(input_tokens=200, output_tokens=90))


async def test_the_answer_streams_through_on_text_and_a_preamble_to_a_tool_call_does_not(
        client: AsyncOpenAI, oai: FakeOpenAI, runner: SubprocessRunner) -> None:  # noqa: F811
    oai.chat_script = preamble_then_answer
    oai.token_chars = 8
    f = sales(runner)
    plain = await analyst(client, runner).run(ask("What is in the file?", f))
    assert not any(body.get("stream") for body, _ in oai.chat_completions)  # no on_text: not streamed
    oai.chat_completions.clear()

    pieces: list[str] = []

    async def on_text(delta: str) -> None:
        pieces.append(delta)

    result = await analyst(client, runner).run(ask("What is in the file?", f), on_text=on_text)
    assert [(body.get("stream"), body.get("stream_options")) for body, _ in oai.chat_completions] == \
        [(True, {"include_usage": True})] * 2
    assert "".join(pieces) == result.text == ANSWER and len(pieces) > 10  # as the model wrote it, not at the end
    assert result.code == plain.code == ("print(6 * 7)",)
    assert (result.usage.input_tokens, result.usage.output_tokens) == (300, 100) == \
        (plain.usage.input_tokens, plain.usage.output_tokens)
    assert [m["content"] for m in oai.chat_completions[1][0]["messages"] if m["role"] == "tool"] == ["[stdout]\n42"]
    first = oai.chat_completions[1][0]["messages"][-2]
    assert first["content"] == "Let me look at the data first." and first["tool_calls"][0]["function"]["name"] == \
        "run_python"  # the preamble stays in the conversation, not on show


async def test_a_short_answer_is_shown_whole_and_a_cut_short_one_with_its_note(
        client: AsyncOpenAI, oai: FakeOpenAI, runner: SubprocessRunner) -> None:  # noqa: F811
    short = "Forty-two."
    assert len(short) < HOLD_CHARS
    oai.chat_script = lambda body: ChatReply(text=short)
    pieces: list[str] = []

    async def on_text(delta: str) -> None:
        pieces.append(delta)

    f = sales(runner)
    assert (await analyst(client, runner).run(ask("q?", f), on_text=on_text)).text == short
    assert "".join(pieces) == short
    pieces.clear()
    oai.chat_script = lambda body: ChatReply(text=ANSWER, finish_reason="length")
    result = await analyst(client, runner).run(ask("q?", f), on_text=on_text)
    assert "".join(pieces) == result.text and result.text.startswith(ANSWER) and "cut short" in result.text
