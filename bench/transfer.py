"""Streaming a large CSV from Slack into the sandbox: throughput against a plain download, and peak memory.

Not a test; prints numbers. A CSV of ``--mb`` MB (default 512, the container limit) is generated into a temporary
file and hosted by FakeSlack; FakeSlack and FakeOpenAI each run in their own process
(``python -m tests.emulators.serve``), so the emulators' memory (FakeOpenAI keeps uploads in memory) and CPU do
not count against this process. Per round, alternating:

1. baseline: a plain aiohttp download of the same URL, chunks thrown away (what the network path alone costs);
2. the bot's real path: ``SlackGateway.download`` → ``bot.files.inspect_stream`` → ``OpenAISandbox.upload`` into
   a FakeOpenAI container (the upload is deleted afterwards so the emulator does not grow);
3. the same real path into a *draining sink* (``--serve-sink``, its own process: the container-file upload
   endpoint reading the body chunk by chunk, keeping nothing, answering with the part's byte count).
   FakeOpenAI buffers and copies the whole body several times before answering, so it caps (2) well below the
   network speed; (3) measures the bot's own path with a provider that is not the bottleneck.

Printed: MB/s of each and the ratios to (1) (goal ≥ 0.8×), and the peak RSS growth of this process during the
transfers (``VmHWM`` reset through ``/proc/self/clear_refs`` before each transfer; goal < 64 MB).

Run: ``python bench/transfer.py [--mb 512] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
CHUNK = 1 << 20


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


def serve(*args: str) -> tuple[subprocess.Popen[bytes], list[str]]:
    argv = [sys.executable, __file__, "--serve-sink"] if args == ("sink",) else [
        sys.executable, "-m", "tests.emulators.serve", *args]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    lines = [proc.stdout.readline().decode().strip()]
    if "--file" in args:
        lines.append(proc.stdout.readline().decode().strip())
    return proc, lines


async def plain_download(url: str) -> tuple[float, int]:
    async with aiohttp.ClientSession() as http:
        started = time.perf_counter()
        got = 0
        async with http.get(url, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            resp.raise_for_status()
            async for chunk in resp.content.iter_chunked(CHUNK):
                got += len(chunk)
        return time.perf_counter() - started, got


async def bot_transfer(gateway: SlackGateway, sandbox: OpenAISandbox, client: AsyncOpenAI, container: str, url: str,
                       name: str, size: int) -> tuple[float, int, int]:
    """The real path; returns seconds, bytes stored and the peak RSS growth."""
    peak_ok = reset_peak()
    before = proc_status("VmRSS")
    started = time.perf_counter()
    profile, stream = await inspect_stream(gateway.download(url), name=name, size=size)
    stored = await sandbox.upload(container, name=name, chunks=stream, size=size)
    elapsed = time.perf_counter() - started
    growth = (proc_status("VmHWM") if peak_ok else proc_status("VmRSS")) - before
    assert stored.size == size, (stored.size, size)
    assert profile.rows > 0
    await client.containers.files.delete(stored.id, container_id=container)
    return elapsed, stored.size, growth


async def serve_sink() -> None:
    """A stand-in for the provider's upload endpoint that drains the body: prints its base URL, serves until killed."""
    from aiohttp import web

    async def upload(request: web.Request) -> web.Response:
        # one multipart part: count the body, minus the part's header and the closing boundary
        boundary = request.headers["Content-Type"].split("boundary=", 1)[1].strip('"')
        got, head = 0, b""
        async for chunk in request.content.iter_any():
            if len(head) < 4096:
                head += chunk[:4096]
            got += len(chunk)
        payload = got - (head.index(b"\r\n\r\n") + 4) - len(f"\r\n--{boundary}--\r\n")
        return web.json_response({"id": "cfile_sink", "object": "container.file", "bytes": payload, "source": "user",
                                  "container_id": request.match_info["cid"], "created_at": 0,
                                  "path": "/mnt/data/sink"})

    app = web.Application(client_max_size=1 << 34)
    app.router.add_post("/v1/containers/{cid}/files", upload)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(f"http://127.0.0.1:{runner.addresses[0][1]}/v1", flush=True)
    await asyncio.Event().wait()


