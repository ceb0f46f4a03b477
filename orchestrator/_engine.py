"""The run loop: a fixed pool of workers, each running one topic's chain at a time.

``concurrency`` workers pull topics from one shared iterator — never a task per topic created
up front, so 100k topics cost 100k small records, not 100k coroutines. A chain runs its
stages in order; its failure is caught, reported and recorded, and never cancels another
chain. ``--sequential`` is the same loop with one worker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from ._client import ChatClient, ChatRequest
from ._errors import StageFailed
from ._events import (
    CallFailed,
    CallFinished,
    CallStarted,
    ChainFinished,
    ChainStarted,
    ChainStatus,
    Event,
    Observer,
    StageErrored,
    StageFinished,
    StageStarted,
    Waited,
)
from ._plan import Stage
from ._topics import Topic

log = structlog.get_logger()

Clock = Callable[[], float]


@dataclass(slots=True)
class ChainResult:
    """How one topic's chain ended."""

    topic: Topic
    status: ChainStatus
    outputs: dict[str, str] = field(default_factory=dict)
    failed_stage: str | None = None
    error: str | None = None


class Engine:
    """Runs the stages over topics with ``concurrency`` workers, reporting to observers."""

    def __init__(
        self,
        stages: Sequence[Stage],
        *,
        client: ChatClient,
        concurrency: int,
        observers: Sequence[Observer] = (),
        clock: Clock = time.perf_counter,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.stages = tuple(stages)
        self.client = client
        self.concurrency = concurrency
        self.observers = tuple(observers)
        self.clock = clock

    async def emit(self, event: Event) -> None:
        """Hand ``event`` to every observer, in order."""
        for observer in self.observers:
            await observer.on_event(event)

    async def run_pass(self, topics: Iterable[Topic]) -> list[ChainResult]:
        """Run every topic's chain; returns the results in the order the chains finished."""
        queued_at = self.clock()
        pending: Iterator[Topic] = iter(topics)
        results: list[ChainResult] = []

        async def worker() -> None:
            # Sharing one iterator is safe: next() never awaits, so no two workers interleave.
            for topic in pending:
                await self.emit(Waited(topic, None, "slot", queued_at, self.clock()))
                results.append(await self.run_chain(topic))

        async with asyncio.TaskGroup() as group:
            for _ in range(self.concurrency):
                group.create_task(worker())
        return results

    async def run_chain(self, topic: Topic) -> ChainResult:
        """Run one topic's stages in order; a failure ends this chain only."""
        started = self.clock()
        await self.emit(ChainStarted(topic, started))
        context: dict[str, Any] = {**topic.vars, "topic": topic.text}
        outputs: dict[str, str] = {}
        result = ChainResult(topic, "succeeded", outputs)
        for stage in self.stages:
            try:
                output = await self.run_stage(topic, stage, context)
            except StageFailed as exc:
                result = ChainResult(topic, "failed", outputs, stage.name, str(exc.last_error))
                break
            outputs[stage.name] = output
            context[stage.name] = output
        await self.emit(
            ChainFinished(
                topic,
                result.status,
                outputs,
                result.failed_stage,
                result.error,
                started,
                self.clock(),
            )
        )
        return result

    async def run_stage(self, topic: Topic, stage: Stage, context: dict[str, Any]) -> str:
        """Render the stage's prompt, call the model, report; raises StageFailed."""
        started = self.clock()
        await self.emit(StageStarted(topic, stage.name, started))
        attempt = 1
        try:
            request = ChatRequest(
                model=stage.model,
                messages=stage.messages(context),
                temperature=stage.temperature,
                max_tokens=stage.max_tokens,
            )
            call_started = self.clock()
            await self.emit(CallStarted(topic, stage.name, attempt, stage.model, call_started))
            try:
                response = await self.client.complete(request)
            except Exception as exc:
                await self.emit(
                    CallFailed(topic, stage.name, attempt, exc, call_started, self.clock())
                )
                raise
            await self.emit(
                CallFinished(topic, stage.name, attempt, response, call_started, self.clock())
            )
        except Exception as exc:
            # Anything a stage raises — a CallError, a template failing on real data — ends
            # this chain and only this chain.
            await self.emit(StageErrored(topic, stage.name, exc, attempt, started, self.clock()))
            log.info("stage.failed", topic=topic.slug, stage=stage.name, error=str(exc))
            raise StageFailed(stage.name, attempt, exc) from exc
        await self.emit(
            StageFinished(
                topic,
                stage.name,
                response.model,
                response.text,
                attempt,
                response.prompt_tokens,
                response.completion_tokens,
                started,
                self.clock(),
            )
        )
        return response.text
