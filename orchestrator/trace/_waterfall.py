"""The waterfall: one bar per model call on a shared time axis, built from a run's spans.

``orchestrate trace`` draws it in the terminal and ``report.html`` as SVG; both start from
this one model, so they show the same picture and the same numbers. Past a few dozen bars
(terminal) or a couple of thousand (HTML) they draw ``in_flight`` instead: how many calls of
each stage were in flight over time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from ._chrome_trace import Trace, assign_lanes, chain_of, is_slot_wait, queue_intervals
from ._spans import ATTEMPT, COST, WAIT_KIND, Marker, Span
from ._verdict import Parallelism, assess

# One colour per stage, in chain order; the terminal and the report use the same.
STAGE_COLOURS = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#b07aa1",
    "#76b7b2",
    "#edc948",
    "#9c755f",
)


@dataclass(frozen=True, slots=True)
class Bar:
    """One model call. ``waited``: seconds its stage spent on the rate limiter and backoff
    since the stage's previous call (or its start)."""

    topic: int
    slug: str
    stage: str
    attempt: int
    model: str
    start: float
    end: float
    waited: float
    input_tokens: int | None
    output_tokens: int | None
    cost: float | None
    status: str
    error: str | None
    lane: int
    error_type: str | None = None  # error.type: an HTTP status, or the exception's name

    @property
    def latency(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Waterfall:
    run_id: str
    wall: float
    stages: tuple[str, ...]
    bars: tuple[Bar, ...]
    lanes: int
    queued: tuple[tuple[float, float], ...]  # when each chain waited for a slot
    markers: tuple[Marker, ...]
    parallelism: Parallelism

    def all_stages(self) -> list[str]:
        """The chain's stages in order, then any a call names that the run did not list."""
        return list(dict.fromkeys([*self.stages, *(b.stage for b in self.bars)]))

    def colour(self, stage: str) -> str:
        index = self.stages.index(stage) if stage in self.stages else len(self.stages)
        return STAGE_COLOURS[index % len(STAGE_COLOURS)]

    def in_flight(self, columns: int, stage: str | None = None) -> list[float]:
        """Average number of calls (of ``stage``, or all) in flight in each of ``columns``
        equal slices of the wall time."""
        width = self.wall / columns if self.wall > 0 and columns > 0 else 0.0
        busy = [0.0] * max(columns, 0)
        if width <= 0:
            return busy
        for bar in self.bars:
            if stage is not None and bar.stage != stage:
                continue
            first = min(columns - 1, max(0, int(bar.start / width)))
            last = min(columns - 1, max(0, int(bar.end / width)))
            for column in range(first, last + 1):
                lo, hi = column * width, (column + 1) * width
                busy[column] += max(0.0, min(hi, bar.end) - max(lo, bar.start))
        return [b / width for b in busy]

    def queued_in(self, columns: int) -> list[float]:
        """Average number of chains queued for a slot in each column."""
        width = self.wall / columns if self.wall > 0 and columns > 0 else 0.0
        out = [0.0] * max(columns, 0)
        if width <= 0:
            return out
        for start, end in self.queued:
            first = min(columns - 1, max(0, int(start / width)))
            last = min(columns - 1, max(0, int(end / width)))
            for column in range(first, last + 1):
                lo, hi = column * width, (column + 1) * width
                out[column] += max(0.0, min(hi, end) - max(lo, start)) / width
        return out

    def slowest(self, n: int) -> list[Bar]:
        return sorted(self.bars, key=lambda b: b.latency, reverse=True)[:n]


def waterfall(trace: Trace) -> Waterfall:
    """The waterfall of a run from its spans (as recorded, or loaded from trace.json)."""
    return from_spans(trace.spans, trace.markers, run_id=trace.run_id)


def from_spans(spans: Sequence[Span], markers: Sequence[Marker], *, run_id: str) -> Waterfall:
    run = next((s for s in spans if s.kind == "run"), None)
    wall = run.duration if run is not None else max((s.end or 0.0 for s in spans), default=0.0)
    allowed = int(run.attributes.get("orchestrate.concurrency", 1)) if run else 1
    stages = tuple(run.attributes.get("orchestrate.stages", ())) if run else ()
    lanes = assign_lanes(spans)
    owner = chain_of(spans)
    by_id = {s.id: s for s in spans}
    # Walk each stage's waits and calls in time order, so a call carries the waits before it.
    children: dict[int, list[Span]] = defaultdict(list)
    for span in spans:
        if span.kind in ("call", "wait") and span.parent is not None and not is_slot_wait(span):
            children[span.parent].append(span)
    bars: list[Bar] = []
    limiter = backoff = 0.0
    for parent_id, items in children.items():
        waited = 0.0
        stage_span = by_id.get(parent_id)
        for span in sorted(items, key=lambda s: (s.start, s.id)):
            if span.kind == "wait":
                kind = span.attributes.get(WAIT_KIND)
                limiter += span.duration if kind == "limiter" else 0.0
                backoff += span.duration if kind == "backoff" else 0.0
                waited += span.duration
                continue
            chain = by_id.get(owner.get(span.id, -1))
            a = span.attributes
            bars.append(
                Bar(
                    topic=span.topic if span.topic is not None else -1,
                    slug=str(chain.attributes.get("orchestrate.topic.slug", "")) if chain else "",
                    stage=str(a.get("gen_ai.agent.name") or _stage_name(stage_span)),
                    attempt=int(a.get(ATTEMPT, 1)),
                    model=str(a.get("gen_ai.request.model", "")),
                    start=span.start,
                    end=span.end if span.end is not None else span.start,
                    waited=round(waited, 6),
                    input_tokens=a.get("gen_ai.usage.input_tokens"),
                    output_tokens=a.get("gen_ai.usage.output_tokens"),
                    cost=a.get(COST),
                    status=span.status,
                    error=span.error,
                    lane=lanes.get(owner.get(span.id, -1), 0),
                    error_type=a.get("error.type"),
                )
            )
            waited = 0.0
    bars.sort(key=lambda b: (b.start, b.topic, b.attempt))
    chains = [s for s in spans if s.kind == "chain"]
    parallelism = assess(
        calls=[(b.start, b.end) for b in bars],
        wall=wall,
        allowed=allowed,
        chains=len({c.topic for c in chains}),
        chain_time=sum(c.duration for c in chains),
        limiter_wait=limiter,
        backoff_wait=backoff,
        refused=sum(b.status == "error" and b.error_type == "429" for b in bars),
    )
    return Waterfall(
        run_id=run_id,
        wall=wall,
        stages=stages,
        bars=tuple(bars),
        lanes=max(lanes.values(), default=0),
        queued=tuple(queue_intervals(spans)),
        markers=tuple(markers),
        parallelism=parallelism,
    )


def _stage_name(span: Span | None) -> str:
    if span is None:
        return ""
    return str(span.attributes.get("gen_ai.agent.name", span.name.removeprefix("invoke_agent ")))
