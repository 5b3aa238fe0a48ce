"""The data profile the ``offline`` analyst runs *inside* the sandbox kernel, in parts:

- :mod:`.style`: the house chart style (standalone; also what the model prompts ask for);
- :mod:`.reading`: read each file with the bot's :class:`~bot.files.ReadOptions` (no sniffing), tidy the frame;
- :mod:`.kinds`: what each column is (measure, date, category, identifier or code...);
- :mod:`.stats`: distributions, top categories, relationships, durations, anomalies;
- :mod:`.trend`: the main measure over time;
- :mod:`.charts`: which charts, drawn in the house style;
- :mod:`.report`: the entry point, :func:`~.report.run_profile`, and the report's size budget.

The parts import only the standard library, pandas, numpy, matplotlib and each other (relatively), so
:func:`bot.analysts.offline.profile_code` can send their sources to the kernel and load them there as the
package ``datastory_profiler``. They are also ordinary modules of ``bot``, type-checked and unit-tested.
"""

from __future__ import annotations

from .report import SENTINEL, build_report, profile_file, profile_frame, run_profile

MODULES = ("style", "chartkit", "kinds", "stats", "reading", "trend", "charts", "report")
"""The parts in an order in which each one's imports are loaded before it."""

__all__ = ["MODULES", "SENTINEL", "build_report", "profile_file", "profile_frame", "run_profile"]
