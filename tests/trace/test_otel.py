"""The OpenTelemetry export, against a real OTLP/HTTP receiver on 127.0.0.1: spans arrive
with their names, links, times, attributes and status; an endpoint that is down or never
answers costs at most the close limit, and every span it did not take is counted; a full
queue drops spans counted, never silently; the sink never raises into the run."""

from __future__ import annotations

import socket
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as ProtoStatus

from orchestrator import (
    CallFailed,
    CallFinished,
    CallStarted,
    ChainFinished,
    ChainStarted,
    ChatResponse,
    Event,
    RunFinished,
    RunStarted,
    StageFinished,
    StageStarted,
    Topic,
)
from orchestrator._errors import CallError, ConfigError
from orchestrator.trace._otel import ExportReport, OtlpExport, otlp_export
from orchestrator.trace._spans import Span, SpanRecorder

WALL_START = datetime(2026, 3, 2, 18, 30, tzinfo=UTC)
EPOCH = WALL_START.timestamp()
SLACK = 1.0  # seconds close() may overrun its limit on a busy CI machine


class Receiver:
    """An OTLP/HTTP traces endpoint in a thread: decodes every ExportTraceServiceRequest.
    With ``delay`` it holds each answer that long (or until the test ends)."""

    def __init__(self, *, delay: float = 0.0) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.headers: list[dict[str, str]] = []
        self.arrived = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(ExportTraceServiceRequest.FromString(body))
                receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                receiver.arrived.set()
                if delay:
                    receiver.release.wait(delay)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def spans(self) -> list[ProtoSpan]:
        return [
            span
            for request in self.requests
            for resource in request.resource_spans
            for scope in resource.scope_spans
            for span in scope.spans
        ]

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def slow_receiver() -> Iterator[Receiver]:
    server = Receiver(delay=60.0)  # answers when the test ends
    yield server
    server.stop()


