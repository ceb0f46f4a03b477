"""Export of spans to OpenTelemetry, the optional ``otel`` extra: every span of a run goes to
an OTLP/HTTP endpoint (Jaeger, Langfuse, Phoenix, any collector) through the SDK's own
batch processor and exporter, so the run never waits on the network.

Our spans are timed when they end, so each becomes the SDK's ``ReadableSpan`` (what its
processors and exporters read) directly, without a Tracer. Two things of the SDK need
wrapping. Its ``BatchSpanProcessor`` drops spans silently when its queue is full, and its
exporter says only "failure": here ``OtlpExport`` hands each span to the processor itself,
keeping the queue's bound and counting what it drops, and the exporter is wrapped to count
what was delivered and keep why an export failed. And the SDK's shutdown may block for
30 s, its exporter retry a down endpoint for up to its timeout: ``close()`` flushes in a
thread of its own and stops waiting at its limit.

The SDK is imported only by ``otlp_export``: without the extra this module still imports.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast
from urllib.parse import urlsplit, urlunsplit

import structlog

from .._errors import ConfigError
from ..provider._endpoints import redact_url
from ._otel_delivery import Delivery, LastError, watched_session
from ._spans import Span

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Status

log = structlog.get_logger()

FIELD = "--otlp-endpoint"
INSTALL_HINT = "pip install 'orchestrate[otel]'"
TRACES_PATH = "/v1/traces"


@dataclass(frozen=True)
class ExportReport:
    """What an export delivered. ``spans`` ended during the run; ``undelivered`` of them
    were not confirmed delivered within the limit: ``dropped`` because the queue was full,
    ``failed`` because their export failed (refused, an error status, no answer within the
    exporter's timeout), the rest still queued or awaiting an answer at the limit (a slow
    endpoint may still store those). ``error`` is the last export error seen, if any;
    ``flush_s`` the wall time ``close`` took (not part of the run's)."""

    endpoint: str
    spans: int
    delivered: int
    undelivered: int
    flush_s: float
    error: str | None = None
    dropped: int = 0
    failed: int = 0
    limit: float = 2.0

    def describe(self) -> str:
        """One line for the run's summary."""
        flush = f"(flush {self.flush_s:.1f} s)"
        if self.undelivered == 0:
            return f"traces: {self.spans} spans exported to {self.endpoint} {flush}"
        return (
            f"traces: {self.delivered} of {self.spans} spans delivered to {self.endpoint}; "
            f"{self.undelivered} undelivered ({self._why()}) {flush}"
        )

    def _why(self) -> str:
        rest = self.undelivered - self.dropped
        cause = self.error or (
            "export failed" if self.failed else f"not delivered within the {self.limit:g} s limit"
        )
        if not self.dropped:
            return cause
        if not rest:
            return "queue full"
        return f"{self.dropped} dropped, queue full; {rest} {cause}"


class _Batch(Protocol):
    """What ``OtlpExport`` uses of the SDK's ``BatchSpanProcessor``."""

    def on_end(self, span: ReadableSpan) -> None: ...

    def force_flush(self, timeout_millis: int | None = None) -> bool: ...

    def shutdown(self) -> None: ...


class OtlpExport:
    """A ``SpanSink`` that exports every span of a run over OTLP/HTTP. Make one with
    ``otlp_export``, and ``close`` it after the run.

    It runs on the event loop, so each span costs only a few microseconds: an id when it
    starts; when it ends, the SDK's ``ReadableSpan`` (what its exporters read) and a deque
    append. It does not go through a Tracer: our spans are timed already, and a Tracer's
    span, built to be written to while it runs, costs about eight times as much (its
    attribute checks). The network is the batch processor's thread. It never raises into
    the run: a span it cannot convert is counted undelivered.
    """

    def __init__(
        self,
        batch: _Batch,
        delivery: Delivery,
        *,
        endpoint: str,
        max_queue_size: int,
        resource: Resource,
    ) -> None:
        # The SDK is there: otlp_export imported it.
        from opentelemetry.sdk.trace import ReadableSpan
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

        self.endpoint = endpoint
        self._batch = batch
        self._delivery = delivery
        self._max_queue = max_queue_size
        self._resource = resource
        self._scope = InstrumentationScope("orchestrate")
        self._ids = RandomIdGenerator()
        self._readable = ReadableSpan
        self._context = SpanContext
        self._sampled = TraceFlags(TraceFlags.SAMPLED)
        self._kinds = {"call": SpanKind.CLIENT}
        self._internal = SpanKind.INTERNAL
        self._status, self._error = Status, StatusCode.ERROR
        self._statuses = {"ok": Status(StatusCode.OK), "unset": Status(StatusCode.UNSET)}
        self._trace_id = self._ids.generate_trace_id()
        self._span_ids: dict[int, int] = {}
        self._epoch_ns = time.time_ns()
        self._handed = 0
        self._faults = 0
        self.spans = 0
        self.dropped = 0
        self._report: ExportReport | None = None

    @property
    def closed(self) -> bool:
        return self._report is not None

    def open(self, epoch: float) -> None:
        """A run starts: its spans make a trace of their own."""
        self._epoch_ns = round(epoch * 1e9)
        self._trace_id = self._ids.generate_trace_id()
        self._span_ids.clear()

    def started(self, span: Span) -> None:
        if self._report is None:
            self._span_ids[span.id] = self._ids.generate_span_id()

    def ended(self, span: Span) -> None:
        if self._report is not None:
            return
        self.spans += 1
        try:
            readable = self._convert(span)
            # The processor's queue is bounded and drops the oldest span silently when
            # full: keep the bound here instead, and count. What the queue holds is at most
            # what was handed over less what its exports took.
            if self._handed - self._delivery.taken >= self._max_queue:
                self.dropped += 1
                return
            self._handed += 1
            self._batch.on_end(readable)
        except Exception as error:  # never into the run; undelivered
            self._fault(span, error)

    def _convert(self, span: Span) -> ReadableSpan:
        span_id = self._span_ids.pop(span.id)  # KeyError: never started, undelivered
        parent_id = self._span_ids.get(span.parent) if span.parent is not None else None
        context, sampled = self._context, self._sampled
        return self._readable(
            span.name,
            context(self._trace_id, span_id, False, sampled),
            None if parent_id is None else context(self._trace_id, parent_id, False, sampled),
            self._resource,
            _attributes(span.attributes),
            kind=self._kinds.get(span.kind, self._internal),
            status=self._span_status(span),
            start_time=self._ns(span.start),
            end_time=self._ns(span.start if span.end is None else span.end),
            instrumentation_scope=self._scope,
        )

    def _span_status(self, span: Span) -> Status:
        if span.status == "error":
            return self._status(self._error, span.error)
        return self._statuses[span.status]

    def close(self, limit: float = 2.0) -> ExportReport:
        """Deliver what is queued and shut down, taking at most ``limit`` seconds of wall
        time whatever the endpoint does; return what was delivered. Blocks the calling
        thread: call it after the run (from async code, through ``asyncio.to_thread``).
        Closing again returns the same report."""
        if self._report is not None:
            return self._report
        began = time.perf_counter()
        flusher = threading.Thread(target=self._flush, name="orchestrate-otlp-flush", daemon=True)
        flusher.start()
        flusher.join(max(limit, 0.0))
        # A thread still waiting on the endpoint is left behind (a daemon, its request
        # bounded by the exporter's timeout); what it delivers now is not counted.
        delivered, failed, error = self._delivery.stop()
        self._report = ExportReport(
            endpoint=self.endpoint,
            spans=self.spans,
            delivered=delivered,
            undelivered=self.spans - delivered,
            flush_s=time.perf_counter() - began,
            error=error,
            dropped=self.dropped,
            failed=failed,
            limit=limit,
        )
        return self._report

    def _flush(self) -> None:
        try:
            self._batch.force_flush()
            self._batch.shutdown()
        except Exception as error:  # the report counts what did not arrive
            log.debug("otlp.flush_failed", error=repr(error))

    def _ns(self, seconds: float) -> int:
        return self._epoch_ns + round(seconds * 1e9)

    def _fault(self, span: Span, error: Exception) -> None:
        self._faults += 1
        if self._faults == 1:  # once: a bug here would otherwise log every span
            log.warning("otlp.span_not_exported", span=span.name, error=repr(error))


def otlp_export(
    endpoint: str,
    *,
    max_queue_size: int = 2048,
    max_export_batch_size: int = 512,
    schedule_delay: float = 1.0,
    timeout: float | None = None,
) -> OtlpExport:
    """A span sink exporting to the OTLP/HTTP traces URL ``endpoint`` (a URL without a path
    gets ``/v1/traces``). At most ``max_queue_size`` spans wait; a batch is sent every
    ``schedule_delay`` seconds or when ``max_export_batch_size`` are waiting. ``timeout``
    bounds each export, retries included (default: ``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT``,
    ``OTEL_EXPORTER_OTLP_TIMEOUT`` or 10 s); headers come from
    ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` or ``OTEL_EXPORTER_OTLP_HEADERS``.

    Raises ``ConfigError`` when the URL is not http(s) or the ``otel`` extra is missing.
    """
    url = _traces_url(endpoint)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
    except ImportError as error:
        raise ConfigError(
            "exporting spans to OpenTelemetry needs the optional 'otel' extra",
            field=FIELD,
            hint=INSTALL_HINT,
        ) from error

    last = LastError()
    exporter = OTLPSpanExporter(endpoint=url, timeout=timeout, session=watched_session(last))
    delivery = Delivery(exporter, SpanExportResult, last)
    batch = BatchSpanProcessor(
        cast("SpanExporter", delivery),
        max_queue_size=max_queue_size,
        schedule_delay_millis=schedule_delay * 1000,
        max_export_batch_size=min(max_export_batch_size, max_queue_size),
    )
    return OtlpExport(
        batch,
        delivery,
        endpoint=redact_url(url),
        max_queue_size=max_queue_size,
        resource=Resource.create({"service.name": "orchestrate"}),
    )


def _traces_url(endpoint: str) -> str:
    hint = "give the OTLP/HTTP traces URL, such as http://localhost:4318/v1/traces"
    parts = urlsplit(endpoint.strip())
    try:
        parts.port  # noqa: B018 -- parsing the port raises on a bad one
    except ValueError:
        raise ConfigError("the port is not a number", field=FIELD, hint=hint) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"not an http(s) URL: {redact_url(endpoint)!r}", field=FIELD, hint=hint)
    if parts.path in ("", "/"):
        parts = parts._replace(path=TRACES_PATH)
    return urlunsplit(parts)


_PRIMITIVES = (str, bool, int, float)
_PRIMITIVE_TYPES = frozenset(_PRIMITIVES)


def _attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Our span attributes as OpenTelemetry takes them: None left out, sequences as tuples
    of one primitive type (or of strings), anything else as its text."""
    converted: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, _PRIMITIVES):
            converted[key] = value
        elif isinstance(value, list | tuple):
            items = [item for item in value if item is not None]
            kinds = {type(item) for item in items}
            if len(kinds) == 1 and kinds <= _PRIMITIVE_TYPES:
                converted[key] = tuple(items)
            else:
                converted[key] = tuple(str(item) for item in items)
        else:
            converted[key] = str(value)
    return converted
