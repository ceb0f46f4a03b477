"""``compare.json``: what ``orchestrate compare`` found, as pydantic models (``schema_version``
only grows: later work adds keys, never renames them)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

SCHEMA_VERSION = 1
Mode = Literal["sequential", "parallel"]


class ModeResult(BaseModel):
    """One mode's run, summed up."""

    mode: Mode
    concurrency: int
    run_dir: str = Field(description="the mode's run folder, relative to the comparison")
    status: str
    wall_time_s: float | None
    succeeded: int
    failed: int
    skipped: int
    calls: int
    failed_calls: int
    retries: int | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float | None = Field(description="USD; null while any model's price is unknown")


class TopicComparison(BaseModel):
    """One topic in both modes."""

    index: int
    topic: str
    slug: str
    sequential_s: float | None = Field(description="the chain's own time, slot to finish")
    parallel_s: float | None
    parallel_queued_s: float | None = Field(description="time waiting for a free slot")
    identical: bool | None = Field(description="same final output; null if either failed")
    similarity: float | None = Field(description="0..1 word-level similarity of the outputs")
    differing_stages: list[str] = Field(default_factory=list)


class Theory(BaseModel):
    """What the parallel run could take, from the sequential run's chains."""

    rounds: int = Field(description="ceil(topics / concurrency): how often the slots fill")
    best_speedup: float = Field(description="topics / rounds: the bound for equal chains")
    chain_time_min_s: float | None
    chain_time_max_s: float | None
    expected_parallel_s: float | None = Field(
        description="greedy list schedule of the measured chains on the parallel slots"
    )
    expected_speedup: float | None


class OutputsVerdict(BaseModel):
    """Did parallel execution change the outputs?"""

    compared: int = Field(description="topics that succeeded in both modes")
    identical: int
    mean_similarity: float | None
    deterministic_provider: bool
    answer: str = Field(description="the exercise's question, answered in one sentence")


class CompareReport(BaseModel):
    """Everything ``orchestrate compare`` found, as written to ``compare.json``."""

    schema_version: int = SCHEMA_VERSION
    compare_id: str
    created_at: datetime
    topics_file: str
    chain_file: str
    provider: str
    endpoint: str
    stages: list[str]
    models: list[str]
    topics: int
    concurrency: int
    sequential: ModeResult
    parallel: ModeResult | None = Field(description="null: not run, see not_comparable")
    not_comparable: str | None = Field(
        None, description="why the times say nothing about parallelism; null when they do"
    )
    speedup: float | None = Field(description="sequential wall time / parallel wall time")
    time_saved_pct: float | None
    efficiency: float | None = Field(description="measured speedup / best possible speedup")
    overhead_pct: float | None = Field(
        description="how much longer the parallel run took than the expected schedule"
    )
    theory: Theory
    outputs: OutputsVerdict
    per_topic: list[TopicComparison]
