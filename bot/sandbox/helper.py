"""The charting helper shipped into every sandbox: ``datastory_charts`` and the house style it draws with.

The helper is :mod:`bot.analysts.profiler.chartkit` and the style :mod:`bot.analysts.profiler.style`; in a sandbox
they are the top-level modules ``datastory_charts`` and ``datastory_style``. Hosted containers get both as files
beside the data (``/mnt/data``, uploaded when the container is created, :func:`helper_files`); a local kernel
loads them from source at start-up (:func:`kernel_loader`), since the bot's own tree is hidden from kernels. The
sources are read as text, never imported here (the sandbox layer does not load matplotlib).
"""

from __future__ import annotations

import importlib.util
from functools import cache

MODULES = (("datastory_style", "bot.analysts.profiler.style"), ("datastory_charts", "bot.analysts.profiler.chartkit"))
"""(name in the sandbox, module of the bot), each after the ones it imports."""


@cache
def helper_sources() -> dict[str, str]:
    """Each helper module's source by its sandbox name."""
    sources: dict[str, str] = {}
    for name, module in MODULES:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:  # pragma: no cover - the package is installed with its modules
            raise RuntimeError(f"the charting helper module {module} is missing")
        with open(spec.origin, encoding="utf-8") as source:
            sources[name] = source.read()
    return sources


def helper_files() -> dict[str, bytes]:
    """The files a hosted container gets beside the data: ``datastory_style.py`` and ``datastory_charts.py``."""
    return {f"{name}.py": source.encode() for name, source in helper_sources().items()}


def kernel_loader() -> str:
    """Code that makes ``import datastory_charts`` work in a kernel whose file system does not hold the helper."""
    return (
        "def _datastory_helpers(sources):\n"
        "    import sys, types\n"
        "    for name, source in sources.items():\n"
        "        module = types.ModuleType(name)\n"
        "        module.__file__ = '<' + name + '.py>'\n"
        "        sys.modules[name] = module\n"
        "        exec(compile(source, module.__file__, 'exec'), module.__dict__)\n"
        f"_datastory_helpers({helper_sources()!r})\n"
        "del _datastory_helpers\n"
    )


def is_helper(name: str) -> bool:
    """True for the helper's files as a hosted container lists them (``/mnt/data/<32 hex>-datastory_charts.py``:
    the provider prefixes what is uploaded)."""
    return name.endswith(tuple(helper_files()))


HOSTED_SETUP = """\
import glob, importlib.util, os, sys
os.chdir("/mnt/data")
for _name in ("datastory_style", "datastory_charts"):
    _spec = importlib.util.spec_from_file_location(_name, sorted(glob.glob(f"/mnt/data/*{_name}.py"))[-1])
    sys.modules[_name] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules[_name])
import datastory_charts as dc"""
"""What the model runs once in a hosted container to work in ``/mnt/data`` and import the helper (the provider
stores uploads as ``/mnt/data/<32 hex>-<name>``, so a plain import cannot find them)."""
