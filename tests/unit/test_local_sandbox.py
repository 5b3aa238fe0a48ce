"""The ``local`` sandbox backend beyond the shared contract: execution, timeouts, the warm pool, the cap on live
kernels, start-up failures and the isolation plan.

One backend (real kernels, a pool of two) is shared by the module, so every test runs on the module's event loop;
each test takes its own container. Hostile code is in ``tests/contract/test_sandbox_hostile.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.sandbox.base import ContainerNotFound, ExecResult, SandboxError, SandboxSetupError, SandboxUnavailable
from bot.sandbox.local import PROJECT_ROOT, LocalSandbox, sanitize_name

pytestmark = pytest.mark.asyncio(loop_scope="module")

PREFIX = "dstest-local-"
MAX_FILE_MB = 16


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[LocalSandbox]:
    base = Path(tempfile.mkdtemp(prefix="dstest-local-unit-"))
    backend = LocalSandbox(base_dir=base, pool_size=2, memory_mb=2048, cpu_seconds=300, max_file_mb=MAX_FILE_MB,
                           max_processes=48, interrupt_grace_seconds=1.5)
    try:
        await backend.start()
        yield backend
    finally:
        await backend.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest_asyncio.fixture(loop_scope="module")
async def cid(sandbox: LocalSandbox) -> AsyncIterator[str]:
    info = await sandbox.create(name=PREFIX + "t", idle_minutes=5)
    try:
        yield info.id
    finally:
        await sandbox.delete(info.id)


async def run(sandbox: LocalSandbox, cid: str, code: str, timeout: float = 30.0) -> ExecResult:
    return await sandbox.execute(cid, code, timeout=timeout)


async def ok(sandbox: LocalSandbox, cid: str, code: str, timeout: float = 30.0) -> str:
    result = await run(sandbox, cid, code, timeout)
    assert result.ok, result
    return result.stdout


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def chunks_of(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    block = (bytes(range(256)) * (size // 256 + 1))[:size]
    sent = 0
    while sent < total:
        piece = block[: min(size, total - sent)]
        sent += len(piece)
        yield piece


# ------------------------------------------------------------------------------------------------ execution


async def test_state_persists_and_errors_are_clean(sandbox: LocalSandbox, cid: str) -> None:
    assert await ok(sandbox, cid, "x = 21\nprint('set')") == "set\n"
    assert await ok(sandbox, cid, "x * 2") == "42\n"
    code = "df = pd.DataFrame({'a': [1, 2, 3]})\nprint(int(df.a.sum()), plt.get_backend().lower())"
    assert await ok(sandbox, cid, code) == "6 agg\n"
    failed = await run(sandbox, cid, "import sys\nprint('before')\nprint('oops', file=sys.stderr)\n1/0")
    assert failed.stdout == "before\n" and failed.stderr == "oops\n"
    assert failed.error is not None and failed.error.startswith("ZeroDivisionError: division by zero")
    assert "\x1b" not in failed.error and "1/0" in failed.error
    assert not failed.ok and not failed.timed_out and not failed.restarted
    assert await ok(sandbox, cid, "import os\nprint(os.getcwd())") == f"{sandbox.base_dir / cid}\n"


async def test_files_written_by_code_are_assistant_files(sandbox: LocalSandbox, cid: str) -> None:
    uploaded = await sandbox.upload(cid, name="sales.csv", chunks=chunks_of(1000, 100), size=None)
    assert uploaded.source == "user" and uploaded.id == "sales.csv"
    await ok(sandbox, cid, "plt.plot([1, 3, 2]); plt.savefig('chart.png')\n"
                           "import os; os.makedirs('out', exist_ok=True); open('out/summary.txt', 'w').write('hi')")
    files = {f.id: f for f in await sandbox.list_files(cid)}
    assert set(files) == {"sales.csv", "chart.png", "out/summary.txt"}
    assert files["sales.csv"].source == "user"
    assert files["chart.png"].source == "assistant" and files["out/summary.txt"].source == "assistant"
    assert files["chart.png"].path == str(sandbox.base_dir / cid / "chart.png")
    png = await sandbox.read_file(cid, "chart.png")
    assert png.startswith(b"\x89PNG") and len(png) == files["chart.png"].size
    assert await sandbox.read_file(cid, "out/summary.txt") == b"hi"
    for bad in ("../" + cid + "/chart.png", "/etc/passwd", "missing.png", "out"):
        with pytest.raises(SandboxError) as err:
            await sandbox.read_file(cid, bad)
        assert not isinstance(err.value, ContainerNotFound)


async def test_large_upload_streams_in_constant_memory(sandbox: LocalSandbox, cid: str) -> None:
    total = 40 * 1024 * 1024 + 123
    digest = hashlib.sha256()
    async for piece in chunks_of(total):
        digest.update(piece)
    tracemalloc.start()
    try:
        uploaded = await sandbox.upload(cid, name="big data.csv", chunks=chunks_of(total), size=total)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024, f"upload held {peak} bytes"
    assert uploaded.size == total and uploaded.name == "big data.csv"
    seen = await ok(sandbox, cid, "import hashlib\nprint(hashlib.sha256(open('big data.csv','rb').read()).hexdigest())")
    assert seen.strip() == digest.hexdigest()
    with pytest.raises(ValueError, match="declared"):
        await sandbox.upload(cid, name="short.csv", chunks=chunks_of(10), size=11)
    assert {f.id for f in await sandbox.list_files(cid)} == {"big data.csv"}


async def test_upload_names_are_sanitized(sandbox: LocalSandbox, cid: str) -> None:
    assert sanitize_name('ventes "été" 2024.csv') == 'ventes "été" 2024.csv'
    assert sanitize_name("..") == "_" and sanitize_name("") == "_"
    for name, expected in (("../escape.csv", ".._escape.csv"), ("a/b\\c.csv", "a_b_c.csv"), ("..", "_")):
        uploaded = await sandbox.upload(cid, name=name, chunks=chunks_of(4), size=4)
        assert uploaded.id == expected and Path(uploaded.path).parent == sandbox.base_dir / cid
    assert not (sandbox.host_path(cid).parent / "escape.csv").exists()


async def test_symlinks_planted_by_code_are_never_followed(sandbox: LocalSandbox, cid: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root only")
    secret.chmod(0o600)
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    await ok(sandbox, cid, f"import os\nos.symlink({str(secret)!r}, 'leak.txt')\n"
                           f"os.symlink({str(victim)!r}, 'data.csv')\nos.symlink('/etc', 'etc')")
    assert [f.id for f in await sandbox.list_files(cid)] == []
    for file_id in ("leak.txt", "etc/hostname"):
        with pytest.raises(SandboxError):
            await sandbox.read_file(cid, file_id)
    uploaded = await sandbox.upload(cid, name="data.csv", chunks=chunks_of(10), size=10)
    assert victim.read_text() == "untouched"
    stored = sandbox.host_path(cid, uploaded.id)
    assert stored.is_file() and not stored.is_symlink()
    assert await sandbox.read_file(cid, "data.csv") == bytes(range(10))


async def test_timeout_interrupts_and_keeps_state(sandbox: LocalSandbox, cid: str) -> None:
    await ok(sandbox, cid, "x = 'kept'")
    started = time.monotonic()
    result = await run(sandbox, cid, "import time\nprint('working', flush=True)\ntime.sleep(60)", timeout=1.0)
    assert time.monotonic() - started < 10
    assert result.timed_out and not result.restarted and not result.ok
    assert result.stdout == "working\n" and result.error is not None and "interrupted" in result.error
    assert await ok(sandbox, cid, "print(x)") == "kept\n"


async def test_uninterruptible_code_is_killed_and_rebuilt(sandbox: LocalSandbox, cid: str) -> None:
    await ok(sandbox, cid, "x = 1\nopen('kept.txt', 'w').write('file survives')")
    old_pid = sandbox.kernel_pid(cid)
    code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    result = await run(sandbox, cid, code, timeout=1.0)
    assert result.timed_out and result.restarted
    assert sandbox.kernel_pid(cid) not in (None, old_pid)
    with pytest.raises(ProcessLookupError):
        os.kill(old_pid or 0, 0)
    after = await run(sandbox, cid, "print(open('kept.txt').read())\nx")
    assert after.stdout == "file survives\n" and after.error is not None and after.error.startswith("NameError")
    assert not after.restarted
    assert await ok(sandbox, cid, "import os\nprint(os.getcwd())") == f"{sandbox.base_dir / cid}\n"


async def test_dead_kernel_is_rebuilt_on_next_execute(sandbox: LocalSandbox, cid: str) -> None:
    await ok(sandbox, cid, "y = 5")
    pid = sandbox.kernel_pid(cid)
    assert pid is not None
    os.kill(pid, 9)
    await eventually(lambda: not Path(f"/proc/{pid}").exists() or "State:\tZ" in Path(f"/proc/{pid}/status")
                     .read_text(), timeout=10)
    result = await run(sandbox, cid, "print('alive')")
    assert result.restarted and result.ok and result.stdout == "alive\n"
    died = await run(sandbox, cid, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert died.restarted and died.error is not None and died.error.startswith("KernelDied")
    assert await ok(sandbox, cid, "print(1 + 1)") == "2\n"


# ------------------------------------------------------------------------------------------------ containers and pool


async def test_create_is_served_from_the_warm_pool(sandbox: LocalSandbox) -> None:
    await eventually(lambda: len(sandbox.pool_pids()) == 2)
    warm = set(sandbox.pool_pids())
    started = time.perf_counter()
    info = await sandbox.create(name=PREFIX + "pool", idle_minutes=5)
    first = await sandbox.execute(info.id, "print(pd.__name__, np.__name__)", timeout=30)
    elapsed = time.perf_counter() - started
    try:
        assert first.stdout == "pandas numpy\n"
        assert sandbox.kernel_pid(info.id) in warm
        assert elapsed < 1.0, f"first execute took {elapsed:.3f} s"
        await eventually(lambda: len(sandbox.pool_pids()) == 2 and set(sandbox.pool_pids()) != warm)
    finally:
        await sandbox.delete(info.id)


async def test_unknown_and_deleted_containers(sandbox: LocalSandbox) -> None:
    info = await sandbox.create(name=PREFIX + "gone", idle_minutes=5)
    pid = sandbox.kernel_pid(info.id)
    await sandbox.delete(info.id)
    await sandbox.delete(info.id)
    assert not (sandbox.base_dir / info.id).exists()
    if pid is not None:
        await eventually(lambda: not Path(f"/proc/{pid}").exists() or "State:\tZ" in Path(f"/proc/{pid}/status")
                         .read_text(), timeout=10)
    for cid in (info.id, "local-0000000000000000", "cntr_abc"):
        with pytest.raises(ContainerNotFound):
            await sandbox.execute(cid, "1", timeout=5)
        with pytest.raises(ContainerNotFound):
            await sandbox.list_files(cid)
        with pytest.raises(ContainerNotFound):
            await sandbox.read_file(cid, "a.csv")
        with pytest.raises(ContainerNotFound):
            await sandbox.upload(cid, name="a.csv", chunks=chunks_of(2), size=2)


async def test_list_containers_tracks_last_activity(sandbox: LocalSandbox, cid: str) -> None:
    (before,) = [c for c in await sandbox.list_containers(prefix=PREFIX) if c.id == cid]
    assert before.status == "running" and before.last_active_at is not None
    await asyncio.sleep(0.02)
    await ok(sandbox, cid, "1")
    (after,) = [c for c in await sandbox.list_containers(prefix=PREFIX) if c.id == cid]
    assert after.last_active_at is not None and after.last_active_at > before.last_active_at
    assert await sandbox.list_containers(prefix="someone-else-") == []


CRASHING_BOT = """
import asyncio, os, signal, sys
from bot.sandbox.local import LocalSandbox

