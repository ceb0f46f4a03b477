"""The discrete-event simulation behind ``validate``'s wall time: workers taking chains,
each (endpoint, model)'s request and token buckets as ``provider._limits`` paces them, and
one event loop's CPU per call."""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..provider._limits import HEADROOM, Limit
from ._setup import RunSetup


@dataclass(frozen=True, slots=True)
class Call:
    """One stage's call, on average over the topics."""

    prompt_tokens: float
    completion_tokens: float
    latency_s: float  # from sending to the answer, the loop's own time included
    cpu_s: float  # the event loop's time for it, which no other call can use


@dataclass
class Bucket:
    """A per-minute limit as ``_limits`` paces it: ``HEADROOM`` of the rate, spread over
    ``window`` seconds, waiting for min(cost, capacity) and going into debt beyond."""

    per_minute: float
    window: float
    start: float = 1.0  # the share of the capacity held at first (both limiters: half)
    minimum: float = 0.0  # requests: at least one fits, as aiolimiter's window is widened
    level: float = field(init=False)
    rate: float = field(init=False)
    capacity: float = field(init=False)
    checked: float = 0.0

    def __post_init__(self) -> None:
        self.rate = self.per_minute * HEADROOM / 60.0
        self.capacity = max(self.rate * self.window, self.minimum)
        self.level = self.capacity * self.start

    def take(self, cost: float, now: float) -> float:
        """When a call ready at ``now`` costing ``cost`` may go (and take it then)."""
        now = max(now, self.checked)
        self.level = min(self.capacity, self.level + (now - self.checked) * self.rate)
        self.checked = now
        needed = min(cost, self.capacity)
        if self.level < needed:
            wait = (needed - self.level) / self.rate
            now += wait
            self.level += wait * self.rate
            self.checked = now
        self.level -= cost
        return now


def one_schedule(
    setup: RunSetup,
    calls: Sequence[Call],
    limits: dict[str, Limit],
    jitter: float,
    seed: float,
) -> float:
    """One run's wall time, with latency draws from ``seed``."""
    plan = setup.plan
    stages = plan.stages
    n, workers = len(plan.topics), setup.workers
    window = plan.chain.limit_window
    draw = random.Random(seed)
    # One pair of buckets per (endpoint, model), as the limiters are kept; looked up per
    # stage once, not per call.
    endpoints = setup.endpoints
    buckets: dict[tuple[str, str], tuple[Bucket | None, Bucket | None]] = {}
    for stage in stages:
        key = (endpoints.get(stage.name, ""), stage.model)
        limit = limits.get(stage.model, Limit())
        if key not in buckets:
            buckets[key] = (
                Bucket(limit.rpm, window, start=0.5, minimum=1.0) if limit.rpm else None,
                Bucket(limit.tpm, window, start=0.5) if limit.tpm else None,
            )
    stage_buckets = [buckets[(endpoints.get(s.name, ""), s.model)] for s in stages]
    # (ready time, sequence, topic, stage index): calls are admitted in the order they
    # become ready, as the limiters' queues admit them.
    ready: list[tuple[float, int, int, int]] = []
    order = 0
    for topic in range(min(workers, n)):
        ready.append((0.0, order, topic, 0))
        order += 1
    heapq.heapify(ready)
    next_topic, end, loop_free = min(workers, n), 0.0, 0.0
    while ready:
        at, _, topic, i = heapq.heappop(ready)
        stage = stages[i]
        requests, tokens = stage_buckets[i]
        if requests is not None:
            at = requests.take(1, at)
        if tokens is not None:
            at = tokens.take(calls[i].prompt_tokens + (stage.max_tokens or 0), at)
        call = calls[i]
        at = max(at, loop_free)  # one event loop does every call's CPU work
        loop_free = at + call.cpu_s
        wait = call.latency_s - call.cpu_s
        if jitter:
            wait = max(0.0, draw.gauss(wait, jitter))
        done = at + call.cpu_s + wait
        end = max(end, done)
        if i + 1 < len(stages):
            heapq.heappush(ready, (done, order, topic, i + 1))
        elif next_topic < n:  # the worker takes the next chain
            heapq.heappush(ready, (done, order, next_topic, 0))
            next_topic += 1
        order += 1
    return end
