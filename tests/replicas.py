"""Replicas of ``datastory run --http`` as separate processes on one database, pointed at emulators on loopback.

Used by the multi-replica end-to-end test and by ``bench/replicas.py``. Each replica is started with
``python -m bot.cli run --http`` on a free loopback port, in its own working directory (no stray ``.env``), and is
ready when ``GET /healthz`` answers 200.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bot.demo.slack_events import SlackSender


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def replica_env(*, slack_api_url: str, openai_base_url: str, database_url: str, signing_secret: str,
                bot_token: str, openai_key: str, **settings: object) -> dict[str, str]:
    """The environment of a replica: the emulators, the database, and ``DATASTORY_*`` settings (keyword names
    without the prefix, e.g. ``lease_seconds=2``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATASTORY_", "SLACK_", "OPENAI_"))}
    env.update({
        "SLACK_BOT_TOKEN": bot_token, "SLACK_SIGNING_SECRET": signing_secret, "SLACK_API_URL": slack_api_url,
        "OPENAI_API_KEY": openai_key, "OPENAI_BASE_URL": openai_base_url, "DATASTORY_DATABASE_URL": database_url,
    })
    env.update({f"DATASTORY_{k.upper()}": str(v) for k, v in settings.items()})
    return env


@dataclass
class Replica:
    """One ``datastory run --http`` process."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    sender: SlackSender
    log: Path
    started_at: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        """The process has not exited."""
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no lease given back."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the exit (a graceful shutdown); returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
            await asyncio.sleep(0.05)
        await self.sender.close()
        return int(self.proc.returncode)

    async def metric(self, name: str) -> float:
        """One unlabelled sample of ``GET /metrics``."""
        async with aiohttp.ClientSession() as s, s.get(self.url + "/metrics") as resp:
            for line in (await resp.text()).splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        raise KeyError(name)


async def start_replica(name: str, env: dict[str, str], workdir: Path, signing_secret: str,
                        timeout: float = 60.0) -> Replica:
    """Start a replica and wait until it is ready."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bot.cli", "run", "--http", "--host", "127.0.0.1",
                                 "--port", str(port)], env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    replica = Replica(name=name, proc=proc, port=port, log=log,
                      sender=SlackSender(f"http://127.0.0.1:{port}/slack/events", signing_secret))
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as s:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"replica {name} exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                async with s.get(replica.url + "/healthz") as resp:
                    if resp.status == 200:
                        return replica
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                replica.kill()
                raise RuntimeError(f"replica {name} not ready: {log.read_text()[-2000:]}")
            await asyncio.sleep(0.1)
