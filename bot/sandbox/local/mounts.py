"""What a kernel's mount namespace hides: decided from what is sensitive, never from where the package is installed.

Sensitive: the source tree when the bot runs from one, the bot's working directory (``.env``, a relative SQLite
file), the home directory of the bot's user, and the paths the settings name (the database file wherever
``DATASTORY_DATABASE_URL`` points, ``.env``). A directory is hidden under an empty tmpfs; a file whose directory
cannot be hidden (``/``, ``/var/lib``, ...) is covered by an empty file. A directory on the
way to the interpreter that the kernel's user cannot cross (``/root`` for a pyenv Python) is hidden too, and the
Python installation is put back inside it.
"""

from __future__ import annotations

import os
import pwd
import stat
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SYSTEM_DIRS = frozenset(Path(p) for p in (
    "/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run", "/sbin", "/sys",
    "/tmp", "/usr", "/usr/bin", "/usr/lib", "/usr/local", "/usr/local/bin", "/usr/local/lib", "/usr/share", "/var",
    "/var/lib", "/var/tmp",
))
"""Never hidden whole (kernels need them); a sensitive file in one of them is covered by itself."""
PRIVATE_DIRS = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))
"""Each pod has its own (in its tmpfs): nothing of the host's shows there."""


def _source_tree() -> Path | None:
    """The source checkout the bot runs from, or ``None`` for a regular install.

    A checkout (``pyproject.toml`` beside the ``bot`` package) holds the source and often ``.env`` and the
    database, so kernels must not see it. A regular install lives in ``site-packages``, which is where the kernel's
    own imports (ipykernel, pandas) come from: it is never hidden.
    """
    root = Path(__file__).resolve().parents[3]
    if (root / "pyproject.toml").is_file() and root.name not in ("site-packages", "dist-packages"):
        return root
    return None


PROJECT_ROOT = _source_tree()
"""The source tree to hide from kernels (``None``: installed as a package, nothing of ours to hide)."""


@dataclass(frozen=True, slots=True)
class MountPlan:
    """Directories to cover (each with the paths to put back inside it) and single files to cover."""

    hide: tuple[str, ...] = ()
    """Directories covered by an empty tmpfs (what of ``needed`` lies inside is put back)."""
    hide_files: tuple[str, ...] = ()
    needed: tuple[str, ...] = ()
    """The Python installation (put back wherever a cover or a private directory falls over it)."""
    visible: tuple[str, ...] = ()
    """Sensitive paths that could not be hidden (shown in the isolation report)."""

    def describe(self) -> str:
        """One line for the isolation report."""
        parts = [*self.hide, *self.hide_files]
        shown = ", ".join(parts) if parts else "nothing"
        left = f"; NOT hidden: {', '.join(self.visible)}" if self.visible else ""
        return f"hidden: {shown}{left}"


def sensitive_paths(protect: Iterable[Path]) -> list[Path]:
    """The source tree, the working directory, the bot user's home, and ``protect`` (database file, ``.env``)."""
    found: list[Path] = [Path.cwd()]
    if PROJECT_ROOT is not None:
        found.append(PROJECT_ROOT)
    try:
        found.append(Path(pwd.getpwuid(os.geteuid()).pw_dir))
    except KeyError:
        pass
    found.extend(protect)
    return [p.absolute() for p in found]


def blocked_ancestor(path: Path) -> Path | None:
    """The topmost directory above ``path`` that other users cannot cross (no ``o+x``), or ``None``."""
    for parent in reversed(path.parents):
        if parent != Path("/") and not os.stat(parent).st_mode & stat.S_IXOTH:
            return parent
    return None


def _real(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path


def _interpreter_dirs() -> list[Path]:
    """Where the running interpreter's code lives (standard library, site-packages, scripts), venv and base."""
    found = set()
    for vars_ in ({}, {"base": sys.base_prefix, "platbase": sys.base_prefix}):
        paths = sysconfig.get_paths(vars=vars_)
        found |= {_real(Path(paths[k])) for k in ("stdlib", "platstdlib", "purelib", "platlib", "scripts")}
    return sorted(found)


def mount_plan(sensitive: Iterable[Path], *, needed: Iterable[Path] | None = None, other_user: bool = True
               ) -> MountPlan:
    """What to hide so that ``sensitive`` paths are out of reach while ``needed`` ones (the Python installation,
    by default) stay usable; ``other_user``: kernels run under another uid, so non-traversable directories on
    the way to ``needed`` are hidden (and the needed paths put back)."""
    real_needed = sorted({_real(p) for p in (needed if needed is not None else (Path(sys.prefix),
                                                                              Path(sys.base_prefix)))})
    code = _interpreter_dirs()
    hides: set[Path] = set()
    files: list[str] = []
    visible: list[str] = []
    for path in {_real(p) for p in sensitive}:
        target = path if path.is_dir() else path.parent
        if not target.is_dir() or any(target == d or d in target.parents for d in PRIVATE_DIRS):
            continue  # nothing there (yet: a database is created before the sandbox starts), or private anyway
        if target in SYSTEM_DIRS or any(c == target or c in target.parents for c in code):
            if path.is_dir():  # a working directory of / or /usr: what is sensitive in it is named by protect
                visible.extend([] if path == Path("/") else [str(path)])
            elif path.is_file():
                files.append(str(path))
            continue
        hides.add(target)
    if other_user:
        for path in real_needed:
            blocked = blocked_ancestor(path)
            if blocked is not None:
                hides.add(blocked)
    hides = {h for h in hides if not any(o in h.parents for o in hides)}
    plan = []
    for hide in sorted(hides):
        if hide in real_needed:
            visible.append(str(hide))  # the interpreter itself lives there: cannot hide it
        else:
            plan.append(hide)
    visible = [v for v in visible if not any(h == Path(v) or h in Path(v).parents for h in plan)]
    return MountPlan(hide=tuple(map(str, plan)), hide_files=tuple(sorted(set(files))),
                     visible=tuple(sorted(set(visible))), needed=tuple(str(p) for p in real_needed))
