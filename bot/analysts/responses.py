"""The ``responses`` engine: the Responses API with the ``code_interpreter`` tool bound to the thread's container.

One turn is one streamed ``POST /v1/responses`` in background mode: the tool is bound to ``request.container_id``,
follow-ups chain with ``previous_response_id``, and the instructions are sent every turn (a chain does not carry them
over). Background mode makes the response cancellable: a turn stopped (or timed out) while it waits cancels the
response on the provider (``POST /v1/responses/{id}/cancel``); the container and its variables stay. While
the stream runs, ``progress`` hears "running code…" when a code_interpreter call starts and "writing the
answer…" when text starts, and ``on_text`` each piece of the answer's text. A
``response.failed``/``response.incomplete`` end, or an ``error`` event, raises
:class:`~bot.analysts.base.AnalysisFailed` with a reason a user can read; container trouble is raised as the
:mod:`bot.sandbox.base` error that :func:`bot.sandbox.openai.translate_error` gives.
"""

from __future__ import annotations

import asyncio
import logging

import openai
from openai import AsyncOpenAI, AsyncStream, omit
from openai.types.responses import Response, ResponseStreamEvent

from bot.analysts.base import (
    AnalysisFailed,
    AnalysisRequest,
    AnalysisResult,
    Progress,
    TextSink,
    Usage,
    report_progress,
    report_text,
)
from bot.analysts.prompts import INSTRUCTIONS, turn_input
from bot.sandbox.base import ContainerExpired, ContainerNotFound
from bot.sandbox.openai import translate_error

logger = logging.getLogger(__name__)

CANCEL_SECONDS = 10.0
"""How long a stopped turn waits for the provider to confirm the cancel of its response."""

RUNNING_CODE = "running code…"
WRITING_ANSWER = "writing the answer…"

_INCOMPLETE_REASONS = {
    "max_output_tokens": "the answer hit the output token limit before it was finished",
    "content_filter": "the answer was stopped by the content filter",
}


def _failure_reason(response: Response) -> str:
    error = response.error
    if error is not None:
        return f"The model could not finish the analysis ({error.code}): {error.message}"
    return "The model could not finish the analysis."


def _incomplete_reason(response: Response) -> str:
    details = response.incomplete_details
    reason = details.reason if details is not None else None
    said = _INCOMPLETE_REASONS.get(reason or "", f"the answer is incomplete ({reason or 'unknown reason'})")
    return f"The analysis stopped early: {said}."


def result_from_response(response: Response, *, model: str) -> AnalysisResult:
    """The :class:`AnalysisResult` of a completed response (text, code, cited container files, usage)."""
    code: list[str] = []
    cited: list[str] = []
    for item in response.output:
        if item.type == "code_interpreter_call" and item.code:
            code.append(item.code)
        elif item.type == "message":
            for part in item.content:
                if part.type != "output_text":
                    continue
                for annotation in part.annotations:
                    if annotation.type == "container_file_citation" and annotation.file_id not in cited:
                        cited.append(annotation.file_id)
    usage = Usage()
    if response.usage is not None:
        details = response.usage.input_tokens_details
        usage = Usage(input_tokens=response.usage.input_tokens, output_tokens=response.usage.output_tokens,
                      cached_tokens=(details.cached_tokens or 0) if details is not None else 0)
    return AnalysisResult(text=response.output_text, response_id=response.id, code=tuple(code),
                          cited_file_ids=tuple(cited), usage=usage, model=response.model or model)


