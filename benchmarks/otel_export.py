"""What exporting spans to OpenTelemetry costs a run, and what a bad endpoint costs it.

``--topics`` generated topics × 3 stages on the simulated provider (calls of tens of ms at
``--time-scale``), ``-c`` chains at once, run four ways, alternating, in one invocation:
without export; exporting to a healthy local OTLP/HTTP receiver; to an endpoint that is
down (connection refused); and to one that takes every request but answers only after
``--slow`` seconds. The receivers run in processes of their own, so that decoding what
they are sent takes no CPU from the run. The run's wall time excludes ``close()``, which
flushes within its 2 s limit and is reported apart, as the CLI reports it.

The simulated run is CPU-bound (client and server share the loop), the worst case for an
exporter, whose every microsecond of CPU delays the loop; on a shared machine its wall
time also varies by several percent from run to run. So the table also gives the export's
own costs, which do not depend on that noise: the time the event loop spent in the sink,
and the CPU of the threads other than the loop's (mostly the SDK's batch thread, encoding
and sending).

    python benchmarks/otel_export.py [--topics 300] [-c 50] [--rounds 3] [--time-scale 0.03]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from orchestrator.measure._bench import _generated_topics
from orchestrator.report._trace_files import TraceOptions
from orchestrator.session._setup import RunSetup, prepare
from orchestrator.trace._otel import ExportReport, OtlpExport, otlp_export
from orchestrator.trace._spans import Span

LIMIT = 2.0  # close()'s limit, as the CLI gives it


def serve(delay: float) -> None:
    """A receiver process: prints its port, counts the spans POSTed to it (GET says how
    many), and answers each POST after ``delay`` seconds."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    received = [0]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = ExportTraceServiceRequest.FromString(body)
            received[0] += sum(
                len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans
            )
            time.sleep(delay)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            text = str(received[0]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


@dataclass
class Receiver:
    process: subprocess.Popen[str]
    url: str

    @classmethod
    def start(cls, delay: float) -> Receiver:
        process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(delay)], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        port = int(process.stdout.readline())
        return cls(process, f"http://127.0.0.1:{port}/v1/traces")

    def received(self) -> int:
        with urllib.request.urlopen(self.url, timeout=5) as answer:
            return int(answer.read())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def down_url() -> str:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v1/traces"


class Timed:
    """The sink, with the time the event loop spends in it summed."""

    def __init__(self, sink: OtlpExport) -> None:
        self.sink = sink
        self.spent = 0.0

    def open(self, epoch: float) -> None:
        self.sink.open(epoch)

    def started(self, span: Span) -> None:
        began = time.perf_counter()
        self.sink.started(span)
        self.spent += time.perf_counter() - began

    def ended(self, span: Span) -> None:
        began = time.perf_counter()
        self.sink.ended(span)
        self.spent += time.perf_counter() - began


@dataclass
class Config:
    name: str
    endpoint: Callable[[], str | None]
    receiver: Receiver | None = None
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    on_loop: list[float] = field(default_factory=list)
    threads: list[float] = field(default_factory=list)
    flush: list[float] = field(default_factory=list)
    reports: list[ExportReport] = field(default_factory=list)
    received: list[int] = field(default_factory=list)


async def timed(setup: RunSetup, folder: Path, name: str, config: Config) -> None:
    run_dir = folder / name
    run_dir.mkdir()
    endpoint = config.endpoint()
    sink = otlp_export(endpoint) if endpoint else None
    before = config.receiver.received() if config.receiver else 0
    timed_sink = Timed(sink) if sink else None
    tracing = TraceOptions(sinks=(timed_sink,) if timed_sink else ())
    started, cpu, loop_cpu = time.perf_counter(), time.process_time(), time.thread_time()
    manifest = await setup.execute(name, run_dir, tracing=tracing)
    config.wall.append(time.perf_counter() - started)
    config.cpu.append(time.process_time() - cpu)  # every thread's: the exporter's too
    config.threads.append(config.cpu[-1] - (time.thread_time() - loop_cpu))
    assert manifest.totals.succeeded == len(setup.plan.topics), "a benchmark run must not fail"
    if sink is not None and timed_sink is not None:
        config.on_loop.append(timed_sink.spent)
        started = time.perf_counter()
        report = await asyncio.to_thread(sink.close, LIMIT)
        config.flush.append(time.perf_counter() - started)
        config.reports.append(report)
    if config.receiver:
        config.received.append(config.receiver.received() - before)


