"""Working directories: the bot's directories on disk, and reading and writing a pod's files without following links.

The code in a kernel may plant symlinks and hard links; the bot never follows one: reads and uploads go through
directory file descriptors with ``O_NOFOLLOW`` on every component, and uploads are written to a temporary name and
renamed into place. Each bot process works in its own ``run-*`` (working directories) and ``dsk-*`` (pod
directories, logs) directories, locked while it lives; what a dead process left is removed by the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from bot.sandbox.base import SandboxError, SandboxFile, SandboxSetupError

logger = logging.getLogger(__name__)

LIVE_LOCK = ".live"
RUN_PREFIX, TEMP_BASE_PREFIX, RUNTIME_PREFIX = "run-", "datastory-local-", "dsk-"
SOCKET_PATH_MAX = 100
UPLOAD_TMP_PREFIX = ".upload-"
WRITE_BUFFER = 1024 * 1024


def claim_dir(parent: Path, prefix: str) -> tuple[Path, int]:
    """A fresh ``<prefix>*`` directory in ``parent`` for this process, and the fd of the ``flock`` that marks it
    live (held until the sandbox closes or the process dies). It is made and locked under a hidden name, then
    renamed: another bot's clean-up never sees it unlocked."""
    hidden = Path(tempfile.mkdtemp(prefix=f".{prefix}", dir=parent))
    fd = os.open(hidden / LIVE_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    path = parent / hidden.name[1:]
    os.rename(hidden, path)
    return path, fd


def remove_dead_dirs(parent: Path, prefix: str) -> None:
    """Remove this user's ``<prefix>*`` directories in ``parent`` whose lock no process holds: what a crashed or
    killed bot left behind. Live ones (other bots sharing the directory) keep their lock and stay; directories
    without a lock are not ours and stay too."""
    for path in parent.glob(f"{prefix}*"):
        try:
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
                continue
            fd = os.open(path / LIVE_LOCK, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
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


class RunDirs:
    """This process's directories: ``run-*`` (working directories) in the shared directory, or ``datastory-local-*``
    in the temp dir, and ``dsk-*`` (pods, logs) in the temp dir; each locked while the process lives."""

    def __init__(self, shared: Path | None) -> None:
        self.shared = shared
        self.base: Path | None = None
        self.runtime: Path | None = None
        self._locks: list[int] = []

    def claim(self) -> Path:
        """Blocking: remove what dead bots left, claim fresh directories; returns the runtime one."""
        temp = Path(tempfile.gettempdir())
        if self.shared is None:
            parent, prefix = temp, TEMP_BASE_PREFIX
        else:
            self.shared.mkdir(parents=True, exist_ok=True)
            st = os.lstat(self.shared)
            if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid():
                raise SandboxSetupError(f"The local sandbox directory must be a directory this user owns: "
                                        f"{self.shared} (set DATASTORY_LOCAL_DIR to another).")
            parent, prefix = self.shared, RUN_PREFIX
        # unix socket paths are short: the runtime directory falls back to /tmp when TMPDIR is long
        runtime_parent = temp if len(str(temp)) <= SOCKET_PATH_MAX - 60 else Path("/tmp")
        self.base = self._own(parent, prefix)
        self.runtime = self._own(runtime_parent, RUNTIME_PREFIX)
        for path in (self.shared, self.base, self.runtime):
            if path is not None:
                os.chmod(path, 0o711)  # kernels of other uids cross them (never list them)
        return self.runtime

    def _own(self, parent: Path, prefix: str) -> Path:
        remove_dead_dirs(parent, prefix)
        path, fd = claim_dir(parent, prefix)
        self._locks.append(fd)
        return path

    def check_reachable(self) -> None:
        """Kernels of other uids without a mount namespace must cross every directory above ours."""
        for path in (self.base, self.runtime):
            for parent in Path(path or "/").parents:
                if not os.stat(parent).st_mode & stat.S_IXOTH:
                    raise SandboxSetupError(
                        f"Kernel users cannot reach {path}: {parent} is not traversable by other users (o+x); "
                        "set DATASTORY_LOCAL_DIR (or TMPDIR) to a directory they can cross.")

    def remove(self) -> None:
        """Remove both directories (every working directory with them), then let go of their locks."""
        for path in (self.runtime, self.base):
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)
        while self._locks:
            os.close(self._locks.pop())


def sanitize_name(name: str) -> str:
    """A file name safe to create in a working directory, as close to ``name`` as possible.

    Path separators and NUL become ``_``; ``.``/``..``/empty become ``_``; overly long names are shortened
    (keeping the extension). Anything else, spaces, quotes and non-ASCII included, is kept.
    """
    clean = re.sub(r"[/\\\x00]", "_", name).strip()
    if clean in ("", ".", "..") or clean.startswith(UPLOAD_TMP_PREFIX):
        clean = "_" + clean.lstrip(".") if clean not in ("", ".", "..") else "_"
    while len(clean.encode()) > 240:
        stem, dot, ext = clean.rpartition(".")
        clean = (stem[:-1] + dot + ext) if dot and len(ext) < 16 and stem else clean[:-1]
    return clean


def check_file_id(file_id: str) -> list[str]:
    """The components of a file id (a relative path); raises :class:`SandboxError` for anything else."""
    parts = file_id.split("/")
    if not file_id or file_id.startswith("/") or "\x00" in file_id or any(p in ("", ".", "..") for p in parts):
        raise SandboxError(f"The file is not in the container: {file_id!r}")
    return parts


def open_beneath(root: Path, parts: list[str]) -> int:
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


def read_file(root: Path, file_id: str, *, kernel_uid: int | None) -> bytes:
    """Read ``root/file_id`` without following symlinks; with a kernel user of its own (``kernel_uid``), a file
    with several links must be that user's (a hard link to a file the bot may read but the kernel may not is
    refused)."""
    parts = check_file_id(file_id)
    try:
        fd = open_beneath(root, parts)
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


def delete_file(root: Path, file_id: str) -> None:
    """Remove ``root/file_id`` without following any symlink on the way; a file already gone is fine."""
    parts = check_file_id(file_id)
    flags_dir = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root, flags_dir)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, flags_dir, dir_fd=fd)
            os.close(fd)
            fd = nxt
        os.unlink(parts[-1], dir_fd=fd)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise SandboxError(f"The file could not be deleted: {file_id!r}") from exc
    finally:
        os.close(fd)


