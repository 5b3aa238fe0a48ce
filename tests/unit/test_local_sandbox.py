"""The ``local`` sandbox backend beyond the shared contract: execution, timeouts, the warm pool, and isolation.

One backend (real kernels, a pool of two) is shared by the module, so every test runs on the module's event loop;
each test takes its own container. Hostile code (reading the environment, opening sockets, fork bombs, huge
allocations and files) must fail inside the kernel while this test process keeps working.
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

from bot.sandbox.base import ContainerNotFound, ExecResult, SandboxError
from bot.sandbox.local import PROJECT_ROOT, LocalSandbox, sanitize_name

pytestmark = pytest.mark.asyncio(loop_scope="module")

PREFIX = "dstest-local-"
MAX_FILE_MB = 16
MAX_PROCESSES = 48
SECRETS = {"SLACK_BOT_TOKEN": "xoxb-unit-secret", "OPENAI_API_KEY": "sk-unit-secret",
           "DATASTORY_DATABASE_URL": "postgresql://secret@db/x"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandbox() -> AsyncIterator[LocalSandbox]:
    saved = {k: os.environ.get(k) for k in SECRETS}
    os.environ.update(SECRETS)  # the bot's process holds secrets; the kernels must not see them
    base = Path(tempfile.mkdtemp(prefix="dstest-local-unit-"))
    backend = LocalSandbox(base_dir=base, pool_size=2, memory_mb=2048, cpu_seconds=300, max_file_mb=MAX_FILE_MB,
                           max_processes=MAX_PROCESSES, interrupt_grace_seconds=1.5)
    try:
        await backend.start()
        yield backend
    finally:
        await backend.close()
        shutil.rmtree(base, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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


def report(sandbox: LocalSandbox) -> str:
    return "\n".join(sandbox.isolation_report())


def processes_of(uid: int) -> list[int]:
    """Live (non-zombie) processes whose real uid is ``uid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path("/proc", entry, "status").read_text()
        except OSError:
            continue
        uid_match = re.search(r"^Uid:\s+(\d+)", status, re.MULTILINE)
        state = re.search(r"^State:\s+(\S)", status, re.MULTILINE)
        if uid_match and int(uid_match.group(1)) == uid and not (state and state.group(1) == "Z"):
            found.append(int(entry))
    return found


