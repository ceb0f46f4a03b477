"""What a run will take, before spending anything: calls, tokens, cost and wall time.

Prompts are rendered for real, with each earlier stage's output stood in by text of its
expected length. Answer lengths and latencies come from the simulated provider's settings
when it answers; for a real endpoint they are assumptions, said out loud. The wall time is
a small discrete-event simulation of the run's schedule — the workers, and each (endpoint,
model)'s request and token buckets as ``_limits`` paces them — repeated with latency jitter
drawn as the simulator draws it, so that a wave's slowest chain counts as it does in a run.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config._sim_settings import SimSettings
from ..config._topics import Topic
from ..engine._budget import reservations
from ..provider._limits import Limit
from ..provider._tokens import CHARS_PER_TOKEN, estimate_message_tokens, estimate_tokens
from ..provider.sim._server import request_seed
from ..provider.sim._text import generate
from ._schedule_sim import Call, one_schedule
from ._setup import RunSetup, prepare

# A real endpoint's answers: what a typical answer fills of max_tokens (or its length when
# there is no max_tokens), the time to its first token and the speed of the rest.
ASSUMED_FILL = 0.6
ASSUMED_TOKENS = 500
ASSUMED_FIRST_TOKEN_S = 0.6
ASSUMED_TOKENS_PER_S = 60.0
SIM_DEFAULT_MAX_TOKENS = 4096  # the simulator's own cap when a request sets none
# Measured on a quiet 2-core machine against the embedded simulator: a run's fixed cost,
# each call's wait beyond its latency (HTTP, committing its stage), and the event loop's
# CPU per call (the SDK, HTTP and our bookkeeping, and when simulated the server's side).
# One loop serves every call, so at high concurrency and short latencies that CPU, not the
# latency, sets the pace. They matter in demos only; a busy machine runs slower.
RUN_OVERHEAD_S = 0.05
CALL_WAIT_S = 0.006
SIM_CALL_CPU_S = 0.005
CALL_CPU_S = 0.003
PROMPT_SAMPLE = 500  # topics whose prompts are rendered; more are scaled from these
SIM_SAMPLE = 30  # topics whose simulated chains are generated
SIMULATION_CALLS = 300_000  # calls simulated in all (repetitions × calls per repetition)


@dataclass(frozen=True)
class StageEstimate:
    """One stage over every topic."""

    name: str
    model: str
    endpoint: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost: float | None  # USD expected; None when the model has no price
    latency_s: float  # seconds per call, expected


@dataclass(frozen=True)
class Estimate:
    """The whole run, expected (and ``max_cost``: the most it could spend)."""

    topics: int
    stages: tuple[StageEstimate, ...]
    concurrency: int
    wall_s: float
    sequential_s: float  # the same calls one chain at a time, for comparison
    paced_by: str  # what sets the wall time: concurrency, a rate limit, or one long chain
    max_cost: float | None  # every answer at max_tokens; None without prices or max_tokens
    assumptions: tuple[str, ...] = ()
    retries: int = 0  # extra calls expected from the simulator's fault rates

    @property
    def calls(self) -> int:
        return sum(s.calls for s in self.stages) + self.retries

    @property
    def prompt_tokens(self) -> int:
        return sum(s.prompt_tokens for s in self.stages)

    @property
    def completion_tokens(self) -> int:
        return sum(s.completion_tokens for s in self.stages)

    @property
    def cost(self) -> float | None:
        costs = [s.cost for s in self.stages]
        return None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)


def estimate(setup: RunSetup) -> Estimate:
    """Estimate the run ``setup`` describes; no call is made, nothing is written."""
    plan, sim = setup.plan, setup.sim_settings
    n = len(plan.topics)
    calls = _simulated_calls(setup, sim) if sim is not None else _assumed_calls(setup)
    stages = []
    for stage, call in zip(plan.stages, calls, strict=True):
        cost = None
        if setup.prices is not None:
            one = setup.prices.cost(
                stage.model,
                prompt_tokens=round(call.prompt_tokens),
                completion_tokens=round(call.completion_tokens),
            )
            cost = None if one is None else one * n
        stages.append(
            StageEstimate(
                name=stage.name,
                model=stage.model,
                endpoint=setup.endpoints.get(stage.name, setup.endpoint_label),
                calls=n,
                prompt_tokens=round(call.prompt_tokens * n),
                completion_tokens=round(call.completion_tokens * n),
                cost=cost,
                latency_s=call.latency_s,
            )
        )
    wall, paced_by = _simulate(setup, calls)
    return Estimate(
        topics=n,
        stages=tuple(stages),
        concurrency=setup.width,
        wall_s=wall,
        sequential_s=n * sum(c.latency_s for c in calls) + RUN_OVERHEAD_S,
        paced_by=paced_by,
        max_cost=_max_cost(setup),
        assumptions=_assumptions(setup),
        retries=_retries(sim, n * len(calls)),
    )


def _sample(topics: Sequence[Topic], size: int) -> Sequence[Topic]:
    """Up to ``size`` topics spread evenly over all of them."""
    step = max(1, len(topics) // size)
    return topics[::step][:size]


def _simulated_calls(setup: RunSetup, sim: SimSettings) -> list[Call]:
    """The simulator answers a request with text drawn from a hash of it: its own
    generator, run here on a sample of topics (no server, no HTTP), gives each stage's
    prompt and answer lengths and latencies as a run would meet them."""
    stages = setup.plan.stages
    sums = [[0.0, 0.0, 0.0] for _ in stages]
    sample = _sample(setup.plan.topics, SIM_SAMPLE)
    for topic in sample:
        context: dict[str, Any] = {**topic.vars, "topic": topic.text}
        for i, stage in enumerate(stages):
            messages = stage.messages(context)
            body: dict[str, Any] = {"model": stage.model, "messages": messages}
            if stage.temperature is not None:
                body["temperature"] = stage.temperature
            if stage.max_tokens is not None:
                body["max_tokens"] = stage.max_tokens
            seed = request_seed(body)
            target = max(1, round(sim.output_tokens * random.Random(seed).uniform(0.8, 1.2)))
            text, _ = generate(
                messages,
                seed=seed,
                max_tokens=stage.max_tokens or SIM_DEFAULT_MAX_TOKENS,
                target_tokens=target,
            )
            answer = estimate_tokens(text)
            draw = random.Random(f"latency:{sim.seed}:{seed}")
            latency = max(0.0, draw.gauss(sim.latency_mean, sim.latency_jitter))
            latency += sim.per_output_token * answer
            totals = sums[i]
            totals[0] += estimate_message_tokens(messages)
            totals[1] += answer
            totals[2] += sim.real_seconds(latency) + CALL_WAIT_S + SIM_CALL_CPU_S
            context[stage.name] = text
    k = max(1, len(sample))
    return [Call(p / k, a / k, t / k, SIM_CALL_CPU_S) for p, a, t in sums]


def _assumed_calls(setup: RunSetup) -> list[Call]:
    """A real endpoint's answers are unknown before it is called: assume each fills
    ``ASSUMED_FILL`` of its max_tokens, and stand earlier outputs in with text that long."""
    stages = setup.plan.stages
    answers = [
        round(s.max_tokens * ASSUMED_FILL) if s.max_tokens else ASSUMED_TOKENS for s in stages
    ]
    sums = [0.0 for _ in stages]
    sample = _sample(setup.plan.topics, PROMPT_SAMPLE)
    for topic in sample:
        context: dict[str, Any] = {**topic.vars, "topic": topic.text}
        for i, stage in enumerate(stages):
            try:
                sums[i] += estimate_message_tokens(stage.messages(context))
            except Exception:  # a template that needs the real text (parses it as JSON)
                sums[i] += sum(answers) + 200
            context[stage.name] = "x" * (CHARS_PER_TOKEN * answers[i])
    k = max(1, len(sample))
    return [
        Call(p / k, a, ASSUMED_FIRST_TOKEN_S + a / ASSUMED_TOKENS_PER_S + CALL_CPU_S, CALL_CPU_S)
        for p, a in zip(sums, answers, strict=True)
    ]


def _limits_of(setup: RunSetup) -> dict[str, Limit]:
    """The limits each model is paced by: configured, or the simulator's own (learned from
    its headers on the first answer)."""
    limiters = setup.limiters()
    sim = setup.sim_settings
    result = {}
    for stage in setup.plan.stages:
        limit = limiters.limit_for(stage.model)
        if limit.rpm is None and limit.tpm is None and sim is not None:
            limit = Limit(sim.rpm, sim.tpm)
        result[stage.model] = limit
    return result


def _simulate(setup: RunSetup, calls: Sequence[Call]) -> tuple[float, str]:
    """The run's expected wall time, and what sets it."""
    plan = setup.plan
    n, workers = len(plan.topics), setup.workers
    if n == 0:
        return 0.0, "nothing to run"
    limits = _limits_of(setup)
    sim = setup.sim_settings
    jitter = 0.0 if sim is None else sim.real_seconds(sim.latency_jitter)
    total = n * len(plan.stages)
    repeats = max(1, min(25, SIMULATION_CALLS // total)) if jitter > 0 else 1
    rng = random.Random(0)
    walls, unlimited = [], []
    for _ in range(repeats):
        # The same draws with and without the limits, to see whether they set the pace.
        seed = rng.random()
        walls.append(one_schedule(setup, calls, limits, jitter, seed))
        unlimited.append(one_schedule(setup, calls, {}, jitter, seed))
    wall, free = sum(walls) / repeats + RUN_OVERHEAD_S, sum(unlimited) / repeats + RUN_OVERHEAD_S
    if wall > free * 1.1:
        paced = [
            f"{kind} limit of {model}"
            for model, limit in limits.items()
            for kind, value in (("rpm", limit.rpm), ("tpm", limit.tpm))
            if value
        ]
        return wall, "the " + " / ".join(paced) if paced else "the rate limits"
    if workers >= n:
        return wall, "the slowest chain (every chain runs at once)"
    return wall, f"concurrency {setup.width}"


def _max_cost(setup: RunSetup) -> float | None:
    """The most the run could spend: every prompt at its bound, every answer at max_tokens."""
    prices, plan = setup.prices, setup.plan
    if prices is None or any(s.max_tokens is None for s in plan.stages):
        return None
    if prices.unknown(s.model for s in plan.stages):
        return None
    step = max(1, len(plan.topics) // PROMPT_SAMPLE)
    sample = plan.topics[::step][:PROMPT_SAMPLE]
    total = sum(sum(reservations(plan.stages, topic, prices).values()) for topic in sample)
    return total * len(plan.topics) / max(1, len(sample))


def _assumptions(setup: RunSetup) -> tuple[str, ...]:
    notes = []
    if setup.sim_settings is None or setup.endpoints:
        notes.append(
            f"real endpoints: answers assumed to fill {ASSUMED_FILL:.0%} of max_tokens "
            f"({ASSUMED_TOKENS} tokens without one), at {ASSUMED_TOKENS_PER_S:.0f} tokens/s "
            f"after {ASSUMED_FIRST_TOKEN_S}s to the first"
        )
    limiters = setup.limiters()
    if setup.sim_settings is None and all(
        limiters.limit_for(s.model) == Limit() for s in setup.plan.stages
    ):
        notes.append(
            "no rate limits configured: the provider's own, learned at run time, may slow it"
        )
    sim = setup.sim_settings
    if sim is not None and (_fault_rate(sim) > 0 or sim.hang_rate > 0):
        notes.append("the simulator's fault rates add retries and backoff, not in the wall time")
    return tuple(notes)


def _fault_rate(sim: SimSettings) -> float:
    faults = sim.error_rate_429 + sim.error_rate_500 + sim.error_rate_503 + sim.drop_rate
    return faults + sim.bad_response_rate


def _retries(sim: SimSettings | None, calls: int) -> int:
    if sim is None:
        return 0
    p = min(_fault_rate(sim), 0.95)
    return round(calls * p / (1 - p))


def validate(
    topics: str | Path,
    *,
    chain: str | Path | None = None,
    concurrency: int | None = None,
    sequential: bool = False,
    provider: str = "auto",
    limit: int | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    retry_passes: int | None = None,
    max_cost: float | None = None,
    sim: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Estimate:
    """Check everything ``run()`` would check with these options, and estimate the run:
    calls, tokens and cost per stage, and the wall time under the concurrency and limits.
    No call is made and nothing is written. Raises ``ConfigError`` as ``run()`` would."""
    return estimate(
        prepare(
            topics,
            chain=chain,
            concurrency=concurrency,
            sequential=sequential,
            provider=provider,
            limit=limit,
            rpm=rpm,
            tpm=tpm,
            retry_passes=retry_passes,
            max_cost=max_cost,
            sim=sim,
            environ=environ,
        )
    )
