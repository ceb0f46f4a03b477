"""Spans: the run, each chain, stage, model call and wait, built from the engine's events.

Names and attributes follow the OpenTelemetry GenAI semantic conventions — a call is
``chat {model}``, a stage ``invoke_agent {stage}``, a chain ``invoke_workflow {chain}`` —
and everything of ours sits under the ``orchestrate.`` prefix. Times are seconds from the
run's start on its monotonic clock; ``SpanRecorder.epoch`` anchors them to UNIX time.

The recorder is an Observer: it keeps every span for ``trace.json`` and the report, and hands
each one to its sinks as it starts and ends (the OpenTelemetry export is such a sink). Prompt
and completion text are recorded only when asked for (``content=True``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import structlog

from ..engine._events import (
    CallFailed,
    CallFinished,
    CallStarted,
    ChainFinished,
    ChainStarted,
    Event,
    RetryPassStarted,
    RunFinished,
    RunStarted,
    StageErrored,
    StageFinished,
    StageStarted,
    Waited,
)

log = structlog.get_logger()

SpanKind = Literal["run", "chain", "stage", "call", "wait"]
SpanStatus = Literal["ok", "error", "unset"]

# Our own attributes, under our own prefix.
TOPIC = "orchestrate.topic"
TOPIC_INDEX = "orchestrate.topic.index"
ATTEMPT = "orchestrate.attempt"
COST = "orchestrate.cost_usd"
WAIT_KIND = "orchestrate.wait.kind"
QUEUED = "orchestrate.queued_s"
SOURCE = "orchestrate.source"


@dataclass(slots=True)
class Span:
    """One timed piece of a run. ``end`` is None while it is open."""

    id: int
    parent: int | None
    kind: SpanKind
    name: str
    start: float
    end: float | None = None
    status: SpanStatus = "unset"
    error: str | None = None
    topic: int | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return 0.0 if self.end is None else self.end - self.start


@dataclass(frozen=True, slots=True)
class Marker:
    """An instant worth a line on the time axis, such as a retry pass starting."""

    at: float
    name: str


class SpanSink(Protocol):
    """Receives spans as they happen (the OpenTelemetry exporter is one). It runs on the
    event loop, so it must be quick; one that raises is dropped for the rest of the run."""

    def open(self, epoch: float) -> None:
        """The run starts; ``epoch`` is the UNIX time of its t=0."""

    def started(self, span: Span) -> None: ...

    def ended(self, span: Span) -> None: ...


class SpanRecorder:
    """Builds spans from events. ``chain`` names the workflow (the chain file's stem)."""

    def __init__(
        self,
        *,
        chain: str = "chain",
        content: bool = False,
        sinks: Sequence[SpanSink] = (),
    ) -> None:
        self.chain = chain
        self.content = content
        self.sinks = list(sinks)
        self.spans: list[Span] = []
        self.markers: list[Marker] = []
        self.epoch = 0.0
        self.provider = ""
        self._t0 = 0.0
        self._run: Span | None = None
        self._chains: dict[int, Span] = {}
        self._stages: dict[tuple[int, str], Span] = {}
        self._calls: dict[tuple[int, str, int], Span] = {}
        self._queued: dict[int, float] = {}
        self._passes: dict[int, int] = {}

    async def on_event(self, event: Event) -> None:
        # Tracing must never cost the run: it comes before the store, which commits what
        # was paid for. A fault here loses spans, not answers.
        try:
            self._record(event)
        except Exception as exc:
            log.warning("trace.record_failed", event=type(event).__name__, error=repr(exc))

    def _record(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._run_started(event)
            return
        run = self._run
        if run is None:
            return
        match event:
            case Waited(topic=topic, stage=None, started=started, at=at):
                # Queued for a slot: a span of the run (trace.json draws it as a counter).
                self._queued[topic.index] = at - started
                if at > started:
                    wait = self._open(
                        "wait",
                        "wait slot",
                        started,
                        parent=run,
                        topic=topic.index,
                        attributes={WAIT_KIND: "slot", TOPIC_INDEX: topic.index},
                    )
                    self._close(wait, at, "ok")
            case Waited(topic=topic, stage=str(stage), kind=kind, started=started, at=at):
                parent = self._stages.get((topic.index, stage))
                wait = self._open(
                    "wait",
                    f"wait {kind}",
                    started,
                    parent=parent or run,
                    topic=topic.index,
                    attributes={WAIT_KIND: kind},
                )
                self._close(wait, at, "ok")
            case ChainStarted(topic=topic, at=at):
                passes = self._passes[topic.index] = self._passes.get(topic.index, 0) + 1
                self._chains[topic.index] = self._open(
                    "chain",
                    f"invoke_workflow {self.chain}",
                    at,
                    parent=run,
                    topic=topic.index,
                    attributes={
                        "gen_ai.operation.name": "invoke_workflow",
                        "gen_ai.workflow.name": self.chain,
                        TOPIC: topic.text,
                        TOPIC_INDEX: topic.index,
                        "orchestrate.topic.slug": topic.slug,
                        "orchestrate.pass": passes,
                        QUEUED: round(self._queued.pop(topic.index, 0.0), 6),
                    },
                )
            case StageStarted(topic=topic, stage=stage, at=at):
                self._stages[(topic.index, stage)] = self._open(
                    "stage",
                    f"invoke_agent {stage}",
                    at,
                    parent=self._chains.get(topic.index, run),
                    topic=topic.index,
                    attributes={
                        "gen_ai.operation.name": "invoke_agent",
                        "gen_ai.agent.name": stage,
                    },
                )
            case CallStarted(topic=topic, stage=stage):
                self._call_started(event, self._stages.get((topic.index, stage), run))
            case CallFinished(topic=topic, stage=stage, attempt=attempt, response=r, at=at):
                call = self._calls.pop((topic.index, stage, attempt), None)
                if call is not None:
                    call.attributes.update(
                        {
                            "gen_ai.response.model": r.model,
                            "gen_ai.usage.input_tokens": r.prompt_tokens,
                            "gen_ai.usage.output_tokens": r.completion_tokens,
                            "gen_ai.response.finish_reasons": [r.finish_reason or "unknown"],
                            COST: event.cost,
                        }
                    )
                    if r.cached_tokens:
                        call.attributes["orchestrate.usage.cached_tokens"] = r.cached_tokens
                    if self.content:
                        call.attributes["gen_ai.output.messages"] = json.dumps(
                            [
                                {
                                    "role": "assistant",
                                    "parts": [{"type": "text", "content": r.text}],
                                    "finish_reason": r.finish_reason or "unknown",
                                }
                            ],
                            ensure_ascii=False,
                        )
                    self._close(call, at, "ok")
            case CallFailed(topic=topic, stage=stage, attempt=attempt, error=error, at=at):
                call = self._calls.pop((topic.index, stage, attempt), None)
                if call is not None:
                    status = getattr(error, "status", None)
                    call.attributes["error.type"] = str(status) if status else type(error).__name__
                    self._close(call, at, "error", str(error))
            case StageFinished(topic=topic, stage=stage, at=at):
                span = self._stages.pop((topic.index, stage), None)
                if span is not None:
                    span.attributes.update(
                        {
                            "gen_ai.response.model": event.model,
                            "gen_ai.usage.input_tokens": event.prompt_tokens,
                            "gen_ai.usage.output_tokens": event.completion_tokens,
                            "orchestrate.attempts": event.attempts,
                            SOURCE: event.source,
                            COST: event.cost,
                        }
                    )
                    self._close(span, at, "ok")
            case StageErrored(topic=topic, stage=stage, error=error, attempts=attempts, at=at):
                span = self._stages.pop((topic.index, stage), None)
                if span is not None:
                    span.attributes["orchestrate.attempts"] = attempts
                    span.attributes["error.type"] = type(error).__name__
                    self._close(span, at, "error", str(error))
            case ChainFinished(topic=topic, status=status, at=at, failed_stage=failed, error=err):
                span = self._chains.pop(topic.index, None)
                if span is not None:
                    span.attributes["orchestrate.status"] = status
                    if failed:
                        span.attributes["orchestrate.failed_stage"] = failed
                    self._close(span, at, "ok" if status == "succeeded" else "error", err)
            case RetryPassStarted(number=number, topics=topics, at=at):
                self.markers.append(Marker(at - self._t0, f"retry pass {number} ({topics})"))
            case RunFinished(at=at, status=status, reason=reason):
                self._run_finished(run, at, status, reason)

    def _run_started(self, event: RunStarted) -> None:
        self._t0 = event.at
        self.epoch = event.wall_start.timestamp()
        self.provider = event.provider  # "openai" is the convention's own name for it
        self._tell("open", self.epoch)
        self._run = self._open(
            "run",
            f"orchestrate run {event.run_id}",
            event.at,
            parent=None,
            attributes={
                "orchestrate.run_id": event.run_id,
                "orchestrate.mode": event.mode,
                "orchestrate.concurrency": event.concurrency,
                "orchestrate.provider": event.provider,
                "orchestrate.endpoint": event.endpoint,
                "orchestrate.topics": event.topics,
                "orchestrate.stages": list(event.stages),
                "orchestrate.session": event.session,
                "orchestrate.started_at": event.wall_start.isoformat(),
            },
        )

    def _call_started(self, event: CallStarted, parent: Span) -> None:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": self.provider,
            "gen_ai.request.model": event.model,
            "gen_ai.agent.name": event.stage,
            ATTEMPT: event.attempt,
        }
        request = event.request
        if request is not None:
            if request.max_tokens is not None:
                attributes["gen_ai.request.max_tokens"] = request.max_tokens
            if request.temperature is not None:
                attributes["gen_ai.request.temperature"] = request.temperature
            if self.content:
                attributes["gen_ai.input.messages"] = json.dumps(
                    [
                        {"role": m["role"], "parts": [{"type": "text", "content": m["content"]}]}
                        for m in request.messages
                    ],
                    ensure_ascii=False,
                )
        key = (event.topic.index, event.stage, event.attempt)
        self._calls[key] = self._open(
            "call",
            f"chat {event.model}",
            event.at,
            parent=parent,
            topic=event.topic.index,
            attributes=attributes,
        )

    def _run_finished(self, run: Span, at: float, status: str, reason: str | None) -> None:
        # Anything still open was cut short (an interrupt): close it, innermost first.
        for still_open in (self._calls, self._stages, self._chains):
            for span in list(still_open.values()):
                self._close(span, at, "error", "interrupted")
            still_open.clear()
        run.attributes["orchestrate.status"] = status
        if reason:
            run.attributes["orchestrate.stop_reason"] = reason
        self._close(run, at, "ok" if status == "finished" else "error", reason)

    def _open(
        self,
        kind: SpanKind,
        name: str,
        at: float,
        *,
        parent: Span | None,
        topic: int | None = None,
        attributes: dict[str, Any],
    ) -> Span:
        span = Span(
            id=len(self.spans) + 1,
            parent=parent.id if parent else None,
            kind=kind,
            name=name,
            start=at - self._t0,
            topic=topic,
            attributes=attributes,
        )
        self.spans.append(span)
        self._tell("started", span)
        return span

    def _close(self, span: Span, at: float, status: SpanStatus, error: str | None = None) -> None:
        span.end = max(span.start, at - self._t0)
        span.status = status
        span.error = error
        self._tell("ended", span)

    def _tell(self, method: str, arg: Any) -> None:
        """Hand ``arg`` to every sink. A sink that fails is dropped, with a warning: an
        exporter's trouble must never stop the run or cost it its own files."""
        for sink in list(self.sinks):
            try:
                getattr(sink, method)(arg)
            except Exception as exc:
                self.sinks.remove(sink)
                log.warning("trace.sink_failed", sink=type(sink).__name__, error=repr(exc))
