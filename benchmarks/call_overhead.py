"""CPU cost of one model call, end to end: the openai SDK client plus the simulated server.

``orchestrate bench`` answers many calls at the same instant, and the client and the
simulated server share one event loop, so every millisecond of CPU per call delays the
others. This runs the default chain (research -> write -> edit) over the real
``OpenAIChatClient`` against a zero-latency ``SimServer``, ``-c`` calls in flight, and reports
CPU (``time.process_time``) and wall time per call. Every request is distinct, as in a run.

    python benchmarks/call_overhead.py [-n 2000] [-c 25] [--server-process] [--profile]

--server-process  serve from a second process, so this one's CPU is the client's alone (the
                  server reports its own CPU over a pipe)
--profile         cProfile the measured calls: own time by package, and the top functions
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing
import pstats
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from multiprocessing.connection import Connection
from pathlib import Path

import orchestrator
from orchestrator import ChatRequest, OpenAIChatClient, SimServer, SimSettings

REPO = Path(__file__).resolve().parent.parent
SETTINGS = SimSettings(latency_mean=0, latency_jitter=0)


def chain_stages() -> tuple[orchestrator.Stage, ...]:
    return orchestrator.load_plan(
        REPO / "configs" / "topics.example.yaml", chain=REPO / "configs" / "chain.yaml"
    ).stages


async def run_chains(
    client: OpenAIChatClient,
    stages: tuple[orchestrator.Stage, ...],
    calls: int,
    concurrency: int,
    label: str,
) -> list[float]:
    """Run chains until ``calls`` calls are done, ``concurrency`` at once; return latencies.

    Rendering each prompt (Jinja2, as the engine does) is part of the measured CPU."""
    topics = (calls + len(stages) - 1) // len(stages)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(topics):
        queue.put_nowait(i)
    latencies: list[float] = []

    async def worker() -> None:
        while not queue.empty():
            i = queue.get_nowait()
            context: dict[str, object] = {"topic": f"{label} topic number {i}: how it works"}
            for stage in stages:
                if len(latencies) >= calls:
                    return
                request = ChatRequest(
                    model=stage.model,
                    messages=stage.messages(context),
                    temperature=stage.temperature,
                    max_tokens=stage.max_tokens,
                )
                started = time.perf_counter()
                response = await client.complete(request)
                latencies.append(time.perf_counter() - started)
                context[stage.name] = response.text

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def serve(conn: Connection) -> None:
    """The --server-process child: serve, and report the CPU used between start and stop."""

    async def main() -> None:
        async with SimServer(SETTINGS) as server:
            conn.send(server.port)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, conn.recv)  # "start"
            cpu = time.process_time()
            await loop.run_in_executor(None, conn.recv)  # "stop"
            conn.send(time.process_time() - cpu)

    asyncio.run(main())


@asynccontextmanager
async def endpoint(separate: bool) -> AsyncIterator[tuple[str, Connection | None]]:
    """A base URL to call, and the pipe to a server process when there is one."""
    if not separate:
        async with SimServer(SETTINGS) as server:
            yield server.base_url, None
        return
    parent, child = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(target=serve, args=(child,))
    process.start()
    try:
        port = await asyncio.get_running_loop().run_in_executor(None, parent.recv)
        yield f"http://127.0.0.1:{port}/v1", parent
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.terminate()


def by_package(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own time grouped by the package (or stdlib module) a function lives in."""
    totals: dict[str, float] = defaultdict(float)
    for (filename, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        own = row[2]
        if filename == "~":  # a C function: name it by what it is
            group = "C: " + name.strip("<>").split(" of ")[0].split("'")[0]
        elif "site-packages/" in filename:
            group = filename.split("site-packages/")[1].split("/")[0].removesuffix(".py")
        elif "/orchestrator/" in filename:
            group = "orchestrator/" + filename.split("/orchestrator/")[1]
        else:
            group = "stdlib " + filename.split("/lib/python3")[-1].split("/", 1)[-1]
        totals[group] += own
    return sorted(totals.items(), key=lambda kv: -kv[1])


async def measure(args: argparse.Namespace) -> None:
    async with endpoint(args.server_process) as (base_url, pipe):
        client = OpenAIChatClient.create(
            api_key="simulated", base_url=base_url, concurrency=args.concurrency, timeout=60
        )
        try:
            stages = chain_stages()
            await run_chains(client, stages, 3 * args.concurrency, args.concurrency, "Warm-up")
            profiler = cProfile.Profile() if args.profile else None
            if pipe is not None:
                pipe.send("start")
            cpu, wall = time.process_time(), time.perf_counter()
            if profiler is not None:
                profiler.enable()
            latencies = await run_chains(client, stages, args.calls, args.concurrency, "Benchmark")
            if profiler is not None:
                profiler.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            server_cpu = None
            if pipe is not None:
                pipe.send("stop")
                server_cpu = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        finally:
            await client.aclose()

    n = len(latencies)
    where = "client only (server in another process)" if pipe else "client + server, one loop"
    print(f"{n} calls, {args.concurrency} in flight, {where}")
    print(f"  CPU  {1000 * cpu / n:7.3f} ms/call   ({cpu:.2f} s)")
    if server_cpu is not None:
        print(f"  CPU  {1000 * server_cpu / n:7.3f} ms/call   server process ({server_cpu:.2f} s)")
    print(f"  wall {1000 * wall / n:7.3f} ms/call   ({wall:.2f} s, {n / wall:.0f} calls/s)")
    latencies.sort()
    median, p99 = latencies[n // 2], latencies[n * 99 // 100]
    print(f"  latency median {1000 * median:.1f} ms, p99 {1000 * p99:.1f} ms")
    if profiler is not None:
        stats = pstats.Stats(profiler)
        total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
        print(f"\nown time by package (profiled: {1000 * total / n:.3f} ms/call)")
        for group, own in by_package(stats)[: args.top]:
            print(f"  {1000 * own / n:7.3f} ms/call  {100 * own / total:5.1f}%  {group}")
        print()
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--calls", type=int, default=2000, help="measured calls")
    parser.add_argument("-c", "--concurrency", type=int, default=25, help="calls in flight")
    parser.add_argument("--server-process", action="store_true", help="server in a 2nd process")
    parser.add_argument("--profile", action="store_true", help="cProfile the measured calls")
    parser.add_argument("--top", type=int, default=25, help="rows of each profile table")
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
