"""The chat_tools analyst against FakeOpenAI's chat completions over loopback HTTP, with real code execution."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from openai import AsyncOpenAI
from PIL import Image

from bot.analysts.base import AnalysisFailed, AnalysisRequest, AnalysisResult, DataFile
from bot.analysts.chat_tools import MAX_TOOL_OUTPUT, ChatToolsAnalyst, Conversation
from tests.emulators.fake_openai import ChatReply, FakeOpenAI, ScriptUsage, default_chat_script
from tests.runners import SubprocessRunner

KEY = "sk-test-chat-tools-0123456789"
MODEL = "local-coder"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
async def oai() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=KEY) as fake:
        yield fake


@pytest.fixture
async def client(oai: FakeOpenAI) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=oai.base_url, api_key=KEY, _strict_response_validation=True,
                           max_retries=0) as c:
        yield c


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[SubprocessRunner]:
    r = SubprocessRunner(tmp_path / "containers")
    yield r
    await r.close()


def analyst(client: AsyncOpenAI, runner: SubprocessRunner, *, max_tool_calls: int = 6,
            exec_timeout: float = 60) -> ChatToolsAnalyst:
    return ChatToolsAnalyst(client=client, model=MODEL, runner=runner, exec_timeout=exec_timeout,
                            max_tool_calls=max_tool_calls)


def sales(runner: SubprocessRunner, container: str = "c1") -> DataFile:
    path = runner.workdir(container) / "sales.csv"
    path.write_bytes((EXAMPLES / "sales.csv").read_bytes())
    return DataFile(name="sales.csv", path=str(path), size=path.stat().st_size, facts="read with pandas.read_csv")


def ask(question: str, *files: DataFile, previous: str | None = None, history: str = "",
        container: str = "c1") -> AnalysisRequest:
    return AnalysisRequest(question=question, container_id=container, files=files,
                           new_files=tuple(f.name for f in files) if previous is None else (),
                           previous_response_id=previous, history=history)


def tool_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in body["messages"] if m["role"] == "tool"]


def tools_then_answer(steps: list[str], answer: Callable[[list[dict[str, Any]]], str]) -> Callable[..., ChatReply]:
    """A chat script that runs ``steps`` one per call (after the latest user message), then answers."""

    def script(body: dict[str, Any]) -> ChatReply:
        messages = body["messages"]
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        done = sum(1 for m in messages[last_user:] if m["role"] == "tool")
        if done < len(steps) and body.get("tool_choice") != "none":
            return ChatReply(tool_calls=[{"name": "run_python", "arguments": {"code": steps[done]}}])
        return ChatReply(text=answer([m for m in messages[last_user:] if m["role"] == "tool"]))

    return script


# ------------------------------------------------------------------------------------------------- the loop


async def test_default_script_runs_code_writes_a_chart_and_answers(client: AsyncOpenAI, oai: FakeOpenAI,
                                                                   runner: SubprocessRunner) -> None:
    f = sales(runner)
    lines: list[str] = []

    async def progress(line: str) -> None:
        lines.append(line)

    result = await analyst(client, runner).run(ask("What is in the file?", f), progress=progress)

    df = pd.read_csv(EXAMPLES / "sales.csv")
    assert "sales.csv: 288 rows x 6 columns: month, region, product, revenue, units, returns" in result.text
    assert f"revenue total: {df['revenue'].sum():.2f}" in result.text
    chart = runner.workdir("c1") / "chart_1.png"
    with Image.open(chart) as image:
        assert image.format == "PNG"
        image.verify()
    assert lines == ["running code…", "writing the answer…"]
    assert len(result.code) == 1 and f.path in result.code[0]
    assert result.response_id is not None and result.response_id.startswith("chat_")
    assert result.model == MODEL

    (first, c1), (second, c2) = oai.chat_completions
    assert first["model"] == MODEL and first["tool_choice"] == "auto"
    assert [t["function"]["name"] for t in first["tools"]] == ["run_python"]
    params = first["tools"][0]["function"]["parameters"]
    assert params["required"] == ["code"] and params["properties"]["code"]["type"] == "string"
    system = first["messages"][0]
    assert system["role"] == "system" and f"sales.csv: path {f.path}" in system["content"]
    assert "read with pandas.read_csv" in system["content"]
    assert "current directory" in system["content"] and "plt.savefig" in system["content"]
    assert "Never call plt.show()" in system["content"] and "Markdown" in system["content"]
    assert first["messages"][1] == {"role": "user", "content": "New data files were added; look at them first: "
                                                               "sales.csv.\n\nQuestion: What is in the file?"}
    call = c1["choices"][0]["message"]["tool_calls"][0]
    assert second["messages"][2]["role"] == "assistant" and second["messages"][2]["tool_calls"][0]["id"] == call["id"]
    tool = second["messages"][3]
    assert tool["role"] == "tool" and tool["tool_call_id"] == call["id"]
    assert tool["content"].startswith("[stdout]\nsales.csv: 288 rows x 6 columns")
    assert result.usage.input_tokens == c1["usage"]["prompt_tokens"] + c2["usage"]["prompt_tokens"]
    assert result.usage.output_tokens == c1["usage"]["completion_tokens"] + c2["usage"]["completion_tokens"]
    assert all(r.authorization == f"Bearer {KEY}" for r in oai.recorder.calls("/v1/chat/completions"))


async def test_the_model_sees_the_traceback_and_fixes_its_code(client: AsyncOpenAI, oai: FakeOpenAI,
                                                               runner: SubprocessRunner) -> None:
    f = sales(runner)
    oai.chat_script = tools_then_answer(
        [f"import pandas as pd\ndf = pd.read_csv({f.path!r})\nprint(df['revenu'].sum())",
         "print(round(df['revenue'].sum(), 2))"],
        lambda tools: f"Total revenue: {tools[-1]['content'].split()[-1]}",
    )
    result = await analyst(client, runner).run(ask("Total revenue?", f))

    fed_back = tool_messages(oai.chat_completions[1][0])[0]["content"]
    assert fed_back.startswith("[error]\nTraceback (most recent call last)")
    assert "KeyError: 'revenu'" in fed_back
    total = round(pd.read_csv(EXAMPLES / "sales.csv")["revenue"].sum(), 2)
    assert tool_messages(oai.chat_completions[2][0])[1]["content"] == f"[stdout]\n{total}"
    assert result.text == f"Total revenue: {total}"
    assert len(result.code) == 2 and len(oai.chat_completions) == 3


async def test_the_number_of_code_runs_is_bounded(client: AsyncOpenAI, oai: FakeOpenAI,
                                                  runner: SubprocessRunner) -> None:
    def greedy(body: dict[str, Any]) -> ChatReply:
        if body.get("tool_choice") == "none":
            return ChatReply(text=f"Final answer after {len(tool_messages(body))} tool results.")
        n = len(tool_messages(body))
        return ChatReply(tool_calls=[{"name": "run_python", "arguments": {"code": f"print({n})"}},
                                     {"name": "run_python", "arguments": {"code": f"print({n + 1})"}}])

    oai.chat_script = greedy
    lines: list[str] = []

    async def progress(line: str) -> None:
        lines.append(line)

    result = await analyst(client, runner, max_tool_calls=3).run(ask("Loop forever?"), progress=progress)

    assert len(runner.runs) == 3 and len(result.code) == 3
    assert [body.get("tool_choice") for body, _ in oai.chat_completions] == ["auto", "auto", "none"]
    last = tool_messages(oai.chat_completions[-1][0])
    assert len(last) == 4 and last[3]["content"].startswith("Not run: the limit of 3 code runs")
    assert result.text == "Final answer after 4 tool results."
    assert lines == ["running code…"] * 3 + ["writing the answer…"]


async def test_malformed_arguments_and_unknown_tools_are_explained(client: AsyncOpenAI, oai: FakeOpenAI,
                                                                   runner: SubprocessRunner) -> None:
    def script(body: dict[str, Any]) -> ChatReply:
        if not tool_messages(body):
            return ChatReply(tool_calls=[{"name": "run_python", "arguments": "print(1)"},
                                         {"name": "shell", "arguments": {"cmd": "ls"}}])
        return ChatReply(text=" | ".join(m["content"] for m in tool_messages(body)))

    oai.chat_script = script
    result = await analyst(client, runner).run(ask("Anything?"))
    assert result.text.startswith('Error: the arguments must be a JSON object with a "code" string')
    assert "Error: there is no tool named 'shell'; the only tool is run_python(code)." in result.text
    assert runner.runs == [] and result.code == ()


async def test_timeouts_are_explained_and_state_survives(client: AsyncOpenAI, oai: FakeOpenAI,
                                                         runner: SubprocessRunner) -> None:
    oai.chat_script = tools_then_answer(["x = 41\nimport time\ntime.sleep(60)", "print(x + 1)"],
                                        lambda tools: tools[-1]["content"])
    result = await analyst(client, runner, exec_timeout=0.5).run(ask("Slow?"))
    first = tool_messages(oai.chat_completions[1][0])[0]["content"]
    assert first.startswith("[timeout] The code ran longer than 0.5 s and was interrupted.")
    assert result.text == "[stdout]\n42"


async def test_long_output_is_clipped_with_a_note(client: AsyncOpenAI, oai: FakeOpenAI,
                                                  runner: SubprocessRunner) -> None:
    oai.chat_script = tools_then_answer(["print('a' * 30000 + 'END')"], lambda tools: tools[0]["content"])
    result = await analyst(client, runner).run(ask("Print a lot"))
    assert len(result.text) < MAX_TOOL_OUTPUT + 200
    assert "characters cut; print less" in result.text and result.text.endswith("END")


# ------------------------------------------------------------------------------------------------- conversations


async def test_follow_ups_continue_the_conversation_and_the_session(client: AsyncOpenAI, oai: FakeOpenAI,
                                                                    runner: SubprocessRunner) -> None:
    f = sales(runner)
    engine = analyst(client, runner)
    first = await engine.run(ask("What is in the file?", f))
    turn_one = oai.chat_completions[-1][0]["messages"]

    oai.chat_script = tools_then_answer(["print(len(df), df.columns[0])"], lambda tools: tools[0]["content"])
    second = await engine.run(ask("How many rows again?", f, previous=first.response_id))
    sent = oai.chat_completions[-2][0]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert sent[1:4] == turn_one[1:4] and sent[4] == {"role": "assistant", "content": first.text}
    assert sent[5] == {"role": "user", "content": "Question: How many rows again?"}
    assert second.text == "[stdout]\n288 month"  # `df` from the first turn's code is still in the session
    assert second.response_id not in (None, first.response_id)

    oai.chat_script = default_chat_script
    third = await engine.run(ask("Once more", f, previous=second.response_id))
    assert third.response_id is not None
    fourth_request = ask("And again", f, previous=third.response_id)
    await engine.run(fourth_request)
    sent = oai.chat_completions[-2][0]["messages"]
    # turns 2 and 3 are kept whole, turn 1 is compacted to its question and answer
    assert [m["role"] for m in sent[:5]] == ["system", "user", "assistant", "user", "assistant"]
    assert sent[2] == {"role": "assistant", "content": first.text}
    assert len(tool_messages({"messages": sent})) == 2
    assert runner.workdir("c1").joinpath("chart_3.png").exists()


async def test_an_unknown_id_starts_fresh_with_the_thread_history(client: AsyncOpenAI, oai: FakeOpenAI,
                                                                  runner: SubprocessRunner) -> None:
    f = sales(runner)
    result = await analyst(client, runner).run(
        ask("And by region?", f, previous="chat_unknown", history="User: what is in sales.csv?\nBot: 288 rows."))
    sent = oai.chat_completions[0][0]["messages"]
    assert [m["role"] for m in sent] == ["system", "user"]
    assert "The thread so far" in sent[1]["content"] and "Bot: 288 rows." in sent[1]["content"]
    assert sent[1]["content"].endswith("Question: And by region?")
    assert isinstance(result, AnalysisResult) and result.response_id is not None


def test_conversation_compaction() -> None:
    conversation = Conversation()
    for i in range(4):
        conversation = conversation.then([
            {"role": "user", "content": f"q{i}"},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": f"call_{i}", "type": "function",
                             "function": {"name": "run_python", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": f"call_{i}", "content": "out"},
            {"role": "assistant", "content": f"a{i}"},
        ])
    assert [len(t) for t in conversation.turns] == [2, 2, 4, 4]
    assert conversation.messages()[:4] == [{"role": "user", "content": "q0"}, {"role": "assistant", "content": "a0"},
                                           {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}]


# ------------------------------------------------------------------------------------------------- API errors


async def test_unknown_model_is_a_readable_failure(client: AsyncOpenAI, oai: FakeOpenAI,
                                                   runner: SubprocessRunner) -> None:
    oai.chat_models = {"another-model"}
    with pytest.raises(AnalysisFailed) as err:
        await analyst(client, runner).run(ask("Hi"))
    assert f"The model `{MODEL}` was not found" in err.value.reason and "DATASTORY_MODEL" in err.value.reason
    assert KEY not in err.value.reason


async def test_a_wrong_key_is_never_quoted(oai: FakeOpenAI, runner: SubprocessRunner) -> None:
    wrong = "sk-wrong-secret-key-987654321"
    async with AsyncOpenAI(base_url=oai.base_url, api_key=wrong, max_retries=0) as bad:
        with pytest.raises(AnalysisFailed) as err:
            await analyst(bad, runner).run(ask("Hi"))
    assert "OPENAI_API_KEY" in err.value.reason
    assert wrong not in err.value.reason and wrong[-4:] not in err.value.reason


async def test_rate_limits_are_retried_then_reported(oai: FakeOpenAI, runner: SubprocessRunner) -> None:
    async with AsyncOpenAI(base_url=oai.base_url, api_key=KEY, max_retries=2) as retrying:
        oai.fail_next("POST", "/v1/chat/completions", status=429, headers={"retry-after-ms": "10"}, times=1)
        ok = await analyst(retrying, runner).run(ask("Hi"))
        assert ok.text.startswith("**Answer** to: Hi")
        oai.fail_next("POST", "/v1/chat/completions", status=429, headers={"retry-after-ms": "10"}, times=3)
        with pytest.raises(AnalysisFailed) as err:
            await analyst(retrying, runner).run(ask("Hi again"))
    assert "rate limiting" in err.value.reason and "Rate limit reached" in err.value.reason
    attempts = [r.headers.get("x-stainless-retry-count") for r in oai.recorder.calls("/v1/chat/completions")]
    assert attempts[-3:] == ["0", "1", "2"]


async def test_an_empty_answer_is_a_failure(client: AsyncOpenAI, oai: FakeOpenAI, runner: SubprocessRunner) -> None:
    oai.chat_script = lambda body: ChatReply(text="", finish_reason="length", usage=ScriptUsage(1, 1))
    with pytest.raises(AnalysisFailed) as err:
        await analyst(client, runner).run(ask("Hi"))
    assert "output token limit" in err.value.reason


def test_tool_schema_is_plain_json() -> None:
    from bot.analysts.chat_tools import RUN_PYTHON_TOOL

    assert json.loads(json.dumps(RUN_PYTHON_TOOL))["function"]["name"] == "run_python"
