"""``run.json``: the manifest of a run, as pydantic models, and how it is written.

``schema_version`` only grows: later work adds keys, never renames them; a value that is not
measured yet is ``null``. ``_manifest.ManifestObserver`` builds it from the engine's events.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from .._files import atomic_write_text
from ..trace._verdict import Parallelism

SCHEMA_VERSION = 1


TopicStatus = Literal["pending", "running", "succeeded", "failed", "skipped"]


class StageRecord(BaseModel):
    """One stage of one topic."""

    name: str
    status: Literal["running", "succeeded", "failed", "interrupted"] = "running"
    model: str | None = None
    started_at: datetime
    ended_at: datetime | None = None
    latency_s: float | None = None
    attempts: int = Field(0, description="calls made for this stage (0 when reused)")
    failed_calls: int = Field(0, description="of those, the calls that failed")
    rate_limited: int = Field(0, description="of those, the ones refused with a 429")
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = Field(
        None, description="USD this stage spent (0 when reused); null when the price is unknown"
    )
    cached: bool | None = Field(
        None, description="served from the store: an identical request was answered before"
    )
    output: str | None = Field(None, description="the stage's output file, relative to the run")
    error: str | None = None
    warning: str | None = Field(
        None, description="accepted, but worth a look: e.g. an answer cut off at max_tokens"
    )


class Waits(BaseModel):
    """Seconds spent waiting, by cause: for a free slot (concurrency), for the rate
    limiters, and in backoff between attempts."""

    slot: float = 0.0
    limiter: float = 0.0
    backoff: float = 0.0

    def add(self, kind: str, seconds: float) -> None:
        if kind in ("slot", "limiter", "backoff"):
            setattr(self, kind, round(getattr(self, kind) + seconds, 6))


class TopicRecord(BaseModel):
    """One topic: how its chain went."""

    index: int
    topic: str
    slug: str
    status: TopicStatus = "pending"
    output: str | None = Field(None, description="the final article, relative to the run")
    failed_stage: str | None = None
    error: str | None = None
    passes: int = 0
    queued_s: float | None = None
    waits: Waits = Field(default_factory=Waits)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    latency_s: float | None = None
    cost: float | None = Field(None, description="USD; null when a stage's price is unknown")
    stages: list[StageRecord] = Field(default_factory=list)


class Totals(BaseModel):
    """Sums over the run."""

    topics: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    pending: int = 0
    calls: int = 0
    failed_calls: int = 0
    retries: int | None = 0
    rate_limited: int | None = 0
    recovered: int = Field(0, description="topics that succeeded in a retry pass")
    waits: Waits = Field(default_factory=Waits)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    reused: int = Field(0, description="stages served from the store instead of a call")
    warnings: int = Field(0, description="stages accepted with a warning (see their warning)")
    cost: float | None = Field(
        None, description="USD spent by the run (all sessions); null when a price is unknown"
    )


class TraceExport(BaseModel):
    """What the OpenTelemetry export delivered (``--otlp-endpoint``); its flush at the end
    is not part of the run's wall time."""

    endpoint: str
    spans: int = Field(description="spans handed to the exporter")
    delivered: int = Field(description="spans the endpoint accepted")
    undelivered: int = Field(description="spans dropped, refused or still queued at the limit")
    flush_s: float = Field(description="seconds spent flushing after the run")
    error: str | None = None
    dropped: int = Field(0, description="of the undelivered: dropped, the queue being full")
    failed: int = Field(0, description="of the undelivered: in an export that failed")


class DisabledObserver(BaseModel):
    """A reporting observer (progress, trace, event log, ...) that failed and was switched
    off for the rest of the run; the run went on without it."""

    observer: str
    error: str
    event: str = Field(description="the event it failed on")


class RunManifest(BaseModel):
    """Everything about one run, as written to ``run.json``."""

    schema_version: int = SCHEMA_VERSION
    run_id: str
    status: Literal["running", "finished", "stopped", "interrupted", "failed"] = "running"
    stop_reason: str | None = None
    mode: Literal["parallel", "sequential"]
    concurrency: int
    provider: str
    endpoint: str
    endpoints: dict[str, str] | None = Field(
        None,
        description="the stages whose chain or stage names its own base_url, and that URL; "
        "null when every stage calls the run's provider",
    )
    topics_file: str
    chain_file: str
    output_dir: str = Field(description="the run folder")
    stages: list[str]
    started_at: datetime
    ended_at: datetime | None = None
    wall_time_s: float | None = Field(
        None, description="seconds of running, summed over the sessions of a resumed run"
    )
    sessions: int = Field(1, description="1, plus one per resume")
    max_cost: float | None = Field(None, description="the budget in USD (--max-cost), if any")
    totals: Totals = Field(default_factory=Totals)
    parallelism: Parallelism | None = None
    trace_export: TraceExport | None = None
    disabled_observers: list[DisabledObserver] | None = Field(
        None,
        description="reporting observers switched off after failing (the run went on); "
        "null when none failed",
    )
    topics: list[TopicRecord] = Field(default_factory=list)


def write_manifest(path: Path, manifest: RunManifest) -> None:
    """Write ``run.json`` atomically."""
    atomic_write_text(path, manifest.model_dump_json(indent=2) + "\n")
