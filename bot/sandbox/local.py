"""The ``local`` sandbox backend: one Python kernel (ipykernel) per thread, in its own working directory.

A *container* here is a working directory ``<base_dir>/local-<hex>`` plus a kernel whose current directory it is.
Kernels come from a warm pool of pre-started kernels that already imported pandas, numpy and matplotlib (Agg), so
a new thread's first execute costs a couple of message round trips instead of a process start. State persists
across executes like in a hosted container; files written by the code are the thread's files.

Isolation (what is in force is reported by :meth:`LocalSandbox.isolation_report`):

- **network**: the kernel runs in a new network namespace (``unshare -n``, or ``unshare -rn`` when not root), so
  it has no interface but a downed loopback; the bot talks to it over ZMQ ``ipc`` (unix sockets in a private
  directory), which does not need the network. Where namespaces are not allowed this is logged as a WARNING.
- **user**: when the bot runs as root, every kernel gets its own unprivileged uid/gid (no supplementary groups,
  ``no_new_privs``), which also makes ``RLIMIT_NPROC`` a per-kernel limit and lets a kill sweep every process the
  kernel left behind. Working directories are ``0700`` and owned by that uid, so threads cannot read each other.
- **filesystem** (root): a mount namespace per kernel hides the project directory and the bot's working directory
  (source, ``.env``, the SQLite file) and any non-traversable directory on the way to the interpreter (e.g.
  ``/root`` for a pyenv Python), re-exposing only the Python installation and the virtualenv.
- **limits**: ``RLIMIT_AS`` (memory), ``RLIMIT_CPU``, ``RLIMIT_FSIZE``, ``RLIMIT_NPROC``, no core dumps.
- **environment**: built from scratch (PATH, HOME, LANG, MPLBACKEND, ...); nothing of the bot's environment.
- **files**: the bot never follows a symlink planted by the code (reads and uploads go through directory file
  descriptors with ``O_NOFOLLOW``), and uploads are written to a temporary name and renamed into place.

The kernel process is started directly (``subprocess.Popen`` of a small bootstrap that applies the limits, drops
privileges and runs ipykernel in-process) and driven with jupyter-client's :class:`AsyncKernelClient`, one client
per kernel for its whole life. Interrupting is ``SIGINT`` to the kernel's process group (what
``KernelManager.interrupt_kernel`` does for ``interrupt_mode="signal"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any, Literal

import zmq
import zmq.asyncio
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.connect import KernelConnectionInfo, write_connection_file

from bot.sandbox.base import (
    ContainerInfo,
    ContainerNotFound,
    ExecResult,
    SandboxError,
    SandboxFile,
    SandboxUnavailable,
)

logger = logging.getLogger(__name__)

NetworkIsolation = Literal["auto", "required", "off"]

WARMUP_CODE = (
    "import pandas as pd\n"
    "import numpy as np\n"
    "import matplotlib\n"
    "matplotlib.use('Agg')\n"
    "import matplotlib.pyplot as plt\n"
)
"""Run in every kernel before it serves a thread."""

POOL_WARMUP_CODE = (
    "_ds_w = pd.read_csv(__import__('io').StringIO('a,b\\n1,x\\n2,y\\n'))\n"
    "_ds_w.describe(); _ds_w.groupby('b').a.sum(); int(pd.DataFrame({'a': [1, 2]}).a.sum()); _ds_w.plot(y='a')\n"
    "plt.gcf().savefig(__import__('io').BytesIO(), format='png'); plt.close('all'); del _ds_w\n"
)
"""Also run in pool kernels (nobody is waiting for them): one tiny read/aggregate/plot, so the thread's first real
request does not pay for pandas' and matplotlib's lazy initialisation."""



def _source_tree() -> Path | None:
    """The source checkout the bot runs from, or ``None`` for a regular install.

    A checkout (``pyproject.toml`` beside the ``bot`` package) holds the source and often ``.env`` and the
    database, so kernels must not see it. A regular install lives in ``site-packages``, which is where the kernel's
    own imports (ipykernel, pandas) come from: hiding that directory would break every kernel.
    """
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and root.name not in ("site-packages", "dist-packages"):
        return root
    return None


PROJECT_ROOT = _source_tree()
"""The source tree to hide from kernels (``None``: installed as a package, nothing of ours to hide)."""

_ID_PREFIX = "local-"
_RUN_PREFIX = "run-"
_TEMP_BASE_PREFIX = "datastory-local-"
_RUNTIME_PREFIX = "dsk-"
_LIVE_LOCK = ".live"
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_UPLOAD_TMP_PREFIX = ".upload-"
_MAX_STREAM_CHARS = 1_000_000
_WRITE_BUFFER = 1024 * 1024
_POLL_S = 0.25
_REFILL_DELAY_S = 0.2
_SOCKET_PATH_MAX = 100
_UID_BASE = 200_000
_UID_SPAN = 10_000

# Runs as the kernel process (argv[1] is a JSON config): limits, no_new_privs, privilege drop, then ipykernel.
_BOOTSTRAP = """\
import json, os, resource, sys
cfg = json.loads(sys.argv[1])
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def mount(src, target, fstype, flags, data):
    if libc.mount(src and src.encode(), target.encode(), fstype and fstype.encode(), flags, data and data.encode()):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)
if cfg["mounts"]:
    # Own mount namespace (unshare -m): hide directories, re-expose what the interpreter needs inside them.
    mount(None, "/", None, 0x4000 | (1 << 18), None)  # MS_REC | MS_PRIVATE
    for n, (hide, reveal) in enumerate(cfg["mounts"]):
        staged = []
        for i, path in enumerate(reveal):
            stage = os.path.join(cfg["stage"], f"{n}-{i}")
            os.mkdir(stage, 0o700)
            mount(path, stage, None, 4096 | 0x4000, None)  # MS_BIND | MS_REC
            staged.append((stage, path))
        mount("tmpfs", hide, "tmpfs", 2 | 4, "mode=0755,size=64k")  # MS_NOSUID | MS_NODEV
        for stage, path in staged:
            os.makedirs(path, exist_ok=True)
            mount(stage, path, None, 8192, None)  # MS_MOVE
if cfg["nice"]:
    os.nice(cfg["nice"])
for name, soft, hard in cfg["limits"]:
    resource.setrlimit(getattr(resource, name), (soft, hard))
libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
if cfg["uid"] is not None:
    os.setgroups([])
    os.setgid(cfg["gid"])
    os.setuid(cfg["uid"])
    if 0 in (os.getuid(), os.geteuid(), os.getgid(), os.getegid()):
        sys.exit("datastory sandbox: could not drop privileges")
