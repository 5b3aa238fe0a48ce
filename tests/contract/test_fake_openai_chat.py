"""FakeOpenAI chat completions conformance: the real SDK with strict response validation accepts every answer."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from tests.emulators.fake_openai import ChatReply, FakeOpenAI, ScriptUsage

KEY = "sk-test-chat-conformance"
TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {"name": "run_python", "description": "Run Python",
                 "parameters": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}},
}


@pytest.fixture
async def oai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=KEY) as fake:
        yield fake


@pytest.fixture
async def client(oai: FakeOpenAI) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=oai.base_url, api_key=KEY, _strict_response_validation=True,
                           max_retries=0) as c:
        yield c


def _messages(path: str = "/data/sales.csv") -> list[ChatCompletionMessageParam]:
    return [{"role": "system", "content": f"Data files:\n- sales.csv: path {path} (1 KB)"},
            {"role": "user", "content": "Question: what is in the file?"}]


async def test_default_script_calls_the_tool_then_answers(client: AsyncOpenAI, oai: FakeOpenAI) -> None:
    messages = _messages()
    first = await client.chat.completions.create(model="local-model", messages=messages, tools=[TOOL],
                                                 tool_choice="auto")
    assert first.object == "chat.completion" and first.id.startswith("chatcmpl-") and first.model == "local-model"
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls or []
    assert len(calls) == 1 and calls[0].type == "function" and calls[0].id.startswith("call_")
    assert calls[0].function.name == "run_python"
    code = json.loads(calls[0].function.arguments)["code"]
    assert "/data/sales.csv" in code and "savefig('chart_1.png')" in code
    compile(code, "<tool>", "exec")
    assert first.usage is not None and first.usage.total_tokens == first.usage.prompt_tokens + \
        first.usage.completion_tokens

    messages += [{"role": "assistant", "content": None,
                  "tool_calls": [{"id": calls[0].id, "type": "function",
                                  "function": {"name": "run_python", "arguments": calls[0].function.arguments}}]},
                 {"role": "tool", "tool_call_id": calls[0].id, "content": "sales.csv: 3 rows x 2 columns"}]
    second = await client.chat.completions.create(model="local-model", messages=messages, tools=[TOOL])
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.tool_calls is None
    assert "sales.csv: 3 rows x 2 columns" in (second.choices[0].message.content or "")
    assert "what is in the file?" in (second.choices[0].message.content or "")

    recorded = oai.recorder.calls("/v1/chat/completions")
    assert len(recorded) == 2 and recorded[1].json["messages"][-1]["tool_call_id"] == calls[0].id
    assert recorded[0].authorization == f"Bearer {KEY}"
    assert [body["model"] for body, _ in oai.chat_completions] == ["local-model", "local-model"]


async def test_scripted_reply_usage_and_tool_choice_none(client: AsyncOpenAI, oai: FakeOpenAI) -> None:
    def script(body: dict[str, Any]) -> ChatReply:
        return ChatReply(text="forced" if body.get("tool_choice") == "none" else None,
                         tool_calls=[{"name": "run_python", "arguments": {"code": "print(1)"}, "id": "call_x"}],
                         usage=ScriptUsage(input_tokens=11, output_tokens=7, cached_tokens=3))

    oai.chat_script = script
    tools = await client.chat.completions.create(model="m", messages=_messages(), tools=[TOOL])
    calls = tools.choices[0].message.tool_calls or []
    assert calls[0].type == "function" and calls[0].id == "call_x"
    assert json.loads(calls[0].function.arguments) == {"code": "print(1)"}
    assert tools.usage is not None and (tools.usage.prompt_tokens, tools.usage.completion_tokens) == (11, 7)
    assert tools.usage.prompt_tokens_details is not None and tools.usage.prompt_tokens_details.cached_tokens == 3
    none = await client.chat.completions.create(model="m", messages=_messages(), tools=[TOOL], tool_choice="none")
    assert none.choices[0].message.tool_calls is None and none.choices[0].message.content == "forced"

    oai.chat_script = lambda body: {"text": "plain dict reply", "finish_reason": "length"}
    plain = await client.chat.completions.create(model="m", messages=_messages())
    assert plain.choices[0].message.content == "plain dict reply" and plain.choices[0].finish_reason == "length"


async def test_message_sequence_is_checked(client: AsyncOpenAI) -> None:
    stray: list[ChatCompletionMessageParam] = [*_messages(), {"role": "tool", "tool_call_id": "call_1", "content": "x"}]
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(model="m", messages=stray)
    assert "must be a response to a preceeding message with 'tool_calls'" in str(err.value)
    unanswered: list[ChatCompletionMessageParam] = [
        *_messages(),
        {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function",
                                              "function": {"name": "run_python", "arguments": "{}"}}]},
        {"role": "user", "content": "hello?"},
    ]
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(model="m", messages=unanswered)
    assert "did not have response messages: call_1" in str(err.value)
    with pytest.raises(openai.BadRequestError):
        await client.chat.completions.create(model="m", messages=[])


async def test_unknown_model_and_bad_key(client: AsyncOpenAI, oai: FakeOpenAI) -> None:
    oai.chat_models = {"known-model"}
    with pytest.raises(openai.NotFoundError) as err:
        await client.chat.completions.create(model="nope", messages=_messages())
    assert err.value.code == "model_not_found" and "`nope` does not exist" in str(err.value)
    ok = await client.chat.completions.create(model="known-model", messages=_messages())
    assert ok.model == "known-model"
    async with AsyncOpenAI(base_url=oai.base_url, api_key="sk-wrong-key-123456", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            await bad.chat.completions.create(model="known-model", messages=_messages())


async def test_streaming_chunks_rebuild_the_same_answer(client: AsyncOpenAI, oai: FakeOpenAI) -> None:
    stream = await client.chat.completions.create(model="m", messages=_messages(), tools=[TOOL], stream=True,
                                                  stream_options={"include_usage": True})
    arguments, names, finish, usage = "", [], None, None
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                if call.function is not None and call.function.name:
                    names.append(call.function.name)
                arguments += (call.function.arguments or "") if call.function is not None else ""
            finish = choice.finish_reason or finish
    assert names == ["run_python"] and finish == "tool_calls" and usage is not None
    _, completion = oai.chat_completions[-1]
    assert arguments == completion["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]

    oai.chat_script = lambda body: ChatReply(text="A streamed answer that is longer than one chunk of text.")
    async with client.chat.completions.stream(model="m", messages=_messages()) as helper:
        final = await helper.get_final_completion()
    assert final.choices[0].message.content == "A streamed answer that is longer than one chunk of text."
    assert final.choices[0].finish_reason == "stop"


async def test_a_streamed_answer_comes_at_the_set_pace(client: AsyncOpenAI, oai: FakeOpenAI) -> None:
    oai.token_chars, oai.token_interval = 5, 0.03
    text = "Revenue rose in every region."
    oai.chat_script = lambda body: ChatReply(text=text)
    stream = await client.chat.completions.create(model="m", messages=_messages(), stream=True)
    pieces: list[tuple[float, str]] = []
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append((time.perf_counter(), choice.delta.content))
    assert [p for _, p in pieces] == [text[i:i + 5] for i in range(0, len(text), 5)]
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(pieces)]
    assert min(gaps) >= 0.02, gaps  # a model writing, not the whole answer at once
    _, completion = oai.chat_completions[-1]
    assert completion["id"] in oai.first_text_at