def walk(root: Path, inside: Path, user_files: set[str]) -> list[SandboxFile]:
    """Every regular file under ``root`` (symlinks and special files skipped), with paths as the pod sees them
    (under ``inside``)."""
    found: list[SandboxFile] = []
    top = str(root)
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        dirnames.sort()
        for fname in sorted(filenames):
            if dirpath == top and fname.startswith(UPLOAD_TMP_PREFIX):
                continue
            full = os.path.join(dirpath, fname)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            rel = os.path.relpath(full, top)
            source = "user" if rel in user_files else "assistant"
            found.append(SandboxFile(id=rel, path=str(inside / rel), size=st.st_size, source=source,
                                     created_at=st.st_mtime))
    return found


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


async def write_chunks(fd: int, chunks: AsyncIterator[bytes], name: str, size: int | None) -> int:
    """Write ``chunks`` to ``fd`` in pieces of about 1 MiB (constant memory); checks the declared ``size``."""
    written = 0
    buffer = bytearray()
    async for chunk in chunks:
        written += len(chunk)
        if size is not None and written > size:
            raise ValueError(f"upload of {name!r} exceeds its declared size of {size} bytes")
        buffer += chunk
        if len(buffer) >= WRITE_BUFFER:
            await asyncio.to_thread(_write_all, fd, bytes(buffer))
            buffer.clear()
    if buffer:
        await asyncio.to_thread(_write_all, fd, bytes(buffer))
    if size is not None and written != size:
        raise ValueError(f"upload of {name!r} has {written} bytes, {size} were declared")
    return written


def _give_to_kernel(fd: int, uid: int | None, gid: int | None) -> None:
    """Make an uploaded file the kernel's (root), or readable by it (another user cannot give files away)."""
    if uid is not None and gid is not None and os.geteuid() == 0:
        os.fchown(fd, uid, gid)
    elif uid is not None:
        os.fchmod(fd, 0o644)  # only the kernel and the bot can reach the pod's files


async def upload(root: Path, clean: str, chunks: AsyncIterator[bytes], *, name: str, size: int | None,
                 owner: tuple[int | None, int | None], still_there: Callable[[], object]) -> int:
    """Stream ``chunks`` into ``root/clean`` (written to a temporary name, then renamed; no link followed);
    ``still_there`` raises when the container went away meanwhile. Returns the bytes written."""
    dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    tmp = f"{UPLOAD_TMP_PREFIX}{secrets.token_hex(6)}.part"
    renamed = False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        try:
            written = await write_chunks(fd, chunks, name, size)
            _give_to_kernel(fd, *owner)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise SandboxError(f"No room left for {name!r} in the thread's sandbox (its quota is full).") from exc
            raise
        finally:
            os.close(fd)
        still_there()
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
    return written