@pytest.fixture
def down_url() -> str:
    """A URL on a local port nothing listens on: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/traces"


KINDS = ("run", "chain", "stage", "call", "wait")


def ns(seconds: float) -> int:
    """A time of the run as the collector should see it: UNIX nanoseconds."""
    return round(EPOCH * 1e9) + round(seconds * 1e9)


def attrs(span: ProtoSpan) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for kv in span.attributes:
        which = kv.value.WhichOneof("value")
        if which == "array_value":
            values[kv.key] = [
                getattr(v, v.WhichOneof("value")) for v in kv.value.array_value.values
            ]
        else:
            values[kv.key] = getattr(kv.value, which)
    return values


def tree(count: int) -> list[Span]:
    """A run span with ``count - 1`` call spans under it, ended in order."""
    run = Span(1, None, "run", "orchestrate run r", 0.0, end=float(count))
    calls = [
        Span(i, 1, "call", f"chat m{i}", float(i), end=i + 0.5, status="ok")
        for i in range(2, count + 1)
    ]
    return [run, *calls]


def feed(sink: OtlpExport, spans: list[Span]) -> None:
    """Start every span, then end the children and the root last, as the recorder does."""
    sink.open(EPOCH)
    for span in spans:
        sink.started(span)
    for span in spans[1:]:
        sink.ended(span)
    sink.ended(spans[0])


TOPIC = Topic(0, "Tides", "tides")


def answer(text: str) -> ChatResponse:
    return ChatResponse(text, "stop", 12, 34, "sim-1")


def run_events() -> list[Event]:
    """One topic, two stages: the first call fails and is retried, the chain succeeds."""
    failed = CallError("HTTP 503: overloaded", status=503, retryable=True)
    return [
        RunStarted("r1", 100.0, WALL_START, "parallel", 1, "simulated", "sim", 1, ["a", "b"]),
        ChainStarted(TOPIC, 100.5),
        StageStarted(TOPIC, "a", 100.5),
        CallStarted(TOPIC, "a", 1, "sim-1", 100.5),
        CallFailed(TOPIC, "a", 1, failed, 100.5, 101.0),
        CallStarted(TOPIC, "a", 2, "sim-1", 101.25),
        CallFinished(TOPIC, "a", 2, answer("A"), 101.25, 102.0, cost=None),
        StageFinished(TOPIC, "a", "sim-1", "A", 2, 12, 34, 100.5, 102.0, cost=0.5),
        StageStarted(TOPIC, "b", 102.0),
        CallStarted(TOPIC, "b", 1, "sim-1", 102.0),
        CallFinished(TOPIC, "b", 1, answer("B"), 102.0, 103.0, cost=0.25),
        StageFinished(TOPIC, "b", "sim-1", "B", 1, 12, 34, 102.0, 103.0, cost=0.25),
        ChainFinished(TOPIC, "succeeded", {"a": "A", "b": "B"}, None, None, 100.5, 103.0),
        RunFinished(104.0, "finished"),
    ]


async def test_spans_arrive_as_one_trace_with_links_times_attributes_and_status(
    receiver: Receiver,
) -> None:
    """Each span reaches the collector once, under its parent, at epoch + its start."""
    sink = otlp_export(receiver.url)
    recorder = SpanRecorder(chain="demo", sinks=[sink])
    for event in run_events():
        await recorder.on_event(event)
    report = sink.close(limit=5.0)

    assert (report.spans, report.delivered, report.undelivered) == (7, 7, 0)
    assert report.describe().startswith(f"traces: 7 spans exported to {receiver.url} (flush")
    resource = receiver.requests[0].resource_spans[0].resource
    assert {kv.key: kv.value.string_value for kv in resource.attributes}[
        "service.name"
    ] == "orchestrate"
    got = {(s.name, s.start_time_unix_nano): s for s in receiver.spans}
    assert len(got) == len(receiver.spans) == 7
    assert len({s.trace_id for s in got.values()}) == 1
    # Found by name and start: a KeyError here is a start time off from epoch + start.
    otel = {ours.id: got[(ours.name, ns(ours.start))] for ours in recorder.spans}
    for ours in recorder.spans:
        theirs = otel[ours.id]
        assert theirs.parent_span_id == (otel[ours.parent].span_id if ours.parent else b"")
        assert theirs.end_time_unix_nano == ns(ours.end or 0.0)
        kind = ProtoSpan.SPAN_KIND_CLIENT if ours.kind == "call" else ProtoSpan.SPAN_KIND_INTERNAL
        assert theirs.kind == kind, ours.name

    by_kind = {kind: [otel[s.id] for s in recorder.spans if s.kind == kind] for kind in KINDS}
    failed_call, retried_call, _ = by_kind["call"]
    assert failed_call.status.code == ProtoStatus.STATUS_CODE_ERROR
    assert failed_call.status.message == "HTTP 503: overloaded"
    assert attrs(failed_call)["error.type"] == "503"
    assert retried_call.status.code == ProtoStatus.STATUS_CODE_OK
    call = attrs(retried_call)
    assert call["gen_ai.operation.name"] == "chat"
    assert call["gen_ai.request.model"] == "sim-1"
    assert call["gen_ai.usage.input_tokens"] == 12
    assert call["gen_ai.response.finish_reasons"] == ["stop"]
    assert call["orchestrate.attempt"] == 2
    assert "orchestrate.cost_usd" not in call  # None (an unknown price) is left out
    assert attrs(by_kind["stage"][0])["orchestrate.cost_usd"] == 0.5
    assert attrs(by_kind["run"][0])["orchestrate.stages"] == ["a", "b"]
    assert attrs(by_kind["chain"][0])["orchestrate.topic"] == "Tides"


def test_otlp_headers_from_the_environment_are_sent(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_EXPORTER_OTLP_HEADERS (e.g. a Langfuse key) reaches the endpoint."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Basic%20abc,x-team=docs")
    sink = otlp_export(receiver.url)
    feed(sink, tree(3))
    assert sink.close(limit=5.0).delivered == 3
    assert receiver.headers[0]["authorization"] == "Basic abc"
    assert receiver.headers[0]["x-team"] == "docs"


def test_a_down_endpoint_costs_at_most_the_limit_and_every_span_is_undelivered(
    down_url: str,
) -> None:
    """Connection refused: close() keeps its limit, though the SDK retries with backoff."""
    sink = otlp_export(down_url)
    feed(sink, tree(50))
    began = time.perf_counter()
    report = sink.close(limit=0.5)
    assert time.perf_counter() - began < 0.5 + SLACK
    assert (report.spans, report.delivered, report.undelivered) == (50, 0, 50)
    assert report.error == "connection refused"
    assert report.describe() == (
        f"traces: 0 of 50 spans delivered to {down_url}; 50 undelivered "
        f"(connection refused) (flush {report.flush_s:.1f} s)"
    )


def test_an_endpoint_that_never_answers_costs_at_most_the_limit(
    slow_receiver: Receiver,
) -> None:
    """The request is sent and its answer awaited only until the limit: undelivered."""
    sink = otlp_export(slow_receiver.url)
    feed(sink, tree(20))
    began = time.perf_counter()
    report = sink.close(limit=0.5)
    assert time.perf_counter() - began < 0.5 + SLACK
    assert slow_receiver.arrived.is_set()
    assert (report.delivered, report.undelivered) == (0, 20)
    assert "20 undelivered (not delivered within the 0.5 s limit)" in report.describe()


def test_a_full_queue_drops_spans_counted_never_silently() -> None:
    """Everything the collector did not get is in the report, and only that."""
    slow = Receiver(delay=0.3)  # keeps the exporter busy while spans pile up
    try:
        sink = otlp_export(slow.url, max_queue_size=4, schedule_delay=0.01)
        feed(sink, tree(200))
        report = sink.close(limit=5.0)
    finally:
        slow.stop()
    assert report.dropped > 0
    assert report.delivered == len(slow.spans)
    assert report.delivered + report.undelivered == report.spans == 200
    assert report.undelivered == report.dropped  # the endpoint took every span it was sent
    assert f"{report.dropped} undelivered (queue full)" in report.describe()


def test_credentials_in_the_endpoint_are_not_reported(receiver: Receiver) -> None:
    """The report names the endpoint without its user-info or query."""
    url = receiver.url.replace("http://", "http://user:secret@") + "?key=hush"
    sink = otlp_export(url)
    feed(sink, tree(2))
    report = sink.close(limit=5.0)
    assert report.delivered == 2
    assert report.endpoint == receiver.url
    assert "secret" not in report.describe() and "hush" not in report.describe()


def test_an_endpoint_without_a_path_gets_the_traces_path() -> None:
    """http://host:4318 means the collector's /v1/traces, as OTEL_EXPORTER_OTLP_ENDPOINT does."""
    sink = otlp_export("http://127.0.0.1:4318")
    assert sink.endpoint == "http://127.0.0.1:4318/v1/traces"
    sink.close(limit=0.5)


