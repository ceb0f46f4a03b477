"""Sequential vs parallel on the 10 example topics, simulated provider, 1 s mean latency.

The foundation issue's target: ``--sequential`` takes at least 8x as long as ``-c 10``, and
``-c 10`` takes about one chain's time (3 stages x 1 s). Both modes run in this one
invocation, side by side, so the ratio is not at the mercy of a noisy machine.

    python benchmarks/sequential_vs_parallel.py [--latency 1.0] [--jitter 0.2] [--repeat 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import orchestrator

REPO = Path(__file__).resolve().parent.parent
TOPICS = REPO / "configs" / "topics.example.yaml"


async def one_run(out: Path, sim: dict[str, float], **mode: object) -> tuple[float, float, int]:
    """Return (run wall time from the manifest, outer wall time, calls)."""
    started = time.perf_counter()
    # fresh: every run calls every stage, though both share one outputs root (and store).
    manifest = await orchestrator.run(TOPICS, out=out, sim=sim, fresh=True, progress=False, **mode)  # type: ignore[arg-type]
    outer = time.perf_counter() - started
    assert manifest.totals.failed == 0, "a benchmark run must not fail"
    assert manifest.wall_time_s is not None
    return manifest.wall_time_s, outer, manifest.totals.calls


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=1.0, help="mean call latency, s")
    parser.add_argument("--jitter", type=float, default=0.2, help="latency std deviation, s")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each mode")
    args = parser.parse_args()
    sim = {"latency_mean": args.latency, "latency_jitter": args.jitter, "time_scale": 1.0}

    seq, par = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            seq.append(await one_run(Path(tmp), sim, sequential=True))
            par.append(await one_run(Path(tmp), sim, concurrency=10))
    s = statistics.median(r[0] for r in seq)
    p = statistics.median(r[0] for r in par)
    chain = 3 * args.latency
    print(f"10 topics x 3 stages, simulated latency mean {args.latency}s jitter {args.jitter}s")
    print(f"{'mode':<14}{'wall s':>9}{'outer s':>9}{'calls':>7}")
    for name, wall, runs in (("sequential", s, seq), ("parallel -c10", p, par)):
        outer = statistics.median(r[1] for r in runs)
        print(f"{name:<14}{wall:>9.2f}{outer:>9.2f}{runs[0][2]:>7}")
    print(f"ratio sequential/parallel: {s / p:.2f}x (target >= 8x)")
    print(f"parallel vs one chain's time ({chain:.1f}s): {p / chain:.2f}x")
    print(f"time saved by parallel: {100 * (1 - p / s):.1f}%")


if __name__ == "__main__":
    asyncio.run(main())
