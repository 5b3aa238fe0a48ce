"""Starting and ending pods and kernels for one sandbox: ids, directories, cgroups, warm-up, the mpl font cache.

Every kernel is started here, whether for the pool or for a thread, so the cap on live kernels is kept here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import shutil
import time
from pathlib import Path

import zmq
import zmq.asyncio

from bot.sandbox.local import kernel as kern
from bot.sandbox.local.cgroups import Cgroups
from bot.sandbox.local.ids import IdPool, IdRange, lock_dir
from bot.sandbox.local.isolation import Isolation, kernel_env
from bot.sandbox.local.pod import Pod, start_pod
from bot.sandbox.local.pool import POOL_WARMUP_CODE, WARMUP_CODE

logger = logging.getLogger(__name__)

ID_PREFIX = "local-"


def user_task_count(uid: int) -> int:
    """Tasks (processes and threads) of ``uid``, which is what ``RLIMIT_NPROC`` counts."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            text = Path(entry.path, "status").read_text()
            uid_line = re.search(r"^Uid:\s+(\d+)", text, re.MULTILINE)
            threads = re.search(r"^Threads:\s+(\d+)", text, re.MULTILINE)
            if uid_line and int(uid_line.group(1)) == uid:
                total += int(threads.group(1)) if threads else 1
    return total


def renice(pid: int, value: int) -> None:
    """Set the nice value of every thread of ``pid`` (nice is per thread on Linux; lowering it needs root)."""
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, tid, value)


