"""One kernel: launched inside its pod, waited for, asked to execute code, interrupted, and its results read.

The kernel is ``python -I -m ipykernel_launcher`` started by the pod's supervisor (limits applied, privileges
dropped) and driven with jupyter-client's :class:`AsyncKernelClient` over ZMQ ``ipc`` sockets in the kernel's home,
one client for its whole life. Interrupting is ``SIGINT`` to the kernel's process group (what
``KernelManager.interrupt_kernel`` does for ``interrupt_mode="signal"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import select
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any, Literal

import zmq.asyncio
from jupyter_client.asynchronous.client import AsyncKernelClient

from bot.sandbox.base import ExecResult, SandboxSetupError
from bot.sandbox.local.pod import Pod

MAX_STREAM_CHARS = 1_000_000
POLL_S = 0.25
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_ERROR_LINE = re.compile(r"^(?:\S*: No module named .+|\w+(?:\.\w+)*(?:Error|Exception): .+)$", re.MULTILINE)
"""What a failed start prints last: ``ModuleNotFoundError: ...``, or ``python: No module named x`` from ``-m``."""
KERNEL_ARGS = ("--HistoryManager.enabled=False", "--IPKernelApp.log_level=WARN")


@dataclass(slots=True)
class Kernel:
    """A live kernel in a pod."""

    pod: Pod
    pid: int
    """Host pid (also its process group: the supervisor starts it in a session of its own)."""
    client: AsyncKernelClient
    started_at: float
    pidfd: int | None = None
    niced: bool = False
    """Started at the lowest CPU priority (a pool refill must not slow down the threads being served)."""

    def alive(self) -> bool:
        """The kernel process has not exited (and its pod still exists)."""
        if not self.pod.alive():
            return False
        if self.pidfd is None:
            return Path(f"/proc/{self.pid}").exists()
        readable, _, _ = select.select([self.pidfd], [], [], 0)
        return not readable

    def release(self) -> None:
        """Close the client and the pidfd (the process itself is the pod's business)."""
        with contextlib.suppress(Exception):
            self.client.stop_channels()
        if self.pidfd is not None:
            with contextlib.suppress(OSError):
                os.close(self.pidfd)
            self.pidfd = None

    def interrupt(self) -> None:
        """``SIGINT`` to the kernel's process group."""
        try:
            os.killpg(self.pid, signal.SIGINT)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGINT)