async def inspected_download(gateway: SlackGateway, url: str, name: str, size: int) -> float:
    """Download → inspection → chunks thrown away: the cost of our side of the stream alone; returns seconds."""
    started = time.perf_counter()
    _, stream = await inspect_stream(gateway.download(url), name=name, size=size)
    got = 0
    async for chunk in stream:
        got += len(chunk)
    assert got == size
    return time.perf_counter() - started


async def sink_transfer(gateway: SlackGateway, sandbox: OpenAISandbox, url: str, name: str,
                        size: int) -> tuple[float, int]:
    """The real path into the draining sink; returns seconds and the peak RSS growth."""
    peak_ok = reset_peak()
    before = proc_status("VmRSS")
    started = time.perf_counter()
    _, stream = await inspect_stream(gateway.download(url), name=name, size=size)
    stored = await sandbox.upload("cntr_sink", name=name, chunks=stream, size=size)
    elapsed = time.perf_counter() - started
    assert stored.size == size, (stored.size, size)
    return elapsed, (proc_status("VmHWM") if peak_ok else proc_status("VmRSS")) - before


async def main(size_mb: int, rounds: int) -> None:
    size = size_mb * MB
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        write_csv(path, size)
        slack, (api_url, file_url) = serve("slack", "--key", TOKEN, "--file", str(path))
        oai, (oai_url,) = serve("openai", "--key", KEY)
        sink, (sink_url,) = serve("sink")
        try:
            client = AsyncOpenAI(api_key=KEY, base_url=oai_url)
            gateway = SlackGateway(client=AsyncWebClient(token=TOKEN, base_url=api_url), token=TOKEN, api_url=api_url)
            sandbox = OpenAISandbox(client=client)
            sink_client = AsyncOpenAI(api_key=KEY, base_url=sink_url)
            drain = OpenAISandbox(client=sink_client)
            container = (await sandbox.create(name="datastory-bench", idle_minutes=20)).id
            base_rates: list[float] = []
            bot_rates: list[float] = []
            sink_rates: list[float] = []
            inspect_rates: list[float] = []
            growths: list[int] = []
            await plain_download(file_url)  # warm-up: page cache, connections
            for r in range(rounds):
                seconds, got = await plain_download(file_url)
                assert got == size
                base_rates.append(size / MB / seconds)
                seconds, _, growth = await bot_transfer(gateway, sandbox, client, container, file_url, path.name,
                                                        size)
                bot_rates.append(size / MB / seconds)
                growths.append(growth)
                inspect_rates.append(size / MB / await inspected_download(gateway, file_url, path.name, size))
                seconds, growth = await sink_transfer(gateway, drain, file_url, path.name, size)
                sink_rates.append(size / MB / seconds)
                growths.append(growth)
                print(f"round {r + 1}: plain download {base_rates[-1]:6.1f} MB/s | download → inspect "
                      f"{inspect_rates[-1]:6.1f} MB/s | bot → FakeOpenAI "
                      f"{bot_rates[-1]:6.1f} MB/s | bot → draining sink {sink_rates[-1]:6.1f} MB/s | "
                      f"peak RSS growth {max(growths[-2:]) / MB:5.1f} MB", flush=True)
            await sandbox.delete(container)
            for closing in (sandbox, drain, gateway, client, sink_client):
                await closing.close()
        finally:
            for proc in (slack, oai, sink):
                proc.terminate()
                proc.wait(timeout=30)
    base, ours, drained, inspected = (statistics.median(v) for v in (base_rates, bot_rates, sink_rates,
                                                                     inspect_rates))
    print(f"\n{size_mb} MB CSV, {rounds} rounds, medians: plain download {base:.1f} MB/s")
    print(f"  download → inspect_stream → discard: {inspected:.1f} MB/s → ratio {inspected / base:.2f}× "
          "(the bot's side of the stream)")
    print(f"  bot path → draining sink: {drained:.1f} MB/s → ratio {drained / base:.2f}× (goal ≥ 0.8×)")
    print(f"  bot path → FakeOpenAI:    {ours:.1f} MB/s → ratio {ours / base:.2f}× (capped by the emulator, which "
          "buffers and copies every upload in memory)")
    print(f"peak RSS growth during the transfer: max {max(growths) / MB:.1f} MB (goal < 64 MB); "
          f"process RSS now {proc_status('VmRSS') / MB:.0f} MB, pid {os.getpid()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve-sink", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sink:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_sink())
    else:
        asyncio.run(main(args.mb, args.rounds))
