"""Streaming a large CSV from Slack into the sandbox: throughput against a plain download, CPU cost, peak memory.

Not a test; prints numbers. A CSV of ``--mb`` MB (default 512, the container limit) is generated into a temporary
file and hosted by FakeSlack; FakeSlack and FakeOpenAI each run in their own process
(``python -m tests.emulators.serve``), so their CPU and memory do not count against this process. Per round,
alternating:

1. baseline: a plain aiohttp download of the same URL, chunks thrown away;
2. the bot's real path: ``SlackGateway.download`` → ``bot.files.inspect_stream`` → ``OpenAISandbox.upload`` into a
   FakeOpenAI container (which reads the upload as it streams in; the file is deleted afterwards);
3. (unpaced only) download → ``inspect_stream`` → chunks thrown away: the bot's receiving half alone;
4. (unpaced only) a raw-socket relay into FakeOpenAI: blocking sockets, one reused buffer, HTTP and multipart
   written by hand, no inspection: about what *any* relay can reach on this machine, a ceiling for the bot's path
   (not a design: the bot talks HTTPS to both sides through real HTTP clients).

Each link setting of ``--link-mbps`` (MiB/s, ``0`` = unpaced loopback) runs its own emulators. Paced, both
emulators hold their side to the link rate (download served, upload read), as the networks between a bot, Slack
and OpenAI do: the ratio then shows whether the bot's relay keeps a link's rate (download and upload overlap) or
loses it (store-then-forward or strict alternation would give about 0.5×). Unpaced, every path is CPU-bound on
loopback, so the CPU seconds each process spent are printed too, with the rate the machine's cores allow the bot's
path at that cost.

Printed: MB/s of each path and the ratios to (1) (goal ≥ 0.8×), CPU seconds per GB per process, and the peak RSS
growth of this process during the bot's transfers (``VmHWM`` reset through ``/proc/self/clear_refs`` before each
one; goal < 64 MB).

Run: ``python bench/transfer.py [--mb 512] [--rounds 3] [--link-mbps 0,100]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
from openai import AsyncOpenAI
from slack_sdk.web.async_client import AsyncWebClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.files import inspect_stream  # noqa: E402
from bot.sandbox.openai import OpenAISandbox  # noqa: E402
from bot.slack_gateway import SlackGateway  # noqa: E402

TOKEN = "xoxb-bench"
KEY = "sk-bench"
MB = 1024 * 1024
GB = 1024 * MB
CHUNK = 1 << 20
TICK = os.sysconf("SC_CLK_TCK")


def write_csv(path: Path, size: int) -> None:
    """A CSV of exactly ``size`` bytes (varied rows; written a MB at a time)."""
    regions = (b"North", b"South", b"East", b"West")
    block = b"".join(b"%08d,%s,2025-%02d-%02d,%10.3f,%s\n" % (
        i, regions[i % 4], i % 12 + 1, i % 28 + 1, i * 1.37, b"true" if i % 3 else b"false")
        for i in range(CHUNK // 48))
    with path.open("wb") as out:
        out.write(b"id,region,day,amount,active\n")
        written = 28
        n = 0
        while written < size:
            part = block.replace(b"North", (b"North", b"Nord_")[n % 2])[: size - written]
            out.write(part)
            written += len(part)
            n += 1


def proc_status(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status``, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of this process (``pid`` None) or of another one."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def serve(*args: str) -> tuple[subprocess.Popen[bytes], list[str]]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.emulators.serve", *args], cwd=ROOT, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    lines = [proc.stdout.readline().decode().strip()]
    if "--file" in args:
        lines.append(proc.stdout.readline().decode().strip())
    return proc, lines


@dataclass
class Sample:
    """One transfer: MB/s, CPU seconds per GB by process, and this process's peak RSS growth."""

    rate: float
    cpu: dict[str, float]
    growth: int = 0


