"""The observer that builds ``run.json`` (see ``_run_json``) from the engine's events.

The file is rewritten atomically at most every ``interval`` seconds
while the run goes on, and once at the end — not per call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path

import structlog

from .._errors import OutputError
from ..config._topics import Topic
from ..engine._events import (
    CallFailed,
    CallStarted,
    ChainFinished,
    ChainStarted,
    Event,
    RunFinished,
    RunStarted,
    StageErrored,
    StageFinished,
    StageStarted,
    TopicRestored,
    Waited,
)
from ..engine._isolate import Fault, Faults
from ..engine._retry import is_quota_error
from ..trace._verdict import Parallelism
from ._run_json import (
    DisabledObserver,
    RunManifest,
    StageRecord,
    TopicRecord,
    Waits,
    write_manifest,
)

log = structlog.get_logger()


class ManifestObserver:
    """Keeps the RunManifest up to date from events and writes it to ``path``."""

    def __init__(
        self,
        path: Path,
        topics: tuple[Topic, ...],
        *,
        topics_file: Path,
        chain_file: Path,
        output_dir: Path,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        parallelism: Callable[[], Parallelism] | None = None,
        faults: Faults | None = None,
        write_at_end: bool = True,
    ) -> None:
        self.path = path
        self.interval = interval
        self.clock = clock
        # Measured from the run's spans when it ends (the tracer comes before this observer).
        self._parallelism = parallelism
        self.manifest: RunManifest | None = None
        self._topics = topics
        self._files = (str(topics_file), str(chain_file), str(output_dir))
        self._t0 = 0.0
        self._wall0 = datetime.now().astimezone()
        self._next_write = 0.0
        self._earlier_wall = 0.0
        self._open_stage: dict[tuple[int, str], StageRecord] = {}
        self.faults = faults if faults is not None else Faults()
        self._snapshots = True  # off once a snapshot could not be written
        # False: the owner calls write_final() once every other observer has seen the end,
        # so run.json records how they fared (see session/_execute.py).
        self._write_at_end = write_at_end
        self.ended = False  # RunFinished seen

    def _when(self, at: float) -> datetime:
        return self._wall0 + timedelta(seconds=at - self._t0)

    async def on_event(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._start(event)
            return
        m = self.manifest
        if m is None:
            return
        match event:
            case Waited(topic=topic, kind=kind, started=started, at=at):
                m.topics[topic.index].waits.add(kind, at - started)
                if kind == "slot":
                    m.topics[topic.index].queued_s = round(at - started, 6)
            case ChainStarted(topic=topic, at=at):
                rec = m.topics[topic.index]
                rec.status, rec.started_at, rec.passes = "running", self._when(at), rec.passes + 1
            case StageStarted(topic=topic, stage=stage, at=at):
                stages = m.topics[topic.index].stages
                if stages and stages[-1].name == stage and stages[-1].status != "succeeded":
                    # A retry pass resumes the stage that failed: one record, attempts add up.
                    record = stages[-1]
                    record.status, record.error = "running", None
                else:
                    record = StageRecord(name=stage, started_at=self._when(at))
                    stages.append(record)
                self._open_stage[(topic.index, stage)] = record
            case CallStarted(topic=topic, stage=stage):
                self._open_stage[(topic.index, stage)].attempts += 1
            case CallFailed(topic=topic, stage=stage, error=error):
                record = self._open_stage[(topic.index, stage)]
                record.failed_calls += 1
                if getattr(error, "status", None) == 429 and not is_quota_error(error):
                    record.rate_limited += 1
            case StageFinished(source="resumed", record=dict() as earlier):
                # Finished in an earlier session of this run: exactly as it was written then.
                # StageStarted just opened its record, the topic's last: replace it.
                del self._open_stage[(event.topic.index, event.stage)]
                m.topics[event.topic.index].stages[-1] = StageRecord.model_validate(earlier)
            case StageFinished():
                record = self._open_stage.pop((event.topic.index, event.stage))
                record.status, record.model = "succeeded", event.model
                record.cost, record.cached = event.cost, event.source == "reused"
                record.ended_at = self._when(event.at)
                record.latency_s = round(event.at - event.started, 6)
                record.prompt_tokens = event.prompt_tokens
                record.completion_tokens = event.completion_tokens
                record.output = f"stages/{event.topic.slug}/{event.stage}.md"
                record.warning = event.warning
            case StageErrored():
                record = self._open_stage.pop((event.topic.index, event.stage))
                record.status, record.error = "failed", str(event.error)
                record.ended_at = self._when(event.at)
                record.latency_s = round(event.at - event.started, 6)
            case TopicRestored(topic=topic, record=record):
                m.topics[topic.index] = TopicRecord.model_validate(record)
            case ChainFinished():
                rec = m.topics[event.topic.index]
                rec.status, rec.ended_at = event.status, self._when(event.at)
                rec.latency_s = round(event.at - event.started, 6)
                rec.failed_stage, rec.error = event.failed_stage, event.error
                rec.output = f"{event.topic.slug}.md" if event.status == "succeeded" else None
            case RunFinished():
                m.status, m.ended_at = event.status, self._when(event.at)
                m.stop_reason = event.reason
                m.wall_time_s = round(self._earlier_wall + event.at - self._t0, 6)
                for record in self._open_stage.values():
                    record.status = "interrupted"
                self._open_stage.clear()
                for topic_record in m.topics:
                    if topic_record.status == "running":
                        # Stopped mid-chain: the topic is not done, so it is pending again.
                        topic_record.status = "pending"
                if event.status == "stopped":  # halted on purpose: what never ran is skipped
                    for topic_record in m.topics:
                        if topic_record.status == "pending":
                            topic_record.status = "skipped"
                if self._parallelism is not None:
                    m.parallelism = self._measure()
                self.ended = True
                if self._write_at_end:
                    self.write_final()
                return
        if self._snapshots and self.clock() >= self._next_write:
            self._snapshot()

    def stage_record(self, topic: int, stage: str) -> dict[str, object]:
        """The latest record of ``stage`` of topic ``topic``, as JSON-ready data."""
        assert self.manifest is not None
        for record in reversed(self.manifest.topics[topic].stages):
            if record.name == stage:
                return record.model_dump(mode="json")
        raise KeyError(stage)

    def topic_record(self, topic: int) -> dict[str, object]:
        """Topic ``topic``'s record, as JSON-ready data."""
        assert self.manifest is not None
        self._sum_topic(self.manifest.topics[topic])
        return self.manifest.topics[topic].model_dump(mode="json")

    def _start(self, event: RunStarted) -> None:
        self._t0, self._wall0 = event.at, event.wall_start
        self._earlier_wall = event.earlier_wall_s
        self.manifest = RunManifest(
            run_id=event.run_id,
            mode=event.mode,
            concurrency=event.concurrency,
            provider=event.provider,
            endpoint=event.endpoint,
            endpoints=dict(event.endpoints) or None,
            topics_file=self._files[0],
            chain_file=self._files[1],
            output_dir=self._files[2],
            stages=list(event.stages),
            started_at=event.first_started or event.wall_start,
            sessions=event.session,
            max_cost=event.max_cost,
            topics=[TopicRecord(index=t.index, topic=t.text, slug=t.slug) for t in self._topics],
        )
        self._snapshot()

    def _measure(self) -> Parallelism | None:
        """The run's parallelism; None (and a fault) when the trace could not give it."""
        assert self._parallelism is not None
        try:
            return self._parallelism()
        except Exception as exc:  # a reporting fault: the manifest goes on without it
            error = f"{type(exc).__name__}: {exc}"
            self.faults.add(Fault("parallelism verdict", error, "RunFinished"))
            return None

    def _snapshot(self) -> None:
        """Write run.json as it stands; a failure switches snapshots off (the store holds
        every finished stage meanwhile) and the final write tries again."""
        try:
            self.write()
        except OutputError as exc:
            self._snapshots = False
            self.faults.add(Fault("run.json snapshots", str(exc), "snapshot"))
            log.warning("manifest.snapshot_failed", error=str(exc), note="the run goes on")

    def write_final(self) -> None:
        """The last write of run.json: reported, not raised, when it fails — the run is
        over and the store already holds all of it."""
        try:
            self.write()
        except OutputError as exc:
            self.faults.add(Fault("run.json", str(exc), "RunFinished"))
            log.warning("manifest.write_failed", error=str(exc))

    def write(self) -> None:
        """Recompute the totals and write run.json atomically."""
        m = self.manifest
        if m is None:
            return
        t = m.totals
        t.topics = len(m.topics)
        statuses = [r.status for r in m.topics]
        t.succeeded, t.failed = statuses.count("succeeded"), statuses.count("failed")
        t.skipped = statuses.count("skipped")
        t.pending = t.topics - t.succeeded - t.failed - t.skipped
        stages = [s for r in m.topics for s in r.stages]
        # Counted from the stage records, so a resumed run's totals include the calls its
        # earlier sessions made for what they finished, just as if it had never stopped.
        t.calls = sum(s.attempts for s in stages)
        t.failed_calls = sum(s.failed_calls for s in stages)
        t.rate_limited = sum(s.rate_limited for s in stages)
        # Every call of a stage after its first, retry passes included.
        t.retries = sum(max(0, s.attempts - 1) for s in stages)
        t.recovered = sum(r.status == "succeeded" and r.passes > 1 for r in m.topics)
        t.waits = Waits(
            slot=round(sum(r.waits.slot for r in m.topics), 6),
            limiter=round(sum(r.waits.limiter for r in m.topics), 6),
            backoff=round(sum(r.waits.backoff for r in m.topics), 6),
        )
        spent = [s for s in stages if not s.cached]  # a reused stage cost nothing now
        t.prompt_tokens = sum(s.prompt_tokens or 0 for s in spent)
        t.completion_tokens = sum(s.completion_tokens or 0 for s in spent)
        t.total_tokens = t.prompt_tokens + t.completion_tokens
        t.reused = len(stages) - len(spent)
        t.warnings = sum(s.warning is not None for s in stages)
        for topic_record in m.topics:
            self._sum_topic(topic_record)
        t.cost = _sum_costs(s.cost for s in stages if s.status == "succeeded")
        if self.faults.items:
            m.disabled_observers = [
                DisabledObserver(observer=f.observer, error=f.error, event=f.event)
                for f in self.faults.items
            ]
        started = self.clock()
        write_manifest(self.path, m)
        # A huge manifest (100k topics takes seconds to write) must not eat the run: keep
        # writing under a tenth of the time, whatever the interval.
        now = self.clock()
        self._next_write = now + max(self.interval, 10 * (now - started))

    @staticmethod
    def _sum_topic(record: TopicRecord) -> None:
        record.cost = _sum_costs(s.cost for s in record.stages if s.status == "succeeded")


def _sum_costs(costs: Iterable[float | None]) -> float | None:
    """The sum in USD, or None if any part is unknown: a partial sum would look like a total."""
    total = 0.0
    for cost in costs:
        if cost is None:
            return None
        total += cost
    return round(total, 9)
