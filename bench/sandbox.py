"""Local sandbox: a thread's first request to its first execute result (not a test; prints numbers).

Same machine, same run:

1. **Warm pool** (what a new Slack thread gets): ``create()`` takes a pre-started kernel (pandas, numpy and
   matplotlib already imported) and the first ``execute()`` returns. p50/p99 over ``--samples`` threads, each
   measured with the pool full (goal p50 ≤ 10 ms, p99 ≤ 50 ms; E2B advertises ~150 ms for a sandbox start).
2. **Cold kernel**: the same with an empty pool, so the kernel starts and imports pandas/numpy/matplotlib inside
   the request (goal ≤ 1.5 s).
3. **Bare subprocess**: ``python -c "import pandas"`` (and ``python -c pass``) as a floor for "start a process".
4. Memory each warm kernel holds (VmRSS from ``/proc/<pid>/status``), and its pod's supervisor, and the pool size,
   from ``DATASTORY_LOCAL_POOL_SIZE`` (or ``--pool-size``).

The isolation report comes first: the numbers are with every kernel in its own pod (namespaces, its own uid, a
tmpfs with a quota) as :mod:`bot.sandbox.local` gives it on this machine.

Run: ``python bench/sandbox.py [--samples 40] [--cold 5] [--pool-size N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.config import Settings  # noqa: E402
from bot.sandbox.local import LocalSandbox, rss_kb  # noqa: E402

CODE = "df = pd.DataFrame({'a': [1, 2, 3]})\nint(df.a.sum())"
E2B_START_MS = 150.0


def parent_of(pid: int) -> int:
    """The parent of a kernel: its pod's supervisor."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def first_result(sandbox: LocalSandbox, later: list[float] | None = None) -> float:
    """Seconds from create() to the first execute result (and, into ``later``, the same code run again in that
    thread: the kernel round trip alone); the container is deleted afterwards."""
    started = time.perf_counter()
    info = await sandbox.create(name="bench-thread", idle_minutes=20)
    result = await sandbox.execute(info.id, CODE, timeout=60)
    elapsed = time.perf_counter() - started
    assert result.ok and result.stdout == "6\n", result
    if later is not None:
        again = time.perf_counter()
        await sandbox.execute(info.id, CODE, timeout=60)
        later.append(time.perf_counter() - again)
    await sandbox.delete(info.id)
    return elapsed


async def wait_pool_full(sandbox: LocalSandbox, size: int) -> None:
    deadline = time.monotonic() + 120
    while len(sandbox.pool_pids()) < size:
        if time.monotonic() > deadline:
            raise RuntimeError("the pool did not refill within 120 s")
        await asyncio.sleep(0.02)


def subprocess_seconds(args: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return times


def line(label: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"  {label:<44} p50 {statistics.median(ms):8.1f} ms   p99 {pct(ms, 0.99):8.1f} ms   (n={len(ms)})"


async def main(samples: int, cold_runs: int, pool_size: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="datastory-bench-"))
    base.chmod(0o711)  # kernel users must traverse it
    try:
        warm_box = LocalSandbox(base_dir=base / "warm", pool_size=pool_size)
        started = time.perf_counter()
        await warm_box.start()
        pool_ready = time.perf_counter() - started
        print("isolation:")
        for text in warm_box.isolation_report():
            print(f"  - {text}")
        try:
            pids = warm_box.pool_pids()
            rss = rss_kb(pids)
            supervisors = rss_kb([parent_of(pid) for pid in pids])
            warm: list[float] = []
            later: list[float] = []
            for _ in range(samples):
                await wait_pool_full(warm_box, pool_size)
                warm.append(await first_result(warm_box, later))
        finally:
            await warm_box.close()

        cold_box = LocalSandbox(base_dir=base / "cold", pool_size=0)
        await cold_box.start()
        try:
            await first_result(cold_box)  # the first kernel also builds matplotlib's font cache: not counted
            cold = [await first_result(cold_box) for _ in range(cold_runs)]
        finally:
            await cold_box.close()

        bare_pandas = subprocess_seconds([sys.executable, "-c", "import pandas"], cold_runs)
        bare_pass = subprocess_seconds([sys.executable, "-c", "pass"], cold_runs)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    warm_p50 = statistics.median(warm)
    print(f"\nfirst request -> first execute result (code: {CODE!r})")
    print(line("warm pool (create + execute)", warm))
    print(line("  for reference: next execute, same thread", later))
    print(line("cold kernel (start + pandas/mpl + execute)", cold))
    print(line('bare subprocess `python -c "import pandas"`', bare_pandas))
    print(line("bare subprocess `python -c pass`", bare_pass))
    print("\nratios (p50):")
    print(f"  cold kernel / warm pool           {statistics.median(cold) / warm_p50:8.0f}x")
    print(f"  python -c 'import pandas' / warm  {statistics.median(bare_pandas) / warm_p50:8.0f}x")
    print(f"  E2B advertised start / warm       {E2B_START_MS / 1000 / warm_p50:8.1f}x")
    print(f"  (machine load average now: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores)")
    goals = (f"  goals: warm p50 <= 10 ms: {'met' if warm_p50 <= 0.010 else 'MISSED'}; warm p99 <= 50 ms: "
             f"{'met' if pct(warm, 0.99) <= 0.050 else 'MISSED'}; cold <= 1.5 s: "
             f"{'met' if statistics.median(cold) <= 1.5 else 'MISSED'}")
    print(goals)
    total_mb = sum(rss) / 1024
    per = ", ".join(f"{kb / 1024:.0f}" for kb in rss)
    print(f"\nwarm pool: {pool_size} kernels ready in {pool_ready:.2f} s at start; RSS per kernel MB: [{per}] "
          f"(total {total_mb:.0f} MB; DATASTORY_LOCAL_POOL_SIZE sets the pool size); each pod's supervisor adds "
          f"{max(supervisors, default=0) / 1024:.1f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=40, help="warm-pool threads to time")
    parser.add_argument("--cold", type=int, default=5, help="cold kernel starts and bare subprocesses to time")
    parser.add_argument("--pool-size", type=int, default=None, help="default: DATASTORY_LOCAL_POOL_SIZE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    size = args.pool_size if args.pool_size is not None else Settings().local_pool_size
    asyncio.run(main(args.samples, args.cold, max(1, size)))
