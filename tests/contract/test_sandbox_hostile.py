"""The local sandbox's part of the contract: hostile code fails, and the kernel, the bot and other threads go on.

This process plays the bot: secrets in its environment, a ``.env`` in its working directory, a SQLite database
(world-readable, to prove it is the mount namespace that hides it) in a directory of its own, and a sandbox built
by :func:`bot.backends.local_sandbox` from those settings with ``strict`` isolation. Two threads (containers) run
side by side: every attack comes from thread ``a``, and after each one ``a``, ``b`` and this process must still
work. CI runs this module as root and as an unprivileged user (``.ci/sandbox-unprivileged``); where ``strict``
cannot start it fails when ``CI=true`` and is skipped otherwise.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from bot.backends import ConfigurationError, local_sandbox
from bot.config import Settings
from bot.sandbox.base import ExecResult
from bot.sandbox.local import LocalSandbox

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = f"hostile-{secrets.token_hex(8)}"
ENV = {"SLACK_BOT_TOKEN": f"xoxb-{SECRET}", "OPENAI_API_KEY": f"sk-{SECRET}"}
MAX_PROCESSES = 48
MAX_FILE_MB = 16
QUOTA_MB = 2 * MAX_FILE_MB  # 2 × max(DATASTORY_MAX_FILE_MB, DATASTORY_LOCAL_MAX_FILE_MB)


@dataclass(frozen=True, slots=True)
class Bot:
    """The sandbox under attack and what the bot around it holds."""

    sandbox: LocalSandbox
    env_file: Path
    database: Path
    a: str
    b: str


@pytest.fixture(scope="module")
def bot_files() -> Iterator[tuple[Path, Path]]:
    """The bot's working directory (with ``.env``) and its database, both readable by anyone on disk."""
    # Outside /tmp (private to every pod anyway): as root, /var/lib, which kernels may read; otherwise the home.
    parent = Path("/var/lib") if os.geteuid() == 0 else Path.home()
    workdir = Path(tempfile.mkdtemp(prefix="dstest-bot-", dir=parent))
    db_dir = Path(tempfile.mkdtemp(prefix="dstest-db-", dir=parent))
    for path in (workdir, db_dir):
        path.chmod(0o755)
    env_file = workdir / ".env"
    env_file.write_text(f"SLACK_BOT_TOKEN=xoxb-{SECRET}\n")
    database = db_dir / "bot.db"
    with sqlite3.connect(database) as db:
        db.execute("create table secrets (value text)")
        db.execute("insert into secrets values (?)", (SECRET,))
    for path in (env_file, database):
        path.chmod(0o644)
    try:
        yield workdir, database
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(db_dir, ignore_errors=True)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bot(bot_files: tuple[Path, Path]) -> AsyncIterator[Bot]:
    workdir, database = bot_files
    saved_env = {k: os.environ.get(k) for k in ENV}
    saved_cwd = Path.cwd()
    os.environ.update(ENV)
    os.chdir(workdir)
    base = Path(tempfile.mkdtemp(prefix="dstest-hostile-"))
    base.chmod(0o711)
    settings = Settings(_env_file=None, sandbox="local", database_url=f"sqlite:///{database}",  # type: ignore[call-arg]
                        local_dir=str(base), local_pool_size=2, local_max_file_mb=MAX_FILE_MB, max_file_mb=8,
                        local_max_processes=MAX_PROCESSES, local_cpu_seconds=300, local_isolation="strict")
    sandbox = local_sandbox(settings)
    try:
        try:
            await sandbox.start()
        except ConfigurationError as exc:  # pragma: no cover - a machine without namespaces
            if os.environ.get("CI") == "true":
                pytest.fail(f"strict isolation must start in CI: {exc}")
            pytest.skip(f"strict isolation is not available here: {exc}")
        a = (await sandbox.create(name="dstest-hostile-a", idle_minutes=5)).id
        b = (await sandbox.create(name="dstest-hostile-b", idle_minutes=5)).id
        assert await ok(sandbox, b, f"secret_of_b = {SECRET!r}[::-1]\nprint('b ready')") == "b ready\n"
        yield Bot(sandbox=sandbox, env_file=workdir / ".env", database=database, a=a, b=b)
    finally:
        await sandbox.close()
        os.chdir(saved_cwd)
        shutil.rmtree(base, ignore_errors=True)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


