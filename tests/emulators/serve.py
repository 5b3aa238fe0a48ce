"""Run an emulator on its own until interrupted: ``python -m tests.emulators.serve openai``; prints its URL.

``python -m tests.emulators.serve slack --file PATH`` also hosts ``PATH`` (served from disk in chunks) and prints
the file's ``url_private_download`` on a second line; ``--link-mbps N`` paces file transfers like a network link.

Used by the benchmarks (so emulator work does not share a process with the load generator) and handy for
pointing a locally running bot at fake services by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

from bot.demo.fake_slack import FakeSlack
from tests.emulators.fake_openai import FakeOpenAI


async def serve(kind: str, key: str, file: Path | None = None, link_rate: float | None = None) -> None:
    """Start the emulator on a random loopback port, print its base URL, and serve until SIGTERM/SIGINT.

    ``link_rate`` (bytes per second) paces hosted-file downloads (slack) or container-file uploads (openai)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if kind == "openai":
        async with FakeOpenAI(api_key=key) as oai:
            oai.link_rate = link_rate
            print(oai.base_url, flush=True)
            await stop.wait()
    else:
        async with FakeSlack(bot_token=key) as slack:
            slack.link_rate = link_rate
            print(slack.api_url, flush=True)
            if file is not None:
                hosted = slack.add_file(name=file.name, content=file)
                print(hosted["url_private_download"], flush=True)
            await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["openai", "slack"])
    parser.add_argument("--key", default="sk-test")
    parser.add_argument("--file", type=Path, default=None, help="slack only: host this file")
    parser.add_argument("--link-mbps", type=float, default=0.0,
                        help="pace file downloads (slack) or uploads (openai) to this many MiB/s; 0: no pacing")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.kind, args.key, args.file, args.link_mbps * (1 << 20) or None))
