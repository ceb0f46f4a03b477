"""What the state store costs a run: awaited stage commits, grouped by the writer thread.

Side by side, in one invocation: ``--n`` saves issued by ``-c`` tasks at once, each task
awaiting ``save_stage`` in a loop (as chains do), with ``synchronous=FULL`` (a commit
survives a power cut) and ``NORMAL`` (survives a killed process only), with and without a
group window; the same loop with ``await asyncio.sleep(0)`` in place of the save (what the
loop itself costs); and one task saving after another, where nothing can be grouped (the
latency of a lone awaited save, i.e. of one fsync).

    python benchmarks/store.py [--n 3000] [-c 200] [--seq-n 300] [--dir DIR] [--gc]

Each case writes a new state.db in a temporary folder under ``--dir`` (the default temporary
folder; make sure it is on a real disk, not tmpfs, or fsync costs nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from orchestrator.store._records import RunRecord, StageResult
from orchestrator.store._store import Store

OUTPUT = ("A paragraph of model output, as a stage writes it. " * 40)[:2000]
RECORD = {"attempts": 1, "latency_ms": 812.5, "prompt": "research.md", "retries": []}


async def drive(
    save: Callable[[int], Awaitable[None]], n: int, tasks: int
) -> tuple[float, list[float]]:
    """``tasks`` workers share ``n`` saves; return wall time and each save's latency."""
    numbers = iter(range(n))  # shared: each worker takes the next number
    latencies: list[float] = []

    async def worker() -> None:
        for i in numbers:
            start = time.perf_counter()
            await save(i)
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return time.perf_counter() - start, latencies


async def store_case(
    folder: Path,
    n: int,
    tasks: int,
    *,
    synchronous: Literal["FULL", "NORMAL"],
    window: float = 0.0,
) -> tuple[float, list[float], float]:
    """Wall time, latencies and saves per transaction of one store case (after a warm-up)."""
    path = Path(tempfile.mkdtemp(dir=folder)) / "state.db"
    now = datetime.now(UTC)
    run = RunRecord(
        "bench", "/topics.yaml", "h", "/out", "running", now, now, os.getpid(),
        socket.gethostname(), {},
    )  # fmt: skip
    async with Store.open(path, synchronous=synchronous, group_window=window) as store:
        store.start_run(run)

        async def save(i: int) -> None:
            result = StageResult(f"{i:064x}", "gpt-sim", OUTPUT, 900, 700, 128, 0.0021)
            await store.save_stage("bench", i // 3, f"stage{i % 3}", result, RECORD)

        await drive(save, min(n, 200), tasks)  # warm up: pages, statement cache, WAL
        commits = store.commits
        wall, latencies = await drive(save, n, tasks)
        per_txn = n / max(1, store.commits - commits)
    return wall, latencies, per_txn


def row(name: str, n: int, wall: float, latencies: list[float], per_txn: float | None) -> str:
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    txn = f"{per_txn:8.1f}" if per_txn is not None else f"{'-':>8}"
    return (
        f"{name:<36}{n:>6}{n / wall:>11,.0f}{txn}"
        f"{q[49] * 1000:>9.2f}{q[98] * 1000:>9.2f}{wall:>8.2f}"
    )


async def main(n: int, tasks: int, seq_n: int, folder: Path) -> None:
    print(f"{n} saves by {tasks} concurrent tasks; sequential: {seq_n} saves by one task")
    print(f"state.db under {folder}\n")
    heads = (
        ("saves", 6),
        ("saves/s", 11),
        ("per txn", 8),
        ("p50 ms", 9),
        ("p99 ms", 9),
        ("wall s", 8),
    )
    print(f"{'case':<36}" + "".join(f"{h:>{w}}" for h, w in heads))

    async def nothing(i: int) -> None:
        await asyncio.sleep(0)

    wall, lat = await drive(nothing, n, tasks)
    print(row(f"baseline: sleep(0), {tasks} tasks", n, wall, lat, None))
    cases: list[tuple[str, Literal["FULL", "NORMAL"], float]] = [
        ("FULL", "FULL", 0.0),
        ("NORMAL", "NORMAL", 0.0),
        ("FULL, group_window 2 ms", "FULL", 0.002),
    ]
    for name, sync, window in cases:
        wall, lat, per_txn = await store_case(folder, n, tasks, synchronous=sync, window=window)
        print(row(f"{name}, {tasks} tasks", n, wall, lat, per_txn))
    for sync in ("FULL", "NORMAL"):
        wall, lat, per_txn = await store_case(folder, seq_n, 1, synchronous=sync)
        print(row(f"{sync}, sequential (1 task)", seq_n, wall, lat, per_txn))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="saves per concurrent case")
    parser.add_argument("-c", "--tasks", type=int, default=200, help="concurrent tasks")
    parser.add_argument("--seq-n", type=int, default=300, help="saves per sequential case")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--gc", action="store_true", help="leave the collector's pauses in")
    args = parser.parse_args()
    if not args.gc:
        # The imported packages (openai, pydantic, ...) leave ~100k objects that a full
        # collection walks for ~50 ms on this machine; such a pause would otherwise be the
        # p99 of every case. --gc keeps it, as a real run (which does not freeze) has it.
        gc.collect()
        gc.freeze()
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="store-bench-") as tmp:
        asyncio.run(main(args.n, args.tasks, args.seq_n, Path(tmp)))
