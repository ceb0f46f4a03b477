"""What the state store costs a whole run: the same plan with and without state.db.

``--topics`` generated topics × 3 stages on the simulated provider with near-zero latency
(so the store's share is as large as it can get), ``-c`` chains at once. Each round runs the
plan without a store (what ``compare`` and ``bench`` do) and with a new, empty store (every
stage committed before its chain goes on, nothing to reuse), alternating, in one invocation;
the ratio of medians is the store's cost. Then a third run over the full store: every stage
reused, no call.

    python benchmarks/store_run.py [--topics 300] [-c 50] [--rounds 3] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from orchestrator.measure._bench import _generated_topics
from orchestrator.session._setup import RunSetup, prepare
from orchestrator.store._store import Store


async def timed(setup: RunSetup, folder: Path, name: str, store: Store | None) -> float:
    run_dir = folder / name
    run_dir.mkdir()
    started = time.perf_counter()
    manifest = await setup.execute(name, run_dir, store=store)
    elapsed = time.perf_counter() - started
    assert manifest.totals.succeeded == len(setup.plan.topics), "a benchmark run must not fail"
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=300)
    parser.add_argument("-c", "--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per call")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        topics = folder / "topics.yaml"
        topics.write_text(_generated_topics(args.topics))
        sim = {"latency_mean": args.latency, "latency_jitter": 0.0, "output_tokens": 150}
        setup = prepare(topics, concurrency=args.concurrency, sim=sim)
        stages = args.topics * len(setup.plan.stages)
        without: list[float] = []
        with_store: list[float] = []
        await timed(setup, folder, "warm-up", None)
        for i in range(args.rounds):
            without.append(await timed(setup, folder, f"plain-{i}", None))
            async with Store.open(folder / f"state-{i}.db") as store:
                with_store.append(await timed(setup, folder, f"stored-{i}", store))
                reused = await timed(setup, folder, f"reused-{i}", store)
        plain, stored = statistics.median(without), statistics.median(with_store)
        print(
            f"{args.topics} topics × {len(setup.plan.stages)} stages = {stages} stage commits, "
            f"-c {args.concurrency}, {args.latency * 1000:.0f} ms per call, "
            f"median of {args.rounds}"
        )
        print(f"  without a store      {plain:7.2f} s")
        print(f"  with state.db        {stored:7.2f} s   ratio {stored / plain:.3f}")
        print(
            f"  store cost per stage {(stored - plain) / stages * 1000:7.3f} ms of wall time "
            f"({stages / stored:,.0f} stages/s with the store)"
        )
        print(f"  all reused (no call) {reused:7.2f} s   ({stages / reused:,.0f} stages/s)")


if __name__ == "__main__":
    asyncio.run(main())
