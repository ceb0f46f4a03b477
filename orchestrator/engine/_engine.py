"""The run loop: a fixed pool of workers, each running one topic's chain at a time.

``concurrency`` workers pull topics from one shared iterator — never a task per topic created
up front, so 100k topics cost 100k small records, not 100k coroutines. A chain runs its
stages in order; its failure is caught, reported and recorded, and never cancels another
chain. ``--sequential`` is the same loop with one worker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import CallNotSent, RunError, StageFailed
from ..config._models import RetryPolicy
from ..config._topics import Topic
from ..plan._plan import Stage
from ..provider._client import ChatClient, ChatRequest, Route
from ..provider._limits import Limiters
from ..store._reuse import Recall, Recalled, fingerprint
from ._brake import Brake
from ._budget import Budget, Pricing
from ._calls import Calls
from ._events import (
    ChainFinished,
    ChainStarted,
    ChainStatus,
    Event,
    Observer,
    RetryPassStarted,
    StageFinished,
    StageStarted,
    Waited,
)
from ._retry import is_retryable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


CUT_OFF_WARNING = (
    "the answer was cut off at max_tokens (finish_reason length); raise max_tokens, or set "
    "`cut_off: error` in the agent to fail such answers"
)


@dataclass(slots=True)
class ChainResult:
    """How one topic's chain ended."""

    topic: Topic
    status: ChainStatus
    outputs: dict[str, str] = field(default_factory=dict)
    failed_stage: str | None = None
    error: str | None = None
    transient: bool = False  # failed on an error another try may fix: worth a retry pass


