"""A real :class:`~bot.sandbox.base.CodeRunner` for tests: one persistent Python subprocess per container id.

Each container is a working directory under ``root``; its interpreter is a small REPL (:data:`REPL`) that reads
one JSON request per line on stdin, ``exec``s the code in a persistent globals dict with stdout/stderr captured,
and answers one JSON line on a private file descriptor (so output written straight to fd 1 cannot corrupt the
protocol). A run past its timeout is interrupted with SIGINT (state kept, ``timed_out``); an interpreter that does
not answer the interrupt within a grace period is killed and rebuilt (``restarted``, variables lost, files kept).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from bot.sandbox.base import ExecResult

REPL = r'''
import contextlib, io, json, os, sys, traceback
proto = os.fdopen(os.dup(1), "w", encoding="utf-8")
os.dup2(2, 1)
namespace = {"__name__": "__main__"}
LIMIT = 1 << 20
while True:
    try:
        line = sys.stdin.readline()
    except KeyboardInterrupt:
        continue
    if not line:
        break
    code = json.loads(line)["code"]
    out, err = io.StringIO(), io.StringIO()
    error = None
    interrupted = False
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            exec(compile(code, "<cell>", "exec"), namespace)
    except KeyboardInterrupt:
        interrupted = True
        error = "KeyboardInterrupt: the run was interrupted"
    except BaseException:
        error = traceback.format_exc()
    answer = {"stdout": out.getvalue()[-LIMIT:], "stderr": err.getvalue()[-LIMIT:], "error": error,
              "interrupted": interrupted}
    while True:
        try:
            proto.write(json.dumps(answer) + "\n")
            proto.flush()
            break
        except KeyboardInterrupt:
            continue
'''


class _Kernel:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lock = asyncio.Lock()


class SubprocessRunner:
    """``CodeRunner`` over persistent Python subprocesses; ``workdir(container_id)`` is each one's directory."""

    def __init__(self, root: Path, *, python: str = sys.executable, grace: float = 3.0) -> None:
        self.root = root
        self.python = python
        self.grace = grace
        self.runs: list[tuple[str, str]] = []
        """Every ``(container_id, code)`` executed, in order."""
        self._kernels: dict[str, _Kernel] = {}

    def workdir(self, container_id: str) -> Path:
        """The container's working directory (created on first use)."""
        path = self.root / container_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def _start(self, container_id: str) -> _Kernel:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "SLACK"))}
        env["MPLBACKEND"] = "Agg"
        env["PYTHONUNBUFFERED"] = "1"
        process = await asyncio.create_subprocess_exec(
            self.python, "-c", REPL, cwd=self.workdir(container_id), env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, limit=1 << 24,
        )
        kernel = _Kernel(process)
        self._kernels[container_id] = kernel
        return kernel

    async def execute(self, container_id: str, code: str, *, timeout: float) -> ExecResult:
        """Run ``code`` in the container's interpreter; see the module docstring for timeouts."""
        kernel = self._kernels.get(container_id) or await self._start(container_id)
        async with kernel.lock:
            self.runs.append((container_id, code))
            process = kernel.process
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write((json.dumps({"code": code}) + "\n").encode())
            await process.stdin.drain()
            try:
                line = await asyncio.wait_for(process.stdout.readline(), timeout)
            except TimeoutError:
                process.send_signal(signal.SIGINT)
                try:
                    line = await asyncio.wait_for(process.stdout.readline(), self.grace)
                except TimeoutError:
                    line = b""
                if not line:
                    await self._kill(container_id)
                    return ExecResult(error="the interpreter did not stop and was restarted", timed_out=True,
                                      restarted=True)
                answer = json.loads(line)
                return ExecResult(stdout=answer["stdout"], stderr=answer["stderr"], error=None, timed_out=True)
            if not line:
                await self._kill(container_id)
                return ExecResult(error="the interpreter died and was restarted", restarted=True)
            answer = json.loads(line)
            return ExecResult(stdout=answer["stdout"], stderr=answer["stderr"], error=answer["error"])

    async def _kill(self, container_id: str) -> None:
        kernel = self._kernels.pop(container_id, None)
        if kernel is None:
            return
        if kernel.process.returncode is None:
            kernel.process.kill()
        await kernel.process.wait()

    async def close(self) -> None:
        """Stop every interpreter."""
        for container_id in list(self._kernels):
            kernel = self._kernels.pop(container_id)
            if kernel.process.returncode is None and kernel.process.stdin is not None:
                kernel.process.stdin.close()
                try:
                    await asyncio.wait_for(kernel.process.wait(), 5)
                except TimeoutError:
                    kernel.process.kill()
                    await kernel.process.wait()
