"""The trace files of a run folder: ``trace.json`` and ``report.html`` when the run ends,
and ``events.jsonl`` (every event, one JSON line each) as it goes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from .._files import atomic_write_text
from ..engine._events import Event, RunFinished
from ..trace._chrome_trace import write_trace
from ..trace._spans import SpanRecorder, SpanSink
from ..trace._waterfall import Waterfall
from ._manifest import ManifestObserver
from ._run_json import RunManifest

log = structlog.get_logger()

TRACE_FILE, REPORT_FILE, EVENTS_FILE = "trace.json", "report.html", "events.jsonl"

Report = Callable[[Waterfall, RunManifest], str]


@dataclass(frozen=True)
class TraceOptions:
    """How a run is traced: ``content`` records prompts and outputs in the spans and
    events.jsonl (off by default: they may be private); ``sinks`` receive every span as it
    starts and ends (the OpenTelemetry export)."""

    content: bool = False
    sinks: tuple[SpanSink, ...] = ()


class TraceFiles:
    """Writes ``trace.json`` (and ``report.html`` with ``report``) once the run has ended.

    Put it after the manifest: the report shows the manifest's final totals. The files are
    written atomically, on the loop like run.json: the run has ended, nothing waits on it.
    """

    def __init__(
        self,
        run_dir: Path,
        recorder: SpanRecorder,
        manifest: ManifestObserver,
        *,
        run_id: str,
        picture: Callable[[], Waterfall],
        report: Report | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.recorder = recorder
        self.manifest = manifest
        self.run_id = run_id
        self.picture = picture
        self.report = report

    async def on_event(self, event: Event) -> None:
        # The run is done and its results saved: a trace that cannot be written (a full
        # disk, a bug in the drawing) is a reporting fault, not a failed run (the run
        # isolates this observer: see _isolate).
        if isinstance(event, RunFinished):
            self.write()

    def write(self) -> None:
        spans, markers = self.recorder.spans, self.recorder.markers
        write_trace(
            self.run_dir / TRACE_FILE,
            spans,
            markers,
            run_id=self.run_id,
            epoch=self.recorder.epoch,
        )
        if self.report is not None and self.manifest.manifest is not None:
            html = self.report(self.picture(), self.manifest.manifest)
            atomic_write_text(self.run_dir / REPORT_FILE, html)