os.umask(0o077)
sys.argv = ["ipykernel_launcher", "-f", cfg["connection_file"], *cfg["args"]]
from ipykernel import kernelapp
kernelapp.launch_new_instance()
"""

# Kills every process of one uid (kill(-1) as that uid is atomic with respect to forks); argv: uid gid.
_KILL_UID = (
    "import os, sys\n"
    "os.setgroups([]); os.setgid(int(sys.argv[2])); os.setuid(int(sys.argv[1]))\n"
    "try:\n    os.kill(-1, 9)\nexcept ProcessLookupError:\n    pass\n"
)


@dataclass(slots=True)
class _Kernel:
    proc: subprocess.Popen[bytes]
    client: AsyncKernelClient
    private: Path
    """Home, sockets and connection file of this kernel (``0700``, owned by its uid)."""
    uid: int | None
    gid: int | None
    own_uid: bool
    """The uid belongs to this kernel alone (so killing every process of the uid is safe)."""
    started_at: float
    niced: bool = False
    """Started at the lowest CPU priority (a pool refill must not slow down the threads being served)."""
    workdir: Path | None = None
    """A pool kernel's ready-made working directory (already its cwd), until a container takes it."""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass(slots=True)
class _Container:
    id: str
    name: str
    dir: Path
    created_at: float
    last_active_at: float
    kernel: _Kernel | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    user_files: set[str] = field(default_factory=set)
    deleted: bool = False

    def info(self) -> ContainerInfo:
        return ContainerInfo(id=self.id, name=self.name, status="running", created_at=self.created_at,
                             last_active_at=self.last_active_at)


@dataclass(slots=True)
class _Output:
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=lambda: {"stdout": 0, "stderr": 0})
    error: str | None = None

    def add(self, stream: str, text: str) -> None:
        parts = self.stderr if stream == "stderr" else self.stdout
        key = "stderr" if stream == "stderr" else "stdout"
        used = self.sizes[key]
        if used >= _MAX_STREAM_CHARS:
            return
        if used + len(text) > _MAX_STREAM_CHARS:
            text = text[: _MAX_STREAM_CHARS - used] + "\n[... output truncated ...]\n"
        self.sizes[key] = used + len(text)
        parts.append(text)


@dataclass(frozen=True, slots=True)
class _RunOutcome:
    output: _Output
    state: Literal["done", "interrupted", "stuck", "died"]
    started: bool = True
    """The kernel acknowledged the request (``busy``): the code may have run, so it is never re-run."""


