"""cgroup v2 memory and process limits per pod, where this process may create cgroups.

cgroup v2 lets a cgroup with processes have no child cgroups with controllers ("no internal processes"), so the bot
first moves itself into a leaf (``<own>/datastory-bot``), enables ``memory`` and ``pids`` for its own cgroup's
children, and makes one cgroup per pod under ``<own>/datastory-pods-<pid>`` with ``memory.max``, ``memory.swap.max``
and ``pids.max``. Where any of this is not possible (cgroup v1 hosts, a read-only cgroup filesystem, controllers not
delegated, other processes sharing the bot's cgroup), pods run on rlimits alone and the reason is reported.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CONTROLLERS = ("memory", "pids")


class Cgroups:
    """The cgroup pods are created in (or why there is none)."""

    def __init__(self, *, root: Path = Path("/sys/fs/cgroup"), self_cgroup: Path = Path("/proc/self/cgroup")) -> None:
        self.parent: Path | None = None
        self.note = ""
        self._root = root
        self._self_cgroup = self_cgroup

    def prepare(self) -> None:
        """Find or make the pods' parent cgroup; on failure keep the reason in :attr:`note`."""
        try:
            self.parent = self._prepare()
        except OSError as exc:
            self.note = f"cannot set up cgroups under {self._root}: {exc.strerror or exc}"
        except LookupError as exc:
            self.note = str(exc)

    def _prepare(self) -> Path:
        if not (self._root / "cgroup.controllers").is_file():
            raise LookupError(f"no cgroup v2 hierarchy at {self._root} (a cgroup v1 or hybrid host)")
        relative = next((line[3:].strip() for line in self._self_cgroup.read_text().splitlines()
                         if line.startswith("0::")), None)
        if relative is None:
            raise LookupError("this process is in no cgroup v2 group")
        own = self._root / relative.lstrip("/")
        if own.name == "datastory-bot":  # moved there by an earlier sandbox of this process
            own = own.parent
        available = (own / "cgroup.controllers").read_text().split()
        missing = [c for c in CONTROLLERS if c not in available]
        if missing:
            raise LookupError(f"the {', '.join(missing)} controller(s) are not delegated to {own}")
        if not os.access(own, os.W_OK):
            raise LookupError(f"{own} is not writable by this user")
        leaf = own / "datastory-bot"
        leaf.mkdir(exist_ok=True)
        (leaf / "cgroup.procs").write_text(str(os.getpid()))
        (own / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in CONTROLLERS))
        pods = own / f"datastory-pods-{os.getpid()}"
        pods.mkdir(exist_ok=True)
        (pods / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in CONTROLLERS))
        return pods

    def attach(self, name: str, pid: int, *, memory_mb: int, max_processes: int) -> None:
        """Put ``pid`` (a pod's supervisor, before it starts its kernel) into a new cgroup with the limits."""
        if self.parent is None:
            return
        group = self.parent / name
        group.mkdir(exist_ok=True)
        (group / "memory.max").write_text(str(memory_mb * 1024 * 1024))
        with contextlib.suppress(OSError):  # no swap accounting on this host
            (group / "memory.swap.max").write_text("0")
        (group / "pids.max").write_text(str(max_processes + 1))  # the supervisor counts too
        (group / "cgroup.procs").write_text(str(pid))

    def remove(self, name: str) -> None:
        """Remove a pod's cgroup (its processes are gone)."""
        if self.parent is not None:
            with contextlib.suppress(OSError):
                (self.parent / name).rmdir()

    def close(self) -> None:
        """Remove the pods' parent (when empty)."""
        if self.parent is not None:
            with contextlib.suppress(OSError):
                self.parent.rmdir()