def row(config: Config, baseline: Config) -> str:
    wall, cpu = statistics.median(config.wall), statistics.median(config.cpu)
    ratio = wall / statistics.median(baseline.wall)
    cpu_ratio = cpu / statistics.median(baseline.cpu)
    threads = statistics.median(config.threads) * 1000
    cells = [
        config.name,
        f"{wall:.2f} s ({min(config.wall):.2f}–{max(config.wall):.2f})",
        f"{ratio:.3f}",
        f"{cpu:.2f} s",
        f"{cpu_ratio:.3f}",
        f"{statistics.median(config.on_loop) * 1000:.0f} ms" if config.on_loop else "–",
        f"{threads:.0f} ms",
    ]
    if config.reports:
        cells += [
            f"{statistics.median(config.flush):.2f} s",
            "/".join(str(r.delivered) for r in config.reports),
            "/".join(str(r.undelivered) for r in config.reports),
            "/".join(str(n) for n in config.received) if config.received else "–",
        ]
    else:
        cells += ["–"] * 4
    return "| " + " | ".join(cells) + " |"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topics", type=int, default=300)
    parser.add_argument("-c", "--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--time-scale", type=float, default=0.03, help="real s per sim s")
    parser.add_argument("--slow", type=float, default=5.0, help="seconds the slow one waits")
    args = parser.parse_args()
    # The SDK logs every failed export to stderr; the reports count them instead.
    logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)

    healthy, slow = Receiver.start(0.0), Receiver.start(args.slow)
    configs = [
        Config("no export", lambda: None),
        Config("healthy receiver", lambda: healthy.url, healthy),
        Config("down (refused)", down_url),
        Config(f"slow (answers after {args.slow:g} s)", lambda: slow.url, slow),
    ]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            topics = folder / "topics.yaml"
            topics.write_text(_generated_topics(args.topics))
            sim = {"time_scale": args.time_scale}
            setup = prepare(topics, concurrency=args.concurrency, sim=sim)
            await timed(setup, folder, "warm-up", Config("warm-up", lambda: healthy.url, healthy))
            for i in range(args.rounds):
                # Each round in another order, so that no configuration always runs
                # first, or right after the one whose threads are still waiting.
                for n in range(len(configs)):
                    config = configs[(i + n) % len(configs)]
                    await timed(setup, folder, f"r{i}-{n}", config)
    finally:
        healthy.stop()
        slow.stop()

    stages = len(setup.plan.stages)
    print(
        f"{args.topics} topics × {stages} stages, -c {args.concurrency}, calls of "
        f"~{args.time_scale * 1000:.0f} ms (sim time scale {args.time_scale:g}), "
        f"{configs[1].reports[0].spans} spans per run; median of {args.rounds} rounds, "
        f"close limit {LIMIT:g} s; ratios against no export; delivered, undelivered and "
        "what the collector got, per round\n"
    )
    print(
        "| export to | run wall (min–max) | ratio | run CPU | ratio | sink on loop "
        "| other threads' CPU | close (flush) | delivered | undelivered | collector got |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for config in configs:
        print(row(config, configs[0]))
    print()
    for config in configs[1:]:
        print(f"- {config.name}: {config.reports[-1].describe()}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(float(sys.argv[2]))
    else:
        asyncio.run(main())
