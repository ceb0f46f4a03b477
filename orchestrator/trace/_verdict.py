"""The parallelism verdict: did the calls fan out, or climb a staircase — and why.

Effective parallelism is the sum of call time over the wall time: about 1 when calls ran one
after another, about N when N ran side by side. With two or more chains, below 1.5 is a
staircase; at or above 0.7 × min(allowed concurrency, chains) a fan; in between, the numbers
say how far from either it was.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field

STAIRCASE_BELOW = 1.5
FAN_SHARE = 0.7
_PACING_SHARE = 0.25  # waits above this share of chain time set the pace

Verdict = Literal["fan", "staircase", "between"]
Pace = Literal["concurrency", "rate limiter", "backoff", "one by one", "overhead", "tail"]


class Parallelism(BaseModel):
    """How much the calls of a run (of its last session, if resumed) overlapped."""

    effective: float | None = Field(None, description="sum of call time / wall time")
    peak: int | None = Field(None, description="most calls in flight at once")
    allowed: int | None = Field(None, description="chains allowed at once (concurrency)")
    chains: int | None = Field(None, description="chains that ran")
    call_time_s: float | None = None
    wall_time_s: float | None = None
    wait_share: float | None = Field(
        None, description="share of chain time spent waiting on rate limits and backoff"
    )
    verdict: Verdict | None = Field(None, description="fan, staircase, between; null: < 2 chains")
    paced_by: Pace | None = Field(None, description="what set the pace of a slow run")
    explanation: str | None = None


def peak_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The most intervals open at one instant (touching ends do not overlap)."""
    changes = sorted(
        (t, d) for start, end in intervals for t, d in ((start, 1), (end, -1)) if end >= start
    )
    peak = count = 0
    for _, delta in changes:  # at equal times -1 sorts first
        count += delta
        peak = max(peak, count)
    return peak


def assess(
    *,
    calls: list[tuple[float, float]],
    wall: float,
    allowed: int,
    chains: int,
    chain_time: float,
    limiter_wait: float,
    backoff_wait: float,
    refused: int = 0,
) -> Parallelism:
    """The verdict from the numbers alone: call intervals, the wall time, the concurrency
    allowed, how many chains ran, their summed time and what they spent waiting, and how
    many calls the provider refused with a 429 (its limits, not ours, then set the pace)."""
    call_time = sum(end - start for start, end in calls)
    effective = round(call_time / wall, 3) if wall > 0 else 0.0
    peak = peak_overlap(calls)
    waits = limiter_wait + backoff_wait
    wait_share = waits / chain_time if chain_time > 0 else 0.0
    numbers = Parallelism(
        effective=effective,
        peak=peak,
        allowed=allowed,
        chains=chains,
        call_time_s=round(call_time, 6),
        wall_time_s=round(wall, 6),
        wait_share=round(wait_share, 4),
    )
    if not calls:
        numbers.explanation = "no calls were made"
        return numbers
    if chains < 2:
        numbers.explanation = "one chain: nothing to overlap"
        return numbers
    fan_at = FAN_SHARE * min(allowed, chains)
    calls_at_once = "1 call" if peak == 1 else f"{peak} calls"
    said = (
        f"effective parallelism {effective:.2f} (peak {calls_at_once} at once, {allowed} allowed)"
    )
    if effective >= max(fan_at, STAIRCASE_BELOW):
        numbers.verdict = "fan"
        numbers.explanation = f"fan: {said}, over {chains} chains"
        return numbers
    share = (lambda seconds: seconds / chain_time) if chain_time > 0 else (lambda _: 0.0)
    pace, advice = _pace(
        allowed=allowed,
        peak=peak,
        limiter_share=share(limiter_wait),
        backoff_share=share(backoff_wait),
        gap_share=share(max(0.0, chain_time - call_time - waits)),
        refused=refused,
        longest=_outlier(calls),
        wall=wall,
    )
    numbers.paced_by = pace
    if effective < STAIRCASE_BELOW:
        numbers.verdict = "staircase"
        numbers.explanation = f"staircase: {said}; {advice}"
    else:
        numbers.verdict = "between"
        numbers.explanation = (
            f"between a fan and a staircase: {said}; a fan needs {fan_at:.1f} "
            f"(0.7 × min(concurrency {allowed}, chains {chains})); {advice}"
        )
    return numbers


def _outlier(calls: list[tuple[float, float]]) -> float:
    """The longest call, when it stands out (4× the median of the others or more), else 0."""
    durations = sorted(end - start for start, end in calls)
    longest, others = durations[-1], durations[:-1]
    return longest if not others or longest >= 4 * statistics.median(others) else 0.0


def _pace(
    *,
    allowed: int,
    peak: int,
    limiter_share: float,
    backoff_share: float,
    gap_share: float,
    refused: int = 0,
    longest: float = 0.0,
    wall: float = 0.0,
) -> tuple[Pace, str]:
    """What held the run back, and what to change."""
    if allowed <= 1:
        return "concurrency", (
            "concurrency 1 set the pace (--sequential or -c 1): one chain at a time; "
            "run with -c N to overlap chains"
        )
    if refused and max(limiter_share, backoff_share) >= _PACING_SHARE:
        return "rate limiter", (
            f"the provider's rate limits set the pace: {refused} call(s) refused with 429, "
            f"and {limiter_share + backoff_share:.0%} of chain time waited on the pauses and "
            "backoff they asked for; lower -c or --rpm/--tpm to stay under them, or ask the "
            "provider for a higher tier"
        )
    if limiter_share >= _PACING_SHARE and limiter_share >= backoff_share:
        return "rate limiter", (
            f"the rate limiter set the pace: {limiter_share:.0%} of chain time waited on "
            "rpm/tpm limits; raise --rpm/--tpm (or the chain's limits:) if your provider "
            "tier allows more"
        )
    if backoff_share >= _PACING_SHARE:
        return "backoff", (
            f"retries set the pace: {backoff_share:.0%} of chain time in backoff after "
            "errors; see the failures, and lower -c if they are 429s"
        )
    if peak <= 1 and wall > 0 and longest >= 0.5 * wall:  # a hang, not a blocked loop
        return "tail", (
            f"one call took {longest:.1f}s of the {wall:.1f}s wall time — a slow or hung "
            "answer — and nothing else was left to run beside it; a shorter timeout would "
            "fail it sooner and let the retry pass take over"
        )
    if peak <= 1:
        return "one by one", (
            f"calls were awaited one by one (never more than 1 in flight, {allowed} allowed): "
            "something blocks the event loop — a synchronous client or observer — or "
            "serialises the calls"
        )
    if gap_share >= _PACING_SHARE:
        return "overhead", (
            f"{gap_share:.0%} of chain time went between calls (rendering prompts, saving "
            "stages, the client's own work): the calls are short for this concurrency on "
            "this machine; fewer chains at once would lose little"
        )
    return "tail", (
        "a few long chains set the wall time while the rest had finished; more topics per "
        "run, or splitting the slowest stage, would overlap more"
    )