class Fleet:
    """The pods and kernels of one sandbox."""

    def __init__(self, *, isolation: Isolation, ids: IdRange | None, cgroups: Cgroups, base: Path, runtime: Path,
                 grace: float, start_timeout: float) -> None:
        """``ids``: the host ids kernels take theirs from (``None``: they share the bot's)."""
        self.isolation = isolation
        self.grace = grace
        self.start_timeout = start_timeout
        self._ids = IdPool(ids, lock_dir()) if ids is not None else None
        self._cgroups = cgroups
        self._context = zmq.asyncio.Context()
        self._context.setsockopt(zmq.LINGER, 0)
        self._context.setsockopt(zmq.RECONNECT_IVL, 10)
        self._base = base
        self._runtime = runtime
        self._mpl_template = runtime / "mpl-template"
        self._sem = asyncio.Semaphore(max(1, os.cpu_count() or 1))
        self._root = os.geteuid() == 0

    def close(self) -> None:
        """Give every id back and close the ZMQ context (the pods are closed already)."""
        if self._ids is not None:
            self._ids.close()
        self._context.destroy(linger=0)

    async def new_pod(self) -> Pod:
        """A pod with a fresh working directory ``<base>/local-<hex>`` (its id is the container's)."""
        ids = self._ids.allocate() if self._ids is not None else None
        token = secrets.token_hex(8)
        workdir = self._base / f"{ID_PREFIX}{token}"
        pod_dir = self._runtime / f"p{token}"
        try:
            for path in (workdir, pod_dir):
                path.mkdir(mode=0o711)
            pod = await start_pod(self.isolation, pod_id=workdir.name, pod_dir=pod_dir, workdir=workdir,
                                  log=self._runtime / f"p{token}.log", ids=ids, timeout=self.start_timeout)
        except BaseException:
            await asyncio.to_thread(self._remove_dirs, workdir, pod_dir, ids)
            raise
        if self._cgroups.parent is not None:
            lim = self.isolation.limits
            try:
                await asyncio.to_thread(self._cgroups.attach, pod.id, pod.host_pid, memory_mb=lim.memory_mb,
                                        max_processes=lim.max_processes)
            except OSError as exc:
                logger.warning("pod not in its cgroup (rlimits only) pod=%s error=%s", pod.id, exc)
        return pod

    async def close_pod(self, pod: Pod) -> None:
        """End the pod (its processes and tmpfs), then remove its directories and give its ids back."""
        await pod.close()
        ids = (pod.uid, pod.gid) if pod.uid is not None and pod.gid is not None else None
        await asyncio.to_thread(self._remove_dirs, pod.workdir, pod.dir, ids)
        self._cgroups.remove(pod.id)

    def _remove_dirs(self, workdir: Path, pod_dir: Path, ids: tuple[int, int] | None) -> None:
        for path in (workdir, pod_dir):
            shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(OSError):
            (self._runtime / f"{pod_dir.name}.log").unlink()
        if ids is not None and self._ids is not None:
            self._ids.release(ids[0])

    def _env(self, pod: Pod) -> dict[str, str]:
        tmp = Path("/tmp") if self.isolation.mount_ns else pod.dir / "tmp"
        return kernel_env(pod.home, tmp)

    def _rlimits(self) -> list[tuple[str, int, int]]:
        shared = self.isolation.variant.identity == "shared"
        return self.isolation.limits.rlimits(extra_processes=user_task_count(os.geteuid()) if shared else 0)

    async def start_kernel(self, pod: Pod, *, pooled: bool, module: str = "ipykernel_launcher") -> kern.Kernel:
        """Start a kernel in ``pod``, wait until it answers, run the warm-up code (raises
        :class:`~bot.sandbox.base.SandboxSetupError` with the cause when it does not start)."""
        async with self._sem:
            t0 = time.perf_counter()
            await asyncio.to_thread(self._copy_mpl_template, pod)
            limits = await asyncio.to_thread(self._rlimits)
            kernel = await kern.launch(pod, context=self._context, env=self._env(pod), limits=limits,
                                       niced=pooled and self._root, timeout=self.start_timeout, module=module)
            try:
                await kern.wait_ready(kernel, self.start_timeout)
                code = WARMUP_CODE + POOL_WARMUP_CODE if pooled else WARMUP_CODE
                # Not silent: a kernel's first non-silent execute costs a few ms more (display hook etc.).
                outcome = await kern.run(kernel, code, timeout=self.start_timeout, grace=self.grace, history=False)
                if outcome.state != "done" or outcome.output.error:
                    raise kern.start_failure(pod, f"the warm-up failed: {outcome.output.error or outcome.state}")
                if kernel.niced:
                    renice(kernel.pid, 0)
                    kernel.niced = False
            except BaseException as exc:
                if not isinstance(exc, asyncio.CancelledError):
                    logger.warning("kernel failed to start pod=%s reason=%r log_tail=%r", pod.id,
                                   str(exc)[:300], pod.log_tail(1500))
                await asyncio.shield(self.stop_kernel(kernel))
                raise
            await asyncio.to_thread(self._save_mpl_template, pod)
            logger.info("kernel started pid=%d pooled=%s seconds=%.2f", kernel.pid, pooled, time.perf_counter() - t0)
            return kernel

    async def stop_kernel(self, kernel: kern.Kernel) -> None:
        """Kill the kernel and every process it left in its pod (the pod and its files stay)."""
        kernel.release()
        await kernel.pod.stop()

    def _copy_mpl_template(self, pod: Pod) -> None:
        """Give the kernel the font cache the first warm-up built, so it skips rebuilding it."""
        if not self._mpl_template.is_dir():
            return
        target = pod.host(pod.home / "mpl")
        for item in self._mpl_template.iterdir():
            with contextlib.suppress(OSError):
                shutil.copyfile(item, target / item.name)
                os.chmod(target / item.name, 0o644)

    def _save_mpl_template(self, pod: Pod) -> None:
        """Keep the font cache the first warm-up built."""
        if self._mpl_template.exists():
            return
        with contextlib.suppress(OSError):
            staging = self._mpl_template.with_name(f"mpl-{secrets.token_hex(4)}")
            staging.mkdir(mode=0o700)
            for item in pod.host(pod.home / "mpl").glob("fontlist-*.json"):
                if item.is_file() and not item.is_symlink():
                    shutil.copyfile(item, staging / item.name)
            staging.rename(self._mpl_template)