class ResponsesAnalyst:
    """:class:`bot.analysts.base.Analyst` over the Responses API and hosted containers."""

    def __init__(self, *, client: AsyncOpenAI, model: str, max_output_tokens: int | None = None) -> None:
        self._client = client
        self._model = model
        self._max_output_tokens = max_output_tokens

    async def run(self, request: AnalysisRequest, *, progress: Progress | None = None,
                  on_text: TextSink | None = None) -> AnalysisResult:
        """Answer ``request`` in its container; see the module docstring for errors and progress."""
        try:
            stream = await self._client.responses.create(
                model=self._model,
                input=turn_input(request),
                instructions=INSTRUCTIONS,
                tools=[{"type": "code_interpreter", "container": request.container_id}],
                include=["code_interpreter_call.outputs"],
                previous_response_id=request.previous_response_id or omit,
                max_output_tokens=self._max_output_tokens if self._max_output_tokens is not None else omit,
                background=True,
                stream=True,
            )
            running: list[str] = []
            try:
                async with stream:
                    final = await self._consume(stream, request, progress, running, on_text)
            except asyncio.CancelledError:
                if running:
                    await self._cancel(running[0], request.container_id)
                raise
        except openai.OpenAIError as exc:
            translated = translate_error(exc)
            if translated is not None:
                logger.warning("analysis hit container trouble container=%s error=%s", request.container_id,
                               type(translated).__name__)
                raise translated from exc
            logger.warning("analysis failed container=%s error=%s", request.container_id, type(exc).__name__)
            raise AnalysisFailed(f"The model service refused the request: {_api_message(exc)}") from exc
        result = result_from_response(final, model=self._model)
        logger.info("analysis done container=%s response=%s code_runs=%d cited=%d input_tokens=%d "
                    "output_tokens=%d", request.container_id, result.response_id, len(result.code),
                    len(result.cited_file_ids), result.usage.input_tokens, result.usage.output_tokens)
        return result

    async def _cancel(self, response_id: str, container_id: str) -> None:
        """Cancel the background response on the provider (the turn was stopped or timed out); the container and
        its variables stay. A response that finished meanwhile cannot be cancelled: that is logged, not raised."""
        try:
            async with asyncio.timeout(CANCEL_SECONDS):
                await asyncio.shield(self._client.responses.cancel(response_id))
            logger.info("response cancelled container=%s response=%s", container_id, response_id)
        except (openai.OpenAIError, TimeoutError) as exc:
            logger.warning("response not cancelled container=%s response=%s error=%s", container_id, response_id,
                           type(exc).__name__)

    async def _consume(self, stream: AsyncStream[ResponseStreamEvent], request: AnalysisRequest,
                       progress: Progress | None, running: list[str], on_text: TextSink | None = None) -> Response:
        started_code: set[str] = set()
        writing = False
        async for event in stream:
            if event.type == "response.created":
                running.append(event.response.id)  # what a stop cancels from now on
            elif event.type == "response.code_interpreter_call.in_progress":
                if event.item_id not in started_code:
                    started_code.add(event.item_id)
                    await report_progress(progress, RUNNING_CODE)
            elif event.type == "response.output_text.delta":
                if not writing:
                    writing = True
                    await report_progress(progress, WRITING_ANSWER)
                await report_text(on_text, event.delta)
            elif event.type == "response.completed":
                return event.response
            elif event.type == "response.failed":
                logger.warning("response failed container=%s response=%s", request.container_id, event.response.id)
                raise AnalysisFailed(_failure_reason(event.response))
            elif event.type == "response.incomplete":
                logger.warning("response incomplete container=%s response=%s", request.container_id,
                               event.response.id)
                raise AnalysisFailed(_incomplete_reason(event.response))
            elif event.type == "error":
                translated = _stream_error(event.code, event.message)
                if translated is not None:
                    raise translated
                raise AnalysisFailed(f"The model service reported an error: {event.message}")
        raise AnalysisFailed("The model stopped before finishing its answer.")


def _stream_error(code: str | None, message: str) -> Exception | None:
    """A container error carried by a stream ``error`` event (expiry or a vanished container), if any."""
    lowered = message.lower()
    if "container is expired" in lowered:
        return ContainerExpired(message)
    if "container with id" in lowered and "not found" in lowered:
        return ContainerNotFound(message)
    return None


def _api_message(exc: openai.OpenAIError) -> str:
    if isinstance(exc, openai.APIStatusError):
        body = exc.body
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            return str(body["message"])
    return str(exc)


