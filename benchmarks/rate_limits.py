"""Full speed under a provider's rate limits: the rate-limits issue's targets, measured.

The simulated provider enforces 1,200 RPM per model the way providers do — as 20 requests
per second — and answers excess with 429 + retry-after. 100 topics x 3 stages run at
``-c 64``; every scenario is a fresh run (nothing is reused between runs).

    ideal = (calls - the server's one-second burst of 20) / 20 per second + one chain

Scenarios, side by side in one invocation:
  configured   --rpm 1200                     target: within 5% of ideal, <= 0.5% 429s
  learned      no limit, from x-ratelimit-*   target: within 15% of ideal, < 3% 429s
  minute       --rpm 1200 over a 60 s window  the baseline: a whole minute's budget at
               once, like AsyncLimiter(1200, 60) or the openai-cookbook script
  tpm          --tpm 1,800,000 (30k tokens/s) the token limit binds: ideal = charged tokens
               (prompt + max_tokens, as providers count them) / 30k per second + one chain
  faults       10% 500/503, 2% dropped        target: every topic done, no duplicate stage
  quota        insufficient_quota             target: stops within 2 s, ~concurrency calls

    python benchmarks/rate_limits.py [--topics 100] [--latency 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
from pathlib import Path
from typing import Any

import structlog

import orchestrator

RPM, BURST, CONCURRENCY, TPM = 1200, 20, 64, 1_800_000


def topics_file(folder: Path, n: int) -> Path:
    path = folder / "topics.yaml"
    path.write_text("".join(f"- Benchmark topic number {i}\n" for i in range(n)))
    return path


def chain_file(folder: Path, window: float) -> Path:
    repo = Path(__file__).resolve().parent.parent
    path = folder / f"chain-{window}.yaml"
    path.write_text(
        f"stages: [research, write, edit]\nagents_dir: {repo / 'agents'}\n"
        f"defaults: {{model: gpt-4o-mini}}\nlimit_window: {window}\n"
    )
    return path


async def scenario(
    name: str, topics: Path, chain: Path, sim: dict[str, Any], **options: Any
) -> dict[str, Any]:
    out = topics.parent / name
    manifest = await orchestrator.run(
        topics, chain=chain, out=out, concurrency=CONCURRENCY, sim=sim, progress=False, **options
    )
    t = manifest.totals
    duplicated = sum(len(r.stages) != len({s.name for s in r.stages}) for r in manifest.topics)
    max_tokens = {
        s.name: s.max_tokens or 0 for s in orchestrator.load_plan(topics, chain=chain).stages
    }
    charged = sum(
        (st.prompt_tokens or 0) + max_tokens[st.name] * st.attempts
        for r in manifest.topics
        for st in r.stages
    )
    return {
        "charged": charged,
        "name": name,
        "wall": manifest.wall_time_s or 0.0,
        "calls": t.calls,
        "429": t.rate_limited or 0,
        "retries": t.retries or 0,
        "done": t.succeeded,
        "topics": t.topics,
        "duplicated": duplicated,
        "status": manifest.status,
        "reason": manifest.stop_reason,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.5, help="seconds per call")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    base = {"latency_mean": args.latency, "latency_jitter": 0.0, "rpm": RPM}
    ideal_chain = 3 * args.latency

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        topics = topics_file(folder, args.topics)
        one_s, minute = chain_file(folder, 1.0), chain_file(folder, 60.0)
        rows = [
            await scenario("configured", topics, one_s, base, rpm=RPM),
            await scenario("learned", topics, one_s, base),
            await scenario("minute", topics, minute, base, rpm=RPM),
            await scenario("tpm", topics, one_s, {**base, "rpm": None, "tpm": TPM}, tpm=TPM),
            await scenario(
                "faults",
                topics,
                one_s,
                {
                    **base,
                    "rpm": None,
                    "error_rate_500": 0.05,
                    "error_rate_503": 0.05,
                    "drop_rate": 0.02,
                },
                retry_passes=1,
            ),
            await scenario("quota", topics, one_s, {**base, "insufficient_quota": True}),
        ]

    print(
        f"{args.topics} topics x 3 stages, -c {CONCURRENCY}, server enforces {RPM} RPM as "
        f"{RPM // 60}/s, call latency {args.latency}s"
    )
    print(
        f"{'scenario':<11}{'wall s':>8}{'ideal s':>9}{'vs ideal':>10}{'calls':>7}"
        f"{'429s':>6}{'429 %':>7}{'retries':>9}{'done':>9}{'dup':>5}"
    )
    needed = 3 * args.topics  # the calls the work needs; retries of 429s do not count
    ideal_s = (needed - BURST) / (RPM / 60) + ideal_chain
    for row in rows:
        calls = row["calls"]
        ideal = ideal_s if row["name"] in ("configured", "learned", "minute") else None
        if row["name"] == "tpm":  # the token bucket binds; its one-second burst is TPM/60
            ideal = (row["charged"] - TPM / 60) / (TPM / 60) + ideal_chain
        vs = f"{row['wall'] / ideal:.3f}x" if ideal else "-"
        share = 100 * row["429"] / calls if calls else 0.0
        print(
            f"{row['name']:<11}{row['wall']:>8.2f}{(f'{ideal:.2f}' if ideal else '-'):>9}"
            f"{vs:>10}{calls:>7}{row['429']:>6}{share:>6.2f}%{row['retries']:>9}"
            f"{row['done']:>5}/{row['topics']:<3}{row['duplicated']:>5}"
        )
    quota = rows[-1]
    print(
        f"quota run: {quota['status']} after {quota['wall']:.2f}s and {quota['calls']} "
        f"call(s): {quota['reason']}"
    )


if __name__ == "__main__":
    asyncio.run(main())
