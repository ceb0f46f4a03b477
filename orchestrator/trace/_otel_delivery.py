"""The OTLP exporter, wrapped: it counts the spans delivered and keeps why an export
failed (the SDK's exporter says only "failure"), and once stopped sends nothing more.

Duck-typed to the SDK's ``SpanExporter`` and importing neither it nor requests at import
time, so that ``orchestrator`` imports without the ``otel`` extra.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


@dataclass
class LastError:
    """Why the latest HTTP request of the exporter failed (None: it did not)."""

    text: str | None = None


class Delivery:
    """The OTLP exporter, wrapped (the ``SpanExporter`` interface, duck-typed so that this
    module imports without the SDK): counts the spans it is given and those delivered, keeps
    why an export failed, and once ``stop``-ped sends nothing more."""

    def __init__(
        self, inner: SpanExporter, results: type[SpanExportResult], last: LastError
    ) -> None:
        self._inner = inner
        self._results = results
        self._last = last
        self._lock = threading.Lock()
        self._stopped = False
        self._inner_shut = False
        self.taken = 0  # spans the processor took off its queue to export
        self.delivered = 0
        self.failed = 0
        self.error: str | None = None

    def export(self, batch: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            self.taken += len(batch)
            if self._stopped:
                return self._results.FAILURE
        self._last.text = None
        try:
            result = self._inner.export(batch)
        except Exception as error:  # older SDKs raise where newer ones return FAILURE
            self._last.text = self._last.text or type(error).__name__
            result = self._results.FAILURE
        with self._lock:
            if self._stopped:  # the report is made: what ends now is not in it
                return result
            if result is self._results.SUCCESS:
                self.delivered += len(batch)
            else:
                self.failed += len(batch)
                self.error = self._last.text or self.error
        return result

    def stop(self) -> tuple[int, int, str | None]:
        """Send nothing more; return (delivered, failed, last error) as of now."""
        with self._lock:
            self._stopped = True
            counts = self.delivered, self.failed, self.error or self._last.text
        self.shutdown()  # cuts short the exporter's retries (newer SDKs wait on its event)
        return counts

    def shutdown(self) -> None:
        with self._lock:
            if self._inner_shut:
                return
            self._inner_shut = True
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def watched_session(last: LastError) -> requests.Session:
    """The exporter's HTTP session, noting why a request failed: the exporter only reports
    that an export did. (The class is made here, so that importing this module does not
    import requests, which comes with the extra.)"""
    import requests

    class WatchedSession(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> requests.Response:
            try:
                response = super().request(*args, **kwargs)
            except requests.RequestException as error:
                last.text = error_text(error)
                raise
            if response.status_code >= 400:
                last.text = f"HTTP {response.status_code} {response.reason or ''}".strip()
            return response

    return WatchedSession()


def error_text(error: Exception) -> str:
    """A short reason for a failed request: requests' own messages run to lines."""
    import requests

    text = str(error)
    if isinstance(error, requests.ConnectTimeout):
        return "connect timed out"
    if isinstance(error, requests.Timeout):
        return "no answer in time"
    if isinstance(error, requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(error, requests.ConnectionError):
        if "refused" in text:
            return "connection refused"
        if "NameResolution" in text or "not known" in text or "getaddrinfo" in text:
            return "unknown host"
        return "connection failed"
    return type(error).__name__
