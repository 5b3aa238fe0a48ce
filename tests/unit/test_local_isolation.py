"""The local sandbox's isolation plan, without starting kernels: what is hidden, what is protected, the cgroups.

The kernels themselves are in ``tests/unit/test_local_sandbox.py`` and the attacks on them in
``tests/contract/test_sandbox_hostile.py``.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from bot.backends import protected_paths
from bot.config import Settings
from bot.sandbox.local.cgroups import Cgroups
from bot.sandbox.local.mounts import mount_plan


def test_the_mount_plan_hides_what_is_sensitive_never_the_installation(tmp_path: Path) -> None:
    home = Path(tempfile.mkdtemp(dir=Path.home()))
    try:
        workdir, db_dir = home / "work", home / "data"
        for path in (workdir, db_dir):
            path.mkdir()
        (db_dir / "bot.db").write_bytes(b"")
        purelib = Path(sysconfig.get_paths()["purelib"])
        plan = mount_plan([workdir, db_dir / "bot.db", workdir / ".env", purelib, Path("/etc/hostname")],
                          needed=[Path(sys.prefix), Path(sys.base_prefix)], other_user=False)
        hidden = [Path(h) for h in plan.hide]
        assert workdir.resolve() in hidden and db_dir.resolve() in hidden
        assert not any(h == purelib.resolve() or h in purelib.resolve().parents for h in hidden
                       if h not in (workdir.resolve(), db_dir.resolve()))
        assert plan.hide_files == ("/etc/hostname",)  # a file in a system directory is covered by itself
        assert str(Path(sys.prefix).resolve()) in plan.needed
    finally:
        shutil.rmtree(home, ignore_errors=True)


def test_the_database_wherever_configured_and_env_are_protected() -> None:
    paths = protected_paths(Settings(_env_file=None, database_url="sqlite:////srv/x/bot.db"))  # type: ignore[call-arg]
    assert set(paths) == {Path(".env").absolute(), Path("/srv/x/bot.db"), Path("/srv/x/bot.db-wal"),
                          Path("/srv/x/bot.db-shm"), Path("/srv/x/bot.db-journal")}
    paths = protected_paths(Settings(_env_file=None, database_url="postgresql://u@db/x"))  # type: ignore[call-arg]
    assert paths == (Path(".env").absolute(),)


def test_cgroup_v2_limits_per_pod_and_the_reason_when_there_are_none(tmp_path: Path) -> None:
    root, proc = tmp_path / "cgroup", tmp_path / "self-cgroup"
    own = root / "system.slice" / "bot.service"
    own.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu io memory pids\n")
    (own / "cgroup.controllers").write_text("memory pids\n")
    proc.write_text("0::/system.slice/bot.service\n")
    cgroups = Cgroups(root=root, self_cgroup=proc)
    cgroups.prepare()
    assert cgroups.parent == own / f"datastory-pods-{os.getpid()}" and cgroups.note == ""
    assert (own / "datastory-bot" / "cgroup.procs").read_text() == str(os.getpid())
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids"
    cgroups.attach("pod-1", 4242, memory_mb=512, max_processes=16)
    group = cgroups.parent / "pod-1"
    assert (group / "memory.max").read_text() == str(512 * 1024 * 1024)
    assert (group / "pids.max").read_text() == "17" and (group / "cgroup.procs").read_text() == "4242"
    proc.write_text("0::/system.slice/bot.service/datastory-bot\n")  # where the first sandbox moved this process
    second = Cgroups(root=root, self_cgroup=proc)
    second.prepare()
    assert second.parent == cgroups.parent
    (own / "cgroup.controllers").write_text("cpu\n")
    missing = Cgroups(root=root, self_cgroup=proc)
    missing.prepare()
    assert missing.parent is None and "memory, pids controller(s) are not delegated" in missing.note
    v1 = Cgroups(root=tmp_path / "v1", self_cgroup=proc)
    v1.prepare()
    assert v1.parent is None and "no cgroup v2 hierarchy" in v1.note