class Engine:
    """Runs the stages over topics with ``concurrency`` workers, reporting to observers.

    A chain's failure is the chain's own; an observer that raises (only the ones that save
    results do: reporting observers are isolated, see ``_isolate``) means results can no
    longer be saved, so the engine stops starting chains, lets the ones in flight finish,
    and raises a RunError.
    """

    def __init__(
        self,
        stages: Sequence[Stage],
        *,
        client: ChatClient,
        concurrency: int,
        observers: Sequence[Observer] = (),
        limiters: Limiters | None = None,
        retry: RetryPolicy | None = None,
        endpoint: str = "",
        identity: str | None = None,
        routes: Mapping[str, Route] | None = None,
        recall: Recall | None = None,
        prices: Pricing | None = None,
        budget: Budget | None = None,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.stages = tuple(stages)
        self.concurrency = concurrency
        self.observers = tuple(observers)
        self.limiters = limiters if limiters is not None else Limiters()
        self.retry = retry if retry is not None else RetryPolicy()
        # Where each stage's calls go: ``client`` at ``endpoint``, except the stages
        # ``routes`` sends to an endpoint of their own (a chain's or stage's base_url).
        # ``identity`` names who answers, for request fingerprints (the simulator's URL
        # changes every run).
        self.route = Route(client, endpoint, endpoint if identity is None else identity)
        self.routes = dict(routes or {})
        self.recall = recall
        self.prices = prices
        self.budget = budget
        # Default: the running loop's monotonic clock, the one the limiters and asyncio.sleep
        # use, so events, waits and limits all share one time line.
        self.clock: Clock = clock or (lambda: asyncio.get_running_loop().time())
        self.sleep = sleep
        self.brake = Brake()
        self.calls = Calls(
            limiters=self.limiters,
            retry=self.retry,
            brake=self.brake,
            emit=self.emit,
            clock=self.clock,
            sleep=sleep,
            prices=prices,
        )

    # Stopping, halting and draining live in the Brake; these are the engine's handles on it.
    @property
    def stopping(self) -> bool:
        """True once the run was stopped, halted or drained: no new chain starts."""
        return self.brake.stopping

    @property
    def stop_reason(self) -> str | None:
        """Why the run stopped on purpose (out of quota, budget reached), or None."""
        return self.brake.stop_reason

    @property
    def halt_reason(self) -> str | None:
        """Why the run was halted (e.g. out of quota), or None."""
        return self.brake.halt_reason

    def stop(self, reason: str | None = None) -> None:
        """Start no new chain; chains already in flight run to their end. With a
        ``reason`` (a budget reached) the run ends as ``stopped``, and says why."""
        self.brake.stop(reason)

    def halt(self, reason: str) -> None:
        """Stop at once: no new chain starts, no new call is sent, and calls waiting for a
        rate limiter give up their wait."""
        self.brake.halt(reason)

    def drain(self) -> None:
        """Start nothing new — no chain, stage, call or retry — and let the calls already
        sent come back and be saved (Ctrl-C); see ``Brake.drain``."""
        self.brake.drain()

    async def idle(self) -> None:
        """Return once no call is in flight (a finished call counts until it is saved)."""
        await self.brake.idle()

    async def run(self, topics: Sequence[Topic], *, retry_passes: int = 0) -> list[ChainResult]:
        """Run every chain, then up to ``retry_passes`` passes over the chains that failed on
        a transient error, each resuming at the stage that failed."""
        results = {r.topic.index: r for r in await self.run_pass(topics)}
        for number in range(1, retry_passes + 1):
            again = [r for r in results.values() if r.status == "failed" and r.transient]
            if not again or self.brake.stopping:
                break
            await self.emit(RetryPassStarted(number, len(again), self.clock()))
            done = {r.topic.index: r.outputs for r in again}
            for result in await self.run_pass([r.topic for r in again], done=done):
                results[result.topic.index] = result
        return list(results.values())

    async def emit(self, event: Event) -> None:
        """Hand ``event`` to every observer, in order."""
        for observer in self.observers:
            await observer.on_event(event)

    async def run_pass(
        self, topics: Iterable[Topic], *, done: Mapping[int, Mapping[str, str]] | None = None
    ) -> list[ChainResult]:
        """Run every topic's chain; returns the results in the order the chains finished.

        ``done`` maps a topic's index to outputs of stages it already finished. Topics not
        started because of ``stop()`` are simply not in the result.
        """
        done = done or {}
        queued_at = self.clock()
        pending: Iterator[Topic] = iter(topics)
        results: list[ChainResult] = []
        failures: list[Exception] = []

        taken = 0

        async def worker() -> None:
            nonlocal taken
            # Sharing one iterator is safe: next() never awaits, so no two workers interleave.
            while not self.brake.stopping and (topic := next(pending, None)) is not None:
                if self.budget is not None and not self.budget.admit(topic):
                    self.stop(self.budget.refusal(topic))
                    break
                taken += 1
                now = self.clock()
                # The first chains of a pass had a slot from the start: whatever time the
                # workers took to begin is not queueing.
                waited_from = queued_at if taken > self.concurrency else now
                try:
                    await self.emit(Waited(topic, None, "slot", waited_from, now))
                    results.append(await self.run_chain(topic, done=done.get(topic.index)))
                except Exception as exc:  # saving failed: nothing more can be kept
                    failures.append(exc)
                    self.stop()

        async with asyncio.TaskGroup() as group:
            for _ in range(self.concurrency):
                group.create_task(worker())
        if failures:
            first = failures[0]
            if isinstance(first, RunError):
                raise first
            raise RunError(
                f"the run stopped because saving its results failed: {type(first).__name__}: "
                f"{first}"
            ) from first
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
            await self.brake.check()
            try:
                output = await self.run_stage(topic, stage, context)
            except StageFailed as exc:
                status: ChainStatus = (
                    "skipped" if isinstance(exc.last_error, CallNotSent) else "failed"
                )
                transient = is_retryable(exc.last_error)
                error = str(exc.last_error)
                result = ChainResult(topic, status, outputs, stage.name, error, transient)
                break
            outputs[stage.name] = output
            context[stage.name] = output
        if self.budget is not None:
            self.budget.release(topic)
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

    def _route(self, stage: str) -> Route:
        return self.routes.get(stage, self.route)

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
            await self.calls.stage_failed(topic, stage.name, exc, 0, started)
        key = ""
        if self.recall is not None:
            key = fingerprint(self._route(stage.name).identity, request)
            recalled = self.recall.recall(topic.index, stage.name, key)
            if recalled is not None:
                await self._recalled(topic, stage.name, key, recalled, started)
                return recalled.result.output
        response, attempts = await self.calls.call(
            topic, stage.name, request, self._route(stage.name), started, cut_off=stage.cut_off
        )
        try:  # the call counts as in flight until its stage is saved (see drain)
            cost = self.calls.cost(request, response)
            if self.budget is not None:
                self.budget.book(topic, stage.name, cost)
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
                    cost=cost,
                    cached_tokens=response.cached_tokens,
                    fingerprint=key,
                    warning=CUT_OFF_WARNING if response.finish_reason == "length" else None,
                )
            )
        finally:
            self.brake.call_done()
        return response.text

    async def _recalled(
        self, topic: Topic, stage: str, key: str, recalled: Recalled, started: float
    ) -> None:
        """Report a stage answered without a call: it spends nothing now."""
        r = recalled.result
        if self.budget is not None:
            self.budget.book(topic, stage, 0.0)
        await self.emit(
            StageFinished(
                topic,
                stage,
                r.model,
                r.output,
                0,
                r.prompt_tokens,
                r.completion_tokens,
                started,
                self.clock(),
                cost=0.0 if recalled.source == "reused" else r.cost,
                cached_tokens=r.cached_tokens,
                fingerprint=key,
                source=recalled.source,
                record=recalled.record,
            )
        )