@dataclass(slots=True)
class Output:
    """What a run printed, bounded."""

    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=lambda: {"stdout": 0, "stderr": 0})
    error: str | None = None

    def add(self, stream: str, text: str) -> None:
        """Append to ``stdout`` or ``stderr``, truncating past :data:`MAX_STREAM_CHARS`."""
        key = "stderr" if stream == "stderr" else "stdout"
        parts = self.stderr if key == "stderr" else self.stdout
        used = self.sizes[key]
        if used >= MAX_STREAM_CHARS:
            return
        if used + len(text) > MAX_STREAM_CHARS:
            text = text[: MAX_STREAM_CHARS - used] + "\n[... output truncated ...]\n"
        self.sizes[key] = used + len(text)
        parts.append(text)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How one run ended."""

    output: Output
    state: Literal["done", "interrupted", "stuck", "died"]
    started: bool = True
    """The kernel acknowledged the request (``busy``): the code may have run, so it is never re-run."""


def start_failure(pod: Pod, reason: str) -> SandboxSetupError:
    """A kernel that did not start, with the cause (from its log, or the warm-up's error) and what to do about it."""
    found = _ERROR_LINE.findall(pod.log_tail())
    cause = (found[-1] if found else reason.strip().splitlines()[0] if reason.strip() else "unknown").strip()
    if "No module named" in cause:
        module = cause.split("No module named", 1)[1].strip(" '\"")
        cause = f"No module named {module!r}"
        fix = (f"install it into the environment of {sys.executable} (`{sys.executable} -m pip install "
               f"{module.split('.')[0]}`), which is the interpreter kernels run")
    elif any(word in cause for word in ("MemoryError", "Cannot allocate memory", "failed to map segment")):
        fix = "raise DATASTORY_LOCAL_MEMORY_MB: the kernel cannot load pandas and matplotlib within its memory limit"
    elif "Permission denied" in cause or "PermissionError" in cause:
        fix = (f"make the interpreter ({sys.executable}) and its packages readable by other users, or run the bot "
               "from a Python installed outside a private directory (e.g. `/usr/bin/python3 -m venv`)")
    else:
        fix = "run `datastory doctor` for the isolation report, and DATASTORY_LOG_LEVEL=DEBUG for the kernel's log"
    return SandboxSetupError(f"The local kernel did not start: {cause[:400]}. Fix: {fix}.")


async def launch(pod: Pod, *, context: zmq.asyncio.Context, env: dict[str, str],
                 limits: list[tuple[str, int, int]], niced: bool, timeout: float,
                 module: str = "ipykernel_launcher") -> Kernel:
    """Start a kernel (``python -I -m <module>``) in ``pod`` and connect to it (not yet waited for: see
    :func:`wait_ready`)."""
    token = secrets.token_hex(4)
    inside_ip = pod.home / f"s{token}"
    conn: dict[str, Any] = {"transport": "ipc", "ip": str(inside_ip), "shell_port": 1, "iopub_port": 2,
                            "stdin_port": 3, "control_port": 4, "hb_port": 5, "key": secrets.token_hex(32),
                            "signature_scheme": "hmac-sha256", "kernel_name": ""}
    conn_path = pod.home / f"kernel-{token}.json"
    argv = [sys.executable, "-I", "-m", module, "-f", str(conn_path), *KERNEL_ARGS]
    try:
        pid = await pod.spawn(argv=argv, env=env, conn=conn, conn_path=conn_path, limits=limits,
                              nice=19 if niced else 0, timeout=timeout)
    except (RuntimeError, ConnectionError, OSError, TimeoutError) as exc:
        raise start_failure(pod, str(exc)) from exc
    pidfd = None
    with contextlib.suppress(OSError, AttributeError):
        pidfd = os.pidfd_open(pid)
    client = AsyncKernelClient(context=context)
    client.load_connection_info({**conn, "ip": str(pod.host(inside_ip))})  # type: ignore[typeddict-item]
    client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
    return Kernel(pod=pod, pid=pid, pidfd=pidfd, client=client, started_at=time.time(), niced=niced)


async def wait_ready(kernel: Kernel, timeout: float) -> None:
    """Until the kernel answers ``kernel_info`` on shell and its iopub stream reaches us."""
    deadline = time.monotonic() + timeout
    client = kernel.client
    while True:
        if not kernel.alive():
            raise start_failure(kernel.pod, "the kernel exited during start")
        if time.monotonic() > deadline:
            raise start_failure(kernel.pod, f"the kernel did not answer within {timeout:.0f} s")
        msg_id = client.kernel_info()
        if not await _wait_for(client.shell_channel, msg_id, "kernel_info_reply", 0.5):
            continue
        if await _wait_for(client.iopub_channel, msg_id, "status", 0.5, idle=True):
            return


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


async def run(kernel: Kernel, code: str, *, timeout: float, grace: float, silent: bool = False,
              history: bool = True) -> RunOutcome:
    """Execute ``code`` and collect its iopub output until idle; interrupt once past ``timeout``, give up
    ``grace`` seconds after that (``stuck``)."""
    client = kernel.client
    while await client.shell_channel.msg_ready():  # stale replies of earlier runs
        await client.shell_channel.get_msg(timeout=0)
    msg_id = client.execute(code, silent=silent, store_history=history and not silent, allow_stdin=False)
    out = Output()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    interrupted = False
    started = False
    while True:
        left = deadline - loop.time()
        if left <= 0:
            if interrupted:
                return RunOutcome(out, "stuck", started)
            interrupted = True
            kernel.interrupt()
            deadline = loop.time() + grace
            continue
        try:
            msg = await client.iopub_channel.get_msg(timeout=min(left, POLL_S))
        except Empty:
            if not kernel.alive():
                return RunOutcome(out, "died", started)
            continue
        except asyncio.CancelledError:  # the turn was stopped: interrupt the cell, let it end, keep the variables
            kernel.interrupt()
            await _settle(kernel, msg_id, grace)
            raise
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        started = True
        if collect(out, msg):
            break
    while await client.shell_channel.msg_ready():
        await client.shell_channel.get_msg(timeout=0)
    return RunOutcome(out, "interrupted" if interrupted else "done")


async def _settle(kernel: Kernel, msg_id: str, grace: float) -> None:
    """Wait (at most ``grace`` seconds) until the interrupted request ``msg_id`` went idle, so the next request is
    not aborted by the kernel for arriving while the interrupted cell was still failing."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while (left := deadline - loop.time()) > 0:
        try:
            msg = await kernel.client.iopub_channel.get_msg(timeout=min(left, POLL_S))
        except Empty:
            continue
        if msg.get("parent_header", {}).get("msg_id") == msg_id and msg.get("msg_type") == "status" and \
                msg.get("content", {}).get("execution_state") == "idle":
            return


def collect(out: Output, msg: dict[str, Any]) -> bool:
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


def result(outcome: RunOutcome, *, restarted: bool, timeout: float) -> ExecResult:
    """What the caller of ``execute`` gets for ``outcome``."""
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


def rss_kb(pids: list[int]) -> list[int]:
    """VmRSS (kB) of each pid from ``/proc/<pid>/status`` (0 when unreadable)."""
    sizes: list[int] = []
    for pid in pids:
        try:
            match = re.search(r"^VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
        except OSError:
            match = None
        sizes.append(int(match.group(1)) if match else 0)
    return sizes