def uid_of(pid: int) -> int:
    match = re.search(r"^Uid:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    assert match
    return int(match.group(1))


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
    assert not (sandbox.base_dir / "escape.csv").exists()


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
    assert Path(uploaded.path).is_file() and not Path(uploaded.path).is_symlink()
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
    print(stored.path, sandbox._runtime, flush=True)  # the runtime dir holds the kernels' sockets and logs
    os.kill(os.getpid(), signal.SIGKILL)  # a crash: no close, no cleanup

asyncio.run(main())
"""


@pytest.fixture
def shared() -> Iterator[Path]:
    """A sandbox directory kernel users can reach (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="dstest-local-shared-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def test_a_crashed_bot_leaves_no_files_behind_and_live_bots_keep_theirs(shared: Path) -> None:
    crashed = subprocess.run([sys.executable, "-c", CRASHING_BOT, str(shared)], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=120, check=False)
    assert crashed.returncode == -9, crashed.stderr
    left, runtime = map(Path, crashed.stdout.split())
    assert left.read_bytes() == b"customer,revenue\nACME,100\n" and left.parent.parent.parent == shared
    assert runtime.is_dir()

    live = LocalSandbox(base_dir=shared, pool_size=0)
    await live.start()
    try:
        kept = await live.create(name=PREFIX + "live", idle_minutes=5)
        after = LocalSandbox(base_dir=shared, pool_size=0)
        await after.start()
        try:
            assert not left.parent.parent.exists() and not runtime.exists()  # the dead run went, files and all
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


# ------------------------------------------------------------------------------------------------ hostile code


async def test_environment_holds_no_bot_secrets(sandbox: LocalSandbox, cid: str) -> None:
    assert os.environ["SLACK_BOT_TOKEN"] == SECRETS["SLACK_BOT_TOKEN"]
    out = await ok(sandbox, cid, "import os\nprint(sorted(os.environ))\nprint(repr(dict(os.environ)))")
    names = eval(out.splitlines()[0])  # a list literal printed by our own kernel
    assert not [n for n in names if n.startswith(("SLACK_", "OPENAI_", "DATASTORY_"))]
    assert not any(value in out for value in SECRETS.values())
    if "runs as its own unprivileged uid" in report(sandbox):
        probe = await run(sandbox, cid, "open(f'/proc/{__import__(\"os\").getppid()}/environ').read()")
        assert probe.error is not None and probe.error.startswith("PermissionError")
        assert await ok(sandbox, cid, "import os\nprint(os.getuid() != 0, os.getgroups())") == "True []\n"
    if "own mount namespace" in report(sandbox):
        # The project (source, .env, SQLite file) is hidden; only the virtualenv the kernel runs from shows.
        listing = await ok(sandbox, cid, f"import os\nprint(sorted(os.listdir({str(PROJECT_ROOT)!r})))")
        assert listing in ("[]\n", "['.venv']\n")


async def test_no_network(sandbox: LocalSandbox, cid: str) -> None:
    if "network: isolated" not in report(sandbox):
        pytest.skip("network namespaces are not available on this host")
    connections = 0

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        code = (f"import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=3)\n"
                "    print('connected')\nexcept OSError as exc:\n    print('refused', type(exc).__name__)")
        out = await ok(sandbox, cid, code)
        assert out.startswith("refused")
        out = await ok(sandbox, cid, "import socket\ntry:\n    socket.getaddrinfo('slack.com', 443)\n"
                                     "    print('resolved')\nexcept OSError:\n    print('no dns')")
        assert out == "no dns\n"
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)  # the bot's own network still works
        writer.close()
        await eventually(lambda: connections == 1, timeout=5)
    finally:
        server.close()
        await server.wait_closed()


async def test_fork_bomb_is_contained_and_swept(sandbox: LocalSandbox) -> None:
    if "runs as its own unprivileged uid" not in report(sandbox):
        pytest.skip("per-kernel users need root")
    info = await sandbox.create(name=PREFIX + "forks", idle_minutes=5)
    deleted = False
    try:
        await ok(sandbox, info.id, "1")
        pid = sandbox.kernel_pid(info.id)
        assert pid is not None
        uid = uid_of(pid)
        # Children leave the kernel's process group and sleep: only the uid sweep at delete can find them.
        code = ("import os, time\nn, err = 0, None\ntry:\n    for _ in range(1000):\n        if os.fork() == 0:\n"
                "            try:\n                os.setsid(); time.sleep(300)\n            finally:\n"
                "                os._exit(0)\n        n += 1\nexcept OSError as exc:\n    err = type(exc).__name__\n"
                "print(n, err)")
        out = await ok(sandbox, info.id, code)
        forked, err = out.split()
        assert err == "BlockingIOError" and 0 < int(forked) < MAX_PROCESSES
        assert subprocess.run(["true"], check=False).returncode == 0  # the bot can still start processes
        assert len(processes_of(uid)) > int(forked)
        await sandbox.delete(info.id)
        deleted = True
        await eventually(lambda: processes_of(uid) == [], timeout=15)
    finally:
        if not deleted:
            await sandbox.delete(info.id)


async def test_huge_allocation_fails_with_memory_error(sandbox: LocalSandbox, cid: str) -> None:
    await ok(sandbox, cid, "z = 7")
    result = await run(sandbox, cid, "blob = bytearray(10 * 1024 ** 3)")
    assert result.error is not None and result.error.startswith("MemoryError") and not result.restarted
    assert await ok(sandbox, cid, "print(z)") == "7\n"


async def test_huge_file_fails_at_the_size_limit(sandbox: LocalSandbox, cid: str) -> None:
    code = ("chunk = b'\\0' * (1 << 20)\ntry:\n    with open('huge.bin', 'wb') as f:\n        for _ in range(2048):\n"
            "            f.write(chunk)\nexcept OSError as exc:\n    print('errno', exc.errno)")
    assert await ok(sandbox, cid, code) == "errno 27\n"  # EFBIG
    (huge,) = [f for f in await sandbox.list_files(cid) if f.id == "huge.bin"]
    assert huge.size <= MAX_FILE_MB * 1024 * 1024
    assert await ok(sandbox, cid, "import os\nos.remove('huge.bin')\nprint('fine')") == "fine\n"