@pytest.mark.parametrize(
    "endpoint", ["localhost:4318", "grpc://127.0.0.1:4317", "ftp://h/v1/traces", "http://", ""]
)
def test_an_endpoint_that_is_not_an_http_url_is_a_config_error(endpoint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        otlp_export(endpoint)
    assert caught.value.field == "--otlp-endpoint"


def test_a_bad_port_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="port"):
        otlp_export("http://127.0.0.1:port/v1/traces")


def test_without_the_otel_extra_the_export_is_a_config_error_naming_the_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No traceback: the user is told which extra to install."""
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(ConfigError) as caught:
        otlp_export("http://127.0.0.1:4318/v1/traces")
    assert caught.value.field == "--otlp-endpoint"
    assert caught.value.hint == "pip install 'orchestrate[otel]'"


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_the_sink_never_raises_into_the_run_and_counts_what_it_could_not_send(
    receiver: Receiver,
) -> None:
    """Odd attributes are converted; a span it cannot convert, or never saw start, is
    counted undelivered; a span whose parent it never saw is a root; after close, spans
    are ignored."""
    sink = otlp_export(receiver.url)
    sink.open(EPOCH)
    odd = Span(1, None, "run", "odd", 0.0, end=1.0, attributes={"m": [1, "a", None], "d": {}})
    broken = Span(2, 1, "stage", "broken", 0.1, end=0.2, attributes={"x": Unprintable()})
    orphan = Span(3, 99, "call", "orphan", 0.3, end=0.4)
    never_started = Span(4, 1, "wait", "never started", 0.5, end=0.5)
    for span in (odd, broken, orphan):
        sink.started(span)
    for span in (broken, orphan, never_started, odd):
        sink.ended(span)
    report = sink.close(limit=5.0)
    sink.started(Span(5, None, "run", "late", 2.0))
    sink.ended(Span(5, None, "run", "late", 2.0, end=3.0))

    assert (report.spans, report.delivered, report.undelivered) == (4, 2, 2)
    assert sink.close() is report
    got = {s.name: s for s in receiver.spans}
    assert set(got) == {"odd", "orphan"}
    assert attrs(got["odd"]) == {"m": ["1", "a"], "d": "{}"}
    assert got["orphan"].parent_span_id == b""  # its parent unknown: a root, not a crash


def test_a_report_with_drops_and_failures_says_how_many_of_each() -> None:
    report = ExportReport(
        "http://h/v1/traces", 100, 60, 40, 2.04, error="HTTP 503 Service Unavailable", dropped=30
    )
    assert report.describe() == (
        "traces: 60 of 100 spans delivered to http://h/v1/traces; 40 undelivered "
        "(30 dropped, queue full; 10 HTTP 503 Service Unavailable) (flush 2.0 s)"
    )


def test_each_run_through_one_sink_is_a_trace_of_its_own(receiver: Receiver) -> None:
    """open() starts a new trace: two runs of one sink (compare's two modes) do not mix."""
    sink = otlp_export(receiver.url)
    feed(sink, tree(3))
    feed(sink, tree(3))
    assert sink.close(limit=5.0).delivered == 6
    traces = {s.trace_id for s in receiver.spans}
    assert len(traces) == 2
    assert all(s.parent_span_id for s in receiver.spans if s.name.startswith("chat"))
