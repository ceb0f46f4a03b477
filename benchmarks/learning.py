"""What learning the limits costs: the same run with limits configured and with limits to
learn from the server's headers, side by side in one invocation.

The server is the simulator in this process, reached as any OpenAI-compatible endpoint
(``OPENAI_BASE_URL``), so the limiter learns as it does against a real provider. Each case
runs ``--repeat`` times, alternating, every run ``--fresh`` in a new outputs folder:

  configured  --rpm/--tpm given (nothing to learn)        the baseline
  learned     no limits given; the server sends none       target: <= baseline + 0.5 s
  learned-1   no limits given; the server says -1 (none)   target: <= baseline + 0.5 s
  learned-rpm no limits given; the server enforces 1,200 RPM and says so

    python benchmarks/learning.py [--topics 10] [--latency 3] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path
from typing import Any

import orchestrator
from orchestrator import SimServer, SimSettings


async def one(
    folder: Path,
    name: str,
    topics: Path,
    knobs: dict[str, Any],
    args: argparse.Namespace,
    **opt: Any,
) -> tuple[float, int]:
    settings = SimSettings(latency_mean=args.latency, latency_jitter=0.0, **knobs)
    async with SimServer(settings) as server:
        manifest = await orchestrator.run(
            topics,
            out=folder / name,
            concurrency=args.concurrency,
            fresh=True,
            progress=False,
            environ={"OPENAI_BASE_URL": server.base_url},
            **opt,
        )
    assert manifest.totals.succeeded == manifest.totals.topics, manifest.status
    return manifest.wall_time_s or 0.0, manifest.totals.rate_limited or 0


async def main(args: argparse.Namespace) -> None:
    cases: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("configured", {}, {"rpm": 100_000, "tpm": 100_000_000}),
        ("learned", {"ratelimit_headers": False}, {}),
        ("learned-1", {"unlimited_header": "-1"}, {}),
        ("learned-rpm", {"rpm": 1200}, {}),
    ]
    walls: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    refused: dict[str, int] = dict.fromkeys(walls, 0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        topics = folder / "topics.yaml"
        topics.write_text("".join(f"- Learning topic {i}\n" for i in range(args.topics)))
        for r in range(args.repeat):
            for name, knobs, opt in cases:
                wall, n = await one(folder / str(r), name, topics, knobs, args, **opt)
                walls[name].append(wall)
                refused[name] += n
    base = statistics.median(walls["configured"])
    print(f"{args.topics} topics x 3 stages, latency {args.latency}s, -c {args.concurrency}")
    print(f"{'case':12} {'median s':>9} {'vs configured':>14} {'429s':>5}")
    for name in walls:
        median = statistics.median(walls[name])
        print(f"{name:12} {median:9.2f} {median - base:+13.2f}s {refused[name]:5d}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--latency", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
