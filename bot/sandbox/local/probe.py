"""Finding how kernels can be isolated on this machine, by starting real pods (and saying why not, with the fix).

The variants are tried from the strongest: as root, namespaces with host uids; as another user, a user namespace
whose kernel id is one of the user's subordinate ids (``newuidmap``), then one that maps only the user (relaxed),
then no namespaces at all (relaxed). ``strict`` takes only a variant where kernels have no network and a uid of
their own, and otherwise refuses with what is missing and how to provide it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from bot.sandbox.base import SandboxSetupError
from bot.sandbox.local import ids as idmod
from bot.sandbox.local.cgroups import Cgroups
from bot.sandbox.local.isolation import (
    PLAIN,
    PLAIN_ROOT,
    ROOT,
    SUBORDINATE,
    USER_NAMESPACE,
    Isolation,
    Limits,
    Mode,
    Variant,
)
from bot.sandbox.local.mounts import blocked_ancestor, mount_plan, sensitive_paths
from bot.sandbox.local.pod import start_pod

logger = logging.getLogger(__name__)

RELAXED_HINT = "set DATASTORY_LOCAL_ISOLATION=relaxed to accept weaker isolation"
CONTAINER_FIX = ("in a container, start it with `--cap-add SYS_ADMIN --security-opt seccomp=unconfined "
                 "--security-opt apparmor=unconfined --security-opt systempaths=unconfined`")
USERNS_FIX = ("allow unprivileged user namespaces (sysctl user.max_user_namespaces > 0; "
              "kernel.unprivileged_userns_clone=1 on Debian kernels; kernel.apparmor_restrict_unprivileged_userns=0 "
              "on Ubuntu), or run the bot as root")


@dataclass(frozen=True, slots=True)
class Probed:
    """The chosen isolation and the id range kernels take ids from."""

    isolation: Isolation
    ids: idmod.IdRange | None


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def _prerequisite(variant: Variant) -> tuple[idmod.IdRange | None, str | None]:
    """The ids the variant would use, or why it cannot be tried here (with the fix)."""
    if variant.flags and shutil.which("unshare") is None:
        return None, "the `unshare` command is missing (fix: install util-linux)"
    if variant.identity == "host":
        ids = idmod.host_range()
        hi = ids.uid + ids.count
        if not (idmod.id_range_mapped("/proc/self/uid_map", ids.uid, hi)
                and idmod.id_range_mapped("/proc/self/gid_map", ids.gid, hi)):
            return None, (f"{ids.describe()} are not mapped in the user namespace the bot runs in (fix: run it "
                          "with a full id map, e.g. a container without user-namespace remapping)")
        blocked = [b for b in map(blocked_ancestor, (Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()))
                   if b is not None]
        if not variant.flags and blocked:  # without a mount namespace nothing can put the interpreter back
            return None, (f"the interpreter {sys.executable} is not readable by kernel users: {blocked[0]} is not "
                          "traversable (fix: run the bot from a Python other users can read, e.g. "
                          "`/usr/bin/python3 -m venv`, or allow namespaces)")
        return ids, None
    if variant.identity == "subordinate":
        missing = [tool for tool in ("newuidmap", "newgidmap") if shutil.which(tool) is None]
        if missing:
            return None, f"{' and '.join(missing)} are missing (fix: install the `uidmap` package)"
        user = _user()
        found = idmod.subordinate_range(user, os.geteuid())
        if found is None:
            return None, (f"user {user} has no subordinate ids in /etc/subuid and /etc/subgid (fix, as root: "
                          f"`usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}`)")
        return found, None
    return None, None


def _failure_fix(variant: Variant, error: str) -> str:
    fix = CONTAINER_FIX if variant.identity == "host" else USERNS_FIX
    return f"{variant.name} did not start: {error} (fix: {fix})"


async def _try(isolation: Isolation, ids: idmod.IdRange | None, scratch: Path, timeout: float) -> str | None:
    """Start and close one real pod; ``None`` when it worked, else the reason."""
    pod_dir = scratch / "probe-pod"
    workdir = scratch / "probe-work"
    for path in (pod_dir, workdir):
        path.mkdir(mode=0o711, exist_ok=True)
    # No kernel starts: ids only where the pod's user namespace maps them (none is locked, none is used).
    first = (ids.uid, ids.gid) if ids is not None and isolation.variant.identity == "subordinate" else None
    try:
        pod = await start_pod(isolation, pod_id="probe", pod_dir=pod_dir, workdir=workdir,
                              log=scratch / "probe.log", ids=first, timeout=timeout)
    except SandboxSetupError as exc:
        return str(exc)
    finally:
        for path in (pod_dir, workdir):
            with contextlib.suppress(OSError):
                path.rmdir()
    await pod.close()
    return None


def candidates() -> list[Variant]:
    """The variants to try here, strongest first."""
    if os.geteuid() == 0:
        return [ROOT, PLAIN_ROOT]
    return [SUBORDINATE, USER_NAMESPACE, PLAIN]


async def probe(*, mode: Mode, limits: Limits, max_kernels: int, protect: list[Path], cgroups: Cgroups,
                scratch: Path, timeout: float = 30.0) -> Probed:
    """The strongest isolation that works here; raises :class:`SandboxSetupError` when ``strict`` cannot have it."""
    missing: list[str] = []
    reasons: list[str] = []
    sensitive = sensitive_paths(protect)
    for variant in candidates():
        if mode == "strict" and not variant.strict:
            continue
        ids, reason = _prerequisite(variant)
        if reason is None:
            isolation = Isolation(mode=mode, variant=variant, ids=ids,
                                  mounts=mount_plan(sensitive, other_user=variant.identity != "shared"),
                                  limits=limits, max_kernels=max_kernels, cgroup=None, cgroup_note="",
                                  unshare=shutil.which("unshare") or "unshare")
            reason = await _try(isolation, ids, scratch, timeout)
            if reason is None:
                cgroups.prepare()
                parent = str(cgroups.parent) if cgroups.parent is not None else None
                return Probed(replace(isolation, missing=tuple(missing), cgroup=parent, cgroup_note=cgroups.note),
                              ids)
            reason = _failure_fix(variant, reason)
        (missing if variant.strict else reasons).append(reason)
        logger.info("local sandbox: %s is not available: %s", variant.name, reason)
    if mode == "strict":
        raise SandboxSetupError(
            "The local sandbox cannot give every kernel no network and a uid of its own on this machine "
            f"(DATASTORY_LOCAL_ISOLATION=strict): {'; '.join(missing)}. Or {RELAXED_HINT}.")
    raise SandboxSetupError(f"The local sandbox cannot run kernels on this machine: {'; '.join(missing + reasons)}.")