async def main() -> None:
    sandbox = LocalSandbox(base_dir=sys.argv[1], pool_size=0)
    await sandbox.start()
    info = await sandbox.create(name="dstest-local-crash", idle_minutes=5)
    async def data():
        yield b"customer,revenue\\nACME,100\\n"
    stored = await sandbox.upload(info.id, name="private.csv", chunks=data(), size=None)
    await sandbox.execute(info.id, "open('private.csv').read()", timeout=60)
    print(stored.path, sandbox.host_path(info.id, stored.id), sandbox.kernel_pid(info.id), sandbox._dirs.runtime,
          flush=True)  # the runtime dir holds the pods' directories and logs
    os.kill(os.getpid(), signal.SIGKILL)  # a crash: no close, no cleanup

asyncio.run(main())
"""


@pytest.fixture
def shared() -> Iterator[Path]:
    """A sandbox directory kernel users can reach (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="dstest-local-shared-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def gone(pid: int) -> bool:
    try:
        return "State:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


async def test_a_crashed_bot_leaves_no_files_behind_and_live_bots_keep_theirs(shared: Path) -> None:
    crashed = subprocess.run([sys.executable, "-c", CRASHING_BOT, str(shared)], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=120, check=False)
    assert crashed.returncode == -9, crashed.stderr
    inside, host, pid, runtime = crashed.stdout.split()
    assert Path(inside).parent.parent.parent == shared and Path(runtime).is_dir()
    # The pod saw its bot go: its kernel ended, and the uploaded file went with the pod's tmpfs.
    await eventually(lambda: gone(int(pid)) and not Path(host).exists(), timeout=15)
    left = [p for p in shared.rglob("*") if p.is_file() and b"ACME" in p.read_bytes()]
    assert left == []

    live = LocalSandbox(base_dir=shared, pool_size=0)
    await live.start()
    try:
        kept = await live.create(name=PREFIX + "live", idle_minutes=5)
        after = LocalSandbox(base_dir=shared, pool_size=0)
        await after.start()
        try:
            assert not Path(inside).parent.parent.exists() and not Path(runtime).exists()  # the dead run went
            assert (live.base_dir / kept.id).is_dir()  # the live one stays
            assert sorted(p.parent for p in shared.glob("run-*/.live")) == sorted([live.base_dir, after.base_dir])
        finally:
            await after.close()
        assert not after.base_dir.exists() and live.base_dir.exists()
    finally:
        await live.close()
    assert list(shared.iterdir()) == []


async def test_working_directories_must_be_outside_the_project() -> None:
    with pytest.raises(ValueError, match="outside the project"):
        LocalSandbox(base_dir=PROJECT_ROOT / "sandboxes", pool_size=0)


# ------------------------------------------------------------------------------------------------ the cap on kernels


def live(pids: list[int | None]) -> int:
    return sum(1 for pid in pids if pid is not None and not gone(pid))


async def test_the_longest_idle_kernel_is_stopped_at_the_cap_and_rebuilt_with_its_files(shared: Path) -> None:
    sandbox = LocalSandbox(base_dir=shared, pool_size=1, max_kernels=2)
    await sandbox.start()
    try:
        a = (await sandbox.create(name=PREFIX + "a", idle_minutes=5)).id
        assert await ok(sandbox, a, "x = 'a'\nopen('a.txt', 'w').write('kept')\nprint(x)") == "a\n"
        b = (await sandbox.create(name=PREFIX + "b", idle_minutes=5)).id
        assert await ok(sandbox, b, "x = 'b'\nprint(x)") == "b\n"
        await asyncio.sleep(0.5)
        assert sandbox.pool_pids() == []  # the pool never grows past the cap
        pids = [sandbox.kernel_pid(a), sandbox.kernel_pid(b)]
        c = (await sandbox.create(name=PREFIX + "c", idle_minutes=5)).id
        assert await ok(sandbox, c, "print('c')") == "c\n"
        assert sandbox.kernel_pid(a) is None and gone(pids[0] or 0)  # a idled longest: stopped
        assert sandbox.kernel_pid(b) == pids[1]
        again = await run(sandbox, a, "print(open('a.txt').read())\nx")
        assert again.restarted and again.stdout == "kept\n"  # files kept, variables lost
        assert again.error is not None and again.error.startswith("NameError")
        assert sandbox.kernel_pid(b) is None  # now b idled longest
        assert live([sandbox.kernel_pid(cid) for cid in (a, b, c)]) == 2
    finally:
        await sandbox.close()


# ------------------------------------------------------------------------------------------------ start-up failures


async def test_a_kernel_that_cannot_start_is_reported_with_its_cause(sandbox: LocalSandbox) -> None:
    pod = await sandbox.fleet.new_pod()
    try:
        with pytest.raises(SandboxSetupError) as err:
            await sandbox.fleet.start_kernel(pod, pooled=False, module="datastory_no_such_kernel")
        message = str(err.value)
        assert "No module named 'datastory_no_such_kernel'" in message and f"{sys.executable} -m pip install" in message
        assert not isinstance(err.value, SandboxUnavailable)
    finally:
        await sandbox.fleet.close_pod(pod)


async def test_strict_refuses_without_namespaces_and_relaxed_says_what_is_missing(
    shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no `unshare`: no namespace of any kind
    strict = LocalSandbox(base_dir=shared, pool_size=0, isolation="strict")
    with pytest.raises(SandboxSetupError) as err:
        await strict.start()
    await strict.close()
    assert "the `unshare` command is missing (fix: install util-linux)" in str(err.value)
    assert "DATASTORY_LOCAL_ISOLATION=relaxed" in str(err.value)
    relaxed = LocalSandbox(base_dir=shared, pool_size=0, isolation="relaxed")
    try:
        try:
            await relaxed.start()
        except SandboxSetupError as exc:  # root, with a Python other users cannot read: no kernel user can run it
            assert os.geteuid() == 0 and "is not readable by kernel users" in str(exc) and "not traversable" in str(exc)
            return
        report = "\n".join(relaxed.isolation_report())
        assert "mode: relaxed" in report and "unshare` command is missing" in report
        assert "network: NOT isolated" in report and "filesystem: NOT private" in report
        info = await relaxed.create(name=PREFIX + "relaxed", idle_minutes=5)
        assert await ok(relaxed, info.id, "print(1 + 1)") == "2\n"
    finally:
        await relaxed.close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root gives kernels host uids; the unprivileged CI run covers this")
async def test_without_uidmap_strict_says_what_to_install_and_relaxed_keeps_the_namespaces(
    shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "unshare").symlink_to(shutil.which("unshare") or "/usr/bin/unshare")
    monkeypatch.setenv("PATH", str(tools))  # util-linux's unshare, but no newuidmap/newgidmap
    strict = LocalSandbox(base_dir=shared, pool_size=0, isolation="strict")
    with pytest.raises(SandboxSetupError, match=r"newuidmap and newgidmap are missing \(fix: install the `uidmap`"):
        await strict.start()
    await strict.close()
    relaxed = LocalSandbox(base_dir=shared, pool_size=0, isolation="relaxed")
    await relaxed.start()
    try:
        report = "\n".join(relaxed.isolation_report())
        assert "mode: relaxed (DATASTORY_LOCAL_ISOLATION=relaxed, user namespace, the bot's uid)" in report
        assert "network: isolated" in report and "identity: kernels run as the bot's uid" in report
        info = await relaxed.create(name=PREFIX + "userns", idle_minutes=5)
        home = str(Path.home())
        out = await ok(relaxed, info.id, f"import os\nprint(os.listdir({home!r}))")
        assert out == "[]\n"  # the bot's home is hidden
        status = Path(f"/proc/{relaxed.kernel_pid(info.id)}/status").read_text()
        assert re.search(r"^CapEff:\s+0+$", status, re.MULTILINE) and re.search(r"^NoNewPrivs:\s+1$", status, re.M)
    finally:
        await relaxed.close()


async def test_a_stopped_run_is_interrupted_and_keeps_the_variables(sandbox: LocalSandbox, cid: str) -> None:
    """Stopping a turn cancels its execute: the kernel's cell is interrupted at once (not left running for its
    30 s) and what the kernel held before is still there for the next question."""
    await ok(sandbox, cid, "x = 41")
    long = asyncio.ensure_future(run(sandbox, cid, "import time\nopen('started', 'w').close()\ntime.sleep(30)\n"))

    async def started() -> bool:
        return "started" in [f.name for f in await sandbox.list_files(cid)]

    await eventually(started)
    long.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long
    t0 = time.perf_counter()
    after = await run(sandbox, cid, "print(x + 1)", timeout=10)
    assert after.stdout == "42\n", after
    assert time.perf_counter() - t0 < 8  # the sleeping cell was interrupted, not waited for
