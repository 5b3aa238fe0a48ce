"""A pod, from the bot's side: the namespaces, the tmpfs and the supervisor that one thread's kernel lives in.

A pod is started as ``[unshare <flags> --] python -I -S bootstrap.py FD`` (:mod:`bot.sandbox.local.bootstrap`)
and outlives its kernels: a kernel that dies, times out or is stopped to make room is replaced inside the same pod,
so the thread's files stay. Deleting the container closes the pod: the supervisor (the pid namespace's init) exits
and the kernel, its processes and the tmpfs go with it. Were the bot to die, the supervisor sees its socket close
and does the same.

The bot reaches the pod's files through ``/proc/<supervisor pid>/root`` (the pod's own mount namespace) and talks
to its kernel over unix sockets in the kernel's home there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.sandbox.base import SandboxSetupError
from bot.sandbox.local.isolation import Isolation

logger = logging.getLogger(__name__)

BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
SUPERVISOR_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


@dataclass(slots=True)
class Pod:
    """A running pod."""

    id: str
    dir: Path
    """The pod's directory (its tmpfs: the kernel's home, private /tmp, ...) as the pod sees it."""
    workdir: Path
    """The working directory as the pod sees it (the kernel's cwd)."""
    uid: int | None
    """The kernel's host uid (``None``: the bot's)."""
    gid: int | None
    proc: subprocess.Popen[bytes]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    host_pid: int
    root: Path
    """Where the bot reaches the pod's filesystem: ``/proc/<pid>/root``, or ``/`` without a mount namespace."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def home(self) -> Path:
        """The kernel's home as the pod sees it (sockets, connection file, caches)."""
        return self.dir / "home"

    def host(self, inside: Path) -> Path:
        """``inside`` (a path in the pod) as the bot reaches it."""
        return self.root / inside.relative_to("/")

    def alive(self) -> bool:
        """The supervisor is running (the pod, its files included, exists)."""
        return self.proc.poll() is None

    def log_tail(self, limit: int = 3000) -> str:
        """The end of the kernel's log (what it printed before failing to start)."""
        with contextlib.suppress(OSError):
            return self.host(self.dir / "kernel.log").read_bytes()[-limit:].decode(errors="replace")
        return ""

    async def request(self, cmd: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one command to the supervisor and wait for its answer."""
        async with self.lock:
            self.writer.write(json.dumps(cmd).encode() + b"\n")
            await self.writer.drain()
            line = await asyncio.wait_for(self.reader.readline(), timeout)
        if not line:
            raise ConnectionError("the pod's supervisor is gone")
        reply: dict[str, Any] = json.loads(line)
        return reply

    async def spawn(self, *, argv: list[str], env: dict[str, str], conn: dict[str, Any], conn_path: Path,
                    limits: list[tuple[str, int, int]], nice: int, timeout: float) -> int:
        """Start a kernel in the pod; returns its host pid (raises RuntimeError with the reason it did not start)."""
        reply = await self.request({"op": "spawn", "argv": argv, "env": env, "conn": conn,
                                    "conn_path": str(conn_path), "limits": limits, "nice": nice}, timeout)
        if not reply.get("ok"):
            raise RuntimeError(str(reply.get("error")))
        return int(reply["pid"])

    async def stop(self, timeout: float = 30.0) -> None:
        """Kill every process of the pod but the supervisor (the files stay)."""
        if self.alive():
            with contextlib.suppress(ConnectionError, OSError, asyncio.TimeoutError):
                await self.request({"op": "stop"}, timeout)

    async def close(self) -> None:
        """End the pod: its processes and its tmpfs go."""
        with contextlib.suppress(OSError, RuntimeError):
            self.writer.close()
        try:
            await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await asyncio.to_thread(self.proc.wait)


def _launch(argv: list[str], child: socket.socket, log: Path) -> subprocess.Popen[bytes]:
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=SUPERVISOR_ENV,
                                cwd="/", pass_fds=[child.fileno()], start_new_session=True)
    finally:
        os.close(out)


async def start_pod(isolation: Isolation, *, pod_id: str, pod_dir: Path, workdir: Path, log: Path,
                    ids: tuple[int, int] | None, timeout: float) -> Pod:
    """Start a pod whose kernel gets the host ids ``ids``; raises :class:`SandboxSetupError` when it cannot be built
    (the reason from the supervisor, or what ``unshare`` printed)."""
    uid, gid = ids if ids is not None else (None, None)
    inside_uid, inside_gid, group = isolation.inside_ids(uid, gid)
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    argv = [*isolation.argv(uid, gid), sys.executable, "-I", "-S", str(BOOTSTRAP), str(child.fileno())]
    try:
        proc = await asyncio.to_thread(_launch, argv, child, log)
    except OSError as exc:
        parent.close()
        raise SandboxSetupError(f"Could not start the sandbox: {exc}.") from exc
    finally:
        child.close()
    reader, writer = await asyncio.open_unix_connection(sock=parent)
    mounts = isolation.mounts
    setup = {"pod": str(pod_dir), "workdir": str(workdir), "mount_ns": isolation.mount_ns, "pid_ns": isolation.pid_ns,
             "readonly": True, "quota_mb": isolation.limits.quota_mb, "hide": list(mounts.hide),
             "hide_files": list(mounts.hide_files), "needed": list(mounts.needed), "uid": inside_uid,
             "gid": inside_gid, "group": group}
    writer.write(json.dumps(setup).encode() + b"\n")
    try:
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, TimeoutError):
        line = b""
    reply: dict[str, Any] = json.loads(line) if line.strip() else {}
    if not reply.get("ok"):
        writer.close()
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await asyncio.to_thread(proc.wait)
        printed = log.read_bytes()[-600:].decode(errors="replace").strip() if log.exists() else ""
        reason = reply.get("error") or printed or f"it exited with code {proc.returncode}"
        raise SandboxSetupError(f"The sandbox pod could not be built ({isolation.variant.name}): {reason}")
    host_pid = int(reply["pid"])
    root = Path(f"/proc/{host_pid}/root") if isolation.mount_ns else Path("/")
    return Pod(id=pod_id, dir=pod_dir, workdir=workdir, uid=uid, gid=gid, proc=proc, reader=reader, writer=writer,
               host_pid=host_pid, root=root)