class _UidPool:
    """Per-kernel uids/gids from a range no account uses (root only), shared safely between bot processes.

    A uid is ours while we hold an ``flock`` on ``<lock_dir>/<uid>``: two bots on one host (``datastory run`` and
    ``datastory try``, or replicas) never hand out the same uid, so one's kill sweep never hits the other's
    kernel. The lock dies with the process, so a crashed bot's uids become free again.
    """

    def __init__(self, base: int, span: int, lock_dir: Path) -> None:
        taken = {p.pw_uid for p in pwd.getpwall()}
        with contextlib.suppress(OSError):
            import grp

            taken |= {g.gr_gid for g in grp.getgrall()}
        self._candidates = [u for u in range(base, base + span) if u not in taken]
        self._cursor = secrets.randbelow(len(self._candidates))
        self._held: dict[int, int] = {}
        self._lock_dir = lock_dir
        self.base = base
        self.span = span

    def allocate(self) -> int:
        for _ in range(len(self._candidates)):
            uid = self._candidates[self._cursor % len(self._candidates)]
            self._cursor += 1
            if uid in self._held:
                continue
            fd = os.open(self._lock_dir / str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self._held[uid] = fd
            return uid
        raise SandboxUnavailable("No free sandbox uid left: too many local kernels at once.")

    def release(self, uid: int) -> None:
        fd = self._held.pop(uid, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        for uid in list(self._held):
            self.release(uid)


def _claim_dir(parent: Path, prefix: str) -> tuple[Path, int]:
    """A fresh ``<prefix>*`` directory in ``parent`` for this process, and the fd of the ``flock`` that marks it
    live (held until the sandbox closes or the process dies). It is made and locked under a hidden name, then
    renamed: another bot's clean-up never sees it unlocked."""
    hidden = Path(tempfile.mkdtemp(prefix=f".{prefix}", dir=parent))
    fd = os.open(hidden / _LIVE_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    path = parent / hidden.name[1:]
    os.rename(hidden, path)
    return path, fd


def _remove_dead_dirs(parent: Path, prefix: str) -> None:
    """Remove this user's ``<prefix>*`` directories in ``parent`` whose lock no process holds: what a crashed or
    killed bot left behind (uploaded files included). Live ones (other bots sharing the directory) keep their lock
    and stay; directories without a lock are not ours and stay too."""
    for path in parent.glob(f"{prefix}*"):
        try:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
                continue
            fd = os.open(path / _LIVE_LOCK, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:  # gone meanwhile, or not made by a bot (no lock file)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # alive
        finally:
            os.close(fd)
        shutil.rmtree(path, ignore_errors=True)
        logger.info("local sandbox: removed what a stopped bot left dir=%s", path.name)


def _uid_lock_dir() -> Path:
    """A root-only directory for the uid locks, the same for every bot process on the host."""
    for parent in (Path("/run"), Path(tempfile.gettempdir())):
        path = parent / "datastory-sandbox-uids"
        try:
            path.mkdir(mode=0o700, exist_ok=True)
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o077:
            return path
    raise SandboxUnavailable("No safe directory for sandbox uid locks (/run or the temp dir).")


def _uid_has_processes(uid: int) -> bool:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == uid:
                    return True
    return False


def _id_range_mapped(path: str, lo: int, hi: int) -> bool:
    """True when ``[lo, hi)`` lies inside one range of ``/proc/self/{uid,gid}_map`` (ids usable by setuid)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return True
    for line in lines:
        parts = line.split()
        if len(parts) == 3:
            inside, _outside, count = (int(p) for p in parts)
            if inside <= lo and hi <= inside + count:
                return True
    return False


def sanitize_name(name: str) -> str:
    """A file name safe to create in a working directory, as close to ``name`` as possible.

    Path separators and NUL become ``_``; ``.``/``..``/empty become ``_``; overly long names are shortened
    (keeping the extension). Anything else, spaces, quotes and non-ASCII included, is kept.
    """
    clean = re.sub(r"[/\\\x00]", "_", name).strip()
    if clean in ("", ".", "..") or clean.startswith(_UPLOAD_TMP_PREFIX):
        clean = "_" + clean.lstrip(".") if clean not in ("", ".", "..") else "_"
    while len(clean.encode()) > 240:
        stem, dot, ext = clean.rpartition(".")
        clean = (stem[:-1] + dot + ext) if dot and len(ext) < 16 and stem else clean[:-1]
    return clean


def _check_file_id(file_id: str) -> list[str]:
    parts = file_id.split("/")
    if not file_id or file_id.startswith("/") or "\x00" in file_id or any(p in ("", ".", "..") for p in parts):
        raise SandboxError(f"The file is not in the container: {file_id!r}")
    return parts


def _open_beneath(root: Path, parts: list[str]) -> int:
    """Open ``root/parts...`` read-only without following any symlink on the way (``O_NOFOLLOW`` per component)."""
    flags_dir = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root, flags_dir)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, flags_dir, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give ``root`` and everything under it to ``uid`` (symlinks are changed themselves, never followed)."""
    os.chown(root, uid, gid, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in (*dirnames, *filenames):
            with contextlib.suppress(OSError):
                os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def _renice(pid: int, value: int) -> None:
    """Set the nice value of every thread of ``pid`` (nice is per thread on Linux; lowering it needs root)."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, value)


def _user_task_count(uid: int) -> int:
    """Tasks (processes and threads) of ``uid``, which is what ``RLIMIT_NPROC`` counts."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "status").read_text()
        except OSError:
            continue
        uid_line = re.search(r"^Uid:\s+(\d+)", text, re.MULTILINE)
        threads = re.search(r"^Threads:\s+(\d+)", text, re.MULTILINE)
        if uid_line and int(uid_line.group(1)) == uid:
            total += int(threads.group(1)) if threads else 1
    return total


def _mount_plan(needed: list[Path], *, keep: list[Path]) -> list[tuple[Path, list[Path]]]:
    """Directories to hide in a kernel's mount namespace, each with the ``needed`` paths to re-expose inside it.

    Hidden: the project directory and the bot's working directory (``.env``, the SQLite file, the source) and the
    topmost non-traversable ancestor of each needed path (e.g. ``/root`` when Python lives under
    ``/root/.pyenv``), which the kernel user could not cross otherwise. Never ``/`` nor an ancestor of ``keep``.
    """
    real = sorted({p.resolve() for p in needed})
    hides: set[Path] = set()
    for path in real:
        blocked = [a for a in reversed(path.parents) if a != Path("/") and not os.stat(a).st_mode & stat.S_IXOTH]
        if blocked:
            hides.add(blocked[0])
    for candidate in (PROJECT_ROOT, Path.cwd().resolve()):
        if candidate is not None and candidate != Path("/") and candidate.is_dir():
            hides.add(candidate)
    keep_real = [k.resolve() for k in keep]
    hides = {h for h in hides if not any(k == h or h in k.parents for k in keep_real)}
    # Drop hides nested in another hide (the outer tmpfs already covers them).
    hides = {h for h in hides if not any(o in h.parents for o in hides)}
    plan: list[tuple[Path, list[Path]]] = []
    for hide in sorted(hides):
        reveal = [p for p in real if p == hide or hide in p.parents]
        if hide in reveal:
            continue  # the interpreter itself lives there: cannot hide it
        plan.append((hide, reveal))
    return plan


class LocalSandbox:
    """:class:`bot.sandbox.base.SandboxBackend` and :class:`bot.sandbox.base.CodeRunner` over local kernels."""

    kind = "local"

    def __init__(self, *, base_dir: Path | None = None, pool_size: int = 2, memory_mb: int = 2048,
                 cpu_seconds: int = 600, max_file_mb: int = 1024, max_processes: int = 64,
                 network_isolation: NetworkIsolation = "auto", run_as: str | None = "auto",
                 interrupt_grace_seconds: float = 5.0, start_timeout_seconds: float = 60.0) -> None:
        """``base_dir`` holds the working directories (a fresh temp dir, removed at close, when ``None``); it must
        be outside the project. Each process works in its own ``run-*`` directory there, locked while it lives and
        removed at close; the runs of processes that died (a crash, a kill) are removed at start, so no data is
        left on disk for long. ``run_as``: ``"auto"`` gives each kernel its own uid when running as root, a user
        name runs every kernel as that user, ``None`` keeps the bot's user."""
        if pool_size < 0 or memory_mb < 1 or cpu_seconds < 1 or max_file_mb < 1 or max_processes < 1:
            raise ValueError("pool_size must be >= 0 and the limits >= 1")
        self._shared = Path(base_dir).absolute() if base_dir is not None else None
        if self._shared is not None and PROJECT_ROOT is not None and (
                self._shared == PROJECT_ROOT or PROJECT_ROOT in self._shared.parents):
            raise ValueError(f"base_dir must be outside the project ({PROJECT_ROOT}): {self._shared}")
        self._base: Path | None = None
        self._live_locks: list[int] = []
        """``flock`` fds of the directories this process owns (its run and runtime directories)."""
        self._pool_size = pool_size
        self._memory_mb = memory_mb
        self._cpu_seconds = cpu_seconds
        self._max_file_mb = max_file_mb
        self._max_processes = max_processes
        self._network: NetworkIsolation = network_isolation
        self._run_as = run_as
        self._grace = interrupt_grace_seconds
        self._start_timeout = start_timeout_seconds

        self._containers: dict[str, _Container] = {}
        self._pool: deque[asyncio.Task[_Kernel]] = deque()
        self._background: set[asyncio.Task[Any]] = set()
        self._start_lock = asyncio.Lock()
        self._started = False
        self._closed = False
        self._start_sem = asyncio.Semaphore(max(1, os.cpu_count() or 1))
        self._zmq: zmq.asyncio.Context | None = None
        self._runtime: Path | None = None
        self._mpl_template: Path | None = None
        self._unshare: list[str] = []
        self._network_ok = False
        self._netns_note = "not probed yet"
        self._mounts: list[tuple[Path, list[Path]]] = []
        self._mount_note = ""
        self._uids: _UidPool | None = None
        self._fixed_user: tuple[int, int, str] | None = None
        self._root = os.geteuid() == 0
        self._kernel_count = 0
        self._pool_failures = 0

    # ------------------------------------------------------------------------------------------- lifecycle

    @property
    def base_dir(self) -> Path:
        """Where this process's working directories live (``<base_dir>/run-*/<container id>``)."""
        if self._base is None:
            raise RuntimeError("the local sandbox is not started yet")
        return self._base

    async def start(self, *, wait: bool = True) -> None:
        """Probe the isolation, prepare the directories and pre-start the pool (``wait``: until it is warm)."""
        await self._ensure_started()
        if wait and self._pool:
            await asyncio.gather(*list(self._pool), return_exceptions=True)

    async def _ensure_started(self) -> None:
        if self._closed:
            raise SandboxUnavailable("The local sandbox is closed.")
        if self._started:
            return
        async with self._start_lock:
            if self._started:
                return
            try:
                await asyncio.to_thread(self._prepare)
            except BaseException:
                await asyncio.to_thread(self._remove_own_dirs)
                raise
            self._started = True
            for line in self.isolation_report():
                logger.info("local sandbox isolation: %s", line)
            if not self._network_ok:
                logger.warning("local sandbox: kernels are NOT network-isolated (%s)", self._netns_note)
            self._refill()

    def _prepare(self) -> None:
        """Blocking set-up: directories, network-namespace probe, kernel users."""
        temp = Path(tempfile.gettempdir())
        if self._shared is None:
            parent, prefix = temp, _TEMP_BASE_PREFIX
        else:
            self._shared.mkdir(parents=True, exist_ok=True)
            st = os.lstat(self._shared)
            if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid():
                raise SandboxUnavailable(
                    f"The local sandbox directory must be a directory this user owns: {self._shared}")
            parent, prefix = self._shared, _RUN_PREFIX
        # unix socket paths are short: the runtime directory falls back to /tmp when TMPDIR is long
        runtime_parent = temp if len(str(temp)) <= _SOCKET_PATH_MAX - 40 else Path("/tmp")
        self._base = base = self._own_dir(parent, prefix)
        self._runtime = runtime = self._own_dir(runtime_parent, _RUNTIME_PREFIX)
        self._mpl_template = runtime / "mpl-template"
        self._choose_users()
        dropping = self._uids is not None or self._fixed_user is not None
        if dropping:
            # Kernel users must traverse (not list) the base and runtime directories.
            for path in (self._shared, base, runtime):
                if path is not None:
                    os.chmod(path, 0o711)
            for path in (base, runtime):
                for parent in path.parents:
                    if not os.stat(parent).st_mode & stat.S_IXOTH:
                        raise SandboxUnavailable(
                            f"Kernel users cannot reach {path}: {parent} is not traversable (o+x); "
                            "choose another DATASTORY_LOCAL_DIR or TMPDIR.")
        self._probe_namespaces(dropping)
        self._zmq = zmq.asyncio.Context()
        self._zmq.setsockopt(zmq.LINGER, 0)
        self._zmq.setsockopt(zmq.RECONNECT_IVL, 10)

    def _unshare_works(self, flags: list[str]) -> tuple[bool, str]:
        unshare = shutil.which("unshare")
        shown = " ".join(["unshare", *flags])
        if unshare is None:
            return False, "the `unshare` command is not installed"
        try:
            probe = subprocess.run([unshare, *flags, "--", "true"], capture_output=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"`{shown}` failed: {exc}"
        if probe.returncode != 0:
            return False, f"`{shown}` is not allowed here: {probe.stderr.decode(errors='replace').strip()[:200]}"
        return True, f"`{shown}`"

    def _probe_namespaces(self, dropping: bool) -> None:
        """Network namespace (as configured) and, when root drops privileges, a mount namespace that hides the
        project directory and makes the interpreter reachable for the kernel user."""
        flags: list[str] = []
        if self._network == "off":
            self._netns_note = "disabled by configuration"
        else:
            net = ["-n"] if self._root else ["-r", "-n"]
            ok, note = self._unshare_works(net)
            self._network_ok = ok
            self._netns_note = f"new network namespace via {note}" if ok else note
            if ok:
                flags += net
            elif self._network == "required":
                raise SandboxUnavailable(f"Network isolation is required but unavailable: {note}")
        if self._root and dropping:
            mounts = _mount_plan([Path(sys.prefix), Path(sys.base_prefix)], keep=[self.base_dir, *self._runtime_dirs()])
            blocked = [hide for hide, _reveal in mounts if hide not in (PROJECT_ROOT, Path.cwd().resolve())]
            ok, note = self._unshare_works([*flags, "-m"])
            if ok:
                flags.append("-m")
                self._mounts = mounts
                self._mount_note = ("own mount namespace: " + ", ".join(str(h) for h, _ in mounts) +
                                    " hidden (only the Python installation re-exposed)") if mounts else ""
            elif blocked:
                raise SandboxUnavailable(
                    f"Kernel users cannot read the Python installation ({blocked[0]} is not traversable) and no "
                    f"mount namespace is available ({note}): make the interpreter readable, or run as non-root.")
            else:
                self._mount_note = f"no mount namespace ({note}): the project directory stays readable"
        self._unshare = [shutil.which("unshare") or "unshare", *flags, "--"] if flags else []

    def _runtime_dirs(self) -> list[Path]:
        return [self._runtime] if self._runtime is not None else []

    def _choose_users(self) -> None:
        if self._run_as is None or not self._root:
            return
        if self._run_as == "auto":
            hi = _UID_BASE + _UID_SPAN
            if _id_range_mapped("/proc/self/uid_map", _UID_BASE, hi) and \
                    _id_range_mapped("/proc/self/gid_map", _UID_BASE, hi):
                self._uids = _UidPool(_UID_BASE, _UID_SPAN, _uid_lock_dir())
                return
            user = "nobody"
        else:
            user = self._run_as
        try:
            entry = pwd.getpwnam(user)
        except KeyError as exc:
            raise SandboxUnavailable(f"The local sandbox user {user!r} does not exist.") from exc
        if entry.pw_uid == 0:
            raise SandboxUnavailable(f"The local sandbox user {user!r} is root; pick an unprivileged one.")
        self._fixed_user = (entry.pw_uid, entry.pw_gid, user)

    def isolation_report(self) -> list[str]:
        """What isolation is (and is not) in force, one line per aspect (for logs and ``datastory doctor``)."""
        lines: list[str] = []
        if not self._started:
            lines.append("not started yet: network and user isolation are probed at start")
        elif self._network_ok:
            lines.append(f"network: isolated ({self._netns_note}); the bot talks to kernels over unix sockets")
        else:
            lines.append(f"network: NOT isolated ({self._netns_note}); code can reach the network")
        if self._uids is not None:
            lines.append(f"user: each kernel runs as its own unprivileged uid/gid ({self._uids.base}-"
                         f"{self._uids.base + self._uids.span - 1}), no supplementary groups, no_new_privs; "
                         "working directories are 0700, so threads cannot read each other's files")
        elif self._fixed_user is not None:
            uid, _gid, user = self._fixed_user
            lines.append(f"user: kernels run as {user} (uid {uid}), shared by all kernels: RLIMIT_NPROC counts "
                         "them together and one thread's code could reach another's files")
        elif self._root:
            lines.append("user: NOT dropped: kernels run as root (run_as=None); limits on processes do not apply")
        else:
            lines.append(f"user: kernels run as the bot's user (uid {os.geteuid()}): they can read what the bot "
                         "can read on disk (not its environment)")
        if self._mount_note:
            lines.append(f"filesystem: {self._mount_note}")
        nproc = (f"{self._max_processes} processes per kernel user" if self._uids is not None
                 else f"{self._max_processes} more processes for the kernel's user")
        lines.append(f"limits: address space {self._memory_mb} MB, CPU {self._cpu_seconds} s per kernel, files up "
                     f"to {self._max_file_mb} MB, {nproc}, no core dumps")
        lines.append("environment: scrubbed (PATH, HOME, LANG, MPLBACKEND, thread caps only); no tokens or keys")
        where = (str(self._base) if self._base is not None else
                 f"a run directory in {self._shared}" if self._shared is not None else "a temp dir (created at start)")
        outside = f" (outside the source tree {PROJECT_ROOT})" if PROJECT_ROOT is not None else ""
        lines.append(f"working directories: {where}{outside}")
        lines.append("not in force: disk quota (RLIMIT_FSIZE bounds each file, not their total), memory cgroup "
                     "(RLIMIT_AS bounds address space, not RSS), a private filesystem (world-readable host files "
                     "outside the hidden directories, and unix sockets, stay reachable)")
        return lines

    async def close(self) -> None:
        """Shut down every kernel (pool included) and remove the working directories."""
        if self._closed:
            return
        self._closed = True
        pending = list(self._pool)
        self._pool.clear()
        for task in pending:
            task.cancel()
        results = await asyncio.gather(*pending, *list(self._background), return_exceptions=True)
        kernels = [r for r in results if isinstance(r, _Kernel)]
        containers = list(self._containers.values())
        self._containers.clear()
        for c in containers:
            c.deleted = True
            if c.kernel is not None:
                kernels.append(c.kernel)
                c.kernel = None
        await asyncio.gather(*(self._kill(k) for k in kernels), return_exceptions=True)
        await asyncio.to_thread(self._remove_own_dirs)
        if self._uids is not None:
            self._uids.close()
        if self._zmq is not None:
            self._zmq.destroy(linger=0)
            self._zmq = None
        logger.info("local sandbox closed kernels=%d containers=%d", len(kernels), len(containers))

    def _own_dir(self, parent: Path, prefix: str) -> Path:
        """Remove what dead bots left under ``parent``, then claim a fresh locked directory there."""
        _remove_dead_dirs(parent, prefix)
        path, fd = _claim_dir(parent, prefix)
        self._live_locks.append(fd)
        return path

    def _remove_own_dirs(self) -> None:
        """Remove this process's run and runtime directories (every working directory with them), then let go
        of their locks."""
        for path in (self._runtime, self._base):
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)
        while self._live_locks:
            os.close(self._live_locks.pop())

    # ------------------------------------------------------------------------------------------- pool

    def pool_pids(self) -> list[int]:
        """Process ids of the warm kernels waiting in the pool (started and warmed up)."""
        return [t.result().pid for t in self._pool if t.done() and not t.cancelled() and t.exception() is None]

    def kernel_pid(self, container_id: str) -> int | None:
        """Process id of the container's kernel (``None`` until one is attached)."""
        kernel = self._get(container_id).kernel
        return kernel.pid if kernel is not None else None

    def _refill(self) -> None:
        if self._closed:
            return
        while len(self._pool) < self._pool_size:
            task = asyncio.create_task(self._start_kernel(pooled=True))
            task.add_done_callback(self._pool_task_done)
            self._pool.append(task)

    def _pool_task_done(self, task: asyncio.Task[_Kernel]) -> None:
        """Drop a pool start that failed and retry later, backing off while it keeps failing."""
        if task.cancelled():
            return
        if task.exception() is None:
            self._pool_failures = 0
            return
        if task in self._pool:
            self._pool.remove(task)
        self._pool_failures += 1
        if not self._closed:
            delay = min(60.0, 0.5 * 2 ** self._pool_failures)
            logger.warning("pool kernel failed to start, retrying in %.1f s failures=%d", delay, self._pool_failures)
            asyncio.get_running_loop().call_later(delay, self._refill)

    def _take_ready(self) -> _Kernel | None:
        """A warm kernel from the pool if one is ready now (never waits)."""
        for task in list(self._pool):
            if task.done():
                self._pool.remove(task)
                if task.cancelled() or task.exception() is not None:
                    continue
                kernel = task.result()
                if kernel.alive():
                    return kernel
                self._spawn(self._kill(kernel))
        return None

    async def _acquire(self) -> _Kernel:
        """A warm kernel: a ready one from the pool, else the one starting first, else a cold start."""
        kernel = self._take_ready()
        while kernel is None and self._pool:
            task = self._pool.popleft()
            try:
                candidate = await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.done():
                    self._pool.appendleft(task)
                raise
            except Exception:  # a failed pool start: take the next one, or start cold
                continue
            if candidate.alive():
                kernel = candidate
            else:
                self._spawn(self._kill(candidate))
        self._refill()
        if kernel is None:
            kernel = await self._start_kernel(pooled=False)
        return kernel

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------------------------------- kernels

    def _kernel_env(self, private: Path) -> dict[str, str]:
        venv_bin = str(Path(sys.executable).parent)
        return {
            "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(private),
            "USER": "sandbox",
            "LOGNAME": "sandbox",
            "LANG": "C.UTF-8",
            "TMPDIR": str(private / "tmp"),
            "MPLBACKEND": "Agg",
            "MPLCONFIGDIR": str(private / "mpl"),
            "IPYTHONDIR": str(private / "ipython"),
            "JUPYTER_RUNTIME_DIR": str(private / "runtime"),
            "JUPYTER_PLATFORM_DIRS": "1",
            "JPY_PARENT_PID": str(os.getpid()),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "MALLOC_ARENA_MAX": "2",
        }

    def _limits(self, uid: int | None) -> list[tuple[str, int, int]]:
        mb = 1024 * 1024
        nproc = self._max_processes
        if uid is None and not self._root:
            # Kernels share the bot's uid: RLIMIT_NPROC counts the bot's own tasks too, so allow that many more.
            nproc += _user_task_count(os.geteuid())
        return [
            ("RLIMIT_AS", self._memory_mb * mb, self._memory_mb * mb),
            ("RLIMIT_CPU", self._cpu_seconds, self._cpu_seconds + 5),
            ("RLIMIT_FSIZE", self._max_file_mb * mb, self._max_file_mb * mb),
            ("RLIMIT_NPROC", nproc, nproc),
            ("RLIMIT_CORE", 0, 0),
        ]

    def _kernel_user(self) -> tuple[int | None, int | None, bool]:
        if self._uids is not None:
            uid = self._uids.allocate()
            return uid, uid, True
        if self._fixed_user is not None:
            return self._fixed_user[0], self._fixed_user[1], False
        return None, None, False

    async def _start_kernel(self, *, pooled: bool) -> _Kernel:
        """Start one kernel, wait until it answers, run the warm-up code."""
        await self._ensure_started()
        async with self._start_sem:
            t0 = time.perf_counter()
            kernel = await self._launch(niced=pooled and self._root)
            try:
                await self._wait_ready(kernel)
                codes = [WARMUP_CODE + POOL_WARMUP_CODE if pooled else WARMUP_CODE]
                if pooled:
                    # The pool kernel already sits in the working directory of the container it will serve, so
                    # create() costs no round trip.
                    kernel.workdir = self.base_dir / f"{_ID_PREFIX}{secrets.token_hex(8)}"
                    kernel.workdir.mkdir(mode=0o700)
                    if kernel.uid is not None and kernel.gid is not None:
                        os.chown(kernel.workdir, kernel.uid, kernel.gid)
                    codes.append(f"__import__('os').chdir({str(kernel.workdir)!r})")
                for code in codes:
                    # Not silent: a kernel's first non-silent execute costs a few ms more (display hook etc.).
                    outcome = await self._run(kernel, code, timeout=self._start_timeout, history=False)
                    if outcome.state != "done" or outcome.output.error:
                        raise SandboxUnavailable(f"The kernel warm-up failed: {outcome.state} {outcome.output.error}")
                if kernel.niced:
                    _renice(kernel.pid, 0)
                    kernel.niced = False
            except BaseException as exc:
                if not isinstance(exc, asyncio.CancelledError):
                    self._log_kernel_failure(kernel, exc)
                await asyncio.shield(self._kill(kernel))
                raise
            self._save_mpl_template(kernel)
            logger.info("kernel started pid=%d pooled=%s seconds=%.2f", kernel.pid, pooled, time.perf_counter() - t0)
            return kernel

    async def _launch(self, *, niced: bool) -> _Kernel:
        """Prepare the kernel's private directory and start its process (blocking parts in a worker thread, so a
        pool refill never stalls the event loop while a thread's execute is waiting for its result)."""
        assert self._runtime is not None and self._zmq is not None
        uid, gid, own_uid = self._kernel_user()
        self._kernel_count += 1
        private = self._runtime / f"k{self._kernel_count}{secrets.token_hex(3)}"
        spawn: asyncio.Future[tuple[subprocess.Popen[bytes], KernelConnectionInfo]] | None = None
        try:
            if own_uid and uid is not None and gid is not None and await asyncio.to_thread(_uid_has_processes, uid):
                await self._kill_uid(uid, gid)  # left behind by a bot that died without cleaning up
            spawn = asyncio.ensure_future(asyncio.to_thread(self._spawn_process, private, uid, gid, niced))
            proc, cfg = await asyncio.shield(spawn)
        except BaseException as exc:
            if spawn is not None and isinstance(exc, asyncio.CancelledError):
                with contextlib.suppress(BaseException):
                    orphan, _cfg = await spawn
                    with contextlib.suppress(OSError):
                        os.killpg(orphan.pid, signal.SIGKILL)
                    await asyncio.to_thread(orphan.wait, 5)
            if own_uid and uid is not None and self._uids is not None:
                self._uids.release(uid)
            await asyncio.to_thread(shutil.rmtree, private, True)
            raise
        client = AsyncKernelClient(context=self._zmq)
        client.load_connection_info(cfg)
        client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
        return _Kernel(proc=proc, client=client, private=private, uid=uid, gid=gid, own_uid=own_uid,
                       started_at=time.time(), niced=niced)

    def _spawn_process(self, private: Path, uid: int | None, gid: int | None, niced: bool
                       ) -> tuple[subprocess.Popen[bytes], KernelConnectionInfo]:
        """Blocking: the private directory (home, sockets, connection file) and the kernel process."""
        assert self._runtime is not None
        private.mkdir(mode=0o700)
        for sub in ("tmp", "mpl", "ipython", "runtime", "stage"):
            (private / sub).mkdir(mode=0o700)
        if self._mpl_template is not None and self._mpl_template.is_dir():
            for item in self._mpl_template.iterdir():
                shutil.copy2(item, private / "mpl" / item.name)
        conn_file, cfg = write_connection_file(
            str(private / "conn.json"), ip=str(private / "s"), transport="ipc", key=secrets.token_hex(32).encode(),
        )
        if uid is not None and gid is not None:
            _chown_tree(private, uid, gid)
        config = {"limits": self._limits(uid), "uid": uid, "gid": gid, "connection_file": conn_file,
                  "mounts": [[str(h), [str(r) for r in rs]] for h, rs in self._mounts],
                  "stage": str(private / "stage"), "nice": 19 if niced else 0,
                  "args": ["--HistoryManager.enabled=False", "--IPKernelApp.log_level=WARN"]}
        nice = shutil.which("nice") if niced else None
        if nice is not None:
            config["nice"] = 0  # the whole start-up runs niced, not only the part after the bootstrap
        cmd = [*([nice, "-n", "19"] if nice else []), *self._unshare, sys.executable, "-I", "-c", _BOOTSTRAP,
               json.dumps(config)]
        with open(self._runtime / f"{private.name}.log", "wb") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    env=self._kernel_env(private), cwd=private, start_new_session=True,
                                    close_fds=True)
        return proc, cfg

    async def _wait_ready(self, kernel: _Kernel) -> None:
        """Until the kernel answers ``kernel_info`` on shell and its iopub stream reaches us."""
        deadline = time.monotonic() + self._start_timeout
        client = kernel.client
        while True:
            if not kernel.alive():
                raise SandboxUnavailable(f"The kernel exited during start (code {kernel.proc.returncode}).")
            if time.monotonic() > deadline:
                raise SandboxUnavailable(f"The kernel did not answer within {self._start_timeout:.0f} s.")
            msg_id = client.kernel_info()
            if not await self._wait_for(client.shell_channel, msg_id, "kernel_info_reply", 0.5):
                continue
            if await self._wait_for(client.iopub_channel, msg_id, "status", 0.5, idle=True):
                return

    @staticmethod
    async def _wait_for(channel: Any, msg_id: str, msg_type: str, timeout: float, *, idle: bool = False) -> bool:
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            try:
                msg = await channel.get_msg(timeout=left)
            except Empty:
                return False
            if msg.get("parent_header", {}).get("msg_id") != msg_id or msg["msg_type"] != msg_type:
                continue
            if not idle or msg["content"].get("execution_state") == "idle":
                return True
        return False

    def _save_mpl_template(self, kernel: _Kernel) -> None:
        """Keep the font cache the first warm-up built, so later kernels skip rebuilding it."""
        template = self._mpl_template
        if template is None or template.exists():
            return
        with contextlib.suppress(OSError):
            staging = template.with_name(f"mpl-{secrets.token_hex(4)}")
            staging.mkdir(mode=0o700)
            for item in (kernel.private / "mpl").glob("fontlist-*.json"):
                if item.is_file() and not item.is_symlink():
                    shutil.copyfile(item, staging / item.name)
            staging.rename(template)

    def _log_kernel_failure(self, kernel: _Kernel, exc: BaseException) -> None:
        """Warn with the reason and the kernel's own log (written before any user code ran)."""
        tail = ""
        with contextlib.suppress(OSError):
            tail = kernel.private.with_name(f"{kernel.private.name}.log").read_bytes()[-1500:].decode(errors="replace")
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        logger.warning("kernel failed to start pid=%d reason=%r log_tail=%r", kernel.pid, reason[:300], tail)

    async def _kill(self, kernel: _Kernel) -> None:
        """Kill the kernel, every process it left behind (own uid) or its process group, and its files."""
        with contextlib.suppress(Exception):
            kernel.client.stop_channels()
        if kernel.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(kernel.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                kernel.proc.kill()
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(kernel.pid, signal.SIGKILL)
        if kernel.own_uid and kernel.uid is not None and kernel.gid is not None:
            await self._kill_uid(kernel.uid, kernel.gid)
        deadline = time.monotonic() + 5.0
        while kernel.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        await asyncio.to_thread(shutil.rmtree, kernel.private, True)
        if kernel.workdir is not None:
            await asyncio.to_thread(shutil.rmtree, kernel.workdir, True)
        with contextlib.suppress(OSError):
            kernel.private.with_name(f"{kernel.private.name}.log").unlink()
        if kernel.own_uid and kernel.uid is not None and self._uids is not None:
            self._uids.release(kernel.uid)

    @staticmethod
    async def _kill_uid(uid: int, gid: int) -> None:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-I", "-S", "-c", _KILL_UID, str(uid), str(gid),
                                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                                    stderr=subprocess.DEVNULL)
        await proc.wait()

    async def _attach(self, container: _Container, kernel: _Kernel, *, walk: bool) -> None:
        """Make ``kernel`` the container's: its working directory becomes the kernel's (owner and cwd)."""
        if kernel.uid is not None and kernel.gid is not None:
            if walk:
                await asyncio.to_thread(_chown_tree, container.dir, kernel.uid, kernel.gid)
            else:
                os.chown(container.dir, kernel.uid, kernel.gid)
        code = f"__import__('os').chdir({str(container.dir)!r})"
        outcome = await self._run(kernel, code, timeout=self._start_timeout, silent=True)
        if kernel.workdir is not None:
            unused, kernel.workdir = kernel.workdir, None
            await asyncio.to_thread(shutil.rmtree, unused, True)
        if outcome.state != "done" or outcome.output.error:
            await self._kill(kernel)
            raise SandboxUnavailable(f"The kernel could not enter its working directory: {outcome.output.error}")
        container.kernel = kernel

    # ------------------------------------------------------------------------------------------- containers

    def _get(self, container_id: str) -> _Container:
        container = self._containers.get(container_id)
        if container is None or container.deleted:
            raise ContainerNotFound(f"No local container {container_id!r} (deleted, swept, or never created).")
        return container

    async def create(self, *, name: str, idle_minutes: int) -> ContainerInfo:
        """A working directory plus a warm kernel from the pool (or one attached at the first execute).

        Local containers do not expire on their own (``idle_minutes`` is informative): the sweeper deletes idle
        ones using ``last_active_at``.
        """
        await self._ensure_started()
        kernel = self._take_ready()
        # Refill a moment later: starting a process now would compete with this thread's first execute.
        asyncio.get_running_loop().call_later(_REFILL_DELAY_S, self._refill)
        now = time.time()
        if kernel is not None and kernel.workdir is not None:
            workdir, kernel.workdir = kernel.workdir, None
            container = _Container(id=workdir.name, name=name, dir=workdir, created_at=now, last_active_at=now,
                                   kernel=kernel)
        else:
            workdir = self.base_dir / f"{_ID_PREFIX}{secrets.token_hex(8)}"
            workdir.mkdir(mode=0o700)
            container = _Container(id=workdir.name, name=name, dir=workdir, created_at=now, last_active_at=now)
            if kernel is not None:
                await self._attach(container, kernel, walk=False)
        cid = container.id
        self._containers[cid] = container
        logger.info("container created container=%s name=%s warm=%s", cid, name, container.kernel is not None)
        return container.info()

    async def delete(self, container_id: str) -> None:
        """Kill the kernel and remove the working directory; an unknown or deleted container is not an error."""
        container = self._containers.pop(container_id, None)
        if container is None:
            logger.info("container already gone container=%s", container_id)
            return
        container.deleted = True
        kernel, container.kernel = container.kernel, None
        if kernel is not None:
            await self._kill(kernel)
        await asyncio.to_thread(shutil.rmtree, container.dir, True)
        logger.info("container deleted container=%s", container_id)

    async def list_containers(self, *, prefix: str) -> list[ContainerInfo]:
        """Live containers whose name starts with ``prefix``, with ``last_active_at`` of their last execute."""
        return [c.info() for c in self._containers.values() if c.name.startswith(prefix) and not c.deleted]

    async def upload(self, container_id: str, *, name: str, chunks: AsyncIterator[bytes], size: int | None
                     ) -> SandboxFile:
        """Stream ``chunks`` into ``<dir>/<name>`` (constant memory; written to a temp name, then renamed)."""
        container = self._get(container_id)
        clean = sanitize_name(name)
        dfd = os.open(container.dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        tmp = f"{_UPLOAD_TMP_PREFIX}{secrets.token_hex(6)}.part"
        renamed = False
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            try:
                written = await self._write_chunks(fd, chunks, name, size)
                kernel = container.kernel
                if kernel is not None and kernel.uid is not None and kernel.gid is not None:
                    os.fchown(fd, kernel.uid, kernel.gid)
            finally:
                os.close(fd)
            if container.deleted:
                raise ContainerNotFound(f"The local container {container_id!r} was deleted during the upload.")
            try:
                os.replace(tmp, clean, src_dir_fd=dfd, dst_dir_fd=dfd)
            except OSError as exc:
                raise SandboxError(f"Could not store {clean!r} in the container: {exc.strerror}") from exc
            renamed = True
        finally:
            if not renamed:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dfd)
            os.close(dfd)
        now = time.time()
        container.user_files.add(clean)
        container.last_active_at = now
        logger.info("file uploaded container=%s bytes=%d", container_id, written)
        return SandboxFile(id=clean, path=str(container.dir / clean), size=written, source="user", created_at=now)

    @staticmethod
    async def _write_chunks(fd: int, chunks: AsyncIterator[bytes], name: str, size: int | None) -> int:
        written = 0
        buffer = bytearray()
        async for chunk in chunks:
            written += len(chunk)
            if size is not None and written > size:
                raise ValueError(f"upload of {name!r} exceeds its declared size of {size} bytes")
            buffer += chunk
            if len(buffer) >= _WRITE_BUFFER:
                await asyncio.to_thread(_write_all, fd, bytes(buffer))
                buffer.clear()
        if buffer:
            await asyncio.to_thread(_write_all, fd, bytes(buffer))
        if size is not None and written != size:
            raise ValueError(f"upload of {name!r} has {written} bytes, {size} were declared")
        return written

    async def list_files(self, container_id: str) -> list[SandboxFile]:
        """Every regular file under the working directory (symlinks and special files are skipped)."""
        container = self._get(container_id)
        return await asyncio.to_thread(self._walk, container)

    @staticmethod
    def _walk(container: _Container) -> list[SandboxFile]:
        found: list[SandboxFile] = []
        root = str(container.dir)
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            for fname in sorted(filenames):
                if dirpath == root and fname.startswith(_UPLOAD_TMP_PREFIX):
                    continue
                full = os.path.join(dirpath, fname)
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                rel = os.path.relpath(full, root)
                source = "user" if rel in container.user_files else "assistant"
                found.append(SandboxFile(id=rel, path=full, size=st.st_size, source=source, created_at=st.st_mtime))
        return found

    async def read_file(self, container_id: str, file_id: str) -> bytes:
        """The content of the file ``file_id`` (a path relative to the working directory; symlinks refused)."""
        container = self._get(container_id)
        parts = _check_file_id(file_id)
        kernel = container.kernel
        dropped = self._uids is not None or self._fixed_user is not None
        owner = kernel.uid if kernel is not None else os.geteuid()
        return await asyncio.to_thread(self._read, container.dir, parts, file_id, owner if dropped else None)

    @staticmethod
    def _read(root: Path, parts: list[str], file_id: str, kernel_uid: int | None) -> bytes:
        """Read without following symlinks; with a kernel user (``kernel_uid``), a file with several links must be
        that user's (a hard link to a file the bot may read but the kernel may not is refused)."""
        try:
            fd = _open_beneath(root, parts)
        except OSError as exc:
            raise SandboxError(f"The file is not in the container: {file_id!r}") from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise SandboxError(f"Not a regular file: {file_id!r}")
            if kernel_uid is not None and st.st_nlink > 1 and st.st_uid != kernel_uid:
                raise SandboxError(f"Refusing a hard link the sandbox does not own: {file_id!r}")
            with os.fdopen(os.dup(fd), "rb") as fh:
                return fh.read()
        finally:
            os.close(fd)

    # ------------------------------------------------------------------------------------------- execution

    async def execute(self, container_id: str, code: str, *, timeout: float) -> ExecResult:
        """Run ``code`` in the container's kernel; interrupt past ``timeout`` (state kept), kill and rebuild when
        the interrupt does not work (``restarted``). A kernel found dead is rebuilt first (``restarted``); so is one
        that dies before the code started, and the code then runs on the new kernel."""
        container = self._get(container_id)
        async with container.lock:
            self._get(container_id)
            restarted = False
            kernel = container.kernel
            if kernel is None or not kernel.alive():
                if kernel is not None:
                    logger.warning("kernel died, rebuilding container=%s pid=%d code=%s", container_id,
                                   kernel.pid, kernel.proc.returncode)
                    restarted = True
                await self._replace_kernel(container, kernel)
            attempts = 0
            while True:
                attempts += 1
                kernel = container.kernel
                assert kernel is not None
                container.last_active_at = time.time()
                outcome = await self._run(kernel, code, timeout=timeout)
                container.last_active_at = time.time()
                if outcome.state in ("done", "interrupted"):
                    if outcome.state == "interrupted":
                        logger.info("execution interrupted container=%s timeout=%.1f", container_id, timeout)
                    return self._result(outcome, restarted=restarted, timeout=timeout)
                self._get(container_id)  # a delete during the run killed the kernel: not a crash
                logger.warning("kernel %s, rebuilding container=%s pid=%d code=%s started=%s", outcome.state,
                               container_id, kernel.pid, kernel.proc.returncode, outcome.started)
                await self._replace_kernel(container, kernel)
                restarted = True
                if outcome.state == "died" and not outcome.started and attempts == 1:
                    continue  # it died before running the code (already dying): run it on the new kernel
                return self._result(outcome, restarted=True, timeout=timeout)

    async def _replace_kernel(self, container: _Container, old: _Kernel | None) -> None:
        container.kernel = None
        if old is not None:
            await self._kill(old)
        await self._attach(container, await self._acquire(), walk=True)
        self._get(container.id)

    @staticmethod
    def _result(outcome: _RunOutcome, *, restarted: bool, timeout: float) -> ExecResult:
        out = outcome.output
        stdout, stderr = "".join(out.stdout), "".join(out.stderr)
        if outcome.state == "done":
            return ExecResult(stdout=stdout, stderr=stderr, error=out.error, restarted=restarted)
        if outcome.state == "interrupted":
            return ExecResult(stdout=stdout, stderr=stderr, timed_out=True, restarted=restarted,
                              error=f"TimeoutError: the code ran longer than {timeout:g} s and was interrupted "
                                    "(variables are kept).")
        if outcome.state == "stuck":
            return ExecResult(stdout=stdout, stderr=stderr, timed_out=True, restarted=True,
                              error=f"TimeoutError: the code ran longer than {timeout:g} s and did not stop when "
                                    "interrupted; the interpreter was restarted (variables are lost, files kept).")
        return ExecResult(stdout=stdout, stderr=stderr, restarted=True,
                          error="KernelDied: the Python process ended during the run (out of memory or CPU time, "
                                "or killed); it was restarted (variables are lost, files kept).")

    async def _run(self, kernel: _Kernel, code: str, *, timeout: float, silent: bool = False, history: bool = True
                   ) -> _RunOutcome:
        """Execute ``code`` and collect its iopub output until idle; interrupt once past ``timeout``."""
        client = kernel.client
        while await client.shell_channel.msg_ready():  # stale replies of earlier runs
            await client.shell_channel.get_msg(timeout=0)
        msg_id = client.execute(code, silent=silent, store_history=history and not silent, allow_stdin=False)
        out = _Output()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        interrupted = False
        started = False
        while True:
            left = deadline - loop.time()
            if left <= 0:
                if interrupted:
                    return _RunOutcome(out, "stuck", started)
                interrupted = True
                self._interrupt(kernel)
                deadline = loop.time() + self._grace
                continue
            try:
                msg = await client.iopub_channel.get_msg(timeout=min(left, _POLL_S))
            except Empty:
                if not kernel.alive():
                    return _RunOutcome(out, "died", started)
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            started = True
            if self._collect(out, msg):
                break
        while await client.shell_channel.msg_ready():
            await client.shell_channel.get_msg(timeout=0)
        return _RunOutcome(out, "interrupted" if interrupted else "done")

    @staticmethod
    def _collect(out: _Output, msg: dict[str, Any]) -> bool:
        """Add one iopub message to ``out``; True when the kernel went idle."""
        kind = msg["msg_type"]
        content = msg["content"]
        if kind == "status":
            return bool(content.get("execution_state") == "idle")
        if kind == "stream":
            out.add(str(content.get("name")), str(content.get("text", "")))
        elif kind in ("execute_result", "display_data"):
            text = content.get("data", {}).get("text/plain")
            if isinstance(text, str):
                out.add("stdout", text + "\n")
        elif kind == "error":
            tb = _ANSI_RE.sub("", "\n".join(str(line) for line in content.get("traceback", [])))
            out.error = f"{content.get('ename', 'Error')}: {content.get('evalue', '')}" + (f"\n{tb}" if tb else "")
        return False

    @staticmethod
    def _interrupt(kernel: _Kernel) -> None:
        """``SIGINT`` to the kernel's process group, as ``KernelManager.interrupt_kernel`` does."""
        try:
            os.killpg(kernel.pid, signal.SIGINT)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                kernel.proc.send_signal(signal.SIGINT)


def rss_kb(pids: Iterable[int]) -> list[int]:
    """VmRSS (kB) of each pid from ``/proc/<pid>/status`` (0 when unreadable)."""
    sizes: list[int] = []
    for pid in pids:
        try:
            match = re.search(r"^VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
        except OSError:
            match = None
        sizes.append(int(match.group(1)) if match else 0)
    return sizes
