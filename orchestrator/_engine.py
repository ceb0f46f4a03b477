"""The run loop: a fixed pool of workers, each running one topic's chain at a time.

``concurrency`` workers pull topics from one shared iterator — never a task per topic created
up front, so 100k topics cost 100k small records, not 100k coroutines. A chain runs its
stages in order; its failure is caught, reported and recorded, and never cancels another
chain. ``--sequential`` is the same loop with one worker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import structlog

from ._client import ChatClient, ChatRequest, ChatResponse
from ._errors import RunError, StageFailed
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
    """Runs the stages over topics with ``concurrency`` workers, reporting to observers.

    A chain's failure is the chain's own; a failing *observer* (an output that cannot be
    written) means results can no longer be saved, so the engine stops starting chains,
    lets the ones in flight finish, and raises a RunError.
    """

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
        self._stopping = False

    @property
    def stopping(self) -> bool:
        """True once ``stop()`` was called: no new chain starts."""
        return self._stopping

    def stop(self) -> None:
        """Start no new chain; chains already in flight run to their end."""
        self._stopping = True

    async def emit(self, event: Event) -> None:
        """Hand ``event`` to every observer, in order."""
        for observer in self.observers:
            await observer.on_event(event)

    async def run_pass(self, topics: Iterable[Topic]) -> list[ChainResult]:
        """Run every topic's chain; returns the results in the order the chains finished.

        Topics not started because of ``stop()`` are simply not in the result.
        """
        queued_at = self.clock()
        pending: Iterator[Topic] = iter(topics)
        results: list[ChainResult] = []
        failures: list[Exception] = []

        async def worker() -> None:
            # Sharing one iterator is safe: next() never awaits, so no two workers interleave.
            while not self._stopping and (topic := next(pending, None)) is not None:
                try:
                    await self.emit(Waited(topic, None, "slot", queued_at, self.clock()))
                    results.append(await self.run_chain(topic))
                except Exception as exc:  # an observer failed: nothing more can be saved
                    failures.append(exc)
                    self.stop()

        async with asyncio.TaskGroup() as group:
            for _ in range(self.concurrency):
                group.create_task(worker())
        if failures:
            first = failures[0]
            if isinstance(first, RunError):
                raise first
            raise RunError(f"the run stopped because an observer failed: {first!r}") from first
        return results

    async def run_chain(
        self, topic: Topic, *, done: Mapping[str, str] | None = None
    ) -> ChainResult:
        """Run one topic's stages in order; a failure ends this chain only.

        ``done`` holds outputs of stages finished earlier (a retry pass, a resumed run):
        those stages are not called again, and later prompts see their outputs.
        """
        started = self.clock()
        await self.emit(ChainStarted(topic, started))
        outputs: dict[str, str] = dict(done or {})
        context: dict[str, Any] = {**topic.vars, "topic": topic.text, **outputs}
        result = ChainResult(topic, "succeeded", outputs)
        for stage in self.stages:
            if stage.name in outputs:
                continue
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

    async def run_stage(self, topic: Topic, stage: Stage, context: Mapping[str, Any]) -> str:
        """Render the stage's prompt, call the model, report; raises StageFailed."""
        started = self.clock()
        await self.emit(StageStarted(topic, stage.name, started))
        try:
            request = ChatRequest(
                model=stage.model,
                messages=stage.messages(context),
                temperature=stage.temperature,
                max_tokens=stage.max_tokens,
            )
        except Exception as exc:  # a template failing on real data fails this chain only
            await self._stage_failed(topic, stage.name, exc, 0, started)
        response, attempts = await self._call(topic, stage.name, request, started)
        await self.emit(
            StageFinished(
                topic,
                stage.name,
                response.model,
                response.text,
                attempts,
                response.prompt_tokens,
                response.completion_tokens,
                started,
                self.clock(),
            )
        )
        return response.text

    async def _call(
        self, topic: Topic, stage: str, request: ChatRequest, stage_started: float
    ) -> tuple[ChatResponse, int]:
        """One model call for a stage: returns the response and the attempts it took.

        This is the seam for rate limits and retries: only the client call is inside the
        ``try``, so an observer's failure is never mistaken for the model's.
        """
        attempt = 1
        call_started = self.clock()
        await self.emit(CallStarted(topic, stage, attempt, request.model, call_started))
        try:
            response = await self.client.complete(request)
        except Exception as exc:
            await self.emit(CallFailed(topic, stage, attempt, exc, call_started, self.clock()))
            await self._stage_failed(topic, stage, exc, attempt, stage_started)
        await self.emit(CallFinished(topic, stage, attempt, response, call_started, self.clock()))
        return response, attempt

    async def _stage_failed(
        self, topic: Topic, stage: str, error: Exception, attempts: int, started: float
    ) -> NoReturn:
        await self.emit(StageErrored(topic, stage, error, attempts, started, self.clock()))
        log.info("stage.failed", topic=topic.slug, stage=stage, error=str(error))
        raise StageFailed(stage, attempts, error) from error
