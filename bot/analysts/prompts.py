"""The words the model engines send: the instructions and the per-turn input built from an analysis request.

Kept apart from the engines so they can be read and reviewed as text. Instructions are sent on every turn
(``previous_response_id`` does not carry them over); the input describes the data on a fresh chain and only the
news on a chained turn.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.analysts.base import AnalysisRequest, DataFile
from bot.formatting import human_size
from bot.sandbox.helper import HOSTED_SETUP
from bot.slack_text import one_line

READ_RULE = """\
- Read each data file with the exact pandas call given for it below (it states the encoding, separator, decimal
  and thousands marks, header and lines to skip that the bot detected); do not guess other options. Do not look
  for the files elsewhere and do not ask for them again."""
"""How to read the files: the same in every engine's instructions."""

CHART_STYLE = """\
- Charts follow one house style, like a data team's published charts: a natural title that says what is shown
  ("Total revenue by region", "Average temperature per month"); both axes labelled, with units where known
  ("Body mass (g)"); plain numbers on axes and labels: thousands separators or 1.2M / 3.4B, never a 1e6 offset or
  scientific notation (ax.ticklabel_format(style="plain", useOffset=False) and a FuncFormatter with "{:,.0f}");
  bar charts start at zero, are sorted (largest first, horizontal when labels are long) and carry their value at
  the end of each bar (ax.bar_label); dates on the x axis with matplotlib.dates.ConciseDateFormatter; a light
  horizontal grid, no top or right frame; one colour per series from a consistent palette; a legend only when
  there are several series. At most a few charts, each answering the question."""
"""The chart rules of :mod:`bot.analysts.profiler.style`, in words for the models."""

CHART_HELPER = """\
- Draw charts with the helper module datastory_charts (it applies the house style and saves the chart's data
  beside the PNG so Slack can show it as a native chart): import datastory_charts as dc, then
  dc.bar(labels, values, title=..., value_label=..., category_label=..., unit=None) (largest first),
  dc.line(x, {{"Series name": values}}, title=..., ylabel=..., xlabel=...), dc.area(...) like line, or
  dc.pie(labels, values, title=...) (a few positive shares only). Each returns the PNG's file name.
  For a result table worth showing (a summary, a ranking), call dc.table(dataframe, title=...): Slack shows it
  as a sortable table (its first 100 rows; a larger table is attached as CSV). On a first look at new data, also
  call dc.angles([("Short title", "one line on what it would show"), ...]) with up to three story angles worth a
  full write-up; they are offered as buttons. Use matplotlib directly only for
  chart types the helper lacks (histograms, scatter plots), following the same style{where}."""
"""How to draw: the charting helper every sandbox has (:mod:`bot.sandbox.helper`); ``{where}`` says where."""



def _indented(code: str) -> str:
    return "\n".join("    " + line for line in code.splitlines())


INSTRUCTIONS = f"""\
You are a careful data analyst answering questions in a Slack thread about the data files the user shared.

How to work:
- Use the python tool for every number you report. The files are already in your python environment.
{READ_RULE}
- Look at the data before answering: shape, column names and types, a few rows, missing values.
- Charts and tables go under /mnt/data with short descriptive file names. Before the first chart, run this
  once (it works in /mnt/data and imports the charting helper that is there):
{_indented(HOSTED_SETUP)}
{CHART_HELPER.format(where=" (plt.savefig(path, dpi=120, bbox_inches='tight'), then plt.close())")}
  Never call plt.show().
{CHART_STYLE}
- Keep variables and files from earlier turns; reuse them when the user asks a follow-up question.

How to answer:
- Reply concisely in Markdown for Slack: a short answer first, then the key numbers (a few bullet points or a
  small table), then one line on caveats if any (missing values, small samples, assumptions).
- Report only numbers your code computed. Never invent or guess numbers; if something cannot be computed from
  the data, say so plainly.
- Do not paste the code or long raw outputs into the answer; the user sees the charts you saved.
"""
"""The instructions of the ``responses`` engine, sent on every turn."""
FACTS_CHARS = 8000


def describe_file(data_file: DataFile) -> str:
    """One bullet line: name, exact path, size, the pandas call that reads it, and the detected facts. Names and facts
    (column names) come from the data's author: each is kept to one line, so none can start a line of its own in the
    prompt."""
    line = f"- {one_line(data_file.name)}: path {data_file.path} ({human_size(data_file.size)})"
    facts = data_file.facts.strip()
    if not facts.startswith("read with "):
        line += f"; read with {data_file.reading.call(data_file.path)}"
    if facts:
        line += f"; {one_line(facts, limit=FACTS_CHARS)}"
    return line


def describe_files(files: Iterable[DataFile]) -> str:
    """The bullet list of the data files."""
    return "\n".join(describe_file(f) for f in files)


def first_turn_input(request: AnalysisRequest) -> str:
    """The input of a fresh chain: the data files, the thread's history when restarting, the question."""
    sections: list[str] = []
    if request.files:
        sections.append("Data files in your python environment (read them from these exact paths):\n"
                        + describe_files(request.files))
    else:
        sections.append("There are no data files in your python environment yet.")
    if request.new_files:
        sections.append("Look first at the newly added files: " + ", ".join(map(one_line, request.new_files)) + ".")
    if request.history.strip():
        sections.append("The thread so far (your earlier environment was reset, so recompute anything you need; "
                        "earlier charts are not in /mnt/data any more):\n" + request.history.strip())
    sections.append(f"Question: {request.question.strip()}")
    return "\n\n".join(sections)


def chained_turn_input(request: AnalysisRequest) -> str:
    """The input of a turn that continues a chain: any new files, then the question."""
    sections: list[str] = []
    if request.new_files:
        by_name = {f.name: f for f in request.files}
        lines = [describe_file(by_name[name]) if name in by_name else f"- {one_line(name)}"
                 for name in request.new_files]
        sections.append("New data files were added to your python environment; look at them first:\n"
                        + "\n".join(lines))
    sections.append(f"Question: {request.question.strip()}")
    return "\n\n".join(sections)


def turn_input(request: AnalysisRequest) -> str:
    """The input for ``request``: :func:`chained_turn_input` when it continues a chain, else the first-turn one."""
    return chained_turn_input(request) if request.previous_response_id else first_turn_input(request)
