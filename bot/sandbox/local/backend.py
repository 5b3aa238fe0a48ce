""":class:`LocalSandbox`: the ``local`` backend's facade over pods, kernels, the warm pool and working directories.

A *container* is a pod (:mod:`bot.sandbox.local.pod`) with its working directory ``<base_dir>/local-<hex>`` and the
kernel that runs in it. Files persist across kernels: a kernel that dies, times out or is stopped to make room for
another thread's is replaced inside the same pod at the next execute (``restarted``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

from bot.sandbox.base import (
    ContainerExpired,
    ContainerInfo,
    ContainerNotFound,
    ExecResult,
    SandboxFile,
    SandboxUnavailable,
)
from bot.sandbox.local import kernel as kern
from bot.sandbox.local import workdir as files
from bot.sandbox.local.cgroups import Cgroups
from bot.sandbox.local.container import Container, let_go
from bot.sandbox.local.fleet import Fleet
from bot.sandbox.local.isolation import Isolation, Limits, Mode, default_max_kernels
from bot.sandbox.local.mounts import PROJECT_ROOT
from bot.sandbox.local.pod import Pod
from bot.sandbox.local.pool import Pool, Warm
from bot.sandbox.local.probe import probe

logger = logging.getLogger(__name__)

ROOM_WAIT_S = 0.05


class LocalSandbox:
    """:class:`bot.sandbox.base.SandboxBackend` and :class:`bot.sandbox.base.CodeRunner` over local kernels."""

    kind = "local"

    def __init__(self, *, base_dir: Path | None = None, pool_size: int = 2, memory_mb: int = 2048,
                 cpu_seconds: int = 600, max_file_mb: int = 1024, max_processes: int = 64, disk_mb: int | None = None,
                 isolation: Mode = "strict", max_kernels: int | None = None, protect: tuple[Path, ...] = (),
                 interrupt_grace_seconds: float = 5.0, start_timeout_seconds: float = 60.0) -> None:
        """``base_dir`` holds the working directories (a fresh temp dir, removed at close, when ``None``); it must
        be outside the project. ``isolation``: ``strict`` refuses to start unless kernels get no network and a uid
        of their own; ``relaxed`` takes what the machine gives and says what is missing. ``protect``: more paths
        kernels must not see (the database file, ``.env``). ``disk_mb``: the quota of a pod's tmpfs (default
        twice ``max_file_mb``, at least 2 GB). ``max_kernels``: live kernels at most (default: what memory holds)."""
        if pool_size < 0 or min(memory_mb, cpu_seconds, max_file_mb, max_processes, max_kernels or 1) < 1:
            raise ValueError("pool_size must be >= 0 and the limits >= 1")
        self._shared = Path(base_dir).absolute() if base_dir is not None else None
        if self._shared is not None and PROJECT_ROOT is not None and (
                self._shared == PROJECT_ROOT or PROJECT_ROOT in self._shared.parents):
            raise ValueError(f"base_dir must be outside the project ({PROJECT_ROOT}): {self._shared}")
        self._limits = Limits(memory_mb=memory_mb, cpu_seconds=cpu_seconds, max_file_mb=max_file_mb,
                              max_processes=max_processes, quota_mb=disk_mb or max(2048, 2 * max_file_mb))
        self._mode: Mode = isolation
        self._max_kernels = max_kernels or default_max_kernels(memory_mb)
        self._protect = tuple(Path(p).absolute() for p in protect)
        self._grace = interrupt_grace_seconds
        self._start_timeout = start_timeout_seconds
        self._dirs = files.RunDirs(self._shared)
        self._containers: dict[str, Container] = {}
        self._pool = Pool(size=pool_size, make=self._new_warm, room=self._has_room, discard=self._discard)
        self._start_lock = asyncio.Lock()
        self._started = False
        self._closed = False
        self._isolation: Isolation | None = None
        self._cgroups = Cgroups()
        self._fleet: Fleet | None = None

    # ------------------------------------------------------------------------------------------- lifecycle

    @property
    def base_dir(self) -> Path:
        """Where this process's working directories live (``<base_dir>/run-*/<container id>``)."""
        if self._dirs.base is None:
            raise RuntimeError("the local sandbox is not started yet")
        return self._dirs.base

    @property
    def isolation(self) -> Isolation | None:
        """The isolation in force (``None`` before :meth:`start`)."""
        return self._isolation

    async def start(self, *, wait: bool = True) -> None:
        """Probe the isolation (raising :class:`SandboxSetupError` when ``strict`` cannot have it), prepare the
        directories and pre-start the pool (``wait``: until it is warm)."""
        await self._ensure_started()
        if wait:
            await self._pool.wait()

    async def _ensure_started(self) -> None:
        if self._closed:
            raise SandboxUnavailable("The local sandbox is closed.")
        if self._started:
            return
        async with self._start_lock:
            if self._started:
                return
            try:
                runtime = await asyncio.to_thread(self._dirs.claim)
                probed = await probe(mode=self._mode, limits=self._limits, max_kernels=self._max_kernels,
                                     protect=list(self._protect), cgroups=self._cgroups, scratch=runtime)
                self._isolation = probed.isolation
                if probed.isolation.variant.identity != "shared" and not probed.isolation.mount_ns:
                    await asyncio.to_thread(self._dirs.check_reachable)
                self._fleet = Fleet(isolation=probed.isolation, ids=probed.ids, cgroups=self._cgroups,
                                    base=self.base_dir, runtime=runtime, grace=self._grace,
                                    start_timeout=self._start_timeout)
            except BaseException:
                await asyncio.to_thread(self._dirs.remove)
                raise
            self._started = True
            for line in self.isolation_report():
                logger.info("local sandbox isolation: %s", line)
            if self._isolation.missing:  # relaxed, and weaker than strict here
                logger.warning("local sandbox: isolation is relaxed (DATASTORY_LOCAL_ISOLATION=relaxed): %s; "
                               "missing for strict: %s", self._isolation.summary(), "; ".join(self._isolation.missing))
            self._pool.refill()

    def isolation_report(self) -> list[str]:
        """What isolation is (and is not) in force, one line per aspect (for logs and ``datastory doctor``)."""
        lines = (self._isolation.report() if self._isolation is not None
                 else [f"not started yet: isolation ({self._mode}) is probed at start"])
        where = (str(self._dirs.base) if self._dirs.base is not None else
                 f"a run directory in {self._shared}" if self._shared is not None else "a temp dir (created at start)")
        outside = f" (outside the source tree {PROJECT_ROOT})" if PROJECT_ROOT is not None else ""
        return [*lines, f"working directories: {where}{outside}"]

    async def close(self) -> None:
        """Shut down every pod (pool included) and remove the working directories."""
        if self._closed:
            return
        self._closed = True
        await self._pool.close()
        containers = list(self._containers.values())
        self._containers.clear()
        await asyncio.gather(*(self._remove(c) for c in containers), return_exceptions=True)
        await asyncio.to_thread(self._dirs.remove)
        if self._fleet is not None:
            self._fleet.close()
        self._cgroups.close()
        logger.info("local sandbox closed containers=%d", len(containers))

    # ------------------------------------------------------------------------------------------- pods and kernels

    @property
    def fleet(self) -> Fleet:
        if self._fleet is None:
            raise RuntimeError("the local sandbox is not started yet")
        return self._fleet

    async def _new_warm(self) -> Warm:
        """A pod for the pool, its kernel starting (at the lowest priority) in the background."""
        await self._ensure_started()
        pod = await self.fleet.new_pod()
        return Warm(pod=pod, kernel=asyncio.ensure_future(self.fleet.start_kernel(pod, pooled=True)))

    async def _discard(self, warm: Warm) -> None:
        await let_go(warm.kernel)
        await self.fleet.close_pod(warm.pod)

    def _live_kernels(self) -> int:
        return len(self._pool) + sum(1 for c in self._containers.values() if c.kernel is not None)

    def _has_room(self) -> bool:
        return self._live_kernels() < self._max_kernels

    async def _make_room(self, exclude: Container) -> None:
        """Below the cap on live kernels: a pooled pod goes first, then the longest-idle thread's kernel (its files
        stay); waits while every kernel is busy."""
        deadline = time.monotonic() + self._start_timeout
        while not self._has_room():
            if await self._pool.evict_one():
                continue
            idle = sorted((c for c in self._containers.values()
                           if c is not exclude and c.kernel is not None and not c.lock.locked()),
                          key=lambda c: c.last_active_at)
            if idle:
                victim = idle[0]
                task, victim.kernel = victim.kernel, None
                logger.info("kernel stopped to make room container=%s idle_s=%.0f max_kernels=%d", victim.id,
                            time.time() - victim.last_active_at, self._max_kernels)
                await self._end_kernel(task, victim.pod)
                continue
            if time.monotonic() > deadline:
                raise SandboxUnavailable(f"All {self._max_kernels} local kernels are busy "
                                         "(DATASTORY_LOCAL_MAX_KERNELS).")
            await asyncio.sleep(ROOM_WAIT_S)

    async def _end_kernel(self, task: asyncio.Task[kern.Kernel] | None, pod: Pod) -> None:
        """Stop the kernel and every process it left (the pod and its files stay)."""
        await let_go(task)
        await pod.stop()

    async def _remove(self, container: Container) -> None:
        container.deleted = True
        task, container.kernel = container.kernel, None
        await let_go(task)
        await self.fleet.close_pod(container.pod)

    # ------------------------------------------------------------------------------------------- containers

    def _get(self, container_id: str) -> Container:
        container = self._containers.get(container_id)
        if container is None or container.deleted:
            raise ContainerNotFound(f"No local container {container_id!r} (deleted, swept, or never created).")
        if not container.pod.alive():
            self._containers.pop(container_id, None)
            self._pool.spawn(self._remove(container))
            raise ContainerExpired(f"The local container {container_id!r} ended (its pod stopped): rebuild it.")
        return container

    def pool_pids(self) -> list[int]:
        """Host pids of the warm kernels waiting in the pool (started and warmed up)."""
        return [w.kernel.result().pid for w in self._pool.warm() if w.ready()]

    def kernel_pid(self, container_id: str) -> int | None:
        """Host pid of the container's kernel (``None`` while none is running)."""
        kernel = self._get(container_id).live_kernel()
        return kernel.pid if kernel is not None else None

    def host_path(self, container_id: str, file_id: str = "") -> Path:
        """Where this process reaches a container's file (``/proc/<pid>/root/...`` when the pod has its own mount
        namespace): for tests and tools that look behind the backend."""
        container = self._get(container_id)
        return container.pod.host(container.pod.workdir / file_id)

    async def create(self, *, name: str, idle_minutes: int) -> ContainerInfo:
        """A pod from the warm pool (or a new one, its kernel starting at once).

        Local containers do not expire on their own (``idle_minutes`` is informative): the sweeper deletes idle
        ones using ``last_active_at``.
        """
        await self._ensure_started()
        warm = await self._pool.take()
        self._pool.refill_later()
        now = time.time()
        if warm is None:
            pod = await self.fleet.new_pod()
            container = Container(id=pod.id, name=name, pod=pod, created_at=now, last_active_at=now)
            self._containers[container.id] = container
            try:
                await self._make_room(container)
            except BaseException:
                self._containers.pop(container.id, None)
                await self.fleet.close_pod(pod)
                raise
            container.kernel = asyncio.ensure_future(self.fleet.start_kernel(pod, pooled=False))
        else:
            container = Container(id=warm.pod.id, name=name, pod=warm.pod, created_at=now, last_active_at=now,
                                  kernel=warm.kernel)
            self._containers[container.id] = container
        logger.info("container created container=%s name=%s warm=%s", container.id, name,
                    container.live_kernel() is not None)
        return container.info()

    async def delete(self, container_id: str) -> None:
        """End the pod (kernel, processes, files); an unknown or deleted container is not an error."""
        container = self._containers.pop(container_id, None)
        if container is None:
            logger.info("container already gone container=%s", container_id)
            return
        await self._remove(container)
        logger.info("container deleted container=%s", container_id)

    async def list_containers(self, *, prefix: str) -> list[ContainerInfo]:
        """Live containers whose name starts with ``prefix``, with ``last_active_at`` of their last execute."""
        return [c.info() for c in self._containers.values() if c.name.startswith(prefix) and not c.deleted]

    async def upload(self, container_id: str, *, name: str, chunks: AsyncIterator[bytes], size: int | None
                     ) -> SandboxFile:
        """Stream ``chunks`` into ``<workdir>/<name>`` (constant memory; written to a temp name, then renamed)."""
        container = self._get(container_id)
        clean = files.sanitize_name(name)
        pod = container.pod
        written = await files.upload(pod.host(pod.workdir), clean, chunks, name=name, size=size,
                                     owner=(pod.uid, pod.gid), still_there=lambda: self._get(container_id))
        now = time.time()
        container.user_files.add(clean)
        container.last_active_at = now
        logger.info("file uploaded container=%s bytes=%d", container_id, written)
        return SandboxFile(id=clean, path=str(pod.workdir / clean), size=written, source="user", created_at=now)

    async def list_files(self, container_id: str) -> list[SandboxFile]:
        """Every regular file under the working directory (symlinks and special files are skipped)."""
        container = self._get(container_id)
        pod = container.pod
        return await asyncio.to_thread(files.walk, pod.host(pod.workdir), pod.workdir, container.user_files)

    async def delete_file(self, container_id: str, file_id: str) -> None:
        """Remove the file ``file_id`` (a path relative to the working directory; symlinks are not followed)."""
        container = self._get(container_id)
        pod = container.pod
        await asyncio.to_thread(files.delete_file, pod.host(pod.workdir), file_id)
        container.user_files.discard(file_id)

    async def read_file(self, container_id: str, file_id: str) -> bytes:
        """The content of the file ``file_id`` (a path relative to the working directory; symlinks refused)."""
        container = self._get(container_id)
        pod = container.pod
        return await asyncio.to_thread(files.read_file, pod.host(pod.workdir), file_id, kernel_uid=pod.uid)

    # ------------------------------------------------------------------------------------------- execution

    async def execute(self, container_id: str, code: str, *, timeout: float) -> ExecResult:
        """Run ``code`` in the container's kernel; interrupt past ``timeout`` (state kept), kill and replace it
        when the interrupt does not work (``restarted``). A kernel found dead or stopped to make room is replaced
        first (``restarted``); so is one that dies before the code started, and the code then runs on the new one."""
        container = self._get(container_id)
        async with container.lock:
            restarted = await self._ensure_kernel(container)
            attempts = 0
            while True:
                attempts += 1
                kernel = await self._kernel_of(container)
                container.last_active_at = time.time()
                try:
                    outcome = await kern.run(kernel, code, timeout=timeout, grace=self.fleet.grace)
                except asyncio.CancelledError:  # the turn was stopped: kern.run interrupted the cell
                    logger.info("execution stopped container=%s", container_id)
                    raise
                container.last_active_at = time.time()
                if outcome.state in ("done", "interrupted"):
                    if outcome.state == "interrupted":
                        logger.info("execution interrupted container=%s timeout=%.1f", container_id, timeout)
                    return kern.result(outcome, restarted=restarted, timeout=timeout)
                self._get(container_id)  # a delete during the run ended the pod: not a crash
                logger.warning("kernel %s, replacing it container=%s pid=%d started=%s", outcome.state,
                               container_id, kernel.pid, outcome.started)
                await self._replace_kernel(container)
                restarted = True
                if outcome.state == "died" and not outcome.started and attempts == 1:
                    continue  # it died before running the code (already dying): run it on the new kernel
                return kern.result(outcome, restarted=True, timeout=timeout)

    async def _kernel_of(self, container: Container) -> kern.Kernel:
        task = container.kernel
        assert task is not None
        kernel = await asyncio.shield(task)
        self._get(container.id)
        return kernel

    async def _ensure_kernel(self, container: Container) -> bool:
        """A kernel for the container (waiting for one that starts); True when it had to be replaced."""
        task = container.kernel
        failed = task is not None and task.done() and (task.cancelled() or task.exception() is not None)
        if task is not None and not failed:
            kernel = await asyncio.shield(task)  # raises the reason when it does not start
            if kernel.alive():
                return False
            logger.warning("kernel died, replacing it container=%s pid=%d", container.id, kernel.pid)
        await self._replace_kernel(container)  # died, stopped to make room, or never started (tried again)
        return not failed

    async def _replace_kernel(self, container: Container) -> None:
        task, container.kernel = container.kernel, None
        await self._end_kernel(task, container.pod)
        await self._make_room(container)
        container.kernel = asyncio.ensure_future(self.fleet.start_kernel(container.pod, pooled=False))
        await self._kernel_of(container)
