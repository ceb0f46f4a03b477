"""How close `orchestrate validate`'s estimates come to real simulated runs.

For each shape of run, the estimate (no call made) and then the real run on the embedded
simulator, side by side: calls, tokens, cost and wall time, with estimate / real ratios.

    python benchmarks/validate_estimate.py [--time-scale 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
from pathlib import Path

import orchestrator
from orchestrator.session._estimate import estimate
from orchestrator.session._setup import prepare

REPO = Path(__file__).resolve().parent.parent
TOPICS = "configs/topics.example.yaml"

# name, chain file addition, simulator settings, run options
SHAPES: list[tuple[str, str, dict[str, str], dict[str, object]]] = [
    ("fan of 5", "", {}, {}),
    ("sequential", "", {"TIME_SCALE_FACTOR": "0.2"}, {"sequential": True}),
    (
        "all at once, long answers",
        "",
        {"OUTPUT_TOKENS": "1500", "PER_OUTPUT_TOKEN": "0.001"},
        {"concurrency": 10},
    ),
    (
        "rpm 600",
        "limits: {gpt-4o-mini: {rpm: 600}}\n",
        {"TIME_SCALE_FACTOR": "0.1"},
        {"concurrency": 10},
    ),
    (
        "tpm 500k",
        "limits: {gpt-4o-mini: {tpm: 500000}}\n",
        {"OUTPUT_TOKENS": "200", "TIME_SCALE_FACTOR": "0.1"},
        {"concurrency": 10},
    ),
    ("100 topics, c=20", "", {"TIME_SCALE_FACTOR": "0.2"}, {"concurrency": 20, "topics": 100}),
]


def topics_file(folder: Path, count: int) -> str:
    if count <= 10:
        return str(folder / TOPICS)
    lines = [f"- Topic number {i} about something worth a short article" for i in range(count)]
    path = folder / "many.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


async def main(time_scale: float) -> None:
    print(f"{'shape':28} {'calls':>11} {'tokens':>17} {'cost':>21} {'wall s':>17} ratio")
    for name, extra, sim, options in SHAPES:
        options = dict(options)
        count = int(options.pop("topics", 10))  # type: ignore[call-overload]
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            shutil.copytree(REPO / "agents", folder / "agents")
            shutil.copytree(REPO / "configs", folder / "configs")
            chain = folder / "configs" / "chain.yaml"
            chain.write_text(chain.read_text() + extra)
            scale = time_scale * float(sim.get("TIME_SCALE_FACTOR", "1"))
            environ = {
                f"ORCHESTRATE_SIM_{k}": v for k, v in sim.items() if k != "TIME_SCALE_FACTOR"
            }
            environ["ORCHESTRATE_SIM_TIME_SCALE"] = str(scale)
            topics = topics_file(folder, count)
            kwargs = {"chain": chain, "environ": environ, **options}
            guess = estimate(prepare(topics, **kwargs))  # type: ignore[arg-type]
            m = await orchestrator.run(
                topics,
                out=folder / "out",
                progress=False,
                **kwargs,  # type: ignore[arg-type]
            )
            t = m.totals
            wall = m.wall_time_s or 0.0
            print(
                f"{name:28} {guess.calls:>5}/{t.calls:<5} "
                f"{guess.prompt_tokens + guess.completion_tokens:>8}/{t.total_tokens:<8} "
                f"{guess.cost or 0:>10.5f}/{t.cost or 0:<10.5f} "
                f"{guess.wall_s:>8.2f}/{wall:<8.2f} {guess.wall_s / wall:.2f}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--time-scale", type=float, default=0.5)
    asyncio.run(main(parser.parse_args().time_scale))
