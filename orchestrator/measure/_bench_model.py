"""``bench.json``: what ``orchestrate bench`` measured, as pydantic models."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

SCHEMA_VERSION = 1


class BenchCell(BaseModel):
    """One (batch size, concurrency) run. Times are in simulated seconds unless ``_real``."""

    topics: int
    concurrency: int
    measured_s: float
    theoretical_s: float
    deviation_pct: float = Field(description="(measured / theoretical - 1) × 100")
    chain_time_s: float = Field(description="the chain time the theory used")
    real_s: float = Field(description="the cell's wall time in real seconds")
    time_scale: float = Field(description="this run's real seconds per simulated second")
    calls: int
    failed: int
    run_json: str = Field(description="the cell's run.json, relative to the bench folder")


class BenchReport(BaseModel):
    """Everything ``orchestrate bench`` measured, as written to ``bench.json``."""

    schema_version: int = SCHEMA_VERSION
    bench_id: str
    created_at: datetime
    provider: str
    endpoint: str
    planned: int = Field(description="runs in the sweep; fewer cells: it was interrupted")
    chain_file: str
    stages: list[str]
    sizes: list[int]
    concurrency: list[int]
    latency_s: float | None = Field(description="simulated seconds per call; null: real")
    jitter_s: float | None
    time_scale: float | None = Field(
        description="real seconds per simulated second, when one was given for every run"
    )
    scaling: str = Field(description="how simulated time was mapped to real time")
    theory: str
    cells: list[BenchCell] = Field(default_factory=list)

    @property
    def worst_deviation_pct(self) -> float | None:
        return max((abs(c.deviation_pct) for c in self.cells), default=None)
