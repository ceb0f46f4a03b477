"""What tracing costs a run: the span recorder and events.jsonl per event, and the files
written at the end (trace.json, report.html), next to the manifest observer every run
already had as the baseline.

A real simulated run of ``--topics`` topics records its event stream once; the stream is
then replayed through each observer, alternating, ``--rounds`` times in one invocation, and
the medians are compared. The end-of-run writes are timed on that run's spans and on copies
of them scaled ×10 and ×100 (the run's spans repeated on later lanes), for the time a run of
many thousands of calls spends writing its trace.

    python benchmarks/trace_overhead.py [--topics 300] [-c 50] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from orchestrator.engine._events import Event
from orchestrator.measure._bench import _generated_topics
from orchestrator.report._html import render_report
from orchestrator.report._manifest import ManifestObserver
from orchestrator.session._setup import prepare
from orchestrator.trace._chrome_trace import write_trace
from orchestrator.trace._event_log import EventLog
from orchestrator.trace._spans import Span, SpanRecorder
from orchestrator.trace._waterfall import from_spans


class Capture:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def on_event(self, event: Event) -> None:
        self.events.append(event)


async def replay(events: Sequence[Event], observer: Any) -> float:
    started = time.perf_counter()
    for event in events:
        await observer.on_event(event)
    return time.perf_counter() - started


def scaled(spans: Sequence[Span], times: int) -> list[Span]:
    """The run's spans ``times`` over, each copy after the last on the time axis."""
    end = max(s.end or 0.0 for s in spans)
    out: list[Span] = []
    for k in range(times):
        offset, base = k * end, k * len(spans)
        for s in spans:
            if s.kind == "run" and k:
                continue
            out.append(
                dataclasses.replace(
                    s,
                    id=s.id + base,
                    parent=None if s.parent is None else (s.parent + base if s.parent != 1 else 1),
                    start=s.start + offset,
                    end=(s.end or 0.0) + offset,
                    attributes=dict(s.attributes),
                )
            )
    out[0].end = end * times
    return out


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=300)
    parser.add_argument("-c", "--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        topics = folder / "topics.yaml"
        topics.write_text(_generated_topics(args.topics))
        sim = {"latency_mean": 0.02, "latency_jitter": 0.0, "output_tokens": 150}
        setup = prepare(topics, concurrency=args.concurrency, sim=sim)
        capture = Capture()
        (folder / "run").mkdir()
        manifest = await setup.execute("run", folder / "run", observers=[capture])
        events = capture.events
        print(f"{len(events)} events from {manifest.totals.calls} calls, {args.topics} topics")

        kinds: dict[str, list[float]] = {"manifest (baseline)": [], "spans": [], "events.jsonl": []}
        for i in range(args.rounds):
            m = ManifestObserver(
                folder / f"run-{i}.json",
                setup.plan.topics,
                topics_file=topics,
                chain_file=setup.plan.chain_file,
                output_dir=folder,
            )
            kinds["manifest (baseline)"].append(await replay(events, m))
            kinds["spans"].append(await replay(events, SpanRecorder()))
            kinds["events.jsonl"].append(
                await replay(events, EventLog(folder / f"events-{i}.jsonl"))
            )
        base = statistics.median(kinds["manifest (baseline)"])
        print("\n| observer | per event | per run | vs manifest |\n|---|---|---|---|")
        for name, times in kinds.items():
            t = statistics.median(times)
            per_event = t / len(events) * 1e6
            print(f"| {name} | {per_event:.1f} µs | {t * 1e3:.1f} ms | {t / base:.2f}× |")

        recorder = SpanRecorder()
        await replay(events, recorder)
        print("\n| calls | spans | trace.json | report.html | waterfall model |")
        print("|---|---|---|---|---|")
        for times in (1, 10, 100):
            spans = scaled(recorder.spans, times)
            calls = sum(s.kind == "call" for s in spans)
            path = folder / f"trace-{times}.json"
            t_trace = timed(lambda: write_trace(path, spans, (), run_id="r", epoch=0.0))  # noqa: B023
            t_model = timed(lambda: from_spans(spans, (), run_id="r"))  # noqa: B023
            picture = from_spans(spans, (), run_id="r")
            t_report = timed(lambda: render_report(picture, manifest))  # noqa: B023
            size = path.stat().st_size / 1e6
            print(
                f"| {calls:,} | {len(spans):,} | {t_trace:.2f} s ({size:.1f} MB) "
                f"| {t_report:.2f} s | {t_model:.2f} s |"
            )


if __name__ == "__main__":
    asyncio.run(main())
