"""Per-model RPM/TPM limits of the simulated provider, enforced the way providers do.

A provider that sells "1,200 RPM" enforces it over short windows: it behaves as 20 requests
per second, not as 1,200 at once followed by a minute of 429s. So each limit is a token
bucket (https://en.wikipedia.org/wiki/Token_bucket) of capacity ``limit / 60`` refilled at
``limit / 60`` per second, starting full. Time is real seconds from an injectable clock,
independent of the simulated ``time_scale``, because clients pace themselves by the wall clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

# Float noise in clock differences (1000.05 - 1000.0 = 0.04999999999995) must not turn
# "exactly enough" into "not quite".
_EPSILON = 1e-9

ORGANIZATION = "org-simulated"

BucketKind = Literal["requests", "tokens"]
_UNITS: dict[BucketKind, str] = {
    "requests": "requests per min (RPM)",
    "tokens": "tokens per min (TPM)",
}


def format_duration(seconds: float) -> str:
    """Format a duration like OpenAI's ``x-ratelimit-reset-*`` headers (Go's duration
    format), to the nearest millisecond. Negative durations are ``"0s"``.

    >>> format_duration(1)
    '1s'
    >>> format_duration(0.12)
    '120ms'
    >>> format_duration(360)
    '6m0s'
    >>> format_duration(1.5)
    '1.5s'
    >>> format_duration(0)
    '0s'
    >>> format_duration(3723.25)
    '1h2m3.25s'
    """
    ms = max(0, round(seconds * 1000))
    if ms == 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, frac = divmod(rest, 1000)
    text = f"{whole}.{frac:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def ceil_ms(seconds: float) -> int:
    """Whole milliseconds, rounded up (a client that waits this long is admitted)."""
    return max(0, math.ceil(seconds * 1000 - _EPSILON * 1000))


def retry_after_headers(seconds: float) -> dict[str, str]:
    """OpenAI's retry headers: ``retry-after-ms`` exact, ``retry-after`` in whole seconds
    rounded up; both at least 1."""
    ms = max(1, ceil_ms(seconds))
    return {"retry-after-ms": str(ms), "retry-after": str(max(1, math.ceil(ms / 1000)))}


class Bucket:
    """One per-minute limit as a token bucket of a second's worth, starting full."""

    def __init__(self, kind: BucketKind, limit: int, now: float) -> None:
        self.kind = kind
        self.limit = limit
        self.capacity = limit / 60
        self.level = self.capacity
        self._updated = now

    def refill(self, now: float) -> None:
        """Add what flowed in since the last call (rate = capacity per second)."""
        elapsed = max(0.0, now - self._updated)
        self.level = min(self.capacity, self.level + elapsed * self.capacity)
        self._updated = now

    def wait(self, cost: float) -> float:
        """Seconds until ``cost`` would be admitted (0 when it is admitted now).

        A cost above the capacity could never fit; it is admitted when the bucket is full
        and drives the level negative, so a large request is slow rather than impossible.
        """
        need = min(cost, self.capacity)
        return max(0.0, (need - self.level) / self.capacity - _EPSILON)

    def take(self, cost: float) -> None:
        self.level -= cost

    def remaining(self) -> int:
        """What is left of the per-minute limit, one unit per request (or token) as OpenAI
        counts it: the limit less what the one-second bucket is currently short of full."""
        return max(0, math.floor(self.limit - (self.capacity - self.level) + _EPSILON))

    def headers(self) -> dict[str, str]:
        """This bucket's three ``x-ratelimit-*`` headers."""
        reset = max(0.0, (self.capacity - self.level) / self.capacity)
        return {
            f"x-ratelimit-limit-{self.kind}": str(self.limit),
            f"x-ratelimit-remaining-{self.kind}": str(self.remaining()),
            f"x-ratelimit-reset-{self.kind}": format_duration(ceil_ms(reset) / 1000),
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the limiter decided for one request, with the headers to send either way."""

    headers: dict[str, str]
    wait: float = 0.0  # seconds until the request would be admitted; 0 when admitted
    short: Bucket | None = None  # the bucket that refused it (the longer wait)

    @property
    def refused(self) -> BucketKind | None:
        """Which limit refused the request (the error ``type``), or None if admitted."""
        return None if self.short is None else self.short.kind

    def message(self, model: str, cost: int) -> str:
        """OpenAI's 429 ``rate_limit_exceeded`` message for a refused request."""
        b = self.short
        if b is None:
            return ""
        requested = 1 if b.kind == "requests" else cost
        return (
            f"Rate limit reached for {model} in organization {ORGANIZATION} on "
            f"{_UNITS[b.kind]}: Limit {b.limit}, Used {b.limit - b.remaining()}, "
            f"Requested {requested}. Please try again in "
            f"{format_duration(ceil_ms(self.wait) / 1000)}."
        )


class RateLimiter:
    """Per-model request and token buckets; ``None`` limits are unlimited.

    ``send_headers=False`` sends no ``x-ratelimit-*`` header at all, limited or not (many
    gateways and self-hosted servers). ``unlimited`` is what the headers say for a dimension
    that is not limited — ``"-1"``, ``"0"``, ``"inf"``, as some deployments do — where OpenAI
    sends nothing (None).
    """

    def __init__(
        self,
        *,
        rpm: int | None,
        tpm: int | None,
        clock: Callable[[], float],
        send_headers: bool = True,
        unlimited: str | None = None,
    ) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self._clock = clock
        self._send = send_headers
        self._unlimited: dict[str, str] = {}
        if unlimited is not None:
            for kind, limit in (("requests", rpm), ("tokens", tpm)):
                if limit is None:
                    self._unlimited[f"x-ratelimit-limit-{kind}"] = unlimited
                    self._unlimited[f"x-ratelimit-remaining-{kind}"] = unlimited
        self._buckets: dict[str, list[Bucket]] = {}

    def _for(self, model: str) -> list[Bucket]:
        buckets = self._buckets.get(model)
        if buckets is None:
            now = self._clock()
            buckets = []
            if self.rpm is not None:
                buckets.append(Bucket("requests", self.rpm, now))
            if self.tpm is not None:
                buckets.append(Bucket("tokens", self.tpm, now))
            self._buckets[model] = buckets
        now = self._clock()
        for bucket in buckets:
            bucket.refill(now)
        return buckets

    def headers(self, model: str) -> dict[str, str]:
        """The current ``x-ratelimit-*`` headers of ``model`` (empty without limits)."""
        return self._headers(self._for(model))

    def admit(self, model: str, tokens: int) -> Verdict:
        """Admit one request costing ``tokens`` if both buckets allow it, and charge it.

        A refused request charges nothing, so a client that waits ``Verdict.wait`` is
        admitted (nobody else having come first).
        """
        buckets = self._for(model)
        costs = {"requests": 1, "tokens": tokens}
        waits = [(b.wait(costs[b.kind]), b) for b in buckets]
        refusals = [(w, b) for w, b in waits if w > 0]
        if refusals:
            wait, short = max(refusals, key=lambda pair: pair[0])
            return Verdict(self._headers(buckets), wait=wait, short=short)
        for bucket in buckets:
            bucket.take(costs[bucket.kind])
        return Verdict(self._headers(buckets))

    def _headers(self, buckets: list[Bucket]) -> dict[str, str]:
        if not self._send:
            return {}
        headers = dict(self._unlimited)
        for bucket in buckets:
            headers.update(bucket.headers())
        return headers
