"""The ``offline`` engine: no model at all, a real first look at the data computed in the sandbox.

On a first look (files were added this turn, or the question is the worker's default first-look question) the
engine sends the sources of the parts of :mod:`bot.analysts.profiler` plus one call of ``run_profile`` to the
thread's kernel through a :class:`~bot.sandbox.base.CodeRunner`. That code reads each file with the bot's read
options (the pandas call the preview shows; nothing is sniffed again), profiles it, writes 2–4 charts as PNG
files in the kernel's working directory (the turn worker finds them by diffing the container's file list) and
prints one JSON document after a sentinel line, which :mod:`bot.analysts.narrative` turns into a short Markdown
narrative that quotes the data's own numbers.

Any other question gets an honest reply, without running code, that answering questions needs a model and how
to configure one (``OPENAI_API_KEY``; ``OPENAI_BASE_URL`` + ``DATASTORY_MODEL`` for OpenAI-compatible endpoints).
A failed or timed-out profile raises :class:`~bot.analysts.base.AnalysisFailed` with a readable reason.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
from collections.abc import Iterable
from typing import Any

from bot.analysts import profiler
from bot.analysts.angles import ANGLE_PREFIX, angles_from_report, is_angle_refinement, is_angles_request
from bot.analysts.angles import to_json as angles_json
from bot.analysts.base import (
    DEFAULT_QUESTION,
    AnalysisFailed,
    AnalysisRequest,
    AnalysisResult,
    DataFile,
    Progress,
    TextSink,
    Usage,
    report_progress,
)
from bot.analysts.narrative import follow_up_answer, format_number, format_pct, narrative
from bot.sandbox.base import CodeRunner, ExecResult

logger = logging.getLogger(__name__)

__all__ = ["OfflineAnalyst", "file_specs", "format_number", "format_pct", "parse_report", "profile_code"]

MODEL_NAME = "offline"
RUNNING_CODE = "running code…"
WRITING_ANSWER = "writing the answer…"
# ------------------------------------------------------------------------------------------------- kernel code

_LOADER = """\
import sys as _sys
import types as _types


def _datastory_load(sources):
    package = _types.ModuleType("datastory_profiler")
    package.__path__ = []
    _sys.modules["datastory_profiler"] = package
    for name, source in sources.items():
        module = _types.ModuleType("datastory_profiler." + name)
        module.__package__ = "datastory_profiler"
        _sys.modules[module.__name__] = module
        exec(compile(source, "<datastory_profiler/" + name + ".py>", "exec"), module.__dict__)
        setattr(package, name, module)
