"""Reading a provider's rate-limit headers.

OpenAI (and most compatible gateways) send, on every response::

    x-ratelimit-limit-requests: 1200        x-ratelimit-limit-tokens: 200000
    x-ratelimit-remaining-requests: 1199    x-ratelimit-remaining-tokens: 198500
    x-ratelimit-reset-requests: 50ms        x-ratelimit-reset-tokens: 6m0s

and on a 429 ``retry-after-ms`` and/or ``retry-after`` (seconds, or an HTTP date).
See https://platform.openai.com/docs/guides/rate-limits#rate-limits-in-headers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

# "6m0s", "1.5s", "120ms", "1h2m3.5s", "20ms", "0s" — units in descending order.
_DURATION = re.compile(
    r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?"
    r"(?:(\d+(?:\.\d+)?)ms)?$"
)


def parse_duration(text: str | None) -> float | None:
    """``"6m0s"`` -> 360.0, ``"1.5s"`` -> 1.5, ``"120ms"`` -> 0.12; None if unreadable."""
    if not text:
        return None
    text = text.strip()
    match = _DURATION.match(text)
    if not match or not any(match.groups()):
        try:  # some gateways send plain seconds
            return max(0.0, float(text))
        except ValueError:
            return None
    hours, minutes, seconds, millis = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def _int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What the provider says about its limits for this model (any field may be missing)."""

    limit_requests: int | None = None
    limit_tokens: int | None = None
    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests: float | None = None
    reset_tokens: float | None = None

    @property
    def has_limits(self) -> bool:
        return self.limit_requests is not None or self.limit_tokens is not None


def rate_limit_info(headers: Mapping[str, str]) -> RateLimitInfo | None:
    """Parse the ``x-ratelimit-*`` headers; None when there are none."""
    h = {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-ratelimit-")}
    if not h:
        return None
    return RateLimitInfo(
        limit_requests=_int(h, "x-ratelimit-limit-requests"),
        limit_tokens=_int(h, "x-ratelimit-limit-tokens"),
        remaining_requests=_int(h, "x-ratelimit-remaining-requests"),
        remaining_tokens=_int(h, "x-ratelimit-remaining-tokens"),
        reset_requests=parse_duration(h.get("x-ratelimit-reset-requests")),
        reset_tokens=parse_duration(h.get("x-ratelimit-reset-tokens")),
    )


def retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds the provider asks us to wait: ``retry-after-ms`` first, then ``retry-after``
    (seconds or an HTTP date); None when it says nothing usable."""
    lower = {k.lower(): v for k, v in headers.items()}
    millis = lower.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))
