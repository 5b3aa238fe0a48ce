"""Run an emulator on its own until interrupted: ``python -m tests.emulators.serve openai``; prints its URL.

``python -m tests.emulators.serve slack --file PATH`` also hosts ``PATH`` (served from disk in chunks) and prints
the file's ``url_private_download`` on a second line; ``--link-mbps N`` paces file transfers like a network link.
``python -m tests.emulators.serve openai --latency S`` makes every model response take ``S`` seconds.
``python -m tests.emulators.serve openai --big-output-mb N``: a question containing ``BIG-OUTPUT`` makes the code
"write" ``export.csv`` of about N MB whose last row holds a spreadsheet formula (the worst case for the bot's
output checks); other questions get the default script.

Used by the benchmarks (so emulator work does not share a process with the load generator) and handy for
pointing a locally running bot at fake services by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Callable
from pathlib import Path

from bot.demo.fake_slack import FakeSlack
from tests.emulators.fake_openai import FakeOpenAI, ResponseContext, ScriptedTurn, default_script

BIG_OUTPUT = "BIG-OUTPUT"


def big_output_script(megabytes: int) -> Callable[[ResponseContext], ScriptedTurn]:
    """The script of ``--big-output-mb``: one CSV of about ``megabytes`` MB, built once, for marked questions."""
    row = b"north,2025-01-02,-12.5,some text in a cell\n"
    data = b"region,month,value,note\n" + row * (megabytes * 1_000_000 // len(row)) + b"south,2025-01-03,=1+1,x\n"

    def script(ctx: ResponseContext) -> ScriptedTurn:
        if BIG_OUTPUT not in ctx.question:
            return default_script(ctx)
        return ScriptedTurn(code="df.to_csv('/mnt/data/export.csv')", text="Exported.", files=[("export.csv", data)],
                            cite_files=False)

    return script


async def serve(kind: str, key: str, file: Path | None = None, link_rate: float | None = None,
                big_output_mb: int = 0, latency: float = 0.0) -> None:
    """Start the emulator on a random loopback port, print its base URL, and serve until SIGTERM/SIGINT.

    ``link_rate`` (bytes per second) paces hosted-file downloads (slack) or container-file uploads (openai)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if kind == "openai":
        async with FakeOpenAI(api_key=key) as oai:
            oai.link_rate = link_rate
            oai.response_latency = latency
            if big_output_mb:
                oai.script = big_output_script(big_output_mb)
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
    parser.add_argument("--big-output-mb", type=int, default=0,
                        help="openai only: questions containing BIG-OUTPUT get an output CSV of this many MB")
    parser.add_argument("--link-mbps", type=float, default=0.0,
                        help="pace file downloads (slack) or uploads (openai) to this many MiB/s; 0: no pacing")
    parser.add_argument("--latency", type=float, default=0.0,
                        help="openai only: seconds each model response takes (an emulated model)")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.kind, args.key, args.file, args.link_mbps * (1 << 20) or None, args.big_output_mb,
                          args.latency))
