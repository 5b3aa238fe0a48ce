"""The program that runs first inside a local sandbox pod: it builds the pod, then supervises its kernels.

Run by path (``python -I -S bootstrap.py FD``) by :mod:`bot.sandbox.local.pod`, usually inside fresh namespaces
(``unshare``). Standard library only: it starts before anything else, and the project's source tree may be hidden
from the pod once it has built the filesystem. ``FD`` is a stream socket to the bot that carries one JSON object per
line: first the set-up (answered ``{"ok": true, "pid": <host pid>}``), then commands:

- ``spawn``: fork a kernel (limits, its own uid/gid, no capabilities, ``no_new_privs``), answered with its host pid;
- ``stop``: kill every process of the pod but this one (the files stay), answered when they are gone.

When the bot goes away (end of file on the socket), every process of the pod is killed and this one exits; as the
pid namespace's init, its exit takes the pod (and its tmpfs) with it.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import select
import signal
import socket
import sys
from typing import Any

MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 8192, 0x4000, 1 << 18
AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = -100, 0x8000, 1
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (new syscalls share one table)
PR_SET_PDEATHSIG, PR_SET_SECUREBITS, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_SET_CHILD_SUBREAPER = 1, 28, 24, 38, 36
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
SECURE_NOROOT_ALL = 0x2F
"""NOROOT, NO_SETUID_FIXUP and KEEP_CAPS_LOCKED, all locked: uid 0 inside a user namespace gains nothing on exec."""
PRIVATE_DIRS = (("/tmp", "tmp"), ("/var/tmp", "vartmp"), ("/dev/shm", "shm"))
HOME_DIRS = ("mpl", "ipython", "runtime")

libc = ctypes.CDLL(None, use_errno=True)


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), what)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    """mount(2); raises OSError naming the target."""
    _check(libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(), flags,
                      data and data.encode()), target)


def prctl(option: int, arg: int = 0) -> None:
    """prctl(2); raises OSError."""
    _check(libc.prctl(option, arg, 0, 0, 0), f"prctl {option}")


def make_host_read_only() -> None:
    """Every mount inherited from the host becomes read-only (mounts made afterwards stay writable)."""
    attr = MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    _check(libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr)),
           "mount_setattr /")


def cover(target: str, source: str | None, needed: list[str], stage: str) -> None:
    """Cover the directory ``target`` with ``source`` (bound) or a small empty tmpfs, putting back the ``needed``
    paths (the Python installation) that lie inside it."""
    inside = [p for p in needed if p == target or p.startswith(target.rstrip("/") + "/")]
    staged = []
    for path in inside:
        spot = os.path.join(stage, str(len(os.listdir(stage))))
        os.mkdir(spot, 0o700)
        mount(path, spot, None, MS_BIND | MS_REC)
        staged.append((spot, path))
    if source is None:
        mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k")
    else:
        mount(source, target, None, MS_BIND)
    for spot, path in staged:
        os.makedirs(path, exist_ok=True)
        mount(spot, path, None, MS_MOVE)
        os.rmdir(spot)


class Pod:
    """The supervisor's state: the set-up it was given and the kernels it runs."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        self.pod: str = cfg["pod"]
        self.workdir: str = cfg["workdir"]
        self.uid: int | None = cfg["uid"]
        self.gid: int | None = cfg["gid"]
        self.group: int = cfg["group"]
        self.own_pid_ns = bool(cfg["pid_ns"])
        self.host_proc: int | None = None
        self.kernel_pgid: int | None = None

    # ------------------------------------------------------------------------------------------- set-up

    def build(self) -> int:
        """Build the pod's filesystem; returns this process's pid as the host sees it."""
        if self.own_pid_ns:
            self.host_proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY)
        host_pid = int(os.readlink("self", dir_fd=self.host_proc)) if self.host_proc is not None else os.getpid()
        os.umask(0o022)
        if self.cfg["mount_ns"]:
            self._build_namespace()
        else:
            self._build_in_place()
        return host_pid

    def _own(self, path: str, mode: int) -> None:
        """``path`` belongs to the kernel's uid, with the bot's group (which gets group access to what the kernel
        writes: the set-gid bit passes the group on)."""
        if self.uid is not None:
            os.chown(path, self.uid, self.group)
        os.chmod(path, mode)

    def _layout(self, root: str) -> None:
        """The kernel's home (sockets, connection file, caches) and, in the pod's tmpfs, its other directories."""
        home = os.path.join(root, "home")
        os.makedirs(home, exist_ok=True)
        self._own(home, 0o2770)
        for sub in HOME_DIRS:
            os.mkdir(os.path.join(home, sub))
            self._own(os.path.join(home, sub), 0o2770)
        fd = os.open(os.path.join(root, "kernel.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)

    def _build_in_place(self) -> None:
        """No mount namespace: the kernel works in the host directories the bot made (what a supervisor that was
        killed left running under the kernel's uid goes first)."""
        self._kill_uid()
        os.makedirs(os.path.join(self.pod, "tmp"), exist_ok=True)
        self._own(os.path.join(self.pod, "tmp"), 0o2770)
        self._layout(self.pod)
        self._own(self.workdir, 0o2770)

    def _build_namespace(self) -> None:
        """Own mount namespace: host read-only, one tmpfs (with the quota) for everything the kernel may write,
        sensitive directories hidden, private /tmp, /var/tmp and /dev/shm, a /proc of the pod's own processes."""
        cfg = self.cfg
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        if cfg["readonly"]:
            make_host_read_only()
        size = f",size={cfg['quota_mb']}m" if cfg["quota_mb"] else ""
        mount("tmpfs", self.pod, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0711{size}")
        tmpfs = os.open(self.pod, os.O_RDONLY | os.O_DIRECTORY)
        for sub in ("data", "stage", *(name for _target, name in PRIVATE_DIRS)):
            os.mkdir(os.path.join(self.pod, sub), 0o700)
        self._own(os.path.join(self.pod, "data"), 0o2770)
        for _target, name in PRIVATE_DIRS:
            os.chmod(os.path.join(self.pod, name), 0o1777)
        self._layout(self.pod)
        empty = os.path.join(self.pod, "empty")
        os.close(os.open(empty, os.O_WRONLY | os.O_CREAT, 0o444))
        source, needed = f"/proc/self/fd/{tmpfs}", cfg["needed"]
        stage = f"{source}/stage"  # reachable whatever gets covered (the pod directory may lie under /tmp)
        for hide in cfg["hide"]:
            cover(hide, None, needed, stage)
        for path in cfg["hide_files"]:
            if os.path.isfile(path):
                mount(f"{source}/empty", path, None, MS_BIND)
        for target, name in PRIVATE_DIRS:
            if os.path.isdir(target):
                cover(target, f"{source}/{name}", needed, stage)
        for path, sub in ((self.workdir, "/data"), (self.pod, "")):
            os.makedirs(path, exist_ok=True)
            st, top = os.stat(path), os.fstat(tmpfs)
            if sub or (st.st_dev, st.st_ino) != (top.st_dev, top.st_ino):
                mount(f"{source}{sub}", path, None, MS_BIND)
        os.close(tmpfs)
        if self.own_pid_ns:
            mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)

    # ------------------------------------------------------------------------------------------- kernels

    def spawn(self, cmd: dict[str, Any]) -> int:
        """Fork the kernel; returns its host pid once it is about to exec (or raises with the reason it failed)."""
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the kernel
            os.close(read_end)
            try:
                self._become_kernel(cmd, write_end)
            except BaseException as exc:  # anything: report it, never return into the supervisor's loop
                with _suppress():
                    os.write(write_end, f"\nERR {type(exc).__name__}: {exc}".encode())
            os._exit(127)
        os.close(write_end)
        self.kernel_pgid = pid
        chunks = []
        while chunk := os.read(read_end, 4096):
            chunks.append(chunk)
        os.close(read_end)
        text = b"".join(chunks).decode(errors="replace")
        head, _, error = text.partition("\nERR ")
        if error or not head.strip().isdigit():
            raise RuntimeError(error or "the kernel exited before it started")
        return int(head)

    def _become_kernel(self, cmd: dict[str, Any], report: int) -> None:
        os.setsid()
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        log = os.open(os.path.join(self.pod, "kernel.log"), os.O_WRONLY | os.O_APPEND)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        if cmd["nice"]:
            os.nice(cmd["nice"])
        for name, soft, hard in cmd["limits"]:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        self._drop_privileges()
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        os.umask(0o007)
        os.chdir(self.workdir)
        conn = os.open(cmd["conn_path"], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.write(conn, json.dumps(cmd["conn"]).encode())
        os.close(conn)
        host_pid = os.readlink("self", dir_fd=self.host_proc) if self.host_proc is not None else str(os.getpid())
        os.write(report, host_pid.encode())
        os.execve(cmd["argv"][0], cmd["argv"], cmd["env"])

    def _drop_privileges(self) -> None:
        """No new privileges, the pod's kernel uid/gid (no supplementary groups), and no capabilities on exec."""
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        if self.uid is not None and self.gid is not None:
            os.setgroups([])
            os.setgid(self.gid)
            os.setuid(self.uid)
            if 0 in (os.getuid(), os.geteuid(), os.getgid(), os.getegid()):
                raise PermissionError("could not drop privileges")
        elif os.geteuid() == 0:  # a user namespace that maps only the bot: stay uid 0 there, with no capabilities
            prctl(PR_SET_SECUREBITS, SECURE_NOROOT_ALL)
            last = int(open("/proc/sys/kernel/cap_last_cap").read()) if os.path.exists(
                "/proc/sys/kernel/cap_last_cap") else 40
            for cap in range(last + 1):
                prctl(PR_CAPBSET_DROP, cap)
        with _suppress():
            prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)

    def stop(self) -> int:
        """Kill every process of the pod but this one and reap them; returns how many were reaped."""
        if self.own_pid_ns:
            with _suppress():
                os.kill(-1, signal.SIGKILL)  # as the pid namespace's init: everyone else in it, atomically
        else:
            self._kill_children()
        reaped = 0
        while True:
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
            reaped += 1
            if not self.own_pid_ns:
                self._kill_children()
        self.kernel_pgid = None
        return reaped

    def _kill_children(self) -> None:
        """Without a pid namespace: the kernel's group, every process of its own uid (as root), and every child
        that was reparented to us (we are a subreaper)."""
        if self.kernel_pgid is not None:
            with _suppress():
                os.killpg(self.kernel_pgid, signal.SIGKILL)
        self._kill_uid()
        me = str(os.getpid())
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with _suppress():
                    status = open(f"/proc/{entry}/status").read()
                    if f"\nPPid:\t{me}\n" in status:
                        os.kill(int(entry), signal.SIGKILL)

    def _kill_uid(self) -> None:
        """As root with a kernel uid of its own: every process of that uid, atomically (``kill(-1)`` as it)."""
        if self.uid is None or os.geteuid() != 0:
            return
        pid = os.fork()
        if pid == 0:
            with _suppress():
                os.setgroups([])
                os.setgid(self.gid or self.uid)
                os.setuid(self.uid)
                os.kill(-1, signal.SIGKILL)
            os._exit(0)
        os.waitpid(pid, 0)

    def reap(self) -> None:
        """Collect exited children (kernels and whatever the pid namespace reparented to us)."""
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return


class _suppress:
    """``contextlib.suppress(OSError)`` without importing contextlib (start-up time)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, OSError)


def serve(sock: socket.socket, pod: Pod) -> None:
    """Answer commands until the bot closes the socket; then kill the pod's processes."""
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    buffer = b""
    while True:
        ready, _, _ = select.select([sock.fileno(), wake_r], [], [])
        if wake_r in ready:
            with _suppress():
                os.read(wake_r, 512)
            pod.reap()
        if sock.fileno() not in ready:
            continue
        data = sock.recv(65536)
        if not data:
            pod.stop()
            return
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            sock.sendall(json.dumps(handle(pod, json.loads(line))).encode() + b"\n")


def handle(pod: Pod, cmd: dict[str, Any]) -> dict[str, Any]:
    """One command's answer."""
    try:
        if cmd["op"] == "spawn":
            return {"ok": True, "pid": pod.spawn(cmd)}
        if cmd["op"] == "stop":
            return {"ok": True, "reaped": pod.stop()}
        return {"ok": False, "error": f"unknown command {cmd['op']!r}"}
    except Exception as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def read_line(sock: socket.socket) -> bytes:
    """The first line (the set-up), read byte-exactly so nothing after it is consumed."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise SystemExit(0)
        line += chunk
    return line


def main() -> None:
    """Build the pod from the set-up on the socket, say ready, serve."""
    sock = socket.socket(fileno=int(sys.argv[1]))
    os.set_inheritable(sock.fileno(), False)
    with _suppress():
        prctl(PR_SET_CHILD_SUBREAPER, 1)
    pod = Pod(json.loads(read_line(sock)))
    try:
        host_pid = pod.build()
    except Exception as exc:
        sock.sendall(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}).encode() + b"\n")
        raise SystemExit(1) from None
    sock.sendall(json.dumps({"ok": True, "pid": host_pid}).encode() + b"\n")
    serve(sock, pod)


if __name__ == "__main__":
    main()
