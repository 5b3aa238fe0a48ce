"""Kernel identities: uid/gid pairs no account and no other kernel uses, shared safely between bot processes.

As root, kernels take host uids from a range no account uses (``200000``-``209999``). As another user, they take
that user's subordinate ids (``/etc/subuid`` and ``/etc/subgid``, mapped into each pod's user namespace by
``newuidmap``/``newgidmap``). Either way an id is ours while we hold an ``flock`` on ``<lock dir>/<uid>``: two bots
on one host never hand out the same id, and the lock dies with the process, so a crashed bot's ids become free.
"""

from __future__ import annotations

import fcntl
import grp
import os
import pwd
import secrets
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bot.sandbox.base import SandboxSetupError, SandboxUnavailable

HOST_ID_BASE = 200_000
HOST_ID_SPAN = 10_000


@dataclass(frozen=True, slots=True)
class IdRange:
    """``count`` uids from ``uid`` and as many gids from ``gid`` (host ids)."""

    uid: int
    gid: int
    count: int

    def describe(self) -> str:
        """``uids 100000-165535, gids 100000-165535``."""
        return (f"uids {self.uid}-{self.uid + self.count - 1}, gids {self.gid}-{self.gid + self.count - 1}")


def subordinate_range(user: str, uid: int, *, subuid: Path = Path("/etc/subuid"),
                      subgid: Path = Path("/etc/subgid")) -> IdRange | None:
    """The first subordinate uid and gid ranges of ``user`` (by name or uid), or ``None`` when it has none."""
    def first(path: Path) -> tuple[int, int] | None:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            return None
        for line in lines:
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[0] in (user, str(uid)) and parts[1].isdigit() and parts[2].isdigit():
                return int(parts[1]), int(parts[2])
        return None

    uids, gids = first(subuid), first(subgid)
    if uids is None or gids is None:
        return None
    return IdRange(uid=uids[0], gid=gids[0], count=min(uids[1], gids[1]))


def host_range() -> IdRange:
    """The host uid/gid range root gives kernels."""
    return IdRange(uid=HOST_ID_BASE, gid=HOST_ID_BASE, count=HOST_ID_SPAN)


def id_range_mapped(path: str, lo: int, hi: int) -> bool:
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


def lock_dir() -> Path:
    """A directory only this user can write, the same for every bot process of the user on the host."""
    euid = os.geteuid()
    parents = (Path("/run"), Path(tempfile.gettempdir())) if euid == 0 else (Path(tempfile.gettempdir()),)
    for parent in parents:
        path = parent / ("datastory-sandbox-uids" if euid == 0 else f"datastory-sandbox-ids-{euid}")
        try:
            path.mkdir(mode=0o700, exist_ok=True)
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and st.st_uid == euid and not st.st_mode & 0o077:
            return path
    raise SandboxSetupError(f"No safe directory for the sandbox's id locks in {' or '.join(map(str, parents))} "
                            "(it must be a directory of this user, mode 0700): remove or fix it.")


class IdPool:
    """Hands out ``(uid, gid)`` pairs of ``ids`` (host ids), one per pod, locked across processes."""

    def __init__(self, ids: IdRange, locks: Path) -> None:
        taken_uids = {p.pw_uid for p in pwd.getpwall()}
        taken_gids = {g.gr_gid for g in grp.getgrall()}
        self._candidates = [i for i in range(ids.count)
                            if ids.uid + i not in taken_uids and ids.gid + i not in taken_gids]
        if not self._candidates:
            raise SandboxSetupError(f"Every id of {ids.describe()} belongs to an account: the sandbox has none left.")
        self._cursor = secrets.randbelow(len(self._candidates))
        self._held: dict[int, int] = {}
        self._locks = locks
        self.ids = ids

    def allocate(self) -> tuple[int, int]:
        """A free pair (held until :meth:`release`)."""
        for _ in range(len(self._candidates)):
            offset = self._candidates[self._cursor % len(self._candidates)]
            self._cursor += 1
            uid = self.ids.uid + offset
            if uid in self._held:
                continue
            fd = os.open(self._locks / str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self._held[uid] = fd
            return uid, self.ids.gid + offset
        raise SandboxUnavailable(f"No free sandbox id left in {self.ids.describe()}: too many local kernels at once.")

    def release(self, uid: int) -> None:
        """Give ``uid`` back."""
        fd = self._held.pop(uid, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        """Give every held id back."""
        for uid in list(self._held):
            self.release(uid)
