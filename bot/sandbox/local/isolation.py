"""What isolates a kernel, as one frozen value: the namespaces, the identities, the mounts, the limits.

:func:`bot.sandbox.local.probe.probe` finds the strongest :class:`Variant` this machine allows and builds the
:class:`Isolation` every pod is started from; its :meth:`Isolation.report` is what the log, ``datastory doctor``
and the benchmark print. ``strict`` accepts only the variants where every kernel has no network and a uid that is
neither the bot's nor another kernel's.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bot.sandbox.local.ids import IdRange
from bot.sandbox.local.mounts import MountPlan

Mode = Literal["strict", "relaxed"]
Identity = Literal["host", "subordinate", "shared"]

KERNEL_ID = 1000
"""A kernel's uid and gid inside its pod's user namespace (mapped to one subordinate id of the bot's user)."""


@dataclass(frozen=True, slots=True)
class Variant:
    """One way of starting pods."""

    name: str
    flags: tuple[str, ...]
    """``unshare`` options (empty: no namespaces; the id maps of a ``subordinate`` pod are added per pod)."""
    identity: Identity
    """``host``: host uids (root); ``subordinate``: the user's subordinate ids; ``shared``: the bot's uid."""

    @property
    def namespaces(self) -> frozenset[str]:
        """``user``, ``net``, ``mount``, ``pid``, ``ipc`` (those in force)."""
        names = {"-n": "net", "-m": "mount", "-p": "pid", "-i": "ipc", "-r": "user", "--user": "user"}
        return frozenset(names[f] for f in self.flags if f in names)

    @property
    def strict(self) -> bool:
        """No network and a uid of its own for every kernel."""
        return "net" in self.namespaces and self.identity != "shared"


PODS = "-n", "-m", "-p", "-i", "--fork", "--kill-child"
ROOT = Variant("namespaces, host uids", PODS, "host")
SUBORDINATE = Variant("user namespace with subordinate ids", ("--user", *PODS), "subordinate")
USER_NAMESPACE = Variant("user namespace, the bot's uid", ("-r", *PODS), "shared")
PLAIN_ROOT = Variant("no namespaces, host uids", (), "host")
PLAIN = Variant("no namespaces", (), "shared")


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of one kernel (its pod)."""

    memory_mb: int
    cpu_seconds: int
    max_file_mb: int
    max_processes: int
    quota_mb: int
    """Size of the pod's tmpfs: the working directory, /tmp, /var/tmp, /dev/shm and the kernel's home together."""

    def rlimits(self, *, extra_processes: int = 0) -> list[tuple[str, int, int]]:
        """``setrlimit`` triples; ``extra_processes``: tasks the kernel's uid already has (when it is the bot's)."""
        mb = 1024 * 1024
        nproc = self.max_processes + extra_processes
        return [
            ("RLIMIT_AS", self.memory_mb * mb, self.memory_mb * mb),
            ("RLIMIT_CPU", self.cpu_seconds, self.cpu_seconds + 5),
            ("RLIMIT_FSIZE", self.max_file_mb * mb, self.max_file_mb * mb),
            ("RLIMIT_NPROC", nproc, nproc),
            ("RLIMIT_CORE", 0, 0),
        ]


@dataclass(frozen=True, slots=True)
class Isolation:
    """Everything a pod is started with, and the report of it."""

    mode: Mode
    variant: Variant
    ids: IdRange | None
    """Host ids kernels take (``None``: they share the bot's)."""
    mounts: MountPlan
    limits: Limits
    max_kernels: int
    cgroup: str | None
    """The cgroup v2 directory pods get their own cgroup in (memory.max, pids.max), or ``None``."""
    cgroup_note: str
    missing: tuple[str, ...] = ()
    """What ``strict`` needs that this machine does not give (shown in ``relaxed``), each with its fix."""
    unshare: str = "unshare"
    """The ``unshare`` command (util-linux) found at start."""

    @property
    def network(self) -> bool:
        """Kernels have no network."""
        return "net" in self.variant.namespaces

    @property
    def mount_ns(self) -> bool:
        """Pods have their own filesystem view (read-only host, hidden directories, private /tmp, quota)."""
        return "mount" in self.variant.namespaces

    @property
    def pid_ns(self) -> bool:
        """Pods have their own pid namespace and /proc."""
        return "pid" in self.variant.namespaces

    def argv(self, uid: int | None, gid: int | None) -> list[str]:
        """The command prefix that starts a pod whose kernel gets the host ids ``uid``/``gid``."""
        flags = list(self.variant.flags)
        if not flags:
            return []
        if self.variant.identity == "subordinate" and uid is not None and gid is not None:
            flags[flags.index("--user")] = "--map-user=0"
            flags[1:1] = ["--map-group=0", f"--map-users={uid},{KERNEL_ID},1", f"--map-groups={gid},{KERNEL_ID},1"]
        return [self.unshare, *flags, "--"]

    def inside_ids(self, uid: int | None, gid: int | None) -> tuple[int | None, int | None, int]:
        """The kernel's uid and gid inside its pod, and the bot's group there (which reads the kernel's files)."""
        if self.variant.identity == "subordinate":
            return KERNEL_ID, KERNEL_ID, 0
        if self.variant.identity == "host":
            return uid, gid, os.getegid()
        return None, None, 0 if "user" in self.variant.namespaces else os.getegid()

    def summary(self) -> str:
        """A few words: ``no network, own uid per kernel``."""
        net = "no network" if self.network else "network NOT isolated"
        who = "own uid per kernel" if self.variant.identity != "shared" else "kernels share the bot's uid"
        files = "private filesystem" if self.mount_ns else "host filesystem visible"
        return f"{net}, {who}, {files}"

    def report(self) -> list[str]:
        """What is (and is not) in force, one line per aspect."""
        lines = [self._mode_line(), self._network_line(), self._identity_line(), self._filesystem_line(),
                 self._limits_line(),
                 f"kernels: at most {self.max_kernels} live (DATASTORY_LOCAL_MAX_KERNELS); beyond that the "
                 "longest-idle thread's kernel is stopped (files kept) and rebuilt at its next question",
                 "environment: scrubbed (PATH, HOME, LANG, MPLBACKEND, thread caps only); no tokens or keys"]
        return lines

    def _mode_line(self) -> str:
        if self.mode == "strict":
            return f"mode: strict ({self.variant.name}): every kernel has no network and a uid of its own"
        gaps = "; ".join(self.missing) if self.missing else "nothing: strict would start here too"
        return f"mode: relaxed (DATASTORY_LOCAL_ISOLATION=relaxed, {self.variant.name}); missing for strict: {gaps}"

    def _network_line(self) -> str:
        if self.network:
            return ("network: isolated (own network namespace: no interface but a downed loopback); the bot talks "
                    "to kernels over unix sockets")
        return "network: NOT isolated (no network namespace): code can reach the network"

    def _identity_line(self) -> str:
        if self.variant.identity == "host" and self.ids is not None:
            return (f"identity: each kernel runs as its own host uid/gid ({self.ids.describe()}), no supplementary "
                    "groups, no capabilities, no_new_privs")
        if self.variant.identity == "subordinate" and self.ids is not None:
            return (f"identity: each kernel runs as its own subordinate uid/gid of the bot's user "
                    f"({self.ids.describe()}, mapped by newuidmap/newgidmap), no supplementary groups, no "
                    "capabilities, no_new_privs")
        return (f"identity: kernels run as the bot's uid {os.geteuid()} (no capabilities, no_new_privs): they can "
                "read what the bot can read " + ("outside the hidden directories" if self.mount_ns else "on disk"))

    def _filesystem_line(self) -> str:
        if not self.mount_ns:
            return ("filesystem: NOT private (no mount namespace): world-readable files, /tmp and /dev/shm are "
                    "shared with the host; working directories are 0700")
        procs = "; own pid namespace and /proc (no other process is visible)" if self.pid_ns else ""
        return (f"filesystem: host read-only; {self.mounts.describe()}; private /tmp, /var/tmp and /dev/shm; the "
                f"working directory and those share one tmpfs of {self.limits.quota_mb} MB (the quota){procs}")

    def _limits_line(self) -> str:
        lim = self.limits
        if self.cgroup is not None:
            memory = (f"memory {lim.memory_mb} MB and {lim.max_processes} processes per pod (cgroup v2 memory.max, "
                      f"pids.max), address space {lim.memory_mb} MB per process (RLIMIT_AS)")
        else:
            who = "per kernel uid" if self.variant.identity != "shared" else "more for the bot's uid"
            memory = (f"address space {lim.memory_mb} MB per process (RLIMIT_AS; no memory cgroup: "
                      f"{self.cgroup_note}), {lim.max_processes} processes {who} (RLIMIT_NPROC)")
        return f"limits: {memory}, CPU {lim.cpu_seconds} s, files up to {lim.max_file_mb} MB, no core dumps"


def default_max_kernels(memory_mb: int) -> int:
    """As many kernels as the machine's memory holds at their limit (at least 2)."""
    try:
        total_kb = int(re.findall(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[0])
    except (OSError, IndexError):
        return 8
    return max(2, total_kb // 1024 // memory_mb)


def kernel_env(home: Path, tmp: Path) -> dict[str, str]:
    """The kernel's whole environment: nothing of the bot's (no token, no key, no database URL)."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        "LANG": "C.UTF-8",
        "TMPDIR": str(tmp),
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(home / "mpl"),
        "IPYTHONDIR": str(home / "ipython"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",
    }
