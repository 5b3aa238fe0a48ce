"""ResponsesAnalyst against FakeOpenAI over loopback HTTP: request shape, chaining, progress, citations, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from openai import AsyncOpenAI

from bot.analysts.base import AnalysisFailed, AnalysisRequest, DataFile
from bot.analysts.prompts import INSTRUCTIONS
from bot.analysts.responses import RUNNING_CODE, WRITING_ANSWER, ResponsesAnalyst
from bot.sandbox.base import ContainerExpired, ContainerNotFound, SandboxUnavailable
from bot.sandbox.openai import OpenAISandbox
from tests.emulators.fake_openai import FakeOpenAI, ManualClock, ResponseContext, ScriptedTurn, ScriptUsage

KEY = "sk-test-analyst"
CSV = b"region,month,revenue\nNorth,2024-01,100\nSouth,2024-01,80\nNorth,2024-02,120\nSouth,2024-02,95\n"


@dataclass(slots=True)
class Env:
    oai: FakeOpenAI
    client: AsyncOpenAI
    analyst: ResponsesAnalyst
    container_id: str
    data_file: DataFile


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with FakeOpenAI(api_key=KEY, clock=ManualClock()) as oai, \
            AsyncOpenAI(base_url=oai.base_url, api_key=KEY, max_retries=0, _strict_response_validation=True) as client:
        sandbox = OpenAISandbox(client=client)
        try:
            info = await sandbox.create(name="datastory-T1-C1-1.2", idle_minutes=20)
            uploaded = await sandbox.upload(info.id, name="sales.csv", chunks=_one(CSV), size=len(CSV))
        finally:
            await sandbox.close()
        data_file = DataFile(name="sales.csv", path=uploaded.path, size=uploaded.size,
                             facts="encoding utf-8, delimiter ','")
        yield Env(oai=oai, client=client, analyst=ResponsesAnalyst(client=client, model="gpt-4.1"),
                  container_id=info.id, data_file=data_file)


def _request(env: Env, question: str, **kw: object) -> AnalysisRequest:
    return AnalysisRequest(question=question, container_id=env.container_id, files=(env.data_file,), **kw)  # type: ignore[arg-type]


async def test_first_turn(env: Env) -> None:
    lines: list[str] = []

    async def progress(line: str) -> None:
        lines.append(line)

    result = await env.analyst.run(_request(env, "Which region sells most?"), progress=progress)

    (sent,) = env.oai.recorder.calls("/v1/responses")
    body = sent.json
    assert body["tools"] == [{"type": "code_interpreter", "container": env.container_id}]
    assert body["include"] == ["code_interpreter_call.outputs"]
    assert body["instructions"] == INSTRUCTIONS and body["model"] == "gpt-4.1" and body["stream"] is True
    assert "previous_response_id" not in body and "max_output_tokens" not in body
    assert env.data_file.path in body["input"] and "delimiter ','" in body["input"]
    assert body["input"].rstrip().endswith("Question: Which region sells most?")

    assert lines == [RUNNING_CODE, WRITING_ANSWER]
    assert "**Summary of sales.csv** — 4 rows, columns: region, month, revenue" in result.text
    assert "Turn 1 in this container." in result.text
    assert result.response_id is not None and result.response_id.startswith("resp_")
    assert result.response_id in env.oai.responses and result.model == "gpt-4.1"
    assert len(result.code) == 1 and env.data_file.path in result.code[0]
    (cited,) = result.cited_file_ids
    chart = env.oai.containers[env.container_id].files[cited]
    assert chart.name == "chart_1.png" and chart.source == "assistant"
    assert result.usage.input_tokens > 0 and result.usage.output_tokens > 0


async def test_chained_turn_and_state(env: Env) -> None:
    first = await env.analyst.run(_request(env, "Overview?"))
    second = await env.analyst.run(_request(env, "And by month?", previous_response_id=first.response_id))
    sent = env.oai.recorder.calls("/v1/responses")[-1].json
    assert sent["previous_response_id"] == first.response_id
    assert sent["instructions"] == INSTRUCTIONS  # sent again: not carried over by the chain
    assert sent["input"] == "Question: And by month?"
    assert second.response_id is not None
    assert env.oai.chain_of(second.response_id) == [first.response_id, second.response_id]
    assert env.oai.responses[second.response_id].container_id == env.container_id
    assert "Turn 2 in this container." in second.text
    assert env.oai.containers[env.container_id].variables["questions"] == ["Overview?", "And by month?"]


async def test_new_files_and_history(env: Env) -> None:
    extra = DataFile(name="q3.csv", path="/mnt/data/" + "a" * 32 + "-q3.csv", size=2048)
    req = AnalysisRequest(question="Compare", container_id=env.container_id, files=(env.data_file, extra),
                          new_files=("q3.csv",), previous_response_id=None, history="User asked about totals.")
    await env.analyst.run(req)
    fresh = env.oai.recorder.calls("/v1/responses")[-1].json["input"]
    assert "User asked about totals." in fresh and extra.path in fresh and "q3.csv" in fresh
    prev = next(iter(env.oai.responses))
    chained = AnalysisRequest(question="Again", container_id=env.container_id, files=(env.data_file, extra),
                              new_files=("q3.csv",), previous_response_id=prev)
    await env.analyst.run(chained)
    text = env.oai.recorder.calls("/v1/responses")[-1].json["input"]
    assert extra.path in text and "2.0 KB" in text and env.data_file.path not in text


async def test_usage_and_max_output_tokens(env: Env) -> None:
    env.oai.script = lambda ctx: ScriptedTurn(code="print(1)", text="Fine.",
                                              usage=ScriptUsage(input_tokens=900, output_tokens=40, cached_tokens=512))
    analyst = ResponsesAnalyst(client=env.client, model="gpt-4.1", max_output_tokens=1500)
    result = await analyst.run(_request(env, "q"))
    assert (result.usage.input_tokens, result.usage.output_tokens, result.usage.cached_tokens) == (900, 40, 512)
    assert env.oai.recorder.calls("/v1/responses")[-1].json["max_output_tokens"] == 1500
    assert result.cited_file_ids == () and result.code == ("print(1)",)


async def test_progress_failure_does_not_break_the_run(env: Env) -> None:
    async def broken(line: str) -> None:
        raise RuntimeError("slack is down")

    result = await env.analyst.run(_request(env, "q"), progress=broken)
    assert result.text


async def test_expired_and_missing_container(env: Env) -> None:
    env.oai.expire(env.container_id)
    with pytest.raises(ContainerExpired):
        await env.analyst.run(_request(env, "q"))
    gone = AnalysisRequest(question="q", container_id="cntr_" + "0" * 48, files=())
    with pytest.raises(ContainerNotFound):
        await env.analyst.run(gone)


async def test_failed_response(env: Env) -> None:
    def script(ctx: ResponseContext) -> ScriptedTurn:
        return ScriptedTurn(code="1/0", status="failed", error_message="The model crashed.")

    env.oai.script = script
    with pytest.raises(AnalysisFailed) as err:
        await env.analyst.run(_request(env, "q"))
    assert "The model crashed." in err.value.reason


async def test_incomplete_response(env: Env) -> None:
    env.oai.script = lambda ctx: ScriptedTurn(text="Partial answ", status="incomplete")
    with pytest.raises(AnalysisFailed) as err:
        await env.analyst.run(_request(env, "q"))
    assert "output token limit" in err.value.reason


async def test_unknown_previous_response_and_rate_limit(env: Env) -> None:
    with pytest.raises(AnalysisFailed) as err:
        await env.analyst.run(_request(env, "q", previous_response_id="resp_unknown"))
    assert "resp_unknown" in err.value.reason
    env.oai.fail_next("POST", "/v1/responses", status=429, headers={"retry-after": "0"})
    with pytest.raises(SandboxUnavailable):
        await env.analyst.run(_request(env, "q"))