async def measure(run: Callable[[], Awaitable[int]], size: int, procs: dict[str, int | None]) -> Sample:
    """Time ``run`` (which returns the bytes it moved) and charge each process's CPU to it."""
    peak_ok = reset_peak()
    rss = proc_status("VmRSS")
    cpu = {name: cpu_seconds(pid) for name, pid in procs.items()}
    started = time.perf_counter()
    moved = await run()
    elapsed = time.perf_counter() - started
    assert moved == size, (moved, size)
    growth = (proc_status("VmHWM") if peak_ok else proc_status("VmRSS")) - rss
    spent = {name: (cpu_seconds(pid) - cpu[name]) * GB / size for name, pid in procs.items()}
    return Sample(size / MB / elapsed, spent, growth)


async def plain_download(url: str) -> int:
    async with aiohttp.ClientSession() as http:
        got = 0
        async with http.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            resp.raise_for_status()
            async for chunk in resp.content.iter_any():
                got += len(chunk)
        return got


def _connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80))


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """An HTTP response's status line and headers, and the body bytes read with them."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError("closed before the headers ended")
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def raw_relay(file_url: str, upload_url: str, size: int) -> dict[str, Any]:
    """The floor for any relay: plain blocking sockets, ``recv_into`` one reused buffer and ``sendall`` it on, the
    HTTP and multipart framing written by hand; no TLS, no HTTP library, no inspection. Returns the stored file."""
    download, upload = _connect(file_url), _connect(upload_url)
    with download, upload:
        target = urlsplit(file_url)
        download.sendall(f"GET {target.path} HTTP/1.1\r\nHost: {target.netloc}\r\nAuthorization: Bearer {TOKEN}\r\n"
                         "Connection: close\r\n\r\n".encode())
        head, body = _read_head(download)
        assert head.startswith(b"HTTP/1.1 200"), head[:100]
        boundary = "rawrelay0123456789"
        part = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="raw.csv"\r\n'
                "Content-Type: text/csv\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        dest = urlsplit(upload_url)
        upload.sendall(f"POST {dest.path} HTTP/1.1\r\nHost: {dest.netloc}\r\nAuthorization: Bearer {KEY}\r\n"
                       f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                       f"Content-Length: {len(part) + size + len(tail)}\r\nConnection: close\r\n\r\n".encode()
                       + part + body)
        moved, buffer = len(body), bytearray(CHUNK)
        view = memoryview(buffer)
        while moved < size:
            got = download.recv_into(buffer)
            if not got:
                break
            upload.sendall(view[:got])
            moved += got
        upload.sendall(tail)
        head, body = _read_head(upload)
        while more := upload.recv(65536):
            body += more
    assert head.startswith(b"HTTP/1.1 200"), head[:100]
    return cast(dict[str, Any], json.loads(body))


async def run_link(path: Path, size: int, rounds: int, link_mbps: float) -> list[str]:
    """Every round of one link setting; returns the summary lines."""
    pace = ("--link-mbps", str(link_mbps)) if link_mbps else ()
    slack, (api_url, file_url) = serve("slack", "--key", TOKEN, "--file", str(path), *pace)
    oai, (oai_url,) = serve("openai", "--key", KEY, *pace)
    samples: dict[str, list[Sample]] = defaultdict(list)
    try:
        client = AsyncOpenAI(api_key=KEY, base_url=oai_url)
        gateway = SlackGateway(client=AsyncWebClient(token=TOKEN, base_url=api_url), token=TOKEN, api_url=api_url)
        sandbox = OpenAISandbox(client=client)
        container = (await sandbox.create(name="datastory-bench", idle_minutes=20)).id

        async def bot_path() -> int:
            stream = await inspect_stream(gateway.download(file_url), name=path.name, size=size)
            stored = await sandbox.upload(container, name=path.name, chunks=stream, size=size)
            assert stream.profile.rows > 0 and stream.profile.encoding == "utf-8"
            await client.containers.files.delete(stored.id, container_id=container)
            return stored.size

        async def inspected() -> int:
            stream = await inspect_stream(gateway.download(file_url), name=path.name, size=size)
            return sum([len(chunk) async for chunk in stream])

        paths: dict[str, tuple[Callable[[], Awaitable[int]], dict[str, int | None]]] = {
            "plain download": (lambda: plain_download(file_url), {"client": None, "FakeSlack": slack.pid}),
            "bot → FakeOpenAI": (bot_path, {"bot": None, "FakeSlack": slack.pid, "FakeOpenAI": oai.pid}),
        }
        if not link_mbps:
            paths["download → inspect"] = (inspected, {"bot": None, "FakeSlack": slack.pid})

            async def relayed() -> int:
                stored = await asyncio.to_thread(raw_relay, file_url, f"{oai_url}/containers/{container}/files", size)
                await client.containers.files.delete(stored["id"], container_id=container)
                return int(stored["bytes"])

            paths["raw-socket relay"] = (relayed, {"relay": None, "FakeSlack": slack.pid, "FakeOpenAI": oai.pid})
        await plain_download(file_url)  # warm-up: page cache, connections, the emulators' allocators
        await bot_path()
        label = f"link {link_mbps:g} MiB/s" if link_mbps else "unpaced loopback"
        for r in range(rounds):
            for name, (run, procs) in paths.items():
                samples[name].append(await measure(run, size, procs))
            print(f"{label}, round {r + 1}: " + " | ".join(f"{name} {s[-1].rate:7.1f} MB/s"
                                                         for name, s in samples.items()), flush=True)
        await sandbox.delete(container)
        for closing in (sandbox, gateway, client):
            await closing.close()
    finally:
        for proc in (slack, oai):
            proc.terminate()
            proc.wait(timeout=30)
    return summarise(label, samples)


def summarise(label: str, samples: dict[str, list[Sample]]) -> list[str]:
    rate = {name: statistics.median(s.rate for s in runs) for name, runs in samples.items()}
    cpu = {name: {proc: statistics.median(s.cpu[proc] for s in runs) for proc in runs[0].cpu}
           for name, runs in samples.items()}
    base = rate["plain download"]
    lines = [f"{label}: plain download {base:.1f} MB/s"]
    for name in samples:
        cost = " + ".join(f"{proc} {seconds:.2f}" for proc, seconds in cpu[name].items())
        ratio = "" if name == "plain download" else f" → ratio {rate[name] / base:.2f}×"
        lines.append(f"  {name}: {rate[name]:.1f} MB/s{ratio}; CPU s/GB: {cost} = {sum(cpu[name].values()):.2f}")
    growth = max(s.growth for s in samples["bot → FakeOpenAI"])
    lines.append(f"  peak RSS growth of the bot's transfers: {growth / MB:.1f} MB (goal < 64 MB)")
    if "download → inspect" in samples:
        cores = os.cpu_count() or 1
        total, own = sum(cpu["bot → FakeOpenAI"].values()), cpu["bot → FakeOpenAI"]["bot"]
        ceiling = min(cores / total, 1 / own) * 1024
        lines.append(f"  at that CPU cost, {cores} cores and one bot thread allow the bot's path at most "
                     f"{ceiling:.0f} MB/s = {ceiling / base:.2f}× the plain download")
        lines.append(f"  bot path / raw-socket relay: {rate['bot → FakeOpenAI'] / rate['raw-socket relay']:.2f}× "
                     "(1.0×: the bot's relay costs what the simplest possible relay costs here)")
        paired = [b.rate / r.rate for b, r in zip(samples["bot → FakeOpenAI"], samples["raw-socket relay"],
                                                  strict=True)]
        lines.append(f"  the same, round by round (each bot transfer against the relay run right after it): "
                     f"median {statistics.median(paired):.2f}×, range {min(paired):.2f}–{max(paired):.2f}× "
                     f"(goal ≥ 0.8×; machine load average now {os.getloadavg()[0]:.2f})")
    return lines


async def main(size_mb: int, rounds: int, links: list[float]) -> None:
    size = size_mb * MB
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        write_csv(path, size)
        summary = [f"\n{size_mb} MB CSV, {rounds} rounds, medians (goal: ratio ≥ 0.8×):"]
        for link in links:
            summary += await run_link(path, size, rounds, link)
    print("\n".join(summary))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--link-mbps", default="0,100",
                        help="comma-separated link rates in MiB/s to run, 0 = unpaced loopback (default 0,100)")
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                        help="event loop of this process (default uvloop, the console script's)")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop
        uvloop.install()
    asyncio.run(main(args.mb, args.rounds, [float(v) for v in args.link_mbps.split(",")]))