"""


def file_specs(files: Iterable[DataFile]) -> list[dict[str, Any]]:
    """What the profiler reads: each file's name, path, pandas reader and keyword arguments (the bot's
    :class:`~bot.files.ReadOptions`, the same reading the preview shows and the model is told)."""
    specs: list[dict[str, Any]] = []
    for f in files:
        reader, kwargs = f.reading.pandas()
        specs.append({"name": f.name, "path": f.path, "reader": reader, "kwargs": kwargs})
    return specs


def profile_code(files: Iterable[DataFile], *, charts: bool = True) -> str:
    """The code the kernel runs: the profiler's parts loaded as the package ``datastory_profiler``, then one call
    of ``run_profile`` for ``files`` (drawing no chart when ``charts`` is False)."""
    sources = {name: inspect.getsource(importlib.import_module(f"{profiler.__name__}.{name}"))
               for name in profiler.MODULES}
    return (f"{_LOADER}\n_datastory_load({sources!r})\n"
            f"from datastory_profiler.report import run_profile\nrun_profile({file_specs(files)!r}, {charts!r})\n")


def parse_report(stdout: str) -> dict[str, Any]:
    """The JSON document printed after the last sentinel line; :class:`AnalysisFailed` when there is none."""
    marker = stdout.rfind(profiler.SENTINEL)
    if marker < 0:
        raise AnalysisFailed("The data profile produced no report (its output was cut or empty).")
    body = stdout[marker + len(profiler.SENTINEL):].strip().splitlines()
    try:
        report = json.loads(body[0]) if body else None
    except ValueError as exc:
        raise AnalysisFailed("The data profile printed a report that could not be read.") from exc
    if not isinstance(report, dict) or not isinstance(report.get("files"), list):
        raise AnalysisFailed("The data profile printed a report that could not be read.")
    return report


# ------------------------------------------------------------------------------------------------- the engine


def is_first_look(request: AnalysisRequest) -> bool:
    """True when files were added this turn, the question is the worker's default first-look question, or it asks
    for the full story of an angle (:func:`bot.analysts.angles.angle_question`)."""

    return (bool(request.new_files) or request.question.strip() in ("", DEFAULT_QUESTION)
            or is_angle_refinement(request.question))


class OfflineAnalyst:
    """:class:`bot.analysts.base.Analyst` without a model: a data profile with charts, run by ``runner``."""

    def __init__(self, *, runner: CodeRunner, timeout: float) -> None:
        self._runner = runner
        self._timeout = timeout

    async def run(self, request: AnalysisRequest, *, progress: Progress | None = None,
                  on_text: TextSink | None = None) -> AnalysisResult:
        """Profile the files on a first look (or for angles); answer anything else with how to configure a model."""
        if is_angles_request(request.question) and request.files:
            return await self._angles(request, progress)
        if not is_first_look(request):
            logger.info("offline follow-up answered without a model container=%s", request.container_id)
            return AnalysisResult(text=follow_up_answer(request.question), model=MODEL_NAME)
        if not request.files:
            return AnalysisResult(text="There is no data in this thread yet: share a CSV, TSV, Excel or JSON file "
                                       "and I will take a first look.", model=MODEL_NAME)

        question = request.question.strip()
        note = ""
        if is_angle_refinement(question):
            note = (f"Without a language model I can't tell the story of “{question.removeprefix(ANGLE_PREFIX)[:200]}” "
                    "on its own, so here is the full automatic analysis of the data it comes from.")
        elif question and question != DEFAULT_QUESTION:
            note = (f"I can't answer “{question[:200]}” without a language model, so here is an automatic first "
                    "look at the data instead.")
        new = set(request.new_files)
        files = [f for f in request.files if f.name in new] or list(request.files)
        code = profile_code(files)
        await report_progress(progress, RUNNING_CODE)
        result = await self._runner.execute(request.container_id, code, timeout=self._timeout)
        report = parse_report(self._checked(result, request.container_id).stdout)
        await report_progress(progress, WRITING_ANSWER)
        text = narrative(report, question_note=note)
        charts = sum(len(f.get("charts", [])) for f in report["files"])
        logger.info("offline profile done container=%s files=%d charts=%d", request.container_id,
                    len(report["files"]), charts)
        return AnalysisResult(text=text, response_id=None, code=(code,), usage=Usage(), model=MODEL_NAME)


    async def _angles(self, request: AnalysisRequest, progress: Progress | None) -> AnalysisResult:
        """The story angles of :data:`bot.analysts.angles.ANGLES_QUESTION`, from a profile that draws no chart."""
        code = profile_code(request.files, charts=False)
        await report_progress(progress, RUNNING_CODE)
        result = await self._runner.execute(request.container_id, code, timeout=self._timeout)
        angles = angles_from_report(parse_report(self._checked(result, request.container_id).stdout))
        logger.info("offline angles done container=%s angles=%d", request.container_id, len(angles))
        return AnalysisResult(text=angles_json(angles), code=(code,), usage=Usage(), model=MODEL_NAME)

    def _checked(self, result: ExecResult, container_id: str) -> ExecResult:
        """``result``, or :class:`AnalysisFailed` with a readable reason when the profile timed out or failed."""
        if result.timed_out:
            logger.warning("offline profile timed out container=%s timeout=%s", container_id, self._timeout)
            raise AnalysisFailed(f"The data profile took longer than {self._timeout:g} s and was stopped; the file "
                                 "may be too large for an automatic first look.")
        if result.error is not None:
            logger.warning("offline profile failed container=%s error=%s", container_id, _last_line(result.error))
            raise AnalysisFailed(f"The data profile failed: {_last_line(result.error)}")
        return result


def _last_line(error: str) -> str:
    """The exception line of a traceback (``KeyError: 'x'``), kept short."""
    lines = [ln.strip() for ln in error.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "unknown error")[:300]


