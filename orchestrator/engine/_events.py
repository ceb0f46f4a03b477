"""What the engine reports, and the one small protocol everything else listens through.

The manifest, the output files, the console and (later) the store and the traces are all
``Observer``s: the engine knows nothing about any of them. Times (``at``, ``started``) are
readings of the run's monotonic clock in seconds; ``RunStarted.wall_start`` anchors them to
wall-clock time.

An observer's ``on_event`` is awaited inline, in order, before the engine goes on — so an
observer that must finish something first (the store committing a stage before the next
starts) simply awaits it. Keep the others cheap: they run on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from ..config._topics import Topic
from ..provider._client import ChatRequest, ChatResponse

ChainStatus = Literal["succeeded", "failed", "skipped"]  # skipped: halted before sending


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    at: float
    wall_start: datetime
    mode: Literal["parallel", "sequential"]
    concurrency: int
    provider: str
    endpoint: str
    topics: int
    stages: Sequence[str]
    max_cost: float | None = None
    # The stages whose calls go to an endpoint of their own (a chain's or stage's
    # base_url), and its URL; the others go to ``endpoint``.
    endpoints: Mapping[str, str] = field(default_factory=dict)
    # A resumed run: when it first started, how long its earlier sessions ran, which
    # session this is.
    first_started: datetime | None = None
    earlier_wall_s: float = 0.0
    session: int = 1


@dataclass(frozen=True, slots=True)
class Waited:
    """Time a topic spent waiting: ``kind`` is ``"slot"`` (queued for a free worker) here,
    and later also ``"limiter"`` and ``"backoff"``."""

    topic: Topic
    stage: str | None
    kind: str
    started: float
    at: float


@dataclass(frozen=True, slots=True)
class ChainStarted:
    topic: Topic
    at: float


@dataclass(frozen=True, slots=True)
class StageStarted:
    topic: Topic
    stage: str
    at: float


@dataclass(frozen=True, slots=True)
class CallStarted:
    topic: Topic
    stage: str
    attempt: int
    model: str
    at: float
    request: ChatRequest | None = None  # what is being sent (traces record max_tokens)


@dataclass(frozen=True, slots=True)
class CallFinished:
    topic: Topic
    stage: str
    attempt: int
    response: ChatResponse
    started: float
    at: float
    cost: float | None = None  # USD; None when the price is unknown


@dataclass(frozen=True, slots=True)
class CallFailed:
    topic: Topic
    stage: str
    attempt: int
    error: BaseException
    started: float
    at: float


@dataclass(frozen=True, slots=True)
class StageFinished:
    """A stage has its output: from a call (``source="call"``), from an identical request
    stored earlier (``"reused"``: no call, nothing spent), or restored from the earlier
    session of a resumed run (``"resumed"``: ``record`` is the stage as that session wrote
    it). ``cost`` is what this stage spent now, in USD; None when the price is unknown."""

    topic: Topic
    stage: str
    model: str
    output: str
    attempts: int
    prompt_tokens: int
    completion_tokens: int
    started: float
    at: float
    cost: float | None = None
    cached_tokens: int = 0
    fingerprint: str = ""
    source: Literal["call", "reused", "resumed"] = "call"
    record: Mapping[str, Any] | None = None
    warning: str | None = None  # accepted, but worth a look (an answer cut off)


@dataclass(frozen=True, slots=True)
class StageErrored:
    topic: Topic
    stage: str
    error: BaseException
    attempts: int
    started: float
    at: float


@dataclass(frozen=True, slots=True)
class ChainFinished:
    topic: Topic
    status: ChainStatus
    outputs: Mapping[str, str]
    failed_stage: str | None
    error: str | None
    started: float
    at: float


@dataclass(frozen=True, slots=True)
class TopicRestored:
    """A resumed run's topic that finished in an earlier session: it does not run again.
    ``record`` is its manifest record as that session wrote it, ``outputs`` its stages'
    outputs by stage name."""

    topic: Topic
    status: ChainStatus
    record: Mapping[str, Any]
    outputs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RetryPassStarted:
    """Retry pass ``number`` starts over ``topics`` chains that failed on transient errors."""

    number: int
    topics: int
    at: float


@dataclass(frozen=True, slots=True)
class RunFinished:
    """The run ended: ``finished`` (every chain ran), ``stopped`` (halted on purpose, e.g.
    out of quota; ``reason`` says why), ``interrupted`` (Ctrl-C or cancellation) or
    ``failed`` (results could no longer be saved)."""

    at: float
    status: Literal["finished", "stopped", "interrupted", "failed"]
    reason: str | None = None


Event = (
    RunStarted
    | Waited
    | ChainStarted
    | StageStarted
    | CallStarted
    | CallFinished
    | CallFailed
    | StageFinished
    | StageErrored
    | ChainFinished
    | TopicRestored
    | RetryPassStarted
    | RunFinished
)


class Observer(Protocol):
    """Anything that wants to know what a run is doing."""

    async def on_event(self, event: Event) -> None: ...