async def run(bot: Bot, code: str, *, cid: str | None = None, timeout: float = 30.0) -> ExecResult:
    return await bot.sandbox.execute(cid or bot.a, code, timeout=timeout)


async def ok(sandbox: LocalSandbox, cid: str, code: str, timeout: float = 30.0) -> str:
    result = await sandbox.execute(cid, code, timeout=timeout)
    assert result.ok, result
    return result.stdout


async def attempt(bot: Bot, code: str) -> str:
    """Run ``code`` in thread ``a`` (it prints what it got); the output must not hold a secret."""
    result = await run(bot, code)
    assert result.ok, result
    for secret in (SECRET, SECRET[::-1]):
        assert secret not in result.stdout + result.stderr
    return result.stdout


async def everyone_still_works(bot: Bot) -> None:
    """Thread ``a`` runs code, thread ``b`` kept its state, and this process still forks and connects."""
    assert await ok(bot.sandbox, bot.a, "print(6 * 7)") == "42\n"
    assert await ok(bot.sandbox, bot.b, "print(secret_of_b[::-1] == " + repr(SECRET) + ")") == "True\n"
    assert subprocess.run(["true"], check=False).returncode == 0
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


def status_of(pid: int) -> dict[str, str]:
    text = Path(f"/proc/{pid}/status").read_text()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def processes_of(uid: int) -> list[int]:
    """Live (non-zombie) processes whose real uid is ``uid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = status_of(int(entry))
            except OSError:
                continue
            if status["Uid"].split()[0] == str(uid) and not status["State"].startswith("Z"):
                found.append(int(entry))
    return found


DENIED = ("def denied(action):\n    try:\n        got = action()\n    except OSError as exc:\n"
          "        return type(exc).__name__\n    return 'GOT ' + repr(got)[:200]\n")


# ------------------------------------------------------------------------------------------------ identity


async def test_every_kernel_has_a_uid_of_its_own_and_no_privileges(bot: Bot) -> None:
    pids = [bot.sandbox.kernel_pid(cid) for cid in (bot.a, bot.b)]
    assert None not in pids
    uids = [int(status_of(pid or 0)["Uid"].split()[0]) for pid in pids]
    assert os.geteuid() not in uids and uids[0] != uids[1] and 0 not in uids
    for pid in pids:
        status = status_of(pid or 0)
        assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
        assert status["NoNewPrivs"].strip() == "1" and status["Groups"].strip() == ""
    assert "mode: strict" in "\n".join(bot.sandbox.isolation_report())


# ------------------------------------------------------------------------------------------------ reads


async def test_the_bots_environment_is_out_of_reach(bot: Bot) -> None:
    names = eval(await attempt(bot, "import os\nprint(sorted(os.environ))"))  # a list literal from our kernel
    assert not [n for n in names if n.startswith(("SLACK_", "OPENAI_", "DATASTORY_"))]
    code = (DENIED + f"print(denied(lambda: open('/proc/{os.getpid()}/environ', 'rb').read()))\n"
            "import os\nseen = []\nfor pid in filter(str.isdigit, os.listdir('/proc')):\n"
            "    try:\n        seen.append(open(f'/proc/{pid}/environ', 'rb').read().decode(errors='replace'))\n"
            "    except OSError:\n        pass\nprint(len(seen), any('SLACK_BOT_TOKEN' in e for e in seen))")
    first, second = (await attempt(bot, code)).splitlines()
    assert not first.startswith("GOT ") or SECRET not in first
    assert second.endswith("False")
    await everyone_still_works(bot)


async def test_the_env_file_and_the_database_are_out_of_reach(bot: Bot) -> None:
    assert SECRET in bot.env_file.read_text() and bot.env_file.stat().st_mode & 0o004  # readable on disk
    code = DENIED + "".join(
        f"print(denied(lambda: open({str(path)!r}, 'rb').read()))\n"
        f"print(denied(lambda: sorted(__import__('os').listdir({str(path.parent)!r}))))\n"
        for path in (bot.env_file, bot.database))
    out = await attempt(bot, code)
    assert not [line for line in out.splitlines() if line.startswith("GOT ") and line != "GOT []"], out
    await everyone_still_works(bot)


async def test_another_threads_files_and_kernel_are_out_of_reach(bot: Bot) -> None:
    await ok(bot.sandbox, bot.b, "open('mine.csv', 'w').write('private to b')")
    b_workdir = (await bot.sandbox.list_files(bot.b))[0].path.rsplit("/", 1)[0]
    cmdline = Path(f"/proc/{bot.sandbox.kernel_pid(bot.b)}/cmdline").read_bytes().split(b"\0")
    conn_file = cmdline[cmdline.index(b"-f") + 1].decode()
    code = DENIED + (f"print(denied(lambda: open({b_workdir + '/mine.csv'!r}).read()))\n"
                     f"print(denied(lambda: __import__('os').listdir({b_workdir!r})))\n"
                     f"print(denied(lambda: open({conn_file!r}).read()))\n"
                     f"print(denied(lambda: __import__('os').listdir({str(Path(conn_file).parent)!r})))\n"
                     "import os\nprint(sum(1 for p in os.listdir('/proc') if p.isdigit()))")
    *reads, processes = (await attempt(bot, code)).splitlines()
    assert all(not line.startswith("GOT ") for line in reads), reads
    assert int(processes) <= 3  # the pod's supervisor and its own kernel (no other process is visible)
    await everyone_still_works(bot)


# ------------------------------------------------------------------------------------------------ writes


async def test_tmp_and_shm_are_private_to_the_thread(bot: Bot) -> None:
    name = f"dstest-planted-{secrets.token_hex(4)}"
    code = (f"for d in ('/tmp', '/var/tmp', '/dev/shm'):\n    open(f'{{d}}/{name}', 'w').write('x')\n"
            f"print(sorted(__import__('os').path.exists(f'{{d}}/{name}') for d in ('/tmp', '/var/tmp', '/dev/shm')))")
    assert await attempt(bot, code) == "[True, True, True]\n"
    for parent in ("/tmp", "/var/tmp", "/dev/shm"):
        assert not Path(parent, name).exists()
    seen = await ok(bot.sandbox, bot.b, f"import os\nprint([os.path.exists(f'{{d}}/{name}') for d in "
                                        "('/tmp', '/var/tmp', '/dev/shm')])")
    assert seen == "[False, False, False]\n"
    code = DENIED + "".join(f"print(denied(lambda: open('{d}/{name}', 'w')))\n" for d in ("/etc", "/usr", "/opt"))
    assert all(not line.startswith("GOT ") for line in (await attempt(bot, code)).splitlines())
    await everyone_still_works(bot)


async def test_the_working_directory_has_a_quota(bot: Bot) -> None:
    code = ("import os, errno\nchunk = b'\\0' * (1 << 20)\nwritten, err = 0, None\ntry:\n"
            "    for n in range(4 * 64):\n        with open(f'fill-{n}.bin', 'wb') as f:\n"
            "            for _ in range(8):\n                f.write(chunk); f.flush(); written += 1\n"
            "except OSError as exc:\n    err = errno.errorcode[exc.errno]\nprint(written, err)")
    written, err = (await attempt(bot, code)).split()
    assert err == "ENOSPC" and int(written) <= QUOTA_MB
    assert await ok(bot.sandbox, bot.a, "import glob, os\nfor f in glob.glob('fill-*'):\n    os.remove(f)\n"
                                        "print('freed')") == "freed\n"
    await everyone_still_works(bot)


async def test_huge_file_fails_at_the_size_limit(bot: Bot) -> None:
    code = ("chunk = b'\\0' * (1 << 20)\ntry:\n    with open('huge.bin', 'wb') as f:\n        for _ in range(64):\n"
            "            f.write(chunk)\nexcept OSError as exc:\n    print('errno', exc.errno)")
    assert await attempt(bot, code) == "errno 27\n"  # EFBIG
    (huge,) = [f for f in await bot.sandbox.list_files(bot.a) if f.id == "huge.bin"]
    assert huge.size <= MAX_FILE_MB * 1024 * 1024
    assert await ok(bot.sandbox, bot.a, "import os\nos.remove('huge.bin')\nprint('fine')") == "fine\n"


# ------------------------------------------------------------------------------------------------ network


async def test_no_network(bot: Bot) -> None:
    connections = 0

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        code = DENIED + "import socket\n" + "".join(
            f"print(denied(lambda: socket.create_connection(({host!r}, {p}), timeout=3)))\n"
            for host, p in (("127.0.0.1", port), ("1.1.1.1", 443), ("8.8.8.8", 53)))
        code += "print(denied(lambda: socket.getaddrinfo('slack.com', 443)))\n"
        out = (await attempt(bot, code)).splitlines()
        assert all(not line.startswith("GOT ") for line in out), out
        assert connections == 0
    finally:
        server.close()
        await server.wait_closed()
    await everyone_still_works(bot)


# ------------------------------------------------------------------------------------------------ resources


async def test_fork_bomb_is_contained_and_swept(bot: Bot) -> None:
    info = await bot.sandbox.create(name="dstest-hostile-forks", idle_minutes=5)
    deleted = False
    try:
        await ok(bot.sandbox, info.id, "1")
        uid = int(status_of(bot.sandbox.kernel_pid(info.id) or 0)["Uid"].split()[0])
        # Children leave the kernel's process group and sleep: only ending the pod can find them all.
        code = ("import os, time\nn, err = 0, None\ntry:\n    for _ in range(1000):\n        if os.fork() == 0:\n"
                "            try:\n                os.setsid(); time.sleep(300)\n            finally:\n"
                "                os._exit(0)\n        n += 1\nexcept OSError as exc:\n    err = type(exc).__name__\n"
                "print(n, err)")
        forked, err = (await ok(bot.sandbox, info.id, code)).split()
        assert err == "BlockingIOError" and 0 < int(forked) < MAX_PROCESSES
        assert len(processes_of(uid)) > int(forked)
        await everyone_still_works(bot)
        await bot.sandbox.delete(info.id)
        deleted = True
        for _ in range(300):
            if not processes_of(uid):
                break
            await asyncio.sleep(0.05)
        assert processes_of(uid) == []
    finally:
        if not deleted:
            await bot.sandbox.delete(info.id)


async def test_a_10_gb_allocation_fails_with_memory_error(bot: Bot) -> None:
    await ok(bot.sandbox, bot.a, "z = 7")
    result = await run(bot, "blob = bytearray(10 * 1024 ** 3)")
    assert result.error is not None and result.error.startswith("MemoryError") and not result.restarted
    assert await ok(bot.sandbox, bot.a, "print(z)") == "7\n"
    await everyone_still_works(bot)


async def test_a_busy_loop_past_the_time_limit_is_stopped(bot: Bot) -> None:
    await ok(bot.sandbox, bot.a, "kept = 'yes'")
    interrupted = await run(bot, "while True:\n    pass", timeout=1.0)
    assert interrupted.timed_out and not interrupted.restarted
    assert await ok(bot.sandbox, bot.a, "print(kept)") == "yes\n"
    code = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    killed = await run(bot, code, timeout=1.0)
    assert killed.timed_out and killed.restarted
    await everyone_still_works(bot)
